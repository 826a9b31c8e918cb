/** Reading the service's log (`jm_syslog`): the latest lines, then the ones after them. */
import type { LogFilter, LogRow } from "../domain/log_row.ts";
import type { LogStore } from "../store/store.ts";

/** A log query without its paging (`limit`, `afterId`). */
export type LogQuery = Omit<LogFilter, "limit" | "afterId">;

/** Lines `logsAfter` returns at most per call. */
const FOLLOW_BATCH = 1000;

/**
 * How many ids behind the newest line shown a follower reads again: on
 * MySQL a line's id is taken when it is inserted, not when its transaction
 * commits, so a batch one node inserted before another's and committed
 * after it lands below lines already shown.
 */
const LOOKBACK_IDS = 2000;

/** The newest `limit` lines matching `query`, oldest first (as a log reads). */
export async function recentLogs(
  logs: LogStore,
  query: LogQuery,
  limit: number,
): Promise<LogRow[]> {
  return (await logs.listLogs({ ...query, limit })).reverse();
}

/**
 * The id to follow on from after showing `shown`: its last line, or, when
 * nothing matched, the newest line of all, so only lines written later come.
 */
export async function followFrom(logs: LogStore, shown: LogRow[]): Promise<number> {
  return shown.at(-1)?.id ?? (await logs.listLogs({ limit: 1 }))[0]?.id ?? 0;
}

/** Lines matching `query` written after line `afterId`, oldest first. */
export async function logsAfter(
  logs: LogStore,
  query: LogQuery,
  afterId: number,
): Promise<LogRow[]> {
  return await logs.listLogs({ ...query, afterId, limit: FOLLOW_BATCH });
}

/** What one look for new lines found. */
export interface FollowedLines {
  /** Lines not shown before, in id order (one committed late comes after newer ones). */
  rows: LogRow[];
  /** More wait: look again at once. */
  more: boolean;
  /**
   * `jm_syslog` was emptied (TRUNCATE) or its ids restarted, or a client
   * resumed after an id it never had: its newest id is below the last shown.
   * `rows` are then its newest lines (the follower's `limit`), not all of it.
   */
  reset: { last: number; newest: number } | null;
}

/**
 * Follows `jm_syslog` by id, without losing lines that commit out of id
 * order: each look reads again the last `LOOKBACK_IDS` ids and passes over
 * the ones already shown (or already there when following began).
 */
export class LogFollower {
  private readonly seen = new Set<number>();

  /** `limit`: the newest lines shown again after a reset, as at the start. */
  private constructor(
    private readonly logs: LogStore,
    private readonly query: LogQuery,
    private readonly limit: number,
    private last: number,
  ) {}

  /** Follow on after `shown` (see `followFrom`); lines already there are not shown again. */
  static async after(
    logs: LogStore,
    query: LogQuery,
    limit: number,
    shown: LogRow[],
  ): Promise<LogFollower> {
    return await LogFollower.afterId(logs, query, limit, await followFrom(logs, shown));
  }

  /** Follow on after line `id` (a client resuming): the lines up to it count as shown. */
  static async afterId(
    logs: LogStore,
    query: LogQuery,
    limit: number,
    id: number,
  ): Promise<LogFollower> {
    const follower = new LogFollower(logs, query, limit, id);
    follower.passOver(await follower.window());
    return follower;
  }

  /**
   * Lines up to the last shown that were not shown (older than the newest
   * `limit`) are history, not news; those after it, written meanwhile, are news.
   */
  private passOver(window: LogRow[]): void {
    for (const row of window) if (row.id! <= this.last) this.seen.add(row.id!);
  }

  async poll(): Promise<FollowedLines> {
    const rows = await this.window();
    if (this.last > 0 && !rows.some((row) => row.id! > this.last)) {
      const newest = (await this.logs.listLogs({ limit: 1 }))[0]?.id ?? 0;
      // Begun again as at the start: the newest `limit` lines, not a whole log read from line 1.
      if (newest < this.last) {
        const reset = { last: this.last, newest };
        const recent = await recentLogs(this.logs, this.query, this.limit);
        this.last = await followFrom(this.logs, recent);
        this.seen.clear();
        this.passOver(await this.window());
        return { rows: recent, more: false, reset };
      }
    }
    const more = rows.length === LOOKBACK_IDS + FOLLOW_BATCH;
    const fresh = rows.filter((row) => !this.seen.has(row.id!));
    for (const row of fresh) {
      this.seen.add(row.id!);
      if (row.id! > this.last) this.last = row.id!;
    }
    const floor = this.last - LOOKBACK_IDS;
    for (const id of this.seen) if (id <= floor) this.seen.delete(id);
    return { rows: fresh, more, reset: null };
  }

  /** The lines matching the query from `LOOKBACK_IDS` before the last shown, oldest first. */
  private async window(): Promise<LogRow[]> {
    return await this.logs.listLogs({
      ...this.query,
      afterId: Math.max(0, this.last - LOOKBACK_IDS),
      limit: LOOKBACK_IDS + FOLLOW_BATCH,
    });
  }
}
