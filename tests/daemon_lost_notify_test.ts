/**
 * The notifications of the runs a killed service left, on every backend,
 * in-process with a fake clock: however many it left, all are read (their
 * oldest too), oldest end first.
 */
import { assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase, serviceRow } from "./helpers.ts";
import { DaemonHarness, NODE_ID, T0 } from "./daemon_harness.ts";
import { appendStdin, hookedWithinAMinute, tempDir } from "./notify_fixtures.ts";

/** More than one page of lost runs (notifier.ts LOST_PAGE) and a bit. */
const LEFT = 1050;

for (const backend of BACKENDS) {
  Deno.test(`notify[${backend}]: a killed service that left more than 1,000 runs notifies its oldest first`, async () => {
    await using dir = await tempDir();
    const events = `${dir.path}/events`;
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    // Held back after the first (notify.min_interval, 300 s): the first sent is the first decided.
    await h.job("flaky", {
      schedule: { second: "1", minute: "0", hour: "0" },
      on_failure: appendStdin(events),
    });
    // The row a service killed with SIGKILL left: its last beat 30 s before the restart.
    await h.store.saveNode({
      ...serviceRow(NODE_ID),
      heartbeat_at: T0 - 30_000,
      db_heartbeat_at: (await h.store.databaseNow()) - 600_000,
      heartbeat_ms: 5000,
    });
    // Its runs, the first ended first (20 s before the last beat), the rest at the last beat.
    const ids = await h.store.claimRuns(
      Array.from({ length: LEFT }, (_, i) => ({
        job_id: "flaky",
        trigger: "schedule" as const,
        node_id: NODE_ID,
        scheduled_at: T0 - 50_000 - LEFT + i,
        started_at: i === 0 ? T0 - 50_000 : T0 - 20_000,
        status: "running" as const,
      })),
    );
    await h.start();
    const [first] = await hookedWithinAMinute(h, events, 1, "the first lost run's hook");
    assertEquals([first.run_id, first.status], [ids[0], "lost"]);
    // The others were decided too: held back, each said.
    await h.until(
      () => h.count(/^job flaky: failure notification held back/) >= LEFT - 1 || null,
      "the other lost runs' notifications to be held back",
    );
  });
}
