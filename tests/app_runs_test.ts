/**
 * The run use cases (src/app/runs.ts) on a real store, every backend, each
 * test on a fresh database: the manual-run rows `job run` writes, `forced`
 * as the service reads it back, and runs that do not exist.
 */
import { assertEquals, assertRejects } from "./assert.ts";
import { addJob } from "../src/app/jobs.ts";
import { requestRun, showRun, startHereRun } from "../src/app/runs.ts";
import { buildJob } from "../src/domain/job.ts";
import { NotFoundError, RuntimeError } from "../src/errors.ts";
import type { Store } from "../src/store/store.ts";
import { type Backend, BACKENDS, freshDatabase } from "./helpers.ts";

const T0 = Date.UTC(2026, 0, 1);
const NOT_FOUND = "job 'nope' does not exist (see `jobsmanager job list`)";

/** Run `fn` on a migrated store over a fresh database of `backend`, holding job `a`. */
async function onFreshStore(backend: Backend, fn: (store: Store) => Promise<void>): Promise<void> {
  await using db = await freshDatabase(backend);
  const store = db.open();
  try {
    await store.migrate();
    const job = buildJob("a", { command: "echo a", cron: "0 0 1 1 *" }, null, T0);
    await addJob(store, job, { replace: false });
    await fn(store);
  } finally {
    await store.close();
  }
}

for (const backend of BACKENDS) {
  const test = (name: string, fn: (store: Store) => Promise<void>) =>
    Deno.test(`app runs[${backend}]: ${name}`, () => onFreshStore(backend, fn));

  test("requestRun queues a manual run for a service, not forced", async (store) => {
    const run = await requestRun(store, "a", { force: false, now: T0 });
    assertEquals(
      [run.job_id, run.scheduled_at, run.status, run.trigger, run.node_id, run.note, run.forced],
      ["a", T0, "queued", "manual", null, null, false],
    );
    assertEquals(await store.queuedManualRuns(10), [run]);
  });

  test("requestRun with force sets forced, which the service reads back", async (store) => {
    const run = await requestRun(store, "a", { force: true, now: T0 });
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
    await requestRun(store, "a", { force: false, now: T0 });
    const error = await assertRejects(
      () => requestRun(store, "a", { force: true, now: T0 }),
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
        () => requestRun(store, "nope", { force: true, now: T0 }),
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
    const run = await requestRun(store, "a", { force: false, now: T0 });
    assertEquals(await showRun(store, run.id), run);
    const missing = run.id + 1;
    assertEquals(
      (await assertRejects(() => showRun(store, missing), NotFoundError)).message,
      `run ${missing} does not exist (see \`jobsmanager runs\`)`,
    );
  });
}
