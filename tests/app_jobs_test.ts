/**
 * The job use cases (src/app/jobs.ts) on a real store, every backend, each
 * test on a fresh database: the id-taken conflict, --replace keeping
 * created_at, updated_at on every change and none (no marker) without one,
 * missing ids, and the listings the CLI renders.
 */
import { assert, assertEquals, assertRejects } from "./assert.ts";
import {
  addJob,
  listJobs,
  removeJob,
  setEnabled,
  showJob,
  upcomingFires,
  updateJob,
} from "../src/app/jobs.ts";
import { CLI_NAMES } from "../src/cli/input_names.ts";
import { buildJob, type JobOptions } from "../src/domain/job.ts";
import { ConflictError, NotFoundError, UsageError } from "../src/errors.ts";
import type { Store } from "../src/store/store.ts";
import { BACKENDS, markerRows, onFreshStore, rawQuery } from "./helpers.ts";

const T0 = Date.UTC(2026, 0, 1, 0, 0, 30);
const T1 = T0 + 60_000;
const T2 = T1 + 60_000;
const NOT_FOUND = "job 'nope' does not exist (see `jobsmanager job list`)";

const HOURLY: JobOptions = { command: "echo hi", schedule: { minute: "5" }, timezone: "UTC" };

async function markerCount(store: Store): Promise<number> {
  return (await store.listMarkers(0, 1000)).length;
}

for (const backend of BACKENDS) {
  const test = (name: string, fn: Parameters<typeof onFreshStore>[1]) =>
    Deno.test(`app jobs[${backend}]: ${name}`, () => onFreshStore(backend, fn));

  test("addJob stores the job with one marker", async (store, db) => {
    const job = buildJob("a", HOURLY, null, T0);
    const change = await addJob(store, job, { replace: false, names: CLI_NAMES });
    assertEquals([change.before, change.after], [null, job]);
    assertEquals(await store.getJob("a"), job);
    assertEquals((await markerRows(db)).map((m) => [m.id, m.jobs_after_update]), [
      [change.markerId, [job]],
    ]);
  });

  test("addJob of a taken id is a conflict and writes nothing", async (store) => {
    const first = buildJob("a", HOURLY, null, T0);
    await addJob(store, first, { replace: false, names: CLI_NAMES });
    const again = buildJob("a", { ...HOURLY, command: "echo other" }, null, T1);
    const conflict = await assertRejects(
      () => addJob(store, again, { replace: false, names: CLI_NAMES }),
      ConflictError,
    );
    assertEquals(
      conflict.message,
      "job 'a' already exists; change it with `jobsmanager job update … a` or pass --replace",
    );
    assertEquals(await store.getJob("a"), first);
    assertEquals(await markerCount(store), 1);
  });

  test("addJob with replace takes the new definition and keeps created_at", async (store) => {
    await addJob(store, buildJob("a", HOURLY, null, T0), { replace: false, names: CLI_NAMES });
    const replacement = buildJob("a", { ...HOURLY, command: "echo new" }, null, T1);
    const change = await addJob(store, replacement, { replace: true, names: CLI_NAMES });
    const stored = await store.getJob("a");
    assertEquals(stored, { ...replacement, created_at: T0 });
    assertEquals([stored!.created_at, stored!.updated_at], [T0, T1]);
    assertEquals(change.before?.command, "echo hi");
    assertEquals(await markerCount(store), 2);
  });

  test("updateJob changes the given options and sets updated_at", async (store) => {
    await addJob(store, buildJob("a", HOURLY, null, T0), { replace: false, names: CLI_NAMES });
    const change = await updateJob(store, "a", { command: "echo changed" }, T1, CLI_NAMES);
    const stored = await store.getJob("a");
    assertEquals(
      [stored!.command, stored!.minute, stored!.created_at, stored!.updated_at],
      ["echo changed", "5", T0, T1],
    );
    assertEquals(change.after, stored);
    assertEquals(await markerCount(store), 2);
  });

  test("updateJob on a copy changed since is a conflict, even within one ms", async (store) => {
    await addJob(store, buildJob("a", HOURLY, null, T0), { replace: false, names: CLI_NAMES });
    // Two clients read the same copy; both change it at the same clock ms.
    const readAt = (await store.getJob("a"))!.updated_at;
    await updateJob(store, "a", { command: "echo first" }, T1, CLI_NAMES, readAt);
    const second = (await store.getJob("a"))!;
    await updateJob(store, "a", { command: "echo second" }, T1, CLI_NAMES, second.updated_at);
    const third = (await store.getJob("a"))!;
    assert(third.updated_at > second.updated_at, `${third.updated_at} after ${second.updated_at}`);
    await assertRejects(
      () => updateJob(store, "a", { command: "echo stale" }, T1, CLI_NAMES, second.updated_at),
      ConflictError,
    );
    // A clock that went back does not take a version back to a time seen before.
    await setEnabled(store, "a", false, T0);
    assert((await store.getJob("a"))!.updated_at > third.updated_at);
    assertEquals((await store.getJob("a"))!.command, "echo second");
  });

  test("updateJob that changes nothing writes nothing and no marker", async (store) => {
    await addJob(store, buildJob("a", HOURLY, null, T0), { replace: false, names: CLI_NAMES });
    await updateJob(store, "a", { command: "echo changed" }, T1, CLI_NAMES);
    const before = await store.getJob("a");
    const change = await updateJob(store, "a", { command: "echo changed" }, T2, CLI_NAMES);
    assertEquals(change.markerId, null);
    assertEquals(await store.getJob("a"), before);
    assertEquals(before!.updated_at, T1);
    assertEquals(await markerCount(store), 2);
  });

  test("updateJob with an invalid option changes nothing", async (store) => {
    const job = buildJob("a", HOURLY, null, T0);
    await addJob(store, job, { replace: false, names: CLI_NAMES });
    const invalid = await assertRejects(
      () => updateJob(store, "a", { command: "echo x", schedule: { minute: "61" } }, T1, CLI_NAMES),
      UsageError,
    );
    assertEquals(invalid.message, "minute: '61' is out of range (allowed 0-59)");
    assertEquals(await store.getJob("a"), job);
    assertEquals(await markerCount(store), 1);
  });

  test("setEnabled disables and enables, setting updated_at; a no-op writes no marker", async (store) => {
    await addJob(store, buildJob("a", HOURLY, null, T0), { replace: false, names: CLI_NAMES });
    const disabled = await setEnabled(store, "a", false, T1);
    assertEquals([disabled.after?.enabled, disabled.after?.updated_at], [false, T1]);
    assertEquals((await setEnabled(store, "a", false, T2)).markerId, null);
    assertEquals((await store.getJob("a"))?.updated_at, T1);
    const enabled = await setEnabled(store, "a", true, T2);
    assertEquals([enabled.after?.enabled, enabled.after?.updated_at], [true, T2]);
    assertEquals(await markerCount(store), 3);
  });

  test("removeJob deletes the job, its marker holding what it was", async (store, db) => {
    const job = buildJob("a", HOURLY, null, T0);
    await addJob(store, job, { replace: false, names: CLI_NAMES });
    const change = await removeJob(store, "a");
    assertEquals(await store.getJob("a"), null);
    const last = (await markerRows(db)).at(-1)!;
    assertEquals([last.id, last.jobs_before_update, last.jobs_after_update], [
      change.markerId,
      [job],
      [],
    ]);
  });

  test("a missing id is NotFound for update, remove, enable, disable, show and next", async (store) => {
    const attempts: [string, () => Promise<unknown>][] = [
      ["update", () => updateJob(store, "nope", { command: "true" }, T1, CLI_NAMES)],
      ["remove", () => removeJob(store, "nope")],
      ["enable", () => setEnabled(store, "nope", true, T1)],
      ["disable", () => setEnabled(store, "nope", false, T1)],
      [
        "show",
        () => showJob(store, "nope", { count: 1, defaultZone: "UTC", now: T1, names: CLI_NAMES }),
      ],
      [
        "next",
        () =>
          upcomingFires(store, "nope", { count: 1, defaultZone: "UTC", now: T1, names: CLI_NAMES }),
      ],
    ];
    for (const [what, attempt] of attempts) {
      assertEquals((await assertRejects(attempt, NotFoundError)).message, NOT_FOUND, what);
      assertEquals(await store.listJobs(), [], what);
    }
    assertEquals(await markerCount(store), 0);
  });

  test("listJobs gives each job its next fire; a broken row says why", async (store, db) => {
    await addJob(store, buildJob("a", HOURLY, null, T0), { replace: false, names: CLI_NAMES });
    await addJob(store, buildJob("b", { ...HOURLY, enabled: false }, null, T0), {
      replace: false,
      names: CLI_NAMES,
    });
    await addJob(store, buildJob("c", { ...HOURLY, timezone: undefined }, null, T0), {
      replace: false,
      names: CLI_NAMES,
    });
    await rawQuery(db, "UPDATE jm_jobs SET minute = '99' WHERE id = 'c'");
    const listed = await listJobs(store, { defaultZone: "Asia/Tokyo", now: T0 });
    assertEquals(
      listed.map((l) => [l.job.id, l.zone, l.next?.toISOString() ?? null, l.invalid]),
      [
        ["a", "UTC", "2026-01-01T00:05:00.000Z", null],
        ["b", "UTC", null, null],
        ["c", "Asia/Tokyo", null, "minute: '99' is out of range (allowed 0-59)"],
      ],
    );
  });

  test("showJob gives the next fires and the latest runs", async (store) => {
    await addJob(store, buildJob("a", HOURLY, null, T0), { replace: false, names: CLI_NAMES });
    const ids = await store.claimRuns(
      Array.from({ length: 7 }, (_, i) => ({
        job_id: "a",
        scheduled_at: T0 + i,
        status: "success" as const,
        trigger: "schedule" as const,
      })),
    );
    const shown = await showJob(store, "a", { count: 2, defaultZone: "Asia/Tokyo", now: T0 });
    assertEquals(shown.zone, "UTC");
    assertEquals(shown.next.map((d) => d.toISOString()), [
      "2026-01-01T00:05:00.000Z",
      "2026-01-01T01:05:00.000Z",
    ]);
    assertEquals(shown.runs.map((r) => r.id), ids.slice(2).reverse());
  });

  test("upcomingFires reads --from in the job's zone", async (store) => {
    await addJob(store, buildJob("a", { ...HOURLY, timezone: "Asia/Tokyo" }, null, T0), {
      replace: false,
      names: CLI_NAMES,
    });
    const fires = await upcomingFires(store, "a", {
      count: 1,
      from: "2026-03-01 10:00",
      defaultZone: "UTC",
      now: T0,
      names: CLI_NAMES,
    });
    assertEquals(
      [fires.zone, fires.from.toISOString(), fires.next.map((d) => d.toISOString())],
      ["Asia/Tokyo", "2026-03-01T01:00:00.000Z", ["2026-03-01T01:05:00.000Z"]],
    );
    const fromNow = await upcomingFires(store, "a", {
      count: 1,
      defaultZone: "UTC",
      now: T0,
      names: CLI_NAMES,
    });
    assertEquals(fromNow.from.getTime(), T0);
  });
}
