/**
 * Concurrency limits, in-process with a fake clock, on every backend:
 * max_instances skips a fire while that many runs of the job hold slots;
 * max_workers queues fires, starts them as workers free up, and records
 * those that waited past their grace (never under 250 ms) as missed.
 */
import { assert, assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase } from "./helpers.ts";
import { cuttable, DaemonHarness, describeRun, T0 } from "./daemon_harness.ts";
import { node } from "./store_contract.ts";
import { cancelRun } from "../src/app/runs.ts";

const at = (s: number) => T0 + s * 1000;

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: max_instances 1 skips fires while a run runs`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("slow", { schedule: { second: "*" } });
    await h.start();
    await h.clock.set(at(1));
    const first = await h.started("slow", at(1));
    await h.clock.set(at(2));
    const skipped = await h.run("slow", at(2), "skipped");
    assertEquals(
      [skipped.note, skipped.finished_at, skipped.started_at],
      ["max_instances (1) runs were still running", at(2), null],
    );
    first.finish();
    await h.run("slow", at(1), "success");
    await h.clock.set(at(3));
    await h.started("slow", at(3));
    await h.run("slow", at(3), "running");
    assertEquals(h.runner.runs.length, 2);
  });

  Deno.test(`daemon[${backend}]: a catch-up without coalesce runs its late fires one after another, as APScheduler does`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "jobsmanager.misfire_grace_time": 60, "jobsmanager.coalesce": false },
    });
    await h.job("tick", { schedule: { second: "*/10" } });
    await h.start();
    // The service stalls 30 s: the fires of 10, 20 and 30 s are due at once, within their grace.
    await h.clock.set(at(30) + 100);
    const first = await h.started("tick", at(10));
    const queued = await Promise.all([20, 30].map((s) => h.run("tick", at(s), "queued")));
    assertEquals(
      queued.map((r) => r.note),
      [20, 30].map(() =>
        `coalesce is off: it runs after the fire of ${
          new Date(at(10)).toISOString()
        } ends (max_instances 1), if within its grace then`
      ),
    );
    assertEquals(h.runner.runs.length, 1, "one at a time: max_instances 1");
    first.finish();
    const second = await h.started("tick", at(20));
    assertEquals(h.runner.runs.length, 2);
    second.finish();
    (await h.started("tick", at(30))).finish();
    for (const s of [10, 20, 30]) await h.run("tick", at(s), "success");
  });

  Deno.test(`daemon[${backend}]: a fire queued behind its job's earlier fire is missed at the end of its grace; a stop ends the others`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "jobsmanager.misfire_grace_time": 25, "jobsmanager.coalesce": false },
    });
    await h.job("tick", { schedule: { second: "*/10" } });
    await h.start();
    await h.clock.set(at(30) + 100);
    const first = await h.started("tick", at(10));
    await h.run("tick", at(30), "queued");
    // The fire of 20 s is past its grace at 45 s; the one of 30 s not yet.
    await h.clock.set(at(46));
    const missed = await h.run("tick", at(20), "missed");
    assertEquals(
      missed.note,
      "the fire before it still ran 26000 ms after its fire time, past its 25 s of grace (coalesce off: a job's late fires run one after another)",
    );
    assertEquals((await h.run("tick", at(30), "queued")).started_at, null);
    await h.stop();
    first.finish();
    assertEquals(
      (await h.run("tick", at(30), "interrupted")).note,
      "the service stopped before the fire before it ended",
    );
    assertEquals(h.runner.runs.length, 1, "nothing else started");
  });

  Deno.test(`daemon[${backend}]: a fire queued behind starts when the one before it leaves its slot any way, cancelled too`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: {
        "jobsmanager.max_workers": 1,
        "jobsmanager.misfire_grace_time": 60,
        "jobsmanager.coalesce": false,
      },
    });
    await h.job("hog", { schedule: { second: "5" } });
    await h.job("tick", { schedule: { second: "10,20,30" } });
    await h.start();
    await h.clock.set(at(5));
    const hog = await h.started("hog", at(5));
    // The catch-up's first fire waits for the worker, the others behind it.
    await h.clock.set(at(30) + 100);
    const head = await h.run("tick", at(10), "queued");
    await h.run("tick", at(30), "queued");
    await cancelRun(h.store, head.id, { by: "test", now: at(30) + 200 });
    await h.clock.set(at(31));
    await h.run("tick", at(10), "cancelled");
    hog.finish();
    (await h.started("tick", at(20))).finish();
    (await h.started("tick", at(30))).finish();
  });

  Deno.test(`daemon[${backend}]: a fire queued behind waits its turn for a worker after other jobs' fires`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: {
        "jobsmanager.max_workers": 1,
        "jobsmanager.misfire_grace_time": 60,
        "jobsmanager.coalesce": false,
      },
    });
    await h.job("tick", { schedule: { second: "10,20" } });
    await h.job("other", { schedule: { second: "1,20" } });
    await h.start();
    await h.clock.set(at(1));
    (await h.started("other", at(1))).finish();
    await h.run("other", at(1), "success");
    // A catch-up: tick, which waited longest, gets the worker; its second
    // fire waits behind its first, and other's fire waits for the worker.
    await h.clock.set(at(20) + 100);
    const first = await h.started("tick", at(10));
    await h.run("tick", at(20), "queued");
    await h.run("other", at(20), "queued");
    first.finish();
    const other = await h.started("other", at(20));
    assertEquals(
      h.runner.of("tick").length,
      1,
      "tick's second fire took the worker before other's first",
    );
    other.finish();
    (await h.started("tick", at(20))).finish();
    await h.run("tick", at(20), "success");
  });

  Deno.test(`daemon[${backend}]: fires queued behind a job removed meanwhile are skipped, not run as it was`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "jobsmanager.misfire_grace_time": 60, "jobsmanager.coalesce": false },
    });
    await h.job("tick", { schedule: { second: "10,20,30" } });
    await h.start();
    await h.clock.set(at(30) + 100);
    const first = await h.started("tick", at(10));
    await h.run("tick", at(20), "queued");
    const removed = await h.removeJob("tick");
    await h.clock.set(at(32));
    await h.until(
      async () => (await h.markers()).find((m) => m.id === removed)?.updated,
      "the removal to be applied",
    );
    const skipped = await Promise.all([20, 30].map((s) => h.run("tick", at(s), "skipped")));
    assertEquals(
      skipped.map((r) => r.note),
      [20, 30].map(() => "its job was removed, disabled or made invalid before its turn"),
    );
    first.finish();
    await h.run("tick", at(10), "success");
    assertEquals(h.runner.of("tick").length, 1, "nothing of the removed job started after");
  });

  Deno.test(`daemon[${backend}]: a fire waiting for a worker runs its job as a reload left it, not as it was armed`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "jobsmanager.max_workers": 1 },
    });
    await h.job("long", { schedule: { second: "1" } });
    await h.job("q", {
      schedule: { second: "1" },
      command: "echo OLD",
      timeout: "60",
      misfire_grace_time: "30",
    });
    await h.start();
    // An instant alone: both fires get a shell; long takes the worker, q's waits with its shell.
    await h.clock.set(at(1) - 500);
    const armed = await h.until(
      () => h.runner.armed.find((a) => a.spec.env.JM_JOB_ID === "q"),
      "a shell armed for q",
    );
    await h.clock.set(at(1));
    const long = await h.started("long", at(1));
    await h.run("q", at(1), "queued");
    assert(!armed.released && !armed.disarmed, `q's fire waits with its shell: ${armed}`);
    await h.clock.set(at(2));
    const changed = await h.job("q", {
      command: "echo NEW",
      timeout: "7",
      misfire_grace_time: "3",
    });
    const updatedAt = (await h.store.getJob("q"))!.updated_at;
    await h.clock.set(at(3));
    await h.until(
      async () => (await h.markers()).find((m) => m.id === changed)?.updated,
      "the change to be applied",
    );
    assert(armed.disarmed, `the shell armed for the old command is disarmed: ${armed}`);
    long.finish();
    const q = await h.started("q", at(1));
    assertEquals(
      [q.spec.command, q.spec.timeoutMs, q.armed],
      ["echo NEW", 7000, false],
      "the waiting fire runs the job as it now is, in a shell of its own",
    );
    assertEquals((await h.run("q", at(1), "running")).job_updated_at, updatedAt);
  });

  Deno.test(`daemon[${backend}]: fires waiting for a worker beyond a max_instances a reload lowered are skipped, the latest first`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "jobsmanager.max_workers": 1 },
    });
    await h.job("long", { schedule: { second: "1" } });
    await h.job("q", { schedule: { second: "1,2" }, max_instances: "2", misfire_grace_time: "60" });
    await h.start();
    await h.clock.set(at(1));
    const long = await h.started("long", at(1));
    await h.run("q", at(1), "queued");
    await h.clock.set(at(2));
    await h.run("q", at(2), "queued");
    const changed = await h.job("q", {
      schedule: { second: "1,2" },
      max_instances: "1",
      misfire_grace_time: "60",
    });
    await h.clock.set(at(3));
    await h.until(
      async () => (await h.markers()).find((m) => m.id === changed)?.updated,
      "the change to be applied",
    );
    const skipped = await h.run("q", at(2), "skipped");
    assertEquals(
      skipped.note,
      "max_instances (1) runs were still running: a reload lowered it while this fire waited for a worker",
    );
    long.finish();
    const first = await h.started("q", at(1));
    assertEquals(h.runner.of("q").length, 1, `one q at once: ${h.runner.of("q")}`);
    first.finish();
    await h.run("q", at(1), "success");
    assertEquals(h.runner.of("q").length, 1, "the skipped fire never starts");
  });

  Deno.test(`daemon[${backend}]: a fire waiting for a worker is missed by the grace its job now has`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "jobsmanager.max_workers": 1 },
    });
    await h.job("long", { schedule: { second: "1" } });
    await h.job("q", { schedule: { second: "2" }, misfire_grace_time: "30" });
    await h.start();
    await h.clock.set(at(1));
    await h.started("long", at(1));
    await h.clock.set(at(2));
    await h.run("q", at(2), "queued");
    const changed = await h.job("q", { misfire_grace_time: "3" });
    await h.clock.set(at(4));
    await h.until(
      async () => (await h.markers()).find((m) => m.id === changed)?.updated,
      "the change to be applied",
    );
    await h.clock.set(at(5) + 1);
    const missed = await h.run("q", at(2), "missed");
    assertEquals(
      missed.note,
      "still waiting for a free worker (max_workers 1) 3001 ms after its fire time, past its 3 s of grace",
    );
  });

  for (const change of ["disabled", "removed"] as const) {
    Deno.test(`daemon[${backend}]: a fire waiting for a worker of a job ${change} meanwhile is skipped, not run`, async () => {
      await using h = await DaemonHarness.create(await freshDatabase(backend), {
        settings: { "jobsmanager.max_workers": 1 },
      });
      await h.job("long", { schedule: { second: "1" } });
      await h.job("q", { schedule: { second: "1" }, misfire_grace_time: "30" });
      await h.start();
      await h.clock.set(at(1) - 500);
      const armed = await h.until(
        () => h.runner.armed.find((a) => a.spec.env.JM_JOB_ID === "q"),
        "a shell armed for q",
      );
      await h.clock.set(at(1));
      const long = await h.started("long", at(1));
      await h.run("q", at(1), "queued");
      await h.clock.set(at(2));
      const marker = change === "removed"
        ? await h.removeJob("q")
        : await h.job("q", { enabled: false });
      await h.clock.set(at(3));
      const skipped = await h.run("q", at(1), "skipped");
      assertEquals(
        [skipped.note, skipped.finished_at, skipped.started_at],
        ["its job was removed, disabled or made invalid before its turn", at(3), null],
      );
      await h.until(
        async () => (await h.markers()).find((m) => m.id === marker)?.updated,
        "the change to be applied",
      );
      assert(armed.disarmed, `its shell is disarmed: ${armed}`);
      long.finish();
      await h.run("long", at(1), "success");
      // The worker it waited for is free: nothing of q takes it.
      await h.clock.set(at(10));
      assertEquals(h.runner.of("q").length, 0, h.runner.runs.join("; "));
      assertEquals(h.daemon.state.queued, 0);
    });
  }

  Deno.test(`daemon[${backend}]: jm_runs emptied while a run runs: the new run that gets its id keeps its row, the old one frees its slot`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("slow", { schedule: { second: "5" } });
    await h.job("tick", { schedule: { second: "6" } });
    await h.start();
    await h.clock.set(at(5));
    const slow = await h.started("slow", at(5));
    const [was] = await h.runs("slow");
    // As a DBA would, the ids starting over.
    await emptyRuns(h, backend);
    await h.clock.set(at(6));
    (await h.started("tick", at(6))).finish();
    const tick = await h.run("tick", at(6), "success");
    assertEquals(tick.id, was.id, "the new run got the old one's id");
    assert(
      h.line(
        /^run \d+ of job slow still runs here, but the database gave its id to a new run of job tick/,
      ),
    );
    slow.finish();
    await h.until(
      () => h.line(/^job slow: its run that was run \d+ before jm_runs was emptied ended success/),
      "the old run's end to be logged",
    );
    // Its end was not written over the new run's row, but as a new one; and its slot is free:
    // the next fire runs.
    assertEquals(describeRun(await h.run("tick", at(6), "success")), describeRun(tick));
    const anew = await h.run("slow", at(5), "success");
    assert(
      anew.id !== was.id && anew.note?.startsWith("written again: its row, run"),
      describeRun(anew),
    );
    await h.clock.set(at(65));
    await h.started("slow", at(65));
  });

  Deno.test(`daemon[${backend}]: a run's row deleted while it runs: its end is written as a new row, saying so; a run ending with it keeps its own`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("slow", { schedule: { second: "5" } });
    await h.job("other", { schedule: { second: "5" } });
    await h.start();
    await h.clock.set(at(5));
    const slow = await h.started("slow", at(5));
    const other = await h.started("other", at(5));
    const [was] = await h.runs("slow");
    // A DBA's DELETE, or a restored dump that did not have it yet.
    await h.sql("DELETE FROM jm_runs WHERE id = ?", [was.id]);
    // Both end in one turn: one batch of ends, one row of it gone.
    slow.finish({ status: "failed", stdout: "slow's output", exitCode: 3 });
    other.finish({ stdout: "other's output" });
    const anew = await h.run("slow", at(5), "failed");
    assertEquals(
      [anew.stdout, anew.exit_code, anew.started_at, anew.node_id, anew.trigger, anew.note],
      [
        "slow's output",
        3,
        was.started_at,
        "test-node",
        "schedule",
        `written again: its row, run ${was.id}, was gone when it ended (jm_runs emptied or restored from a backup while it ran)`,
      ],
    );
    assert(anew.id !== was.id, describeRun(anew));
    assertEquals((await h.run("other", at(5), "success")).stdout, "other's output");
    // The WARN follows the new row's insert.
    await h.until(
      () =>
        h.line(
          new RegExp(
            `^run ${was.id} of job slow ended failed, but its row in jm_runs was gone \\(jm_runs emptied or restored from a backup while it ran\\): its end is written as a new row, run ${anew.id}$`,
          ),
        ),
      "the WARN naming the new row",
    );
  });

  Deno.test(`daemon[${backend}]: jm_runs emptied while a run runs, and its id taken by another node's run: its end is not written over that row, but as a new one`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("slow", { schedule: { second: "5" } });
    await h.job("tick", { schedule: { second: "6" } });
    await h.start();
    await h.clock.set(at(5));
    const slow = await h.started("slow", at(5));
    const [was] = await h.runs("slow");
    // A dump from before restored, or the ids starting over, under two services.
    await emptyRuns(h, backend);
    const [theirs] = await h.store.claimRuns([{
      job_id: "tick",
      scheduled_at: at(6),
      started_at: at(6),
      status: "running",
      trigger: "schedule",
      node_id: "other",
    }]);
    assertEquals(theirs, was.id, "the other node's run got the old one's id");
    const before = describeRun((await h.runs("tick"))[0]);
    slow.finish({ stdout: "slow's output" });
    // A stop writes every record this node holds.
    await h.stop();
    await h.stopped();
    const rows = await h.runs();
    assertEquals(rows[0] && describeRun(rows[0]), before, "the other node's row as it was claimed");
    // Its end is written as a new row, not lost.
    assertEquals(
      rows.slice(1).map((r) => [r.job_id, r.status, r.stdout, r.node_id, r.note]),
      [[
        "slow",
        "success",
        "slow's output",
        "test-node",
        `written again: its row, run ${was.id}, was gone when it ended (jm_runs emptied or restored from a backup while it ran)`,
      ]],
      [...rows.map(describeRun), ...h.lines].join("\n"),
    );
    assert(
      h.line(
        new RegExp(
          `^run ${was.id} of job slow ended success, but its row in jm_runs was gone .*: its end is written as a new row, run ${
            rows[1].id
          }$`,
        ),
      ),
      h.lines.join("\n"),
    );
  });

  Deno.test(`daemon[${backend}]: jm_runs emptied while a run runs, and its id given to a follow-up row here: that row keeps what it says`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("first", { schedule: { second: "4" } });
    await h.job("slow", { schedule: { second: "5" } });
    await h.job("trig", { schedule: { second: "6" } });
    await h.job("dis", { after: "trig:always", enabled: false });
    await h.start();
    await h.clock.set(at(4));
    (await h.started("first", at(4))).finish();
    await h.run("first", at(4), "success");
    await h.clock.set(at(5));
    const slow = await h.started("slow", at(5));
    const [was] = await h.runs("slow");
    await emptyRuns(h, backend);
    await h.clock.set(at(6));
    (await h.started("trig", at(6))).finish();
    await h.run("trig", at(6), "success");
    // The ids start over: trig's run gets first's, the disabled follower's turn (recorded
    // skipped) the next: slow's.
    const [skipped] = await h.until(async () => {
      const rows = await h.runs("dis");
      return rows.length > 0 ? rows : null;
    }, "the follower's skipped row");
    assertEquals(skipped.id, was.id, "the follower's row got slow's id");
    // The row is there before its claim's answer is: slow ends once the service knows.
    await h.until(
      () =>
        h.line(
          /^run \d+ of job slow still runs here, but the database gave its id to a new run of job dis/,
        ),
      "the service to see slow's id taken",
    );
    slow.finish({ stdout: "slow's output" });
    await h.stop();
    await h.stopped();
    assertEquals(
      describeRun((await h.runs("dis"))[0]),
      describeRun(skipped),
      "the follower's row as it was written",
    );
  });

  Deno.test(`daemon[${backend}]: jm_runs emptied during an outage: a fire written once the database is back, given the id of a run still going here, keeps its row`, async () => {
    const db = await freshDatabase(backend);
    const link = { down: false };
    await using h = await DaemonHarness.create(db, { store: cuttable(db, link) });
    await h.job("slow", { schedule: { second: "5" } });
    await h.job("tick", { schedule: { second: "6" } });
    await h.start();
    await h.clock.set(at(5));
    const slow = await h.started("slow", at(5));
    const [was] = await h.runs("slow");
    link.down = true;
    await emptyRuns(h, backend);
    // The fire finds the database gone: it runs under a provisional id, its row written later.
    await h.clock.set(at(6));
    const tick = await h.started("tick", at(6));
    assertEquals(tick.spec.env.JM_RUN_ID, "", "a run without a row yet has no id");
    await h.until(() => h.line(/^the database is unreachable/), "the outage to be seen");
    tick.finish({ stdout: "tick's output" });
    link.down = false;
    await h.databaseBack();
    const written = await h.run("tick", at(6), "success");
    assertEquals(written.id, was.id, "the fire written late got slow's id");
    await h.until(
      () =>
        h.line(
          /^run \d+ of job slow still runs here, but the database gave its id to a new run of job tick/,
        ),
      "the service to see slow's id taken",
    );
    slow.finish({ stdout: "slow's output" });
    await h.stop();
    await h.stopped();
    assertEquals(describeRun(await h.run("tick", at(6), "success")), describeRun(written));
    const anew = await h.run("slow", at(5), "success");
    assertEquals(anew.stdout, "slow's output");
    assert(anew.id !== was.id, describeRun(anew));
  });

  Deno.test(`daemon[${backend}]: a run of the job on another node holds its max_instances here till it ends`, async () => {
    // The clock steps on once a fire's row is written, maybe before its claim answered.
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      claimTimeoutMs: 600_000,
    });
    await h.job("slow", { schedule: { second: "*" } });
    // The job moved here (this node started, or another left) while that node ran it.
    await h.store.saveNode(node("other"));
    const [there] = await h.store.claimRuns([
      {
        job_id: "slow",
        scheduled_at: T0,
        status: "running",
        trigger: "schedule",
        node_id: "other",
      },
    ]);
    await h.start();
    await h.clock.set(at(1));
    assertEquals(
      (await h.run("slow", at(1), "skipped")).note,
      "max_instances (1) runs were still running (1 of them on node other)",
    );
    await h.store.updateRun(there!, { status: "success", finished_at: at(1) });
    // A poll (every reload_interval) sees it ended, and lets its slot go.
    let s = 2;
    for (; s < 10; s++) {
      await h.clock.set(at(s));
      const row = await h.run("slow", at(s), "skipped", "running");
      if (row.status === "running") break;
    }
    assert(s < 10, "a fire ran once the run elsewhere had ended");
    await h.started("slow", at(s));
    assertEquals(h.runner.runs.length, 1);
  });

  Deno.test(`daemon[${backend}]: a skip held by runs elsewhere counts them and names their nodes`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      claimTimeoutMs: 600_000,
    });
    await h.job("slow", { schedule: { second: "*" }, max_instances: "2" });
    await h.store.saveNode(node("other"));
    await h.store.saveNode(node("third"));
    const elsewhere = (node_id: string, status: "running" | "queued", at: number) => ({
      job_id: "slow",
      scheduled_at: at,
      status,
      trigger: "schedule" as const,
      node_id,
    });
    // One runs on `other` and the fire after it waits its turn there (coalesce is off); one runs on `third`.
    const [, , onThird] = await h.store.claimRuns([
      elsewhere("other", "running", T0),
      elsewhere("other", "queued", T0 + 1),
      elsewhere("third", "running", T0 + 2),
    ]);
    await h.start();
    await h.clock.set(at(1));
    assertEquals(
      (await h.run("slow", at(1), "skipped")).note,
      "max_instances (2) runs were still running (3 of them on nodes other, third)",
    );
    await h.store.updateRun(onThird!, { status: "success", finished_at: at(1) });
    // A poll (every reload_interval) sees it ended.
    const one = "max_instances (2) runs were still running (2 of them on node other)";
    let s = 2;
    for (; s < 10; s++) {
      await h.clock.set(at(s));
      if ((await h.run("slow", at(s), "skipped")).note === one) break;
    }
    assert(s < 10, "the run on third that ended still held a slot");
  });

  Deno.test(`daemon[${backend}]: a lone service counts a running job run --here against max_instances till it ends`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      claimTimeoutMs: 600_000,
    });
    await h.job("slow", { schedule: { second: "*" } });
    await h.start();
    // Started after the service: its first poll after sees it.
    const [here] = await h.store.claimRuns([
      {
        job_id: "slow",
        scheduled_at: T0,
        started_at: T0,
        status: "running",
        trigger: "manual",
        node_id: "cli@elsewhere",
      },
    ]);
    // A poll (every reload_interval) finds it; the fires after it are skipped.
    let s = 1;
    for (; s < 10; s++) {
      await h.clock.set(at(s));
      const row = await h.run("slow", at(s), "skipped", "running", "success", "missed");
      if (row.status === "skipped") break;
      h.runner.endAll();
    }
    assert(s < 10, "no fire was skipped for the run of job run --here");
    assertEquals(
      (await h.run("slow", at(s), "skipped")).note,
      "max_instances (1) runs were still running (1 of them on node cli@elsewhere)",
    );
    await h.store.updateRun(here!, { status: "success", finished_at: at(s) });
    let t = s + 1;
    for (; t < s + 10; t++) {
      await h.clock.set(at(t));
      const row = await h.run("slow", at(t), "skipped", "running", "success", "missed");
      if (row.status === "running" || row.status === "success") break;
    }
    assert(t < s + 10, "a fire ran once the run of job run --here had ended");
  });

  Deno.test(`daemon[${backend}]: a fire another node claimed first: its run holds the job's max_instances here`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      claimTimeoutMs: 600_000,
    });
    await h.job("slow", { schedule: { second: "*" } });
    await h.store.saveNode(node("other"));
    await h.start();
    // The job's owner changed and the other node, still firing it, claimed the fire at 1 s first.
    await h.store.claimRuns([
      {
        job_id: "slow",
        scheduled_at: at(1),
        status: "running",
        trigger: "schedule",
        node_id: "other",
      },
    ]);
    // The next fire is decided once the claim at 1 s has answered, lost.
    await h.clock.set(at(1));
    await h.clock.set(at(2));
    assertEquals(
      (await h.run("slow", at(2), "skipped")).note,
      "max_instances (1) runs were still running (1 of them on node other)",
    );
    assertEquals(h.runner.runs.length, 0);
  });

  Deno.test(`daemon[${backend}]: max_instances 2 lets two runs overlap, not three`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("slow", { schedule: { second: "*" }, max_instances: "2" });
    await h.start();
    await h.clock.set(at(1));
    const first = await h.started("slow", at(1));
    await h.clock.set(at(2));
    await h.started("slow", at(2));
    await h.clock.set(at(3));
    assertEquals(
      (await h.run("slow", at(3), "skipped")).note,
      "max_instances (2) runs were still running",
    );
    first.finish();
    await h.run("slow", at(1), "success");
    await h.clock.set(at(4));
    await h.started("slow", at(4));
    assertEquals(h.runner.running.length, 2);
  });

  Deno.test(`daemon[${backend}]: max_workers 1 queues fires; those queued past their grace are missed`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "jobsmanager.max_workers": 1 },
    });
    await h.job("a", { schedule: { second: "*" } });
    await h.job("b", { schedule: { second: "*" }, misfire_grace_time: "5" });
    await h.job("c", { schedule: { second: "*" } });
    const oneAtATime = () => assert(h.runner.running.length <= 1, `${h.runner.runs.join("; ")}`);
    await h.start();
    await h.clock.set(at(1));
    const a1 = await h.started("a", at(1));
    for (const job of ["b", "c"]) {
      const queued = await h.run(job, at(1), "queued");
      assertEquals(queued.started_at, null);
    }
    oneAtATime();
    // a ends 200 ms in: b, first in the queue, takes the worker.
    await h.clock.set(at(1) + 200);
    a1.finish();
    const b1 = await h.started("b", at(1));
    assertEquals((await h.run("b", at(1), "running")).started_at, at(1) + 200);
    oneAtATime();
    // At 2 s c's fire of 1 s is still within its 1 s grace and holds c's
    // slot: c's fire of 2 s is skipped, as is b's (b runs); a's queues.
    await h.clock.set(at(2));
    await h.run("b", at(2), "skipped");
    await h.run("c", at(2), "skipped");
    await h.run("a", at(2), "queued");
    await h.run("c", at(1), "queued");
    // A millisecond later its grace is over: it is missed, though no worker freed.
    await h.clock.set(at(2) + 1);
    const missed = await h.run("c", at(1), "missed");
    assertEquals(
      [missed.note, missed.finished_at],
      [
        "still waiting for a free worker (max_workers 1) 1001 ms after its fire time, past its 1 s of grace",
        at(2) + 1,
      ],
    );
    oneAtATime();
    // b ends at 2.5 s: a's fire of 2 s takes the worker, 0.5 s late.
    await h.clock.set(at(2) + 500);
    b1.finish();
    const a2 = await h.started("a", at(2));
    assertEquals((await h.run("a", at(2), "running")).started_at, at(2) + 500);
    oneAtATime();
    // At 3 s c's slot is free: its fire queues, ahead of b's (c has not run
    // yet), and takes the worker when a ends; a's is skipped (a runs).
    await h.clock.set(at(3));
    await h.run("a", at(3), "skipped");
    await h.run("c", at(3), "queued");
    await h.run("b", at(3), "queued");
    a2.finish();
    assertEquals((await h.run("c", at(3), "running")).started_at, at(3));
    await h.run("b", at(3), "queued");
    oneAtATime();
    const rows = await h.runs();
    assertEquals(
      rows.filter((r) => r.status === "queued" && r.scheduled_at < at(3)),
      [],
      rows.map(describeRun).join("\n"),
    );
  });

  Deno.test(`daemon[${backend}]: a queued fire of a job with grace 0 still gets 250 ms`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "jobsmanager.max_workers": 1 },
    });
    await h.job("first", { schedule: { second: "*" } });
    await h.job("strict", { schedule: { second: "*" }, misfire_grace_time: "0" });
    await h.start();
    await h.clock.set(at(1));
    const first = await h.started("first", at(1));
    await h.run("strict", at(1), "queued");
    await h.clock.set(at(1) + 250);
    first.finish();
    assertEquals((await h.run("strict", at(1), "running")).started_at, at(1) + 250);
  });
}

/** Empty jm_runs under the daemon, its ids starting over, as a DBA's TRUNCATE does. */
async function emptyRuns(h: DaemonHarness, backend: string): Promise<void> {
  if (backend === "mysql") await h.sql("TRUNCATE jm_runs");
  else {
    await h.sql("DELETE FROM jm_runs");
    await h.sql("DELETE FROM sqlite_sequence WHERE name = 'jm_runs'");
  }
}
