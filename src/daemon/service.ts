/**
 * The running service: fires the timetable on time, asks the slot gate
 * whether each fire starts, waits or is skipped, records every fire in
 * `jm_runs`, applies reload markers, and shuts down by a deadline.
 * Decisions come from the pure timetable and the gate; this class owns the
 * timers, the processes and the writes.
 */
import type { Job } from "../domain/job.ts";
import { log } from "./log.ts";
import type { NewRun, RunStatus } from "../domain/run.ts";
import type { Node } from "../domain/node.ts";
import type { JobStore, MarkerStore, RunStore } from "../store/store.ts";
import { type Clock, type Deadline, PRECISE_TAIL_MS, settlesWithin } from "./clock.ts";
import type { Cluster } from "./cluster.ts";
import type { DbHealth } from "./db_health.ts";
import type { RunRecorder } from "./recorder.ts";
import type { RunGuard } from "./run_guard.ts";
import type { Armed, ArmRun, StartRun } from "./runner.ts";
import { endRun } from "./processes.ts";
import type { Notifier, NotifyObserver } from "./notifier.ts";
import type { EndedRun } from "./notify_message.ts";
import { Aftermath } from "./aftermath.ts";
import { Handover } from "./handover.ts";
import { ActiveRuns, lateNote } from "./active_runs.ts";
import { Reload } from "./reload.ts";
import { RunRequests } from "./run_requests.ts";
import { ShellArming } from "./shell_arming.ts";
import { type Slot, SlotGate } from "./slots.ts";
import { type Decision, type Due, type JobDefaults, onTime, Timetable } from "./timetable.ts";

/**
 * Told of each run as it starts and as it gets its final status (a fire
 * skipped or missed included): what `/metrics` counts. Called on the
 * scheduler's path, so it must return at once.
 */
export interface RunObserver extends NotifyObserver {
  /** A run's command started `lagMs` after its scheduled instant. */
  started(jobId: string, lagMs: number): void;
  /** The timetable's next fire is now at `at` (ms; Infinity: none), before any start it brings. */
  upcoming?(at: number): void;
  ended(jobId: string, status: RunStatus): void;
  /** Every job in the table now (a reload read them all): what is kept of others may go. */
  jobsInTable?(ids: ReadonlySet<string>): void;
}

export interface ServiceOptions {
  store: JobStore & MarkerStore & RunStore;
  clock: Clock;
  health: DbHealth;
  /** Run records, kept through database outages. */
  recorder: RunRecorder;
  startRun: StartRun;
  /**
   * Arms runs' shells ahead of their fire (runner.ts ArmedShell), so that
   * the fire only releases them; none: each run is started at its fire.
   */
  armRun?: ArmRun;
  /**
   * Send the runs handed to `startRun` on their way now, not at the next
   * turn of the event loop (a RunPool's `flush`): the releases of an
   * instant's armed shells do not wait behind whatever else waits for a
   * turn (a flood of log lines held them 15-20 ms).
   */
  sendStarts?: () => void;
  /** How long a spawn holds the thread that makes it, in ms (runner.ts `spawnCost`); none: 0. */
  spawnCost?: () => number;
  /** Descriptors the process may still open (open_files.ts `openFileRoom`); none: no bound. */
  fileRoom?: () => number;
  /** This node among the others on the database: its id, which jobs it fires, its outage policy. */
  cluster: Cluster;
  /** Told which process groups run, to end them if the service dies; null without one. */
  guard: RunGuard | null;
  defaults: JobDefaults;
  reloadIntervalMs: number;
  maxWorkers: number;
  shutdownTimeoutMs: number;
  killGraceMs: number;
  outputCap: number;
  /** Strings never stored from a run's output (the database password). */
  secrets: readonly string[];
  observer?: RunObserver;
  /** Told of every run that ends, to notify whom the job's hooks name. */
  notifier: Notifier;
}

/** No timer waits longer than this: the clock is re-read, so suspend and clock jumps heal. */
const MAX_SLEEP_MS = 30_000;
/** The clock read this much earlier than the time before was stepped back (see `clockWentBack`). */
const CLOCK_BACK_MS = 1000;
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
/**
 * A loop that wakes this late was held (SIGSTOP, a suspended VM): it
 * applies the changes written meanwhile (a job disabled, removed or
 * changed) before the fires it left due, as it does when the database
 * comes back. It waits at most CHANGES_WAIT_MS for them: a database that
 * does not answer holds the fires no longer than that.
 */
const LATE_WAKE_MS = 1000;
const CHANGES_WAIT_MS = 500;
/** Descriptors a run holds: its output's two pipes and its process (its stdin is closed). */
const FILES_PER_RUN = 3;
/** While holding through an outage, how often to look whether the database is back. */
const HELD_RECHECK_MS = 1000;
/** Runs a crashed service may have left running whose processes the start looks for. */
const ORPHANS_ENDED = 10_000;
/**
 * What a stop keeps, of its deadline, for its steps after the run records
 * (the node's stop mark, the log rows, the pool; see boot.ts STOP_MARGIN_MS).
 */
const LAST_STEPS_MS = 1500;

export interface ServiceState {
  jobsLoaded: number;
  /** Runs holding a worker. */
  running: number;
  /** Fires waiting for a worker (max_workers). */
  queued: number;
  appliedMarker: number;
  lastReload: { at: number; ms: number } | null;
  /** A poll is under way: it may read the markers and requests again before it ends. */
  polling: boolean;
}

/** A fire recorded `missed`, as the notifier is told of it. */
function missedRun(id: number, row: NewRun, now: number): EndedRun {
  return {
    id,
    job_id: row.job_id,
    status: row.status,
    exit_code: null,
    signal: null,
    scheduled_at: row.scheduled_at,
    started_at: null,
    finished_at: row.finished_at ?? now,
    node_id: row.node_id ?? null,
    trigger: row.trigger,
    note: row.note ?? null,
    stdout: null,
    stderr: null,
  };
}

function coalescedNote(due: Due): string | null {
  return due.coalesced > 0 ? `coalesced ${due.coalesced + 1} fires into one run` : null;
}

interface Waiting {
  due: Due;
  runId: number;
  slot: Slot;
  /** Its JM_RUN_MARKER, recorded with the claim. */
  marker: string;
  /** Its shell, when one was armed for it. */
  shell?: Armed;
}

/** A fire of a catch-up without coalesce, queued behind its job's earlier fire (see `behind`). */
interface Behind {
  due: Due;
  runId: number;
  marker: string;
}

const schedulerLog = log("scheduler");

export class Service {
  private readonly timetable: Timetable;
  private readonly slots: SlotGate;
  private readonly aftermath: Aftermath;
  private readonly runs: ActiveRuns;
  private readonly shells: ShellArming;
  private readonly reloads: Reload;
  private readonly handover: Handover;
  private readonly requests: RunRequests;
  private readonly waiting: Waiting[] = [];
  /**
   * By job, the fires of a catch-up without coalesce that found its
   * max_instances taken by an earlier fire of the same catch-up: each
   * starts when a run of the job ends, if still within its grace, as
   * APScheduler 3 runs a job's late fires one after another. (Fires that
   * find the slots held by runs from before are skipped, as APScheduler
   * skips the whole catch-up then.)
   */
  private readonly behind = new Map<string, Behind[]>();
  /** Writes of finished runs still in flight; shutdown waits for them. */
  private readonly writes = new Set<Promise<unknown>>();
  private stopping = false;
  private deadline: Deadline | null = null;
  private wake = new AbortController();
  private polling = false;
  /** Whether a reported write is being looked for (`changed`), and whether another came meanwhile. */
  private lookingForWrites = false;
  private lookAgain = false;
  /** Aborts the wait for the second look at a write (LATE_COMMIT_MS) when another is reported. */
  private lateLook: AbortController | null = null;
  private pollAgain = false;
  /** The next fire the observer was told of. */
  private toldUpcoming = NaN;
  private readonly recorder: RunRecorder;
  /** Every enabled, valid job, scheduled or not: whose runs retry, and which follow which. */
  private known = new Map<string, Job>();
  /** Whether a job in `known` has an alert_after. */
  private alertAfter = false;
  /** When the last poll began, and when the next one is due. */
  private lastPoll = -Infinity;
  /** When the loop's last sleep was to end (Infinity before the first). */
  private plannedWake = Infinity;
  /** The time the loop last read. */
  private lastRead = -Infinity;
  private nextPoll = -Infinity;
  /** Whether every write to the database is reported (`watched`). */
  private writesReported = false;
  /** Set when the database came back after an outage: poll at once. */
  private pollOnRecovery = false;
  /** The dispatch of due fires under way, if any. */
  private dispatching: Promise<void> | undefined;
  /** Resolved once `start` has loaded the jobs: runs lost before then wait for it. */
  private readonly loaded = Promise.withResolvers<void>();

  constructor(private readonly o: ServiceOptions) {
    this.timetable = new Timetable(o.defaults);
    // A slot given back, whichever way, is the turn of a fire queued behind.
    this.slots = new SlotGate(o.maxWorkers, (jobId) => this.startBehind(jobId));
    this.recorder = o.recorder;
    this.aftermath = new Aftermath({
      store: o.store,
      clock: o.clock,
      recorder: o.recorder,
      nodeId: () => this.nodeId,
      observer: o.observer,
      dueAt: (instant) => this.requests.dueAt(instant),
      recordAwaited: () => {
        // Looked for every 0.5 s from now on (see timedPollMs), not from the next timed poll.
        this.nextPoll = Math.min(this.nextPoll, this.lastPoll + this.timedPollMs);
        this.wake.abort();
      },
    });
    this.runs = new ActiveRuns({
      clock: o.clock,
      startRun: o.startRun,
      guard: o.guard,
      killGraceMs: o.killGraceMs,
      shutdownTimeoutMs: o.shutdownTimeoutMs,
      outputCap: o.outputCap,
      secrets: o.secrets,
      recorder: o.recorder,
      notifier: o.notifier,
      observer: o.observer,
      aftermath: this.aftermath,
      nodeId: () => this.nodeId,
      track: (write) => this.track(write),
      armAfterEnd: (jobId) => this.shells.armAfterEnd(jobId),
      startWaiting: () => this.startWaiting(),
      missedAtStart: (job, scheduledAt, runId, slot, note) =>
        this.missedAtStart(job, scheduledAt, runId, slot, note),
    });
    this.shells = new ShellArming({
      clock: o.clock,
      timetable: this.timetable,
      slots: this.slots,
      armRun: o.armRun,
      spawnCost: o.spawnCost,
      fileRoom: o.fileRoom,
      runSpec: (job, runId, scheduledAt, marker) =>
        this.runs.runSpec(job, runId, scheduledAt, marker),
      mayFire: (jobId) => o.cluster.mayFire(jobId),
      inTurn: (dues) => this.runs.inTurn(dues),
      stopping: () => this.stopping,
      online: () => o.health.online,
      waiting: () => this.waiting.length,
    });
    this.reloads = new Reload({
      store: o.store,
      clock: o.clock,
      health: o.health,
      cluster: o.cluster,
      defaults: o.defaults,
      timetable: this.timetable,
      nodeId: () => this.nodeId,
      stopping: () => this.stopping,
      dispatching: () => this.dispatching,
      know: (known, idle) => this.know(known, idle),
      jobsInTable: (ids) => {
        o.observer?.jobsInTable?.(ids);
        o.notifier.jobsInTable(ids);
      },
      removed: (id) => this.runs.forget(id),
      reloaded: (inTable, now) => {
        o.cluster.setJobs(inTable, this.scheduled);
        this.rebaseBehind(now);
        this.wake.abort();
      },
    });
    this.requests = new RunRequests({
      store: o.store,
      clock: o.clock,
      slots: this.slots,
      defaults: o.defaults,
      recorder: o.recorder,
      aftermath: this.aftermath,
      observer: o.observer,
      nodeId: () => this.nodeId,
      stopping: () => this.stopping,
      known: () => this.known,
      track: (write) => this.track(write),
      elsewhereNote: (jobId) => this.handover.elsewhereNote(jobId),
      launch: (...args) => this.runs.launch(...args),
      cancelRunning: (runId, note) => this.runs.cancelRunning(runId, note),
      cancelWaiting: (runId) => this.cancelWaiting(runId),
      wake: () => this.wake.abort(),
      pollSoon: () => this.pollSoon(),
    });
    this.handover = new Handover({
      store: o.store,
      clock: o.clock,
      health: o.health,
      cluster: o.cluster,
      slots: this.slots,
      timetable: this.timetable,
      nodeId: () => this.nodeId,
      scheduled: this.scheduled,
      lastFires: (now) => this.reloads.lastFires(now),
      sayAhead: (ahead, now) => this.reloads.sayAhead(ahead, now),
      wake: () => this.wake.abort(),
    });
    o.cluster.whenGaining((gained) => this.handover.gain(gained));
    o.cluster.whenLost((ids) => this.track(this.lost(ids)));
    // Writes made while the database was away were polled for by no one
    // (a watched service's next timed poll is 5 s off): poll once it is back.
    o.health.onBack(() => {
      this.pollOnRecovery = true;
      this.wake.abort();
    });
  }

  private get nodeId(): string {
    return this.o.cluster.nodeId;
  }

  /** What the heartbeat reports. */
  get state(): ServiceState {
    return {
      jobsLoaded: this.timetable.size,
      running: this.runs.size,
      queued: this.waiting.length + [...this.behind.values()].reduce((n, q) => n + q.length, 0),
      appliedMarker: this.reloads.appliedMarker,
      lastReload: this.reloads.last,
      polling: this.polling,
    };
  }

  /**
   * Recover from a crash, load every enabled job, and apply pending
   * markers. `previous`: the row the previous service under this node id
   * left, if any (its last heartbeat is when the runs it left running
   * ended, as far as anyone can tell).
   */
  async start(previous: Pick<Node, "heartbeat_at" | "stopped_at"> | null = null): Promise<void> {
    await this.endOrphans();
    const now = this.o.clock.now();
    // A service that stopped cleanly recorded how its runs ended; one that left runs behind
    // died (killed, crashed), as a node another declares dead does: its runs are lost, and
    // retried, notified and followed as those are.
    const outcome = previous?.stopped_at != null ? "interrupted" : "lost";
    const orphans = await this.o.store.endOrphans(
      this.nodeId,
      now,
      previous?.heartbeat_at ?? null,
      outcome,
    );
    if (orphans.length > 0) {
      schedulerLog.warn("{count} runs left running by a previous service were marked {outcome}", {
        count: orphans.length,
        outcome,
      });
    }
    const { jobs, latest } = await this.reloads.load(now);
    await this.handover.holdRunsElsewhere();
    this.loaded.resolve();
    if (outcome === "lost" && orphans.length > 0) {
      this.track(this.lost(orphans));
      this.o.notifier.lostRuns(this.nodeId, now, orphans);
    }
    this.o.cluster.setJobs(jobs.map((job) => job.id), this.scheduled);
    await this.reloads.appliedUpTo(latest);
    schedulerLog.info("loaded {jobs} enabled jobs of {total}; last marker {marker}", {
      jobs: this.timetable.size,
      total: jobs.length,
      marker: latest,
    });
    const room = Math.floor((this.o.fileRoom?.() ?? Infinity) / FILES_PER_RUN);
    if (room < this.o.maxWorkers) {
      schedulerLog.warn(
        'the open-file limit leaves room for about {room} runs at once, fewer than max_workers ({max}): runs beyond may fail with "Too many open files"; raise the limit (LimitNOFILE= in the systemd unit, ulimit -n) or lower jobsmanager.max_workers',
        { room, max: this.o.maxWorkers },
      );
    }
  }

  /**
   * End what the runs a previous service on this node left `running` still
   * have going (it was killed, or crashed, and its guard with it): their
   * process groups, where a process in one still carries the run's
   * marker (a group id may have been reused since), and what carries the
   * marker outside; SIGTERM, SIGKILL after kill_grace. Before the first
   * fire, so that no job runs twice at once.
   */
  private async endOrphans(): Promise<void> {
    const left = await this.o.store.listRuns({
      node_id: this.nodeId,
      status: "running",
      limit: ORPHANS_ENDED,
    });
    await Promise.all(left.map(async (run) => {
      if (run.marker === null) return;
      const { found, killed } = await endRun(
        { pgid: run.pgid, marker: run.marker, ownGroup: false },
        this.o.killGraceMs,
      );
      if (found.length === 0) return;
      schedulerLog.warn(
        "job {job} run {run}, left running by a previous service: ended its processes {pids} with {signal}",
        {
          job: run.job_id,
          run: run.id,
          pids: found.map((p) => `${p.pid} (${p.command})`).join(", "),
          signal: killed ? "SIGKILL after SIGTERM" : "SIGTERM",
        },
      );
    }));
  }

  /** Fire until `stop()`, then shut down by its deadline. */
  async run(): Promise<void> {
    while (!this.stopping) {
      const read = this.o.clock.now();
      if (read <= this.lastRead - CLOCK_BACK_MS) this.clockWentBack(this.lastRead - read, read);
      this.lastRead = read;
      // Back from a pause, or from an outage: what was written meanwhile (a job disabled,
      // removed or changed) applies to the fires left due.
      const late = read - this.plannedWake >= LATE_WAKE_MS;
      if (late || (this.pollOnRecovery && this.o.health.online)) {
        await settlesWithin(this.o.clock, this.reloads.applyChanges(), CHANGES_WAIT_MS);
        if (this.stopping) break;
      }
      const now = this.o.clock.now();
      this.missLateWaiting(now);
      // Holding through an outage: the fires stay in the timetable, decided when it returns.
      const held = !this.o.health.online && this.o.cluster.holds;
      const decision = held ? { run: [], missed: [] } : this.timetable.takeDue(now);
      if (decision.run.length > 0 || decision.missed.length > 0) {
        this.shells.fired(now);
        this.dispatching = this.dispatch(decision, now);
        await this.dispatching;
        this.dispatching = undefined;
      }
      const runDue = this.requests.takeDueInstants(now);
      const recovered = this.pollOnRecovery && this.o.health.online;
      if (now >= this.nextPoll || runDue || recovered) {
        this.pollOnRecovery = false;
        this.lastPoll = now;
        this.nextPoll = now + this.timedPollMs;
        this.poll();
      }
      const nextFire = this.timetable.nextDue() ?? Infinity;
      // Shells armed for an instant no longer next (a reload moved or removed its fires) go now.
      if (this.shells.at > now && this.shells.at !== nextFire) this.shells.disarm();
      const armAt = held || this.shells.at === nextFire
        ? Infinity
        : this.shells.armAt(nextFire, now);
      if (armAt <= now) this.shells.arm(nextFire);
      if (nextFire !== this.toldUpcoming) {
        this.toldUpcoming = nextFire;
        this.o.observer?.upcoming?.(nextFire);
      }
      const instant = Math.min(held ? Infinity : nextFire, ...this.requests.dueInstants);
      const wakeAt = Math.min(
        instant,
        armAt > now ? armAt : Infinity,
        held ? now + HELD_RECHECK_MS : Infinity,
        this.waitingPastGrace(now),
        this.nextPoll,
        now + MAX_SLEEP_MS,
      );
      this.wake = new AbortController();
      if (!this.stopping) {
        // A wake just before a fire is kept as precisely: it would otherwise end after the fire.
        const precise = instant - wakeAt < PRECISE_TAIL_MS;
        this.plannedWake = wakeAt;
        await this.o.clock.sleep(wakeAt - this.o.clock.now(), this.wake.signal, precise);
      }
    }
    await this.shutdown(this.deadline!);
  }

  /**
   * The system clock was stepped back (`date -s`, NTP correcting a clock
   * that ran ahead): the fires are decided again from its time, and the
   * poll is due now, rather than all waiting till the clock is back where
   * it was (ten minutes of silence after a step of ten). A fire decided
   * twice runs once: its claim finds the row of the first time.
   */
  private clockWentBack(byMs: number, now: number): void {
    for (const id of this.timetable.ids()) this.timetable.rewind(id, now - 1);
    this.nextPoll = Math.min(this.nextPoll, now);
    this.plannedWake = Math.min(this.plannedWake, now);
    schedulerLog.warn(
      "the system clock went back {seconds} s: the next fires are decided again from its time",
      { seconds: byMs / 1000 },
    );
  }

  /**
   * From now on something reports every write to the database (`changed()`),
   * or, with false, no longer does: the timed poll is then only a safety net.
   */
  watched(reported: boolean): void {
    this.writesReported = reported;
    this.nextPoll = Math.min(this.nextPoll, this.lastPoll + this.timedPollMs);
    this.wake.abort();
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
        if (this.stopping) return;
        // Unanswered, it may have been: the poll finds out, and tells the health check.
        const elsewhere = await this.o.store.writtenElsewhere().catch(() => true);
        if (elsewhere) this.pollSoon();
        if (this.lookAgain) late = false;
        else if (elsewhere || late) return;
        else late = true;
      }
    } finally {
      this.lookingForWrites = false;
    }
  }

  /** Poll now, or, when a poll has just begun, 0.5 s (or reload_interval) after it. */
  private pollSoon(): void {
    const soon = Math.max(
      this.o.clock.now(),
      this.lastPoll + Math.min(WRITE_POLL_GAP_MS, this.o.reloadIntervalMs),
    );
    if (soon >= this.nextPoll) return;
    this.nextPoll = soon;
    this.wake.abort();
  }

  private get timedPollMs(): number {
    // Ends that wait for their records to be written (by this service: no write report says
    // so) are looked for as often as reported writes are.
    if (this.aftermath.awaitingRecords) return Math.min(WRITE_POLL_GAP_MS, this.o.reloadIntervalMs);
    return this.writesReported
      ? Math.max(WATCHED_POLL_MS, this.o.reloadIntervalMs)
      : this.o.reloadIntervalMs;
  }

  /**
   * Begin a graceful stop: no new fires; running jobs get shutdown_timeout,
   * and the whole shutdown ends by `deadline`. Later calls change nothing.
   */
  stop(deadline: Deadline): void {
    if (this.stopping) return;
    this.deadline = deadline;
    this.stopping = true;
    this.wake.abort();
  }

  /**
   * Reload now; a request during a reload folds into one follow-up. With
   * `everyJob` (SIGHUP) every job is re-read even when no marker is
   * pending, so an `UPDATE jm_jobs` written by hand without a marker is
   * applied too.
   */
  requestReload(everyJob = false): void {
    this.reloads.request(everyJob);
  }

  /** Poll for markers and `job run` requests; a poll due during one folds into one more. */
  private poll(): void {
    // While the database is away its health probes it; polling resumes after.
    if (this.stopping || !this.o.health.online) return;
    if (this.polling) {
      this.pollAgain = true;
      return;
    }
    this.polling = true;
    (async () => {
      do {
        this.pollAgain = false;
        // Before the state is read: a run put back in the queue is taken in this poll.
        if (this.requests.inDoubt) await this.requests.settleTakesInDoubt();
        // One indexed query: a poll finding nothing to do, the usual case, costs no more.
        const asked = this.reloads.appliedMarker;
        const state = await this.o.store.pollState(this.nodeId, asked);
        await this.reloads.reloadIfMarked(state, asked);
        // A marker every live node applied may still wait on a node that
        // died or stopped since: asked only while one is pending, not on
        // every poll of an idle service.
        if (state.oldestPendingMarker !== null) await this.o.store.settleMarkers();
        // With other nodes, a job's runs on any of them count against its max_instances: a
        // retry or `job run` one node takes, a fire its owner starts (within a poll's time).
        // So do runs of `job run --here`, looked for by a lone service only while there are any.
        if (this.o.cluster.writers.length > 1 || state.hereRuns) {
          await this.handover.syncRunsElsewhere();
        } else if (this.handover.holdsAny) await this.handover.releaseEndedElsewhere();
        if (state.manualRuns && await this.requests.takeManualRuns()) this.pollAgain = true;
        // Due by this node's clock: one that is off leaves them to the nodes in step.
        if (state.nextDueRun !== null && this.o.cluster.takesShare) {
          if (state.nextDueRun <= this.o.clock.now()) {
            if (await this.requests.takeDueRuns()) this.pollAgain = true;
          } else this.requests.dueAt(state.nextDueRun);
        }
        if (state.cancelRequests) await this.requests.takeCancelRequests();
        if (this.aftermath.awaitingRecords) await this.aftermath.followRecordedEnds();
      } while (this.pollAgain && !this.stopping);
    })().catch((error) => this.o.health.failed(error)).finally(() => this.polling = false);
  }

  /** Whether `jobId` is in the timetable (enabled, valid, with a schedule). */
  private readonly scheduled = (jobId: string) => this.timetable.job(jobId) !== undefined;

  /** Record what the timetable decided, then start what may start. */
  private async dispatch(all: Decision, now: number): Promise<void> {
    const decision: Decision = {
      run: all.run.filter((d) => this.handover.mayFire(d.job.id, d.scheduledAt)),
      missed: all.missed.filter((m) => this.handover.mayFire(m.job.id, m.first)),
    };
    const armed = this.shells.take(now);
    if (decision.run.length === 0 && decision.missed.length === 0) {
      // Every fire went to another node since its shell was armed.
      for (const fire of armed.values()) fire.shell.disarm();
      return;
    }
    const rows: NewRun[] = [];
    const plans: ({ due: Due; slot: Slot; marker: string; shell?: Armed } | null)[] = [];
    for (const m of decision.missed) {
      const why = this.handover.inheritedWhy(m.job.id);
      rows.push({
        job_id: m.job.id,
        scheduled_at: m.last,
        status: "missed",
        trigger: "schedule",
        node_id: this.nodeId,
        finished_at: now,
        note: `${m.more ? "more than " : ""}${m.count} fire${m.count === 1 ? "" : "s"} from ${
          new Date(m.first).toISOString()
        } to ${new Date(m.last).toISOString()} came later than misfire_grace_time (${
          m.policy.graceMs / 1000
        } s)${why ? `; ${why}` : ""}`,
      });
      plans.push(null);
    }
    const inTurn = this.runs.inTurn(decision.run);
    // A job's fires decided together (a catch-up without coalesce): the one that took its last slot.
    const tookSlot = new Map<string, number>();
    // Those queued behind it, by their rows.
    const behind: { index: number; due: Due; marker: string }[] = [];
    for (const due of inTurn) {
      const base = {
        job_id: due.job.id,
        scheduled_at: due.scheduledAt,
        trigger: "schedule" as const,
        node_id: this.nodeId,
      };
      const slot = this.slots.tryAcquire(due.job.id, due.policy.maxInstances);
      const took = tookSlot.get(due.job.id);
      if (!slot && took !== undefined) {
        // Its turn comes when a run of the catch-up ends.
        const marker = crypto.randomUUID();
        rows.push({
          ...base,
          status: "queued",
          note: `coalesce is off: it runs after the fire of ${
            new Date(took).toISOString()
          } ends (max_instances ${due.policy.maxInstances}), if within its grace then`,
          marker,
        });
        plans.push(null);
        behind.push({ index: rows.length - 1, due, marker });
        continue;
      }
      if (!slot) {
        rows.push({
          ...base,
          status: "skipped",
          finished_at: now,
          note: `max_instances (${due.policy.maxInstances}) runs were still running${
            this.handover.elsewhereNote(due.job.id)
          }`,
        });
        plans.push(null);
        continue;
      }
      tookSlot.set(due.job.id, due.scheduledAt);
      // Recorded with the claim, before the process exists: a service
      // killed right after the start leaves a run its successor can end.
      // A fire held after its claim's answer was lost is claimed again
      // with its marker: the row that claim may have written is its own.
      const lost = this.recorder.lostMarker(due.job.id, due.scheduledAt);
      const fire = lost === undefined ? this.shells.armedFor(armed, due) : null;
      const marker = lost ?? fire?.marker ?? crypto.randomUUID();
      rows.push({
        ...base,
        status: slot.working ? "running" : "queued",
        started_at: slot.working ? now : null,
        note: coalescedNote(due),
        marker,
      });
      plans.push({ due, slot, marker, shell: fire?.shell });
    }
    // Shells armed for fires that are not run here (skipped, another node's, a job changed).
    for (const fire of armed.values()) fire.shell.disarm();
    for (const row of rows) this.handover.decided(row.job_id);
    const ids = this.o.cluster.holds
      ? await this.recorder.claimOrHold(rows)
      : await this.recorder.claim(rows, {
        instant: true,
        startBy: plans.reduce(
          (first, plan) =>
            plan ? Math.min(first, plan.due.scheduledAt + plan.due.policy.graceMs) : first,
          Infinity,
        ),
      });
    if (ids === null) {
      // A missed row stands for its fires from the first: all are decided again.
      return this.hold(rows, plans, [
        ...decision.missed.map((m) => m.first),
        ...rows.slice(decision.missed.length).map((r) => r.scheduled_at),
      ]);
    }
    // Told and counted only where this node's row stands: another may have claimed the fire.
    decision.missed.forEach((m, i) => {
      const id = ids[i];
      if (id === null) return;
      this.o.notifier.runEnded(m.job, missedRun(id, rows[i], now));
      this.o.observer?.ended(m.job.id, "missed");
      schedulerLog.warn("job {job}: {count} fires missed", { job: m.job.id, count: m.count });
    });
    rows.forEach((row, i) => {
      if (row.status !== "skipped" || ids[i] === null) return;
      this.o.observer?.ended(row.job_id, "skipped");
      schedulerLog.info("job {job}: fire skipped, max_instances reached", { job: row.job_id });
    });
    // An id a run here still holds: jm_runs was emptied meanwhile (see `rowless`).
    rows.forEach((row, i) => {
      if (ids[i] !== null) this.runs.idTaken(ids[i]!, row.job_id);
    });
    for (const { index, due, marker } of behind) {
      if (ids[index] === null) continue;
      const queue = this.behind.get(due.job.id) ?? [];
      queue.push({ due, runId: ids[index]!, marker });
      this.behind.set(due.job.id, queue);
    }
    // Armed runs first: their starts are writes to pipes, and go in one post.
    const armedFirst = plans.map((plan, i) => [plan, i] as const).sort(([a], [b]) =>
      Number(b?.shell !== undefined) - Number(a?.shell !== undefined)
    );
    let lost = false;
    armedFirst.forEach(([plan, i]) => {
      if (!plan) return;
      const id = ids[i];
      if (id === null) {
        // Another node or an earlier life of this one claimed it.
        plan.slot.release();
        plan.shell?.disarm();
        lost = true;
      } else {
        this.track(this.aftermath.fired(plan.due.job, id, plan.due.scheduledAt));
        if (plan.slot.working) {
          this.startOnTime(
            plan.due,
            id,
            plan.slot,
            plan.marker,
            "the service was busy starting other runs",
            plan.shell,
          );
        } else {
          this.waiting.push({
            due: plan.due,
            runId: id,
            slot: plan.slot,
            marker: plan.marker,
            shell: plan.shell,
          });
        }
      }
    });
    this.o.sendStarts?.();
    // Runs may have ended while the claim was written: their workers are free now.
    this.startWaiting();
    // A job whose owner changed: the other node's run (if it started it) holds its slots
    // here before the next fire is decided.
    if (lost) await this.handover.holdRunsElsewhere().catch((error) => this.o.health.failed(error));
  }

  /**
   * The database did not answer the claim and this node holds: run
   * nothing, and put the fires back in the timetable (each row's from
   * `firstFires`), to be decided (late, or missed) once the database is back.
   */
  private hold(
    rows: NewRun[],
    plans: ({ slot: Slot; shell?: Armed } | null)[],
    firstFires: number[],
  ): void {
    for (const plan of plans) {
      plan?.slot.release();
      plan?.shell?.disarm();
    }
    rows.forEach((row, i) => this.timetable.rewind(row.job_id, firstFires[i] - 1));
    schedulerLog.warn(
      "the database did not answer; holding {count} fires until it does (cluster.on_database_outage)",
      { count: rows.length },
    );
  }

  /**
   * After a reload, the fires queued behind (see `behind`) go on as their
   * job now is (its command, max_instances, grace); those of a job removed,
   * disabled or made invalid are skipped.
   */
  private rebaseBehind(now: number): void {
    for (const [jobId, queue] of this.behind) {
      const job = this.timetable.job(jobId);
      const policy = this.timetable.policy(jobId);
      if (job !== undefined && policy !== undefined) {
        for (const b of queue) b.due = { ...b.due, job, policy };
        continue;
      }
      this.behind.delete(jobId);
      for (const { runId } of queue) {
        this.o.observer?.ended(jobId, "skipped");
        this.track(this.recorder.update(runId, {
          status: "skipped",
          finished_at: now,
          note: "its job was removed, disabled or made invalid before its turn",
        }));
      }
    }
  }

  /** The fire queued behind its job's earlier fire as run `runId`, no longer queued; else null. */
  private takeBehind(runId: number): Behind | null {
    for (const [jobId, queue] of this.behind) {
      const at = queue.findIndex((b) => b.runId === runId);
      if (at < 0) continue;
      const [taken] = queue.splice(at, 1);
      if (queue.length === 0) this.behind.delete(jobId);
      return taken;
    }
    return null;
  }

  /**
   * The fire of run `runId`, waiting for a worker or queued behind its
   * job's earlier fire, taken out so that it never starts; else undefined.
   */
  private cancelWaiting(runId: number): Due | undefined {
    const at = this.waiting.findIndex((w) => w.runId === runId);
    const waiting = at >= 0 ? this.waiting.splice(at, 1)[0] : undefined;
    waiting?.slot.release();
    waiting?.shell?.disarm();
    return waiting?.due ?? this.takeBehind(runId)?.due;
  }

  /** The first instant at which a fire waiting for a worker is past its grace. */
  private waitingPastGrace(now: number): number {
    let first = Infinity;
    for (const { due } of [...this.waiting, ...[...this.behind.values()].flat()]) {
      // The first whole millisecond at which `onTime` is false for it.
      first = Math.min(first, due.scheduledAt + due.policy.graceMs + 1);
    }
    // Never now or before: a fire the sweep kept (were the two rules ever
    // to disagree) would make the loop spin without a turn for anything else.
    return Math.max(first, now + 1);
  }

  /**
   * Fires that waited for a worker past their grace are missed now, not
   * when a worker frees, which long runs may not do for hours: their jobs'
   * slots (max_instances) and armed shells are free for the fires after
   * their grace, and the operator sees `missed`, not `queued`, as soon as
   * it is so. (A fire still within its grace at its job's next instant,
   * grace 1 s for an every-second job, holds the slot then: that fire is
   * `skipped`, the one after it is not.)
   */
  private missLateWaiting(now: number): void {
    for (const [jobId, queue] of this.behind) {
      const late = queue.filter(({ due }) => !onTime(due.scheduledAt, now, due.policy));
      if (late.length === 0) continue;
      const kept = queue.filter((b) => !late.includes(b));
      if (kept.length === 0) this.behind.delete(jobId);
      else this.behind.set(jobId, kept);
      for (const { due, runId } of late) {
        this.missedAtStart(
          due.job,
          due.scheduledAt,
          runId,
          null,
          `the fire before it still ran ${now - due.scheduledAt} ms after its fire time, past its ${
            due.policy.graceMs / 1000
          } s of grace (coalesce off: a job's late fires run one after another)`,
        );
      }
    }
    let kept = 0;
    for (const waiting of this.waiting) {
      const { due, runId, slot, shell } = waiting;
      if (onTime(due.scheduledAt, now, due.policy)) {
        this.waiting[kept++] = waiting;
        continue;
      }
      shell?.disarm();
      this.missedAtStart(
        due.job,
        due.scheduledAt,
        runId,
        slot,
        `still waiting for a free worker (max_workers ${this.o.maxWorkers}) ${
          now - due.scheduledAt
        } ms after its fire time, past its ${due.policy.graceMs / 1000} s of grace`,
      );
    }
    this.waiting.length = kept;
  }

  /** Give free workers to waiting fires, oldest first; too late ones are missed. */
  private startWaiting(): void {
    while (this.waiting.length > 0 && this.slots.workerFree && !this.stopping) {
      const { due, runId, slot, marker, shell } = this.waiting.shift()!;
      slot.work();
      this.startOnTime(
        due,
        runId,
        slot,
        marker,
        `it waited for a free worker (max_workers ${this.o.maxWorkers})`,
        shell,
      );
    }
    this.requests.workerFreed();
  }

  /**
   * Start a claimed fire holding a worker, unless it is too late by now:
   * grace is judged when the process would start, whatever held it (the
   * worker pool, a burst of other starts, a slow claim), and a fire that
   * would start later than its grace is `missed`, saying what held it.
   */
  private startOnTime(
    due: Due,
    runId: number,
    slot: Slot,
    marker: string,
    heldBy: string,
    shell?: Armed,
  ): void {
    const { job, scheduledAt, policy } = due;
    const now = this.o.clock.now();
    if (onTime(scheduledAt, now, policy)) {
      this.runs.launch(
        job,
        runId,
        scheduledAt,
        coalescedNote(due),
        slot,
        marker,
        { at: scheduledAt + policy.graceMs, graceMs: policy.graceMs },
        undefined,
        shell,
      );
      return;
    }
    shell?.disarm();
    this.missedAtStart(
      job,
      scheduledAt,
      runId,
      slot,
      lateNote(scheduledAt, now, policy.graceMs, heldBy),
    );
  }

  /** A claimed fire that would have started later than its grace: recorded `missed`, saying what held it. */
  private missedAtStart(
    job: Job,
    scheduledAt: number,
    runId: number,
    slot: Slot | null,
    note: string,
  ): void {
    const now = this.o.clock.now();
    slot?.release();
    this.o.observer?.ended(job.id, "missed");
    const missed = { status: "missed" as const, started_at: null, finished_at: now, note };
    this.track(this.recorder.update(runId, missed));
    this.o.notifier.runEnded(
      job,
      missedRun(runId, {
        job_id: job.id,
        scheduled_at: scheduledAt,
        node_id: this.nodeId,
        trigger: "schedule",
        ...missed,
      }, now),
    );
  }

  /**
   * A slot of `jobId` may be free: the first of its fires queued behind
   * (see `behind`) takes it and starts, or waits for a worker behind the
   * fires already waiting (other jobs' turns come first); one past its
   * grace by now is missed, and the next is tried.
   */
  private startBehind(jobId: string): void {
    const queue = this.behind.get(jobId);
    if (queue === undefined || this.stopping) return;
    const max = queue[0].due.policy.maxInstances;
    const slot = this.slots.tryAcquire(jobId, max, this.waiting.length === 0);
    // Another run holds it: its end comes back here.
    if (!slot) return;
    const { due, runId, marker } = queue.shift()!;
    if (queue.length === 0) this.behind.delete(jobId);
    this.track(this.aftermath.fired(due.job, runId, due.scheduledAt));
    if (slot.working) {
      this.startOnTime(due, runId, slot, marker, "it waited for the fire before it to end");
    } else {
      this.waiting.push({ due, runId, slot, marker });
    }
  }

  /** Whether a loaded job has an alert_after: only then does the notifier look for silence. */
  get silenceWatched(): boolean {
    return this.alertAfter;
  }

  /**
   * The enabled, valid jobs as loaded, and who follows whom among them;
   * `idle`: disabled jobs that follow one, whose turns are recorded skipped.
   */
  private know(known: Map<string, Job>, idle: Job[]): void {
    this.known = known;
    this.aftermath.know(known, idle);
    this.alertAfter = [...known.values()].some((job) => job.alert_after !== null);
  }

  /**
   * Runs this node marked `lost` (declaring their node dead, or left by its
   * own previous service that died): retried, followed, as any end.
   */
  private async lost(ids: number[]): Promise<void> {
    // A node is declared dead as this one registers, before its jobs are loaded.
    await this.loaded.promise;
    for (const id of ids) {
      const run = await this.o.store.getRun(id);
      const job = run && this.known.get(run.job_id);
      if (!run || !job) continue;
      await this.aftermath.ended(job, {
        id,
        status: run.status,
        finishedAt: run.finished_at ?? this.o.clock.now(),
        attempt: run.attempt,
        firstRunId: run.first_run_id,
        scheduledAt: run.scheduled_at,
      });
    }
  }

  private track(write: Promise<unknown>): void {
    const tracked = write.catch((error) => {
      schedulerLog.error("could not write a run record: {error}", { error: String(error) });
    }).finally(() => this.writes.delete(tracked));
    this.writes.add(tracked);
  }

  private async shutdown(deadline: Deadline): Promise<void> {
    schedulerLog.info("stopping: {running} runs running, waiting up to {seconds} s for them", {
      running: this.runs.size,
      seconds: this.o.shutdownTimeoutMs / 1000,
    });
    const now = this.o.clock.now();
    this.shells.disarm();
    for (const { due, runId, slot, shell } of this.waiting.splice(0)) {
      slot.release();
      shell?.disarm();
      this.o.observer?.ended(due.job.id, "interrupted");
      this.track(this.recorder.update(runId, {
        status: "interrupted",
        finished_at: now,
        note: "the service stopped before a worker was free",
      }));
    }
    for (const { due, runId } of [...this.behind.values()].flat()) {
      this.o.observer?.ended(due.job.id, "interrupted");
      this.track(this.recorder.update(runId, {
        status: "interrupted",
        finished_at: now,
        note: "the service stopped before the fire before it ended",
      }));
    }
    this.behind.clear();
    await this.runs.stop(deadline);
    // Run records go through the recorder, which buffers what the database
    // refuses; only a database that does not answer at all holds these up.
    await deadline.wait(Promise.all([this.reloads.underWay, ...this.writes]));
    // Records the database keeps refusing are tried till then, not to the end of the stop: the
    // node's stop mark comes after (`job run --wait` and the other nodes go by it).
    await this.recorder.close(Math.max(0, deadline.left - LAST_STEPS_MS));
    schedulerLog.info("stopped");
  }
}
