/**
 * Errors as JSON: the same one-line message the CLI prints (naming the
 * API's fields and parameters where the CLI's names its flags), with the HTTP
 * status that matches the typed error (src/errors.ts), and the field at
 * fault for validation errors so a form can show it beside the field.
 */
import {
  DatabaseError,
  type ErrorKind,
  errorMessage,
  kindOf,
  refusesReads,
  refusesWrites,
  ValidationError,
} from "../errors.ts";
import { jobFieldOf } from "../domain/option_names.ts";
import { StaleCopyError } from "../app/jobs.ts";

/** A refusal only HTTP has: a missing or wrong token, an unknown path, a body that is not JSON. */
export class HttpError extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 405 | 408 | 413 | 415 | 503,
    message: string,
    /** Seconds the client should wait before asking again (Retry-After), where known. */
    readonly retryAfterS?: number,
  ) {
    super(message);
    this.name = "HttpError";
  }
}

export interface ErrorBody {
  error: string;
  /** The job field or config key at fault (validation errors only). */
  field?: string;
}

/** The status of each kind of error (src/errors.ts), which the CLI reports under `--json`. */
const STATUS_OF: Record<ErrorKind, number> = {
  usage: 400,
  invalid: 400,
  not_found: 404,
  conflict: 409,
  // The client is told to try again, as when the database is away or a write kept losing a deadlock.
  unavailable: 503,
  // A request the state does not allow (a run that has ended, no live service to take a run).
  refused: 409,
  internal: 500,
};

export function statusOf(error: unknown): number {
  if (error instanceof HttpError) return error.status;
  // An If-Match that fails (RFC 9110 §13.1.1), before the conflicts it is one of.
  if (error instanceof StaleCopyError) return 412;
  const kind = kindOf(error);
  // A statement the database refused is a fault of the server's, not a state the client can change;
  // a login it refused, a read (the user lacks SELECT) or a write (it lacks INSERT, UPDATE or
  // DELETE; a full disk or table; a read-only database) leaves the service unable to serve until
  // someone fixes it.
  if (kind === "refused" && error instanceof DatabaseError) {
    return error.unreachable || error.readsRefused || error.writesRefused ? 503 : 500;
  }
  return STATUS_OF[kind];
}

/**
 * What an error says, as a line: a read or a write the database refused
 * says so first (its message names the GRANT the user needs, or the full
 * disk), as `/readyz` does.
 */
export function httpErrorMessage(error: unknown): string {
  const message = errorMessage(error);
  if (refusesReads(error)) return `the database refuses reads: ${message}`;
  return refusesWrites(error) ? `the database refuses writes: ${message}` : message;
}

export function errorBody(error: unknown, redact: (text: string) => string): ErrorBody {
  const message = redact(httpErrorMessage(error));
  return error instanceof ValidationError
    ? { error: message, field: jobFieldOf(error.field) }
    : { error: message };
}
