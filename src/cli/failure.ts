/**
 * The line a failed command ends with on stderr: `jobsmanager: MESSAGE`,
 * or with `--json` one JSON object a script can branch on without reading
 * English: `{"error":{"kind":"not_found","message":"…","exit_code":1}}`,
 * its kind from the one mapping the HTTP API's statuses also follow
 * (src/errors.ts), with the job field or config key (`field`) or the
 * option (`option`) at fault where one is known.
 */
import {
  type ErrorKind,
  errorMessage,
  exitCodeOf,
  kindOf,
  ofSource,
  refusesReads,
  refusesWrites,
  UsageError,
  ValidationError,
} from "../errors.ts";
import { toJson } from "../domain/json.ts";
import { jobFieldOf } from "../domain/option_names.ts";
import { redact } from "./context.ts";
import { printable } from "../domain/printable.ts";

export interface Failure {
  kind: ErrorKind;
  message: string;
  exitCode: number;
  /** The job field or config key at fault: `timeout`, `db.url`. */
  field?: string;
  /** The option at fault, as typed: `--timeout`. */
  option?: string;
}

/**
 * What a thrown error says, for `failureLine`. A value refused for an
 * option names the option and, as a mistake in the words typed does, the
 * help of the command (`help`: `jobsmanager job show`).
 */
export function failureOf(error: unknown, help?: string): Failure {
  // A value checked as a job's field but named as typed (`validateId(raw, "--job")`) is an option's.
  const named = error instanceof ValidationError && error.field.startsWith("-")
    ? error.field
    : undefined;
  const option = error instanceof UsageError ? error.option ?? named : undefined;
  const message = databaseSaid(error);
  // A job field's error says what the field allows: the help would add nothing.
  const field = error instanceof ValidationError && named === undefined;
  return {
    kind: kindOf(error),
    message: option === undefined || help === undefined || field
      ? message
      : `${message} (see \`${help} --help\`)`,
    exitCode: exitCodeOf(error),
    ...(field ? { field: jobFieldOf((error as ValidationError).field) } : {}),
    ...(option === undefined ? {} : { option }),
  };
}

/**
 * What an error says, as a line: a read or a write the database refused
 * says so first, in plain words, as the HTTP API does (its message names
 * the GRANT the user needs, or the full disk or read-only file and the
 * fix); one an import's source database refused, as the source's (its
 * message names the GRANT of SELECT on the table read). Every command's
 * failure is said through this, once, and what `logs --follow` could not
 * read.
 */
export function databaseSaid(error: unknown): string {
  const message = errorMessage(error);
  if (refusesReads(error)) {
    return ofSource(error)
      ? `the source database refuses this user's reads: ${message}`
      : `the database refuses this user's reads (it lacks SELECT on jobsmanager's tables): ${message}`;
  }
  return refusesWrites(error) ? `the database refuses writes: ${message}` : message;
}

/** A mistake in the words typed (exit 2), found before any command ran. */
export function usageFailure(message: string, option?: string): Failure {
  return { kind: "usage", message, exitCode: 2, ...(option === undefined ? {} : { option }) };
}

export function failureLine(failure: Failure, json: boolean): string {
  if (!json) return `jobsmanager: ${printable(failure.message)}`;
  const { kind, message, exitCode, field, option } = failure;
  return toJson(
    { error: { kind, message, exit_code: exitCode, field, option } },
    undefined,
    redact,
  );
}

/**
 * Whether `--json` was given: a global option, so anywhere before `--`
 * (after it, it is an argument). Also for mistakes the parser finds before
 * it has read the option.
 */
export function jsonGiven(args: readonly string[]): boolean {
  const end = args.indexOf("--");
  return (end < 0 ? args : args.slice(0, end)).includes("--json");
}
