/**
 * The run use cases (src/app/runs.ts) on a real store, every backend, each
 * test on a fresh database: the manual-run rows `job run` writes, `forced`
 * as the service reads it back, the refusal without a live service,
 * cancelling, and runs that do not exist.
 */
import { assertEquals, assertRejects } from "./assert.ts";
import { addJob } from "../src/app/jobs.ts";
import { cancelRun, hereNode, requestRun, showRun, startHereRun } from "../src/app/runs.ts";
import { hereMarker, holderOf } from "../src/domain/here_run.ts";
import { CLI_NAMES } from "../src/cli/input_names.ts";
import { buildJob } from "../src/domain/job.ts";
import { NotFoundError, RuntimeError } from "../src/errors.ts";
import type { Store } from "../src/store/store.ts";
import {
  type Backend,
  BACKENDS,
  freshDatabase,
  migrateFresh,
  rawQuery,
  type TestDatabase,
} from "./helpers.ts";

const T0 = Date.UTC(2026, 0, 1);
const NOT_FOUND = "job 'nope' does not exist (see `jobsmanager job list`)";
const HEARTBEAT_MS = 5000;
/** A request queued whether or not a service is live. */
const QUEUE = { queue: true, now: T0, heartbeatMs: HEARTBEAT_MS, names: CLI_NAMES };
const BY = "ops@host-1";

/** Run `fn` on a migrated store over a fresh database `db` of `backend`, holding job `a`. */
async function onFreshStore(
  backend: Backend,
  fn: (store: Store, db: TestDatabase) => Promise<void>,
): Promise<void> {
  await using db = await freshDatabase(backend);
  const store = db.open();
  try {
    await migrateFresh(db, store);
    const job = buildJob("a", { command: "echo a", cron: "0 0 1 1 *" }, null, T0);
    await addJob(store, job, { replace: false, names: CLI_NAMES });
    await fn(store, db);
  } finally {
    await store.close();
  }
}

for (const backend of BACKENDS) {
  const test = (name: string, fn: (store: Store) => Promise<void>) =>
    Deno.test(`app runs[${backend}]: ${name}`, () => onFreshStore(backend, fn));

  test("requestRun queues a manual run for a service, not forced", async (store) => {
    const run = await requestRun(store, "a", { ...QUEUE, force: false });
    assertEquals(
      [run.job_id, run.scheduled_at, run.status, run.trigger, run.node_id, run.note, run.forced],
      ["a", T0, "queued", "manual", null, null, false],
    );
    assertEquals(await store.queuedManualRuns(10), [run]);
  });

  test("requestRun with force sets forced, which the service reads back", async (store) => {
    const run = await requestRun(store, "a", { ...QUEUE, force: true });
    assertEquals([run.status, run.forced, run.note], [
      "queued",
      true,
      "forced: max_instances not checked",
    ]);
    assertEquals((await store.queuedManualRuns(10)).map((r) => [r.id, r.forced]), [[
      run.id,
      true,
    ]]);
  });

  test("requestRun twice in one millisecond refuses the second", async (store) => {
    await requestRun(store, "a", { ...QUEUE, force: false });
    const error = await assertRejects(
      () => requestRun(store, "a", { ...QUEUE, force: true }),
      RuntimeError,
    );
    assertEquals(
      error.message,
      "job 'a' was asked to run this very millisecond already; try again",
    );
    assertEquals((await store.listRuns({ limit: 10 })).map((r) => r.forced), [false]);
  });

  test("requestRun and startHereRun of a missing job are NotFound and write no run", async (store) => {
    for (
      const attempt of [
        () => requestRun(store, "nope", { ...QUEUE, force: true }),
        () => startHereRun(store, "nope", { node: "cli@host", now: T0 }),
      ]
    ) {
      assertEquals((await assertRejects(attempt, NotFoundError)).message, NOT_FOUND);
    }
    assertEquals(await store.listRuns({ limit: 10 }), []);
  });

  test("startHereRun records a running manual run of this node, not for a service", async (store) => {
    const { job, run } = await startHereRun(store, "a", { node: "cli@host", now: T0 });
    assertEquals(job, await store.getJob("a"));
    assertEquals(
      [run.status, run.trigger, run.node_id, run.started_at, run.scheduled_at, run.note],
      ["running", "manual", "cli@host", T0, T0, "run in the CLI with --here"],
    );
    assertEquals(await store.queuedManualRuns(10), []);
  });

  test("showRun gives one run, and NotFound for an id that has none", async (store) => {
    const run = await requestRun(store, "a", { ...QUEUE, force: false });
    assertEquals(await showRun(store, run.id), run);
    const missing = run.id + 1;
    assertEquals(
      (await assertRejects(() => showRun(store, missing), NotFoundError)).message,
      `run ${missing} does not exist (see \`jobsmanager runs\`)`,
    );
  });

  test("requestRun without a live service is refused unless queue, and writes nothing", async (store) => {
    const ask = {
      force: false,
      queue: false,
      now: T0,
      heartbeatMs: HEARTBEAT_MS,
      names: CLI_NAMES,
    };
    const service = {
      id: "svc",
      host: "svc",
      pid: 1,
      version: "0.1.0",
      started_at: T0 - 60_000,
      applied_marker: null,
      jobs_loaded: 1,
      last_reload_at: null,
      last_reload_ms: null,
      stopped_at: null,
      timezone: null,
    };
    // Its last heartbeat more than three beats ago: stale, not live.
    await store.saveNode({ ...service, heartbeat_at: T0 - 4 * HEARTBEAT_MS });
    const error = await assertRejects(() => requestRun(store, "a", ask), RuntimeError);
    assertEquals(
      error.message,
      "no live service uses this database, so nothing would run job 'a': run it in this process with `jobsmanager job run --here a`, or pass --queue to leave it for the next service that starts",
    );
    assertEquals(await store.listRuns({ limit: 10 }), []);
    await store.saveNode({ ...service, heartbeat_at: T0 - 1000 });
    assertEquals((await requestRun(store, "a", ask)).status, "queued");
  });

  test("cancelRun drops a request no service took, noting who asked and when", async (store) => {
    const queued = await requestRun(store, "a", { ...QUEUE, force: false });
    const { outcome, run } = await cancelRun(store, queued.id, { by: BY, now: T0 + 1000 });
    assertEquals(outcome, "dropped");
    assertEquals(run, {
      ...queued,
      status: "cancelled",
      finished_at: T0 + 1000,
      note: "cancelled by ops@host-1 at 2026-01-01T00:00:01.000Z",
      cancel_requested_at: T0 + 1000,
      cancel_requested_by: BY,
    });
    assertEquals(await store.queuedManualRuns(10), [], "no service takes it any more");
  });

  test("cancelRun of a retry no service took records the request, for a service to end the attempts", async (store) => {
    const [id] = await store.claimRuns([{
      job_id: "backup",
      scheduled_at: T0 + 60_000,
      status: "queued",
      trigger: "retry",
      attempt: 2,
    }]);
    const { outcome, run } = await cancelRun(store, id!, { by: BY, now: T0 + 1000 });
    assertEquals(outcome, "requested");
    assertEquals(
      [run.status, run.node_id, run.cancel_requested_at, run.cancel_requested_by],
      ["queued", null, T0 + 1000, BY],
    );
  });

  test("cancelRun records the request on a run a service holds, and leaves its status", async (store) => {
    const [running, waiting] = await store.claimRuns([
      { job_id: "a", scheduled_at: T0, status: "running", trigger: "schedule", node_id: "svc" },
      // A fire queued inside a service for a free worker: the service decides.
      { job_id: "a", scheduled_at: T0 + 1, status: "queued", trigger: "schedule", node_id: "svc" },
    ]);
    for (const id of [running!, waiting!]) {
      const before = (await store.getRun(id))!;
      const { outcome, run } = await cancelRun(store, id, { by: BY, now: T0 + 2000 });
      assertEquals(outcome, "requested");
      assertEquals(run, { ...before, cancel_requested_at: T0 + 2000, cancel_requested_by: BY });
    }
  });

  test("cancelRun asked twice alike at once (same asker, same instant) answers requested both times", async (store) => {
    const [id] = await store.claimRuns([
      { job_id: "a", scheduled_at: T0, status: "running", trigger: "schedule", node_id: "svc" },
    ]);
    // MySQL counts a row written with the values it had as unchanged: the second found
    // nothing to change, and took the run for one that kept changing.
    const answers = [];
    for (let i = 0; i < 2; i++) {
      answers.push(await cancelRun(store, id!, { by: BY, now: T0 + 2000 }));
    }
    assertEquals(
      answers.map((a) => [a.outcome, a.run.cancel_requested_at, a.run.cancel_requested_by]),
      [
        ["requested", T0 + 2000, BY],
        ["requested", T0 + 2000, BY],
      ],
    );
  });

  test("cancelRun of a run in a terminal (job run --here) says to end it there, changing nothing", async (store) => {
    const [id] = await store.claimRuns([
      {
        job_id: "a",
        scheduled_at: T0,
        status: "running",
        trigger: "manual",
        node_id: hereNode("box"),
      },
    ]);
    const before = await store.getRun(id!);
    const error = await assertRejects(
      () => cancelRun(store, id!, { by: BY, now: T0 }),
      RuntimeError,
    );
    assertEquals(
      error.message,
      `run ${id} runs in a terminal (\`jobsmanager job run --here\` on box), not in a service, and was not ended: end it there with Ctrl-C; once that process is gone (killed, or box restarted), \`jobsmanager runs cancel ${id}\` on box, or a service there, records the run interrupted`,
    );
    assertEquals(await store.getRun(id!), before);
  });

  test("cancelRun of a run in a terminal whose process is gone is ended by endIfGone, and names the pid while it lives", async (store) => {
    const marker = hereMarker({ boot: "0123abcd", pidNamespace: 4026531836, pid: 4321, start: 99 });
    assertEquals(holderOf(marker), {
      boot: "0123abcd",
      pidNamespace: 4026531836,
      pid: 4321,
      start: 99,
    });
    const [id] = await store.claimRuns([
      {
        job_id: "a",
        scheduled_at: T0,
        status: "running",
        trigger: "manual",
        node_id: hereNode("box"),
        marker,
      },
    ]);
    const lives = await assertRejects(
      () =>
        cancelRun(store, id!, {
          by: BY,
          now: T0,
          endIfGone: () => Promise.resolve("the CLI process still runs"),
        }),
      RuntimeError,
    );
    assertEquals(
      lives.message,
      `run ${id} runs in a terminal (\`jobsmanager job run --here\`, pid 4321 on box), not in a service, and was not ended: the CLI process still runs`,
    );
    const ended = await cancelRun(store, id!, {
      by: BY,
      now: T0,
      endIfGone: async (run) =>
        await store.updateRun(run.id, { status: "interrupted", finished_at: T0 + 1 }, "running") ||
        "ended meanwhile",
    });
    assertEquals([ended.outcome, ended.run.status], ["ended", "interrupted"]);
  });

  test("cancelRun --force records a run in a terminal interrupted unchecked, saying so", async (store) => {
    const [id] = await store.claimRuns([
      {
        job_id: "a",
        scheduled_at: T0,
        status: "running",
        trigger: "manual",
        node_id: hereNode("box"),
        marker: crypto.randomUUID(),
      },
    ]);
    let checked = false;
    const forced = await cancelRun(store, id!, {
      by: BY,
      now: T0 + 5000,
      force: true,
      endIfGone: () => {
        checked = true;
        return Promise.resolve("not asked");
      },
    });
    assertEquals(
      [forced.outcome, forced.run.status, forced.run.finished_at, checked],
      ["ended", "interrupted", T0 + 5000, false],
    );
    assertEquals(
      forced.run.note,
      `recorded interrupted by ${BY} at ${
        new Date(T0 + 5000).toISOString()
      } with runs cancel --force: the CLI process that ran it (\`jobsmanager job run --here\` on box) was not checked, and nothing it left running was ended`,
    );
  });

  test("cancelRun of an ended run names its status and changes nothing; of a missing one is NotFound", async (store) => {
    const [id] = await store.claimRuns([
      { job_id: "a", scheduled_at: T0, status: "success", trigger: "schedule", finished_at: T0 },
    ]);
    const before = await store.getRun(id!);
    const error = await assertRejects(
      () => cancelRun(store, id!, { by: BY, now: T0 }),
      RuntimeError,
    );
    assertEquals(
      error.message,
      `run ${id} has already ended (success); there is nothing to cancel`,
    );
    assertEquals(await store.getRun(id!), before);
    assertEquals(
      (await assertRejects(() => cancelRun(store, id! + 1, { by: BY, now: T0 }), NotFoundError))
        .message,
      `run ${id! + 1} does not exist (see \`jobsmanager runs\`)`,
    );
  });
}

for (const backend of BACKENDS) {
  Deno.test(`app runs[${backend}]: requestRun refuses a job the service calls invalid, saying why, and writes no run`, () =>
    onFreshStore(backend, async (store, db) => {
      // Broken by hand: the service does not schedule it, and `job list` says INVALID.
      await rawQuery(db, `UPDATE jm_jobs SET env = '{"A":5}' WHERE id = 'a'`);
      const error = await assertRejects(
        () => requestRun(store, "a", { ...QUEUE, force: true }),
        RuntimeError,
      );
      assertEquals(
        error.message,
        `job 'a' is invalid, so it cannot run: env.A: is a number; quote it ("…"): a variable's value is text (fix the row, e.g. UPDATE jm_jobs SET env = '{"A":"…"}' WHERE id = 'a', each "…" the variable's value as text)`,
      );
      assertEquals(await store.queuedManualRuns(10), []);
    }));
}
