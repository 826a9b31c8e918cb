/**
 * What an import or an apply would do, decided before anything is written:
 * each job the source describes is new, the same as the stored one, differs
 * from it, or cannot be imported (with why); `apply --prune` adds the stored
 * jobs the source lacks, to remove. The same function computes the plan that
 * is printed and, inside the write transaction, the plan that is applied.
 */
import { type Job, JOB_FIELDS, sameDefinition } from "../../domain/job.ts";
import type { JobStore } from "../../store/store.ts";
import { checkFollowUps } from "../jobs.ts";
import { UsageError, ValidationError } from "../../errors.ts";

/** One job a source describes, or why it could not describe one. */
export interface Candidate {
  /** Where it came from, for messages: `row 'backup'`, `line 12`. */
  source: string;
  id: string;
  /** The job to store; null when it cannot be imported. */
  job: Job | null;
  /** What the imported job does differently from its source, or what was left out. */
  notes: string[];
  /** Why it cannot be imported (set exactly when `job` is null). */
  problem: string | null;
}

export type PlanStatus = "new" | "same" | "differs" | "remove" | "cannot import";

export interface PlanEntry {
  status: PlanStatus;
  id: string;
  /** Where the entry came from; `database` for a job only `--prune` touches. */
  source: string;
  /** The job after the change (null for remove and cannot import). */
  job: Job | null;
  /** The stored job, if any. */
  current: Job | null;
  /** For `differs`: each field that changes, `field: old → new`. */
  changes: string[];
  notes: string[];
  problem: string | null;
}

/** Compare candidates with the stored jobs; with `prune`, stored jobs no candidate names go. */
export function plan(candidates: Candidate[], stored: Job[], prune = false): PlanEntry[] {
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
    const current = byId.get(c.id) ?? null;
    const base = { id: c.id, source: c.source, current, notes: c.notes, problem: c.problem };
    if (c.job === null) return { ...base, status: "cannot import", job: null, changes: [] };
    if (current === null) return { ...base, status: "new", job: c.job, changes: [] };
    if (sameDefinition(current, c.job)) {
      return { ...base, status: "same", job: current, changes: [] };
    }
    const job = { ...c.job, created_at: current.created_at };
    return { ...base, status: "differs", job, changes: fieldChanges(current, job) };
  });
  if (prune) {
    const named = new Set(candidates.map((c) => c.id));
    for (const job of stored.filter((j) => !named.has(j.id))) {
      entries.push({
        status: "remove",
        id: job.id,
        source: "database",
        job: null,
        current: job,
        changes: [],
        notes: [],
        problem: null,
      });
    }
  }
  return entries;
}

function show(value: unknown): string {
  return value === null ? "(default)" : JSON.stringify(value);
}

/** `field: old → new` for every definition field that differs. */
function fieldChanges(before: Job, after: Job): string[] {
  return JOB_FIELDS.filter((f) => f !== "created_at" && f !== "updated_at")
    .filter((f) => JSON.stringify(before[f]) !== JSON.stringify(after[f]))
    .map((f) => `${f}: ${show(before[f])} → ${show(after[f])}`);
}

/** How many entries have each status. */
export function countStatuses(entries: PlanEntry[]): Record<PlanStatus, number> {
  const counts: Record<PlanStatus, number> = {
    new: 0,
    same: 0,
    differs: 0,
    remove: 0,
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

/** The plan against the stored jobs, writing nothing. */
export async function previewPlan(
  store: JobStore,
  candidates: Candidate[],
  prune = false,
): Promise<Outcome> {
  const current = await store.listJobs();
  const entries = plan(candidates, current, prune);
  checkLinks(entries, current);
  return { entries, markerId: null };
}

/**
 * The follow-up links (`after`) of the jobs as the plan leaves them, every
 * job that breaks one named with its entry: one to a job that would not
 * exist, or one closing a cycle. Nothing is written then.
 */
function checkLinks(entries: PlanEntry[], current: Job[]): void {
  const after = new Map(current.map((j) => [j.id, j]));
  for (const e of entries) {
    if (e.status === "remove") after.delete(e.id);
    else if (e.job) after.set(e.id, e.job);
  }
  const problems: string[] = [];
  for (const e of entries) {
    if (e.job === null || e.status === "remove") continue;
    try {
      checkFollowUps(after, [e.job]);
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      problems.push(`${e.source}: job '${e.id}': ${error.message}`);
    }
  }
  if (problems.length > 0) {
    throw new UsageError(
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
  prune = false,
): Promise<Outcome> {
  let entries: PlanEntry[] = [];
  const change = await store.changeJobs((current) => {
    entries = plan(candidates, current, prune);
    checkLinks(entries, current);
    return {
      put: entries.filter((e) => e.status === "new" || e.status === "differs").map((e) => e.job!),
      remove: entries.filter((e) => e.status === "remove").map((e) => e.id),
    };
  });
  return { entries, markerId: change.markerId };
}
