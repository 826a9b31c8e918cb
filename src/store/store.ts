/**
 * The Store: everything jobsmanager keeps in its database, as narrow
 * interfaces (jobs, markers, runs, nodes, logs) so each consumer asks for
 * only what it uses; their contract is in these doc comments, kept by
 * `SqlStore` over either driver (`sqlite.ts`, `mysql.ts`). The contract
 * suite in `tests/store_*_test.ts` runs against every backend.
 */
import type { Job } from "../domain/job.ts";
import type { LogFilter, LogRow } from "../domain/log_row.ts";
import type { Node } from "../domain/node.ts";
import type { NewRun, Run, RunFilter, RunStatus, RunUpdate } from "../domain/run.ts";

/**
 * One row of `jm_update_info`: a request to reload. Its snapshots of what
 * changed (`jobs_before_update`, `jobs_after_update`) are written for
 * people and the original's readers, never read back: a service re-reads
 * jm_jobs, and the marker of a big `jobs apply` holds every job it changed.
 */
export interface Marker {
  id: number;
  /** false while no service has applied it (`updated = 0`). */
  updated: boolean;
  /** "" when NULL, which a table made by hand may allow. */
  insert_time: string;
  update_time: string | null;
}

/** See {@link MarkerStore.pollState}. */
export interface PollState {
  /** As `latestMarkerId`. */
  latestMarker: number;
  /** As `oldestPendingMarkerId`. */
  oldestPendingMarker: number | null;
  /**
   * When the marker asked about was inserted (`insert_time`; "" when
   * NULL, as `listMarkers` gives it); null when there is none of that id:
   * a marker applied before, gone or inserted again since, tells that
   * jm_update_info was emptied.
   */
  markerInserted: string | null;
  /** Whether `queuedManualRuns` would return any. */
  manualRuns: boolean;
  /** Whether `cancelRequests(nodeId)` would return any. */
  cancelRequests: boolean;
  /**
   * Whether any `job run --here` run is running (its node `cli@HOST`):
   * `activeRunsElsewhere` returns them, and a lone service asks it only then.
   */
  hereRuns: boolean;
  /**
   * When the first retry or follow-up run no service took is due (ms), due
   * or not: `dueQueuedRuns(now)` returns it from then on. Null when none waits.
   */
  nextDueRun: number | null;
}

/** See {@link RunStore.lastFires}. */
export interface LastFires {
  /** Per job id, its latest scheduled fire at or before the instant asked. */
  fires: Map<string, number>;
  /**
   * Per job id, when its current schedule applies from (jm_jobs.enabled_at:
   * its last enable, or change of fire times while enabled), where known:
   * the fires before it fell while it was disabled, or are of a schedule it
   * did not have, and are not owed. The writer's clock: it may be ahead.
   */
  enabledAt: Map<string, number>;
  /** Scheduled fires beyond that instant, by id. */
  ahead: FireAhead[];
}

/** A row of jm_runs for a scheduled fire beyond the instant `lastFires` was asked of. */
export interface FireAhead {
  id: number;
  job_id: string;
  scheduled_at: number;
}

/** The most rows `lastFires` lists in `ahead`. */
export const LAST_FIRES_AHEAD = 100;

/** Runs of one minute, by status. */
export interface MinuteCounts {
  /** The minute's first instant (ms). */
  minute: number;
  counts: Partial<Record<RunStatus, number>>;
}

/** The outcome of `changeJob`. */
export interface JobChange {
  before: Job | null;
  after: Job | null;
  /** The marker inserted with the change; null when nothing changed. */
  markerId: number | null;
}

/**
 * Computes the new state of one job from its current state, inside the
 * transaction that holds the row. Return null to delete; return `current`
 * unchanged to write nothing; throw to abort with nothing written. It may
 * be called more than once (a transaction MySQL picks as a deadlock victim
 * runs again), so it must have no other effect.
 */
export type JobMutation = (current: Job | null) => Job | null;

/** What `changeJobs` writes: jobs to insert or replace, ids to delete. */
export interface JobWrites {
  put: Job[];
  remove: string[];
}

/** The outcome of `changeJobs`: the snapshots its marker holds. */
export interface JobsChange {
  /** Stored versions of the jobs replaced or deleted. */
  before: Job[];
  /** New versions of the jobs inserted or replaced. */
  after: Job[];
  /** The one marker inserted with the changes; null when nothing changed. */
  markerId: number | null;
}

/** How far `Store.migrate` may go. */
export interface MigrateOptions {
  /**
   * Whether to upgrade a schema of an older version (default true: `serve`
   * and `db migrate`); false refuses one, changing nothing, and still
   * creates the schema of a new database or the tables dropped by hand.
   */
  upgrade?: boolean;
}

export interface MigrationReport {
  /** Schema version before and after. */
  from: number;
  to: number;
  /** Versions this call applied (empty when the schema was current). */
  applied: number[];
  /** Tables of the schema found missing (dropped by hand) and created again, empty. */
  created: string[];
  /**
   * Columns found narrower than the schema declares (a table the original
   * JobsManager made) and widened, as `table.column`; absent when none was.
   */
  widened?: string[];
}

/** The catalogue: `jm_jobs`, each write with its reload marker. */
export interface JobStore {
  /** All jobs, ordered by id. */
  listJobs(): Promise<Job[]>;

  /**
   * All jobs, ordered by id, in chunks of 1 to `size`, each read by its own
   * query: whatever waits for the database meanwhile (a fire's claim on
   * SQLite's one connection) waits for one chunk, not for all of them, and
   * a chunk's rows are gone before the next is read. Not one snapshot: a
   * job written meanwhile is read as it was or as it is, one added or
   * removed meanwhile may be missing; a job there throughout is read once.
   */
  jobsInChunks(size: number): AsyncIterable<Job[]>;

  /** One job, or null; its id equal to `id`, trailing spaces included. */
  getJob(id: string): Promise<Job | null>;

  /**
   * In one transaction: read and lock the row of `id`, compute its new state
   * with `mutate`, write it (insert, update or delete) and insert one
   * `jm_update_info` row (`updated = 0`) holding the before and after
   * snapshots. When `mutate` throws, or any write fails, nothing is written.
   * When `mutate` returns the job unchanged, nothing is written and no
   * marker is inserted. A job written over a stored one gets an
   * `updated_at` strictly after the stored one's (its own, else the stored
   * one + 1 ms), so that each stored version has its own (an If-Match).
   * A write that starts the schedule the job fires by (adds it enabled,
   * enables it, or gives it enabled other fire times: a field of its
   * schedule, its zone) sets its `enabled_at` to the `updated_at` `mutate`
   * gave (the writer's clock, not the stored one + 1 ms); any other keeps it.
   * Throws ConflictError, calling nothing, when there is no job `id` but
   * one the database's key takes for it (MySQL: `id` and trailing spaces,
   * written in SQL).
   */
  changeJob(id: string, mutate: JobMutation): Promise<JobChange>;

  /**
   * In one transaction: read and lock every row of `jm_jobs`, compute the
   * writes with `mutate` (given all jobs, ordered by id), insert or replace
   * each job of `put` and delete each id of `remove`, and insert one
   * `jm_update_info` row holding the before and after snapshots of the jobs
   * that changed. A job of `put` equal to the stored one is not written;
   * when nothing changes, no marker is inserted. When `mutate` throws, or
   * any write fails, nothing is written; so when a job of `put` is one the
   * database's key takes for another stored (ConflictError, as changeJob).
   * (`import --apply`, `apply`.) `updated_at` moves forward, and
   * `enabled_at` is set, as with `changeJob`.
   */
  changeJobs(mutate: (current: Job[]) => JobWrites): Promise<JobsChange>;
}

/** Reload markers (`jm_update_info`): how a change reaches running services. */
export interface MarkerStore {
  /**
   * Insert a marker without changing any job (`jobsmanager reload`). Returns its id.
   * Every marker inserted (here, or with a job change) forgets, in its
   * transaction, who applied a marker of its id before (`jm_marker_nodes`):
   * emptied, jm_update_info gives ids over again.
   */
  insertMarker(before: Job[], after: Job[]): Promise<number>;

  /** The highest marker id, 0 when there is none. */
  latestMarkerId(): Promise<number>;

  /** The lowest id of a marker not applied yet (`updated = 0`), or null. */
  oldestPendingMarkerId(): Promise<number | null>;

  /** Markers with id greater than `afterId`, oldest first, at most `limit`. */
  listMarkers(afterId: number, limit: number): Promise<Marker[]>;

  /**
   * What the poll of service `nodeId` looks for, in one query: the newest
   * marker, the oldest pending one, whether `job run` requests or cancels
   * for it wait, and when the first retry or follow-up run is due (then
   * `queuedManualRuns`, `cancelRequests` and `dueQueuedRuns` say which),
   * and when marker `markerId` was inserted.
   */
  pollState(nodeId: string, markerId?: number): Promise<PollState>;

  /**
   * Whether another connection may have committed since the last call
   * (true the first time): SQLite tells, by its data version; MySQL
   * cannot, and always says true. `serve` on SQLite, told of every write
   * to the file, its own included, polls for those of others only.
   */
  writtenElsewhere(): Promise<boolean>;

  /**
   * Set `updated = 1` on exactly these markers (never a blind
   * `WHERE updated = 0`: markers inserted meanwhile stay pending).
   * Returns how many rows changed.
   */
  markApplied(ids: number[]): Promise<number>;

  /** Number of markers no service has applied yet (`updated = 0`). */
  pendingMarkers(): Promise<number>;

  /**
   * Record that node `nodeId` applied these markers (in `jm_marker_nodes`),
   * those of them jm_update_info holds.
   */
  recordApplied(nodeId: string, ids: number[]): Promise<void>;

  /**
   * Set `updated = 1` on every pending marker some node applied and every
   * live node (by the database's clock and each node's own interval) has
   * applied, so a node that died does not hold a marker back; then forget
   * who applied the markers settled, and those jm_update_info no longer
   * holds. Returns how many markers it settled.
   */
  settleMarkers(): Promise<number>;

  /**
   * Retention: of the `limit` oldest markers (by id) that no service can
   * still need, delete those inserted before `before` (ms; `insert_time`,
   * UTC; where that is NULL, `update_time`; with neither, any), with who
   * applied them (`jm_marker_nodes`), in one transaction.
   * A marker is needed while it is pending (`updated = 0`), while it is the
   * newest (the ids go on from it: MySQL's AUTO_INCREMENT may restart from
   * MAX(id) + 1 when the server restarts; a service up to date asks for it
   * in `pollState`), and while a running service's row in `jm_nodes`
   * (`stopped_at` null) names it as the last it applied (its poll asks
   * for its `insert_time`, and one gone reads as jm_update_info emptied:
   * every job read again). Looking at `limit` of them, one call reads no
   * more rows than that however many are kept: ids rise with insert_time.
   * Returns how many were deleted.
   */
  pruneMarkers(before: number, limit: number): Promise<number>;
}

/** A scheduled fire a claim sent under `marker`, its answer lost: its row may or may not exist. */
export interface LostClaim {
  job_id: string;
  scheduled_at: number;
  marker: string;
}

/** One row per fire (`jm_runs`): claims, outcomes and the questions asked of them. */
export interface RunStore {
  /**
   * Insert run rows, each unless a row with the same (job_id, scheduled_at,
   * trigger) exists: that unique key is what makes a fire claimable exactly
   * once, across processes. Returns each new row's id, or null where the
   * fire was already claimed. One transaction for the batch (for one
   * fire, its one insert); where the database dropped a fire from it
   * without a word (see SqlStore.claimByMarker), that fire's own insert
   * follows, and its failure reads as an answer lost: the rows of the
   * others may stand.
   */
  claimRuns(runs: NewRun[]): Promise<(number | null)[]>;

  /**
   * Change a run's columns; with `onlyIf`, only while its status is that one
   * (a conditional write: the affected-row count says who acted). Returns
   * whether the row changed. A write that leaves every value as it was
   * counts as a change on SQLite and not on MySQL: callers that race always
   * change the status. With `node`, only a row of that node: one whose id
   * another node's run took (jm_runs emptied or restored under the services)
   * is not the run's.
   */
  updateRun(
    id: number,
    update: RunUpdate,
    onlyIf?: Run["status"],
    node?: string,
  ): Promise<boolean>;

  /**
   * Change many runs' columns in one transaction, in the order given: all
   * or none. What the service writes of a burst of starts and ends goes in
   * one commit instead of one each. With `node`, only rows of that node
   * (see `updateRun`). Returns the ids whose row was not there (or, with
   * `node`, not that node's): jm_runs emptied or restored under the
   * service. Asked only of a statement that changed fewer rows than it was
   * sent: the usual batch costs no read.
   *
   * A start (status `running`) is written only over a row still `running`
   * or `queued`. A row marked `lost` (by a node that declared `node` dead,
   * which retried and followed the run) gets only an end: status, exit
   * code, output and times as the run ended, its note the lost note then
   * its own (lost_ends.ts; a `cancelled` end keeps its own note); a row
   * ended so gets any later write, its note still starting with the lost
   * note. Either way `foundLost`, after the commit, is told their ids: its
   * node is not to follow that end (retry it, start its follow-ups) again.
   */
  updateRuns(
    updates: readonly { id: number; update: RunUpdate }[],
    node?: string,
    foundLost?: (ids: number[]) => void,
  ): Promise<number[]>;

  getRun(id: number): Promise<Run | null>;

  /** The status of each of these runs that exists, by id, in one read. */
  runStatuses(ids: readonly number[]): Promise<Map<number, RunStatus>>;

  /**
   * When each of these runs that exists was scheduled, and which version of
   * its job it ran, by id: no output read.
   */
  runVersions(
    ids: readonly number[],
  ): Promise<Map<number, Pick<Run, "scheduled_at" | "job_updated_at">>>;

  /**
   * Runs `running` or `queued` on a node other than `nodeId` that has
   * neither stopped nor been declared dead, and runs of `job run --here`
   * (node `cli@HOST`, in no jm_nodes row) still running; with `among`, only
   * those runs. Its max_instances counts them, as where a job moved to this
   * node while another ran it.
   */
  activeRunsElsewhere(
    nodeId: string,
    among?: readonly number[],
  ): Promise<Pick<Run, "id" | "job_id" | "node_id">[]>;

  /** Runs, newest first. */
  listRuns(filter: RunFilter): Promise<Run[]>;

  /** `job run` requests no service has taken yet, oldest first. */
  queuedManualRuns(limit: number): Promise<Run[]>;

  /**
   * Retries and follow-up runs (trigger `retry` or `after`) no service has
   * taken yet (`queued`, no node) that are due by `now`, earliest first.
   * A service takes one as a `job run` request: by a write conditional on
   * `queued`.
   */
  dueQueuedRuns(now: number, limit: number): Promise<Run[]>;

  /**
   * Runs someone asked to cancel (`runs cancel`), oldest first: those of
   * `nodeId` still running or waiting for a worker there, which that
   * service must end, and retries no service took yet (`queued`, no node),
   * which any service records cancelled by a write conditional on `queued`.
   * With `lostAmong`, also those of these runs that another node marked
   * `lost` on `nodeId` when it declared it dead: runs that node still holds
   * (it was paused, and resumed), whose cancel was asked before they were
   * marked. Only these: every other node's lost rows would match for good.
   */
  cancelRequests(nodeId: string, lostAmong?: readonly number[]): Promise<Run[]>;

  /**
   * Those of runs `ids` whose rows are `lost` on node `nodeId`: marked so
   * by a node that declared it dead, and followed there (retried, their
   * follow-ups queued), while that node, paused, still held them.
   */
  lostOf(nodeId: string, ids: readonly number[]): Promise<Run[]>;

  /**
   * End as `missed`, with `note`, the rows that claims whose answer was
   * lost wrote for these scheduled fires: only a row with the fire's
   * marker that is still `queued` or `running` (a claim that never landed
   * wrote none; a row of another claim is not its). Returns the claims
   * whose rows it ended.
   */
  missLostClaims(claims: readonly LostClaim[], now: number, note: string): Promise<LostClaim[]>;

  /**
   * In one transaction, end the runs a previous service on this node left
   * `running` or `queued` as `outcome`: `lost` when it died (killed,
   * crashed: the same as a node declared dead), `interrupted` when it
   * stopped cleanly but its records were lost. Ended at `lastSeen` (that
   * service's last heartbeat: the last sign it was alive; a run that
   * started, or was due, after it ends then), or at `now` when that is
   * unknown (null) or later than `now`; the note says which. Returns their
   * ids, oldest first (which the service retries and follows).
   */
  endOrphans(
    nodeId: string,
    now: number,
    lastSeen: number | null,
    outcome: "lost" | "interrupted",
  ): Promise<number[]>;

  /**
   * The latest scheduled fire (trigger `schedule`) of every job of jm_jobs
   * that has one at or before `notAfter` (ms), where its service resumes
   * it (a fire of a job removed since is not read); and the
   * rows of scheduled fires beyond `notAfter` (the first LAST_FIRES_AHEAD
   * of them by fire), which it leaves out: one written by hand for 2099 made its job
   * wait for 2099, firing nothing. With them, when each job's current
   * schedule applies from, where jm_jobs knows.
   */
  lastFires(notAfter: number): Promise<LastFires>;

  /**
   * The newest run (highest id, any trigger) of every job in jm_jobs that
   * has one, in one query; without its output (stdout and stderr null).
   */
  latestRuns(): Promise<Map<string, Run>>;

  /**
   * Every run now `running`, oldest first (by id), without its output; on
   * the status index, so as cheap with millions of ended runs as with none.
   */
  runningRuns(): Promise<Run[]>;

  /** Runs scheduled at or after `since`, counted by status. */
  countRuns(since: number): Promise<Partial<Record<RunStatus, number>>>;

  /**
   * Runs scheduled at or after `since`, counted by the minute they were
   * scheduled in (its first instant, ms) and status; oldest minute first,
   * minutes without runs left out.
   */
  countRunsByMinute(since: number): Promise<MinuteCounts[]>;
}

/** Services (`jm_nodes`) and their heartbeats. */
export interface NodeStore {
  /**
   * Insert or replace the row of a service node. `declarationSeen`, given
   * by the node's own heartbeat: the declared_dead_at its last look at its
   * row found (null for none). The row's declaration of its death
   * (declared_dead_at, declared_dead_by) then stays unless it is that one:
   * a heartbeat clears only a declaration its node has read, else one
   * written after its last look (which failed, or came before it) would be
   * erased unread, and the node never learn it was declared dead. Without
   * it, every column is written as `node` has it.
   */
  saveNode(node: Node, declarationSeen?: number | null): Promise<void>;

  /** The database's clock, in ms since the epoch: the one clock every node agrees on. */
  databaseNow(): Promise<number>;

  /**
   * All nodes, most recent heartbeat first, and the database's clock
   * (as {@link databaseNow}), read in one query.
   */
  nodesAndNow(): Promise<{ nodes: Node[]; databaseNow: number }>;

  /**
   * In one transaction: read and lock the row of `node.id`; when there is
   * none, or `mayReplace(existing, databaseNow)` says so, write `node`
   * with `db_heartbeat_at` the database's clock and return null; else
   * write nothing and return the existing row. `mayReplace` may run more
   * than once (a deadlock victim runs again).
   */
  claimNode(
    node: Node,
    mayReplace: (existing: Node, databaseNow: number) => boolean,
  ): Promise<Node | null>;

  /**
   * In one transaction, only while node `id` still has the heartbeat
   * `lastBeat` (database clock), is not stopped and not declared dead yet:
   * record it declared dead now by `by`, and mark its `running` and
   * `queued` runs `lost` with a note naming it and when, ended at its last
   * heartbeat (`heartbeat_at`, its own clock, which its runs' starts are
   * on), or at their start (or fire, for a queued run) when later. Returns when it
   * was declared dead, how many runs were lost and their ids (which the
   * declaring node retries), or null when another node declared it first
   * or it sent a heartbeat meanwhile. Sent again by the same node for the
   * same heartbeat (its first answer was lost), it returns that declaration.
   */
  declareDead(
    id: string,
    lastBeat: number,
    by: string,
  ): Promise<{ at: number; lost: number; runIds: number[] } | null>;
}

/** The log table (`jm_syslog`) and the retention of old rows. */
export interface LogStore {
  /** Append log rows, in one statement per batch. */
  insertLogs(rows: LogRow[]): Promise<void>;

  /** Log rows, newest first (oldest first with `afterId`). */
  listLogs(filter: LogFilter): Promise<LogRow[]>;

  /**
   * Delete at most `limit` of the oldest rows older than `before` (ms):
   * `jm_syslog` and `jm_notifications` by created_at, `jm_runs` by
   * scheduled_at (ended runs only).
   * Small batches keep locks short. Returns how many were deleted.
   */
  pruneOlderThan(
    table: "jm_syslog" | "jm_runs" | "jm_notifications",
    before: number,
    limit: number,
  ): Promise<number>;
}

/** What a notification is about (issue 13). */
export const NOTIFY_EVENTS = ["failure", "recovery", "success", "silent"] as const;
export type NotifyEvent = typeof NOTIFY_EVENTS[number];

/** A notification to claim before any hook runs. */
export interface NotificationClaim {
  job_id: string;
  event: NotifyEvent;
  /** The run's id; for a silence alert, the instant the silence is measured from (ms). */
  ref: number;
  /** The run's status, or `silent`. */
  status: string;
  /** Now, by the service's clock (ms). */
  at: number;
  node_id: string;
  /**
   * Held back when the job was notified less than this long ago (ms);
   * null = never held (on_success, which is not an alert).
   */
  minIntervalMs: number | null;
  /** What would be sent; kept while held back so that a later flush sends the latest. */
  payload: string;
  /**
   * With `minIntervalMs`: held back too when the job already has this many
   * of the event pending (a backlog of deliveries slower than its runs).
   */
  maxPending?: number;
}

/** Notifications of one job held back by notify.min_interval. */
export interface HeldBack {
  count: number;
  /** When the first of them was held (ms). */
  since: number;
  /** How many of each status. */
  statuses: Record<string, number>;
}

/**
 * What `claimNotification` decided: send now (with what was held back
 * before), or hold until `dueAt` (the job's last one plus `minIntervalMs`).
 */
export type ClaimOutcome = { send: true; heldBack: HeldBack | null } | {
  send: false;
  dueAt: number;
  /** Held for the job's backlog (`maxPending`), not (only) for min_interval. */
  backlog?: true;
};

/** A notification claimed to be sent (`pending`), with what it sends. */
export interface PendingNotification {
  id: number;
  job_id: string;
  event: NotifyEvent;
  ref: number;
  node_id: string;
  /** How many times it was taken over since its claim (see `takeNotification`). */
  attempt: number;
  /** As given to `claimNotification`. */
  payload: string;
  /** What was held back before it, sent with it. */
  heldBack: HeldBack | null;
  /** When it was claimed (ms): it is given up `notify.give_up_after` later. */
  created_at: number;
  /** How many times it went out and found its webhook receiver unreachable (see `retryNotification`). */
  tries: number;
  /** What is left to send (see ChannelsLeft). */
  channels: ChannelsLeft;
  /**
   * When it is tried again (its webhook receiver was unreachable, see
   * `retryNotification`); null: at once. Till then the job's later ones
   * wait behind it, so a recovery never reaches a receiver before its failure.
   */
  retry_at: number | null;
}

/**
 * What is left of a pending notification to send: null, every channel;
 * `webhook`, the post only, the hook command and mail having gone;
 * `webhook:failed`, the post only, the hook command or mail having failed
 * (the notification ends `failed` whatever the post does).
 */
export type ChannelsLeft = "webhook" | "webhook:failed" | null;

/** What `notificationsPending` counts. */
export interface PendingCount {
  count: number;
  oldest: number | null;
  retrying: number;
  nextRetry: number | null;
}

/** What `takeHeld` took, and when the first of those it left may go (null: none left). */
export interface TakenHeld {
  taken: PendingNotification[];
  nextDueAt: number | null;
  /** Jobs whose held notification was due, but whose claim was deleted meanwhile (housekeeping). */
  lost: string[];
}

/** A job whose silence alert may be due: no success since `since`. */
export interface SilenceCandidate {
  job_id: string;
  /** Seconds. */
  alert_after: number;
  /**
   * The job's last success (finished_at) or its last change, whichever is
   * later (ms); once a silence alert was claimed with no success since,
   * the `since` of that alert (an edit does not re-arm it).
   */
  since: number;
}

/** Claims and throttling of notifications (`jm_notifications`, `jm_notify_state`). */
export interface NotifyStore {
  /**
   * In one transaction: insert the `jm_notifications` row of (job_id,
   * event, ref) unless it exists (then return null: another service, or an
   * earlier attempt, has it); with `minIntervalMs`, lock the job's
   * `jm_notify_state` row and either hold the notification (the job was
   * notified within that long of its time, on either side: counted, its
   * payload kept) or mark
   * the job notified now and hand over what was held back before. A
   * notification to send is kept `pending`, with its payload and what was
   * held back, until `notificationDone`: a service that stops or dies
   * before it went out leaves it to the next (`pendingNotifications`).
   */
  claimNotification(claim: NotificationClaim): Promise<ClaimOutcome | null>;

  /**
   * The notification claimed for (job, event, ref) went out (`sent`) or
   * not (`failed`; `given_up`: its webhook receiver stayed unreachable for
   * notify.give_up_after, counted in the job's `jm_notify_state` in the
   * same transaction): it is no longer `pending`, and its payload is
   * dropped. `told`: how many given up before it a `sent` one said
   * (`givenUp`), taken off that count.
   */
  notificationDone(
    jobId: string,
    event: string,
    ref: number,
    outcome: "sent" | "failed" | "given_up",
    told?: number,
  ): Promise<void>;

  /**
   * The pending notification (job, event, ref) found its webhook receiver
   * unreachable: it stays pending, not looked at before `retryAt` (ms),
   * with `channels` left to send; its `tries` and `attempt` go up, so a
   * look that read it before cannot take it.
   */
  retryNotification(
    jobId: string,
    event: string,
    ref: number,
    retryAt: number,
    channels: ChannelsLeft,
  ): Promise<void>;

  /** How many of the job's notifications were given up since one of it was sent. */
  givenUp(jobId: string): Promise<number>;

  /**
   * The job was removed: its pending and held notifications are done with
   * (`failed`) and its `jm_notify_state` row deleted; how many were pending or held.
   */
  dropNotifications(jobId: string): Promise<number>;

  /**
   * Notifications claimed to be sent and not sent yet (`pending`), by id,
   * after id `afterId`, at most `limit`: those of node `mine`, and those of
   * any node but `writing` claimed, or last taken, at `orphanBefore` or
   * before (ms); those waiting to be retried too (`retry_at`), which hold
   * their job's later ones back.
   */
  pendingNotifications(query: {
    mine: string;
    orphanBefore: number;
    writing: readonly string[];
    afterId: number;
    limit: number;
  }): Promise<PendingNotification[]>;

  /**
   * Make pending notification `id`, as last taken (its `attempt`), node
   * `to`'s to send, taken at `now` (ms): false when another took it
   * meanwhile, or it is not pending any more. One taker of each attempt wins.
   */
  takeNotification(id: number, attempt: number, to: string, now: number): Promise<boolean>;

  /**
   * How many notifications are pending, and when the oldest of them was
   * claimed (ms; null: none); of them, how many wait to be retried (their
   * webhook receiver was unreachable), and the next retry (ms; null: none).
   */
  notificationsPending(): Promise<PendingCount>;

  /**
   * Whether the job was failing when `run` ended: of its runs with a status
   * in `failures` or `success`, the one that ended last before it (among
   * the job's latest 200) has one of `failures`; or a silence alert was
   * claimed and no success ended since.
   */
  failingBefore(
    jobId: string,
    run: { id: number; finished_at: number },
    failures: readonly string[],
  ): Promise<boolean>;

  /** Enabled jobs with an `alert_after`, with when their silence began. */
  silenceCandidates(): Promise<SilenceCandidate[]>;

  /**
   * Held-back notifications whose job was last notified `minIntervalMs` or
   * more before `now`: each is taken (the job marked notified at `now`, its
   * held count reset) by one caller only, by a conditional write; with
   * when the first of those not due yet will be (`now` when more are due
   * than one call takes). What is taken is the latest held, made a pending
   * notification of node `nodeId` in the same transaction, carrying what
   * was held back before it: sent, it is done as any other
   * (`notificationDone`); left unsent, it is pending as any other. With
   * `maxPending`, a job with that many of the event pending is left held
   * (its backlog first).
   */
  takeHeld(
    now: number,
    minIntervalMs: number,
    nodeId: string,
    maxPending?: number,
  ): Promise<TakenHeld>;
}

/** Every part together, with the connection's life: what `openStore` returns. */
export interface Store extends JobStore, MarkerStore, RunStore, NodeStore, LogStore, NotifyStore {
  readonly kind: "sqlite" | "mysql";
  /** Where the store points, password redacted. */
  readonly description: string;
  /**
   * Whether it made a new, empty database: on SQLite, opening it made the
   * file; on MySQL, whose databases are made by hand, `migrate` made
   * jobsmanager's tables in one that held none (false till then, and for
   * every other process migrating it at the same time).
   */
  readonly created: boolean;
  /**
   * Whether this store's `migrate` made jobsmanager's tables in a database
   * that held none of them but held other tables (false till then, and for
   * every other process migrating it at the same time): on SQLite, a file
   * that holds only the original JobsManager's table, moved aside as
   * `jm_jobs_apscheduler`. A new or empty database is `created`'s.
   */
  readonly madeSchema: boolean;

  /**
   * Bring the schema to the version this build knows, idempotently and
   * safely when several processes do it at once (one lock for the whole
   * run). A table of the schema found missing (dropped by hand) is created
   * again, empty, as the migrations left it, and reported. Refuses,
   * touching nothing, when the database holds a newer schema or the
   * original project's APScheduler table under `jm_jobs`, or, unless
   * `options` allow an upgrade, an older schema (naming both versions and
   * `jobsmanager db migrate`).
   */
  migrate(options?: MigrateOptions): Promise<MigrationReport>;

  /**
   * Whether the database holds jobsmanager's schema (its jm_schema_version
   * table): what a command that does not migrate asks, where `migrate`
   * would create every table in an empty database. Reads only; refuses as
   * `migrate` does the original project's tables and a newer schema, and
   * as `migrate({ upgrade: false })` an older one: the services of the
   * release that wrote it could not start again after an upgrade. Refuses
   * too a schema missing a table (dropped by hand), which `migrate` makes.
   */
  hasSchema(): Promise<boolean>;

  /**
   * What in the database server's own settings works against what
   * jobsmanager promises and a connection cannot set for itself, each in
   * words with how to fix it (fixed texts: no `{`, which a log message
   * reads as a placeholder); empty when nothing does (always on SQLite).
   * `serve` logs each as a warning when it starts, after the database.
   * `pools`: how many pools of this store's size the service opens (its
   * scheduler's, and its HTTP API's where it listens).
   */
  serverCautions(pools: number): Promise<string[]>;

  /**
   * One cheap round trip (`SELECT 1`): resolves when the database answers,
   * throws the driver's error when it does not. The daemon's health check.
   * On MySQL a pooled connection opened before its database was dropped
   * still answers; a new one is refused, naming the database.
   */
  ping(): Promise<void>;

  /** Release connections and files. The store is unusable afterwards. */
  close(): Promise<void>;
}
