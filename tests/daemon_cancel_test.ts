/**
 * `runs cancel` reaching the service that holds the run, in-process with a
 * fake clock, on every backend: at its next poll the service ends a running
 * run (its group gets SIGTERM) and drops a fire still waiting for a worker;
 * both are recorded `cancelled`, naming who asked.
 */
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { BACKENDS, freshDatabase } from "./helpers.ts";
import { cuttable, DaemonHarness, describeRun, NODE_ID, storeWith, T0 } from "./daemon_harness.ts";
import { cancelRun } from "../src/app/runs.ts";
import { renderMessage } from "../src/daemon/log_sink.ts";
import { Metrics } from "../src/http/metrics.ts";

const at = (s: number) => T0 + s * 1000;
const iso = (ms: number) => new Date(ms).toISOString();
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
    const { first, queued } = await h.oneWaiting();
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

  Deno.test(`daemon[${backend}]: a running row the service does not know (restored from a backup), cancelled, is recorded cancelled saying nothing ran it there`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("long", { schedule: { second: "1" } });
    await h.start();
    // Restored on a live node: `running` here, and nothing behind it.
    const [id] = await h.store.claimRuns([{
      job_id: "long",
      scheduled_at: T0 - 60_000,
      started_at: T0 - 60_000,
      status: "running",
      trigger: "schedule",
      node_id: NODE_ID,
    }]);
    assertEquals(
      (await cancelRun(h.store, id!, { by: ASKED, now: T0 + 500 })).outcome,
      "requested",
    );
    await h.clock.set(at(2));
    const done = await h.until(async () => {
      const run = await h.store.getRun(id!);
      return run?.status === "cancelled" ? run : null;
    }, "the row to be answered");
    assertEquals(
      done.note,
      `cancelled by ${ASKED} at ${
        iso(T0 + 500)
      }; it was not running in the service on ${NODE_ID}, though its row said running: the row was restored from a backup or written by hand while the service ran, or left by an earlier service on that node; nothing was ended`,
    );
    assertEquals(done.finished_at, at(2));
    // The WARN follows the row's write.
    await h.until(
      () =>
        h.line(
          new RegExp(
            `^job long run ${id}: cancelled by ${ASKED} .*, but this service does not run it`,
          ),
        ),
      "the WARN saying this service does not run it",
    );
  });

  Deno.test(`daemon[${backend}]: a cancel of a run that just ended here, its end not written yet, is not answered as a run this service does not know`, async () => {
    const db = await freshDatabase(backend);
    const metrics = new Metrics();
    const held = Promise.withResolvers<void>();
    let holding = false;
    let cancelReads = 0;
    await using h = await DaemonHarness.create(db, {
      observer: metrics,
      store: storeWith(db, {
        // The end's write waits, as on a busy MariaDB, while the next poll reads the request.
        updateRuns: (target) => async (...args) => {
          if (holding) await held.promise;
          return await target.updateRuns(...args);
        },
        cancelRequests: (target) => async (...args) => {
          const found = await target.cancelRequests(...args);
          if (found.length > 0) cancelReads++;
          return found;
        },
      }),
    });
    await h.job("short", { schedule: { second: "1" } });
    await h.start();
    await h.clock.set(at(1));
    const run = await h.started("short", at(1));
    const row = await h.run("short", at(1), "running");
    holding = true;
    run.finish();
    await cancelRun(h.store, row.id, { by: ASKED, now: at(1) + 500 });
    await h.clock.set(at(3));
    await h.until(() => cancelReads > 0, "the next poll to read the request");
    // A round trip: that poll is done with what it read.
    await h.store.getRun(row.id);
    holding = false;
    held.resolve();
    const done = await h.run("short", at(1), "success");
    assertEquals(done.note, null, describeRun(done));
    assertEquals(h.line(/does not run it/), undefined, h.lines.join("\n"));
    const text = await metrics.text();
    assertStringIncludes(text, `jobsmanager_runs_total{job="short",status="success"} 1`);
    assertEquals(
      text.includes(`jobsmanager_runs_total{job="short",status="cancelled"}`),
      false,
      text,
    );
  });

  Deno.test(`daemon[${backend}]: a run that ignores its SIGTERM, asked again at the next poll, is not called unknown`, async () => {
    const db = await freshDatabase(backend);
    let reads = 0;
    await using h = await DaemonHarness.create(db, {
      store: storeWith(db, {
        cancelRequests: (target) => async (...args) => {
          const found = await target.cancelRequests(...args);
          reads++;
          return found;
        },
      }),
    });
    await h.job("long", { schedule: { second: "1" } });
    await h.start();
    await h.clock.set(at(1));
    const run = await h.started("long", at(1));
    run.ignoresInterrupt = true;
    const row = await h.run("long", at(1), "running");
    await cancelRun(h.store, row.id, { by: ASKED, now: at(1) + 500 });
    await h.clock.set(at(2));
    await h.until(() => run.interrupted, "the run to be asked to end");
    // The next poll finds the request again, the run still ending.
    const before = reads;
    await h.clock.set(at(4));
    await h.until(() => reads > before, "the next poll to read the request again");
    // A round trip: that poll is done with what it read.
    await h.runs();
    assertEquals((await h.store.getRun(row.id))!.status, "running");
    run.finish({ status: "killed", signal: "SIGKILL", exitCode: null });
    const done = await h.run("long", at(1), "cancelled");
    assertEquals(done.note, `cancelled by ${ASKED} at ${iso(at(1) + 500)}`);
    assertEquals(h.line(/does not run it/), undefined, h.lines.join("\n"));
  });

  Deno.test(`daemon[${backend}]: a run started while the database was away, cancelled once it is back, is ended`, async () => {
    const db = await freshDatabase(backend);
    const link = { down: false };
    await using h = await DaemonHarness.create(db, { store: cuttable(db, link) });
    await h.job("long", { schedule: { second: "1" } });
    await h.start();
    link.down = true;
    await h.clock.set(at(1));
    const run = await h.started("long", at(1));
    assertEquals(run.spec.env.JM_RUN_ID, "", "a run without a row yet has no id");
    await h.until(() => h.line(/^the database is unreachable/), "the outage to be seen");
    link.down = false;
    await h.databaseBack();
    const row = await h.run("long", at(1), "running");
    const asked = h.clock.now();
    await cancelRun(h.store, row.id, { by: ASKED, now: asked });
    await h.until(async () => {
      if (run.interrupted) return true;
      await h.clock.advance(1000);
      return false;
    }, "the run to be ended");
    const done = await h.run("long", at(1), "cancelled");
    assertEquals(done.note, `cancelled by ${ASKED} at ${iso(asked)}`);
  });

  Deno.test(`daemon[${backend}]: a cancel read while the claim of its run is on its way waits for the run to start, then ends it`, async () => {
    const db = await freshDatabase(backend);
    const gates: { read?: PromiseWithResolvers<void>; claim?: PromiseWithResolvers<void> } = {};
    const seen = { reading: false, read: false };
    await using h = await DaemonHarness.create(db, {
      // The fake clock goes on while the claim's answer is held: no outage meanwhile.
      claimTimeoutMs: 600_000,
      store: storeWith(db, {
        claimRuns: (target) => async (...args) => {
          const ids = await target.claimRuns(...args);
          await gates.claim?.promise;
          return ids;
        },
        cancelRequests: (target) => async (...args) => {
          const gate = gates.read;
          if (gate) {
            seen.reading = true;
            await gate.promise;
          }
          const found = await target.cancelRequests(...args);
          if (gate) seen.read = true;
          return found;
        },
      }),
    });
    await h.job("decoy", { schedule: { second: "1" } });
    await h.job("long", { schedule: { second: "5" } });
    await h.start();
    // A run slow to end keeps a cancel request for each poll to read.
    await h.clock.set(at(1));
    const decoy = await h.started("decoy", at(1));
    decoy.ignoresInterrupt = true;
    await cancelRun(h.store, (await h.run("decoy", at(1), "running")).id, {
      by: ASKED,
      now: at(1) + 100,
    });
    await h.clock.set(at(2));
    await h.until(() => decoy.interrupted, "the decoy to be asked to end");
    // The next poll is held before it reads the cancel requests.
    gates.read = Promise.withResolvers();
    await h.clock.set(at(4));
    await h.until(() => seen.reading, "a poll to read the cancel requests");
    // The fire's claim is written, its answer held: the service does not know its run yet.
    gates.claim = Promise.withResolvers();
    await h.clock.set(at(5));
    const row = await h.until(async () => (await h.runs("long"))[0], "the fire's row");
    await cancelRun(h.store, row.id, { by: ASKED, now: at(5) + 100 });
    const read = gates.read;
    delete gates.read;
    read.resolve();
    await h.until(() => seen.read, "the poll to read the cancel request");
    // A round trip: the poll is done with what it read.
    await h.runs();
    assertEquals((await h.store.getRun(row.id))!.status, "running");
    const claim = gates.claim;
    delete gates.claim;
    claim.resolve();
    const run = await h.started("long", at(5));
    await h.clock.set(at(6));
    await h.until(() => run.interrupted, "the run to be ended");
    const done = await h.run("long", at(5), "cancelled");
    assertEquals(done.note, `cancelled by ${ASKED} at ${iso(at(5) + 100)}`);
    assertEquals(h.line(/does not run it/), undefined, h.lines.join("\n"));
    decoy.finish({ status: "killed", signal: "SIGKILL", exitCode: null });
    await h.run("decoy", at(1), "cancelled");
  });
}
