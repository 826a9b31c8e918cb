/**
 * Retries and follow-up jobs (issue 13), in-process on a fake clock, on
 * every backend: a failed run is retried with doubling, capped delays, each
 * attempt its own row; a retry still pending when the next fire comes is
 * dropped (or kept, with --retry-overlap); a job following another runs
 * once per matching end of its runs, recording the parent run.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { DatabaseError } from "../src/errors.ts";
import { type Backend, BACKENDS, freshDatabase, rawQuery } from "./helpers.ts";
import type { Settings } from "../src/config/config.ts";
import { DaemonHarness, NODE_ID, storeWith, T0, until } from "./daemon_harness.ts";
import { settle } from "./fake_clock.ts";
import { node } from "./store_contract.ts";
import { retryDelayMs } from "../src/domain/job.ts";
import { cancelRun } from "../src/app/runs.ts";
import type { Run } from "../src/domain/run.ts";
import { Metrics } from "../src/http/metrics.ts";

const FAILED = { status: "failed", exitCode: 1 } as const;

/**
 * Wait for a retry of `jobId` queued after run `afterId`, and for the
 * service to have logged it: its claim has then come back, so a clock moved
 * next cannot time it out.
 */
async function queued(h: DaemonHarness, jobId: string, afterId = 0): Promise<Run> {
  const row = await h.until(
    async () =>
      (await h.runs(jobId)).find((r) =>
        r.trigger === "retry" && r.node_id === null && r.status === "queued" && r.id > afterId
      ),
    `a retry of ${jobId} queued after run ${afterId}`,
  );
  await h.until(
    () =>
      h.line(
        new RegExp(`^job ${jobId} run \\d+ ended \\w+: attempt \\d+/\\d+ \\(run ${row.id}\\)`),
      ),
    `the service to log that it queued run ${row.id}`,
  );
  return row;
}

/**
 * Start a daemon where "flaky" (at T0+5s, `retries`, `retryDelay` s apart)
 * fails its first attempt and "cleanup" follows its failure: the failed
 * run and its queued retry.
 */
async function failedOnce(
  h: DaemonHarness,
  retries: string,
  retryDelay: string,
): Promise<{ failed: Run; retry: Run }> {
  await h.job("flaky", {
    schedule: { second: "5", minute: "0" },
    retries,
    retry_delay: retryDelay,
  });
  await h.job("cleanup", { after: "flaky:failure" });
  await h.start();
  await h.clock.set(T0 + 5000);
  (await h.started("flaky", T0 + 5000)).finish(FAILED);
  const failed = await h.run("flaky", T0 + 5000, "failed");
  return { failed, retry: await queued(h, "flaky") };
}

/** Wait for cleanup to follow the failed attempt `failed` (`why`: what ended the attempts). */
async function followed(h: DaemonHarness, failed: Run, why: string): Promise<void> {
  const cleanup = await h.until(
    async () => (await h.runs("cleanup")).find((r) => r.trigger === "after"),
    `cleanup to follow the failed attempt once ${why}`,
  );
  assertEquals(cleanup.parent_run_id, failed.id);
}

/**
 * Jobs flaky (retried once) and cleanup (after flaky:failure), and a run
 * of flaky left running by node ghost, silent long enough that the
 * daemon, started, declares it dead: the run's id.
 */
async function runOnGhost(h: DaemonHarness): Promise<number> {
  await h.job("flaky", { schedule: { second: "5", minute: "0" }, retries: "1" });
  await h.job("cleanup", { after: "flaky:failure" });
  await h.store.saveNode(node("ghost", { db_heartbeat_at: 1000, heartbeat_ms: 1000 }));
  const [id] = await h.store.claimRuns([
    { job_id: "flaky", scheduled_at: T0 - 60_000, status: "running", trigger: "schedule" },
  ]);
  await h.store.updateRun(id!, { node_id: "ghost" });
  return id!;
}

/** Wait for run `id` to reach one of `statuses`. */
function ended(h: DaemonHarness, id: number, ...statuses: Run["status"][]): Promise<Run> {
  return h.until(
    async () => {
      const run = await h.store.getRun(id);
      return run && statuses.includes(run.status) ? run : null;
    },
    `run ${id} to be ${statuses.join(" or ")}`,
  );
}

/**
 * Store overrides under which a fire's look for its job's pending retries
 * (queued runs) waits for `look.go`, and the runs set skipped are noted.
 */
function heldRetryLook() {
  const look = { asked: false, answered: false, go: Promise.withResolvers<void>() };
  const skipping: number[] = [];
  const overrides: Parameters<typeof storeWith>[1] = {
    listRuns: (store) => async (filter) => {
      if (filter.status !== "queued") return await store.listRuns(filter);
      look.asked = true;
      await look.go.promise;
      const runs = await store.listRuns(filter);
      look.answered = true;
      return runs;
    },
    updateRun: (store) => (id, update, ...rest) => {
      if (update.status === "skipped") skipping.push(id);
      return store.updateRun(id, update, ...rest);
    },
  };
  return { look, skipping, overrides };
}

/**
 * A harness whose look for job `flaky`'s queued runs (its fires' look for
 * retries to drop) fails with what `refusal` gives (null: it is answered);
 * `pollsOn(n)` moves its clock on until n more polls have begun.
 */
async function flakyLooks(
  backend: Backend,
  refusal: () => Error | null,
  settings: Partial<Settings> = {},
) {
  let polls = 0;
  const db = await freshDatabase(backend);
  const h = await DaemonHarness.create(db, {
    settings,
    store: storeWith(db, {
      listRuns: (store) => (filter) => {
        const refused = filter.status === "queued" && filter.job_id === "flaky" ? refusal() : null;
        return refused === null ? store.listRuns(filter) : Promise.reject(refused);
      },
      pollState: (store) => (...args) => {
        polls++;
        return store.pollState(...args);
      },
    }),
  });
  const pollsOn = async (n: number) => {
    const before = polls;
    await h.until(async () => {
      if (polls < before + n) await h.clock.advance(500);
      return polls >= before + n;
    }, `${n} polls`);
  };
  return { h, pollsOn };
}

/** A connection refused when `away.next` is set, once. */
function refusedOnce(away: { next: boolean }): Error | null {
  if (!away.next) return null;
  away.next = false;
  return new Error("connect ECONNREFUSED 127.0.0.1:3306");
}

for (const backend of BACKENDS) {
  Deno.test(
    `daemon[${backend}]: a failing job is retried after doubling delays, capped, each attempt a row`,
    async () => {
      await using h = await DaemonHarness.create(await freshDatabase(backend));
      await h.job("flaky", {
        schedule: { second: "5", minute: "0" },
        retries: "2",
        retry_delay: "10",
        retry_max_delay: "15",
      });
      const job = (await h.store.getJob("flaky"))!;
      await h.start();
      await h.clock.set(T0 + 5000);
      (await h.started("flaky", T0 + 5000)).finish(FAILED);
      const first = await h.run("flaky", T0 + 5000, "failed");

      const second = await queued(h, "flaky");
      const delay = second.scheduled_at - first.finished_at!;
      assertEquals(delay, retryDelayMs(job, 1, first.id));
      assert(delay >= 10_000 && delay <= 11_000, `first delay ${delay} ms is 10 s + up to 10%`);
      assertEquals([second.attempt, second.first_run_id], [2, first.id]);

      await h.clock.set(second.scheduled_at);
      const secondRun = await h.until(
        () => h.runner.of("flaky").find((r) => r.runId === second.id),
        "the runner to start attempt 2",
      );
      assertEquals(secondRun.startedAt, second.scheduled_at);
      secondRun.finish(FAILED);
      await ended(h, second.id, "failed");

      const third = await queued(h, "flaky", second.id);
      // 20 s doubled, capped by retry_max_delay.
      assertEquals(third.scheduled_at - second.scheduled_at, 15_000);
      assertEquals([third.attempt, third.first_run_id], [3, first.id]);
      await h.clock.set(third.scheduled_at);
      (await h.until(
        () => h.runner.of("flaky").find((r) => r.runId === third.id),
        "the runner to start attempt 3",
      )).finish(FAILED);
      await h.until(
        () => h.line(/^job flaky run \d+ ended failed: attempt 3\/3, no retry left$/),
        "the last attempt to say no retry is left",
      );
      await ended(h, third.id, "failed");
      const rows = await h.runs("flaky");
      assertEquals(
        rows.map((r) => [r.trigger, r.attempt, r.first_run_id, r.status]),
        [
          ["schedule", 1, null, "failed"],
          ["retry", 2, first.id, "failed"],
          ["retry", 3, first.id, "failed"],
        ],
      );
      assertEquals(h.runner.of("flaky").length, 3);
    },
  );

  // Seen in CI on a busy machine: the fire's own look for retries to drop came after its run had
  // failed and queued its retry, and dropped it as if a later fire had come.
  Deno.test(
    `daemon[${backend}]: a run that fails before its fire's look for pending retries keeps its retry`,
    async () => {
      const { look, skipping, overrides } = heldRetryLook();
      const db = await freshDatabase(backend);
      await using h = await DaemonHarness.create(db, { store: storeWith(db, overrides) });
      await h.job("flaky", { schedule: { second: "5", minute: "0" }, retries: "1" });
      await h.start();
      await h.clock.set(T0 + 5000);
      (await h.started("flaky", T0 + 5000)).finish(FAILED);
      await h.until(() => look.asked, "the fire's look for pending retries");
      const retry = await queued(h, "flaky");
      look.go.resolve();
      await h.until(() => look.answered, "the look's answer");
      // What it does with the answer it does at once: a drop is under way by then.
      await settle();
      assertEquals(skipping, [], `run ${retry.id}, the retry of the fire that looked, dropped`);
      await h.clock.set(retry.scheduled_at);
      (await h.until(
        () => h.runner.of("flaky").find((r) => r.runId === retry.id),
        "the runner to start the retry",
      )).finish();
      await ended(h, retry.id, "success");
    },
  );

  // atk211: the same, for a fire whose claim answered after its grace began, so that its run
  // started under a provisional id, which the retry's first_run_id (the real one) never matched.
  Deno.test(
    `daemon[${backend}]: a run started before its row had an id, failing before its fire's look for pending retries, keeps its retry`,
    async () => {
      const { look, skipping, overrides } = heldRetryLook();
      const claim = { asked: false, landed: false, go: Promise.withResolvers<void>() };
      const db = await freshDatabase(backend);
      let first = true;
      await using h = await DaemonHarness.create(db, {
        store: storeWith(db, {
          ...overrides,
          claimRuns: (store) => async (rows) => {
            if (!first) return await store.claimRuns(rows);
            first = false;
            claim.asked = true;
            await claim.go.promise;
            const ids = await store.claimRuns(rows);
            claim.landed = true;
            return ids;
          },
        }),
      });
      await h.job("flaky", {
        schedule: { second: "5", minute: "0" },
        retries: "1",
        misfire_grace_time: "30",
      });
      await h.start();
      await h.clock.set(T0 + 5000);
      await h.until(() => claim.asked, "the fire's claim");
      // Unanswered past the claim's time: the run starts under a provisional id.
      await h.clock.set(T0 + 6500);
      const run = await h.started("flaky", T0 + 5000);
      await h.until(() => look.asked, "the fire's look for pending retries");
      claim.go.resolve();
      await h.until(() => claim.landed, "the fire's claim to land");
      run.finish(FAILED);
      const retry = await h.until(async () => {
        const retry = (await h.runs("flaky")).find((r) => r.trigger === "retry");
        if (!retry) await h.clock.advance(500);
        return retry;
      }, "the retry to be queued");
      look.go.resolve();
      await h.until(() => look.answered, "the look's answer");
      await settle();
      assertEquals(skipping, [], `run ${retry.id}, the retry of the fire that looked, dropped`);
    },
  );

  // atk209: while the database refused connections, each fire of a job with retries logged an
  // ERROR "could not write a run record" (its look for retries to drop), and dropped none.
  Deno.test(
    `daemon[${backend}]: a fire whose look for pending retries finds the database away drops them once it answers, without an error line`,
    async () => {
      const away = { next: false };
      const { h: harness } = await flakyLooks(backend, () => refusedOnce(away));
      await using h = harness;
      await h.job("flaky", { schedule: { second: "*/10" }, retries: "1", retry_delay: "30" });
      await h.start();
      await h.clock.set(T0 + 10_000);
      (await h.started("flaky", T0 + 10_000)).finish(FAILED);
      const retry = await queued(h, "flaky");
      away.next = true;
      await h.clock.set(T0 + 20_000);
      await h.started("flaky", T0 + 20_000);
      const dropped = await h.until(async () => {
        const row = await h.store.getRun(retry.id);
        if (row?.status === "queued" && h.clock.now() < T0 + 29_000) await h.clock.advance(500);
        return row?.status === "queued" ? null : row;
      }, `retry run ${retry.id} to be dropped by the fire at 20 s`);
      assertEquals(dropped.status, "skipped", dropped.note ?? "");
      assertStringIncludes(dropped.note ?? "", "retry dropped: the next scheduled fire");
      assertEquals(h.line(/could not write a run record/), undefined);
    },
  );

  // atk212: the drop a fire owed while the database was away was made at the next poll although
  // a later fire had come and dropped what it had to: it dropped that later fire's run's retry.
  Deno.test(
    `daemon[${backend}]: a drop owed from the database's absence is not made once a later fire came: that fire's retry stays`,
    async () => {
      const away = { next: false };
      const { h: harness, pollsOn } = await flakyLooks(backend, () => refusedOnce(away), {
        "jobsmanager.reload_interval": 10,
      });
      await using h = harness;
      await h.job("flaky", { schedule: { second: "12,14,16" }, retries: "1", retry_delay: "30" });
      await h.start();
      await h.clock.set(T0 + 12_000);
      (await h.started("flaky", T0 + 12_000)).finish(FAILED);
      const first = await queued(h, "flaky");
      // The fire at 14 s finds the database away: its drop waits; at 16 s the next one's does not.
      away.next = true;
      await h.clock.set(T0 + 14_000);
      (await h.started("flaky", T0 + 14_000)).finish();
      await h.until(() => !away.next, "the look of the fire at 14 s to fail");
      await h.clock.set(T0 + 16_000);
      (await h.started("flaky", T0 + 16_000)).finish(FAILED);
      await ended(h, first.id, "skipped");
      const last = await queued(h, "flaky", first.id);
      // Two polls on: the first of them made every drop that waited.
      await pollsOn(2);
      const row = await h.store.getRun(last.id);
      assertEquals([row?.status, row?.note], ["queued", `retry: run ${last.id - 1} ended failed`]);
    },
  );

  // atk212: a drop that failed again at every poll made each poll an outage of the database.
  Deno.test(
    `daemon[${backend}]: a drop owed that keeps failing is said once, and does not make each poll an outage`,
    async () => {
      const { h: harness, pollsOn } = await flakyLooks(
        backend,
        () => new DatabaseError("no answer within 10 s", { unreachable: true, unanswered: true }),
      );
      await using h = harness;
      await h.job("flaky", { schedule: { second: "*/10" }, retries: "1", retry_delay: "30" });
      await h.start();
      await h.clock.set(T0 + 10_000);
      await h.started("flaky", T0 + 10_000);
      // Ten polls on (every reload_interval, 2 s).
      await pollsOn(10);
      const said = h.lines.filter((l) => /could not be read/.test(l));
      assertEquals(said.length, 1, h.lines.join("\n"));
      assertMatch(
        said[0],
        /^scheduler: job flaky: its pending retries, which the fire at \S+ drops, could not be read: DatabaseError: no answer within 10 s; tried again at each poll$/,
      );
      assertEquals(h.lines.filter((l) => /did not answer|is back/.test(l)), []);
    },
  );

  Deno.test(
    `daemon[${backend}]: each run names the version of its job it ran; a retry started after a change, the new one`,
    async () => {
      await using h = await DaemonHarness.create(await freshDatabase(backend));
      const options = { schedule: { second: "5", minute: "0" }, retries: "1", retry_delay: "10" };
      await h.job("flaky", options);
      const before = (await h.store.getJob("flaky"))!.updated_at;
      await h.start();
      await h.clock.set(T0 + 5000);
      (await h.started("flaky", T0 + 5000)).finish(FAILED);
      const failed = await h.run("flaky", T0 + 5000, "failed");
      const retry = await queued(h, "flaky");
      assertEquals([failed.job_updated_at, retry.job_updated_at], [before, before]);
      await h.clock.set(T0 + 6000);
      const marker = await h.job("flaky", { ...options, command: "echo v2" });
      const after = (await h.store.getJob("flaky"))!.updated_at;
      assert(after > before, `the change moved updated_at (${before} -> ${after})`);
      h.daemon.reload();
      await h.until(
        async () => (await h.markers()).find((m) => m.id === marker)?.updated,
        `marker ${marker} (the change) to be applied`,
      );
      await h.clock.set(retry.scheduled_at);
      const started = await h.until(
        () => h.runner.of("flaky").find((r) => r.runId === retry.id),
        "the runner to start the retry",
      );
      assertEquals(started.spec.command, "echo v2");
      started.finish();
      const ran = await ended(h, retry.id, "success");
      assertEquals(ran.job_updated_at, after, `the retry as recorded: ${JSON.stringify(ran)}`);
    },
  );

  Deno.test(
    `daemon[${backend}]: a retry skipped by max_instances ends the attempts: the failure follow-ups start`,
    async () => {
      await using h = await DaemonHarness.create(await freshDatabase(backend));
      await h.job("slowfail", {
        schedule: { second: "*/10" },
        retries: "1",
        retry_delay: "15",
        retry_overlap: true,
      });
      await h.job("cleanup", { after: "slowfail:failure" });
      await h.start();
      await h.clock.set(T0 + 10_000);
      (await h.started("slowfail", T0 + 10_000)).finish(FAILED);
      const retry = await queued(h, "slowfail");
      assert(retry.scheduled_at > T0 + 20_000, "the retry is due after the next fire");
      // The next fire still runs when the retry is due: max_instances (1) skips the retry.
      await h.clock.set(T0 + 20_000);
      await h.started("slowfail", T0 + 20_000);
      await h.clock.set(retry.scheduled_at);
      const skipped = await ended(h, retry.id, "skipped");
      assertEquals(skipped.note, "max_instances (1) runs were still running");
      const cleanup = await h.until(
        async () => (await h.runs("cleanup")).find((r) => r.trigger === "after"),
        "cleanup to run once the retry of slowfail was skipped",
      );
      const failed = await h.run("slowfail", T0 + 10_000, "failed");
      assertEquals(cleanup.parent_run_id, failed.id);
    },
  );

  Deno.test(
    `daemon[${backend}]: a pending retry cancelled by hand ends the attempts: the failure follow-ups start`,
    async () => {
      const metrics = new Metrics();
      await using h = await DaemonHarness.create(await freshDatabase(backend), {
        observer: metrics,
      });
      const { failed, retry } = await failedOnce(h, "2", "60");
      const asked = await cancelRun(h.store, retry.id, { by: "ops@box", now: T0 + 6000 });
      assertEquals([asked.outcome, asked.run.status], ["requested", "queued"]);
      // Polls come every reload_interval (2 s), long before the retry is due.
      await h.clock.set(T0 + 8000);
      const cancelled = await ended(h, retry.id, "cancelled");
      assertEquals(
        [cancelled.note, cancelled.node_id],
        [`cancelled by ops@box at ${new Date(T0 + 6000).toISOString()}`, NODE_ID],
      );
      await followed(h, failed, "its retry was cancelled");
      assertStringIncludes(
        await metrics.text(),
        `jobsmanager_runs_total{job="flaky",status="cancelled"} 1`,
      );
      await h.clock.set(retry.scheduled_at + 1000);
      assert(!h.runner.of("flaky").some((r) => r.runId === retry.id), "the cancelled retry ran");
    },
  );

  Deno.test(
    `daemon[${backend}]: a running retry cancelled by hand ends the attempts: the failure follow-ups start`,
    async () => {
      await using h = await DaemonHarness.create(await freshDatabase(backend));
      const { failed, retry } = await failedOnce(h, "2", "10");
      await h.clock.set(retry.scheduled_at);
      const running = await h.until(
        () => h.runner.of("flaky").find((r) => r.runId === retry.id),
        "the retry to start",
      );
      await cancelRun(h.store, retry.id, { by: "ops@box", now: retry.scheduled_at + 100 });
      await h.clock.set(retry.scheduled_at + 2000);
      await h.until(() => running.interrupted, "the retry to be ended");
      await ended(h, retry.id, "cancelled");
      await followed(h, failed, "its retry was cancelled");
      assertEquals((await h.runs("flaky")).filter((r) => r.trigger === "retry").length, 1);
    },
  );

  Deno.test(
    `daemon[${backend}]: a retry beyond the attempts a job allows now is not run: the failure follow-ups start`,
    async () => {
      await using h = await DaemonHarness.create(await freshDatabase(backend));
      const { failed, retry } = await failedOnce(h, "1", "10");
      await h.job("flaky", { retries: "0" });
      await h.clock.set(retry.scheduled_at);
      const skipped = await ended(h, retry.id, "skipped");
      assertEquals(
        skipped.note,
        "not run: the job's retries were lowered to 0 since this retry was queued (attempt 2; it allows 1 now)",
      );
      await followed(h, failed, "the retry was not run");
      assert(!h.runner.of("flaky").some((r) => r.runId === retry.id), "the retry ran");
    },
  );

  Deno.test(
    `daemon[${backend}]: retries lowered to 0 while a run runs: its failure is not retried, its follow-ups start`,
    async () => {
      await using h = await DaemonHarness.create(await freshDatabase(backend));
      await h.job("flaky", { schedule: { second: "5", minute: "0" }, retries: "1" });
      await h.job("cleanup", { after: "flaky:failure" });
      await h.start();
      await h.clock.set(T0 + 5000);
      const running = await h.started("flaky", T0 + 5000);
      const lowered = await h.job("flaky", { retries: "0" });
      await h.clock.set(T0 + 6000);
      await h.until(
        async () => (await h.markers()).find((m) => m.id === lowered)?.updated,
        "the change to be applied",
      );
      running.finish(FAILED);
      const failed = await h.run("flaky", T0 + 5000, "failed");
      await followed(h, failed, "no retry was left");
      assertEquals((await h.runs("flaky")).filter((r) => r.trigger === "retry"), []);
    },
  );

  Deno.test(
    `daemon[${backend}]: retries raised while a run runs: its failure is retried, its attempts counted by them`,
    async () => {
      await using h = await DaemonHarness.create(await freshDatabase(backend));
      await h.job("flaky", { schedule: { second: "5", minute: "0" } });
      await h.start();
      await h.clock.set(T0 + 5000);
      const running = await h.started("flaky", T0 + 5000);
      const raised = await h.job("flaky", { retries: "2", retry_delay: "10" });
      await h.clock.set(T0 + 6000);
      await h.until(
        async () => (await h.markers()).find((m) => m.id === raised)?.updated,
        "the change to be applied",
      );
      running.finish(FAILED);
      const failed = await h.run("flaky", T0 + 5000, "failed");
      const retry = await queued(h, "flaky");
      assertEquals([retry.attempt, retry.first_run_id], [2, failed.id]);
      assert(
        h.line(
          new RegExp(`^job flaky run ${failed.id} ended failed: attempt 2/3 \\(run ${retry.id}\\)`),
        ),
        h.lines.join("\n"),
      );
    },
  );

  Deno.test(
    `daemon[${backend}]: a retry of a job disabled meanwhile is skipped: the failure follow-ups start`,
    async () => {
      await using h = await DaemonHarness.create(await freshDatabase(backend));
      const { failed, retry } = await failedOnce(h, "1", "10");
      await h.job("flaky", { enabled: false });
      await h.clock.set(retry.scheduled_at);
      const skipped = await ended(h, retry.id, "skipped");
      assertEquals(skipped.note, "the job was disabled before its retry run started");
      await followed(h, failed, "the retry was not run");
    },
  );

  Deno.test(
    `daemon[${backend}]: the queued runs of a removed job are skipped, not failures, and counted`,
    async () => {
      const metrics = new Metrics();
      await using h = await DaemonHarness.create(await freshDatabase(backend), {
        observer: metrics,
      });
      await h.job("flaky", {
        schedule: { second: "5", minute: "0" },
        retries: "1",
        retry_delay: "10",
      });
      await h.start();
      await h.clock.set(T0 + 5000);
      (await h.started("flaky", T0 + 5000)).finish(FAILED);
      const retry = await queued(h, "flaky");
      await h.removeJob("flaky");
      await h.clock.set(retry.scheduled_at);
      const skipped = await ended(h, retry.id, "skipped");
      assertEquals(skipped.note, "the job was removed before its retry run started");
      // Its series went with the job (the reload that found it removed): this one is the skip's,
      // counted once its row is written (the row may be read back first).
      const series = `jobsmanager_runs_total{job="flaky",status="skipped"} 1`;
      await until(
        async () => (await metrics.text()).includes(series) || null,
        `${series} in /metrics`,
        () => metrics.text(),
      );
    },
  );

  Deno.test(
    `daemon[${backend}]: a retry still pending at the next fire is dropped, saying why`,
    async () => {
      await using h = await DaemonHarness.create(await freshDatabase(backend));
      await h.job("often", { schedule: { second: "*/10" }, retries: "3", retry_delay: "15" });
      await h.job("cleanup", { after: "often:failure" });
      await h.job("keeps", {
        schedule: { second: "*/10" },
        retries: "3",
        retry_delay: "15",
        retry_overlap: true,
      });
      await h.start();
      await h.clock.set(T0 + 10_000);
      (await h.started("often", T0 + 10_000)).finish(FAILED);
      (await h.started("keeps", T0 + 10_000)).finish(FAILED);
      const dropped = await queued(h, "often");
      const kept = await queued(h, "keeps");
      assert(dropped.scheduled_at > T0 + 20_000, "the retry is due after the next fire");

      await h.clock.set(T0 + 20_000);
      const fire = await h.run("often", T0 + 20_000, "running");
      const skipped = await ended(h, dropped.id, "skipped");
      assertEquals(
        skipped.note,
        `retry dropped: the next scheduled fire (run ${fire.id} at ${
          new Date(T0 + 20_000).toISOString()
        }) came before it ran (--retry-overlap keeps retries)`,
      );
      // The failed attempt was the last after all: its failure follow-up starts now.
      const cleanup = await h.until(
        async () => (await h.runs("cleanup")).find((r) => r.status === "running"),
        "cleanup to run once the retry of often was dropped",
      );
      const failed = await h.run("often", T0 + 10_000, "failed");
      assertEquals([cleanup.trigger, cleanup.parent_run_id], ["after", failed.id]);
      (await h.started("often", T0 + 20_000)).finish();
      (await h.started("keeps", T0 + 20_000)).finish();
      await h.run("keeps", T0 + 20_000, "success");
      await h.clock.set(kept.scheduled_at);
      const retry = await h.until(
        () => h.runner.of("keeps").find((r) => r.runId === kept.id),
        "the kept retry to start",
      );
      retry.finish();
      await ended(h, kept.id, "success");
      assertEquals((await h.store.getRun(dropped.id))?.status, "skipped");
      assert(!h.runner.of("often").some((r) => r.runId === dropped.id), "the dropped retry ran");
    },
  );

  Deno.test(
    `daemon[${backend}]: a fire queued behind, started as the fire before it fails, drops that fire's retry`,
    async () => {
      await using h = await DaemonHarness.create(await freshDatabase(backend), {
        settings: { "jobsmanager.misfire_grace_time": 60, "jobsmanager.coalesce": false },
      });
      await h.job("tick", { schedule: { second: "10,20" }, retries: "1", retry_delay: "5" });
      await h.start();
      // A catch-up: the fire of 20 s waits behind the one of 10 s.
      await h.clock.set(T0 + 20_100);
      const first = await h.started("tick", T0 + 10_000);
      await h.run("tick", T0 + 20_000, "queued");
      first.finish(FAILED);
      const next = await h.started("tick", T0 + 20_000);
      const fire = await h.run("tick", T0 + 20_000, "running");
      const retry = await h.until(
        async () => (await h.runs("tick")).find((r) => r.trigger === "retry"),
        "the retry of the failed fire to be recorded",
      );
      const dropped = await ended(h, retry.id, "skipped", "success", "failed");
      assertEquals(
        dropped.note,
        `retry dropped: the next scheduled fire (run ${fire.id} at ${
          new Date(T0 + 20_000).toISOString()
        }) came before it ran (--retry-overlap keeps retries)`,
      );
      next.finish();
      await h.run("tick", T0 + 20_000, "success");
      assertEquals(h.runner.of("tick").length, 2, "the dropped retry ran");
    },
  );

  // atk209: a follow-up's row, taken by a poll and started before the answer to its insert came
  // back, was taken for a run whose row jm_runs had lost: its end was never written.
  Deno.test(
    `daemon[${backend}]: a follow-up started before the answer to its insert came back keeps its row`,
    async () => {
      const answer = Promise.withResolvers<void>();
      let held = false;
      const db = await freshDatabase(backend);
      await using h = await DaemonHarness.create(db, {
        // The clock moves on while the answer is held: not an outage.
        claimTimeoutMs: 600_000,
        store: storeWith(db, {
          claimRuns: (store) => async (rows) => {
            const ids = await store.claimRuns(rows);
            if (rows.some((r) => r.trigger === "after")) {
              held = true;
              await answer.promise;
            }
            return ids;
          },
        }),
      });
      await h.job("a", { schedule: { second: "*/10" } });
      await h.job("b", { after: "a" });
      await h.start();
      await h.clock.set(T0 + 10_000);
      (await h.started("a", T0 + 10_000)).finish();
      await h.until(() => held, "b's row to be written, its answer held");
      // A poll finds the row due and starts it: the timed poll, if none comes sooner.
      const b = await h.until(async () => {
        const started = h.runner.of("b")[0];
        if (!started) await h.clock.advance(500);
        return started;
      }, "the runner to start b before the answer came");
      answer.resolve();
      await h.until(() => h.line(/^job a run \d+ ended success: follow-up job b/), "b's queueing");
      b.finish();
      const ran = await ended(h, b.runId!, "success");
      assertEquals(ran.trigger, "after");
      assertEquals(h.line(/gave its id to a new run/), undefined);
    },
  );

  Deno.test(
    `daemon[${backend}]: A → B on success and A → C on failure, once per run of A`,
    async () => {
      await using h = await DaemonHarness.create(await freshDatabase(backend));
      await h.job("a", { schedule: { second: "*/10" } });
      await h.job("b", { after: "a" });
      await h.job("c", { after: "a:failure" });
      await h.start();

      await h.clock.set(T0 + 10_000);
      (await h.started("a", T0 + 10_000)).finish();
      const a1 = await h.run("a", T0 + 10_000, "success");
      const b = await h.until(
        async () => (await h.runs("b")).find((r) => r.status === "running"),
        "b to run after a's success",
      );
      assertEquals(
        [b.trigger, b.parent_run_id, b.scheduled_at, b.started_at],
        ["after", a1.id, a1.finished_at, T0 + 10_000],
      );
      (await h.until(
        () => h.runner.of("b").find((r) => r.runId === b.id),
        "the runner to start b",
      )).finish();
      await ended(h, b.id, "success");

      await h.clock.set(T0 + 20_000);
      (await h.started("a", T0 + 20_000)).finish(FAILED);
      const a2 = await h.run("a", T0 + 20_000, "failed");
      const c = await h.until(
        async () => (await h.runs("c")).find((r) => r.status === "running"),
        "c to run after a's failure",
      );
      assertEquals([c.trigger, c.parent_run_id], ["after", a2.id]);
      (await h.until(
        () => h.runner.of("c").find((r) => r.runId === c.id),
        "the runner to start c",
      )).finish();
      await ended(h, c.id, "success");
      await h.until(
        () => h.line(new RegExp(`^job a run ${a2.id} ended failed: follow-up job c`)),
        "the follow-up to be logged",
      );
      assertEquals((await h.runs("b")).map((r) => r.parent_run_id), [a1.id]);
      assertEquals((await h.runs("c")).map((r) => r.parent_run_id), [a2.id]);
      assertEquals(h.runner.of("b").length + h.runner.of("c").length, 2);
    },
  );

  Deno.test(
    `daemon[${backend}]: a retry queued before a restart is taken by the next service when due`,
    async () => {
      await using h = await DaemonHarness.create(await freshDatabase(backend));
      await h.job("flaky", { schedule: { second: "5", minute: "0" }, retries: "2" });
      // What a service that stopped after queuing the retry left.
      const [first] = await h.store.claimRuns([
        { job_id: "flaky", scheduled_at: T0 - 10_000, status: "failed", trigger: "schedule" },
      ]);
      const [retry] = await h.store.claimRuns([{
        job_id: "flaky",
        scheduled_at: T0 + 3000,
        status: "queued",
        trigger: "retry",
        attempt: 2,
        first_run_id: first,
      }]);
      await h.start();
      await h.clock.set(T0 + 3000);
      const run = await h.until(
        () => h.runner.of("flaky").find((r) => r.runId === retry),
        "the queued retry to start",
      );
      assertEquals(run.startedAt, T0 + 3000);
      run.finish();
      const done = await ended(h, retry!, "success");
      assertEquals([done.attempt, done.first_run_id, done.node_id], [2, first, NODE_ID]);
    },
  );

  Deno.test(
    `daemon[${backend}]: a declaration of death whose answer was lost still retries the lost runs`,
    async () => {
      const db = await freshDatabase(backend);
      const lose = { next: true };
      await using h = await DaemonHarness.create(db, {
        store: () => {
          const store = db.open();
          const declareDead = store.declareDead.bind(store);
          // Written, then answered by an error: the COMMIT's answer lost on its way back.
          store.declareDead = async (id, lastBeat, by) => {
            const declared = await declareDead(id, lastBeat, by);
            if (declared === null || !lose.next) return declared;
            lose.next = false;
            throw new Error("read ECONNRESET: the connection was lost");
          };
          return store;
        },
      });
      await h.job("flaky", { schedule: { second: "5", minute: "0" }, retries: "1" });
      await h.start();
      // After the start, whose own sweep must not fail: the next sweeps find it silent.
      await h.store.saveNode(node("ghost", { db_heartbeat_at: 1000, heartbeat_ms: 1000 }));
      const [lostId] = await h.store.claimRuns([
        { job_id: "flaky", scheduled_at: T0 - 5000, status: "running", trigger: "schedule" },
      ]);
      await h.store.updateRun(lostId!, { node_id: "ghost" });
      let moved = 0;
      const retry = await h.until(async () => {
        const found = (await h.runs("flaky")).find((r) => r.trigger === "retry");
        // Each step wakes the sweeps and the database's probe; the next waits a little for them.
        if (!found && Date.now() - moved > 100) {
          moved = Date.now();
          await h.clock.advance(1000);
        }
        return found;
      }, "a retry of the run lost by the declaration whose answer was lost");
      assert(!lose.next, "the declaration's answer was lost");
      assertEquals([retry.attempt, retry.first_run_id], [2, lostId]);
      assertEquals((await h.store.getRun(lostId!))?.status, "lost");
      assertEquals((await h.runs("flaky")).filter((r) => r.trigger === "retry").length, 1);
      assertEquals(h.count(/^node ghost sent no heartbeat for \d+ s .* and is declared dead/), 1);
    },
  );

  Deno.test(
    `daemon[${backend}]: the node that declares another dead retries its lost runs`,
    async () => {
      await using h = await DaemonHarness.create(await freshDatabase(backend));
      const lostId = await runOnGhost(h);
      await h.start();
      const lost = await ended(h, lostId, "lost");
      const retry = await h.until(
        async () => (await h.runs("flaky")).find((r) => r.trigger === "retry"),
        "a retry of the lost run",
      );
      assertEquals([retry.attempt, retry.first_run_id], [2, lostId]);
      assertEquals(
        retry.scheduled_at,
        lost.finished_at! + retryDelayMs(
          (await h.store.getJob("flaky"))!,
          1,
          lostId,
        ),
      );
      // It ended when it was last known to run, at its fire a minute ago (the ghost's last beat
      // is older): the retry is due at once, before the next scheduled fire.
      const run = await h.until(
        () => h.runner.of("flaky").find((r) => r.runId === retry.id),
        "the retry to start",
      );
      run.finish(FAILED);
      await ended(h, retry.id, "failed");
      const cleanup = await h.until(
        async () => (await h.runs("cleanup"))[0],
        "cleanup to follow the last failed attempt",
      );
      assertEquals([cleanup.trigger, cleanup.parent_run_id], ["after", retry.id]);
      assertEquals((await h.runs("cleanup")).length, 1);
    },
  );

  Deno.test(
    `daemon[${backend}]: a lost run whose node, back, wrote its end before the declaring node read it is not retried or followed there`,
    async () => {
      // atk222: the declaring node followed the end the other had written (and followed) itself.
      const db = await freshDatabase(backend);
      const ended = { id: 0 };
      await using h = await DaemonHarness.create(db, {
        store: storeWith(db, {
          getRun: (target) => async (id) => {
            if (id === ended.id) {
              ended.id = 0;
              await target.updateRun(id, {
                status: "failed",
                exit_code: 1,
                finished_at: T0 - 1000,
              });
            }
            return await target.getRun(id);
          },
        }),
      });
      const lostId = await runOnGhost(h);
      ended.id = lostId;
      await h.start();
      await h.until(() => ended.id === 0 || null, "the declaring node to read the lost run");
      // What it would queue is queued by the stop.
      await h.stop();
      assertEquals(
        (await h.runs("flaky")).map((r) => [r.id, r.status]),
        [[lostId, "failed"]],
        "a retry of the end the other node wrote",
      );
      assertEquals(await h.runs("cleanup"), [], "a follow-up of the end the other node wrote");
    },
  );

  Deno.test(
    `daemon[${backend}]: a lost run whose cancel was asked before its node was declared dead is not retried, and nothing follows it`,
    async () => {
      await using h = await DaemonHarness.create(await freshDatabase(backend));
      const lostId = await runOnGhost(h);
      const asked = await cancelRun(h.store, lostId, { by: "ops@box", now: T0 - 30_000 });
      assertEquals(asked.outcome, "requested");
      await h.start();
      await ended(h, lostId, "lost");
      // Decided either way: heeded, or retried (as before the fix).
      await h.until(
        () =>
          h.line(
            /^job flaky run \d+: lost, after ops@box asked at \S+ to cancel it: not retried, nothing follows it$/,
          ) ??
            h.line(/^job flaky run \d+ ended lost: attempt 2\/2/),
        "the lost run's end to be acted on",
      );
      assertEquals(
        (await h.runs("flaky")).map((r) => [r.id, r.status]),
        [[lostId, "lost"]],
        "no retry",
      );
      assertEquals(await h.runs("cleanup"), [], "no follow-up");
    },
  );

  Deno.test(
    `daemon[${backend}]: a lost retry whose cancel was asked before its node was declared dead ends the attempts: not retried, the follow-ups of the attempt before it start`,
    async () => {
      // atk221: the follow-ups never started, where a cancelled retry's do (README, Retries).
      await using h = await DaemonHarness.create(await freshDatabase(backend));
      await h.job("flaky", { schedule: { second: "5", minute: "0" }, retries: "2" });
      await h.job("cleanup", { after: "flaky:failure" });
      await h.store.saveNode(node("ghost", { db_heartbeat_at: 1000, heartbeat_ms: 1000 }));
      const [first, retry] = await h.store.claimRuns([
        { job_id: "flaky", scheduled_at: T0 - 120_000, status: "running", trigger: "schedule" },
        {
          job_id: "flaky",
          scheduled_at: T0 - 60_000,
          status: "running",
          trigger: "retry",
          attempt: 2,
          first_run_id: null,
        },
      ]);
      await h.store.updateRun(first!, { status: "failed", finished_at: T0 - 90_000 });
      await h.sql("UPDATE jm_runs SET node_id = 'ghost', first_run_id = ? WHERE id = ?", [
        first,
        retry,
      ]);
      const asked = await cancelRun(h.store, retry!, { by: "ops@box", now: T0 - 30_000 });
      assertEquals(asked.outcome, "requested");
      await h.start();
      await ended(h, retry!, "lost");
      const cleanup = await h.until(
        async () => (await h.runs("cleanup"))[0],
        "cleanup to follow the attempt before the lost retry",
      );
      assertEquals([cleanup.trigger, cleanup.parent_run_id], ["after", first]);
      assert(
        h.line(
          /^job flaky run \d+: lost, after ops@box asked at \S+ to cancel it: not retried; the follow-ups of the attempt before it start$/,
        ),
        await h.describe(),
      );
      assertEquals(
        (await h.runs("flaky")).map((r) => [r.id, r.status]),
        [[first, "failed"], [retry, "lost"]],
        "no third attempt",
      );
      assertEquals((await h.runs("cleanup")).length, 1);
    },
  );

  Deno.test(
    `daemon[${backend}]: a run a killed service left behind is lost at its restart: retried, notified, followed`,
    async () => {
      await using h = await DaemonHarness.create(await freshDatabase(backend));
      await h.job("flaky", { cron: "0 12 15 6 *", retries: "1", on_failure: "cat > /dev/null" });
      await h.job("cleanup", { after: "flaky:failure" });
      // The row the killed service left: no clean stop, its last beat 30 s before the restart.
      await h.store.saveNode(node(NODE_ID, {
        heartbeat_at: T0 - 30_000,
        db_heartbeat_at: (await h.store.databaseNow()) - 600_000,
        heartbeat_ms: 5000,
      }));
      const [lostId] = await h.store.claimRuns([{
        job_id: "flaky",
        scheduled_at: T0 - 60_000,
        started_at: T0 - 60_000,
        status: "running",
        trigger: "schedule",
        node_id: NODE_ID,
      }]);
      await h.start();
      const lost = await ended(h, lostId!, "lost");
      assertEquals(lost.finished_at, T0 - 30_000);
      assert(
        h.line(/^1 runs left running by a previous service were marked lost$/),
        h.lines.join("\n"),
      );
      const retry = await h.until(
        async () => (await h.runs("flaky")).find((r) => r.trigger === "retry"),
        "a retry of the lost run",
      );
      assertEquals([retry.attempt, retry.first_run_id], [2, lostId]);
      await h.until(
        async () =>
          (await rawQuery(h.db, "SELECT ref FROM jm_notifications WHERE event = 'failure'"))
            .some((r) => Number(r.ref) === lostId),
        "on_failure of the lost run",
      );
      (await h.until(
        () => h.runner.of("flaky").find((r) => r.runId === retry.id),
        "the retry to start",
      )).finish(FAILED);
      const cleanup = await h.until(
        async () => (await h.runs("cleanup"))[0],
        "cleanup to follow the last failed attempt",
      );
      assertEquals([cleanup.trigger, cleanup.parent_run_id], ["after", retry.id]);
    },
  );

  Deno.test(
    `daemon[${backend}]: a run a cleanly stopped service left behind stays interrupted, not retried`,
    async () => {
      await using h = await DaemonHarness.create(await freshDatabase(backend));
      await h.job("flaky", { cron: "0 12 15 6 *", retries: "1" });
      await h.job("cleanup", { after: "flaky:always" });
      await h.store.saveNode(node(NODE_ID, {
        heartbeat_at: T0 - 30_000,
        stopped_at: T0 - 29_000,
        db_heartbeat_at: (await h.store.databaseNow()) - 600_000,
        heartbeat_ms: 5000,
      }));
      const [id] = await h.store.claimRuns([{
        job_id: "flaky",
        scheduled_at: T0 - 60_000,
        started_at: T0 - 60_000,
        status: "running",
        trigger: "schedule",
        node_id: NODE_ID,
      }]);
      await h.start();
      assertEquals((await h.store.getRun(id!))?.status, "interrupted");
      assert(h.line(/^1 runs left running by a previous service were marked interrupted$/));
      assertEquals((await h.runs("flaky")).length, 1);
      assertEquals(await h.runs("cleanup"), []);
    },
  );

  Deno.test(
    `daemon[${backend}]: a disabled follow-up job does not run: its turn is recorded skipped`,
    async () => {
      await using h = await DaemonHarness.create(await freshDatabase(backend));
      await h.job("a", { schedule: { second: "*/10" } });
      await h.job("b", { after: "a", enabled: false });
      await h.start();
      await h.clock.set(T0 + 10_000);
      (await h.started("a", T0 + 10_000)).finish();
      const a = await h.run("a", T0 + 10_000, "success");
      const b = await h.until(async () => (await h.runs("b"))[0], "b's turn to be recorded");
      assertEquals(
        [b.status, b.trigger, b.parent_run_id, b.node_id, b.note],
        [
          "skipped",
          "after",
          a.id,
          NODE_ID,
          `not run: the job is disabled (after run ${a.id} of a ended success)`,
        ],
      );
      assertEquals(h.runner.of("b"), []);
    },
  );

  Deno.test(
    `daemon[${backend}]: a follow-up cycle written by hand in SQL is logged and not followed`,
    async () => {
      await using h = await DaemonHarness.create(await freshDatabase(backend));
      await h.job("a", { schedule: { second: "*/10" } });
      await h.job("b", { after: "a" });
      await h.job("c", { after: "a" });
      await h.sql("UPDATE jm_jobs SET after_job = 'b', after_outcome = 'success' WHERE id = 'a'");
      await h.start();
      await h.until(
        () =>
          h.line(
            /^job a: its follow-up link closes a cycle, a → b → a, and is ignored \(fix it with `jobsmanager job update --after '' a`\)$/,
          ),
        "the cycle to be logged",
      );
      await h.clock.set(T0 + 10_000);
      (await h.started("a", T0 + 10_000)).finish();
      await h.until(async () => (await h.runs("c")).length === 1, "c to follow a");
      assertEquals(await h.runs("b"), [], "b, in the cycle, did not follow a");
    },
  );

  Deno.test(
    `daemon[${backend}]: a retry passes the max_instances gate: skipped while the next fire runs`,
    async () => {
      await using h = await DaemonHarness.create(await freshDatabase(backend));
      await h.job("slow", {
        schedule: { second: "*/10" },
        retries: "1",
        retry_delay: "15",
        retry_overlap: true,
        max_instances: "1",
      });
      await h.start();
      await h.clock.set(T0 + 10_000);
      (await h.started("slow", T0 + 10_000)).finish(FAILED);
      const retry = await queued(h, "slow");
      await h.clock.set(T0 + 20_000);
      const next = await h.started("slow", T0 + 20_000);
      await h.clock.set(retry.scheduled_at);
      const skipped = await ended(h, retry.id, "skipped");
      assertEquals(
        [skipped.note, skipped.node_id],
        ["max_instances (1) runs were still running", NODE_ID],
      );
      assert(next.running, "the fire kept running");
      assert(!h.runner.of("slow").some((r) => r.runId === retry.id), "the retry started");
    },
  );
}
