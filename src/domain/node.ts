/**
 * The Node model: one row of `jm_nodes` per running service, kept fresh by
 * its heartbeat so `jobsmanager status` and the other services can tell
 * live services from dead.
 */
export interface Node {
  id: string;
  host: string;
  pid: number;
  version: string;
  started_at: number;
  /** The node's own clock at its last heartbeat. */
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
  /**
   * The database's clock at the last heartbeat: liveness is judged by it,
   * so skew between servers cannot make a live node look dead. Null in
   * rows written before services reported it.
   */
  db_heartbeat_at?: number | null;
  /** The node's heartbeat interval: it is dead after STALE_AFTER_BEATS of them. */
  heartbeat_ms?: number | null;
  /** The node's clock minus the database's, measured at the heartbeat. */
  skew_ms?: number | null;
  /** How many jobs fire on this node (its share of the cluster). */
  jobs_owned?: number | null;
  /** When another node found it dead (database clock), and which. */
  declared_dead_at?: number | null;
  declared_dead_by?: string | null;
  /**
   * When its graceful stop began (its clock): it fires nothing more and
   * beats on while it ends its runs; its jobs are the live nodes'.
   */
  leaving_at?: number | null;
  /**
   * What it shares the jobs from (domain/share.ts `ShareBasis`, as JSON),
   * for the other nodes to check that they agree; null in rows written
   * before services reported it.
   */
  share_basis?: string | null;
  /**
   * The boot (/proc/sys/kernel/random/boot_id) and the pid namespace (its
   * inode) the service runs in: its pid means something only to a process
   * of both. Null where it has no /proc, and in rows of releases before
   * them.
   */
  boot_id?: string | null;
  pid_ns?: number | null;
  /**
   * When its process started, in 1/100 s since its boot (its
   * /proc/self/stat starttime): with `boot_id`, whether the process that
   * has its pid is it, whatever step the wall clock took since (NTP, a VM
   * restored), which moves `started_at` against /proc. Null where it has
   * no /proc, and in rows of releases before schema version 19.
   */
  process_start?: number | null;
  /**
   * The schema version its release understands (store/migrations.ts
   * SCHEMA_VERSION). Null in rows of releases before version 17: such a
   * service ignores what came after, a job's `user` among it.
   */
  schema_version?: number | null;
}

/**
 * Whether `node` runs a release older than schema version 17, whose
 * services run a job that has a `user` as their own user (root, often):
 * its row names no schema version.
 */
export function ofOlderSchema(node: Pick<Node, "schema_version">): boolean {
  return node.schema_version == null;
}

/** Where a process's pid means something: its boot and its pid namespace (see `Node.boot_id`). */
export type ProcessSpace = Required<Pick<Node, "boot_id" | "pid_ns">>;

/**
 * Whether a node's pid can be looked up by a process `here`: both run in
 * the same boot and pid namespace, as both say. A container given the
 * host's name has a pid namespace of its own, and another machine of the
 * same name another boot: their pids name other processes here, or none.
 */
export function sameProcessSpace(
  node: Pick<Node, "boot_id" | "pid_ns">,
  here: ProcessSpace,
): boolean {
  return node.boot_id != null && node.pid_ns != null && node.boot_id === here.boot_id &&
    node.pid_ns === here.pid_ns;
}

/** Heartbeats older than this many intervals mean the node is gone. */
export const STALE_AFTER_BEATS = 3;

/**
 * A node clock further than this from the database's is reported, and the
 * node takes no share of the jobs while another's is within it.
 */
export const MAX_SKEW_MS = 2000;

/** Whether `skewMs` (a node's clock minus the database's) is within MAX_SKEW_MS; unknown counts as in step. */
export function inStep(skewMs: number | null | undefined): boolean {
  return Math.abs(skewMs ?? 0) <= MAX_SKEW_MS;
}

/**
 * The live nodes that share the jobs: those whose clock is in step with the
 * database's. A node whose clock is off fires each job at the wrong instant
 * and judges the others' fires by it: one minutes ahead records fires still
 * to come as missed, and the node they are due on then finds them claimed.
 * When no live node is in step (the database's clock may be the one off),
 * all share, as they agree with each other.
 */
export function sharers(live: readonly Pick<Node, "id" | "skew_ms">[]): string[] {
  const inStepIds = live.filter((n) => inStep(n.skew_ms)).map((n) => n.id);
  return inStepIds.length > 0 ? inStepIds : live.map((n) => n.id);
}

/**
 * What a node is, in these words everywhere (CLI, API, dashboard, metrics):
 * live (its heartbeat is fresh), stale (late by more than
 * STALE_AFTER_BEATS intervals, not declared dead yet: with other live
 * nodes, for at most a moment; alone, until it starts again), dead
 * (declared dead by another node, its runs lost, its jobs moved), leaving
 * (stopping cleanly: it beats on while it ends its runs, and its jobs went
 * to the live nodes), stopped (it stopped cleanly).
 */
export type NodeState = "live" | "stale" | "dead" | "leaving" | "stopped";

export const NODE_STATES: readonly NodeState[] = ["live", "stale", "dead", "leaving", "stopped"];

/**
 * The node's state. With `databaseNow`, a node that reports the database's
 * clock in its heartbeat is judged by that clock and by its own interval;
 * older rows by `now` and `heartbeatMs`. `unchangedSince`: the database's
 * clock when the caller first saw this heartbeat, where it watches the
 * rows: a heartbeat that stays the same that long is as old as that, even
 * when it is ahead of the database's clock (stepped back since it was
 * written), which would otherwise keep a killed node live for the step.
 */
/**
 * How old a node's last heartbeat is, and how often it beats: by the
 * database's clock where both are known (see `nodeState`), else by this
 * machine's.
 */
export function heartbeatAge(
  node: Node,
  now: number,
  heartbeatMs: number,
  databaseNow?: number,
  unchangedSince?: number,
): { age: number; interval: number } {
  const byDatabase = databaseNow !== undefined && node.db_heartbeat_at != null;
  return {
    age: byDatabase
      ? databaseNow - Math.min(node.db_heartbeat_at!, unchangedSince ?? Infinity)
      : now - node.heartbeat_at,
    interval: byDatabase ? node.heartbeat_ms ?? heartbeatMs : heartbeatMs,
  };
}

export function nodeState(
  node: Node,
  now: number,
  heartbeatMs: number,
  databaseNow?: number,
  unchangedSince?: number,
): NodeState {
  if (node.stopped_at !== null) return "stopped";
  if (node.declared_dead_at != null) return "dead";
  const { age, interval } = heartbeatAge(node, now, heartbeatMs, databaseNow, unchangedSince);
  // Killed while it ended its runs: stale, then declared dead, as any other.
  if (age > STALE_AFTER_BEATS * interval) return "stale";
  return node.leaving_at != null ? "leaving" : "live";
}
