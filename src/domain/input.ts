/**
 * Parsers of the values a person types as options: CLI flags and the API's
 * query parameters, so both say the same thing about the same value. Each
 * throws a UsageError (exit 2, HTTP 400) naming the option, the value and
 * what is allowed, and carrying the option when it is one (`--count`).
 * Job fields are parsed by `buildJob`, config keys by config.
 */
import { valueRefused } from "../errors.ts";
import { LOG_LEVELS, type LogLevel, parseLogLevel } from "./log_row.ts";
import { wholeNumber, wholeNumberRule } from "./number.ts";
import { RUN_STATUSES, type RunStatus } from "./run.ts";
import { parseDuration } from "./time.ts";
import { shortened } from "./printable.ts";

/** `-n`, `--limit`: how many, from 1 to `max`. */
export function parseCount(raw: string, name: string, max: number): number {
  const value = wholeNumber(raw, 1, max);
  if (value === null) {
    throw valueRefused(
      name,
      `${name}: '${shortened(raw)}' is not valid (allowed: ${wholeNumberRule(1, max)})`,
    );
  }
  return value;
}

/** A run id (`runs show`, `logs --run`). */
/** `what`: what the number counts, for the message (a run's, a log line's id). */
export function parseRunId(raw: string, name: string, what = "run number"): number {
  if (!/^\d+$/.test(raw)) throw valueRefused(name, `${name}: '${raw}' is not a ${what}`);
  const id = Number(raw);
  // Beyond 2^53 a number is rounded: run 99999999999999999999999 became "run 1e+23".
  if (!Number.isSafeInteger(id)) {
    throw valueRefused(name, `${name}: '${raw}' is not a ${what} (too large to be one)`);
  }
  return id;
}

export function parseStatus(raw: string, name: string): RunStatus {
  if (!(RUN_STATUSES as readonly string[]).includes(raw)) {
    throw valueRefused(
      name,
      `${name}: '${raw}' is not a run status (one of ${RUN_STATUSES.join(", ")})`,
    );
  }
  return raw as RunStatus;
}

export function parseLevel(raw: string, name: string): LogLevel {
  const level = parseLogLevel(raw);
  if (level === null) {
    throw valueRefused(
      name,
      `${name}: '${raw}' is not a log level (one of ${LOG_LEVELS.join(", ")})`,
    );
  }
  return level;
}

/** `--since 2h`: the instant that long before `now`. */
export function parseSince(raw: string, now: number, name: string): number {
  return now - parseDuration(raw, name);
}
