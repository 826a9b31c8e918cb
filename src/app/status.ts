/**
 * What `jobsmanager status` shows: the services on this database and
 * whether each is live, reloads not applied yet, the last hour's runs and
 * the next fires.
 */
import type { Job } from "../domain/job.ts";
import { listJobs } from "./jobs.ts";
import { type Node, type NodeState, nodeState } from "../domain/node.ts";
import type { RunStatus } from "../domain/run.ts";
import type {
  JobStore,
  MarkerStore,
  NodeStore,
  NotifyStore,
  PendingCount,
  RunStore,
} from "../store/store.ts";

const HOUR_MS = 3_600_000;
/** Fires `status` lists. */
const NEXT_FIRES = 5;

/**
 * A service as `status` judges it. `gone`: its process is known not to run
 * (`presence.gone` said so): its state is `dead`. `still_runs`: it is
 * stale, but its process is known to run on this host still
 * (`presence.runs` said so). `still_runs_unconfirmed`: that is known only
 * of its pid, not of the process that has it (/proc hides it), which may
 * have taken the pid after the service died. `note`: for a stale one, what
 * that means and what to do (`staleNotes`); null for the others.
 */
export type JudgedNode = Node & {
  state: NodeState;
  gone: boolean;
  still_runs: boolean;
  still_runs_unconfirmed: boolean;
  note: string | null;
};

/**
 * What this host knows of a service's process, where the service runs in
 * this process's boot and pid namespace (daemon/presence.ts); elsewhere
 * both are false, and its heartbeat alone tells.
 */
export interface Presence {
  /** No process has its pid, or the one that has it has ended (a zombie: killed, not reaped yet). */
  gone: (node: Node) => boolean;
  /**
   * The process that has its pid is its own (`runs`: started at the tick
   * since boot its row names, or, in a row without it, no later than it
   * did), one whose start /proc does not tell (`unconfirmed`), or none that
   * runs (`no`: none, one started at another tick or after it, or a
   * zombie); asked only of a stale service, where the answer says more.
   */
  runs?: (node: Node) => "runs" | "unconfirmed" | "no";
}

/** What to do with a service that stopped beating and whose process is not known to run. */
export const RESTART =
  "see its log, and restart it (`systemctl restart jobsmanager` where systemd runs it)";

export interface Status {
  /** Most recent heartbeat first. */
  services: JudgedNode[];
  /** Reload markers not every live service has applied yet. */
  pendingMarkers: number;
  /** The newest reload marker: how far behind each service is. */
  latestMarker: number;
  /** Runs scheduled in the hour before `now`, by status. */
  runsLastHour: Partial<Record<RunStatus, number>>;
  /** Runs recorded `running` on a service that is `gone`: they end `lost` when it starts again. */
  runningOnGone: number;
  /** The earliest next fires of the enabled jobs, soonest first. */
  nextFires: { job: Job; at: Date }[];
  /**
   * Enabled jobs with `alert_after` that have had no successful run for
   * that long (issue 13): `since` is their last success, or their last
   * change when none came after it.
   */
  silentJobs: { job_id: string; since: number; alert_after: number }[];
  /**
   * Notifications claimed and not sent yet: how many, and when the oldest
   * was claimed (ms; null: none). A count that stays, or grows, means hooks
   * that hang or no service to send them.
   */
  pendingNotifications: PendingCount;
  /** The database's clock as the nodes were read; undefined where the store cannot tell it. */
  databaseNow?: number;
}

/**
 * The services whose heartbeat is fresh, by the database's clock where
 * they report it: they apply reloads and take `job run` requests.
 */
export async function liveServices(
  nodes: NodeStore,
  options: { now: number; heartbeatMs: number },
): Promise<Node[]> {
  return (await liveServicesAndNow(nodes, options)).live;
}

/** The same, with the database's clock they were judged by. */
export async function liveServicesAndNow(
  nodes: NodeStore,
  options: { now: number; heartbeatMs: number },
): Promise<{ live: Node[]; databaseNow: number }> {
  const { nodes: all, databaseNow } = await nodes.nodesAndNow();
  // By id, so that what a command prints does not depend on which beat last.
  const live = all
    .filter((n) => nodeState(n, options.now, options.heartbeatMs, databaseNow) === "live")
    .sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  return { live, databaseNow };
}

/**
 * A node's state as `status` says it: by its heartbeat (`nodeState`), but
 * `dead` at once where `presence` knows its process does not run (it runs
 * in this process's boot and pid namespace, and its pid is gone: no
 * heartbeat need be missed). A clean stop or a declaration says more.
 * Elsewhere its pid says nothing: one in another pid namespace (a
 * container with this host's name) has a pid this host does not know, or
 * knows as another process's; its heartbeat alone tells.
 */
export function judged(
  node: Node,
  now: number,
  heartbeatMs: number,
  databaseNow: number | undefined,
  presence?: Presence,
): JudgedNode {
  const state = nodeState(node, now, heartbeatMs, databaseNow);
  const gone = state !== "stopped" && state !== "dead" && (presence?.gone(node) ?? false);
  const stale = state === "stale" && !gone;
  const runs = stale ? presence?.runs?.(node) ?? "no" : "no";
  const judgedNode = {
    ...node,
    // The share a node that is not live last wrote is no one's now: its jobs went to the others.
    jobs_owned: state === "live" && !gone ? node.jobs_owned : null,
    state: gone ? "dead" as const : state,
    gone,
    still_runs: runs !== "no",
    still_runs_unconfirmed: runs === "unconfirmed",
    note: null,
  };
  return stale ? { ...judgedNode, note: staleNotes([judgedNode])[0].note } : judgedNode;
}

/**
 * What stale services are, said after their names, in up to three groups: those
 * whose process is not known to run (hung, suspended or killed: see the
 * log, restart), those whose process still runs on this host, which
 * is not "killed", and whose restart would lose the run records it holds
 * while the database refuses to take them, and those whose pid a process
 * has that /proc does not say is theirs. Empty groups are left out.
 */
export function staleNotes(
  stale: readonly JudgedNode[],
): { nodes: JudgedNode[]; note: string }[] {
  const running = stale.filter((n) => n.still_runs && !n.still_runs_unconfirmed);
  const unconfirmed = stale.filter((n) => n.still_runs_unconfirmed);
  const silent = stale.filter((n) => !n.still_runs);
  const notes = [];
  if (silent.length > 0) {
    notes.push({
      nodes: silent,
      note: `stopped sending heartbeats without stopping (hung, suspended, or killed): ${RESTART}`,
    });
  }
  if (running.length > 0) {
    const pids = running.map((n) => n.pid).join(" ");
    notes.push({
      nodes: running,
      note: `stopped sending heartbeats, but ${
        running.length === 1 ? "its process still runs" : "their processes still run"
      } on this host: its log says why (a database that refuses writes, such as a full disk, is said there and at /readyz; a suspended process says nothing: kill -CONT ${pids}); a restart loses the run records it holds unwritten: fix the cause, and it writes them and beats again by itself`,
    });
  }
  if (unconfirmed.length > 0) {
    const pids = unconfirmed.map((n) => n.pid).join(" ");
    notes.push({
      nodes: unconfirmed,
      note: `stopped sending heartbeats; a process has ${
        unconfirmed.length === 1 ? "its pid" : "their pids"
      } on this host, but /proc does not let this user see when it started (hidepid), so it could not be confirmed to be the service rather than one that took the pid after it died: \`ps -o lstart= -p ${pids}\` as root tells; if it started after the service, ${RESTART}; if before, it still runs: see its log, as a restart loses the run records it holds unwritten`,
    });
  }
  return notes;
}

/** The services and reload markers: what the dashboard's health line shows. */
export interface Health {
  /** Most recent heartbeat first. */
  services: JudgedNode[];
  /** Reload markers not every live service has applied yet. */
  pendingMarkers: number;
  /** The newest reload marker. */
  latestMarker: number;
  /** The database's clock as the nodes were read. */
  databaseNow: number;
}

/**
 * The services with their state and the markers: three small reads, none
 * of the jobs, so a page may ask every few seconds whatever the catalogue's
 * size (`status` computes every job's next fire).
 */
export async function health(
  stores: NodeStore & MarkerStore,
  options: {
    now: number;
    heartbeatMs: number;
    /** Whether a service's process is known to run or not (of this boot and pid namespace). */
    presence?: Presence;
  },
): Promise<Health> {
  const { nodes, databaseNow } = await stores.nodesAndNow();
  const [pendingMarkers, latestMarker] = await Promise.all([
    stores.pendingMarkers(),
    stores.latestMarkerId(),
  ]);
  return {
    services: nodes.map((n) =>
      judged(n, options.now, options.heartbeatMs, databaseNow, options.presence)
    ),
    pendingMarkers,
    latestMarker,
    databaseNow,
  };
}

export async function status(
  stores:
    & NodeStore
    & MarkerStore
    & RunStore
    & JobStore
    & Pick<NotifyStore, "silenceCandidates" | "notificationsPending">,
  options: {
    now: number;
    heartbeatMs: number;
    defaultZone: string;
    /** Whether a service's process is known to run or not (of this boot and pid namespace). */
    presence?: Presence;
  },
): Promise<Status> {
  const { now, defaultZone } = options;
  const { services, pendingMarkers, latestMarker, databaseNow } = await health(stores, options);
  const goneIds = new Set(services.filter((n) => n.gone).map((n) => n.id));
  const runningOnGone = goneIds.size === 0
    ? 0
    : (await stores.runningRuns()).filter((r) => r.node_id !== null && goneIds.has(r.node_id))
      .length;
  const runsLastHour = await stores.countRuns(now - HOUR_MS);
  // As `job list` gives them: a row broken by hand has no next fire (it says what is wrong).
  const fires = (await listJobs(stores, { defaultZone, now }))
    .flatMap(({ job, next }) => next === null ? [] : [{ job, at: next }])
    .sort((a, b) => a.at.getTime() - b.at.getTime())
    .slice(0, NEXT_FIRES);
  const silentJobs = (await stores.silenceCandidates())
    .filter((c) => c.since + c.alert_after * 1000 <= now);
  const pendingNotifications = await stores.notificationsPending();
  return {
    services,
    pendingMarkers,
    latestMarker,
    runsLastHour,
    runningOnGone,
    nextFires: fires,
    silentJobs,
    pendingNotifications,
    databaseNow,
  };
}

/** The pending notifications as `status --json` and `/api/v1/status` give them. */
export function pendingJson(
  { count, oldest, retrying, nextRetry }: Status["pendingNotifications"],
): { count: number; oldest: string | null; retrying: number; next_retry: string | null } {
  const iso = (ms: number | null) => ms === null ? null : new Date(ms).toISOString();
  return { count, oldest: iso(oldest), retrying, next_retry: iso(nextRetry) };
}
