/**
 * Query parameters of the API, read by the parsers of the CLI's options
 * (src/domain/input.ts), so `?limit=0` and `--limit 0` get one message, each
 * naming what was typed.
 * Absent or empty means not given.
 */
import { validateId } from "../domain/job.ts";
import type { LogLevel } from "../domain/log_row.ts";
import { parseCount, parseLevel, parseSince, parseStatus } from "../domain/input.ts";
import type { RunStatus } from "../domain/run.ts";

const given = (raw: string | undefined): raw is string => raw !== undefined && raw !== "";

export function count(
  raw: string | undefined,
  name: string,
  max: number,
  fallback: number,
): number {
  return given(raw) ? parseCount(raw, name, max) : fallback;
}

export function optionalJob(raw: string | undefined): string | undefined {
  return given(raw) ? validateId(raw, "job") : undefined;
}

export function optionalStatus(raw: string | undefined): RunStatus | undefined {
  return given(raw) ? parseStatus(raw, "status") : undefined;
}

export function optionalLevel(raw: string | undefined): LogLevel | undefined {
  return given(raw) ? parseLevel(raw, "level") : undefined;
}

export function optionalSince(raw: string | undefined, now: number): number | undefined {
  return given(raw) ? parseSince(raw, now, "since") : undefined;
}
