/**
 * When the service polls the database (markers, run requests, due runs,
 * cancels): every reload_interval, or, while something reports every
 * write (`watched`), WATCHED_POLL_MS as a safety net and soon after each
 * write another connection made; more often while run ends wait for
 * their records; at once when the database comes back. Before an
 * instant's fires, whether a reported write may wait that no poll has
 * applied yet (`changesWaiting`). The poll itself is the service's.
 */
import type { MarkerStore } from "../store/store.ts";
import type { Clock } from "./clock.ts";

/**
 * How often the poll runs while something reports every write to the
 * database (`changed()`): a safety net, not the way changes arrive.
 */
export const WATCHED_POLL_MS = 5000;
/** Polls for reported writes come at least this far apart (or reload_interval, when shorter). */
const WRITE_POLL_GAP_MS = 500;
/**
 * How long after a reported write it is looked for: SQLite makes a commit
 * visible just after its last write to the WAL (in shared memory, which
 * reports nothing), so a read at once may miss it.
 */
const WRITE_SETTLE_MS = 50;
/**
 * When a reported write was not found another connection's, it is looked
 * for once more this much later: a commit whose writer syncs the WAL to
 * disk before making it visible (synchronous=FULL, the `sqlite3` shell's
 * default) may take longer on a slow disk, and its last report came before.
 */
const LATE_COMMIT_MS = 450;

export interface PollTimingOptions {
  clock: Clock;
  store: Pick<MarkerStore, "writtenElsewhere">;
  reloadIntervalMs: number;
  online(): boolean;
  stopping(): boolean;
  /** Whether run ends wait for their records (aftermath.ts `awaitingRecords`). */
  awaitingRecords(): boolean;
  /** Wake the loop: the next poll moved nearer. */
  wake(): void;
}

export class PollTiming {
  /** When the last poll began, and when the next one is due. */
  private lastPoll = -Infinity;
  private nextPoll = -Infinity;
  /** Whether every write to the database is reported (`watched`). */
  private writesReported = false;
  /** Set when the database came back after an outage: poll at once. */
  private pollOnRecovery = false;
  /** Whether a reported write is being looked for (`changed`), and whether another came meanwhile. */
  private lookingForWrites = false;
  private lookAgain = false;
  /** Aborts the wait for the second look at a write (LATE_COMMIT_MS) when another is reported. */
  private lateLook: AbortController | null = null;
  /** When the last write was reported (`changed`). */
  private reportedAt = -Infinity;
  /** When the last poll began that applied every marker it read (`applied`). */
  private appliedFrom = -Infinity;
  /** When the last look began that found no other connection's commit since the one before. */
  private lookedClean = -Infinity;
  /** When the last look that found another connection's commit had its answer. */
  private foundAt = -Infinity;

  constructor(private readonly o: PollTimingOptions) {}

  /** When the next poll is due. */
  get next(): number {
    return this.nextPoll;
  }

  /** The database came back after an outage and answers: what was written meanwhile applies. */
  get backOnline(): boolean {
    return this.pollOnRecovery && this.o.online();
  }

  /**
   * Whether to poll at `now` (its time came, a retry or follow-up run is
   * due, or the database is back); if so, the next is timed from now.
   */
  due(now: number, runDue: boolean): boolean {
    if (now < this.nextPoll && !runDue && !this.backOnline) return false;
    this.pollOnRecovery = false;
    this.lastPoll = now;
    this.nextPoll = now + this.timedPollMs;
    return true;
  }

  /**
   * Writes made while the database was away were polled for by no one
   * (a watched service's next timed poll is 5 s off): poll once it is back.
   */
  recovered(): void {
    this.pollOnRecovery = true;
    this.o.wake();
  }

  /** A run ended before its record was written: looked for every 0.5 s from now on, not from the next timed poll. */
  recordAwaited(): void {
    this.nextPoll = Math.min(this.nextPoll, this.lastPoll + this.timedPollMs);
    this.o.wake();
  }

  /** The clock was stepped back to `now`: the poll is due now. */
  clockWentBack(now: number): void {
    this.nextPoll = Math.min(this.nextPoll, now);
  }

  /**
   * From now on something reports every write to the database (`changed()`),
   * or, with false, no longer does: the timed poll is then only a safety net.
   */
  watched(reported: boolean): void {
    this.writesReported = reported;
    this.nextPoll = Math.min(this.nextPoll, this.lastPoll + this.timedPollMs);
    this.o.wake();
  }

  /**
   * The database was written, by anyone (a `job add`, the API, this
   * service): WRITE_SETTLE_MS after it, when the store says another
   * connection committed meanwhile (on SQLite this service's own writes
   * are no news), poll: at once, or, when a poll has just begun, 0.5 s (or
   * reload_interval) after it. Writes reported while it looks are looked
   * for again after it; a write not found another's, once more
   * LATE_COMMIT_MS later.
   */
  changed(): void {
    this.reportedAt = this.o.clock.now();
    if (!this.lookingForWrites) return void this.lookForWrites();
    this.lookAgain = true;
    this.lateLook?.abort();
  }

  private async lookForWrites(): Promise<void> {
    this.lookingForWrites = true;
    try {
      for (let late = false;;) {
        this.lookAgain = false;
        if (late) {
          this.lateLook = new AbortController();
          await this.o.clock.sleep(LATE_COMMIT_MS, this.lateLook.signal);
          this.lateLook = null;
          // Reported meanwhile: looked for WRITE_SETTLE_MS after that, which answers for both.
          if (this.lookAgain) {
            late = false;
            continue;
          }
        } else await this.o.clock.sleep(WRITE_SETTLE_MS);
        if (this.o.stopping()) return;
        const elsewhere = await this.look();
        if (elsewhere) this.soon();
        if (this.lookAgain) late = false;
        else if (elsewhere || late) return;
        else late = true;
      }
    } finally {
      this.lookingForWrites = false;
    }
  }

  /**
   * Whether another connection committed since the last look (SQLite's
   * data version; MySQL cannot tell, and says yes without a query).
   * Unanswered, it may have: the poll finds out, and tells the health check.
   */
  private async look(): Promise<boolean> {
    const begun = this.o.clock.now();
    const elsewhere = await this.o.store.writtenElsewhere().catch(() => true);
    if (elsewhere) this.foundAt = Math.max(this.foundAt, this.o.clock.now());
    else this.lookedClean = Math.max(this.lookedClean, begun);
    return elsewhere;
  }

  /**
   * A poll (or an apply of changes before a fire) that began at `begunAt`
   * applied every marker it read: the writes reported WRITE_SETTLE_MS
   * before it, and those a look found before it, are in.
   */
  applied(begunAt: number): void {
    this.appliedFrom = Math.max(this.appliedFrom, begunAt);
  }

  /**
   * Whether a write was reported, or found, that no poll or look answers
   * for yet (see `changesWaiting`, which this tells at no cost whether to ask).
   */
  get reportedSince(): boolean {
    if (this.foundAt > this.appliedFrom) return true;
    return this.reportedAt > Math.max(this.appliedFrom, this.lookedClean) - WRITE_SETTLE_MS;
  }

  /**
   * Before an instant's fires: whether a write reported before now may
   * wait that no poll has applied (polls for writes stay WRITE_POLL_GAP_MS
   * apart, so a `job disable` that returned just after one is polled for
   * only after the instant). Yes when a look found another connection's
   * commit that no poll begun since applied; when a write was reported
   * that neither a poll begun WRITE_SETTLE_MS after it nor such a look
   * answers for (reported within WRITE_SETTLE_MS, or since), it looks now
   * (no query on MySQL, one read of the data version on SQLite, where the
   * service's own writes are reported too), and polls soon when it finds
   * one. No report since: no query. A commit made visible only after now
   * was not made before the instant (its writer had not returned).
   */
  async changesWaiting(): Promise<boolean> {
    if (!this.reportedSince) return false;
    if (this.foundAt > this.appliedFrom) return true;
    const elsewhere = await this.look();
    if (elsewhere) this.soon();
    return elsewhere;
  }

  /** Poll now, or, when a poll has just begun, 0.5 s (or reload_interval) after it. */
  soon(): void {
    const soon = Math.max(
      this.o.clock.now(),
      this.lastPoll + Math.min(WRITE_POLL_GAP_MS, this.o.reloadIntervalMs),
    );
    if (soon >= this.nextPoll) return;
    this.nextPoll = soon;
    this.o.wake();
  }

  private get timedPollMs(): number {
    // Ends that wait for their records to be written (by this service: no write report says
    // so) are looked for as often as reported writes are.
    if (this.o.awaitingRecords()) return Math.min(WRITE_POLL_GAP_MS, this.o.reloadIntervalMs);
    return this.writesReported
      ? Math.max(WATCHED_POLL_MS, this.o.reloadIntervalMs)
      : this.o.reloadIntervalMs;
  }
}
