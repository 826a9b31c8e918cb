/**
 * `jobsmanager serve` follows a system clock stepped while it runs (NTP's
 * first sync, `date -s`, a VM restored): its fires move with the clock.
 * The step is libfaketime's (Debian's faketime package), preloaded into
 * serve alone: its wall clock moves, its monotonic clock does not, as with
 * a real step. Without the library these tests are skipped, with one line.
 */
import { assert, assertEquals } from "./assert.ts";
import { BACKENDS, cli, freshDatabase, MYSQL_URL, waitFor } from "./helpers.ts";
import {
  describeRuns,
  jm,
  ready,
  runs,
  runsDetail,
  Serve,
  sql,
  writeConfig,
} from "./serve_helpers.ts";

const FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
const HAVE_FAKETIME = (() => {
  try {
    return Deno.statSync(FAKETIME).isFile;
  } catch {
    return false;
  }
})();

if (!HAVE_FAKETIME) {
  Deno.test({
    name: "libfaketime not found: clock-step tests skipped (apt-get install -y faketime)",
    ignore: true,
    fn() {},
  });
}

for (const backend of BACKENDS) {
  Deno.test({
    name: `serve[${backend}]: a system clock stepped forward, then back, moves the fires with it`,
    ignore: !HAVE_FAKETIME,
    async fn() {
      await using db = await freshDatabase(backend);
      const offset = `${db.dir}/faketime`;
      await Deno.writeTextFile(offset, "+0\n");
      await jm(db, "job", "add", "tick", "--second", "*", "--command", "true");
      await using serve = new Serve(db, await writeConfig(db), {
        LD_PRELOAD: FAKETIME,
        FAKETIME_TIMESTAMP_FILE: offset,
        FAKETIME_NO_CACHE: "1",
        FAKETIME_DONT_FAKE_MONOTONIC: "1",
      });
      const ranAround = async (at: number) =>
        (await runs(db, "tick")).some((r) =>
          r.status === "success" && Math.abs(r.scheduled_at - at) <= 5_000
        );
      await waitFor(() => ranAround(Date.now()), {
        timeoutMs: 20_000,
        what: "tick to fire on time before the step",
        detail: runsDetail(db, "tick"),
      });

      // Ten minutes ahead: the next fires are ten minutes ahead of this (unstepped) process.
      await Deno.writeTextFile(offset, "+600\n");
      await waitFor(() => ranAround(Date.now() + 600_000), {
        timeoutMs: 20_000,
        what: "tick to fire at the stepped clock's seconds (10 min ahead)",
        detail: runsDetail(db, "tick"),
      });

      // And back: the fires follow the clock back to this process's time.
      await Deno.writeTextFile(offset, "+0\n");
      const back = Date.now();
      await waitFor(
        async () =>
          (await runs(db, "tick")).some((r) =>
            r.status === "success" && r.scheduled_at >= back && r.scheduled_at <= back + 20_000
          ),
        {
          timeoutMs: 20_000,
          what: "tick to fire at the clock's seconds again once it is stepped back",
          detail: runsDetail(db, "tick"),
        },
      );
      const { status } = await serve.terminate();
      assert(status.success, serve.stderr);
    },
  });
}

Deno.test({
  name:
    "serve[mysql]: a node whose clock is stepped back beats on: the other neither declares it dead nor runs its jobs twice",
  ignore: !HAVE_FAKETIME || MYSQL_URL === "",
  async fn() {
    await using db = await freshDatabase("mysql");
    const offset = `${db.dir}/faketime`;
    await Deno.writeTextFile(offset, "+0\n");
    for (let i = 1; i <= 6; i++) {
      await jm(db, "job", "add", `long${i}`, "--second", "*", "--command", "sleep 4");
      await jm(db, "job", "update", `long${i}`, "--max-instances", "1");
    }
    const config = await writeConfig(db, { heartbeat_interval: 1 });
    await using a = new Serve(db, config, {
      JM_NODE_ID: "a",
      LD_PRELOAD: FAKETIME,
      FAKETIME_TIMESTAMP_FILE: offset,
      FAKETIME_NO_CACHE: "1",
      FAKETIME_DONT_FAKE_MONOTONIC: "1",
    });
    await using b = new Serve(db, config, { JM_NODE_ID: "b" });
    await waitFor(async () => {
      const rows = await runs(db);
      return rows.some((r) => r.node_id === "a" && r.status === "running") &&
        rows.some((r) => r.node_id === "b" && r.status === "running");
    }, {
      timeoutMs: 30_000,
      what: "both nodes to run jobs",
      detail: async () => describeRuns(await runs(db)),
    });
    // NTP steps node a's clock back a minute.
    const [{ at: steppedAt }] = await sql(db, "SELECT UNIX_TIMESTAMP(NOW(3)) * 1000 AS at");
    await Deno.writeTextFile(offset, "-60\n");
    // Four heartbeats of a by the database's clock: b would have declared it dead after three.
    const beats = async () =>
      (await sql(db, "SELECT db_heartbeat_at, declared_dead_at FROM jm_nodes WHERE id = 'a'"))[0];
    await waitFor(async () => Number((await beats()).db_heartbeat_at) >= Number(steppedAt) + 4000, {
      timeoutMs: 20_000,
      what: "node a to beat on after its clock was stepped back",
      detail: async () => `${JSON.stringify(await beats())}\n${a.stderr.slice(-2000)}`,
    });
    assertEquals((await beats()).declared_dead_at, null, b.stderr.slice(-2000));
    const rows = await runs(db);
    assertEquals(rows.filter((r) => r.status === "lost"), [], describeRuns(rows));
    for (let i = 1; i <= 6; i++) {
      const running = rows.filter((r) => r.job_id === `long${i}` && r.status === "running");
      assert(running.length <= 1, `long${i} runs twice at once:\n${describeRuns(rows)}`);
    }
  },
});

for (const backend of BACKENDS) {
  Deno.test({
    name:
      `serve[${backend}]: a service hung after its clock was stepped forward still runs, as status --json says, not "restart it"`,
    ignore: !HAVE_FAKETIME,
    async fn() {
      await using db = await freshDatabase(backend);
      const offset = `${db.dir}/faketime`;
      // An hour behind at its start: the row's started_at is an hour before its process's start.
      await Deno.writeTextFile(offset, "-3600\n");
      await jm(db, "job", "add", "daily", "--cron", "0 3 * * *", "--command", "true");
      await using serve = new Serve(db, await writeConfig(db, { heartbeat_interval: 1 }), {
        LD_PRELOAD: FAKETIME,
        FAKETIME_TIMESTAMP_FILE: offset,
        FAKETIME_NO_CACHE: "1",
        FAKETIME_DONT_FAKE_MONOTONIC: "1",
      });
      const row = async () =>
        (await sql(db, "SELECT started_at, heartbeat_at, process_start FROM jm_nodes"))[0];
      await ready(db, serve, 20_000);
      // NTP steps its clock forward to the right time; once it has beaten by it, it hangs.
      const stepped = Date.now();
      await Deno.writeTextFile(offset, "+0\n");
      await waitFor(async () => Number((await row()).heartbeat_at) >= stepped, {
        timeoutMs: 20_000,
        what: "serve to beat by its stepped clock",
        detail: async () => `${JSON.stringify(await row())}\n${serve.stderr.slice(-2000)}`,
      });
      serve.signal("SIGSTOP");
      try {
        const said = async () => {
          const out = await cli(["--database", db.url, "status", "--json"], { cwd: db.dir });
          return JSON.parse(out.stdout).services[0];
        };
        await waitFor(async () => (await said()).state === "stale", {
          timeoutMs: 30_000,
          what: "the hung service to go stale",
          detail: async () => JSON.stringify(await said()),
        });
        const node = await said();
        assert(
          Date.parse(node.started_at) <= Date.now() - 3_000_000,
          `its row's started_at is by the clock an hour behind: ${JSON.stringify(node)}`,
        );
        assertEquals(
          [node.still_runs, node.still_runs_unconfirmed, node.note],
          [
            true,
            false,
            `stopped sending heartbeats, but its process still runs on this host: its log says why (a database that refuses writes, such as a full disk, is said there and at /readyz; a suspended process says nothing: kill -CONT ${serve.pid}); a restart loses the run records it holds unwritten: fix the cause, and it writes them and beats again by itself`,
          ],
          JSON.stringify(node),
        );
      } finally {
        serve.signal("SIGCONT");
      }
      const { status } = await serve.terminate();
      assert(status.success, serve.stderr);
    },
  });
}
