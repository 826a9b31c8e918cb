/**
 * A cancel asked of a run while its node was paused, which another node
 * then declared dead (marking the run `lost`): once the node runs again and
 * finds it was declared dead, it ends the run it still holds, recorded
 * `cancelled`, as any cancel (atk: the run went on to its end, `success`
 * over `lost`, and `runs cancel --wait` got no answer). A `lost` row of
 * this node it does not hold, with a cancel asked, is left as it is. So a
 * fire waiting here for a worker, its `queued` row marked lost as well, is
 * recorded `cancelled` and never starts (atk: it started when the worker
 * freed, and only the next ordinary cancel look ended it).
 * In-process, fake clock, both backends.
 */
import { assert, assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase, rawQuery, type TestDatabase } from "./helpers.ts";
import { DaemonHarness, describeRun, storeWith, T0 } from "./daemon_harness.ts";
import { cancelRun } from "../src/app/runs.ts";

const at = (s: number) => T0 + s * 1000;
const ASKED = "ops@box";

/**
 * A node that may be paused (SIGSTOP): while `paused`, its polls wait till
 * it resumes; `startsWritten`: the runs whose start (`running`, its start
 * time) it has written.
 */
function pausable(db: TestDatabase) {
  const node = {
    paused: null as PromiseWithResolvers<void> | null,
    startsWritten: new Set<number>(),
    store: storeWith(db, {
      updateRuns: (target) => async (updates, nodeId) => {
        const missing = await target.updateRuns(updates, nodeId);
        for (const { id, update } of updates) {
          if (update.status === "running") node.startsWritten.add(id);
        }
        return missing;
      },
      pollState: (target) => async (...args) => {
        for (;;) {
          const before = node.paused;
          await before?.promise;
          const state = await target.pollState(...args);
          // Read as the pause began (a poll a write of this test woke), it may have seen
          // what the pause hides: read again once resumed.
          if (node.paused === before) return state;
        }
      },
    }),
  };
  return node;
}

/** Another node declares `h`'s dead, as its look does: the runs it ran or queued are marked lost. */
async function declaredDeadByOther(h: DaemonHarness, db: TestDatabase): Promise<number[]> {
  const [beat] = await rawQuery(db, "SELECT db_heartbeat_at FROM jm_nodes WHERE id = ?", [
    h.nodeId,
  ]);
  const declared = await h.store.declareDead(h.nodeId, Number(beat.db_heartbeat_at), "other");
  return [...declared!.runIds].sort((x, y) => x - y);
}

/**
 * A pausable node with one worker: a fire holding it, its start written,
 * and another waiting for it (`DaemonHarness.oneWaiting`), at `at(1)`.
 */
async function oneWaiting(db: TestDatabase) {
  const node = pausable(db);
  const h = await DaemonHarness.create(db, {
    settings: { "jobsmanager.max_workers": 1, "jobsmanager.misfire_grace_time": 60 },
    store: node.store,
  });
  try {
    await h.job("a", { schedule: { second: "1" } });
    await h.job("b", { schedule: { second: "1" } });
    await h.start();
    await h.clock.set(at(1));
    const { first, queued } = await h.oneWaiting();
    const running = await h.run(first.jobId, at(1), "running");
    await h.until(
      () => node.startsWritten.has(running.id),
      "the running fire's start to be written",
    );
    return { h, node, first, queued, running };
  } catch (error) {
    await h[Symbol.asyncDispose]();
    throw error;
  }
}

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: a run cancelled, then marked lost by a node that declared this one dead, is ended once this node finds it was`, async () => {
    const db = await freshDatabase(backend);
    const node = pausable(db);
    await using h = await DaemonHarness.create(db, { store: node.store });
    // Once a minute: no other fire comes while the node looks.
    await h.job("long", { schedule: { second: "1" } });
    await h.start();
    await h.clock.set(at(1));
    const run = await h.started("long", at(1));
    const row = await h.run("long", at(1), "running");
    // Written after the declaration, the start would make the row `running` again.
    await h.until(() => node.startsWritten.has(row.id), "the run's start to be written");
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
    node.paused = Promise.withResolvers();
    const asked = await cancelRun(h.store, row.id, { by: ASKED, now: at(1) + 500 });
    assertEquals(asked.outcome, "requested");
    assertEquals(await declaredDeadByOther(h, db), [row.id]);
    assertEquals((await h.store.getRun(row.id))?.status, "lost");
    node.paused.resolve();
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

  Deno.test(`daemon[${backend}]: a fire waiting for a worker, cancelled, then marked lost by a node that declared this one dead, never starts`, async () => {
    const db = await freshDatabase(backend);
    const waits = await oneWaiting(db);
    await using h = waits.h;
    const { node, first, queued, running } = waits;
    node.paused = Promise.withResolvers();
    const asked = await cancelRun(h.store, queued.id, { by: ASKED, now: at(1) + 500 });
    assertEquals(asked.outcome, "requested");
    assertEquals(
      await declaredDeadByOther(h, db),
      [running.id, queued.id].sort((x, y) => x - y),
    );
    assertEquals((await h.store.getRun(queued.id))?.status, "lost");
    node.paused.resolve();
    // Its next look finds it was declared dead, and the poll after it ends the waiting fire.
    await h.until(
      async () => {
        const row = await h.store.getRun(queued.id);
        if (row?.status === "cancelled") return true;
        if (h.clock.now() < at(30)) await h.clock.advance(1000);
        return false;
      },
      "the waiting fire marked lost, whose cancel was asked, to be cancelled within 30 s of the fake clock",
    );
    const cancelled = (await h.store.getRun(queued.id))!;
    assertEquals(cancelled.started_at, null, describeRun(cancelled));
    assertEquals(cancelled.note, `cancelled by ${ASKED} at ${new Date(at(1) + 500).toISOString()}`);
    // The worker freed, the cancelled fire does not start.
    first.finish();
    await h.run(first.jobId, at(1), "success");
    assertEquals(h.runner.runs.length, 1, "the cancelled fire started after all");
    assertEquals((await h.store.getRun(queued.id))?.status, "cancelled", await h.describe());
  });

  Deno.test(`daemon[${backend}]: a retry cancelled, then marked lost by a node that declared this one dead, is recorded cancelled; the follow-ups are that node's to start`, async () => {
    // That node starts them as it marks the retry lost (service.ts `lost`): started here as
    // well, they would run twice (atk221).
    const db = await freshDatabase(backend);
    const node = pausable(db);
    await using h = await DaemonHarness.create(db, { store: node.store });
    await h.job("flaky", { cron: "0 12 15 6 *", retries: "1" });
    await h.job("cleanup", { after: "flaky:failure" });
    const [first, retry] = await h.store.claimRuns([
      { job_id: "flaky", scheduled_at: T0 - 120_000, status: "running", trigger: "schedule" },
      { job_id: "flaky", scheduled_at: T0, status: "queued", trigger: "retry", attempt: 2 },
    ]);
    await h.store.updateRun(first!, { status: "failed", finished_at: T0 - 90_000 });
    await h.sql("UPDATE jm_runs SET first_run_id = ? WHERE id = ?", [first, retry]);
    await h.start();
    const run = await h.until(
      () => h.runner.of("flaky").find((r) => r.runId === retry),
      "the retry to start here",
    );
    await h.until(() => node.startsWritten.has(retry!), "the retry's start to be written");
    node.paused = Promise.withResolvers();
    const asked = await cancelRun(h.store, retry!, { by: ASKED, now: T0 + 500 });
    assertEquals(asked.outcome, "requested");
    assertEquals(await declaredDeadByOther(h, db), [retry]);
    node.paused.resolve();
    await h.until(async () => {
      if (!run.interrupted && h.clock.now() < at(30)) await h.clock.advance(1000);
      return run.interrupted;
    }, "the retry marked lost, whose cancel was asked, to be ended within 30 s of the fake clock");
    await h.until(
      async () => (await h.store.getRun(retry!))?.status === "cancelled",
      "the retry to be recorded cancelled",
    );
    // The stop waits for what the record leads to.
    await h.stop();
    assertEquals(await h.runs("cleanup"), [], "follow-ups started here too");
  });

  Deno.test(`daemon[${backend}]: a run marked lost by a node that declared this one dead, no cancel asked, is recorded as it ends here, and nothing follows it here`, async () => {
    // That node retried and followed it; this one, back, did so again (atk223).
    const db = await freshDatabase(backend);
    const node = pausable(db);
    await using h = await DaemonHarness.create(db, { store: node.store });
    await h.job("long", { schedule: { second: "1" }, retries: "1" });
    await h.job("cleanup", { after: "long:always" });
    await h.start();
    await h.clock.set(at(1));
    const run = await h.started("long", at(1));
    const row = await h.run("long", at(1), "running");
    await h.until(() => node.startsWritten.has(row.id), "the run's start to be written");
    node.paused = Promise.withResolvers();
    assertEquals(await declaredDeadByOther(h, db), [row.id]);
    node.paused.resolve();
    await h.until(async () => {
      const line = h.line(/^job long run \d+: marked lost by the node that declared this one dead/);
      if (!line && h.clock.now() < at(30)) await h.clock.advance(1000);
      return line;
    }, "the node to find its run marked lost, within 30 s of the fake clock");
    run.finish({ status: "failed", exitCode: 1 });
    await h.run("long", at(1), "failed");
    // The stop waits for what the record leads to.
    await h.stop();
    assertEquals((await h.runs("long")).map((r) => r.id), [row.id], "a retry queued here");
    assertEquals(await h.runs("cleanup"), [], "a follow-up queued here");
  });

  Deno.test(`daemon[${backend}]: a fire waiting for a worker, marked lost by a node that declared this one dead, no cancel asked, never starts here`, async () => {
    // That node retried it; this one, back, started it when the worker freed (atk223).
    const db = await freshDatabase(backend);
    const waits = await oneWaiting(db);
    await using h = waits.h;
    const { node, first, queued, running } = waits;
    node.paused = Promise.withResolvers();
    assertEquals(
      await declaredDeadByOther(h, db),
      [running.id, queued.id].sort((x, y) => x - y),
    );
    node.paused.resolve();
    await h.until(async () => {
      const line = h.line(/: it waited here for a worker, and was marked lost by the node that/);
      if (!line && h.clock.now() < at(30)) await h.clock.advance(1000);
      return line;
    }, "the waiting fire marked lost to be dropped here, within 30 s of the fake clock");
    first.finish();
    await h.run(first.jobId, at(1), "success");
    assertEquals(h.runner.runs.length, 1, "the fire marked lost started after all");
    assertEquals((await h.store.getRun(queued.id))?.status, "lost", await h.describe());
  });
}
