/**
 * Armed shells, in-process with a fake clock and the fake runner, on every
 * backend: the runs of an instant are armed half a second before it and
 * released at it, with the marker their claim records; a shell whose fire
 * does not run here (a changed job, a busy job, a fire claimed already, a
 * stop) is disarmed, never released.
 */
import { assert, assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase } from "./helpers.ts";
import { DaemonHarness, NODE_ID, T0 } from "./daemon_harness.ts";
import { node } from "./store_contract.ts";
import { assignJobs } from "../src/domain/share.ts";

const at = (s: number) => T0 + s * 1000;

/** Wait for the shell armed for `jobId`'s fire at `fire`. */
function armed(h: DaemonHarness, jobId: string, fire: number) {
  return h.until(
    () => h.runner.armed.find((a) => a.spec.env.JM_JOB_ID === jobId && a.at === fire),
    `a shell armed for ${jobId} at T0+${fire - T0}; armed: ${h.runner.armed.join(", ")}`,
  );
}

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: the runs of an instant are armed before it and released at it`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("tick", { schedule: { second: "*" }, env: ["WHO=tick"] });
    await h.job("later", { schedule: { second: "*/5" } });
    await h.start();
    await h.clock.set(at(1) - 500);
    const shell = await armed(h, "tick", at(1));
    // Armed for its fire only, with the job's environment and no run id yet; nothing runs.
    assertEquals(h.runner.armed.map(String), ["armed tick @1000"]);
    assertEquals(h.line(/open-file limit/), undefined);
    assertEquals([shell.spec.env.WHO, shell.spec.env.JM_RUN_ID], ["tick", ""]);
    assertEquals(h.runner.runs.length, 0);

    await h.clock.set(at(1));
    const run = await h.started("tick", at(1));
    assert(run.armed, `the run was started anew, not released: ${h.runner.armed.join(", ")}`);
    assert(shell.released, String(shell));
    const row = await h.run("tick", at(1), "running");
    // The claim recorded the armed shell's marker: a successor finds its processes by it.
    assertEquals([row.marker, row.node_id, String(row.id)], [
      shell.spec.marker,
      NODE_ID,
      run.spec.env.JM_RUN_ID,
    ]);
    run.finish();
    await h.run("tick", at(1), "success");

    // Each instant arms its own: the next second's, then the fifth's with both jobs.
    h.runner.endAll();
    for (let s = 2; s <= 4; s++) {
      await h.clock.set(at(s) - 500);
      await armed(h, "tick", at(s));
      await h.clock.set(at(s));
      await h.run("tick", at(s), "success");
    }
    await h.clock.set(at(5) - 500);
    await armed(h, "later", at(5));
    assertEquals(
      h.runner.armed.filter((a) => a.at === at(5)).map((a) => a.spec.env.JM_JOB_ID).sort(),
      ["later", "tick"],
    );
  });

  Deno.test(`daemon[${backend}]: an instant's starts are sent on at once, once every one of them is handed out`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    for (const id of ["a", "b", "c"]) await h.job(id, { schedule: { second: "*/5" } });
    await h.start();
    await h.clock.set(at(5));
    for (const id of ["a", "b", "c"]) await h.started(id, at(5));
    assertEquals(h.runner.runs.length, 3);
    assertEquals(h.runner.sent.at(-1), 3, `runs handed out at each send: ${h.runner.sent}`);
  });

  Deno.test(`daemon[${backend}]: a burst's shells are armed earlier, by how many there are`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    for (let i = 0; i < 200; i++) await h.job(`burst-${i}`, { schedule: { second: "1" } });
    await h.start();
    // 200 shells take about 600 ms to start: armed then, not 500 ms before.
    await h.clock.set(at(1) - 800);
    await h.until(
      () => h.clock.wakeUps.includes(at(1) - 600),
      `the service to sleep until T0+400; wake-ups: ${h.clock.wakeUps.map((t) => t - T0)}`,
    );
    assertEquals(h.runner.armed.length, 0);
    await h.clock.set(at(1) - 600);
    await h.until(
      () => h.runner.armed.length === 200,
      `200 armed shells; armed: ${h.runner.armed.length}`,
    );
    h.runner.endAll();
    await h.clock.set(at(1));
    await h.until(
      () => h.runner.runs.length === 200 && h.runner.runs.every((r) => r.armed),
      `200 runs released from armed shells; ${h.runner.runs.filter((r) => r.armed).length} were`,
    );
  });

  Deno.test(`daemon[${backend}]: where a spawn takes longer, a burst's shells are armed earlier still, at most 5 s before`, async () => {
    // 2.5 times the spawn for each shell: 200 of 6 ms take 3 s; of 40 ms, 20 s, so 5 s.
    for (const [spawnCost, lead] of [[6, 3000], [40, 5000]]) {
      await using h = await DaemonHarness.create(await freshDatabase(backend), { spawnCost });
      for (let i = 0; i < 200; i++) await h.job(`burst-${i}`, { schedule: { second: "10" } });
      await h.start();
      await h.clock.set(at(10) - lead - 200);
      await h.until(
        () => h.clock.wakeUps.includes(at(10) - lead),
        `a spawn of ${spawnCost} ms: the service to sleep until ${lead} ms before the burst; wake-ups: ${
          h.clock.wakeUps.map((t) => t - at(10))
        }`,
      );
      assertEquals(h.runner.armed.length, 0);
      await h.clock.set(at(10) - lead);
      await h.until(
        () => h.runner.armed.length === 200,
        `200 armed shells; armed: ${h.runner.armed.length}`,
      );
      h.runner.endAll();
    }
  });

  Deno.test(`daemon[${backend}]: every-second jobs whose shells take long are armed from 200 ms after the fires before`, async () => {
    // 100 shells of 2.5 × 4 ms: a second ahead, but the runs of the fires before end first.
    await using h = await DaemonHarness.create(await freshDatabase(backend), { spawnCost: 4 });
    for (let i = 0; i < 100; i++) await h.job(`tick-${i}`, { schedule: { second: "*" } });
    h.runner.endAll();
    await h.start();
    await h.clock.set(at(1));
    await h.until(
      async () => (await h.runs()).filter((r) => r.status === "success").length === 100,
      "the 100 runs at T0+1 s to succeed",
    );
    await h.until(
      () => h.clock.wakeUps.includes(at(2) - 800),
      `the service to sleep until 800 ms before T0+2 s; wake-ups: ${
        h.clock.wakeUps.map((t) => t - at(2))
      }`,
    );
    assertEquals(h.runner.armed.filter((a) => a.at === at(2)).length, 0);
    await h.clock.set(at(2) - 800);
    await h.until(
      () => h.runner.armed.filter((a) => a.at === at(2)).length === 100,
      `100 shells armed for T0+2 s; armed: ${h.runner.armed.filter((a) => a.at === at(2)).length}`,
    );
  });

  Deno.test(`daemon[${backend}]: a job whose run still ran when the next instant was armed gets its shell when the run ends`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("slow", { schedule: { second: "*" } });
    await h.job("quick", { schedule: { second: "*" } });
    await h.start();
    await h.clock.set(at(1));
    const slow = await h.started("slow", at(1));
    (await h.started("quick", at(1))).finish();
    await h.run("quick", at(1), "success");
    await h.clock.set(at(2) - 500);
    await armed(h, "quick", at(2));
    assertEquals(h.runner.armed.filter((a) => a.at === at(2)).map(String), ["armed quick @2000"]);
    slow.finish();
    const shell = await armed(h, "slow", at(2));
    await h.clock.set(at(2));
    const run = await h.started("slow", at(2));
    assert(run.armed && shell.released, `released from the shell armed late: ${shell}`);
  });

  Deno.test(`daemon[${backend}]: where fires will wait for a worker, a run's end arms nothing: the one that ran last is not put first`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "jobsmanager.max_workers": 1 },
    });
    for (const id of ["a", "b", "c"]) await h.job(id, { schedule: { second: "*" } });
    await h.start();
    // One worker: at 1 s a runs, then b, then c, which still runs when 2 s is armed.
    await h.clock.set(at(1));
    for (const [id, next] of [["a", "b"], ["b", "c"]]) {
      await h.clock.set(at(1) + (id === "a" ? 100 : 200));
      (await h.started(id, at(1))).finish();
      await h.started(next, at(1));
    }
    await h.clock.set(at(2) - 500);
    await h.until(
      () => h.clock.wakeUps.includes(at(2)),
      `the service to sleep until T0+2 s; wake-ups: ${h.clock.wakeUps.map((t) => t - at(2))}`,
    );
    await h.clock.set(at(2) - 400);
    h.runner.of("c")[0].finish();
    await h.run("c", at(1), "success");
    assertEquals(h.runner.armed.filter((a) => a.at === at(2)).map(String), []);
    // At 2 s a, which waited longest, starts; b and c wait, b first.
    await h.clock.set(at(2));
    const a2 = await h.started("a", at(2));
    a2.finish();
    await h.started("b", at(2));
    await h.run("c", at(2), "queued");
  });

  Deno.test(`daemon[${backend}]: a burst's fires that wait for a worker are armed too, four shells a worker, and released as one frees up; the next second arms only what can start`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "jobsmanager.max_workers": 2 },
    });
    const jobs = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    for (const id of jobs) await h.job(id, { schedule: { second: "*" } });
    await h.start();
    // The first instant follows no other: four shells a worker, six of them to wait.
    await h.clock.set(at(1) - 500);
    await h.until(() => h.runner.armed.length === 8, `8 armed: ${h.runner.armed.join(", ")}`);
    await h.clock.set(at(1));
    // Two at a time, each pair as the pair before ends; the last pair anew.
    for (let started = 2; started <= 10; started += 2) {
      await h.until(
        () => h.runner.runs.length === started && h.runner.running.length === 2,
        `${started} started, 2 of them running`,
      );
      for (const run of h.runner.running) run.finish();
    }
    assertEquals(
      h.runner.runs.map((r) => `${r.jobId} ${r.armed ? "released" : "anew"}`),
      jobs.map((id, i) => `${id} ${i < 8 ? "released" : "anew"}`),
    );
    await h.until(
      async () => (await h.runs()).filter((r) => r.status === "success").length === 10,
      "ten runs to succeed",
    );
    // The next second follows closely: only as many as workers are free.
    await h.clock.set(at(2) - 500);
    await h.until(
      () => h.runner.armed.filter((a) => a.at === at(2)).length === 2,
      `2 armed for the next second: ${h.runner.armed.join(", ")}`,
    );
  });

  Deno.test(`daemon[${backend}]: where fires outnumber the shells armed, the shells go to the jobs that waited longest since they last started`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "jobsmanager.max_workers": 2 },
    });
    for (const id of ["a", "b", "c", "d"]) await h.job(id, { schedule: { second: "*" } });
    await h.start();
    // At 1 s a to d run, two at a time.
    await h.clock.set(at(1));
    for (let started = 2; started <= 4; started += 2) {
      await h.until(
        () => h.runner.runs.length === started && h.runner.running.length === 2,
        `${started} started, 2 of them running: ${h.runner.runs.join(", ")}`,
      );
      for (const run of h.runner.running) run.finish();
    }
    await h.until(
      async () => (await h.runs()).filter((r) => r.status === "success").length === 4,
      "four runs to succeed",
    );
    // e and f, added since, never started: the two shells of 2 s are theirs, not a's and b's.
    await h.job("e", { schedule: { second: "*" } });
    const marker = await h.job("f", { schedule: { second: "*" } });
    h.daemon.reload();
    await h.until(
      async () => (await h.markers()).find((m) => m.id === marker)?.updated,
      `marker ${marker} to be applied`,
    );
    await h.clock.set(at(2) - 500);
    const forTwo = () => h.runner.armed.filter((a) => a.at === at(2));
    await h.until(() => forTwo().length === 2, `2 armed for 2 s: ${h.runner.armed.join(", ")}`);
    assertEquals(forTwo().map((a) => a.spec.env.JM_JOB_ID).sort(), ["e", "f"]);
    await h.clock.set(at(2));
    for (const id of ["e", "f"]) assert((await h.started(id, at(2))).armed, `${id} released`);
  });

  Deno.test(`daemon[${backend}]: a burst arms four shells for each worker free, not for those long runs hold`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "jobsmanager.max_workers": 2 },
    });
    await h.job("long", { schedule: { second: "1" } });
    for (let i = 0; i < 10; i++) await h.job(`burst-${i}`, { schedule: { second: "5" } });
    await h.start();
    await h.clock.set(at(1));
    await h.started("long", at(1));
    await h.clock.set(at(5) - 500);
    await h.until(
      () => h.runner.armed.filter((a) => a.at === at(5)).length === 4,
      "4 shells armed for the burst, one worker being free",
    );
  });

  Deno.test(`daemon[${backend}]: a burst arms no more shells than the open-file limit leaves room for`, async () => {
    // Room for 14 descriptors: three shells of four each (or four runs of three); three start anew.
    await using h = await DaemonHarness.create(await freshDatabase(backend), { fileRoom: 14 });
    for (let i = 0; i < 6; i++) await h.job(`burst-${i}`, { schedule: { second: "1" } });
    await h.start();
    // Told at the start: 300 workers' runs would not fit either.
    assert(
      h.line(
        /^the open-file limit leaves room for about 4 runs at once, fewer than max_workers \(300\)/,
      ),
      "a warning at the start",
    );
    await h.clock.set(at(1) - 500);
    await h.until(() => h.runner.armed.length === 3, `3 armed: ${h.runner.armed.join(", ")}`);
    await h.clock.set(at(1));
    await h.until(() => h.runner.runs.length === 6, `6 started: ${h.runner.runs.join("; ")}`);
    assertEquals(h.runner.armed.length, 3);
    assertEquals(h.runner.runs.filter((r) => r.armed).length, 3);
  });

  Deno.test(`daemon[${backend}]: shells armed for an instant whose every fire went to another node meanwhile are disarmed at it`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "jobsmanager.heartbeat_interval": 60 },
      // A spawn this slow arms a lone fire 5 s before it (the most): before the handover's end, the fire after.
      spawnCost: 3000,
      claimTimeoutMs: 600_000,
    });
    const id = ["x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7"].find((id) =>
      assignJobs([id], ["other", NODE_ID]).get(id) === "other"
    )!;
    await h.job(id, { schedule: { second: "3" } });
    h.runner.endAll();
    await h.start();
    // Another node joins: at the next look (a heartbeat), the job becomes its own; this node
    // may still fire it for 2 × 60 s + 1 s, up to T0+181 s.
    await h.store.saveNode({
      ...node("other"),
      db_heartbeat_at: await h.store.databaseNow(),
      heartbeat_ms: 60_000,
    });
    await h.clock.set(T0 + 60_000);
    await h.until(() => h.line(/^2 live nodes/), "this node to see the other");
    await h.clock.set(at(123));
    await h.run(id, at(123), "success");
    await h.clock.set(at(183) - 4500);
    const shell = await armed(h, id, at(183));
    await h.clock.set(at(183));
    await h.until(() => shell.disarmed, `the shell for T0+183 s to be disarmed: ${shell}`);
    assertEquals((await h.runs()).filter((r) => r.scheduled_at === at(183)), []);
  });

  Deno.test(`daemon[${backend}]: a job changed after its shell was armed starts anew; the shell is disarmed`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("edited", { schedule: { second: "*" }, command: "echo v1" });
    await h.start();
    await h.clock.set(at(1) - 500);
    const shell = await armed(h, "edited", at(1));
    const marker = await h.job("edited", { command: "echo v2" });
    h.daemon.reload();
    await h.until(
      async () => (await h.markers()).find((m) => m.id === marker)?.updated,
      `marker ${marker} to be applied`,
    );
    await h.clock.set(at(1));
    const run = await h.started("edited", at(1));
    assertEquals([run.spec.command, run.armed], ["echo v2", false]);
    assert(shell.disarmed && !shell.released, String(shell));
  });

  Deno.test(`daemon[${backend}]: shells armed for an instant a reload took away are disarmed at once`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("moved", { schedule: { second: "*" } });
    await h.start();
    await h.clock.set(at(1) - 500);
    const shell = await armed(h, "moved", at(1));
    const marker = await h.job("moved", { schedule: { second: "30" } });
    h.daemon.reload();
    await h.until(
      async () => (await h.markers()).find((m) => m.id === marker)?.updated,
      `marker ${marker} to be applied`,
    );
    // Not at the instant (nothing fires then any more), nor at the next one: now.
    await h.until(() => shell.disarmed, `the shell to be disarmed: ${shell}`);
  });

  Deno.test(`daemon[${backend}]: a job whose run still runs is not armed; a fire claimed already is disarmed`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("busy", { schedule: { second: "*" } });
    await h.job("taken", { schedule: { second: "*" } });
    await h.start();
    await h.clock.set(at(1));
    (await h.started("taken", at(1))).finish();
    // busy's first run goes on: max_instances 1 skips its next fire, so nothing is armed for it.
    await h.started("busy", at(1));
    // An earlier life of this node claimed taken's next fire.
    await h.store.claimRuns([{
      job_id: "taken",
      scheduled_at: at(2),
      status: "running",
      trigger: "schedule",
      node_id: NODE_ID,
      started_at: at(2),
    }]);
    await h.clock.set(at(2) - 500);
    const taken = await armed(h, "taken", at(2));
    assertEquals(h.runner.armed.filter((a) => a.at === at(2)).map(String), ["armed taken @2000"]);
    await h.clock.set(at(2));
    await h.run("busy", at(2), "skipped");
    await h.until(() => taken.disarmed, `taken's shell to be disarmed: ${taken}`);
    assertEquals(h.runner.of("taken").length, 1, h.runner.runs.join("; "));
  });

  Deno.test(`daemon[${backend}]: a stop disarms the shells armed for the next instant`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("tick", { schedule: { second: "*" } });
    await h.start();
    await h.clock.set(at(1) - 500);
    const shell = await armed(h, "tick", at(1));
    await h.stop();
    await h.until(() => shell.disarmed, `the shell to be disarmed: ${shell}`);
    assertEquals(h.runner.runs.length, 0);
  });
}
