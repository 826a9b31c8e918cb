/**
 * A stale service as `/api/v1/status` says it (the dashboard's services
 * table shows it: browser_glance_test.ts), in `jobsmanager status`'s words (src/app/status.ts): whether its
 * process still runs on the server's host (not killed: hung, suspended, or
 * held by a database that refuses writes, and a restart loses the run
 * records it holds), or is not known to (see its log, restart it), as of
 * a process that took its pid after it died. One whose process was
 * killed and not reaped yet (a zombie) runs nothing: it is dead.
 */
import { assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase, serviceRow } from "./helpers.ts";
import { startApi } from "./http_harness.ts";
import { zombie } from "./zombie.ts";
import { hereSpace } from "../src/daemon/presence.ts";
import { processStart } from "../src/daemon/processes.ts";
import type { Store } from "../src/store/store.ts";

const HEARTBEAT_MS = 2000;

/**
 * `id`'s row, its last heartbeat 4 intervals old by the database's clock;
 * `pid` of this host; started now (after `pid`'s process, as a service
 * writes its row), or `startedAt`; its process's start since boot
 * `processStart`, or none (a release before schema version 19).
 */
async function staleNode(
  store: Store,
  id: string,
  pid: number,
  here: boolean,
  startedAt = Date.now(),
  processStart: number | null = null,
): Promise<void> {
  const databaseNow = await store.databaseNow();
  await store.saveNode({
    ...serviceRow(id),
    host: Deno.hostname(),
    pid,
    started_at: startedAt,
    process_start: processStart,
    ...(here ? hereSpace() : {}),
    db_heartbeat_at: databaseNow - 4 * HEARTBEAT_MS,
    heartbeat_ms: HEARTBEAT_MS,
  });
}

/** What `jobsmanager status` says of a stale service whose process `pid` still runs here. */
function stillRunsNote(pid: number): string {
  return `stopped sending heartbeats, but its process still runs on this host: its log says why (a database that refuses writes, such as a full disk, is said there and at /readyz; a suspended process says nothing: kill -CONT ${pid}); a restart loses the run records it holds unwritten: fix the cause, and it writes them and beats again by itself`;
}

const SILENT_NOTE =
  "stopped sending heartbeats without stopping (hung, suspended, or killed): see its log, and restart it (`systemctl restart jobsmanager` where systemd runs it)";

/** A process of this host that runs: the service, beating no more. */
function sleeper(): Deno.ChildProcess & AsyncDisposable {
  const child = new Deno.Command("sleep", { args: ["300"], stdout: "null", stderr: "null" })
    .spawn();
  return Object.assign(child, {
    async [Symbol.asyncDispose]() {
      child.kill();
      await child.status;
    },
  });
}

for (const backend of BACKENDS) {
  Deno.test(`api (${backend}): /status says of a stale service whether its process still runs on this host, as \`status\` does`, async () => {
    await using db = await freshDatabase(backend);
    await using api = await startApi(db);
    await using child = sleeper();
    await staleNode(api.store, "hung", child.pid, true);
    // Of another pid namespace (or an older release's row), its pid says nothing here.
    await staleNode(api.store, "elsewhere", child.pid, false);
    // Started an hour before the process with its pid: killed, and its pid taken since.
    await staleNode(api.store, "reused", child.pid, true, Date.now() - 3_600_000);
    // The same, but its row names the start since boot of the process with its pid: it is that
    // process, whose wall clock was stepped forward an hour since it started.
    await staleNode(
      api.store,
      "stepped",
      child.pid,
      true,
      Date.now() - 3_600_000,
      processStart(child.pid),
    );
    const status = await api.call("GET", "/api/v1/status");
    const services = (status.body as { services: Record<string, unknown>[] }).services;
    assertEquals(
      services.map((n) => [n.id, n.state, n.still_runs, n.note]).sort(),
      [
        ["elsewhere", "stale", false, SILENT_NOTE],
        ["hung", "stale", true, stillRunsNote(child.pid)],
        ["reused", "stale", false, SILENT_NOTE],
        ["stepped", "stale", true, stillRunsNote(child.pid)],
      ],
    );
  });
}

Deno.test("api: a stale service whose process was killed and is not reaped yet (a zombie) is dead, its pid not running, as `status` says", async () => {
  await using db = await freshDatabase("sqlite");
  await using api = await startApi(db);
  await using killed = await zombie();
  // Its row written after its process started, as a service writes it.
  await staleNode(api.store, "killed", killed.pid, true);
  const status = await api.call("GET", "/api/v1/status");
  const services = (status.body as { services: Record<string, unknown>[] }).services;
  assertEquals(
    services.map((n) => [n.id, n.state, n.gone, n.still_runs, n.still_runs_unconfirmed, n.note]),
    [["killed", "dead", true, false, false, null]],
  );
});
