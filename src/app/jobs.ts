/**
 * The job catalogue's use cases, for every entry point (CLI, HTTP). Each
 * write goes through `JobStore.changeJob`, so the row and its reload
 * marker are written in one transaction or not at all, and a write that
 * changes nothing writes no marker.
 *
 * Inputs arrive parsed with the domain's parsers (`buildJob`, `validateId`):
 * the CLI checks them before it opens the database.
 */
import { ConflictError, NotFoundError, ValidationError } from "../errors.ts";
import {
  buildJob,
  checkUpdate,
  followCycle,
  hasSchedule,
  type Job,
  type JobOptions,
  jobProblem,
  nextFires,
  validateId,
  validateJob,
  zoneOf,
} from "../domain/job.ts";
import { parseInstant } from "../domain/time.ts";
import { AS_FIELDS, labelOf, listedBy, type OptionNames } from "../domain/option_names.ts";
import type { InputNames } from "./input_names.ts";
import { firstFireAfter } from "../cron/croner.ts";
import type { Run } from "../domain/run.ts";
import type { JobChange, JobStore, MarkerStore, RunStore } from "../store/store.ts";

/** Runs `showJob` lists. */
const LAST_RUNS = 5;

/**
 * A change made on a copy of a job that is no longer the one stored (an
 * API client's If-Match that fails): a conflict, which HTTP answers 412
 * Precondition Failed (RFC 9110 §13.1.1), not the 409 of an id taken.
 */
export class StaleCopyError extends ConflictError {
  constructor(message: string) {
    super(message);
    this.name = "StaleCopyError";
  }
}

/**
 * The copy of a job a change was made on: its `updated_at` (an If-Match
 * naming the ETag of `GET /jobs/{id}`), or `"*"`, whichever copy is stored
 * (`If-Match: *`), which a job that does not exist fails.
 */
export type ReadAt = number | "*";

/** Job `id` does not exist, pointing to where `names` list the jobs (the CLI's unless given). */
export function jobNotFound(id: string, names?: OptionNames): NotFoundError {
  const see = listedBy(names, "jobs");
  return new NotFoundError(`job '${id}' does not exist${see === null ? "" : ` (see ${see})`}`);
}

/**
 * Store `job` (made by `buildJob`). An id that is taken is a conflict unless
 * `replace`; a replaced job keeps the `created_at` of the one it replaces.
 * Messages say what to give in `names`.
 */
export async function addJob(
  jobs: JobStore,
  job: Job,
  options: { replace: boolean; names: InputNames; readAt?: ReadAt },
): Promise<JobChange> {
  const { names } = options;
  const mutate = (current: Job | null) => {
    if (options.readAt !== undefined) refuseStale(job.id, current, options.readAt);
    if (current === null) return job;
    if (!options.replace) {
      throw new ConflictError(
        `job '${job.id}' already exists; change it with ${
          names.update(job.id)
        } or pass ${names.replace}`,
      );
    }
    return { ...job, created_at: current.created_at };
  };
  return job.after_job === null
    ? await jobs.changeJob(job.id, mutate)
    : await changeFollowing(jobs, job.id, mutate, names);
}

/**
 * Refuse jobs that follow (`after_job`) a job that does not exist, or that
 * would close a cycle, naming it in run order (A → B → A: A's end starts
 * B, whose end starts A). `all` is every job once the write is done.
 */
export function checkFollowUps(
  all: Map<string, Job>,
  changed: Job[],
  names: OptionNames = AS_FIELDS,
): void {
  const after = labelOf(names, "after");
  const see = listedBy(names, "jobs");
  for (const job of changed) {
    if (job.after_job === null) continue;
    if (!all.has(job.after_job)) {
      throw new ValidationError(
        "after",
        `${after}: job '${job.after_job}' does not exist, so '${job.id}' could never follow it (add it first${
          see === null ? "" : `, or see ${see}`
        })`,
      );
    }
    const cycle = followCycle(all, job);
    if (cycle !== null) {
      throw new ValidationError(
        "after",
        `${after}: '${job.id}' following '${job.after_job}' would close a cycle: ${
          cycle.join(" → ")
        } (a job's end would start itself again); drop one link with ${
          names.option("after", null)
        }`,
      );
    }
  }
}

/**
 * A change to one job that sets a follow-up link: through `changeJobs`,
 * which locks every job, so that two writes at once cannot close a cycle
 * between them.
 */
async function changeFollowing(
  jobs: JobStore,
  id: string,
  mutate: (current: Job | null) => Job,
  names: OptionNames,
): Promise<JobChange> {
  let current: Job | null = null;
  const change = await jobs.changeJobs((all) => {
    current = all.find((j) => j.id === id) ?? null;
    const job = mutate(current);
    const after = new Map(all.map((j) => [j.id, j]));
    after.set(job.id, job);
    // A link kept as stored (a copy sent back whole) was checked when it was made; the job it
    // names may have gone since, which `job list` shows.
    if (job.after_job !== current?.after_job) checkFollowUps(after, [job], names);
    return { put: [job], remove: [] };
  });
  return {
    before: change.before[0] ?? current,
    after: change.after[0] ?? current,
    markerId: change.markerId,
  };
}

/**
 * Refuse a change made on a copy of job `id` read at `readAt` (its
 * `updated_at`: an API client's If-Match) when the job has changed since,
 * or is gone: the change would undo the other one's, unseen.
 */
export function refuseStale(id: string, current: Job | null, readAt: ReadAt): void {
  if (current === null) {
    if (readAt === "*") {
      throw new StaleCopyError(
        `job '${id}' does not exist: If-Match: * names whichever copy is stored, and none is; nothing written (send it without If-Match to add it)`,
      );
    }
    throw new StaleCopyError(
      `job '${id}' no longer exists: it was removed after the copy this change was made on; nothing written`,
    );
  }
  if (readAt === "*" || current.updated_at === readAt) return;
  throw new StaleCopyError(
    `job '${id}' was changed at ${
      new Date(current.updated_at).toISOString()
    }, after the copy this change was made on; nothing written: read it again and make the change there`,
  );
}

/**
 * Change the fields `options` give; `updated_at` becomes `now` when anything
 * changed. With `readAt` (the `updated_at` of the copy the change was made
 * on: an API client's If-Match), a job changed since is refused: the change
 * would undo the other one's, unseen. Messages say what to give in `names`.
 */
export async function updateJob(
  jobs: JobStore,
  id: string,
  options: JobOptions,
  now: number,
  names: OptionNames,
  readAt?: ReadAt,
): Promise<JobChange> {
  // Bad input is said before a missing job, as by addJob, whose job is built first.
  checkUpdate(id, options, now, names);
  const mutate = (current: Job | null) => {
    // A copy read before a removal is stale (412), not a typo of an id (404).
    if (readAt !== undefined) refuseStale(id, current, readAt);
    if (!current) throw jobNotFound(id, names);
    return { ...buildJob(id, options, current, now, names), updated_at: now };
  };
  // Only a new link can close a cycle.
  return options.after
    ? await changeFollowing(jobs, id, mutate, names)
    : await jobs.changeJob(id, mutate);
}

/**
 * What to tell whoever gave `retry_on` (`given`) to `job`, left with
 * retries 0: it is stored all the same and applies once the job is given
 * retries, so it is said, not refused. Said only where the write makes it
 * so: not where `before`, the job as it was (null: a new job), had retries
 * 0 and that retry_on already (a job sent back whole, as the API's GET then
 * PATCH do, or the same --retry-on given again to `job update`): that was
 * said when it was set, as a user is. Null when there is nothing to say.
 */
export function retryOnUnused(
  given: boolean,
  job: Job | null,
  names: OptionNames,
  before: Job | null = null,
): string | null {
  if (!given || job?.retries !== 0) return null;
  if (before?.retries === 0 && before.retry_on === job.retry_on) return null;
  return `job '${job.id}' has retries 0, so ${names.option("retry_on")} does nothing until ${
    names.option("retries")
  } is above 0`;
}

/** A removal, and the jobs left following the removed one: idle until relinked. */
export interface Removal extends JobChange {
  /** Ids of the jobs whose `after_job` names the removed one, sorted. */
  followers: string[];
}

/**
 * Remove job `id`; with `readAt` (as for `updateJob`), only the copy read
 * then. A missing job's message points to where `names` list the jobs.
 */
export async function removeJob(
  jobs: JobStore,
  id: string,
  readAt?: ReadAt,
  names?: OptionNames,
): Promise<Removal> {
  const change = await jobs.changeJob(id, (current) => {
    // A copy read before a removal is stale (412), not a typo of an id (404).
    if (readAt !== undefined) refuseStale(id, current, readAt);
    if (!current) throw jobNotFound(id, names);
    return null;
  });
  const followers = (await jobs.listJobs()).filter((j) => j.after_job === id).map((j) => j.id);
  return { ...change, followers: followers.sort() };
}

/**
 * What a job's follow-up link cannot do, in words: it closes a cycle (the
 * service ignores it), or the job it names does not exist (it never
 * starts this one). Null for a job that follows none, or one that exists
 * outside any cycle. `all`: every job by id.
 */
export function linkProblem(
  all: ReadonlyMap<string, Job>,
  job: Job,
  names: OptionNames = AS_FIELDS,
): string | null {
  if (job.after_job === null) return null;
  if (!all.has(job.after_job)) {
    return `job '${job.after_job}' does not exist: '${job.id}' runs only by hand or on its own schedule until relinked with ${
      names.option("after")
    }`;
  }
  const cycle = followCycle(all, job);
  if (cycle === null) return null;
  return `${labelOf(names, "after")}: its follow-up link closes a cycle, ${
    cycle.join(" → ")
  }, and the service ignores it; drop one link with ${names.option("after", null)}`;
}

/**
 * Enable or disable a job; one already so is left as it is (no marker).
 * With `readAt` (as for `updateJob`), only the copy read then. A missing
 * job's message points to where `names` list the jobs.
 */
export async function setEnabled(
  jobs: JobStore,
  id: string,
  enabled: boolean,
  now: number,
  readAt?: ReadAt,
  names?: OptionNames,
): Promise<JobChange> {
  return await jobs.changeJob(id, (current) => {
    // A copy read before a removal is stale (412), not a typo of an id (404).
    if (readAt !== undefined) refuseStale(id, current, readAt);
    if (!current) throw jobNotFound(id, names);
    return current.enabled === enabled ? current : { ...current, enabled, updated_at: now };
  });
}

/** Ask every running service to reload all jobs: a marker that changes no job. Returns its id. */
export async function reload(markers: MarkerStore): Promise<number> {
  return await markers.insertMarker([], []);
}

/**
 * The id of a command on a stored job (show, remove, enable, disable): a
 * valid one, or one a row written by hand in SQL holds, which the service
 * skips but these must still reach. Else the id's own error.
 */
export async function storedJobId(jobs: Pick<JobStore, "getJob">, id: string): Promise<string> {
  try {
    return validateId(id);
  } catch (error) {
    if (await jobs.getJob(id)) return id;
    throw error;
  }
}

export interface JobListing {
  job: Job;
  /** The zone it fires in. */
  zone: string;
  /** Its next fire; null when disabled, invalid, or never firing again. */
  next: Date | null;
  /**
   * Why a row broken by hand cannot be scheduled, or why its follow-up
   * link (a cycle written in SQL) is ignored; null when it is valid.
   */
  invalid: string | null;
  /** Its follow-up link names a job that does not exist, saying what that means; else null. */
  link: string | null;
}

/**
 * Every job with its next fire after `now`; a broken row is listed with what
 * is wrong, and what to give in `names` (else the job's fields).
 */
export async function listJobs(
  jobs: JobStore,
  options: { defaultZone: string; now: number; names?: OptionNames },
): Promise<JobListing[]> {
  const from = new Date(options.now);
  const all = await jobs.listJobs();
  const byId = new Map(all.map((j) => [j.id, j]));
  return all.map((job) => {
    const zone = zoneOf(job, options.defaultZone);
    try {
      validateJob(job, options.names);
      const next = job.enabled && hasSchedule(job) ? firstFireAfter(job, zone, from) : null;
      return { job, zone, next, ...linkFields(byId, job, options.names) };
    } catch (error) {
      return { job, zone, next: null, invalid: (error as Error).message, link: null };
    }
  });
}

/** `invalid` for a link that closes a cycle, `link` for one that names no job. */
function linkFields(
  all: ReadonlyMap<string, Job>,
  job: Job,
  names?: OptionNames,
): { invalid: string | null; link: string | null } {
  const problem = linkProblem(all, job, names);
  if (problem === null) return { invalid: null, link: null };
  return all.has(job.after_job!)
    ? { invalid: problem, link: null }
    : { invalid: null, link: problem };
}

export interface JobDetails {
  job: Job;
  zone: string;
  /** The next `count` fires after `now` (whether or not the job is enabled). */
  next: Date[];
  /** Its latest runs, newest first. */
  runs: Run[];
  /** Its runs now running, oldest first, without output (however many skips came since). */
  running: Run[];
  /** As in {@link JobListing}. */
  invalid: string | null;
  /** As in {@link JobListing}. */
  link: string | null;
}

export async function showJob(
  stores: JobStore & RunStore,
  id: string,
  options: { count: number; defaultZone: string; now: number; names?: OptionNames },
): Promise<JobDetails> {
  const [job, runs, allRunning] = await Promise.all([
    stores.getJob(id),
    stores.listRuns({ job_id: id, limit: LAST_RUNS }),
    stores.runningRuns(),
  ]);
  if (!job) throw jobNotFound(id, options.names);
  const running = allRunning.filter((r) => r.job_id === id);
  const zone = zoneOf(job, options.defaultZone);
  const invalid = jobProblem(job, options.names);
  if (invalid !== null) return { job, zone, next: [], runs, running, invalid, link: null };
  const next = nextFires(job, options.defaultZone, new Date(options.now), options.count);
  // Only a job that follows another needs them all, to find the chain.
  const all = job.after_job === null ? [] : await stores.listJobs();
  const byId = new Map(all.map((j) => [j.id, j]));
  return { job, zone, next, runs, running, ...linkFields(byId, job, options.names) };
}

export interface UpcomingFires {
  job: Job;
  zone: string;
  /** The instant the fires follow. */
  from: Date;
  next: Date[];
}

/** What `upcomingFires` and `previewFires` are asked. */
export interface FiresQuery {
  count: number;
  /** ISO 8601; without an offset it is read in the job's zone. Absent: `now`. */
  from?: string;
  defaultZone: string;
  now: number;
  /** How the asker gives `from` and a preview's options, for messages. */
  names: InputNames;
}

function firesOf(job: Job, query: FiresQuery): UpcomingFires {
  const zone = zoneOf(job, query.defaultZone);
  const from = query.from === undefined
    ? new Date(query.now)
    : parseInstant(query.from, zone, query.names.from);
  return { job, zone, from, next: nextFires(job, query.defaultZone, from, query.count) };
}

/** The next `count` fires of a stored job after `from`, else after `now`. */
export async function upcomingFires(
  jobs: JobStore,
  id: string,
  query: FiresQuery,
): Promise<UpcomingFires> {
  const job = await jobs.getJob(id);
  if (!job) throw jobNotFound(id, query.names);
  return firesOf(job, query);
}

/** The id of a previewed schedule's job, which is never stored. */
const PREVIEW_ID = "preview";

/**
 * A schedule no job has yet (`job next --cron …`) as a job that is never
 * stored, so it is checked exactly as `job add` would check it; built
 * before the database is read, which a bad schedule then is not.
 */
export function previewJob(
  schedule: Pick<JobOptions, "cron" | "schedule" | "timezone">,
  now: number,
  names: InputNames,
): Job {
  return buildJob(PREVIEW_ID, { ...schedule, command: "true" }, null, now, names);
}

/** The next fires of a schedule built by {@link previewJob}. */
export function previewFires(job: Job, query: FiresQuery): UpcomingFires {
  return firesOf(job, query);
}
