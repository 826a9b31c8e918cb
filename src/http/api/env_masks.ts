/**
 * A job's env values as a read token must not read them in what the job
 * left: its runs' output and notes, the log lines about it. A job's
 * secrets go in its env (the README says so); a read token sees their
 * names only, and a run that prints one (`env`, a failed command line in
 * a note) must not hand it over. An admin reads everything as stored.
 *
 * Only the job's current env is known, so what a run of an older version
 * printed (a value since changed, or of a job since removed) cannot be
 * masked: a read token is shown that it was withheld, and why. A run names
 * the version it ran (`job_updated_at`); rows from before it recorded that
 * are judged by when they were scheduled.
 */
import type { Job } from "../../domain/job.ts";
import type { LogRow } from "../../domain/log_row.ts";
import type { Run } from "../../domain/run.ts";
import { trimmedAroundCuts, trimmedBeforeShortenings } from "../../domain/output_cut.ts";
import type { JobStore, RunStore } from "../../store/store.ts";
import { masked, redactor } from "../../domain/secrets.ts";
import type { Role } from "../auth.ts";

/** Jobs read one at a time up to this many; more, all at once. */
const ONE_BY_ONE = 20;

/**
 * How long after a job's change a run may still start with the version
 * before it, services polling for changes every `reloadMs`: a service
 * applies a change at its next poll (a lone service told of writes polls
 * every 5 s, or every `reloadMs` when longer), or at once on a notice. A
 * minute at least, or twice the poll. A run scheduled this soon after the
 * change is withheld as an older one is.
 */
export function changeSettles(reloadMs: number): number {
  return Math.max(60_000, 2 * reloadMs);
}

type Mask = (text: string) => string;

/** What is known of a job that still exists: its masks, and since when its env is as now. */
interface Current {
  mask: Mask;
  /** Those of its env values that are masked: bytes around an output's cut go for them too. */
  values: string[];
  /** Its `updated_at`: a run that names this version ran with today's env. */
  version: number;
  /**
   * Runs that name no version, scheduled (log lines written) at or after
   * this instant, ran with today's env.
   */
  since: number;
}

/** What is known of a run a log line names. */
type RunVersion = Pick<Run, "scheduled_at" | "job_updated_at">;

/** Whether `run` ran `current`'s version of its job (so with today's env). */
function ranCurrent(run: RunVersion, current: Current): boolean {
  return run.job_updated_at === null
    ? run.scheduled_at >= current.since
    : run.job_updated_at === current.version;
}

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

/** What a read token reads in place of what a run of job `id`, as it was then, left. */
export function withheld(id: string): string {
  return `[withheld from read tokens: job ${id} was changed or removed since, and the env values it had then cannot be masked; an admin token reads this]`;
}

/** What a read token reads of an output that printed a cut line of its own. */
const LOOK_ALIKE =
  "[withheld from read tokens: this output holds a line like jobsmanager's cut line, so where it was cut, and what of a value it split there, cannot be told; an admin token reads this]";

export class EnvMasks {
  /** `byJob` null: an admin's, which masks nothing. */
  private constructor(
    private readonly byJob: ReadonlyMap<string, Current> | null,
    private readonly runVersions: ReadonlyMap<number, RunVersion> = new Map(),
  ) {}

  /**
   * The masks of the jobs `ids` for a caller of `role`: none for an admin.
   * Each masks what redactSecrets masks of the job's env values (those of
   * 8 characters or more: a `DEBUG=1` would mangle everything).
   */
  static async of(
    jobs: JobStore,
    role: Role,
    ids: Iterable<string>,
    settlesMs: number,
  ): Promise<EnvMasks> {
    if (role === "admin") return new EnvMasks(null);
    const wanted = new Set(ids);
    if (wanted.size === 0) return new EnvMasks(new Map());
    const found: (Job | null)[] = wanted.size <= ONE_BY_ONE
      ? await Promise.all([...wanted].map((id) => jobs.getJob(id)))
      : (await jobs.listJobs()).filter((job) => wanted.has(job.id));
    return EnvMasks.ofJobs(role, found.filter((job) => job !== null), settlesMs);
  }

  /**
   * The masks of the jobs `rows` are about, and which version each run they
   * name ran: a line written while a run of an older version ran may hold
   * that version's values.
   */
  static async ofLogs(
    store: JobStore & RunStore,
    role: Role,
    rows: readonly LogRow[],
    settlesMs: number,
  ): Promise<EnvMasks> {
    const jobs = rows.flatMap((row) =>
      typeof row.context.job === "string" ? [row.context.job] : []
    );
    const masks = await EnvMasks.of(store, role, jobs, settlesMs);
    if (masks.byJob === null) return masks;
    // Only the runs of jobs that still exist: lines about others are withheld anyway.
    const runIds = new Set(rows.flatMap((row) => {
      const exists = typeof row.context.job === "string" && masks.byJob!.has(row.context.job);
      const run = row.context.run;
      return exists && typeof run === "number" ? [run] : [];
    }));
    return new EnvMasks(masks.byJob, await store.runVersions([...runIds]));
  }

  /**
   * The masks of `jobs`, read already, for a caller of `role`; a run is
   * taken for one of a job's version before its last change until
   * `settlesMs` (`changeSettles`) after it.
   */
  static ofJobs(role: Role, jobs: readonly Job[], settlesMs: number): EnvMasks {
    if (role === "admin") return new EnvMasks(null);
    return new EnvMasks(
      new Map(jobs.map((job) => {
        const values = envValues(job.env).filter(masked);
        return [job.id, {
          mask: redactor(values),
          values,
          version: job.updated_at,
          // A job never changed had no other env (a run from before it was added is another's).
          since: job.updated_at === job.created_at ? job.created_at : job.updated_at + settlesMs,
        }];
      })),
    );
  }

  /**
   * `run` with its job's env values masked in its note and output (and
   * what of one the output's cut left, as the service masks its own
   * secrets there: output_cut.ts); withheld when the job was removed or
   * changed since the run was scheduled.
   */
  run<
    T extends
      & Pick<Run, "job_id" | "note" | "scheduled_at" | "job_updated_at">
      & Partial<Pick<Run, "stdout" | "stderr">>,
  >(run: T): T {
    if (this.byJob === null) return run;
    const current = this.byJob.get(run.job_id);
    const fresh = current !== undefined && ranCurrent(run, current);
    const mask = fresh ? current.mask : () => withheld(run.job_id);
    // A value the output's cut split is whole on neither side: the bytes around it go too.
    const output = (text: string) => {
      if (!fresh) return mask(text);
      return mask(trimmedAroundCuts(text, current.values) ?? LOOK_ALIKE);
    };
    // A command line the note shortened may hold the start of a value: the characters before go.
    const note = (text: string) =>
      mask(fresh ? trimmedBeforeShortenings(text, current.values) : text);
    const shown = { ...run, note: run.note ? note(run.note) : run.note };
    if (run.stdout) shown.stdout = output(run.stdout);
    if (run.stderr) shown.stderr = output(run.stderr);
    return shown;
  }

  /**
   * `row` with the env values of the job it is about masked in its message
   * and properties; withheld when the job was removed or changed since the
   * line was written, or since the run it names was scheduled.
   */
  log(row: LogRow): LogRow {
    const job = row.context.job;
    if (this.byJob === null || typeof job !== "string") return row;
    const current = this.byJob.get(job);
    const id = row.context.run;
    const run = typeof id === "number" ? this.runVersions.get(id) : undefined;
    // A line about a run of this version holds today's values whenever it was
    // written; one about no run, or a run of no known version, by its time.
    const fresh = current !== undefined &&
      (typeof id !== "number"
        ? row.created_at >= current.since
        : run !== undefined && ranCurrent(run, current) &&
          (run.job_updated_at !== null || row.created_at >= current.since));
    const mask = fresh ? current.mask : () => withheld(job);
    const context = Object.fromEntries(
      Object.entries(row.context).map((
        [k, v],
      ) => [k, NAMES.includes(k) ? v : maskStrings(v, mask)]),
    );
    return { ...row, message: mask(row.message), context };
  }
}
