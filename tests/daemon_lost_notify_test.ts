/**
 * The notifications of the runs a killed service left, on every backend,
 * in-process with a fake clock: however many it left, all are read (their
 * oldest too), oldest end first; those held back by notify.min_interval are
 * each claimed, but logged as one line and a count.
 */
import { assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase, rawQuery, serviceRow } from "./helpers.ts";
import { DaemonHarness, NODE_ID, T0 } from "./daemon_harness.ts";
import { appendStdin, hookedWithinAMinute, jsonLines, tempDir } from "./notify_fixtures.ts";

/** More than one page of lost runs (notifier.ts LOST_PAGE) and a bit. */
const LEFT = 1050;

for (const backend of BACKENDS) {
  Deno.test(`notify[${backend}]: a killed service that left more than 1,000 runs notifies its oldest first`, async () => {
    await using dir = await tempDir();
    const events = `${dir.path}/events`;
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    // Held back after the first (notify.min_interval, 300 s): the first sent is the first decided.
    // No fire of its own in the 400 s the test goes through: on a busy machine one decided late
    // was missed, and its notification, held too, went out last (run 1051 where 1050 was due).
    await h.job("flaky", {
      schedule: { second: "1", minute: "0", hour: "0", month: "6" },
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
    // The others were decided too: held back, each claimed in the database...
    const state = async () =>
      (await rawQuery(h.db, "SELECT held_count FROM jm_notify_state WHERE job_id = 'flaky'"))[0];
    // A claim each, one after another: on MariaDB on a busy machine, tens a second.
    await h.until(
      async () => Number((await state())?.held_count) === LEFT - 1,
      "the other lost runs' notifications to be held back",
      180_000,
    );
    const claims = await rawQuery(
      h.db,
      "SELECT COUNT(*) AS n FROM jm_notifications WHERE job_id = 'flaky'",
    );
    assertEquals(Number(claims[0].n), LEFT, "a claim of each lost run's notification");
    // ...but the log says the first, not a line each.
    const heldLine = /^job flaky: failure notification held back \(notify\.min_interval\)$/;
    assertEquals(h.count(heldLine), 1, h.lines.slice(0, 20).join("\n"));
    // The hold ends once notify.min_interval (300 s) has passed: the last held goes out,
    // summarising the others, and one line counts those the log did not say.
    const [, last] = await h.stepUntil(
      async () => {
        const got = await jsonLines(events);
        return got.length >= 2 ? got : null;
      },
      "the held-back notification once notify.min_interval has passed",
      { to: T0 + 400_000, step: 10_000, timeoutMs: 60_000 },
    );
    assertEquals([last.run_id, last.held_back?.count], [ids[LEFT - 1], LEFT - 2]);
    const counted = `job flaky: ${
      LEFT - 2
    } more notifications were held back (notify.min_interval) after the one logged (${
      LEFT - 2
    } failure), counted rather than logged each; the one going out now summarises them`;
    await h.until(() => h.line(new RegExp(`^${RegExp.escape(counted)}$`)), "the count to be said");
    assertEquals(h.count(heldLine), 1);
  });
}
