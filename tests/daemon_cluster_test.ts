/**
 * Several daemons on one database, in-process on fake clocks (issue 10):
 * the jobs spread over the live nodes with every fire run once, `job run`
 * taken by one node, a node that stops beating declared dead (its running
 * run lost, its fires run elsewhere or recorded missed naming it), and
 * every marker applied by every live node before it counts as applied.
 * On both backends: the store allows two services on one SQLite file in
 * one process (it is `serve` that refuses a second one on the file).
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import {
  ClusterHarness,
  DaemonHarness,
  describeRun,
  NODE_ID,
  storeWith,
  T0,
  throughProxy,
  until,
} from "./daemon_harness.ts";
import { BACKENDS, freshDatabase, mysqlTest, rawQuery } from "./helpers.ts";
import { proxyFor, type TcpProxy } from "./tcp_proxy.ts";
import { node } from "./store_contract.ts";
import { assignJobs } from "../src/domain/share.ts";
import { buildJob, type JobOptions } from "../src/domain/job.ts";
import type { Run } from "../src/domain/run.ts";
import { Metrics } from "../src/http/metrics.ts";
import { readinessOf } from "../src/http/health.ts";

/** Nodes honour the assignment they had before a change for 2 × 60 s + 1 s: past it. */
const SETTLED_MS = 130_000;

/** Add jobs `ids` at once, with one marker. */
async function addJobs(c: ClusterHarness, ids: string[], options: JobOptions): Promise<number> {
  const change = await c.store.changeJobs(() => ({
    put: ids.map((id) => buildJob(id, { command: "true", ...options }, null, T0)),
    remove: [],
  }));
  return change.markerId!;
}

/**
 * The run of `job` its owner (of n1 and n2) started, and its row: a row
 * claimed running may yet be recorded missed at its start (later than its
 * grace on a busy machine: CI), and a later fire's be the one that runs.
 */
async function ownersRun(c: ClusterHarness, job: string): Promise<{ owner: string; run: Run }> {
  const owner = assignJobs([job], ["n1", "n2"]).get(job)!;
  const started = await c.until(
    () => c.node(owner).runner.of(job).find((r) => r.running),
    `the owner ${owner} to run ${job}`,
  );
  const run = await c.until(
    async () => (await c.runs(job)).find((r) => r.id === started.runId),
    `the row of run ${started.runId}`,
  );
  return { owner, run };
}

const everySecond = (n: number, prefix = "j") =>
  Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(2, "0")}`);

/**
 * Move every running node to `at` and wait until `count` fires at `at` are
 * claimed and each node knows it: a row another connection sees may not
 * have reached its node yet, and a clock moved meanwhile would end the
 * node's wait for its claim as a database outage does. A run that ended,
 * or that a runner started, was claimed and launched.
 */
async function step(c: ClusterHarness, at: number, count: number): Promise<Run[]> {
  await c.set(at);
  return await c.until(async () => {
    const launched = new Set(c.nodes.flatMap((n) => n.runner.runs.map((r) => r.runId)));
    const rows = (await c.runs()).filter((r) => r.scheduled_at === at && r.trigger === "schedule");
    const known = rows.every((r) => r.status !== "running" || launched.has(r.id));
    return rows.length >= count && known ? rows : null;
  }, `${count} fires at T0+${at - T0} claimed and launched`);
}

/**
 * Start the nodes (every run ending at once) with `jobs` firing every
 * second; step to the first fire after their shares settled, and return it.
 */
async function everySecondSettled(c: ClusterHarness, jobs: string[]): Promise<number> {
  for (const node of c.nodes) node.runner.endAll();
  await c.start();
  await addJobs(c, jobs, { schedule: { second: "*" } });
  await c.load(jobs.length);
  const from = c.now() + SETTLED_MS;
  await step(c, from, jobs.length);
  return from;
}

/** The (job, instant) pairs the fake runners started, and those started more than once. */
function started(c: ClusterHarness, from: number) {
  const seen = new Map<string, string[]>();
  for (const node of c.nodes) {
    for (const run of node.runner.runs.filter((r) => r.scheduledAt > from)) {
      const key = `${run.jobId} @T0+${run.scheduledAt - T0}`;
      seen.set(key, [...seen.get(key) ?? [], node.nodeId]);
    }
  }
  return { count: seen.size, twice: [...seen].filter(([, nodes]) => nodes.length > 1) };
}

/**
 * Start the nodes with "slow" (every second, max_instances 1, its runs
 * ending only when told), let its owner start a run, then stop that owner.
 */
async function stopWhileSlowRuns(c: ClusterHarness) {
  for (const node of c.nodes) node.runner.endAll((run) => run.jobId === "slow");
  await c.start();
  await addJobs(c, ["slow"], { schedule: { second: "*" }, max_instances: "1" });
  await c.load(1);
  const owner = assignJobs(["slow"], ["n1", "n2"]).get("slow")!;
  const [leaving, taking] = [c.node(owner), c.node(owner === "n1" ? "n2" : "n1")];
  const from = c.now() + SETTLED_MS;
  await step(c, from, 1);
  // Recorded is not yet started: on a busy machine the fire before `from`,
  // decided with it, may be the one that runs (and `from`'s is skipped).
  const long = await c.until(
    () => leaving.runner.of("slow").find((r) => r.running),
    `the owner ${leaving.nodeId} to run the job`,
  );
  await leaving.stop();
  return { leaving, taking, long, from };
}

for (const backend of BACKENDS) {
  const test = (name: string, fn: () => Promise<void>) =>
    Deno.test(`daemon cluster[${backend}]: ${name}`, fn);

  test("jobs are shared over every row, valid or not: nodes whose releases judge a row differently agree on every owner", async () => {
    await using c = await ClusterHarness.create(await freshDatabase(backend), ["n1", "n2"]);
    for (const node of c.nodes) node.runner.endAll();
    await c.start();
    const jobs = everySecond(6);
    // A row this release refuses (a reserved name in env, written by hand), which an older one ran.
    await rawQuery(
      c.db,
      "INSERT INTO jm_jobs (id, command, `second`, env) VALUES ('broken', 'true', '*', ?)",
      ['{"JM_JOB_ID":"x"}'],
    );
    const everyRow = assignJobs([...jobs, "broken"], ["n1", "n2"]);
    const validOnly = assignJobs(jobs, ["n1", "n2"]);
    assert(
      jobs.some((id) => everyRow.get(id) !== validOnly.get(id)),
      "the test needs the refused row to move another job's owner",
    );
    await addJobs(c, jobs, { schedule: { second: "*" } });
    await c.load(jobs.length);
    const from = c.now() + SETTLED_MS;
    for (let s = 0; s <= 2; s++) await step(c, from + s * 1000, jobs.length);
    for (const node of c.nodes) {
      const ran = new Set(
        node.runner.runs.filter((r) => r.scheduledAt >= from).map((r) => r.jobId),
      );
      assertEquals(
        [...ran].sort(),
        jobs.filter((id) => everyRow.get(id) === node.nodeId),
        `the jobs ${node.nodeId} fired`,
      );
    }
    // A node's share counts the jobs it fires, not the row it refuses.
    const owned = Object.fromEntries(
      (await c.store.nodesAndNow()).nodes.map((n) => [n.id, n.jobs_owned]),
    );
    assertEquals(owned, {
      n1: jobs.filter((id) => everyRow.get(id) === "n1").length,
      n2: jobs.filter((id) => everyRow.get(id) === "n2").length,
    });
  });

  test("three nodes share 50 every-second jobs: each fire runs once, each node 25-42 %", async () => {
    await using c = await ClusterHarness.create(await freshDatabase(backend), ["n1", "n2", "n3"]);
    const jobs = everySecond(50);
    const from = await everySecondSettled(c, jobs);
    for (let s = 1; s <= 20; s++) await step(c, from + s * 1000, jobs.length);
    const window = await c.until(async () => {
      const rows = (await c.runs()).filter((r) =>
        r.scheduled_at > from && r.trigger === "schedule"
      );
      return rows.every((r) => r.status !== "running") ? rows : null;
    }, "every run of the window ended");
    assertEquals(
      window.filter((r) => r.scheduled_at <= from + 20_000).length,
      1000,
      "one record per fire",
    );
    assertEquals(window.filter((r) => r.status !== "success").map((r) => r.status), []);
    assertEquals(started(c, from), { count: 1000, twice: [] });
    const shares = Object.fromEntries(
      c.nodes.map((n) => [n.nodeId, window.filter((r) => r.node_id === n.nodeId).length / 1000]),
    );
    for (const [node, share] of Object.entries(shares)) {
      assert(
        share >= 0.25 && share <= 0.42,
        `${node} ran ${share * 100} %: ${JSON.stringify(shares)}`,
      );
    }
    // `job run --force`: ten requests, each taken by exactly one node.
    const requests = await c.store.claimRuns(
      jobs.slice(0, 10).map((job_id) => ({
        job_id,
        scheduled_at: from + 20_000,
        status: "queued" as const,
        trigger: "manual" as const,
        // `job run --force`: not skipped for the job's scheduled run at the same moment.
        forced: true,
      })),
    );
    // A poll takes them: every reload_interval.
    for (let s = 21; s <= 23; s++) await step(c, from + s * 1000, jobs.length);
    const manual = await c.until(async () => {
      const done = (await c.runs()).filter((r) => r.trigger === "manual" && r.status === "success");
      return done.length === 10 ? done : null;
    }, "the ten manual runs done");
    assertEquals(manual.map((r) => r.id).sort(), [...requests].sort());
    const taken = c.nodes.flatMap((n) =>
      n.runner.runs.filter((r) => requests.includes(r.runId)).map((r) => r.runId)
    );
    assertEquals(taken.sort(), [...requests].sort(), "each manual run started once");
  });

  test("a node whose clock is off takes no share while another's is in step, and its share again once its clock is fixed", async () => {
    // n2's own clock runs 40 s ahead of the database's: it would fire each job 40 s early,
    // and record the fires it judged past (still to come for the others) as missed.
    let n2Off = 40_000;
    // Each node's looks at the others (each measures its clock), as they end.
    const looks: Record<string, number> = { n1: 0, n2: 0 };
    const db = await freshDatabase(backend);
    await using c = await ClusterHarness.create(db, ["n1", "n2"], (id) => ({
      ...(id === "n2" ? { wallClock: () => Date.now() + n2Off } : {}),
      store: storeWith(db, {
        nodesAndNow: (target) => async () => {
          const seen = await target.nodesAndNow();
          looks[id]++;
          return seen;
        },
      }),
    }));
    const jobs = everySecond(10);
    const from = await everySecondSettled(c, jobs);
    for (let s = 1; s <= 5; s++) await step(c, from + s * 1000, jobs.length);
    assertEquals(started(c, from), { count: 50, twice: [] }, await c.describe());
    assertEquals(c.node("n2").runner.runs.map((r) => r.jobId), [], await c.describe());
    const shares = async () =>
      Object.fromEntries(
        (await c.store.nodesAndNow()).nodes.map((n) => [n.id, [n.jobs_owned, n.skew_ms! > 30_000]]),
      );
    assertEquals(await shares(), { n1: [10, false], n2: [0, true] });
    // /metrics and /readyz say so.
    const shareTaken = async (id: string) => {
      const metrics = new Metrics();
      metrics.watch(() => c.node(id).daemon.vitals);
      return (await metrics.text()).match(/^jobsmanager_share_taken (\d)$/m)?.[1];
    };
    assertEquals([await shareTaken("n1"), await shareTaken("n2")], ["1", "0"]);
    assertMatch(
      readinessOf(c.node("n2").daemon.vitals).timetable.detail,
      /^10 jobs loaded; this node fires none of them: its clock is more than 2 s off the database's while another live node's is in step \(fix its time sync, NTP\)$/,
    );
    assertEquals(readinessOf(c.node("n1").daemon.vitals).timetable.detail, "10 jobs loaded");
    assertMatch(
      c.node("n2").line(/clock is/)!,
      /^this node's clock is (39\d{3}|40\d{3}) ms off the database's; fires are computed from a node's own clock, so this node takes no share of the jobs while another live node's clock is within 2000 ms of the database's \(alone, or with all off, it fires at its clock's instants\); fix its time sync \(NTP\)$/,
    );
    assertMatch(
      c.node("n1").line(/take no share/)!,
      /^live nodes whose clock is more than 2000 ms off the database's take no share of the jobs: n2 \((39\d{3}|40\d{3}) ms\); fix their time sync \(NTP\)$/,
    );

    // Its time sync fixed, then off again: each look (a second of the clock) measures it, so
    // both turns take seconds, not a heartbeat (60 s here).
    // The clock moves a second once both nodes looked since it last moved (or a second of real
    // time passed: no look may be due in that second of the clock): a busy machine's looks lag
    // the test's, and the fake seconds would otherwise run ahead of them.
    const turn = async (what: string, done: (n1: number, n2: number) => boolean) => {
      const start = c.now();
      let moved = { looks: { ...looks }, at: Date.now() };
      await c.until(async () => {
        const { n1, n2 } = await shares();
        if (done(Number(n1[0]), Number(n2[0]))) return true;
        const looked = looks.n1 > moved.looks.n1 && looks.n2 > moved.looks.n2;
        if (looked || Date.now() - moved.at > 1000) {
          moved = { looks: { ...looks }, at: Date.now() };
          await c.set(c.now() + 1000);
        }
        return false;
      }, what);
      assert(c.now() - start < 10_000, `${what} took ${(c.now() - start) / 1000} s`);
    };
    n2Off = 0;
    await turn("both nodes to share the jobs again", (n1, n2) => n2 > 0 && n1 < 10);
    assertMatch(c.node("n2").line(/back within/)!, /it takes its share of the jobs again$/);
    n2Off = -40_000;
    await turn("n2 to take no share again", (n1, n2) => n2 === 0 && n1 === 10);
    n2Off = 0;
    await turn("both nodes to share the jobs once more", (n1, n2) => n2 > 0 && n1 < 10);
    const again = c.now() + SETTLED_MS;
    for (let s = 0; s <= 7; s++) await step(c, again + s * 1000, jobs.length);
    // From the third second after the 130 s jump: in the first two, a node may still skip a
    // fire for a run it last saw running on the other (its view is synced at each poll).
    const settled = again + 2000;
    const n2Runs = c.node("n2").runner.runs.filter((r) => r.scheduledAt > settled);
    assert(n2Runs.length > 0, await c.describe());
    assertEquals(started(c, settled), { count: 50, twice: [] }, await c.describe());
  });

  test("a node whose clock is off leaves due retries and follow-ups to the nodes in step: it judges when they are due by its clock", async () => {
    const db = await freshDatabase(backend);
    let polls = 0;
    await using c = await ClusterHarness.create(db, ["n1", "n2"], (id) =>
      id === "n2"
        ? {
          wallClock: () => Date.now() + 40_000,
          store: storeWith(db, {
            pollState: (target) => (...args) => {
              polls++;
              return target.pollState(...args);
            },
          }),
        }
        : {});
    for (const node of c.nodes) node.runner.endAll();
    await c.start();
    await addJobs(c, ["r"], { schedule: { hour: "0", minute: "0" } });
    await c.load(1);
    // n1 stops moving (it stays live for three 60 s heartbeats): only n2 could take the retry.
    c.freeze("n1");
    const [retry] = await c.store.claimRuns([
      { job_id: "r", scheduled_at: c.now() - 1000, status: "queued", trigger: "retry" },
    ]);
    const from = polls;
    for (let s = 1; s <= 3; s++) {
      await c.set(c.now() + 2000);
      await c.until(() => polls >= from + s, `n2's poll ${s} after the retry was due`);
    }
    assertEquals(
      (await c.runs("r")).map((r) => [r.id, r.status, r.node_id]),
      [[retry, "queued", null]],
    );
    await c.thaw("n1");
    await c.set(c.now() + 2000);
    const taken = await c.until(
      async () => (await c.runs("r")).find((r) => r.id === retry && r.status === "success"),
      "n1 to take the retry once it moves again",
    );
    assertEquals(taken.node_id, "n1");
  });

  test("when no live node's clock is in step with the database's (its own may be the one off), all share the jobs", async () => {
    await using c = await ClusterHarness.create(
      await freshDatabase(backend),
      ["n1", "n2"],
      { wallClock: () => Date.now() - 30_000 },
    );
    const jobs = everySecond(10);
    const from = await everySecondSettled(c, jobs);
    for (let s = 1; s <= 5; s++) await step(c, from + s * 1000, jobs.length);
    assertEquals(started(c, from), { count: 50, twice: [] });
    const owned = (await c.store.nodesAndNow()).nodes.map((n) => n.jobs_owned!);
    assert(owned.every((count) => count > 0) && owned[0] + owned[1] === 10, String(owned));
    assertEquals(c.node("n1").line(/take no share/), undefined);
  });

  test("a node that stops beating: its running run is lost, its fires run elsewhere or are missed naming it", async () => {
    const metrics = new Map(["n1", "n2"].map((id) => [id, new Metrics()]));
    await using c = await ClusterHarness.create(
      await freshDatabase(backend),
      ["n1", "n2"],
      (id) => ({ observer: metrics.get(id) }),
    );
    const jobs = everySecond(10);
    // Every run ends at once but slow's, which runs until the test ends.
    for (const node of c.nodes) node.runner.endAll((run) => run.jobId === "slow");
    await c.start();
    await addJobs(c, jobs, { schedule: { second: "*" } });
    await addJobs(c, ["slow"], { schedule: { second: "*" }, max_instances: "1" });
    await c.load(11);
    const from = c.now() + SETTLED_MS;
    await step(c, from, 11);
    await step(c, from + 1000, 11);
    const slowRun = (await c.runs("slow")).find((r) => r.status === "running")!;
    const victim = slowRun.node_id!;
    const survivor = c.nodes.find((n) => n.nodeId !== victim)!;
    const frozenAt = from + 1000;
    const owned = new Set(
      (await c.runs()).filter((r) => r.scheduled_at === frozenAt && r.node_id === victim)
        .map((r) => r.job_id),
    );
    assert(owned.size > 1, `${victim} fires slow and more: ${[...owned]}`);

    // The victim stops, as a process killed with SIGKILL; its last beat grows old.
    c.freeze(victim);
    await c.age(victim);
    await c.set(frozenAt + 5000);
    const lost = await c.until(
      async () => (await c.runs("slow")).find((r) => r.id === slowRun.id && r.status === "lost"),
      `run ${slowRun.id} of slow lost`,
    );
    assertMatch(
      lost.note!,
      new RegExp(
        `^node ${victim} stopped sending heartbeats \\(last at \\S+Z\\) and was declared dead at \\S+Z by node ${survivor.nodeId}$`,
      ),
    );
    const [row] = (await c.store.nodesAndNow()).nodes.filter((n) => n.id === victim);
    assertEquals(row.declared_dead_by, survivor.nodeId);
    // Counted by the node that wrote them lost (a fire queued behind slow's run is lost with it).
    const counted = metrics.get(survivor.nodeId)!;
    await until(
      async () => {
        const rows = (await c.runs("slow")).filter((r) => r.status === "lost").length;
        return (await counted.text()).includes(
          `jobsmanager_runs_total{job="slow",status="lost"} ${rows}`,
        );
      },
      `the lost runs counted on ${survivor.nodeId}'s /metrics`,
      async () => `${(await c.runs("slow")).map(describeRun).join("\n")}\n${await counted.text()}`,
    );
    // Ended by the victim's last heartbeat (its own clock, that of the run's start), or by the
    // run's start when it came after: not by when the survivor found it dead.
    assertEquals(
      lost.finished_at,
      Math.max(row.heartbeat_at, lost.started_at!),
      `last heartbeat T0+${row.heartbeat_at - T0}, run started T0+${lost.started_at! - T0}`,
    );
    // The survivor has claimed what it took over (run late, or missed) before its clock moves on.
    for (let s = 5; s <= 8; s++) await step(c, frozenAt + s * 1000, 11);

    // Every fire after the freeze, the victim's jobs too: run once on the survivor, or missed naming the victim.
    const runs = (await c.runs()).filter((r) =>
      r.scheduled_at > frozenAt && r.trigger === "schedule"
    );
    const why = `node ${victim}, which fired this job, is no longer live`;
    const missed = runs.filter((r) => r.status === "missed" && owned.has(r.job_id));
    assert(missed.length > 0, "the victim's fires 3 s late or more are missed");
    const accounted = new Map<string, string>();
    for (const r of runs) {
      assertEquals(r.node_id, survivor.nodeId, `${r.job_id} @T0+${r.scheduled_at - T0}`);
      if (r.status !== "missed") {
        accounted.set(`${r.job_id} ${r.scheduled_at}`, r.status);
        continue;
      }
      // A fire claimed in time that could not start within its grace (the
      // test's clock moved on while a loaded machine claimed it), or queued
      // behind its job's earlier late fire past its grace, is its own.
      const range = /from (\S+) to (\S+) came later/.exec(r.note!);
      if (!range) {
        assertMatch(
          r.note!,
          /^(would have started|the fire before it still ran) \d+ ms after its fire time/,
        );
        accounted.set(`${r.job_id} ${r.scheduled_at}`, "missed");
        continue;
      }
      // The 5 s step makes the survivor's own fires late too; the victim's say why they were.
      if (owned.has(r.job_id)) assert(r.note!.endsWith(`; ${why}`), r.note!);
      for (let t = Date.parse(range[1]); t <= Date.parse(range[2]); t += 1000) {
        accounted.set(`${r.job_id} ${t}`, "missed");
      }
    }
    const unaccounted = [...jobs, "slow"].flatMap((job) =>
      Array.from({ length: 8 }, (_, i) => frozenAt + (i + 1) * 1000)
        .filter((t) => !accounted.has(`${job} ${t}`))
        .map((t) => `${job} @T0+${t - T0}`)
    );
    assertEquals(unaccounted, []);
    assertEquals(c.node(victim).runner.runs.filter((r) => r.scheduledAt > frozenAt), []);
    assertEquals(started(c, frozenAt).twice, []);
    // The survivor runs slow now: its own run of it is running.
    assert(
      survivor.runner.of("slow").some((r) => r.running),
      "slow runs on the survivor",
    );
  });

  test("a run lost with its node ends at the node's last heartbeat, not when it was found dead", async () => {
    await using c = await ClusterHarness.create(await freshDatabase(backend), ["n1", "n2"]);
    for (const node of c.nodes) node.runner.endAll((run) => run.jobId === "slow");
    await c.start();
    await addJobs(c, ["slow"], { schedule: { second: "*" }, max_instances: "1" });
    await c.load(1);
    const from = c.now() + SETTLED_MS;
    await step(c, from, 1);
    const { owner: victim, run } = await ownersRun(c, "slow");
    const beatOf = async () =>
      (await c.store.nodesAndNow()).nodes.find((n) => n.id === victim)!.heartbeat_at;
    // A heartbeat (every 60 s here) while the run runs: the one this step brings, not one from
    // before it (on a busy machine the run found may be of a fire decided before `from`).
    await c.set(from + 61_000);
    const beat = await c.until(
      async () => ((await beatOf()) > Math.max(run.started_at!, from) ? await beatOf() : null),
      `a heartbeat of ${victim} after the step to T0+${from + 61_000 - T0}`,
    );
    c.freeze(victim);
    await c.age(victim);
    await c.set(from + 70_000);
    const lost = await c.until(
      async () => (await c.runs("slow")).find((r) => r.id === run.id && r.status === "lost"),
      `run ${run.id} of slow lost`,
    );
    assertEquals(
      lost.finished_at! - T0,
      beat - T0,
      `started T0+${run.started_at! - T0}, last beat T0+${beat - T0}`,
    );
  });

  test("a job added while its owner is dead, not declared yet: its fires since are run or recorded missed", async () => {
    await using c = await ClusterHarness.create(await freshDatabase(backend), ["n1", "n2"]);
    for (const node of c.nodes) node.runner.endAll();
    await c.start();
    await c.set(c.now() + SETTLED_MS);
    c.freeze("n2");
    const ids = everySecond(6, "new");
    const owners = assignJobs(ids, ["n1", "n2"]);
    const orphans = ids.filter((id) => owners.get(id) === "n2");
    assert(orphans.length > 0, `n2 owns some of ${ids}`);
    await addJobs(c, ids, { schedule: { second: "*" } });
    await c.load(ids.length);
    const added = c.now();
    for (let s = 1; s <= 3; s++) await c.set(added + s * 1000);
    await c.age("n2");
    await c.until(async () => {
      await c.set(c.now() + 1000);
      const n2 = (await c.store.nodesAndNow()).nodes.find((n) => n.id === "n2")!;
      return n2.declared_dead_at !== null;
    }, "n2 to be declared dead");
    // Taken over, each orphan's fires from its change on are decided: the early ones recorded missed.
    for (const id of orphans) {
      await c.until(async () => {
        if ((await c.runs(id)).length === 0) await c.set(c.now() + 1000);
        return (await c.runs(id)).find((r) => {
          const range = /from (\S+) to (\S+) came later/.exec(r.note ?? "");
          return range !== null && Date.parse(range[1]) <= added + 1000;
        });
      }, `${id}'s fires since it was added recorded`);
    }
  });

  test("live nodes in different default zones are said to move the fires of jobs that name none", async () => {
    const zones: Record<string, string> = { n1: "UTC", n2: "Asia/Tokyo" };
    await using c = await ClusterHarness.create(
      await freshDatabase(backend),
      ["n1", "n2"],
      (id) => ({ settings: { "jobsmanager.timezone": zones[id] } }),
    );
    await c.start();
    for (const node of c.nodes) {
      await c.until(
        () =>
          node.line(
            /^the live nodes fire jobs that name no time zone in different zones \(n1: UTC; n2: Asia\/Tokyo\): such a job fires at other instants/,
          ),
        `${node.nodeId} to warn of the zones`,
      );
    }
    // Said once, not at every look.
    await c.set(c.now() + 5000);
    for (const node of c.nodes) assertEquals(node.count(/different zones/), 1);
  });

  test("a run queued for a job another node is running waits on its max_instances, whichever node takes it", async () => {
    const owner = assignJobs(["slow"], ["n1", "n2"]).get("slow")!;
    const other = owner === "n1" ? "n2" : "n1";
    // The owner takes no `job run` request: the other node must.
    const db = await freshDatabase(backend);
    const takesNone = storeWith(db, { queuedManualRuns: () => () => Promise.resolve([]) });
    await using c = await ClusterHarness.create(
      db,
      ["n1", "n2"],
      (id) => id === owner ? { store: takesNone } : {},
    );
    for (const node of c.nodes) node.runner.endAll((run) => run.jobId === "slow");
    await c.start();
    await addJobs(c, ["slow"], { schedule: { second: "0" }, max_instances: "1" });
    await c.load(1);
    const minute = Math.ceil((c.now() + SETTLED_MS) / 60_000) * 60_000;
    await step(c, minute, 1);
    assert(c.node(owner).runner.of("slow").some((r) => r.running), "the owner runs slow");
    const [request] = await c.store.claimRuns([{
      job_id: "slow",
      scheduled_at: c.now(),
      status: "queued",
      trigger: "manual",
    }]);
    const taken = await c.until(async () => {
      await c.set(c.now() + 1000);
      const run = await c.store.getRun(request!);
      return run?.status === "queued" ? null : run;
    }, "the request to be taken");
    assertEquals([taken.node_id, taken.status], [other, "skipped"]);
    assertEquals(
      taken.note,
      `max_instances (1) runs were still running (1 of them on node ${owner}); to run it anyway, ask with \`jobsmanager job run --force slow\` (the API's "force": true), or run it in your own process with \`jobsmanager job run --here slow\``,
    );
    assertEquals(c.node(other).runner.of("slow"), []);
  });

  test("a job's run another node took from the queue holds its owner's next fire (max_instances)", async () => {
    const db = await freshDatabase(backend);
    const owner = assignJobs(["slow"], ["n1", "n2"]).get("slow")!;
    const other = owner === "n1" ? "n2" : "n1";
    // Whether the owner's poll has read the run on the other node: its slot is held then.
    let seen = false;
    const watched = () => {
      const store = db.open();
      const ask = store.activeRunsElsewhere.bind(store);
      store.activeRunsElsewhere = async (...args) => {
        const active = await ask(...args);
        if (active.some((r) => r.job_id === "slow")) seen = true;
        return active;
      };
      return store;
    };
    await using c = await ClusterHarness.create(
      db,
      ["n1", "n2"],
      (id) => id === owner ? { store: watched } : {},
    );
    for (const node of c.nodes) node.runner.endAll();
    await c.start();
    // Once an hour, at 00:30.
    await addJobs(c, ["slow"], { schedule: { second: "0", minute: "30" }, max_instances: "1" });
    await c.load(1);
    await c.set(c.now() + SETTLED_MS);
    // A `job run` the other node took and runs, as its row says.
    await c.store.claimRuns([{
      job_id: "slow",
      scheduled_at: c.now(),
      status: "running",
      trigger: "manual",
      node_id: other,
      started_at: c.now(),
    }]);
    // The owner's polls see the run elsewhere before its fire (a busy machine may take a few).
    await c.until(async () => {
      if (seen) return true;
      await c.set(c.now() + 1000);
      return false;
    }, `${owner} to read the run on ${other}`);
    await c.set(c.now() + 1000);
    const halfPast = T0 + 30 * 60_000;
    await step(c, halfPast, 1);
    const [fire] = (await c.runs("slow")).filter((r) => r.scheduled_at === halfPast);
    assertEquals([fire.status, fire.note], [
      "skipped",
      `max_instances (1) runs were still running (1 of them on node ${other})`,
    ]);
  });

  test("a node declared dead while it was paused says so once it runs again", async () => {
    await using c = await ClusterHarness.create(await freshDatabase(backend), ["n1", "n2"]);
    await c.start();
    c.freeze("n2");
    await c.age("n2");
    let at = c.now();
    await c.until(async () => {
      const [n2] = (await c.store.nodesAndNow()).nodes.filter((n) => n.id === "n2");
      if (n2.declared_dead_at == null) await c.set(at += 1000);
      return n2.declared_dead_at;
    }, "n1 to declare n2 dead");
    await c.thaw("n2");
    at = c.now();
    const said = await c.until(async () => {
      const line = c.node("n2").line(/^this node was declared dead/);
      if (line === undefined) await c.set(at += 1000);
      return line;
    }, "n2 to say it was declared dead");
    assertMatch(
      said,
      /^this node was declared dead by node n1 at \S+Z: it sent no heartbeat for 3 of its intervals /,
    );
    await c.until(() => c.node("n1").line(/^2 live nodes: n1, n2$/), "n1 to see n2 live again");
  });

  test("a node declared dead while it was paused, once it finds out, starts no run beside the run of its job on the node that took it (max_instances)", async () => {
    // No poll while the paused node resumes: one would hold the other node's runs (within a
    // poll's time is all the README promises of a run started elsewhere).
    await using c = await ClusterHarness.create(await freshDatabase(backend), ["n1", "n2"], {
      settings: { "jobsmanager.reload_interval": 3600 },
    });
    await c.start();
    // Fires late by more than a quarter second are missed: those the paused node decides as it
    // resumes, before its look, hold no slot (a run that lost its claim holds the other's).
    const marker = await addJobs(c, ["slow"], {
      schedule: { second: "*" },
      max_instances: "1",
      misfire_grace_time: "0",
    });
    await c.load(1);
    const owner = assignJobs(["slow"], ["n1", "n2"]).get("slow")!;
    const [paused, taking] = [c.node(owner), c.node(owner === "n1" ? "n2" : "n1")];
    // The heartbeat its reload asked for, written after `age`, would make it live again.
    await c.until(
      async () =>
        (await c.store.nodesAndNow()).nodes.find((n) => n.id === owner)?.applied_marker === marker,
      `${owner} to report marker ${marker}`,
    );
    // The paused node's runs end at once: its own slot is free when it resumes.
    paused.runner.endAll();
    c.freeze(owner);
    await c.age(owner);
    let at = c.now();
    const going = await c.until(async () => {
      const run = taking.runner.of("slow").find((r) => r.running);
      if (!run) await c.set(at += 1000);
      return run;
    }, `${taking.nodeId} to declare ${owner} dead and run slow`);
    // It resumes between two fires: the ones it missed are recorded missed, or lose their claims.
    await c.set(at + 500);
    await c.thaw(owner);
    await c.until(
      () => paused.line(/^this node was declared dead/),
      `${owner} to find it was declared dead`,
    );
    // Its next fire comes before the other node's clock reaches it: the claim is its own.
    const next = at + 1000;
    await paused.clock.set(next);
    const decided = await c.until(
      async () =>
        (await c.runs("slow")).find((r) => r.scheduled_at === next && r.status !== "queued"),
      `${owner} to decide its fire at T0+${next - T0}`,
    );
    assertEquals([decided.node_id, decided.status], [owner, "skipped"], describeRun(decided));
    // Its run, and a fire that waits behind it where the other node queued one (coalesce is off).
    assertMatch(
      decided.note!,
      new RegExp(
        `^max_instances \\(1\\) runs were still running \\([12] of them on node ${taking.nodeId}\\)$`,
      ),
    );
    assertEquals(paused.runner.running.length, 0, "runs started beside the other node's");
    assert(going.running, "the other node's run still runs");
  });

  test("a node stopping hands its jobs over at once; the run it is ending holds their max_instances", async () => {
    await using c = await ClusterHarness.create(await freshDatabase(backend), ["n1", "n2"]);
    const { leaving, taking, long, from } = await stopWhileSlowRuns(c);
    const row = await c.until(
      async () =>
        (await c.store.nodesAndNow()).nodes.find((n) => n.id === leaving.nodeId && n.leaving_at),
      "its heartbeat to say it is leaving",
    );
    // Leaving, it fires nothing: the live node owns every job.
    assertEquals([row.stopped_at, row.jobs_owned], [null, 0]);
    // The fires it left waiting behind its run are recorded interrupted before the other node
    // decides a fire: written after, they would be counted in its note and gone from `held`.
    await c.until(
      async () =>
        (await c.runs("slow")).every((r) =>
          r.node_id !== leaving.nodeId || r.id === long.runId || r.finished_at !== null
        ),
      `the fires ${leaving.nodeId} left waiting to be recorded`,
    );
    // The other takes the job within a few seconds, not once the run ends: it skips fires for that run.
    let at = from;
    const skipped = await c.until(async () => {
      const rows = (await c.runs("slow")).filter((r) => r.node_id === taking.nodeId);
      const found = rows.find((r) => r.status === "skipped");
      if (!found && at < from + 5000) await c.set(at += 1000);
      return found;
    }, "the other node to skip a fire of slow");
    // On a busy machine the fire before `from` may have run, and `from`'s wait behind it (coalesce is off).
    const held = (await c.runs("slow")).filter((r) =>
      r.node_id === leaving.nodeId && (r.status === "running" || r.status === "queued")
    );
    assertEquals(
      skipped.note,
      `max_instances (1) runs were still running (${held.length} of them on node ${leaving.nodeId})`,
      JSON.stringify(held),
    );
    assertEquals(taking.runner.of("slow"), [], "no second run while the first ran");
    assert(
      taking.line(new RegExp(`^1 live nodes: ${taking.nodeId}$`)) !== undefined,
      await c.describe(),
    );
    long.finish();
    await c.until(
      async () => (await c.runs("slow")).find((r) => r.id === long.runId)?.status === "success",
      "the stopping node to record its run",
    );
    // Once a poll sees the run ended, the job runs on the node that took it. The clock moves on
    // once the fire at `at` is decided: moved while its claim is on its way, it would find the
    // fire later than its grace (1 s), and a busy machine would miss each one.
    at = c.now();
    let moved = Date.now();
    await c.until(async () => {
      if (taking.runner.of("slow").length > 0) return true;
      const decided = (await c.runs("slow")).some((r) =>
        r.node_id === taking.nodeId && r.scheduled_at >= at && r.finished_at !== null
      );
      // A fire this node never claims (its poll still counts the run) is passed after a second.
      if (decided || Date.now() - moved > 1000) {
        moved = Date.now();
        await c.set(at += 1000);
      }
      return false;
    }, "the node that took the job to run it");
    await c.until(() => leaving.ended, "the stopping node to end");
    const [stopped] = (await c.store.nodesAndNow()).nodes.filter((n) => n.id === leaving.nodeId);
    assert(stopped.stopped_at !== null, "it stopped cleanly");
    assertEquals(stopped.declared_dead_at, null, "no one declared it dead");
  });

  test("a node killed while it ends its runs is declared dead, its runs lost", async () => {
    await using c = await ClusterHarness.create(await freshDatabase(backend), ["n1", "n2"]);
    const { leaving, taking, long } = await stopWhileSlowRuns(c);
    await c.until(
      async () =>
        (await c.store.nodesAndNow()).nodes.find((n) => n.id === leaving.nodeId)?.leaving_at,
      "the stopping node to say so",
    );
    // SIGKILL (docker stop's, after 10 s) before its runs ended: its heartbeats stop.
    c.freeze(leaving.nodeId);
    await c.age(leaving.nodeId);
    let at = c.now();
    const lost = await c.until(async () => {
      const run = (await c.runs("slow")).find((r) => r.id === long.runId);
      if (run?.status !== "lost") await c.set(at += 1000);
      return run?.status === "lost" ? run : undefined;
    }, `run ${long.runId} lost`);
    assertMatch(lost.note!, new RegExp(`^node ${leaving.nodeId} stopped sending heartbeats`));
    const [row] = (await c.store.nodesAndNow()).nodes.filter((n) => n.id === leaving.nodeId);
    assertEquals(row.declared_dead_by, taking.nodeId);
    // In the log of the node that declared it, not of the one it names: logged once its
    // declaration is answered, which may be after its runs are read back lost.
    const declared = new RegExp(
      `^node ${leaving.nodeId} sent no heartbeat for \\d+ s .* is declared dead`,
    );
    await c.until(() => taking.count(declared) > 0, `${taking.nodeId} to log the declaration`);
    assertEquals(
      [taking, leaving].map((n) => n.count(declared)),
      [1, 0],
      `${taking.nodeId}, then ${leaving.nodeId}, said it declared ${leaving.nodeId} dead`,
    );
  });

  test("a node killed just after a heartbeat the database's clock has since gone back behind is declared dead as the heartbeat stays the same", async () => {
    await using c = await ClusterHarness.create(await freshDatabase(backend), ["n1", "n2"]);
    await c.start();
    // Its last heartbeat an hour ahead of the database's clock, as when that clock is stepped
    // back an hour just after it; a short interval, so that three of them pass as the test waits.
    c.freeze("n2");
    const ahead = (await c.store.databaseNow()) + 3_600_000;
    await c.nodes[0].sql(
      "UPDATE jm_nodes SET db_heartbeat_at = ?, heartbeat_ms = 200 WHERE id = 'n2'",
      [ahead],
    );
    let at = c.now();
    const row = await c.until(async () => {
      const node = (await c.store.nodesAndNow()).nodes.find((n) => n.id === "n2");
      if (node?.declared_dead_at == null) await c.set(at += 1000);
      return node?.declared_dead_at == null ? undefined : node;
    }, "n2 declared dead");
    assertEquals([row.declared_dead_by, row.db_heartbeat_at], ["n1", ahead]);
    assert(
      row.declared_dead_at! < ahead,
      "declared while its heartbeat was still ahead of the clock",
    );
  });

  test("a live node that shares the jobs from another basis is said once it lasts past a change's transition, and again once it agrees", async () => {
    await using c = await ClusterHarness.create(await freshDatabase(backend), ["n1", "n2"]);
    await c.start();
    const never = { schedule: { second: "0", minute: "0", hour: "3" } };
    await addJobs(c, ["a", "b", "c"], never);
    await c.load(3);
    const marker = await addJobs(c, ["d"], never);
    await c.load(4);
    const basesOf = async () =>
      (await rawQuery(c.db, "SELECT id, applied_marker, share_basis FROM jm_nodes ORDER BY id"))
        .map((r) => ({ id: r.id, marker: Number(r.applied_marker), basis: r.share_basis }));
    // Each writes what it shares from once it applied the marker: the same.
    const agreed = await c.until(async () => {
      const rows = await basesOf();
      return rows.every((r) => r.marker === marker && r.basis === rows[0].basis) ? rows : undefined;
    }, "both nodes to write their share basis at the last marker");
    const basis = JSON.parse(String(agreed[0].basis));
    assertEquals([basis.v, basis.jobs, basis.over], [1, 4, ["n1", "n2"]]);

    // n2 as a node whose view differs (an older release leaving a row out): one job fewer.
    c.freeze("n2");
    const writeBasis = (b: unknown) =>
      c.nodes[0].sql("UPDATE jm_nodes SET share_basis = ? WHERE id = 'n2'", [JSON.stringify(b)]);
    const apart = { ...basis, jobs: 3, digest: "0000000100000001" };
    await writeBasis(apart);
    const n1 = c.node("n1");
    const at0 = c.now();
    // Each step done once n1 has looked at the nodes after it (it then waits a second).
    const stepTo = async (t: number) => {
      await c.set(at0 + t);
      await c.until(() => n1.clock.wakeUps.includes(at0 + t + 1000), "n1 to look at the nodes");
    };
    // Said only once it lasts longer than a change takes to reach every node (121 s here), over
    // looks that all found them apart: one at another marker (n2 behind) starts it again.
    const warning = /^node n2 has shared the jobs from another basis than this node's/;
    await stepTo(1000);
    await writeBasis({ ...apart, marker: marker + 1 });
    await stepTo(60_000);
    await writeBasis(apart);
    for (const t of [61_000, 125_000, 180_000]) {
      await stepTo(t);
      assertEquals(n1.count(warning), 0, `said ${t / 1000} s in`);
    }
    let at = at0 + 186_000;
    await c.set(at);
    const said = await c.until(() => n1.line(warning), "n1 to warn of n2's basis");
    assertMatch(
      said,
      new RegExp(
        `^node n2 has shared the jobs from another basis than this node's for 12\\d s, at the same reload marker ${marker}: it shares 3 jobs over n1, n2, this node 4 jobs over n1, n2; a job each takes for the other's fires on neither, and no missed run is recorded\\. Run the same release on every node \\(status lists each node.s version\\); after a change to jm_jobs by hand, run jobsmanager reload$`,
      ),
    );
    await c.set(at += 5000);
    assertEquals(n1.count(warning), 1, "said once");
    // n2 runs again and writes its own basis: they agree, and n1 says so.
    await c.thaw("n2");
    await c.until(async () => {
      const again = n1.line(/^node n2 shares the jobs from the same basis as this node again$/);
      if (again === undefined) await c.set(at += 1000);
      return again;
    }, "n1 to hear n2 agree again");
  });

  test("a node stopping while it ends a run, past a change's transition, says nothing of the others' basis", async () => {
    await using c = await ClusterHarness.create(await freshDatabase(backend), ["n1", "n2"], {
      settings: { "jobsmanager.shutdown_timeout": 600 },
    });
    const { leaving, taking } = await stopWhileSlowRuns(c);
    // It still counts itself among the nodes; the others no longer do: their bases differ, and
    // rightly, for as long as it ends its runs (121 s is a change's transition here).
    const at = c.now();
    for (const t of [1000, 130_000, 131_000]) {
      await c.set(at + t);
      for (const node of [leaving, taking]) {
        await c.until(
          () => node.clock.wakeUps.includes(at + t + 1000),
          `${node.nodeId} to look at the nodes`,
        );
      }
    }
    assert(leaving.runner.of("slow").some((r) => r.running), "the run still runs");
    for (const node of [leaving, taking]) assertEquals(node.count(/another basis/), 0);
  });

  test("every live node applies every marker; a node declared dead holds none back", async () => {
    await using c = await ClusterHarness.create(await freshDatabase(backend), ["n1", "n2", "n3"]);
    // Jobs that do not fire while the test runs: the clocks move freely.
    const never = { schedule: { second: "0", minute: "0", hour: "3" } };
    await c.start();
    const pending = async (id: number) => (await c.nodes[0].markers()).find((m) => m.id === id)!;
    const applied = (id: number, nodes = c.running) =>
      c.until(async () => {
        await c.set(c.now() + 1000);
        return nodes.every((n) => n.daemon.state.appliedMarker >= id);
      }, `${nodes.map((n) => n.nodeId)} to apply marker ${id}`);
    // Its clock stopped, n3 starts no poll; one under way may still go round
    // again and read the next marker (seen on a loaded machine): it ends first.
    const standStill = async () => {
      c.freeze("n3");
      await c.until(() => !c.node("n3").daemon.state.polling, "n3's poll under way to end");
    };

    // n3 stands still: the others apply the marker, which waits for n3.
    await standStill();
    const second = await addJobs(c, ["second"], never);
    await applied(second);
    assertEquals((await pending(second)).updated, false, "n3, live, has not applied it");
    await c.thaw("n3");
    await applied(second, c.nodes);
    await c.until(async () => (await pending(second)).updated, `marker ${second} applied`);

    // n3 stops for good: once declared dead, it holds the next marker back no more.
    await standStill();
    const third = await addJobs(c, ["third"], never);
    await applied(third);
    assertEquals((await pending(third)).updated, false, "n3, still live, has not applied it");
    await c.age("n3");
    await c.until(async () => {
      await c.set(c.now() + 1000);
      const n3 = (await c.store.nodesAndNow()).nodes.find((n) => n.id === "n3")!;
      return n3.declared_dead_at !== null && (await pending(third)).updated;
    }, `n3 declared dead and marker ${third} applied`);
    assertEquals(c.node("n3").daemon.state.appliedMarker < third, true);
  });
}

/** Nodes n1 and n2 on MariaDB, each through a proxy of its own: cut one, or both, for an outage. */
async function behindProxies(): Promise<
  { c: ClusterHarness; proxies: Record<string, TcpProxy> } & AsyncDisposable
> {
  const db = await freshDatabase("mysql");
  const proxies: Record<string, TcpProxy> = { n1: proxyFor(db), n2: proxyFor(db) };
  const closeProxies = async () => {
    for (const proxy of Object.values(proxies)) await proxy[Symbol.asyncDispose]();
  };
  let c: ClusterHarness;
  try {
    c = await ClusterHarness.create(db, ["n1", "n2"], (id) => ({
      store: throughProxy(db, proxies[id]),
    }));
  } catch (error) {
    await closeProxies();
    throw error;
  }
  return {
    c,
    proxies,
    async [Symbol.asyncDispose]() {
      await c[Symbol.asyncDispose]();
      await closeProxies();
    },
  };
}

mysqlTest(
  "daemon cluster[mysql]: through an outage two nodes hold: nothing runs, then each fire once",
  async () => {
    await using net = await behindProxies();
    const { c, proxies } = net;
    const jobs = everySecond(6);
    const from = await everySecondSettled(c, jobs);

    proxies.n1.cut();
    proxies.n2.cut();
    await c.set(from + 1000);
    // Whichever write meets the cut first (a claim, a poll, a run's record) takes the node offline.
    await c.until(
      () =>
        c.nodes.every((n) =>
          n.line(/^the database did not answer; holding \d+ fires|^the database is unreachable/)
        ),
      "both nodes to find the database away",
    );
    for (const s of [2, 3]) await c.set(from + s * 1000);
    const ranDuring = c.nodes.flatMap((n) => n.runner.runs.filter((r) => r.scheduledAt > from));
    assertEquals(ranDuring.map(String), [], "nothing runs while the database is away");

    const restored = c.now();
    proxies.n1.restore();
    proxies.n2.restore();
    // The probes back off (1 s, 2 s, …): move on until both find it back.
    await c.until(async () => {
      if (c.nodes.every((n) => n.line(/^the database is back/))) return true;
      await c.set(c.now() + 1000);
      return false;
    }, "both nodes to find the database back");
    const back = c.now();
    await step(c, back + 1000, jobs.length);
    // Every fire since the outage began: run once (late within grace, or on time) or missed.
    const rows = await c.until(async () => {
      const all = (await c.runs()).filter((r) =>
        r.scheduled_at > from && r.scheduled_at <= back + 1000 && r.trigger === "schedule"
      );
      return all.every((r) => r.status !== "running") ? all : null;
    }, "the fires since the outage ended");
    const accounted = new Map<string, string[]>();
    const count = (key: string, what: string) =>
      accounted.set(key, [...accounted.get(key) ?? [], what]);
    for (const r of rows) {
      // A missed record covers the fires its note names; one that names none (a claim that
      // landed too late, a start later than the grace on a loaded machine), its own.
      const range = r.status === "missed" ? /from (\S+) to (\S+) came later/.exec(r.note!) : null;
      if (!range) {
        count(`${r.job_id} ${r.scheduled_at}`, r.status);
        continue;
      }
      const [, first, last] = range;
      for (let t = Date.parse(first); t <= Date.parse(last); t += 1000) {
        count(`${r.job_id} ${t}`, "missed");
      }
    }
    const wrong = jobs.flatMap((job) =>
      Array.from({ length: (back + 1000 - from) / 1000 }, (_, i) => from + (i + 1) * 1000)
        .map((t) => [`${job} @T0+${t - T0}`, accounted.get(`${job} ${t}`) ?? []] as const)
        .filter(([, what]) => what.length !== 1)
    );
    assertEquals(wrong, [], "fires not accounted exactly once");
    assert(rows.some((r) => r.status === "missed"), "fires older than the grace are missed");
    assertEquals(started(c, from).twice, []);
    const early = c.nodes.flatMap((n) =>
      n.runner.runs.filter((r) => r.scheduledAt > from && r.startedAt < restored)
    );
    assertEquals(early.map(String), [], "no run started before the database was back");
  },
);

mysqlTest(
  "daemon cluster[mysql]: after a long outage the node back first gives the others time to come back before it judges them",
  async () => {
    await using net = await behindProxies();
    const { c, proxies } = net;
    for (const node of c.nodes) node.runner.endAll((run) => run.jobId === "slow");
    await c.start();
    await addJobs(c, ["slow"], { schedule: { second: "*" }, max_instances: "1" });
    await c.load(1);
    const from = c.now() + SETTLED_MS;
    await step(c, from, 1);
    const { run: running } = await ownersRun(c, "slow");
    const [late, early] = running.node_id === "n1" ? ["n1", "n2"] : ["n2", "n1"];

    proxies.n1.cut();
    proxies.n2.cut();
    await c.set(from + 1000);
    await c.until(
      () =>
        c.nodes.every((n) => n.line(/^the database is unreachable|^the database did not answer/)),
      "both nodes to find the database away",
    );
    // A long outage: the last heartbeat of each is older than three intervals when it ends.
    await c.age(late);
    await c.age(early);
    proxies[early].restore();
    await c.until(async () => {
      if (c.node(early).line(/^the database is back/)) return true;
      await c.set(c.now() + 1000);
      return false;
    }, `${early} to find the database back`);
    // Back first, it sweeps (a second apart) while the other still waits to reconnect.
    for (let s = 1; s <= 5; s++) await c.set(c.now() + 1000);
    await c.until(
      () => c.node(early).line(/^2 live nodes|^1 live nodes/),
      `${early} to have looked at the nodes since`,
    );
    const [row] = (await c.store.nodesAndNow()).nodes.filter((n) => n.id === late);
    assertEquals(row.declared_dead_at, null, `${late}, away as long, is not declared dead`);
    assertEquals((await c.runs("slow")).find((r) => r.id === running.id)!.status, "running");
    proxies[late].restore();
    await c.until(async () => {
      if (c.node(late).line(/^the database is back/)) return true;
      await c.set(c.now() + 1000);
      return false;
    }, `${late} to find the database back`);
    assert(!c.node(late).line(/declared dead/), "the node away as long never learns it died");
  },
);

for (const backend of BACKENDS) {
  Deno.test(`daemon cluster[${backend}]: a node restarting after another declared it dead decides the fires of its downtime`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "jobsmanager.heartbeat_interval": 60 },
      // The clock moves while the start's catch-up is claimed: that is no outage.
      claimTimeoutMs: 600_000,
    });
    const jobs = everySecond(6);
    for (const id of jobs) await h.job(id, { schedule: { second: "*" } });
    // Its previous life recorded fires up to 3 s, then died; "other", live, declared it dead.
    await h.store.claimRuns(
      jobs.map((job_id) => ({
        job_id,
        scheduled_at: T0 + 3000,
        status: "success" as const,
        trigger: "schedule" as const,
        node_id: NODE_ID,
      })),
    );
    const databaseNow = await h.store.databaseNow();
    await h.store.saveNode({
      ...node(NODE_ID),
      host: "test",
      pid: 2 ** 22 + 1,
      db_heartbeat_at: databaseNow - 240_000,
      heartbeat_ms: 60_000,
      declared_dead_at: databaseNow - 60_000,
      declared_dead_by: "other",
    });
    await h.store.saveNode({
      ...node("other"),
      db_heartbeat_at: databaseNow,
      heartbeat_ms: 60_000,
    });
    const mine = jobs.filter((id) => assignJobs(jobs, ["other", NODE_ID]).get(id) === NODE_ID);
    assert(mine.length > 0, "some jobs are this node's");
    h.runner.endAll();
    await h.clock.set(T0 + 10_000);
    await h.start();
    // The other may not have seen every one of them (a third node may have had some): this
    // node decides them, and the claim keeps each fire once.
    const decided = await h.until(async () => {
      const rows = (await h.runs()).filter((r) =>
        r.scheduled_at > T0 + 3000 && r.scheduled_at <= T0 + 10_000 && r.node_id === NODE_ID
      );
      return new Set(rows.map((r) => r.job_id)).size === mine.length ? rows : null;
    }, "this node's jobs decided since 3 s");
    assertEquals([...new Set(decided.map((r) => r.job_id))].sort(), mine);
    assert(decided.some((r) => r.status === "missed"), decided.map(describeRun).join("\n"));
    const [self] = (await h.store.nodesAndNow()).nodes.filter((n) => n.id === NODE_ID);
    assertEquals([self.declared_dead_at, self.declared_dead_by], [null, null]);
  });
}

mysqlTest(
  "daemon cluster[mysql]: a node that saw the other die holds through an outage, so the other, back, runs those fires alone",
  async () => {
    const db = await freshDatabase("mysql");
    await using proxy = proxyFor(db);
    await using c = await ClusterHarness.create(db, ["n1", "n2"], (id) => ({
      ...(id === "n1" ? { store: throughProxy(db, proxy) } : {}),
      // n2, back, runs the latest fire of its downtime (the others recorded missed, once).
      settings: { "jobsmanager.misfire_grace_time": 3600, "jobsmanager.coalesce": true },
    }));
    const jobs = everySecond(6);
    const from = await everySecondSettled(c, jobs);

    // n2 is killed: n1 declares it dead and fires every job, alone.
    c.freeze("n2");
    await c.age("n2");
    await c.set(from + 1000);
    await c.until(() => c.node("n1").line(/^1 live nodes: n1$/), "n1 to see itself alone");
    await step(c, from + 2000, jobs.length);
    // Their ends written: a row of n1's still `running` holds its job's slot on n2 once n2 finds
    // it was declared dead (as a node gaining jobs), and n2 would skip those fires.
    await c.until(
      async () =>
        (await c.runs()).filter((r) => r.scheduled_at === from + 2000)
          .every((r) => r.status === "success"),
      "n1's runs of its fires alone to be recorded ended",
    );

    // The database goes away from n1; n2 comes back meanwhile and decides the fires since it died.
    proxy.cut();
    await c.set(from + 3000);
    const outage = await c.until(
      () => c.node("n1").line(/^the database is unreachable/),
      "n1 to find the database away",
    );
    assertMatch(
      outage,
      /this node holds its fires until it is back \(cluster.on_database_outage is auto and other nodes may fire them: n2\)/,
    );
    await c.set(from + 4000);
    await c.thaw("n2");
    await c.until(async () => {
      const rows = (await c.runs()).filter((r) =>
        r.node_id === "n2" && r.scheduled_at === from + 4000
      );
      return rows.length > 0 && rows.every((r) => r.status === "success");
    }, "n2 to run fires of the outage");
    const alone = c.node("n1").runner.runs.filter((r) => r.scheduledAt > from + 2000);
    assertEquals(alone.map(String), [], "n1 ran nothing it could not claim");

    proxy.restore();
    await c.until(async () => {
      if (c.node("n1").line(/^the database is back/)) return true;
      await c.set(c.now() + 1000);
      return false;
    }, "n1 to find the database back");
    await step(c, c.now() + 1000, jobs.length);
    assertEquals(started(c, from).twice, []);
  },
);
