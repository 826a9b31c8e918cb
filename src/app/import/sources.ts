/**
 * The import use cases: read a source into candidate jobs, then preview
 * the plan or apply it (one transaction, one reload marker).
 */
import { defaultSettings, type Settings } from "../../config/config.ts";
import { resolveTarget } from "../../config/database.ts";
import { readApschedulerTable } from "../../store/legacy.ts";
import type { JobStore } from "../../store/store.ts";
import type { DatabaseTarget } from "../../store/target.ts";
import type { DefaultZone } from "../zone.ts";
import { candidateFromRow, type ServiceDefaults } from "./apscheduler.ts";
import {
  applyPlan,
  type Candidate,
  NAMED_ONLY,
  type Outcome,
  type PlanCheck,
  previewPlan,
  type Scope,
} from "./plan.ts";

/** The table the original's jm_jobs becomes after the rename jobsmanager asks for. */
export const RENAMED_TABLE = "jm_jobs_apscheduler";
/** The original's own name for it, in its own database. */
export const ORIGINAL_TABLE = "jm_jobs";

/**
 * What the notes compare an old job with: the zone as `job list` resolves
 * it (configured, else a live service's, else this machine's), and the
 * coalesce this command's config says.
 */
export function serviceDefaults(settings: Settings, zone: DefaultZone): ServiceDefaults {
  return { zone, coalesce: settings["jobsmanager.coalesce"] };
}

/**
 * The database `--from-database URL` names (no other setting applies to
 * it), whose `table` is read: a source, whose errors say so.
 */
export function legacyTarget(url: string, table: string): DatabaseTarget {
  const target = resolveTarget({ ...defaultSettings(), "db.url": url });
  return target.kind === "mysql" ? { ...target, source: { table } } : target;
}

export interface ApschedulerSource {
  target: DatabaseTarget;
  table: string;
}

/** The original's jobs as candidates, in id order. */
export async function apschedulerCandidates(
  source: ApschedulerSource,
  defaults: ServiceDefaults,
  now: number,
): Promise<Candidate[]> {
  const rows = await readApschedulerTable(source.target, source.table);
  return rows.map((row) => candidateFromRow(row, defaults, now));
}

/** A database not made yet, to a plan: no job at all (a plan reads nothing else). */
const NO_JOBS = { listJobs: () => Promise.resolve([]) } as Pick<JobStore, "listJobs">;

/**
 * Preview (`apply` false; refused where `check` refuses it) or write the
 * candidates; removes only what `scope` prunes. A preview on a database
 * not made yet (`store` null) plans against no jobs, and makes nothing.
 */
export function importJobs(
  store: JobStore | null,
  candidates: Candidate[],
  apply: boolean,
  scope: Scope = NAMED_ONLY,
  check?: PlanCheck,
): Promise<Outcome> {
  if (!apply) return previewPlan((store ?? NO_JOBS) as JobStore, candidates, scope, check);
  if (store === null) throw new Error("importJobs: only a preview is given no store");
  return applyPlan(store, candidates, scope);
}
