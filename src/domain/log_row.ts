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
  /** The service (`jm_nodes.id`) that wrote it; null before it knew its id, or from before schema 10. */
  node_id?: string | null;
}

export interface LogFilter {
  /** This level and above. */
  minLevel?: LogLevel;
  job_id?: string;
  run_id?: number;
  /** Written by this service (`jm_nodes.id`). */
  node_id?: string;
  since?: number;
  /** Only rows with a greater id (for --follow). */
  afterId?: number;
  limit: number;
}

/** Levels from least to most severe, as LogTape names them: the one list every part uses. */
export const LOG_LEVELS = ["debug", "info", "warning", "error", "fatal"] as const;
export type LogLevel = typeof LOG_LEVELS[number];

/** Python's logging (the original project) spelled two of them differently. */
const LEVEL_ALIASES: Record<string, LogLevel> = { warn: "warning", critical: "fatal" };

/** A level as a person may write it (any case, `warn`, `critical`), or null. */
export function parseLogLevel(raw: string): LogLevel | null {
  const s = raw.trim().toLowerCase();
  const level = LEVEL_ALIASES[s] ?? s;
  return (LOG_LEVELS as readonly string[]).includes(level) ? level as LogLevel : null;
}

/** `level` and every more severe one. */
export function levelsFrom(level: LogLevel): LogLevel[] {
  return LOG_LEVELS.slice(Math.max(0, LOG_LEVELS.indexOf(level)));
}
