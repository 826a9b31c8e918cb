/**
 * Runs whose jm_runs row went away under them (jm_runs emptied, its ids
 * starting over), in-process with a fake clock, on every backend: one that
 * started under a provisional id during an outage, and one still going at
 * a stop. Each keeps its end, written as a new row, and the row that took
 * its id keeps what it says.
 */
import { assert, assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase } from "./helpers.ts";
import { cuttable, DaemonHarness, describeRun, NODE_ID, T0 } from "./daemon_harness.ts";

const at = (s: number) => T0 + s * 1000;
/** The harness's jobsmanager.shutdown_timeout and kill_grace, in ms. */
const SHUTDOWN_MS = 25_000;
const KILL_GRACE_MS = 5000;

/** As a DBA would: the rows gone and the ids starting over. */
async function emptyRuns(h: DaemonHarness, backend: string): Promise<void> {
  if (backend === "mysql") await h.sql("TRUNCATE jm_runs");
  else {
    await h.sql("DELETE FROM jm_runs");
    await h.sql("DELETE FROM sqlite_sequence WHERE name = 'jm_runs'");
  }
}

/** The clock moved a second at a time until the service has found the database back `times` times. */
async function backAgain(h: DaemonHarness, times: number): Promise<void> {
  await h.until(async () => {
    if (h.count(/^the database is back/) >= times) return true;
    await h.clock.advance(1000);
    return false;
  }, `the database to be back (${times} times)`);
}

const goneNote = (id: number) =>
  `written again: its row, run ${id}, was gone when it ended (jm_runs emptied or restored from a backup while it ran)`;

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: a run started under a provisional id, its row emptied away, whose id a fire written after an outage gets: that row keeps what it says, its end is a new row`, async () => {
    const db = await freshDatabase(backend);
    const link = { down: false };
    await using h = await DaemonHarness.create(db, { store: cuttable(db, link) });
    await h.job("slow", { schedule: { second: "5" } });
    await h.job("tick", { schedule: { second: "30" } });
    await h.start();
    // slow starts while the database is away: under a provisional id, its row written once back.
    link.down = true;
    await h.clock.set(at(5));
    const slow = await h.started("slow", at(5));
    assertEquals(slow.runId, null, "a run without a row yet has no id");
    await h.until(() => h.line(/^the database is unreachable/), "the outage to be seen");
    link.down = false;
    await backAgain(h, 1);
    const was = await h.run("slow", at(5), "running");
    // Away again, jm_runs emptied meanwhile: tick's fire waits with the backlog.
    link.down = true;
    await emptyRuns(h, backend);
    await h.clock.set(at(30));
    const tick = await h.started("tick", at(30));
    tick.finish({ stdout: "tick's output" });
    link.down = false;
    await backAgain(h, 2);
    const written = await h.run("tick", at(30), "success");
    assertEquals(written.id, was.id, "the fire written late got slow's id");
    // Named by the id its row had, not by the provisional one it started under.
    await h.until(
      () =>
        h.line(
          new RegExp(
            `^run ${was.id} of job slow still runs here, but the database gave its id to a new run of job tick`,
          ),
        ),
      "the service to see slow's id taken",
    );
    slow.finish({ stdout: "slow's output", exitCode: 0 });
    await h.stop();
    await h.stopped();
    assertEquals(
      describeRun(await h.run("tick", at(30), "success")),
      describeRun(written),
      "tick's row as it was written",
    );
    assertEquals((await h.run("tick", at(30), "success")).stdout, "tick's output");
    const anew = await h.run("slow", at(5), "success");
    assertEquals(
      [anew.stdout, anew.started_at, anew.node_id, anew.note],
      ["slow's output", was.started_at, NODE_ID, goneNote(was.id)],
      describeRun(anew),
    );
    assert(anew.id !== was.id, describeRun(anew));
  });

  Deno.test(`daemon[${backend}]: a run whose id jm_runs gave to another, still running at a stop, is recorded interrupted in a new row`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("slow", { schedule: { second: "5" } });
    await h.job("tick", { schedule: { second: "6" } });
    await h.start();
    await h.clock.set(at(5));
    const slow = await h.started("slow", at(5));
    // A process that ignores SIGTERM and holds its output open: it outlives the stop.
    slow.ignoresInterrupt = true;
    const was = await h.run("slow", at(5), "running");
    await emptyRuns(h, backend);
    await h.clock.set(at(6));
    (await h.started("tick", at(6))).finish();
    const tick = await h.run("tick", at(6), "success");
    assertEquals(tick.id, was.id, "the new run got the old one's id");
    assert(
      h.line(/^run \d+ of job slow still runs here, but the database gave its id/),
      h.lines.join("\n"),
    );
    const stoppedAt = await h.stop();
    await h.clock.set(stoppedAt + SHUTDOWN_MS);
    await h.until(() => slow.interrupted, "the run to be interrupted");
    await h.clock.set(stoppedAt + SHUTDOWN_MS + KILL_GRACE_MS + 1000);
    await h.stopped();
    const anew = await h.run("slow", at(5), "interrupted", "lost");
    assertEquals(
      [anew.status, anew.started_at, anew.finished_at, anew.node_id, anew.note],
      [
        "interrupted",
        was.started_at,
        stoppedAt + SHUTDOWN_MS + KILL_GRACE_MS + 1000,
        NODE_ID,
        `killed: the service was shutting down; its output was not read to the end; ${
          goneNote(was.id)
        }`,
      ],
      describeRun(anew),
    );
    assert(anew.id !== was.id, describeRun(anew));
    assertEquals(describeRun(await h.run("tick", at(6), "success")), describeRun(tick));
    assert(
      h.line(
        new RegExp(
          `^job slow: its run that was run ${was.id} before jm_runs was emptied was still running at the stop; it is recorded interrupted in a new row`,
        ),
      ),
      h.lines.join("\n"),
    );
  });
}
