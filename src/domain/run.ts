/**
 * The Run model: one row of `jm_runs`, one per fire (or manual request).
 */

/** What became of a fire. Closed set; the column holds these words. */
export const RUN_STATUSES = [
  /** Claimed, waiting for a worker (or, for `job run`, for a service). */
  "queued",
  "running",
  /** Exit code 0. */
  "success",
  /** Exit code other than 0. */
  "failed",
  /** Killed for running past the job's timeout. */
  "timeout",
  /** Killed by a signal jobsmanager did not send. */
  "killed",
  /**
   * Still running when the service stopped or crashed (or the CLI process
   * of `job run --here` died).
   */
  "interrupted",
  /** Not run: max_instances earlier runs were still running. */
  "skipped",
  /** Not run: later than misfire_grace_time (downtime, stall, full pool). */
  "missed",
  /** Its node stopped sending heartbeats while it ran. */
  "lost",
  /** The command could not be started at all. */
  "error",
  /** Dropped before it started, or ended, at a person's request (`runs cancel`). */
  "cancelled",
] as const;
export type RunStatus = typeof RUN_STATUSES[number];

/** Statuses of a run that has ended. */
export const FINAL_STATUSES: readonly RunStatus[] = RUN_STATUSES.filter(
  (s) => s !== "queued" && s !== "running",
);

/**
 * The note of the runs node `id` lost when `by` declared it dead at `at`,
 * `lastBeat` its last heartbeat (both on the database's clock).
 */
export function lostNote(id: string, lastBeat: number, at: number, by: string): string {
  return `node ${id} stopped sending heartbeats (last at ${
    new Date(lastBeat).toISOString()
  }) and was declared dead at ${new Date(at).toISOString()} by node ${by}`;
}

/**
 * Most characters of a run's note: jm_runs.note is TEXT, 65,535 bytes on
 * MySQL, which refuses a longer value (and a run whose end it refuses
 * stays `running`); a character takes up to 4 bytes. Held on SQLite too,
 * so that a note reads the same on both.
 */
export const NOTE_MAX = 16_000;

/** `note` within NOTE_MAX characters (see `shortenedNote`). */
export function fitNote(note: string): string;
export function fitNote(note: string | null): string | null;
export function fitNote(note: string | null): string | null {
  return note === null ? null : shortenedNote(note, NOTE_MAX);
}

/**
 * `note` within `max` characters: its start, cut at a character's edge,
 * then `…` and how much went. The `…` right at the cut: a read token's
 * masks take the characters before each `…` away (output_cut.ts
 * `trimmedBeforeShortenings`), so a job's env value this cut splits shows
 * no part; a line saying so between them would have kept two.
 */
export function shortenedNote(note: string, max: number): string {
  if (note.length <= max) return note;
  const said = (n: number) => `… [jobsmanager cut ${n} characters of this note]`;
  let end = max - said(note.length).length;
  // Not between the two halves of a surrogate pair.
  const code = note.charCodeAt(end);
  if (code >= 0xdc00 && code <= 0xdfff) end--;
  return note.slice(0, end) + said(note.length - end);
}

/**
 * Why a run exists: its schedule, `job run`, a retry of a failed attempt,
 * or the end of a run of the job it follows (`--after`).
 */
export const RUN_TRIGGERS = ["schedule", "manual", "retry", "after"] as const;
export type RunTrigger = typeof RUN_TRIGGERS[number];

export interface Run {
  id: number;
  job_id: string;
  /** The fire instant (ms); for manual runs, when it was asked for. */
  scheduled_at: number;
  started_at: number | null;
  finished_at: number | null;
  status: RunStatus;
  exit_code: number | null;
  signal: string | null;
  stdout: string | null;
  stderr: string | null;
  node_id: string | null;
  trigger: RunTrigger;
  /** Why it was skipped, missed or failed to start; how many fires a `missed` row stands for. */
  note: string | null;
  /** `job run --force`: started even when max_instances runs of the job are running. */
  forced: boolean;
  /** When `runs cancel` asked for this run to end (ms); null when nobody did. */
  cancel_requested_at: number | null;
  /** Who asked, as `user@host`; null when nobody did. */
  cancel_requested_by: string | null;
  /** The process group its shell led; null until it started. */
  pgid: number | null;
  /**
   * Its JM_RUN_MARKER, by which its processes are found; recorded with the
   * claim of a run to start (null for skipped and missed rows, and in rows
   * written before version 0.1 recorded it there).
   */
  marker: string | null;
  /** 1 for a first run; n for the (n-1)th retry. */
  attempt: number;
  /** A retry's first attempt; null for a first attempt. */
  first_run_id: number | null;
  /** The run of the followed job whose end started this one (trigger `after`). */
  parent_run_id: number | null;
  /**
   * The `updated_at` of the job's version it ran (or, not run, was decided
   * for): its command and env then. Null in rows written before version
   * 0.1 recorded it, or by a release before it during a rolling upgrade.
   */
  job_updated_at: number | null;
}

/** What a new row starts with; the rest is filled in as the run proceeds. */
export type NewRun = Pick<Run, "job_id" | "scheduled_at" | "status" | "trigger"> & Partial<Run>;

/** Which row of a job a new id went to: its instant and trigger (with the job, the unique key). */
export type RowKey = Pick<NewRun, "scheduled_at" | "trigger">;

/** The columns a run's progress may change. */
export type RunUpdate = Partial<
  Pick<
    Run,
    | "started_at"
    | "finished_at"
    | "status"
    | "exit_code"
    | "signal"
    | "stdout"
    | "stderr"
    | "node_id"
    | "note"
    | "cancel_requested_at"
    | "cancel_requested_by"
    | "pgid"
    | "marker"
    | "job_updated_at"
  >
>;

export interface RunFilter {
  job_id?: string;
  status?: RunStatus;
  /** Only runs of this service node. */
  node_id?: string;
  /** Only runs scheduled at or after this instant (ms). */
  since?: number;
  /** Only runs whose id is below this one (the next page back of a list by id). */
  beforeId?: number;
  limit: number;
  /** False: stdout and stderr are not read (null), for lists that do not show them. */
  output?: boolean;
}
