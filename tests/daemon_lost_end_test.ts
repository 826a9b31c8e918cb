/**
 * A run whose node was declared dead while it ran (paused: SIGSTOP), its
 * row marked `lost` by the node that declared it, which retried it and
 * started its follow-ups, ended during the pause: its node, resumed, saw
 * the end before its look found it was declared dead, wrote the end over
 * `lost` and retried and followed the run a second time (a second attempt
 * 2, a second follow-up; checked by hand with two `serve` on MariaDB). Its
 * end is recorded as it ended, its note starting with the lost note, and
 * nothing follows it there: written at once, or from the backlog once the
 * database is back. The declaring node follows such a run all the same,
 * whenever it reads it. In-process, fake clock, both backends.
 */
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { BACKENDS, freshDatabase, rawQuery, type TestDatabase } from "./helpers.ts";
import { DaemonHarness, describeRun, storeWith, T0 } from "./daemon_harness.ts";
import { node as nodeRow } from "./store_contract.ts";
import { OVER_LOST } from "../src/store/lost_ends.ts";

const at = (s: number) => T0 + s * 1000;

/**
 * A node that may be paused (SIGSTOP): while `paused`, its polls and its
 * looks at jm_nodes wait till it resumes (the first look after it finds it
 * was declared dead); while `away`, its next write of runs fails as with
 * the database gone; while `down`, every call but the reading of jobs does
 * (`failedWrites` counts its writes of runs that failed so). `startsWritten`:
 * the runs whose start it has written.
 */
function pausable(db: TestDatabase) {
  const state = {
    paused: null as PromiseWithResolvers<void> | null,
    away: false,
    down: false,
    failedWrites: 0,
    startsWritten: new Set<number>(),
  };
  const held = <A extends unknown[], R>(call: (...args: A) => Promise<R>) =>
  async (
    ...args: A
  ): Promise<R> => {
    for (;;) {
      const before = state.paused;
      await before?.promise;
      const answer = await call(...args);
      // Read as the pause began, it may have seen what the pause hides: read again.
      if (state.paused === before) return answer;
    }
  };
  const open = storeWith(db, {
    updateRuns: (target) => async (updates, nodeId, foundLost) => {
      if (state.away) {
        state.away = false;
        throw new Error("connect ECONNREFUSED 127.0.0.1:3306");
      }
      const missing = await target.updateRuns(updates, nodeId, foundLost);
      for (const { id, update } of updates) {
        if (update.status === "running") state.startsWritten.add(id);
      }
      return missing;
    },
    pollState: (target) => held((...args) => target.pollState(...args)),
    nodesAndNow: (target) => held(() => target.nodesAndNow()),
  });
  return {
    state,
    store: () =>
      new Proxy(open(), {
        get(target, key) {
          const value = Reflect.get(target, key, target);
          if (typeof value !== "function") return value;
          if (key === "close" || key === "jobsInChunks") return value.bind(target);
          return (...args: unknown[]) => {
            if (!state.down) return value.apply(target, args);
            if (key === "updateRuns") state.failedWrites++;
            return Promise.reject(new Error("connect ECONNREFUSED 127.0.0.1:3306"));
          };
        },
      }),
  };
}

/** Another node declares `h`'s dead, as its look does: the runs it ran are marked lost. */
async function declaredDeadByOther(h: DaemonHarness, db: TestDatabase): Promise<number[]> {
  const [beat] = await rawQuery(db, "SELECT db_heartbeat_at FROM jm_nodes WHERE id = ?", [
    h.nodeId,
  ]);
  const declared = await h.store.declareDead(h.nodeId, Number(beat.db_heartbeat_at), "other");
  return [...declared!.runIds].sort((x, y) => x - y);
}

/**
 * Job p (retried once) and fp (after p:always) on a pausable node; p's run
 * fired at `at(1)`, its start written, the node paused and declared dead
 * by another: the run, still going here, and its row (now `lost`).
 */
async function lostWhilePaused(db: TestDatabase) {
  const node = pausable(db);
  const h = await DaemonHarness.create(db, { store: node.store });
  try {
    await h.job("p", { schedule: { second: "1", minute: "0" }, retries: "1" });
    await h.job("fp", { after: "p:always" });
    await h.start();
    await h.clock.set(at(1));
    const run = await h.started("p", at(1));
    const row = await h.run("p", at(1), "running");
    await h.until(() => node.state.startsWritten.has(row.id), "the run's start to be written");
    node.state.paused = Promise.withResolvers();
    assertEquals(await declaredDeadByOther(h, db), [row.id]);
    assertEquals((await h.store.getRun(row.id))?.status, "lost");
    return { h, node, run, row };
  } catch (error) {
    await h[Symbol.asyncDispose]();
    throw error;
  }
}

/** Resume `node`, and move the clock until it finds it was declared dead. */
async function resumed(h: DaemonHarness, node: ReturnType<typeof pausable>): Promise<void> {
  node.state.paused!.resolve();
  await h.until(async () => {
    const line = h.line(/^this node was declared dead by node other/);
    if (!line && h.clock.now() < at(60)) await h.clock.advance(1000);
    return line;
  }, "the node to find it was declared dead, within 60 s of the fake clock");
}

/** The row of run `id` once it reads `failed`, its end recorded over `lost`. */
async function endedOverLost(h: DaemonHarness, id: number) {
  const ended = await h.until(async () => {
    const run = await h.store.getRun(id);
    return run?.status === "failed" ? run : null;
  }, `run ${id} to be recorded failed`);
  assertEquals(ended.exit_code, 1, describeRun(ended));
  assert(ended.note?.startsWith(OVER_LOST), describeRun(ended));
  assertStringIncludes(ended.note!, "declared dead at");
  return ended;
}

/** Once `h` stopped, which waits for what the record leads to: it queued nothing after run `id`. */
async function followedNothing(h: DaemonHarness, id: number) {
  await h.stop();
  await h.stopped();
  assertEquals((await h.runs("p")).map((r) => r.id), [id], "a retry queued here");
  assertEquals(await h.runs("fp"), [], "a follow-up queued here");
  assert(h.line(/its row was marked lost by the node that declared this one dead/), "said");
}

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: a run marked lost that ended during its node's pause, its end seen before the node's look, is recorded as it ended and followed there no more`, async () => {
    const db = await freshDatabase(backend);
    const paused = await lostWhilePaused(db);
    await using h = paused.h;
    const { node, run, row } = paused;
    // Ended while paused; seen at the resume, before the look at jm_nodes.
    run.finish({ status: "failed", exitCode: 1 });
    await endedOverLost(h, row.id);
    await resumed(h, node);
    await followedNothing(h, row.id);
  });

  Deno.test(`daemon[${backend}]: a run marked lost that ended during its node's pause, its end written from the backlog, is followed there no more`, async () => {
    const db = await freshDatabase(backend);
    const paused = await lostWhilePaused(db);
    await using h = paused.h;
    const { node, run, row } = paused;
    // Its end's write fails as with the database gone: it waits in the backlog, then is written.
    node.state.away = true;
    run.finish({ status: "failed", exitCode: 1 });
    await h.databaseBack();
    assert(!node.state.away, "the end's write did not fail");
    await endedOverLost(h, row.id);
    await resumed(h, node);
    await followedNothing(h, row.id);
  });

  Deno.test(`daemon[${backend}]: a run marked lost that ended while the database was away, its node stopped before the database came back, is followed there no more`, async () => {
    // At the stop, an end still waiting for the database was followed as not lost: its retry and
    // follow-up, written with the backlog, a second chain beside the declaring node's (atk226).
    const db = await freshDatabase(backend);
    const paused = await lostWhilePaused(db);
    await using h = paused.h;
    const { node, run, row } = paused;
    // Resumed with the database away: its look fails, and never finds it was declared dead.
    node.state.down = true;
    node.state.paused!.resolve();
    run.finish({ status: "failed", exitCode: 1 });
    await h.until(() => node.state.failedWrites > 0, "the end's write to fail");
    const stoppedAt = await h.stop();
    // Back within the stop's time: the close writes the backlog.
    node.state.down = false;
    await h.stepUntil(() => h.ended, "the daemon to stop", { to: stoppedAt + 60_000 });
    await endedOverLost(h, row.id);
    assertEquals((await h.runs("p")).map((r) => r.id), [row.id], "a retry queued here");
    assertEquals(await h.runs("fp"), [], "a follow-up queued here");
    assert(h.line(/its row was marked lost by the node that declared this one dead/), "said");
  });

  Deno.test(`daemon[${backend}]: a run that ended while the database was away, its node stopped before the database came back, is retried once its end is written`, async () => {
    // The control: an end not marked lost, parked at the stop, is followed by the close.
    const db = await freshDatabase(backend);
    const node = pausable(db);
    await using h = await DaemonHarness.create(db, { store: node.store });
    await h.job("p", { schedule: { second: "1", minute: "0" }, retries: "1" });
    await h.job("fp", { after: "p:always" });
    await h.start();
    await h.clock.set(at(1));
    const run = await h.started("p", at(1));
    const row = await h.run("p", at(1), "running");
    await h.until(() => node.state.startsWritten.has(row.id), "the run's start to be written");
    node.state.down = true;
    run.finish({ status: "failed", exitCode: 1 });
    await h.until(() => node.state.failedWrites > 0, "the end's write to fail");
    const stoppedAt = await h.stop();
    node.state.down = false;
    await h.stepUntil(() => h.ended, "the daemon to stop", { to: stoppedAt + 60_000 });
    const runs = await h.runs("p");
    assertEquals(runs.map((r) => [r.status, r.trigger, r.attempt]), [
      ["failed", "schedule", 1],
      ["queued", "retry", 2],
    ], runs.map(describeRun).join("\n"));
    assertEquals(runs[1].first_run_id, row.id);
  });

  Deno.test(`daemon[${backend}]: the node that declares another dead retries and follows a lost run whose end that node wrote over lost before it read it`, async () => {
    // That node, back, follows nothing it finds marked lost: left to neither, none followed it.
    const db = await freshDatabase(backend);
    const ghost = { run: 0 };
    await using h = await DaemonHarness.create(db, {
      store: storeWith(db, {
        getRun: (target) => async (id) => {
          if (id === ghost.run) {
            ghost.run = 0;
            await target.updateRuns([{
              id,
              update: { status: "failed", exit_code: 1, finished_at: T0 - 1000, note: null },
            }], "ghost");
          }
          return await target.getRun(id);
        },
      }),
    });
    await h.job("p", { schedule: { second: "5", minute: "0" }, retries: "1" });
    await h.job("fp", { after: "p:always" });
    await h.store.saveNode(nodeRow("ghost", { db_heartbeat_at: 1000, heartbeat_ms: 1000 }));
    const [lostId] = await h.store.claimRuns([
      { job_id: "p", scheduled_at: T0 - 60_000, status: "running", trigger: "schedule" },
    ]);
    await h.store.updateRun(lostId!, { node_id: "ghost" });
    ghost.run = lostId!;
    await h.start();
    const retry = await h.until(
      async () => (await h.runs("p")).find((r) => r.trigger === "retry"),
      "a retry of the lost run",
    );
    assertEquals(ghost.run, 0, "the declaring node read the run after its end was written");
    assertEquals([retry.attempt, retry.first_run_id], [2, lostId]);
    const ended = await h.store.getRun(lostId!);
    assertEquals(ended?.status, "failed", describeRun(ended!));
    assert(ended?.note?.startsWith(OVER_LOST), describeRun(ended!));
    await h.stop();
    await h.stopped();
    assertEquals((await h.runs("p")).filter((r) => r.trigger === "retry").length, 1);
  });

  Deno.test(`daemon[${backend}]: the node that declares another dead follows a lost run of a job disabled while it ran, as that job's ends are followed`, async () => {
    // Only enabled jobs are loaded: the run was passed by, and its node, back, follows nothing it
    // finds marked lost: none followed it (atk226).
    const db = await freshDatabase(backend);
    await using h = await DaemonHarness.create(db);
    await h.job("p", { schedule: { second: "5", minute: "0" }, retries: "1", enabled: false });
    await h.job("fp", { after: "p:always" });
    await h.store.saveNode(nodeRow("ghost", { db_heartbeat_at: 1000, heartbeat_ms: 1000 }));
    const [lostId] = await h.store.claimRuns([
      { job_id: "p", scheduled_at: T0 - 60_000, status: "running", trigger: "schedule" },
    ]);
    await h.store.updateRun(lostId!, { node_id: "ghost" });
    await h.start();
    // Its retry queued, skipped when due (the job is disabled); then its follow-up.
    const follow = await h.stepUntil(
      async () => (await h.runs("fp"))[0],
      "a follow-up of the lost run",
      { to: T0 + 600_000 },
    );
    assertEquals((await h.store.getRun(lostId!))?.status, "lost");
    const retry = (await h.runs("p")).find((r) => r.trigger === "retry");
    assertEquals(
      [retry?.status, retry?.first_run_id, retry?.note],
      ["skipped", lostId, "the job was disabled before its retry run started"],
    );
    assertEquals([follow.trigger, follow.parent_run_id], ["after", lostId], describeRun(follow));
  });

  Deno.test(`daemon[${backend}]: the node that declares another dead says a lost run of a job removed while it ran is not followed`, async () => {
    const db = await freshDatabase(backend);
    await using h = await DaemonHarness.create(db);
    await h.job("p", { schedule: { second: "5", minute: "0" } });
    await h.store.saveNode(nodeRow("ghost", { db_heartbeat_at: 1000, heartbeat_ms: 1000 }));
    const [lostId] = await h.store.claimRuns([
      { job_id: "p", scheduled_at: T0 - 60_000, status: "running", trigger: "schedule" },
    ]);
    await h.store.updateRun(lostId!, { node_id: "ghost" });
    await h.removeJob("p");
    await h.start();
    await h.until(
      () => h.line(/^job p run \d+: lost, and its job was removed since: not retried/),
      "the node to say so",
    );
  });

  Deno.test(`daemon[${backend}]: the node that declares another dead follows the attempt before a lost retry whose cancel that node wrote over lost before it read it`, async () => {
    // A cancelled end over lost keeps its own note; its node follows nothing it finds marked lost.
    const db = await freshDatabase(backend);
    const ghost = { run: 0 };
    await using h = await DaemonHarness.create(db, {
      store: storeWith(db, {
        getRun: (target) => async (id) => {
          if (id === ghost.run) {
            ghost.run = 0;
            await target.updateRuns([{
              id,
              update: { status: "cancelled", finished_at: T0 - 1000, note: "cancelled by ops" },
            }], "ghost");
          }
          return await target.getRun(id);
        },
      }),
    });
    await h.job("p", { schedule: { second: "5", minute: "0" }, retries: "1" });
    await h.job("fp", { after: "p:always" });
    await h.store.saveNode(nodeRow("ghost", { db_heartbeat_at: 1000, heartbeat_ms: 1000 }));
    const [first] = await h.store.claimRuns([
      { job_id: "p", scheduled_at: T0 - 120_000, status: "running", trigger: "schedule" },
    ]);
    await h.store.updateRun(first!, {
      status: "failed",
      exit_code: 1,
      finished_at: T0 - 100_000,
      node_id: "ghost",
    });
    const [retry] = await h.store.claimRuns([{
      job_id: "p",
      scheduled_at: T0 - 60_000,
      status: "running",
      trigger: "retry",
      attempt: 2,
      first_run_id: first,
    }]);
    await h.store.updateRun(retry!, {
      node_id: "ghost",
      cancel_requested_at: T0 - 2000,
      cancel_requested_by: "ops",
    });
    ghost.run = retry!;
    await h.start();
    const follow = await h.until(async () => (await h.runs("fp"))[0], "a follow-up of attempt 1");
    assertEquals(ghost.run, 0, "the declaring node read the retry after its cancel was written");
    assertEquals([follow.trigger, follow.parent_run_id], ["after", first], describeRun(follow));
    const cancelled = await h.store.getRun(retry!);
    assertEquals([cancelled?.status, cancelled?.note], ["cancelled", "cancelled by ops"]);
  });
}
