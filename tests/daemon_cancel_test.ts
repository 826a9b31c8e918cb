/**
 * `runs cancel` reaching the service that holds the run, in-process with a
 * fake clock, on every backend: at its next poll the service ends a running
 * run (its group gets SIGTERM) and drops a fire still waiting for a worker;
 * both are recorded `cancelled`, naming who asked.
 */
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { BACKENDS, freshDatabase } from "./helpers.ts";
import { DaemonHarness, describeRun, T0 } from "./daemon_harness.ts";
import { cancelRun } from "../src/app/runs.ts";
import { renderMessage } from "../src/daemon/log_sink.ts";
import { Metrics } from "../src/http/metrics.ts";

const at = (s: number) => T0 + s * 1000;
const ASKED = "ops@box";

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: a running run cancelled by hand is ended at the next poll`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("long", { schedule: { second: "1" } });
    await h.start();
    await h.clock.set(at(1));
    const run = await h.started("long", at(1));
    const row = await h.run("long", at(1), "running");
    const asked = await cancelRun(h.store, row.id, { by: ASKED, now: at(1) + 500 });
    assertEquals(asked.outcome, "requested");
    assert(!run.interrupted, "ended before the service polled");
    // Polls come every reload_interval (2 s).
    await h.clock.set(at(2));
    await h.until(() => run.interrupted, "the run to be ended");
    const done = await h.run("long", at(1), "cancelled");
    assertEquals(done.note, `cancelled by ${ASKED} at ${new Date(at(1) + 500).toISOString()}`);
    // Logged as recorded, and as what someone asked for: no warning.
    const ended = await h.until(
      () => h.logs.find((r) => /^job long run \d+ ended /.test(renderMessage(r))),
      "the end to be logged",
    );
    assertEquals([ended.level, renderMessage(ended).split(" ")[5]], ["info", "cancelled"]);
  });

  Deno.test(`daemon[${backend}]: a fire waiting for a worker, cancelled, never starts`, async () => {
    const metrics = new Metrics();
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "jobsmanager.max_workers": 1, "jobsmanager.misfire_grace_time": 60 },
      observer: metrics,
    });
    await h.job("a", { schedule: { second: "1" } });
    await h.job("b", { schedule: { second: "1" } });
    await h.start();
    await h.clock.set(at(1));
    // The waiting fire's record can land before the other reaches the runner.
    const queued = await h.until(
      async () =>
        h.runner.runs.length === 1
          ? (await h.runs()).find((r) => r.status === "queued")
          : undefined,
      "one fire to hold the worker and the other to wait for it",
    );
    const first = h.runner.runs[0];
    await cancelRun(h.store, queued.id, { by: ASKED, now: at(1) + 100 });
    await h.clock.set(at(2));
    const cancelled = await h.run(queued.job_id, at(1), "cancelled");
    assertEquals(cancelled.started_at, null, describeRun(cancelled));
    first.finish();
    await h.run(first.spec.env.JM_JOB_ID, at(1), "success");
    assertEquals(h.runner.runs.length, 1, "the cancelled fire started after all");
    assertStringIncludes(
      await metrics.text(),
      `jobsmanager_runs_total{job="${queued.job_id}",status="cancelled"} 1`,
    );
  });
}
