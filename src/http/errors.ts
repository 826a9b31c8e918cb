/**
 * Errors as JSON: the same one-line message the CLI prints (naming the
 * API's fields and parameters where the CLI's names its flags), with the HTTP
 * status that matches the typed error (src/errors.ts), and the field at
 * fault for validation errors so a form can show it beside the field.
 */
import {
  ConflictError,
  ContentionError,
  DatabaseError,
  errorMessage,
  NotFoundError,
  RuntimeError,
  UsageError,
  ValidationError,
} from "../errors.ts";
import { jobFieldOf } from "../domain/option_names.ts";
import { StaleCopyError } from "../app/jobs.ts";

/** A refusal only HTTP has: a missing or wrong token, an unknown path, a body that is not JSON. */
export class HttpError extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 405 | 408 | 413 | 415 | 503,
    message: string,
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

export function statusOf(error: unknown): number {
  if (error instanceof HttpError) return error.status;
  if (error instanceof NotFoundError) return 404;
  // An If-Match that fails (RFC 9110 §13.1.1), before the conflicts it is one of.
  if (error instanceof StaleCopyError) return 412;
  if (error instanceof ConflictError) return 409;
  if (error instanceof UsageError) return 400;
  // Contention passes: the client is told to try again, as when the database is away.
  if (error instanceof ContentionError) return 503;
  if (error instanceof DatabaseError) return error.unreachable ? 503 : 500;
  // The rest of the typed failures refuse a request the state does not allow
  // (a run that has ended, no live service to take a run): a conflict, not a fault.
  if (error instanceof RuntimeError) return 409;
  return 500;
}

export function errorBody(error: unknown, redact: (text: string) => string): ErrorBody {
  const message = redact(errorMessage(error));
  return error instanceof ValidationError
    ? { error: message, field: jobFieldOf(error.field) }
    : { error: message };
}
