/**
 * What an import or an apply would do, decided before anything is written:
 * each job the source describes is new, the same as the stored one, differs
 * from it (kept as stored, where the source does not update stored jobs),
 * or cannot be imported (with why); the stored jobs the source speaks for
 * but no longer names are to remove (`--prune`) or stale. The
 * same function computes the plan that is printed and, inside the write
 * transaction, the plan that is applied.
 */
import {
  hasSchedule,
  type Job,
  JOB_FIELDS,
  MAX_DESCRIPTION,
  sameDefinition,
} from "../../domain/job.ts";
import { sameFieldValues, scheduleFromFields } from "../../cron/fields.ts";
import { FIELD_NAMES } from "../../cron/grammar.ts";
import { zoneSpelling } from "../../cron/croner.ts";
import type { JobStore } from "../../store/store.ts";
import { checkFollowUps } from "../jobs.ts";
import { ValidationError } from "../../errors.ts";
import { jobFieldOf } from "../../domain/option_names.ts";

/** One job a source describes, or why it could not describe one. */
export interface Candidate {
  /** Where it came from, for messages: `row 'backup'`, `line 12`. */
  source: string;
  /** Where it is, as an error's prefix (`jobs.yaml:12`); absent: `source`. */
  at?: string;
  id: string;
  /** The job to store; null when it cannot be imported. */
  job: Job | null;
  /** What the imported job does differently from its source, or what was left out. */
  notes: string[];
  /** Why it cannot be imported (set exactly when `job` is null). */
  problem: string | null;
  /**
   * What to tell whoever gave it of the job it stores, when the plan writes
   * it (as `job add` warns of a job it stores): `retry_on` with retries 0.
   */
  warnings?: string[];
  /**
   * Fields the source has no word for (a crontab has no timeout and no
   * retries): a stored job keeps its own, so importing again does not
   * undo what was set since. Absent: the source says every field (a jobs
   * file).
   */
  keeps?: readonly JobField[];
  /**
   * Where what the source leaves to a stored job depends on that job: the
   * fields kept of `stored` and the notes that then hold, in place of
   * `keeps` and `notes` (a crontab's working directory, which came from a
   * HOME= line since removed, or was set since).
   */
  against?: (stored: Job) => { keeps: readonly JobField[]; notes: string[] };
}

export type JobField = typeof JOB_FIELDS[number];

/**
 * A source's text as a description: cut to MAX_DESCRIPTION with `…` where
 * longer (an import keeps the job rather than refusing it for its
 * comment). Counted and cut in code points, as descriptions are checked:
 * never inside a surrogate pair.
 */
export function descriptionOf(text: string): { description: string; cut: number | null } {
  const points = [...text];
  if (points.length <= MAX_DESCRIPTION) return { description: text, cut: null };
  return {
    description: `${points.slice(0, MAX_DESCRIPTION - 1).join("")}…`,
    cut: points.length,
  };
}

/** A source's candidate job, with the fields it has no word for as `stored` has them. */
function keeping(candidate: Job, stored: Job, keeps: readonly JobField[] | undefined): Job {
  if (keeps === undefined) return candidate;
  const kept: Record<string, unknown> = { ...candidate };
  for (const field of keeps) kept[field] = stored[field];
  return kept as unknown as Job;
}

export type PlanStatus =
  | "new"
  | "same"
  | "differs"
  | "kept"
  | "remove"
  | "stale"
  | "cannot import";

/**
 * The stored jobs a source speaks for (`owns`): those it no longer names
 * are removed with `prune`, else listed as `stale` with `note`.
 */
export interface Scope {
  owns(id: string): boolean;
  prune: boolean;
  /** Why a stale job is listed, and how to remove it. */
  note: string;
  /**
   * Whether a stored job the source names is changed to what the source
   * says. A jobs file is the truth, so `apply` does; an import does only
   * with `--update`: once imported, a job is the operator's, and importing
   * again must not undo a `job disable` or `job update` (the plan lists
   * such a job as `kept`, with what the source says instead).
   */
  update: boolean;
}

/** A source that speaks only for the jobs it names: nothing is stale or removed. */
export function namedOnly(update: boolean): Scope {
  return { owns: () => false, prune: false, note: "", update };
}

/** An import's default: only the jobs it names, stored ones kept as they are. */
export const NAMED_ONLY: Scope = namedOnly(false);

/** `apply`: with `prune`, the file speaks for every stored job; it updates every one it names. */
export function wholeDatabase(prune: boolean): Scope {
  return { owns: () => prune, prune, note: "", update: true };
}

/** The note of a `kept` entry, under what the source says instead. */
export const KEPT_NOTE =
  "kept as stored: an import does not change a job already stored (what was changed since stays); above, what the source says instead: import again with --update to take it";

export interface PlanEntry {
  status: PlanStatus;
  id: string;
  /** Where the entry came from; `database` for a stored job the source no longer names. */
  source: string;
  /** As Candidate's. */
  at?: string;
  /** The job after the change (null for remove and cannot import). */
  job: Job | null;
  /** The stored job, if any. */
  current: Job | null;
  /** For `differs`: each field that changes, `field: old → new`. */
  changes: string[];
  notes: string[];
  problem: string | null;
}

/** Compare candidates with the stored jobs; stored jobs of `scope` no candidate names go or are stale. */
export function plan(
  candidates: Candidate[],
  stored: Job[],
  scope: Scope = NAMED_ONLY,
): PlanEntry[] {
  const byId = new Map(stored.map((job) => [job.id, job]));
  const firstSource = new Map<string, string>();
  const entries: PlanEntry[] = candidates.map((candidate) => {
    const first = firstSource.get(candidate.id);
    firstSource.set(candidate.id, first ?? candidate.source);
    const c = first === undefined ? candidate : {
      ...candidate,
      job: null,
      problem: `id ${candidate.id} is already used by ${first}; give one of them another id`,
    };
    const stored = byId.get(c.id);
    const current = stored === undefined ? null : spelledAs(stored, c.job);
    const { keeps, notes } = current !== null && c.job !== null && c.against
      ? c.against(current)
      : c;
    const base = {
      id: c.id,
      source: c.source,
      at: c.at,
      current,
      notes,
      problem: c.problem,
    };
    if (c.job === null) return { ...base, status: "cannot import", job: null, changes: [] };
    if (current === null) return { ...base, status: "new", job: c.job, changes: [] };
    const wanted = keeping(c.job, current, keeps);
    if (sameDefinition(current, wanted)) {
      return { ...base, current: stored!, status: "same", job: stored!, changes: [] };
    }
    const job = { ...wanted, created_at: current.created_at };
    const changes = fieldChanges(current, job);
    if (!scope.update) {
      return { ...base, notes: [KEPT_NOTE, ...notes], status: "kept", job: stored!, changes };
    }
    return { ...base, status: "differs", job, changes };
  });
  const named = new Set(candidates.map((c) => c.id));
  for (const job of stored.filter((j) => scope.owns(j.id) && !named.has(j.id))) {
    entries.push({
      status: scope.prune ? "remove" : "stale",
      id: job.id,
      source: "database",
      job: null,
      current: job,
      changes: [],
      notes: scope.prune ? [] : [scope.note],
      problem: null,
    });
  }
  return entries;
}

/**
 * A stored job with its schedule spelled as `job add` stores it, and each
 * field that stands for the same values as the source's spelled as the
 * source spells it: a row written in SQL or by hand (`0-4` for `mon-fri`,
 * `JAN`, `0-59/15` for `*\/15`, `europe/berlin`, '' for no description)
 * is not changed by a source that says the same in other words, so an
 * export applied again writes nothing. A schedule that does not parse stays.
 */
function spelledAs(job: Job, source: Job | null): Job {
  const spelled = source === null ? job : { ...job, ...sameWords(job, source) };
  if (!hasSchedule(spelled)) return spelled;
  let scheduled: Job;
  try {
    scheduled = { ...spelled, ...scheduleFromFields(spelled) };
  } catch {
    return spelled;
  }
  if (source === null || !hasSchedule(source)) return scheduled;
  for (const field of FIELD_NAMES) {
    if (sameFieldValues(field, scheduled[field], source[field])) scheduled[field] = source[field];
  }
  return scheduled;
}

/** The text fields whose '' `job add` stores as null: the default, as a row in SQL may have it. */
const EMPTY_IS_DEFAULT = ["timezone", "cwd", "description", "user"] as const;

/** The stored values the source gives in other words (a zone's case, '' for null), as it gives them. */
function sameWords(job: Job, source: Job): Partial<Job> {
  const same: Partial<Record<typeof EMPTY_IS_DEFAULT[number], string | null>> = {};
  for (const field of EMPTY_IS_DEFAULT) {
    if (job[field] === "" && source[field] === null) same[field] = null;
  }
  const zone = job.timezone;
  if (zone && source.timezone !== null && zone !== source.timezone) {
    if (zoneSpelling(zone) === source.timezone) same.timezone = source.timezone;
  }
  return same;
}

function show(value: unknown): string {
  return value === null ? "(default)" : JSON.stringify(value);
}

/**
 * `field: old → new` for every definition field that differs; env in any
 * order, as the names of the variables added, removed and changed, never
 * their values: a plan is printed, by `apply --dry-run` into a CI log too.
 */
function fieldChanges(before: Job, after: Job): string[] {
  const text = (job: Job, f: typeof JOB_FIELDS[number]) =>
    JSON.stringify(f === "env" ? Object.entries(job.env ?? {}).sort() : job[f]);
  return JOB_FIELDS.filter((f) => f !== "created_at" && f !== "updated_at")
    .filter((f) => text(before, f) !== text(after, f))
    .map((f) =>
      f === "env"
        ? `env: ${envChanges(before.env, after.env)}`
        : `${f}: ${show(before[f])} → ${show(after[f])}`
    );
}

/** `A added, B removed, C changed`, by name; an env broken by hand in SQL (no object) has no names. */
function envChanges(before: unknown, after: unknown): string {
  const variables = (env: unknown) =>
    new Map(
      typeof env === "object" && env !== null && !Array.isArray(env)
        ? Object.entries(env).map(([k, v]) => [k, JSON.stringify(v)])
        : [],
    );
  const old = variables(before);
  const now = variables(after);
  const names = [...new Set([...old.keys(), ...now.keys()])].sort();
  const changes = names.flatMap((name) =>
    !old.has(name)
      ? [`${name} added`]
      : !now.has(name)
      ? [`${name} removed`]
      : old.get(name) !== now.get(name)
      ? [`${name} changed`]
      : []
  );
  // What differs then is the column's own text (a row broken by hand), never shown.
  return changes.length > 0 ? changes.join(", ") : "changed (as stored, not an object of values)";
}

/** How many entries have each status. */
export function countStatuses(entries: PlanEntry[]): Record<PlanStatus, number> {
  const counts: Record<PlanStatus, number> = {
    new: 0,
    same: 0,
    differs: 0,
    kept: 0,
    remove: 0,
    stale: 0,
    "cannot import": 0,
  };
  for (const entry of entries) counts[entry.status]++;
  return counts;
}

export interface Outcome {
  entries: PlanEntry[];
  /** The reload marker written with the change; null when nothing was written. */
  markerId: number | null;
}

/**
 * What a plan checks of the write it stands for, beyond its links, as the
 * store the write goes through would (older_nodes.ts): throws that refusal.
 */
export type PlanCheck = (current: readonly Job[], put: readonly Job[]) => Promise<void>;

/** The jobs the plan's write stores: the new and the differing ones. */
function putOf(entries: PlanEntry[]): Job[] {
  return entries.filter((e) => e.status === "new" || e.status === "differs").map((e) => e.job!);
}

/**
 * The plan against the stored jobs, writing nothing; refused, as the write
 * would be, where it breaks a link or `check` refuses it.
 */
export async function previewPlan(
  store: JobStore,
  candidates: Candidate[],
  scope: Scope = NAMED_ONLY,
  check?: PlanCheck,
): Promise<Outcome> {
  const current = await store.listJobs();
  const entries = plan(candidates, current, scope);
  checkLinks(entries, current);
  await check?.(current, putOf(entries));
  return { entries, markerId: null };
}

/**
 * The follow-up links (`after`) the plan sets or changes, every job that
 * breaks one named with its entry: one to a job that would not exist (or
 * that the plan removes), or one closing a cycle. Nothing is written then.
 */
function checkLinks(entries: PlanEntry[], current: Job[]): void {
  const after = new Map(current.map((j) => [j.id, j]));
  for (const e of entries) {
    if (e.status === "remove") after.delete(e.id);
    else if (e.job) after.set(e.id, e.job);
  }
  const removed = new Set(entries.filter((e) => e.status === "remove").map((e) => e.id));
  const problems: string[] = [];
  /** The field of the first problem: a link (`after_job`), or a field a link's check names. */
  let field = "after_job";
  const followsRemoved = (at: string, job: Job) =>
    `${at}: job '${job.id}': after: job '${job.after_job}' is removed by this change (the source no longer names it), so '${job.id}' could never follow it: keep it, or drop the link`;
  // A stored job the source does not name follows a removed one as surely as one it names.
  const named = new Set(entries.map((e) => e.id));
  for (const job of current) {
    if (!named.has(job.id) && job.after_job !== null && removed.has(job.after_job)) {
      problems.push(followsRemoved("database", job));
    }
  }
  for (const e of entries) {
    if (e.job === null || e.status === "remove") continue;
    if (e.job.after_job !== null && removed.has(e.job.after_job)) {
      problems.push(followsRemoved(e.at ?? e.source, e.job));
      continue;
    }
    // A link kept as stored is left as it is, as `job update` leaves it: a
    // job removed before leaves its follower idle, which is allowed.
    if (e.current !== null && e.current.after_job === e.job.after_job) continue;
    try {
      checkFollowUps(after, [e.job]);
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      if (problems.length === 0) field = jobFieldOf(error.field);
      problems.push(`${e.at ?? e.source}: job '${e.id}': ${error.message}`);
    }
  }
  if (problems.length > 0) {
    throw new ValidationError(
      field,
      `${problems.length} job${
        problems.length === 1 ? "" : "s"
      } would follow a job that is not there, or in a cycle; nothing written:\n${
        problems.join("\n")
      }`,
    );
  }
}

/**
 * Write the plan: new and differing jobs, and with `prune` the removals, in
 * one transaction with one reload marker. The plan is recomputed inside the
 * transaction, so a job someone changed meanwhile is compared as it is now.
 */
export async function applyPlan(
  store: JobStore,
  candidates: Candidate[],
  scope: Scope = NAMED_ONLY,
): Promise<Outcome> {
  let entries: PlanEntry[] = [];
  const change = await store.changeJobs((current) => {
    entries = plan(candidates, current, scope);
    checkLinks(entries, current);
    return {
      put: putOf(entries),
      remove: entries.filter((e) => e.status === "remove").map((e) => e.id),
    };
  });
  return { entries, markerId: change.markerId };
}
