/**
 * Many fires at one instant, in-process with a fake clock, on every
 * backend: grace is judged when a run's process would start (a start that
 * comes later than its grace is `missed`, whatever held it), and under
 * overload the workers go first to the jobs that waited longest since they
 * last started, so no job starves.
 */
import { assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase } from "./helpers.ts";
import { DaemonHarness, describeRun, T0 } from "./daemon_harness.ts";
import type { Run } from "../src/domain/run.ts";
import { lookupSlowNote } from "../src/daemon/run_as.ts";

const at = (s: number) => T0 + s * 1000;
const JOBS = ["a", "b", "c", "d", "e"];

/** Each job's run fired at `fire`, once every one has a final status, as "job status started". */
async function settled(h: DaemonHarness, fire: number): Promise<string[]> {
  const rows = await h.until(async () => {
    const rows = (await h.runs()).filter((r) => r.scheduled_at === fire);
    return rows.length === JOBS.length &&
        rows.every((r) => r.status !== "queued" && r.status !== "running")
      ? rows
      : null;
  }, `a settled run of each of ${JOBS.join(", ")} fired at T0+${fire - T0}`);
  const started = (r: Run) => r.started_at === null ? "-" : `+${r.started_at - fire}`;
  return rows.toSorted((x, y) => x.job_id.localeCompare(y.job_id))
    .map((r) => `${r.job_id} ${r.status} ${started(r)}`);
}

/** Until a run of each job waits in the fake runner's queue. */
function handedOut(h: DaemonHarness): Promise<unknown> {
  return h.until(
    () => Promise.resolve(h.runner.heldStarts === JOBS.length || null),
    `${JOBS.length} runs handed to the runner (${h.runner.heldStarts} so far)`,
  );
}

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: runs the runner gets to later than their grace do not start, and are missed`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    for (const id of JOBS) await h.job(id, { schedule: { second: "*/5" } });
    await h.start();
    h.runner.endAll();
    // The runner threads are behind a burst: the runs handed out wait there.
    h.runner.holdStarts = true;
    await h.clock.set(at(5));
    await handedOut(h);
    await h.clock.pass(1200);
    h.runner.releaseStarts();
    assertEquals(await settled(h, at(5)), JOBS.map((id) => `${id} missed -`));
    assertEquals([h.runner.runs.length, h.runner.late.length], [0, JOBS.length]);
    const missed = (await h.runs("a")).find((r) => r.scheduled_at === at(5))!;
    assertEquals(
      missed.note,
      "would have started 1200 ms after its fire time, later than 1 s of grace: the runner was busy starting other runs",
      describeRun(missed),
    );
    // Within the grace, they start when the runner gets to them.
    await h.clock.set(at(10));
    await handedOut(h);
    await h.clock.pass(700);
    h.runner.releaseStarts();
    assertEquals(await settled(h, at(10)), JOBS.map((id) => `${id} success +700`));
  });

  Deno.test(`daemon[${backend}]: a fire missed because its user's account was slow to be found says so, not that the runner was busy`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    for (const id of JOBS) await h.job(id, { schedule: { second: "*/5" } });
    await h.start();
    h.runner.endAll();
    h.runner.holdStarts = true;
    // What a runner lane says of a run whose account's lookup ended past its grace (run_lane_test.ts).
    h.runner.lateHeldBy = lookupSlowNote("bob", 1200);
    await h.clock.set(at(5));
    await handedOut(h);
    await h.clock.pass(1200);
    h.runner.releaseStarts();
    assertEquals(await settled(h, at(5)), JOBS.map((id) => `${id} missed -`));
    const missed = (await h.runs("a")).find((r) => r.scheduled_at === at(5))!;
    assertEquals(
      missed.note,
      "would have started 1200 ms after its fire time, later than 1 s of grace: the lookup of account 'bob' took 1.2 s (this host's name service: getent passwd and shadow)",
      describeRun(missed),
    );
  });

  Deno.test(`daemon[${backend}]: a run the runner got to too late does not count as started: its job goes first next time`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    for (const id of JOBS) await h.job(id, { schedule: { second: "*/5" } });
    await h.start();
    h.runner.endAll();
    h.runner.holdStarts = true;
    // The runner gets to three runs of each burst in time, to the rest too late.
    const burst = async (s: number) => {
      await h.clock.set(at(s));
      await handedOut(h);
      h.runner.releaseStarts(3);
      await h.clock.pass(1200);
      h.runner.releaseStarts();
      return await settled(h, at(s));
    };
    assertEquals(await burst(5), [
      "a success +0",
      "b success +0",
      "c success +0",
      "d missed -",
      "e missed -",
    ]);
    assertEquals(await burst(10), [
      "a success +0",
      "b missed -",
      "c missed -",
      "d success +0",
      "e success +0",
    ]);
  });

  Deno.test(`daemon[${backend}]: a worker freed by a run that came too late to the runner starts a fire waiting for one`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "jobsmanager.max_workers": 1 },
    });
    await h.job("a", { schedule: { second: "5" } });
    await h.job("b", { schedule: { second: "6" }, misfire_grace_time: "60" });
    await h.start();
    h.runner.endAll();
    h.runner.holdStarts = true;
    await h.clock.set(at(5));
    await h.until(() => Promise.resolve(h.runner.heldStarts === 1 || null), "a handed out");
    await h.clock.set(at(6) + 200);
    await h.run("b", at(6), "queued");
    h.runner.holdStarts = false;
    h.runner.releaseStarts();
    await h.run("a", at(5), "missed");
    const b = await h.run("b", at(6), "success");
    assertEquals(b.started_at, at(6) + 200, describeRun(b));
  });

  Deno.test(`daemon[${backend}]: a stop while runs wait in the runner is not held up by those that come too late`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("a", { schedule: { second: "*/5" } });
    await h.start();
    h.runner.endAll();
    h.runner.holdStarts = true;
    await h.clock.set(at(5));
    await h.until(() => Promise.resolve(h.runner.heldStarts === 1 || null), "a handed out");
    await h.clock.pass(1200);
    const stopping = h.stop();
    h.runner.releaseStarts();
    await h.run("a", at(5), "missed");
    // The clock stands still: a stop that waited out shutdown_timeout would never end.
    await h.stopped();
    await stopping;
  });

  Deno.test(`daemon[${backend}]: a fire whose start comes later than its grace is missed; the next time its job goes first`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    for (const id of JOBS) await h.job(id, { schedule: { second: "*/5" } });
    await h.start();
    h.runner.endAll();
    // Each start takes 400 ms (a loaded machine): with 1 s of grace, three of five start.
    h.runner.onStart = () => h.clock.pass(400);
    await h.clock.set(at(5));
    assertEquals(await settled(h, at(5)), [
      "a success +0",
      "b success +400",
      "c success +800",
      "d missed -",
      "e missed -",
    ]);
    const missed = (await h.runs("d")).find((r) => r.scheduled_at === at(5))!;
    assertEquals(
      [missed.note, missed.finished_at],
      [
        "would have started 1200 ms after its fire time, later than 1 s of grace: the service was busy starting other runs",
        at(5) + 1200,
      ],
      describeRun(missed),
    );
    // d and e have not run yet, so they start first; the jobs that ran wait.
    await h.clock.set(at(10));
    assertEquals(await settled(h, at(10)), [
      "a success +800",
      "b missed -",
      "c missed -",
      "d success +0",
      "e success +400",
    ]);
    // Then b and c, which last started longest ago.
    await h.clock.set(at(15));
    assertEquals(await settled(h, at(15)), [
      "a missed -",
      "b success +0",
      "c success +400",
      "d success +800",
      "e missed -",
    ]);
  });

  Deno.test(`daemon[${backend}]: a queued fire is missed at the end of its grace, though no worker frees`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "jobsmanager.max_workers": 1 },
    });
    await h.job("first", { schedule: { second: "*" } });
    await h.job("second", { schedule: { second: "*" }, misfire_grace_time: "0" });
    await h.start();
    await h.clock.set(at(1));
    const first = await h.started("first", at(1));
    await h.run("second", at(1), "queued");
    await h.clock.set(at(1) + 250);
    await h.run("second", at(1), "queued");
    await h.clock.set(at(1) + 251);
    const missed = await h.run("second", at(1), "missed");
    assertEquals(
      [missed.note, missed.finished_at],
      [
        "still waiting for a free worker (max_workers 1) 251 ms after its fire time, past its 0.25 s of grace",
        at(1) + 251,
      ],
    );
    assertEquals(h.runner.running.length, 1, h.runner.runs.join("; "));
    // Its slot is free: the next fire of `second` queues, not skipped for max_instances.
    await h.clock.set(at(2));
    await h.run("second", at(2), "queued");
    first.finish();
    assertEquals((await h.run("second", at(2), "running")).started_at, at(2));
  });
}
