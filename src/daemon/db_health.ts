/**
 * Whether the database answers, for everything in the service that uses
 * it. Consumers report the failures they see; an unreachable database
 * turns the service offline: the outage is logged once, the recorder
 * buffers, polling, heartbeats and the log sink wait, and a probe
 * (`ping`, backing off from 1 s to 30 s) brings it back online, which is
 * logged once too.
 */
import {
  DatabaseError,
  errorMessage,
  isUnreachable,
  refusesReads,
  refusesWrites,
} from "../errors.ts";
import type { Store } from "../store/store.ts";
import type { Clock } from "./clock.ts";
import { log } from "./log.ts";

/** The longest wait between two attempts to reconnect. */
export const MAX_RECONNECT_WAIT_MS = 30_000;
/** 1 s, 2 s, 4 s … up to 30 s between reconnection attempts. */
export const backoff = (attempt: number) => Math.min(MAX_RECONNECT_WAIT_MS, 1000 * 2 ** attempt);

/**
 * Why the database counts as away: a connection failed (`unreachable`);
 * a statement got no answer in time and nothing more is known
 * (`unanswered`: a lock wait, overload, the network); or the probe's ping
 * is answered since, but what waited is not yet written (`answers`: a
 * lock wait, or overload).
 */
export type DatabaseAway = "unreachable" | "unanswered" | "answers";

/** Work that must succeed before the database counts as back (writing what waited). */
export type Recovery = () => Promise<void>;

const storeLog = log("store");

/** Distinct refusals remembered as told; beyond, they are told again (a bound, not a policy). */
const MAX_REFUSALS_KEPT = 100;
/** Outages remembered for the notes of the fires they held (a bound, not a policy). */
const RECENT_OUTAGES_KEPT = 10;

export class DbHealth {
  private downSince: number | null = null;
  /** Length of the outages that ended (for /metrics). */
  private pastOutagesMs = 0;
  /** The last outages that ended, oldest first. */
  private readonly recent: { from: number; to: number }[] = [];
  private probing: Promise<void> | null = null;
  private readonly recoveries: Recovery[] = [];
  private readonly backListeners: (() => void)[] = [];
  private holdingReason: () => string | null = () => null;
  private waiting: () => number = () => 0;
  private readonly closing = new AbortController();
  /** Refusals logged since a write last went through: their repeats are not news. */
  private readonly refusals = new Set<string>();
  /** Why the database is away (see `away`); null while online. */
  private awayAs: DatabaseAway | null = null;
  /** What the database said when it last refused a write (see `writesRefused`). */
  private refusingWrites: string | null = null;
  /** What the database said when it last refused a read (see `readsRefused`). */
  private refusingReads: string | null = null;
  /**
   * Whether a heartbeat has been written since the last refusal. A refusal
   * does not say which write it was: run records, a heartbeat, both (a full
   * disk) or only one (MySQL's jm_runs full). Writes count as taken again
   * once a heartbeat went through and no refused run record waits, whichever
   * comes last: one kind written is not the other taken.
   */
  private heartbeatSinceRefusal = true;

  constructor(
    private readonly store: Pick<Store, "ping">,
    private readonly clock: Clock,
    /** Wait before the n-th probe of an outage (n from 0). */
    private readonly retryDelayMs: (attempt: number) => number = backoff,
  ) {}

  /** False while the database is known to be away. */
  get online(): boolean {
    return this.downSince === null;
  }

  /** What is known of why it is away; null while online. */
  get away(): DatabaseAway | null {
    return this.awayAs;
  }

  /**
   * While the database refuses writes until someone acts (a full disk, a
   * read-only file, a full table: see DatabaseError.writesRefused), what it
   * said, naming the cause and the fix; null before any was refused, and
   * again once a heartbeat was written since and no refused run record
   * waits (`wrote`, `writesTaken`). The database still answers meanwhile:
   * `online` stays true, and the recorder keeps the run records.
   */
  get writesRefused(): string | null {
    return this.refusingWrites;
  }

  /**
   * While the database refuses reads (the user lacks SELECT on jobsmanager's
   * tables: see DatabaseError.readsRefused), what it said, naming the GRANT
   * the user needs; null before any was refused, and again once a poll has
   * read (`readsTaken`). The service cannot see job changes, cancels or
   * `job run` requests meanwhile, and fires from the timetable in memory.
   */
  get readsRefused(): string | null {
    return this.refusingReads;
  }

  /** The poll read what it reads: reads are taken again. */
  readsTaken(): void {
    this.refusingReads = null;
  }

  /** How long the database has been away since this object was made, the current outage included. */
  get outageMs(): number {
    return this.pastOutagesMs + this.currentOutageMs;
  }

  /** How long the current outage has lasted; 0 while the database answers. */
  get currentOutageMs(): number {
    // A clock stepped back meanwhile counts none of it.
    return this.downSince === null ? 0 : Math.max(0, this.clock.now() - this.downSince);
  }

  /**
   * The outages that overlap `from`..`to` (ms), the one under way
   * included, said for a note: "the database was unreachable from … to …";
   * null when none did.
   */
  outagesDuring(from: number, to: number): string | null {
    const iso = (ms: number) => new Date(ms).toISOString();
    const spans = [
      ...this.recent.filter((o) => o.from <= to && o.to >= from)
        .map((o) => `from ${iso(o.from)} to ${iso(o.to)}`),
      ...(this.downSince !== null && this.downSince <= to ? [`since ${iso(this.downSince)}`] : []),
    ];
    return spans.length === 0 ? null : `the database was unreachable ${spans.join(", and ")}`;
  }

  /** Run `recovery` after each outage, once the database answers; if it fails, the outage goes on. */
  onRecovery(recovery: Recovery): void {
    this.recoveries.push(recovery);
  }

  /**
   * Call `listener` each time the database counts as back, after the
   * recoveries: what was recorded while they ran waited for it.
   */
  onBack(listener: () => void): void {
    this.backListeners.push(listener);
  }

  /**
   * Say in the outage's log line that the service holds its fires, and
   * why, whenever `reason` gives one (a cluster node); else that it keeps
   * firing.
   */
  holdsWhen(reason: () => string | null): void {
    this.holdingReason = reason;
  }

  /**
   * A statement failed. When the database is unreachable, go offline (if
   * not already) and probe until it answers; when it answered and refused
   * the statement, retrying cannot help: only say so.
   */
  failed(error: unknown): void {
    if (!isUnreachable(error)) {
      if (this.newRefusal(error)) {
        storeLog.error("the database refused a statement: {error}", { error: errorMessage(error) });
      } else {
        storeLog.debug("the database refused a statement again: {error}", {
          error: errorMessage(error),
        });
      }
      return;
    }
    if (this.closing.signal.aborted) return;
    const unanswered = error instanceof DatabaseError && error.unanswered;
    // A connection that failed says more than a statement unanswered.
    if (!unanswered) this.awayAs = "unreachable";
    if (this.downSince === null) {
      this.downSince = this.clock.now();
      this.awayAs = unanswered ? "unanswered" : "unreachable";
      const away = unanswered
        ? "the database did not answer in time ({error}: a lock wait, overload, or the network)"
        : "the database is unreachable ({error})";
      const reason = this.holdingReason();
      if (reason === null) {
        storeLog.error(
          `${away}; jobs keep firing from the current timetable and their run records wait in memory`,
          { error: errorMessage(error) },
        );
      } else {
        storeLog.error(
          `${away}; this node holds its fires until it is back ({reason}), then runs them late within misfire_grace_time or records them missed`,
          { error: errorMessage(error), reason },
        );
      }
    }
    this.probing ??= this.probe().finally(() => this.probing = null);
  }

  /**
   * Whether the refusal `error` is news, to log at error level: not one
   * logged since a write last went through (`wrote`). A full disk or a
   * read-only file refuses every write alike: it is told once, not at
   * every fire and heartbeat. Noted too (`refused`).
   */
  newRefusal(error: unknown): boolean {
    this.refused(error);
    const text = errorMessage(error);
    if (this.refusals.has(text)) return false;
    if (this.refusals.size >= MAX_REFUSALS_KEPT) this.refusals.clear();
    this.refusals.add(text);
    return true;
  }

  /**
   * A write of run records went through: a refusal that comes after it is
   * news again; writes are taken again once no refused record waits, if a
   * heartbeat went through too (see `heartbeatSinceRefusal`).
   */
  wrote(): void {
    this.refusals.clear();
    this.settleRefusal();
  }

  /**
   * A heartbeat was written: writes are taken again, unless run records
   * still wait that were refused; then the recorder's write of them tells.
   */
  writesTaken(): void {
    this.heartbeatSinceRefusal = true;
    this.settleRefusal();
  }

  private settleRefusal(): void {
    if (this.heartbeatSinceRefusal && this.waiting() === 0) this.refusingWrites = null;
  }

  /** How many run records wait in memory for the database (the recorder's backlog). */
  recordsWaitingFrom(count: () => number): void {
    this.waiting = count;
  }

  /** Note a refusal of `error`'s kind (see `writesRefused`, `readsRefused`); others change nothing. */
  refused(error: unknown): void {
    if (refusesReads(error)) this.refusingReads = errorMessage(error);
    if (!refusesWrites(error)) return;
    this.refusingWrites = errorMessage(error);
    this.heartbeatSinceRefusal = false;
  }

  private async probe(): Promise<void> {
    for (let attempt = 0;; attempt++) {
      await this.clock.sleep(this.retryDelayMs(attempt), this.closing.signal);
      if (this.closing.signal.aborted) return;
      try {
        await this.store.ping().then(
          () => this.awayAs = "answers",
          (error) => {
            if (isUnreachable(error)) this.awayAs = "unreachable";
            throw error;
          },
        );
        for (const recovery of this.recoveries) await recovery();
      } catch (error) {
        if (isUnreachable(error)) {
          // Per attempt, so only at debug: the outage itself is logged once.
          storeLog.debug("still unreachable ({error}); next attempt in {seconds} s", {
            error: errorMessage(error),
            seconds: this.retryDelayMs(attempt + 1) / 1000,
          });
          continue;
        }
        // It answers, but refused what waited: that will not change by waiting.
        if (this.newRefusal(error)) {
          storeLog.error("the database refused a statement: {error}", {
            error: errorMessage(error),
          });
        }
      }
      const downFor = this.currentOutageMs;
      this.recent.push({ from: this.downSince ?? this.clock.now(), to: this.clock.now() });
      if (this.recent.length > RECENT_OUTAGES_KEPT) this.recent.shift();
      this.downSince = null;
      this.awayAs = null;
      this.pastOutagesMs += downFor;
      storeLog.info("the database is back after {seconds} s", {
        seconds: Math.round(downFor / 1000),
      });
      for (const listener of this.backListeners) listener();
      return;
    }
  }

  /** Stop probing (the service is stopping); `online` keeps its last value. */
  close(): void {
    this.closing.abort();
  }
}
