/**
 * 503s say a state (the database away, a limit reached), not a fault of
 * the HTTP side, and come one a request while it lasts: a warning at most
 * once a minute for each kind (one does not silence another), with how
 * many came since the last; and once the cause ends (or the server stops),
 * how many came after that last warning, which no next 503 would say.
 */
import { log } from "../daemon/log.ts";

/** A 503 is said at most this often. */
const UNAVAILABLE_LOG_MS = 60_000;
/** Requests remembered per kind to see the cause end by (a request refused, then answered). */
const MAX_REMEMBERED = 100;

const httpLog = log("http");

interface Refusals {
  /** 503s since the kind was last said. */
  count: number;
  saidAt: number;
  /** The last one's message. */
  error: string;
  /** `METHOD path` of requests answered 503 since the kind's first. */
  refused: Set<string>;
}

export interface Refused {
  method: string;
  path: string;
  /** Redacted. */
  error: string;
}

export class UnavailableLog {
  readonly #kinds = new Map<string, Refusals>();

  /** `now`: a monotonic clock in ms. */
  constructor(private readonly now: () => number = () => performance.now()) {}

  /** A request was answered 503 because of `kind` (the error's class). */
  refused(kind: string, said: Refused): void {
    let seen = this.#kinds.get(kind);
    if (seen === undefined) {
      seen = { count: 0, saidAt: -Infinity, error: said.error, refused: new Set() };
      this.#kinds.set(kind, seen);
    }
    seen.count++;
    seen.error = said.error;
    if (seen.refused.size < MAX_REMEMBERED) seen.refused.add(`${said.method} ${said.path}`);
    if (this.now() - seen.saidAt >= UNAVAILABLE_LOG_MS) {
      seen.saidAt = this.now();
      httpLog.warn(
        "{method} {path} answered 503: {error} (requests answered 503 for this since it was last said: {count}; said at most once a minute)",
        { ...said, count: seen.count },
      );
      seen.count = 0;
    }
  }

  /**
   * A request was answered `status`. A success for a request that a kind
   * refused means its cause ended: the 503s not said yet are said now,
   * and the kind's next 503 (a new cause) at once.
   */
  answered(method: string, path: string, status: number): void {
    if (this.#kinds.size === 0 || status >= 400) return;
    const request = `${method} ${path}`;
    for (const [kind, seen] of this.#kinds) {
      if (!seen.refused.has(request)) continue;
      this.#kinds.delete(kind);
      if (seen.count === 0) continue;
      httpLog.warn(
        "{method} {path} answered {status} again; requests answered 503 since it was last said: {count} (the last: {error})",
        { method, path, status, count: seen.count, error: seen.error },
      );
    }
  }

  /** The server stops: the 503s not said yet are said, their cause ended or not. */
  stopped(): void {
    for (const [kind, seen] of this.#kinds) {
      this.#kinds.delete(kind);
      if (seen.count === 0) continue;
      httpLog.warn(
        "requests answered 503 since it was last said: {count} (the last: {error}); the HTTP server stops",
        { count: seen.count, error: seen.error },
      );
    }
  }
}
