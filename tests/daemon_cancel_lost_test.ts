/**
 * A cancel asked of a run while its node was paused, which another node
 * then declared dead (marking the run `lost`): once the node runs again and
 * finds it was declared dead, it ends the run it still holds, recorded
 * `cancelled`, as any cancel (atk: the run went on to its end, `success`
 * over `lost`, and `runs cancel --wait` got no answer). A `lost` row of
 * this node it does not hold, with a cancel asked, is left as it is.
 * In-process, fake clock, both backends.
 */
import { assert, assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase, rawQuery } from "./helpers.ts";
import { DaemonHarness, describeRun, storeWith, T0 } from "./daemon_harness.ts";
import { cancelRun } from "../src/app/runs.ts";

const at = (s: number) => T0 + s * 1000;
const ASKED = "ops@box";

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: a run cancelled, then marked lost by a node that declared this one dead, is ended once this node finds it was`, async () => {
    const db = await freshDatabase(backend);
    // Paused (SIGSTOP), the node reads nothing: its polls wait till it resumes.
    let paused: PromiseWithResolvers<void> | null = null;
    // The runs whose start (`running`, its start time) the node has written.
    const startsWritten = new Set<number>();
    await using h = await DaemonHarness.create(db, {
      store: storeWith(db, {
        updateRuns: (target) => async (updates, node) => {
          const missing = await target.updateRuns(updates, node);
          for (const { id, update } of updates) {
            if (update.status === "running") startsWritten.add(id);
          }
          return missing;
        },
        pollState: (target) => async (...args) => {
          for (;;) {
            const before = paused;
            await before?.promise;
            const state = await target.pollState(...args);
            // Read as the pause began (a poll a write of this test woke), it may have seen
            // what the pause hides: read again once resumed.
            if (paused === before) return state;
          }
        },
      }),
    });
    // Once a minute: no other fire comes while the node looks.
    await h.job("long", { schedule: { second: "1" } });
    await h.start();
    await h.clock.set(at(1));
    const run = await h.started("long", at(1));
    const row = await h.run("long", at(1), "running");
    // Written after the declaration, the start would make the row `running` again.
    await h.until(() => startsWritten.has(row.id), "the run's start to be written");
    // A lost row of this node's earlier death, its cancel asked, that nothing here holds.
    const [old] = await h.store.claimRuns([{
      job_id: "gone",
      scheduled_at: T0 - 3_600_000,
      started_at: T0 - 3_600_000,
      status: "running",
      trigger: "schedule",
      node_id: h.nodeId,
    }]);
    await h.sql(
      "UPDATE jm_runs SET status = 'lost', finished_at = ?, note = 'lost long ago', cancel_requested_at = ?, cancel_requested_by = ? WHERE id = ?",
      [T0 - 3_000_000, T0 - 3_000_000, ASKED, old],
    );
    // Asked while the node is paused, and then declared dead by another node, as its look
    // does: its running runs are marked lost.
    paused = Promise.withResolvers();
    const asked = await cancelRun(h.store, row.id, { by: ASKED, now: at(1) + 500 });
    assertEquals(asked.outcome, "requested");
    const [beat] = await rawQuery(db, "SELECT db_heartbeat_at FROM jm_nodes WHERE id = ?", [
      h.nodeId,
    ]);
    const declared = await h.store.declareDead(h.nodeId, Number(beat.db_heartbeat_at), "other");
    assertEquals(declared?.runIds, [row.id]);
    assertEquals((await h.store.getRun(row.id))?.status, "lost");
    paused.resolve();
    // It runs on: at its next look (a heartbeat, 5 s, alone) it finds it was declared dead, and
    // its next poll ends the run.
    await h.until(async () => {
      if (!run.interrupted && h.clock.now() < at(30)) await h.clock.advance(1000);
      return run.interrupted;
    }, "the run marked lost, whose cancel was asked, to be ended within 30 s of the fake clock");
    const done = await h.run("long", at(1), "cancelled");
    assertEquals(done.note, `cancelled by ${ASKED} at ${new Date(at(1) + 500).toISOString()}`);
    assert(h.line(/^this node was declared dead by node other at /), await h.describe());
    // The row it does not hold stays as it was: no answer written over it.
    const left = (await h.store.getRun(old!))!;
    assertEquals([left.status, left.note], ["lost", "lost long ago"], describeRun(left));
  });
}
