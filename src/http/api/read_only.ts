/**
 * What GET shows of a job besides its fields (its zone, schedule in words,
 * next fires, runs, …) and the times jobsmanager stamps may come back in a
 * write's body, so that a job read can be changed and sent back whole; but
 * only as GET showed or would show it. Any other value would be a change
 * asked for and silently not made: it is refused, naming the field, saying
 * it is read-only and what changes it.
 *
 * "As GET showed it" allows for the time since the copy was read:
 * - an instant is the same when it names the same millisecond, in any
 *   offset (`…T02:30:00Z` and `…T04:30:00+02:00`) or as epoch milliseconds;
 *   a text without an offset names no instant;
 * - `next` is the job's fires from its first one (some may have passed),
 *   `next_fire` one fire of it, `null` when the job shows none;
 * - a run (in `runs` or `running`, or `last_run`) is a run of this job as recorded: with
 *   the status it has, or one it had before (queued, then running), and,
 *   once it has ended as sent, every field as recorded; one removed since
 *   (runs.keep_days) is taken, and `last_run: null` (read before the first);
 * - `invalid` and `after_missing` move with other jobs (the one it follows
 *   removed): any text or null, any boolean;
 * - `warnings`, in a write's answer, what that write warned of: any texts.
 * Each is checked against the job as stored and as the write would leave it
 * (a copy sent back with its schedule changed shows the old fires or the new).
 */
import { ValidationError } from "../../errors.ts";
import { FINAL_STATUSES, type Run, type RunStatus } from "../../domain/run.ts";
import { hasSchedule, type Job, jobProblem, nextFires, zoneOf } from "../../domain/job.ts";
import { shortened } from "../../domain/printable.ts";
import { toJson } from "../../domain/json.ts";
import type { Store } from "../../store/store.ts";
import { API_NAMES } from "../input_names.ts";
import { readableSchedule } from "../../cron/fields.ts";
import { scheduleWords } from "../schedule_words.ts";

/** A job's schedule as the CLI shows it and in words; a job without one, by the job it follows. */
export function scheduleTexts(job: Job): { schedule: string; schedule_words: string } {
  if (hasSchedule(job)) {
    return { schedule: readableSchedule(job), schedule_words: scheduleWords(job) };
  }
  return { schedule: "", schedule_words: `after '${job.after_job}' ends: ${job.after_outcome}` };
}

/** What a write's check needs besides the body. */
export interface Copies {
  /** The job as the write would leave it. */
  job: Job;
  /** The job as stored now; null for one being added. */
  stored: Job | null;
  store: Store;
  defaultZone: string;
  now: number;
  /** Each text of an answer as this caller sees it (a GET's, to compare with). */
  shown: (text: string) => string;
}

/** The most fires `GET /jobs/{id}?count=` lists, and so the most `next` may hold. */
const MAX_FIRES = 1000;
/** More runs than this cannot come from a GET (which lists 5). */
const MAX_RUNS = 100;

const SCHEDULE = 'give "cron", or "second" "minute" "hour" "day" "month" "day_of_week"';
const FIRES =
  'change "cron" or the six fields, "timezone" or "enabled" (POST /jobs/{id}/run runs it now)';
const RUNS =
  "POST /jobs/{id}/run starts a run and POST /runs/{id}/cancel ends one; leave it out of a write";

/** `shownBy`: what answers with the field (GET, unless it is a write's answer alone). */
function refused(
  field: string,
  sent: unknown,
  isNot: string,
  instead: string,
  shownBy = "GET shows it",
): ValidationError {
  return new ValidationError(
    field,
    `${field}: ${
      shortened(JSON.stringify(sent) ?? String(sent))
    } is not ${isNot}: ${field} is read-only (${shownBy}, a write does not set it); ${instead}`,
  );
}

/** Epoch milliseconds of an instant as GET writes it, with an offset, or as a number; else null. */
export function instantOf(value: unknown): number | null {
  if (typeof value === "number") return Number.isSafeInteger(value) ? value : null;
  if (typeof value !== "string") return null;
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d{1,9})?)?(Z|[+-]\d\d:?\d\d)$/i.test(value)) {
    return null;
  }
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : ms;
}

/** A job as GET shows it besides its fields, computed when asked. */
class Shown {
  constructor(readonly job: Job, private readonly context: Copies) {}

  get zone(): string {
    return zoneOf(this.job, this.context.defaultZone);
  }

  /** Why it cannot run, as `GET /jobs/{id}` has it; null for a job that can. */
  get problem(): string | null {
    return jobProblem(this.job, API_NAMES);
  }

  /** Its fires after `from`, as `GET /jobs/{id}` lists them (enabled or not). */
  fires(from: number, count: number): number[] {
    if (this.problem !== null) return [];
    return nextFires(this.job, this.context.defaultZone, new Date(from), count).map((d) =>
      d.getTime()
    );
  }

  /** Whether `GET /jobs` shows it a next fire at all. */
  get firing(): boolean {
    return this.problem === null && this.job.enabled && hasSchedule(this.job);
  }
}

const STAGE = (status: unknown): number => status === "queued" ? 0 : status === "running" ? 1 : 2;

/** What only a run's end sets. */
const ENDED_BY = ["finished_at", "exit_code", "signal"];

/** Values GET does not show the same in a list of runs as in one run: the output, null there. */
const OUTPUT = ["stdout", "stderr"];

/**
 * What is wrong with `sent` as a run of job `id` GET showed (all its fields,
 * or only `keys`, the summary of `last_run`); null when nothing is.
 */
async function runDifference(
  sent: unknown,
  id: string,
  copies: Copies,
  keys?: readonly string[],
): Promise<string | null> {
  if (typeof sent !== "object" || sent === null || Array.isArray(sent)) return "not a run";
  const runId = (sent as { id?: unknown }).id;
  if (typeof runId !== "number" || !Number.isSafeInteger(runId)) return "a run without its id";
  const run: Run | null = await copies.store.getRun(runId);
  // Removed since the copy was read (runs.keep_days, by hand): nothing left to differ from.
  if (run === null) return null;
  if (run.job_id !== id) return `run ${runId}: a run of job '${run.job_id}', not of '${id}'`;
  const recorded = JSON.parse(toJson(run, undefined, copies.shown)) as Record<string, unknown>;
  const given = sent as Record<string, unknown>;
  const fields = keys ?? Object.keys(recorded);
  const stray = Object.keys(given).find((k) => !fields.includes(k));
  if (stray !== undefined) return `run ${runId}: ${stray} is not a field of it`;
  const status = "status" in given ? given.status : recorded.status;
  const ended = FINAL_STATUSES.includes(status as RunStatus);
  if (status !== recorded.status) {
    // A copy read while it waited or ran; its end came since.
    if (STAGE(status) >= STAGE(recorded.status)) {
      return `run ${runId}: its status is ${JSON.stringify(recorded.status)}, not ${
        JSON.stringify(status)
      }`;
    }
  }
  // While it waits or runs, what it records moves on (its start, pid, a cancel asked): only
  // what names it is kept, and what only its end sets is not set yet; once it has ended as
  // sent, every field.
  const kept = ended ? fields : ["id", "job_id", "scheduled_at", "trigger", "attempt"];
  if (!ended) {
    const early = ENDED_BY.find((key) => key in given && given[key] !== null);
    if (early !== undefined) return `run ${runId}: a run not ended has no ${early}`;
  }
  // A field left out changes nothing.
  for (const key of kept.filter((k) => k in given)) {
    const value = given[key];
    // Listed with a job, a run comes without its output.
    if (OUTPUT.includes(key) && value === null) continue;
    const same = key.endsWith("_at")
      ? (value === null && recorded[key] === null) ||
        (instantOf(value) !== null && instantOf(value) === instantOf(recorded[key]))
      : JSON.stringify(value) === JSON.stringify(recorded[key]);
    if (!same) {
      return `run ${runId}: its ${key} is ${shortened(JSON.stringify(recorded[key]) ?? "absent")}`;
    }
  }
  return null;
}

/** The summary of a job's last run `GET /jobs` shows. */
const LAST_RUN_KEYS = ["id", "status", "scheduled_at", "finished_at", "exit_code"] as const;

/**
 * Refuse a read-only field of `body` that is neither as the job shows it
 * (stored) nor as it would show it after this write (see the file's comment).
 */
export async function refuseReadOnlyChanges(
  body: Record<string, unknown>,
  copies: Copies,
): Promise<void> {
  const { job, stored } = copies;
  const views = [new Shown(job, copies), ...(stored ? [new Shown(stored, copies)] : [])];
  // What it shows now: the stored copy, else (a job being added) the one it would be.
  const now = views[views.length - 1];

  for (const field of ["zone", "schedule", "schedule_words"] as const) {
    const value = body[field];
    if (value === undefined) continue;
    const of = (view: Shown) => field === "zone" ? view.zone : scheduleTexts(view.job)[field];
    if (views.some((view) => of(view) === value)) continue;
    throw refused(
      field,
      value,
      `what this job shows nor what it would show (${JSON.stringify(of(now))})`,
      field === "zone" ? 'give "timezone" (null for the service\'s zone)' : SCHEDULE,
    );
  }

  if (body.next !== undefined) {
    const sent = body.next;
    const times = Array.isArray(sent) ? sent.map(instantOf) : null;
    const fits = times !== null && !times.includes(null) && times.length <= MAX_FIRES &&
      views.some((view) =>
        times.length === 0
          ? view.fires(copies.now, 1).length === 0
          // Its fires from the first given, which may have passed since it was read.
          : view.fires(times[0]! - 1, times.length).join() === times.join()
      );
    if (!fits) {
      throw refused(
        "next",
        sent,
        "this job's fires, nor those it would have, from the first instant given",
        FIRES,
      );
    }
  }

  if (body.next_fire !== undefined) {
    const sent = body.next_fire;
    const at = instantOf(sent);
    const fits = sent === null
      ? views.some((view) => !view.firing || view.fires(copies.now, 1).length === 0)
      : at !== null && views.some((view) => view.firing && view.fires(at - 1, 1)[0] === at);
    if (!fits) {
      const next = now.firing ? now.fires(copies.now, 1)[0] : undefined;
      throw refused(
        "next_fire",
        sent,
        `a fire of this job nor of the job as it would be (it fires next ${
          next === undefined ? "never" : `at ${new Date(next).toISOString()}`
        })`,
        FIRES,
      );
    }
  }

  // What other jobs make true (the one it follows removed) moves without this one changing:
  // any copy's word is taken, as long as it is one.
  if (body.invalid !== undefined && body.invalid !== null && typeof body.invalid !== "string") {
    throw refused(
      "invalid",
      body.invalid,
      "a text or null",
      "it says why the job cannot run: fix the fields it names",
    );
  }
  if (body.after_missing !== undefined && typeof body.after_missing !== "boolean") {
    throw refused(
      "after_missing",
      body.after_missing,
      "true or false",
      'it says whether after_job names no job: set "after_job" to a job that exists, or null',
    );
  }

  // What the write that answered with the job warned of: said then, set by nothing.
  const warnings = body.warnings;
  if (
    warnings !== undefined &&
    (!Array.isArray(warnings) || !warnings.every((w) => typeof w === "string"))
  ) {
    throw refused(
      "warnings",
      warnings,
      "a list of texts",
      "it says what the write that answered with the job warned of; leave it out of a write",
      "a write's answer holds it",
    );
  }

  // running: those of its runs GET found running (each whole, or as GET /jobs sums it up).
  for (const field of ["runs", "running"] as const) {
    const sent = body[field];
    if (sent === undefined) continue;
    if (!Array.isArray(sent) || sent.length > MAX_RUNS) {
      throw refused(field, sent, "a list of this job's runs", RUNS);
    }
    for (const run of sent) {
      const wrong = await runDifference(run, job.id, copies);
      if (wrong !== null) {
        throw refused(field, run, `a run of this job as recorded (${wrong})`, RUNS);
      }
    }
  }

  if (body.last_run !== undefined) {
    const sent = body.last_run;
    // null: a copy read before the job's first run.
    if (sent !== null) {
      const wrong = await runDifference(sent, job.id, copies, LAST_RUN_KEYS);
      if (wrong !== null) {
        throw refused("last_run", sent, `a run of this job as recorded (${wrong})`, RUNS);
      }
    }
  }

  for (const field of ["created_at", "updated_at"] as const) {
    const value = body[field];
    if (value === undefined) continue;
    const at = instantOf(value);
    const instead = field === "created_at"
      ? "leave it out, or send back the time GET gave"
      : "leave it out, or send back the time GET gave (to change only the copy you read, send its ETag as If-Match)";
    if (at === null) throw refused(field, value, "an instant (ISO 8601 with its offset)", instead);
    // A job being added gets its own times: any instant is taken, as a copy of a job elsewhere has.
    if (stored === null) continue;
    // Its creation never changes; its last change is the one read, or one before (a copy read
    // before a change made since, which If-Match refuses when asked to).
    const fits = field === "created_at" ? at === stored.created_at : at <= stored.updated_at;
    if (!fits) {
      throw refused(
        field,
        value,
        field === "created_at"
          ? `when this job was created (${new Date(stored.created_at).toISOString()})`
          : `a time this job was read at (it last changed at ${
            new Date(stored.updated_at).toISOString()
          })`,
        instead,
      );
    }
  }
}
