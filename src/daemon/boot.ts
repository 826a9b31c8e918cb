/**
 * The daemon, assembled from the settings, a store and a clock: database
 * health, run recorder, scheduler, housekeeping and the jm_syslog sink.
 * `jobsmanager serve` boots it and turns signals into `stop()` and
 * `reload()`; tests boot it in-process with a fake clock.
 */
import { getLogger, type Sink } from "@logtape/logtape";
import type { Settings } from "../config/config.ts";
import { systemTimezone, systemZone } from "../domain/time.ts";
import type { Node } from "../domain/node.ts";
import { RuntimeError } from "../errors.ts";
import { BATCH_CONNECTIONS } from "../store/mysql.ts";
import type { Store } from "../store/store.ts";
import { absoluteDescription } from "../store/target.ts";
import { VERSION } from "../version.ts";
import { type Clock, Deadline, systemClock } from "./clock.ts";
import { Cluster, type NodeIdentity } from "./cluster.ts";
import { type DatabaseAway, DbHealth } from "./db_health.ts";
import { Housekeeping } from "./housekeeping.ts";
import { collectGarbage } from "./heap.ts";
import { log, SINK_CATEGORY } from "./log.ts";
import { DatabaseLogSink } from "./log_sink.ts";
import { Notifier, ORPHAN_MS } from "./notifier.ts";
import { endGoneHereRuns } from "./here_runs.ts";
import { filesSetAside, openFileRoom } from "./open_files.ts";
import { RunRecorder } from "./recorder.ts";
import { RunGuard } from "./run_guard.ts";
import { RunPool } from "./run_pool.ts";
import { type ArmRun, spawnCost, type StartRun, startRun } from "./runner.ts";
import { nativeSpawnMissing } from "./native_spawn.ts";
import { type RunObserver, Service, type ServiceState } from "./service.ts";

export type { NodeIdentity };

export interface BootOptions {
  settings: Settings;
  /** The daemon owns it from here: `run()` migrates it and closes it. */
  store: Store;
  clock: Clock;
  /**
   * This machine's clock, which its time sync (NTP) keeps and the cluster
   * compares with the database's: the system clock unless a test, whose
   * `clock` is a fake one, gives another.
   */
  wallClock?: () => number;
  /** A clock no one steps, which a sleep of the machine stops: `performance.now` unless a test gives one. */
  monotonic?: () => number;
  /** Who this service is in `jm_nodes`; an empty id picks one from the host name. */
  node: NodeIdentity;
  /** The environment every run starts from (secrets already removed). */
  env: Record<string, string>;
  /** Strings never stored from a run's output: the database password, plain and %-encoded, and the API's tokens (added once read: the array is read at each run). */
  secrets?: readonly string[];
  /** Starts a run's process: a RunPool of real runners unless a test gives a double. */
  startRun?: StartRun;
  /** Arms a run's shell ahead of its fire: the RunPool's, unless a test gives a double. */
  armRun?: ArmRun;
  /** Sends the runs handed out on at once: the RunPool's `flush`, unless a test gives a double. */
  sendStarts?: () => void;
  /** How long a spawn holds its thread, in ms: the runner's own measure, unless a test gives one. */
  spawnCost?: () => number;
  /** Descriptors the process may still open: /proc's answer, unless a test gives one. */
  fileRoom?: () => number;
  /** Told of runs as they start and end (the HTTP side's metrics). */
  observer?: RunObserver;
  /**
   * How long a fire waits for its claim before the database counts as
   * away (1 s); a test whose fake clock jumps while claims are under way
   * gives more.
   */
  claimTimeoutMs?: number;
  /**
   * No other service can use this database (`serve` holds the SQLite
   * file's lock): other nodes' rows, left by a service that died, are
   * looked at every heartbeat instead of every second.
   */
  soleService?: boolean;
  /** The database file was made for this service (`serve`'s lock makes it before the store opens it). */
  madeDatabase?: boolean;
}

/** What probes and metrics read from a running daemon. */
export interface DaemonVitals extends ServiceState {
  /** Jobs loaded and firing: false before the start and once a stop began. */
  firing: boolean;
  databaseOnline: boolean;
  /** What is known of why the database is away; null while it answers. */
  databaseAway: DatabaseAway | null;
  /**
   * While the database answers but refuses every write (a full disk, a
   * read-only file), what it said, naming the cause and the fix; else null.
   */
  databaseWritesRefused: string | null;
  /**
   * While the database answers but refuses reads (the user lacks SELECT),
   * what it said, naming the GRANT the user needs; else null.
   */
  databaseReadsRefused: string | null;
  /** Run records waiting in memory for the database to take them. */
  runRecordsWaiting: number;
  /** Why this node holds its fires while the database is away; null when it fires them anyway. */
  holdingReason: string | null;
  /** How long the database has been away since the start, the current outage included. */
  outageMs: number;
  /** How long the current outage has lasted; 0 while the database answers. */
  currentOutageMs: number;
  /** Log records the jm_syslog sink dropped since the start. */
  logRecordsDropped: number;
  /** False while its clock is off and another live node's is in step: it fires no scheduled job. */
  takesShare: boolean;
  /** Jobs silent past their alert_after at the notifier's last look; null before it. */
  silentJobs: number | null;
  /** False while the run guard could not start, or exited (run_guard.ts): runs would outlive a crash. */
  runGuardRunning: boolean;
}

export interface Daemon {
  /** Resolves once `run()` has loaded the jobs and the first fire may come; never on a failed start. */
  readonly ready: Promise<void>;
  /**
   * Resolves once `run()` has migrated the schema: till then the tables the
   * API reads may not be there yet (a new database, one being upgraded).
   * Never when the migration fails.
   */
  readonly migrated: Promise<void>;
  /** The jm_syslog sink for the logging setup; it writes once `run()` has migrated the schema. */
  readonly logSink: Sink;
  /** This service's node id once `run()` has registered it; null before. */
  /** Whether it has looked at the other nodes twice since it started (see Cluster.settled). */
  readonly settled: boolean;
  readonly nodeId: string | null;
  /** What the heartbeat reports. */
  readonly state: ServiceState;
  /**
   * Migrate, mark the runs a crash left lost (retried, notified,
   * followed), load the jobs and fire them until `stop()`; then shut down
   * and close the store by the stop's deadline. Rejects (logged as
   * fatal) when the service cannot start.
   */
  run(): Promise<void>;
  /**
   * Stop firing; `run()` resolves within `stopBudgetMs` of this call, the
   * database answering or not. Before the service has started, it stops as
   * soon as it has.
   */
  stop(): void;
  /**
   * Once stopping, when its last step must be over (`stopBudgetMs` from
   * the stop, less EXIT_RESERVE_MS): what the process closes after
   * `run()` (the HTTP side) gets what is left of it. Null before a stop.
   */
  readonly stopDeadline: Deadline | null;
  /**
   * The database can no longer be written (`why`: the SQLite file was
   * replaced or deleted, its store let go of it): stop as `stop()` does,
   * and say at the end, at error level, how many run records (the ends of
   * the runs the stop ended among them) were written nowhere.
   */
  databaseLost(why: string): void;
  /**
   * Re-read every job now (SIGHUP), marker or not; before the service has
   * started, nothing (starting reads every job).
   */
  reload(): void;
  /**
   * From now on something reports every write to the database
   * (`changed()`), or, with false, no longer does: the timed poll is then
   * only a safety net, every few seconds.
   */
  watched(reported: boolean): void;
  /**
   * From now on something reports every write made on this machine
   * (`changed()`: MySQL's change notices), or, with false, no longer does.
   * Writes made elsewhere (plain SQL, a CLI on another machine) still come
   * only by the timed poll: every 5 s (or reload_interval, when longer)
   * while this node is its database's only live one, as when `watched`;
   * every reload_interval while others are live (they fire jobs changed on
   * their machines, and this one jobs changed on theirs).
   */
  watchedLocally(reported: boolean): void;
  /**
   * The database was written, by anyone: poll soon (0.5 s after the last
   * poll at the soonest), unless the store tells it was this service alone.
   */
  changed(): void;
  readonly vitals: DaemonVitals;
}

/**
 * What a stop's last steps get beyond shutdown_timeout and kill_grace:
 * a second for the killed runs' output (service.ts, KILLED_OUTPUT_MS),
 * half a second for the process to exit (EXIT_RESERVE_MS), the rest for
 * the run records, the last heartbeat, the log rows and the pool.
 */
export const STOP_MARGIN_MS = 5000;

/** From SIGTERM to exit at the most: the systemd unit's TimeoutStopSec is derived from it. */
export function stopBudgetMs(
  settings: Pick<Settings, "jobsmanager.shutdown_timeout" | "jobsmanager.kill_grace">,
): number {
  const { "jobsmanager.shutdown_timeout": timeout, "jobsmanager.kill_grace": grace } = settings;
  return (timeout + grace) * 1000 + STOP_MARGIN_MS;
}

/**
 * What the process needs after the daemon's last step to flush its log file
 * and exit: the daemon's own deadline ends this much before the budget, so
 * the process is gone within it.
 */
export const EXIT_RESERVE_MS = 500;

/** Jobs loaded at the start from which a full collection gives back what loading grew. */
const BULK_LOAD = 1000;
/** A fire waits at most this long for its claim before it starts anyway. */
const CLAIM_TIMEOUT_MS = 1000;
const MAX_BUFFERED_RECORDS = 10_000;

const serviceLog = log("service");
/** At most this long, at a stop, for notifications under way (then their hooks are ended). */
const NOTIFY_CLOSE_MS = 5000;

export function boot(options: BootOptions): Daemon {
  return new BootedDaemon(options);
}

class BootedDaemon implements Daemon {
  private readonly health: DbHealth;
  private readonly recorder: RunRecorder;
  private readonly service: Service;
  private readonly cluster: Cluster;
  private readonly housekeeping: Housekeeping;
  private readonly notifier: Notifier;
  private readonly sink: DatabaseLogSink;
  private readonly guard = RunGuard.start();
  /** The runner threads, unless a test gave its own runner. */
  private readonly pool: RunPool | null;
  private deadline: Deadline | null = null;
  private readonly stopped = Promise.withResolvers<Deadline>();
  private started = false;
  private readonly startedOnce = Promise.withResolvers<void>();
  private readonly migratedOnce = Promise.withResolvers<void>();
  /** Set when a stop's deadline passed before the start finished: it goes no further. */
  private abandoned = false;
  /** Set by `watchedLocally`. */
  private locallyWatched = false;
  /** Set by `displaced`: why the service stopped, which `run()` throws once it has. */
  private displacement: string | null = null;
  /** Set by `databaseLost`: why nothing more reaches the database. */
  private lost: string | null = null;

  constructor(private readonly o: BootOptions) {
    const { settings: s, store, clock } = o;
    const zone = s["jobsmanager.timezone"] || systemTimezone();
    this.health = new DbHealth(store, clock);
    this.pool = o.startRun ? null : new RunPool({ baseEnv: o.env });
    this.recorder = new RunRecorder(store, this.health, clock, {
      claimTimeoutMs: o.claimTimeoutMs ?? CLAIM_TIMEOUT_MS,
      maxBuffered: MAX_BUFFERED_RECORDS,
      ended: (jobId, status) => o.observer?.ended(jobId, status),
      node: () => this.cluster.nodeId,
      idTaken: (runId, jobId, row) => this.service.idTaken(runId, jobId, row),
    });
    this.notifier = new Notifier({
      store,
      clock,
      health: this.health,
      nodeId: () => this.cluster.nodeId,
      realId: (provisional) => this.recorder.realId(provisional),
      mayFire: (jobId) => this.cluster.mayFire(jobId),
      writers: () => this.cluster.writers,
      // Three heartbeats: a node joining, or coming back, is seen here by then.
      orphanMs: Math.max(ORPHAN_MS, 3 * s["jobsmanager.heartbeat_interval"] * 1000),
      silenceWatched: () => this.service.silenceWatched,
      settings: {
        onFailure: s["notify.on_failure"],
        onFailureUrl: s["notify.on_failure_url"],
        onRecovery: s["notify.on_recovery"],
        onRecoveryUrl: s["notify.on_recovery_url"],
        onSuccess: s["notify.on_success"],
        onSuccessUrl: s["notify.on_success_url"],
        mailto: s["notify.mailto"],
        sendmail: s["notify.sendmail"],
        minIntervalMs: s["notify.min_interval"] * 1000,
        timeoutMs: s["notify.timeout"] * 1000,
        webhookTimeoutMs: s["notify.webhook_timeout"] * 1000,
        webhookRetries: s["notify.webhook_retries"],
        giveUpAfterMs: s["notify.give_up_after"] * 1000,
        webhookSecret: s["notify.webhook_secret"],
        maxConcurrent: s["notify.max_concurrent"],
      },
      // Hooks are real commands even when a test's runs are not.
      startRun,
      baseEnv: o.env,
      guard: this.guard,
      killGraceMs: s["jobsmanager.kill_grace"] * 1000,
      secrets: o.secrets ?? [],
      observer: o.observer,
    });
    this.cluster = new Cluster({
      store,
      clock,
      wallClock: o.wallClock ?? systemClock.now,
      monotonic: o.monotonic,
      health: this.health,
      // The CLI shows jobs without a zone in the zone the service reports here.
      node: { ...o.node, timezone: zone },
      heartbeatMs: s["jobsmanager.heartbeat_interval"] * 1000,
      reloadIntervalMs: s["jobsmanager.reload_interval"] * 1000,
      sweepMs: o.soleService ? s["jobsmanager.heartbeat_interval"] * 1000 : undefined,
      outagePolicy: s["cluster.on_database_outage"],
      state: () => this.service.state,
      declaredDead: (nodeId, at, runIds) => this.notifier.lostRuns(nodeId, at, runIds),
      displaced: (holder) => this.displaced(holder),
      // Another node's writes (a run's end, a retry) leave no notice here: polls find them.
      writersChanged: (writers) => {
        if (this.locallyWatched) this.service.watched(writers.length <= 1);
      },
      jobsWithUser: () => this.service.jobsWithUser,
    });
    this.health.holdsWhen(() => this.cluster.holdingReason);
    const clients = s["http.listen"] === "" ? 0 : s["http.max_connections"];
    this.service = new Service({
      store,
      clock,
      health: this.health,
      recorder: this.recorder,
      startRun: o.startRun ?? this.pool!.launch,
      armRun: o.armRun ?? this.pool?.arm,
      sendStarts: o.sendStarts ?? (o.startRun ? undefined : this.pool!.flush),
      spawnCost: o.spawnCost ?? (o.armRun ? undefined : spawnCost),
      fileRoom: o.fileRoom ?? (o.armRun ? undefined : () => this.fileRoom(clients)),
      httpClients: o.fileRoom || o.armRun || clients === 0
        ? undefined
        : { count: clients, fileRoom: () => this.fileRoom(0) },
      cluster: this.cluster,
      guard: this.guard,
      defaults: {
        timezone: zone,
        coalesce: s["jobsmanager.coalesce"],
        maxInstances: s["jobsmanager.max_instances"],
        misfireGraceTime: s["jobsmanager.misfire_grace_time"],
      },
      reloadIntervalMs: s["jobsmanager.reload_interval"] * 1000,
      maxWorkers: s["jobsmanager.max_workers"],
      shutdownTimeoutMs: s["jobsmanager.shutdown_timeout"] * 1000,
      killGraceMs: s["jobsmanager.kill_grace"] * 1000,
      outputCap: s["jobsmanager.output_cap"],
      secrets: o.secrets ?? [],
      observer: o.observer,
      notifier: this.notifier,
    });
    this.housekeeping = new Housekeeping({
      store,
      clock,
      health: this.health,
      keepLogDays: s["log.keep_days"],
      keepRunDays: s["runs.keep_days"],
      keepChangeDays: s["changes.keep_days"],
      endGoneHereRuns: async () =>
        (await endGoneHereRuns(store, {
          host: o.node.host,
          now: () => clock.now(),
          killGraceMs: s["jobsmanager.kill_grace"] * 1000,
        })).map((run) => run.job_id),
      observer: o.observer,
    });
    const sinkLog = getLogger(SINK_CATEGORY);
    this.sink = new DatabaseLogSink({
      insert: (rows) => store.insertLogs(rows),
      report: (level, message, properties) =>
        sinkLog[level === "warning" ? "warn" : "info"](message, properties),
      online: () => this.health.online,
      node: () => this.nodeId,
      // Lines logged during an outage name provisional run ids; write the real ones.
      resolve: (context) => {
        const run = context.run;
        const real = typeof run === "number" && run < 0 ? this.recorder.realId(run) : undefined;
        return typeof real === "number" ? { ...context, run: real } : context;
      },
      clock,
    });
  }

  /** This service's node id, once registered: every log line names it. */
  get nodeId(): string | null {
    return this.cluster.nodeId || null;
  }

  /**
   * Whether the node has looked at the other nodes twice since it started:
   * till then `cluster.on_database_outage` auto holds (Cluster.holds).
   */
  get settled(): boolean {
    return this.cluster.settled;
  }

  get logSink(): Sink {
    return this.sink.sink;
  }

  get state(): ServiceState {
    return this.service.state;
  }

  get vitals(): DaemonVitals {
    return {
      ...this.service.state,
      firing: this.started && this.deadline === null,
      databaseOnline: this.health.online,
      databaseAway: this.health.away,
      databaseWritesRefused: this.health.writesRefused,
      databaseReadsRefused: this.health.readsRefused,
      runRecordsWaiting: this.recorder.backlog,
      holdingReason: this.cluster.holdingReason,
      outageMs: this.health.outageMs,
      currentOutageMs: this.health.currentOutageMs,
      logRecordsDropped: this.sink.droppedTotal,
      takesShare: this.cluster.takesShare,
      silentJobs: this.notifier.silentJobs,
      runGuardRunning: this.guard.running,
    };
  }

  /**
   * Descriptors the process may still open for runs, `clients` HTTP
   * clients set aside. The log files, the HTTP side's listener and a SQLite
   * file are open already; on MySQL, each pool's connections may open yet
   * (this side's, and the HTTP side's where it listens).
   */
  private fileRoom(clients: number): number {
    const s = this.o.settings;
    const pools = s["http.listen"] === "" ? 1 : 2;
    return openFileRoom(filesSetAside(
      this.o.store.kind === "sqlite" ? 0 : (s["db.pool_size"] + BATCH_CONNECTIONS) * pools,
      clients,
    ));
  }

  get stopDeadline(): Deadline | null {
    return this.deadline;
  }

  stop(): void {
    if (this.deadline) return;
    this.deadline = Deadline.in(this.o.clock, stopBudgetMs(this.o.settings) - EXIT_RESERVE_MS);
    this.service.stop(this.deadline);
    // The other nodes take its jobs while it ends its runs.
    this.cluster.leave();
    this.stopped.resolve(this.deadline);
  }

  databaseLost(why: string): void {
    this.lost ??= why;
    this.recorder.abandon();
    this.stop();
  }

  /**
   * Another service, started since, took this node's id while this one
   * sent no heartbeat (paused, or cut off from the database): it fires
   * this node's share, or will once it starts again. Both on, one job
   * would run twice at once: this one stops at once, interrupting its
   * runs (recorded so, unless the other already ended them), and writes
   * its node's row no more.
   */
  private displaced(holder: Node): void {
    const taken =
      "was taken by another service (pid {pid} on {host}, started {started}) while this one sent no heartbeat (paused, or cut off from the database)";
    const values = {
      node: holder.id,
      pid: holder.pid,
      host: holder.host,
      started: new Date(holder.started_at).toISOString(),
    };
    serviceLog.fatal(
      `node id {node} ${taken}: this one stops at once, interrupting its runs, so that no job runs twice under one node id`,
      values,
    );
    // The same words in the error `run()` throws, the values in them.
    this.displacement = `node id ${JSON.stringify(values.node)} ${
      taken.replace(/\{(\w+)\}/g, (_, key: keyof typeof values) => String(values[key]))
    }`;
    if (this.deadline) return;
    this.deadline = Deadline.in(this.o.clock, stopBudgetMs(this.o.settings) - EXIT_RESERVE_MS);
    // Not `stop()`: leaving would write this node's row, the other service's now.
    this.service.stop(this.deadline, true);
    this.stopped.resolve(this.deadline);
  }

  reload(): void {
    if (this.started) this.service.requestReload(true);
  }

  watched(reported: boolean): void {
    this.service.watched(reported);
  }

  changed(): void {
    this.service.changed();
  }

  watchedLocally(reported: boolean): void {
    this.locallyWatched = reported;
    this.service.watched(reported && this.cluster.writers.length <= 1);
  }

  async run(): Promise<void> {
    try {
      if (await this.start()) await this.service.run();
    } catch (error) {
      serviceLog.fatal("cannot run: {error}", { error: (error as Error).message });
      throw error;
    } finally {
      await this.close();
    }
    if (this.displacement !== null) {
      throw new RuntimeError(
        `${this.displacement}; this one stopped: start it again only once that one has stopped, or give each service its own id (jobsmanager.node_id or JM_NODE_ID)`,
      );
    }
  }

  /** Start the service; false when a stop's deadline passed first (a database that hangs). */
  private async start(): Promise<boolean> {
    const starting = this.startService();
    const timedOut = this.stopped.promise
      .then((deadline) => deadline.wait(starting))
      .then((settled) => settled ? new Promise<never>(() => {}) : false);
    const started = await Promise.race([starting.then(() => true), timedOut]);
    if (!started) {
      this.abandoned = true;
      starting.catch(() => {});
    }
    return started;
  }

  private async startService(): Promise<void> {
    const { store, node } = this.o;
    const { created, from, to } = await store.migrate();
    this.migratedOnce.resolve();
    if (this.abandoned) return;
    this.sink.start();
    // Said, never silent: the services of the older release refuse the schema from now on.
    if (from > 0 && from < to) {
      serviceLog.warn(
        "migrated the schema of {database} from version {from} to {to}; services of older releases cannot start on it until upgraded",
        { database: store.description, from, to },
      );
    }
    if (created.length > 0) {
      serviceLog.warn("created the missing tables {tables} again, empty", { tables: created });
    }
    const { problem } = systemZone();
    if (problem !== null && !this.o.settings["jobsmanager.timezone"]) {
      // TZ's braces are text, not placeholders.
      serviceLog.warn(
        `${
          problem.replaceAll("{", "{{").replaceAll("}", "}}")
        }; the jobs that name no zone fire at UTC's instants`,
      );
    }
    // The HTTP API's worker opens a pool of its own, as large.
    const pools = this.o.settings["http.listen"] === "" ? 1 : 2;
    for (const caution of await store.serverCautions(pools)) {
      serviceLog.warn(`{database}: ${caution}`, { database: store.description });
    }
    if (this.abandoned) return;
    // The rows as the previous services left them: registering overwrites this node's, whose
    // last heartbeat is when the runs a crash left running were last known to run.
    const before = (await store.nodesAndNow()).nodes;
    if (this.abandoned) return;
    const nodeId = await this.cluster.register();
    if (this.abandoned) return;
    serviceLog.info(
      "jobsmanager {version} starting on {store} ({database}), node {node}, pid {pid}",
      {
        version: VERSION,
        store: store.kind,
        database: store.description,
        node: nodeId,
        pid: node.pid,
      },
    );
    const missing = nativeSpawnMissing();
    if (missing !== null) {
      serviceLog[missing.forNow ? "warn" : "info"](
        `runs start through util-linux's setsid${
          missing.forNow ? " for now" : ""
        }, which costs about a third more CPU a run than the native spawn: {why}`,
        { why: missing.why },
      );
    }
    if (store.created || this.o.madeDatabase || store.madeSchema) {
      // A mistyped path, or a service started in the wrong directory, reads no jobs: say so, naming
      // the database as a command run from any directory finds it.
      // A database that held other tables (the original's, moved aside) held none of jobsmanager's.
      const made = store.madeSchema
        ? "created jobsmanager's tables in the database {database}, which held none"
        : store.kind === "mysql"
        ? "created jobsmanager's tables in the empty database {database}"
        : "created a new, empty database {database}";
      serviceLog.warn(`${made}; add jobs with \`jobsmanager job add --database {database} …\``, {
        database: absoluteDescription(store.description),
      });
    }
    await this.service.start(before.find((n) => n.id === nodeId) ?? null);
    if (this.abandoned) return;
    // Before the first fire: the collection blocks for tens of milliseconds.
    if (this.service.state.jobsLoaded >= BULK_LOAD) collectGarbage();
    this.cluster.start();
    this.housekeeping.start();
    this.notifier.start();
    this.started = true;
    this.startedOnce.resolve();
  }

  get ready(): Promise<void> {
    return this.startedOnce.promise;
  }

  get migrated(): Promise<void> {
    return this.migratedOnce.promise;
  }

  /** The last steps, in the order their output matters, by the stop's deadline. */
  private async close(): Promise<void> {
    // A start that failed has no stop deadline: the last steps get the margin.
    const deadline = this.deadline ?? Deadline.in(this.o.clock, STOP_MARGIN_MS);
    if (this.started) {
      // Hooks under way get a share of what is left; the rest is for the records.
      await this.notifier.close(Math.min(deadline.left / 2, NOTIFY_CLOSE_MS));
      await this.housekeeping.stop(deadline.left);
      await this.cluster.stop(deadline.left);
    }
    await this.sink.close(deadline.left);
    this.pool?.close();
    // Runs that outlived even their SIGKILL are still listed: the guard kills their groups again.
    await this.guard.close();
    this.health.close();
    const nowhere = this.recorder.backlog + this.recorder.droppedRecords;
    if (this.lost !== null && nowhere > 0) {
      // Not lost at a restart either: the database the service starts on next never had them.
      serviceLog.error(
        "{count} run records were written nowhere ({why}): this log is all that tells how those runs ended",
        { count: nowhere, why: this.lost },
      );
    }
    // A pool whose server stopped answering can wait forever to end.
    await deadline.wait(this.o.store.close());
  }
}
