/**
 * 503s say a state (the database away, a limit reached), not a fault of
 * the HTTP side, and come one a request while it lasts: a warning at most
 * once a minute for each kind (one does not silence another), with how
 * many came since the last; and once the cause ends (or the server stops),
 * how many came after that last warning, which no next 503 would say, also
 * at most once a minute: a cause that comes and goes (a slot of the
 * live-stream cap freed and taken again) adds two lines a minute at most.
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
  /** When a 503 of the kind was last said, and when its cause's end (monotonic ms). */
  saidAt: number;
  endSaidAt: number;
  /**
   * The answer to a request the kind refused that came since its last 503
   * (`GET /api/v1/jobs answered 200`): its cause ended. Null while none did.
   */
  endedBy: string | null;
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
      seen = {
        count: 0,
        saidAt: -Infinity,
        endSaidAt: -Infinity,
        endedBy: null,
        error: said.error,
        refused: new Set(),
      };
      this.#kinds.set(kind, seen);
    }
    seen.endedBy = null;
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
   * refused means its cause ended: the 503s not said yet are said now, or
   * at the first success a minute after the last such line.
   */
  answered(method: string, path: string, status: number): void {
    if (this.#kinds.size === 0 || status >= 400) return;
    const request = `${method} ${path}`;
    for (const seen of this.#kinds.values()) {
      if (seen.refused.delete(request)) {
        seen.endedBy = `${request} answered ${status}`;
        seen.refused.clear();
      }
      if (seen.endedBy === null || seen.count === 0) continue;
      if (this.now() - seen.endSaidAt < UNAVAILABLE_LOG_MS) continue;
      seen.endSaidAt = this.now();
      httpLog.warn(
        "{answer} again; requests answered 503 since it was last said: {count} (the last: {error})",
        { answer: seen.endedBy, count: seen.count, error: seen.error },
      );
      seen.endedBy = null;
      seen.count = 0;
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
