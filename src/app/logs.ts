/** Reading the service's log (`jm_syslog`): the latest lines, then the ones after them. */
import type { LogFilter, LogRow } from "../domain/log_row.ts";
import type { LogStore } from "../store/store.ts";

/** A log query without its paging (`limit`, `afterId`). */
export type LogQuery = Omit<LogFilter, "limit" | "afterId">;

/** Lines `logsAfter` returns at most per call. */
const FOLLOW_BATCH = 1000;

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
