/**
 * The Node model: one row of `jm_nodes` per running service, kept fresh by
 * its heartbeat so `jobsmanager status` can tell live services from dead.
 */
export interface Node {
  id: string;
  host: string;
  pid: number;
  version: string;
  started_at: number;
  heartbeat_at: number;
  /** The last reload marker the service applied. */
  applied_marker: number | null;
  jobs_loaded: number;
  last_reload_at: number | null;
  last_reload_ms: number | null;
  /** Set when the service stopped cleanly; null while it runs (or after a crash). */
  stopped_at: number | null;
  /**
   * The IANA zone the service fires jobs without a zone in (its
   * `jobsmanager.timezone`, else its machine's); null in rows written
   * before services reported it.
   */
  timezone: string | null;
}

/** Heartbeats older than this many intervals mean the node is gone. */
export const STALE_AFTER_BEATS = 3;

export type NodeState = "live" | "stale" | "stopped";

export function nodeState(node: Node, now: number, heartbeatMs: number): NodeState {
  if (node.stopped_at !== null) return "stopped";
  return now - node.heartbeat_at > STALE_AFTER_BEATS * heartbeatMs ? "stale" : "live";
}
