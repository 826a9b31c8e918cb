/**
 * The line a failed command ends with on stderr: `jobsmanager: MESSAGE`,
 * or with `--json` one JSON object a script can branch on without reading
 * English: `{"error":{"kind":"not_found","message":"…","exit_code":1}}`,
 * its kind from the one mapping the HTTP API's statuses also follow
 * (src/errors.ts), with the job field or config key (`field`) or the
 * option (`option`) at fault where one is known.
 */
import { type ErrorKind, errorMessage, exitCodeOf, kindOf, ValidationError } from "../errors.ts";
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

/** What a thrown error says, for `failureLine`. */
export function failureOf(error: unknown): Failure {
  return {
    kind: kindOf(error),
    message: errorMessage(error),
    exitCode: exitCodeOf(error),
    ...(error instanceof ValidationError ? { field: jobFieldOf(error.field) } : {}),
  };
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
