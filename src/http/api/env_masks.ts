/**
 * A job's env values as a read token must not read them in what the job
 * left: its runs' output and notes, the log lines about it. A job's
 * secrets go in its env (the README says so); a read token sees their
 * names only, and a run that prints one (`env`, a failed command line in
 * a note) must not hand it over. An admin reads everything as stored.
 */
import type { Job } from "../../domain/job.ts";
import type { LogRow } from "../../domain/log_row.ts";
import type { Run } from "../../domain/run.ts";
import type { JobStore } from "../../store/store.ts";
import { masked, redactor } from "../../store/target.ts";
import type { Role } from "../auth.ts";

/** Jobs read one at a time up to this many; more, all at once. */
const ONE_BY_ONE = 20;

type Mask = (text: string) => string;

/** The values of a job's env: a column written by hand that is no object, each string in it. */
function envValues(env: unknown): string[] {
  if (typeof env === "string") return [env];
  if (typeof env !== "object" || env === null) return [];
  return Object.values(env).filter((value): value is string => typeof value === "string");
}

/** `value` with each string in it (not a key) as `mask` shows it. */
function maskStrings(value: unknown, mask: Mask): unknown {
  if (typeof value === "string") return mask(value);
  if (Array.isArray(value)) return value.map((item) => maskStrings(item, mask));
  if (typeof value !== "object" || value === null) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, maskStrings(v, mask)]));
}

/** Context properties that name things (a job, a run, a node): never masked. */
const NAMES = ["job", "run", "node"];

export class EnvMasks {
  private constructor(private readonly byJob: ReadonlyMap<string, Mask>) {}

  /**
   * The masks of the jobs `ids` for a caller of `role`: none for an admin.
   * Each masks what redactSecrets masks of the job's env values (those of
   * 8 characters or more: a `DEBUG=1` would mangle everything).
   */
  static async of(jobs: JobStore, role: Role, ids: Iterable<string>): Promise<EnvMasks> {
    if (role === "admin") return new EnvMasks(new Map());
    const wanted = new Set(ids);
    if (wanted.size === 0) return new EnvMasks(new Map());
    const found: (Job | null)[] = wanted.size <= ONE_BY_ONE
      ? await Promise.all([...wanted].map((id) => jobs.getJob(id)))
      : (await jobs.listJobs()).filter((job) => wanted.has(job.id));
    return EnvMasks.ofJobs(role, found.filter((job) => job !== null));
  }

  /** The masks of `jobs`, read already, for a caller of `role`. */
  static ofJobs(role: Role, jobs: readonly Job[]): EnvMasks {
    if (role === "admin") return new EnvMasks(new Map());
    return new EnvMasks(
      new Map(jobs.flatMap((job) => {
        const values = envValues(job.env).filter(masked);
        return values.length === 0 ? [] : [[job.id, redactor(values)]];
      })),
    );
  }

  /** `run` with its job's env values masked in its note and output. */
  run<T extends Pick<Run, "job_id" | "note"> & Partial<Pick<Run, "stdout" | "stderr">>>(
    run: T,
  ): T {
    const mask = this.byJob.get(run.job_id);
    if (mask === undefined) return run;
    const masked = { ...run, note: run.note === null ? null : mask(run.note) };
    if (run.stdout) masked.stdout = mask(run.stdout);
    if (run.stderr) masked.stderr = mask(run.stderr);
    return masked;
  }

  /** `row` with the env values of the job it is about masked in its message and properties. */
  log(row: LogRow): LogRow {
    const job = row.context.job;
    const mask = typeof job === "string" ? this.byJob.get(job) : undefined;
    if (mask === undefined) return row;
    const context = Object.fromEntries(
      Object.entries(row.context).map((
        [k, v],
      ) => [k, NAMES.includes(k) ? v : maskStrings(v, mask)]),
    );
    return { ...row, message: mask(row.message), context };
  }
}
