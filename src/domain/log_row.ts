/** One row of `jm_syslog`: a log record as the database keeps it. */
export interface LogRow {
  id?: number;
  /** Milliseconds since the epoch. */
  created_at: number;
  level: string;
  logger_name: string;
  message: string;
  /** Structured properties: job id, run id, counts, … */
  context: Record<string, unknown>;
}

export interface LogFilter {
  /** This level and above. */
  minLevel?: string;
  job_id?: string;
  run_id?: number;
  since?: number;
  /** Only rows with a greater id (for --follow). */
  afterId?: number;
  limit: number;
}

/** Levels from least to most severe, as LogTape names them. */
export const LEVEL_ORDER = ["trace", "debug", "info", "warning", "error", "fatal"];

export function levelsFrom(level: string): string[] {
  return LEVEL_ORDER.slice(Math.max(0, LEVEL_ORDER.indexOf(level)));
}
