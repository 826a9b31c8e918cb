/**
 * `runs cancel --wait` whose database goes away during the wait, the
 * request written (atk225, finding 3): it says first that the request is
 * recorded, then that the wait was cut short by the database and where to
 * look once it is back; exit 1, as a wait that got no answer. The CLI is a
 * process of its own: only MariaDB, behind a proxy, can be cut under it
 * (the use case on SQLite: http_cancel_cut_test.ts).
 */
import { assertEquals, assertMatch } from "./assert.ts";
import {
  cli,
  CliProcess,
  freshDatabase,
  mysqlTest,
  rawQuery,
  saveNodes,
  serviceRow,
  waitFor,
} from "./helpers.ts";
import { proxyFor } from "./tcp_proxy.ts";

mysqlTest(
  "cli[mysql]: runs cancel --wait whose database goes away during the wait says the request is recorded and the wait cut short, exit 1",
  async () => {
    await using db = await freshDatabase("mysql");
    const added = await cli(
      ["--database", db.url, "job", "add", "a", "--command", "echo a", "--cron", "0 0 1 1 *"],
      { cwd: db.dir },
    );
    assertEquals(added.code, 0, added.stderr);
    await saveNodes(db, {
      ...serviceRow("svc-1"),
      db_heartbeat_at: Date.now(),
      heartbeat_ms: 600_000,
    });
    await rawQuery(
      db,
      "INSERT INTO jm_runs (job_id, scheduled_at, status, `trigger`, node_id, started_at) VALUES ('a', 1000, 'running', 'schedule', 'svc-1', 1000)",
    );
    const [{ id }] = await rawQuery(db, "SELECT id FROM jm_runs");
    await using proxy = proxyFor(db);
    const url = new URL(db.url);
    url.port = String(proxy.port);
    await using wait = new CliProcess(
      ["--database", url.toString(), "runs", "cancel", String(id), "--wait", "--timeout", "60"],
      { cwd: db.dir, env: { USER: "tester" } },
    );
    const requested = async () =>
      (await rawQuery(db, "SELECT cancel_requested_by FROM jm_runs"))[0].cancel_requested_by;
    await waitFor(async () => (await requested()) !== null || null, {
      timeoutMs: 20_000,
      what: "the cancel request to be written",
      detail: () => wait.stderr,
    });
    // Its next statements, sent once it has the answer to its write (a cut before is a write
    // unconfirmed): the read back and the wait's.
    const sent = proxy.chunksFromClients;
    await waitFor(() => proxy.chunksFromClients >= sent + 3 || null, {
      timeoutMs: 20_000,
      what: "the wait to read the run",
      detail: () => `${proxy.chunksFromClients - sent} chunks sent; stderr: ${wait.stderr}`,
    });
    proxy.cut();
    // Without the fix: exit 1 with the driver's error alone, as if the cancel had failed.
    const status = await wait.exit(30_000, "the wait to end once the database is gone");
    assertEquals([status.code, wait.stdout], [1, ""], wait.stderr);
    assertMatch(
      wait.stderr,
      new RegExp(
        `^jobsmanager: asked the service to end run ${id} of 'a' \\(running on svc-1\\): the request is recorded, but the wait for its answer was cut short by the database \\(.*MySQL at 127\\.0\\.0\\.1:\\d+.*\\); the service ends the run once it reads the request \\(it may have already\\): see the run with \`jobsmanager runs show ${id}\` once the database answers\\n$`,
      ),
    );
    assertEquals(await requested(), `tester@${Deno.hostname()}`);
  },
);
