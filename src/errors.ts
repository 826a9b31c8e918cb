/**
 * Typed errors. Each carries the exit code the CLI ends with, so a command
 * never has to guess: 2 for anything the user typed or configured wrongly,
 * 1 for a failure at run time (database unreachable, login rejected, …).
 */

/** Bad input: a flag, a job field, a config key. Exit code 2. */
export class UsageError extends Error {
  readonly exitCode = 2;
  constructor(
    message: string,
    /** The option whose value is refused, as typed (`--count`), where the message is about one. */
    readonly option?: string,
  ) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * A value refused, `name` being what the person typed it as: an option
 * (`--count`), which the error then carries, or a query parameter or an
 * argument (`limit`, `run id`), which it does not: the parsers of
 * src/domain/input.ts serve the CLI and the API alike.
 */
export function valueRefused(name: string, message: string): UsageError {
  return new UsageError(message, name.startsWith("-") ? name : undefined);
}

/** A job field or config key failed validation. Exit code 2. */
export class ValidationError extends UsageError {
  constructor(
    /** The field or config key at fault, e.g. `minute` or `db.port`. */
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = "ValidationError";
  }
}

/** The operation cannot proceed at run time. Exit code 1. */
export class RuntimeError extends Error {
  readonly exitCode = 1;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RuntimeError";
  }
}

/** The database could not be reached, refused the login, or refused a statement. Exit code 1. */
export class DatabaseError extends RuntimeError {
  constructor(
    message: string,
    options?: ErrorOptions & {
      /** False when the server answered but refused the statement: retrying will not help. */
      unreachable?: boolean;
      /**
       * The statement was refused for the values it carries (one longer
       * than its column, a packet over max_allowed_packet, a string the
       * column's character set cannot hold): the same values are refused
       * however often they are sent; smaller, plainer ones may be taken.
       */
      unstorable?: boolean;
      /**
       * The server answered and turned the connection away (the login
       * refused, no such database): unlike a silence, trying again changes
       * nothing until someone does. A service still waits it out as an
       * outage, since the fix comes from outside.
       */
      turnedAway?: boolean;
      /**
       * No connection failed: a statement got no answer in time (a lock
       * wait, overload, or the network). Unreachable for the service all
       * the same, but not said to be.
       */
      unanswered?: boolean;
      /**
       * The database answered and refuses every write until someone acts
       * (a full disk or table, a disk quota, a read-only file or
       * filesystem): what is to be written waits for that, and reads go on.
       */
      writesRefused?: boolean;
      /**
       * The database answered and refuses reads (the user lacks SELECT):
       * nothing jobsmanager reads, job changes and requests included, is
       * seen until someone grants it. No write refused: a write that reads
       * nothing may still go through.
       */
      readsRefused?: boolean;
      /**
       * Said of a database that is not jobsmanager's, only read from (the
       * original's, `import apscheduler --from-database`): what it
       * refuses is said as the source's.
       */
      ofSource?: boolean;
    },
  ) {
    super(message, options);
    this.name = "DatabaseError";
    this.unstorable = options?.unstorable ?? false;
    this.unreachable = !this.unstorable && (options?.unreachable ?? true);
    this.turnedAway = options?.turnedAway ?? false;
    this.unanswered = options?.unanswered ?? false;
    this.writesRefused = !this.unreachable && (options?.writesRefused ?? false);
    this.readsRefused = !this.unreachable && (options?.readsRefused ?? false);
    this.ofSource = options?.ofSource ?? false;
  }

  readonly unreachable: boolean;
  readonly unstorable: boolean;
  readonly turnedAway: boolean;
  readonly unanswered: boolean;
  readonly writesRefused: boolean;
  readonly readsRefused: boolean;
  readonly ofSource: boolean;
}

/** True when the database refuses every write until someone acts (see DatabaseError). */
export function refusesWrites(error: unknown): boolean {
  return error instanceof DatabaseError && error.writesRefused;
}

/** True when the database refuses reads until someone acts (see DatabaseError). */
export function refusesReads(error: unknown): boolean {
  return error instanceof DatabaseError && error.readsRefused;
}

/** True when the error is a source database's, not jobsmanager's (see DatabaseError). */
export function ofSource(error: unknown): boolean {
  return error instanceof DatabaseError && error.ofSource;
}

/** True when the database refused a statement for the values it carries (see DatabaseError). */
export function isUnstorable(error: unknown): boolean {
  return error instanceof DatabaseError && error.unstorable;
}

/**
 * The database answered, but kept rolling the write back as a deadlock
 * victim of other writes at once: nothing was written, and the same write
 * may succeed when tried again.
 */
export class ContentionError extends DatabaseError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, { ...options, unreachable: false });
    this.name = "ContentionError";
  }
}

/** True unless the database answered and refused: worth waiting for and retrying. */
export function isUnreachable(error: unknown): boolean {
  return !(error instanceof DatabaseError) || error.unreachable;
}

/** A job id that does not exist (exit 1: the input was well formed). */
export class NotFoundError extends RuntimeError {
  constructor(message: string) {
    super(message);
    this.name = "NotFoundError";
  }
}

/** A job id that already exists, on `job add` without `--replace`; a job changed since it was read. */
export class ConflictError extends RuntimeError {
  constructor(message: string) {
    super(message);
    this.name = "ConflictError";
  }
}

/** The exit code for any thrown value: typed errors carry theirs, the rest are 1. */
export function exitCodeOf(error: unknown): number {
  if (error instanceof UsageError) return error.exitCode;
  return 1;
}

/**
 * What kind of failure an error is, for scripts (`--json`) and API clients
 * alike, which cannot tell them apart by exit code or HTTP status alone:
 * - `usage`: the words typed (an unknown option, a missing argument);
 * - `invalid`: a job field or config key failed validation;
 * - `not_found`: the job (or run) named does not exist;
 * - `conflict`: the id is taken, or the job changed since it was read;
 * - `unavailable`: the database did not answer, or kept rolling the write
 *   back: the same command may succeed when tried again;
 * - `refused`: the state does not allow it (a run that has ended, no live
 *   service, a database not made yet), or the database refused the statement;
 * - `internal`: anything else, a fault of jobsmanager's.
 */
export type ErrorKind =
  | "usage"
  | "invalid"
  | "not_found"
  | "conflict"
  | "unavailable"
  | "refused"
  | "internal";

export function kindOf(error: unknown): ErrorKind {
  if (error instanceof ValidationError) return "invalid";
  if (error instanceof UsageError) return "usage";
  if (error instanceof NotFoundError) return "not_found";
  if (error instanceof ConflictError) return "conflict";
  if (error instanceof ContentionError) return "unavailable";
  if (error instanceof DatabaseError) {
    return error.unreachable && !error.turnedAway ? "unavailable" : "refused";
  }
  if (error instanceof RuntimeError) return "refused";
  return "internal";
}

/** What went wrong, as a line: an Error's message, or anything else thrown as text. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
