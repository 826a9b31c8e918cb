/**
 * The running service: its loop fires the timetable on time, arms shells
 * ahead, polls, and shuts down by a deadline; each part it wires is a
 * module of its own: firing.ts (claiming an instant's fires),
 * waiting_fires.ts (claimed fires not started yet), active_runs.ts (runs
 * started, to their records), shell_arming.ts, reload.ts (jobs and
 * markers), poll_timing.ts (when to poll), run_requests.ts (queued runs
 * and cancels), handover.ts (jobs and runs between nodes), orphans.ts (a
 * dead predecessor's runs) and aftermath.ts (retries and follow-ups).
 * Decisions come from the pure timetable and the slot gate.
 */
import type { Job } from "../domain/job.ts";
import { log } from "./log.ts";
import type { RowKey, RunStatus, RunTrigger } from "../domain/run.ts";
import type { Node } from "../domain/node.ts";
import type { JobStore, MarkerStore, RunStore } from "../store/store.ts";
import { markedLost } from "../store/lost_ends.ts";
import { type Clock, type Deadline, PRECISE_TAIL_MS, settlesWithin } from "./clock.ts";
import type { Cluster } from "./cluster.ts";
import type { DbHealth } from "./db_health.ts";
import type { RunRecorder } from "./recorder.ts";
import type { RunGuard } from "./run_guard.ts";
import type { ArmRun, StartRun } from "./runner.ts";
import type { Notifier, NotifyObserver } from "./notifier.ts";
import { ActiveRuns } from "./active_runs.ts";
import { Aftermath } from "./aftermath.ts";
import { Firing } from "./firing.ts";
import { Handover } from "./handover.ts";
import { endOrphanProcesses, markOrphans } from "./orphans.ts";
import { PollTiming } from "./poll_timing.ts";
import { Reload } from "./reload.ts";
import { RunRequests } from "./run_requests.ts";
import { ShellArming } from "./shell_arming.ts";
import { SlotGate } from "./slots.ts";
import { WaitingFires } from "./waiting_fires.ts";
import { type JobDefaults, Timetable } from "./timetable.ts";

/**
 * Told of each run as it starts and as it gets its final status (a fire
 * skipped or missed included): what `/metrics` counts. Called on the
 * scheduler's path, so it must return at once.
 */
export interface RunObserver extends NotifyObserver {
  /** A run's command started `lagMs` after its scheduled instant (for `manual`: after it was asked). */
  started(jobId: string, lagMs: number, trigger: RunTrigger): void;
  /** The timetable's next fire is now at `at` (ms; Infinity: none), before any start it brings. */
  upcoming?(at: number): void;
  /** A run's row was written final; `fires`: how many fires a `missed` row stands for (else 1). */
  ended(jobId: string, status: RunStatus, fires?: number): void;
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
  /**
   * The HTTP side's clients (http.max_connections, where it listens), which `fileRoom` sets
   * aside, and the room without them: the start's warning says both; none: no HTTP side.
   */
  httpClients?: { count: number; fileRoom: () => number };
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
 * A loop that wakes this late was held (SIGSTOP, a suspended VM): it
 * applies the changes written meanwhile (a job disabled, removed or
 * changed) before the fires it left due, as it does when the database
 * comes back. It waits at most CHANGES_WAIT_MS for them: a database that
 * does not answer holds the fires no longer than that.
 */
const LATE_WAKE_MS = 1000;
const CHANGES_WAIT_MS = 500;
/**
 * How long an instant's fires wait for a change reported before them and
 * not polled for yet (poll_timing.ts `changesWaiting`): a database that
 * answers applies one in a few ms (one indexed query, and a reload of the
 * changed jobs). One that does not answer holds the fires no longer than
 * this, and they run as the jobs were: its claim then still waits for the
 * database at least 100 ms (recorder.ts MIN_CLAIM_WAIT_MS), so that a fire
 * of the smallest grace (0.25 s) still starts within it.
 */
const CHANGES_BEFORE_FIRE_MS = 100;
/** Descriptors a run holds: its output's two pipes and its process (its stdin is closed). */
const FILES_PER_RUN = 3;
/** While holding through an outage, how often to look whether the database is back. */
const HELD_RECHECK_MS = 1000;
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

const schedulerLog = log("scheduler");

export class Service {
  private readonly timetable: Timetable;
  private readonly slots: SlotGate;
  private readonly aftermath: Aftermath;
  private readonly runs: ActiveRuns;
  private readonly shells: ShellArming;
  private readonly polls: PollTiming;
  private readonly reloads: Reload;
  private readonly handover: Handover;
  private readonly requests: RunRequests;
  private readonly fires: WaitingFires;
  private readonly firing: Firing;
  /** Writes of finished runs still in flight; shutdown waits for them. */
  private readonly writes = new Set<Promise<unknown>>();
  private stopping = false;
  private deadline: Deadline | null = null;
  /** Set by `stop`: the runs are interrupted at once, not given shutdown_timeout. */
  private interruptNow = false;
  private wake = new AbortController();
  private polling = false;
  private pollAgain = false;
  /** The next fire the observer was told of. */
  private toldUpcoming = NaN;
  private readonly recorder: RunRecorder;
  /** Every enabled, valid job, scheduled or not: whose runs retry, and which follow which. */
  private known = new Map<string, Job>();
  /** Whether a job in `known` has an alert_after. */
  private alertAfter = false;
  /** When the loop's last sleep was to end (Infinity before the first). */
  private plannedWake = Infinity;
  /** The time the loop last read. */
  private lastRead = -Infinity;
  /** The dispatch of due fires under way, if any. */
  private dispatching: Promise<void> | undefined;
  /** Resolved once `start` has loaded the jobs: runs lost before then wait for it. */
  private readonly loaded = Promise.withResolvers<void>();
  /** The apply of reported changes before a fire under way (`applyReported`), if any. */
  private applyingReported: Promise<void> | null = null;

  constructor(private readonly o: ServiceOptions) {
    this.timetable = new Timetable(o.defaults);
    // A slot given back, whichever way, is the turn of a fire queued behind.
    this.slots = new SlotGate(o.maxWorkers, (jobId) => this.fires.startBehind(jobId));
    this.recorder = o.recorder;
    this.polls = new PollTiming({
      clock: o.clock,
      store: o.store,
      reloadIntervalMs: o.reloadIntervalMs,
      online: () => o.health.online,
      stopping: () => this.stopping,
      awaitingRecords: () => this.aftermath.awaitingRecords,
      wake: () => this.wake.abort(),
    });
    this.aftermath = new Aftermath({
      store: o.store,
      clock: o.clock,
      recorder: o.recorder,
      nodeId: () => this.nodeId,
      observer: o.observer,
      dueAt: (instant) => this.requests.dueAt(instant),
      idTaken: (runId, jobId, row) => this.runs.idTaken(runId, jobId, row),
      recordAwaited: () => this.polls.recordAwaited(),
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
      startWaiting: () => this.fires.startWaiting(),
      missedAtStart: (job, scheduledAt, runId, slot, note) =>
        this.fires.missedAtStart(job, scheduledAt, runId, slot, note),
      current: (jobId) => this.known.get(jobId),
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
      waiting: () => this.fires.waitingForWorker,
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
      reloaded: (inTable, now, marker) => {
        o.cluster.setJobs(inTable, this.scheduled, marker);
        this.fires.rebase(now);
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
      cancelRunning: (runId, note, followed) => this.runs.cancelRunning(runId, note, followed),
      runsHere: (runId) => this.runs.runsHere(runId),
      cancelWaiting: (runId) => this.fires.cancelWaiting(runId),
      wake: () => this.wake.abort(),
      pollSoon: () => this.polls.soon(),
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
      resumeAfterFire: (id, last, appliesFrom, now) =>
        this.reloads.resumeAfterFire(id, last, appliesFrom, now),
      sayAhead: (ahead, now) => this.reloads.sayAhead(ahead, now),
      wake: () => this.wake.abort(),
    });
    this.fires = new WaitingFires({
      clock: o.clock,
      slots: this.slots,
      timetable: this.timetable,
      maxWorkers: o.maxWorkers,
      recorder: o.recorder,
      notifier: o.notifier,
      observer: o.observer,
      aftermath: this.aftermath,
      runs: this.runs,
      nodeId: () => this.nodeId,
      stopping: () => this.stopping,
      track: (write) => this.track(write),
      workerFreed: () => this.requests.workerFreed(),
    });
    this.firing = new Firing({
      recorder: o.recorder,
      cluster: o.cluster,
      health: o.health,
      slots: this.slots,
      timetable: this.timetable,
      notifier: o.notifier,
      observer: o.observer,
      aftermath: this.aftermath,
      handover: this.handover,
      shells: this.shells,
      runs: this.runs,
      fires: this.fires,
      nodeId: () => this.nodeId,
      track: (write) => this.track(write),
      sendStarts: o.sendStarts,
    });
    o.cluster.whenGaining((gained) => this.handover.gain(gained));
    o.cluster.whenLost((ids) => this.track(this.lost(ids)));
    // The fires still waiting here were `queued` rows, marked lost as well.
    o.cluster.whenDeclaredDead(() => {
      const held = [...this.runs.rowIds, ...this.fires.rowIds];
      this.requests.declaredDead(held);
      this.track(this.lostElsewhere(held));
    });
    // Writes made while the database was away were polled for by no one
    // (a watched service's next timed poll is 5 s off): poll once it is back.
    o.health.onBack(() => this.polls.recovered());
  }

  private get nodeId(): string {
    return this.o.cluster.nodeId;
  }

  /** The database gave `runId` to a row of `jobId` the recorder wrote (ActiveRuns.idTaken). */
  idTaken(runId: number, jobId: string, row?: RowKey): void {
    this.runs.idTaken(runId, jobId, row);
  }

  /** What the heartbeat reports. */
  get state(): ServiceState {
    return {
      jobsLoaded: this.timetable.size,
      running: this.runs.size,
      queued: this.fires.queued,
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
    await endOrphanProcesses(this.o.store, this.nodeId, this.o.killGraceMs);
    const now = this.o.clock.now();
    const { orphans, outcome } = await markOrphans(this.o.store, this.nodeId, now, previous);
    const { jobs, latest } = await this.reloads.load(now);
    await this.handover.holdRunsElsewhere();
    this.loaded.resolve();
    if (outcome === "lost" && orphans.length > 0) {
      this.track(this.lost(orphans));
      this.o.notifier.lostRuns(this.nodeId, now, orphans);
    } else if (orphans.length > 0) {
      this.track(this.counted(orphans));
    }
    this.o.cluster.setJobs(jobs.map((job) => job.id), this.scheduled, latest);
    await this.reloads.appliedUpTo(latest);
    schedulerLog.info("loaded {jobs} enabled jobs of {total}; last marker {marker}", {
      jobs: this.timetable.size,
      total: jobs.length,
      marker: latest,
    });
    const crowded = Math.floor((this.o.fileRoom?.() ?? Infinity) / FILES_PER_RUN);
    const clients = this.o.httpClients;
    if (crowded < this.o.maxWorkers && clients === undefined) {
      const room = crowded;
      schedulerLog.warn(
        'the open-file limit leaves room for about {room} runs at once, fewer than max_workers ({max}): runs beyond may fail with "Too many open files"; raise the limit (LimitNOFILE= in the systemd unit, ulimit -n) or lower jobsmanager.max_workers',
        { room, max: this.o.maxWorkers },
      );
    } else if (crowded < this.o.maxWorkers && clients !== undefined) {
      const room = Math.floor(clients.fileRoom() / FILES_PER_RUN);
      schedulerLog.warn(
        'the open-file limit leaves room for about {crowded} runs at once while {clients} HTTP clients are connected (http.max_connections; {room} while none are), fewer than max_workers ({max}): runs beyond may fail with "Too many open files"; raise the limit (LimitNOFILE= in the systemd unit, ulimit -n), or lower jobsmanager.max_workers or http.max_connections',
        { crowded, clients: clients.count, room, max: this.o.maxWorkers },
      );
    }
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
      if (late || this.polls.backOnline) {
        await settlesWithin(this.o.clock, this.reloads.applyChanges(), CHANGES_WAIT_MS);
        if (this.stopping) break;
      } else if (
        this.polls.reportedSince && !this.applyingReported &&
        (this.timetable.nextDue() ?? Infinity) <= read
      ) {
        // A write reported before this instant that no poll has applied yet (a `job disable`
        // that returned a moment ago) applies to its fires too. One the database has not
        // answered by then (it hung) does not hold the next instants' fires.
        const applying = this.applyReported();
        this.applyingReported = applying.finally(() => this.applyingReported = null);
        await settlesWithin(this.o.clock, applying, CHANGES_BEFORE_FIRE_MS);
        if (this.stopping) break;
      }
      const now = this.o.clock.now();
      this.fires.missLateWaiting(now);
      // Holding through an outage: the fires stay in the timetable, decided when it returns.
      const held = !this.o.health.online && this.o.cluster.holds;
      const decision = held ? { run: [], missed: [] } : this.timetable.takeDue(now);
      if (decision.run.length > 0 || decision.missed.length > 0) {
        this.shells.fired(now);
        this.dispatching = this.firing.dispatch(decision, now);
        await this.dispatching;
        this.dispatching = undefined;
      }
      const runDue = this.requests.takeDueInstants(now);
      if (this.polls.due(now, runDue)) this.poll();
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
        this.fires.waitingPastGrace(now),
        this.polls.next,
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
   * Apply the changes reported and not polled for yet (poll_timing.ts
   * `changesWaiting`), as a poll does, and nothing else a poll does (see
   * reload.ts `applyChanges`). Never rejects.
   */
  private async applyReported(): Promise<void> {
    try {
      if (this.stopping || !this.o.health.online || !await this.polls.changesWaiting()) return;
      const begun = this.o.clock.now();
      const asked = this.reloads.appliedMarker;
      const state = await this.o.store.pollState(this.nodeId, asked);
      await this.reloads.reloadIfMarked(state, asked);
      if (this.reloads.appliedMarker >= state.latestMarker) this.polls.applied(begun);
    } catch (error) {
      this.o.health.failed(error);
    }
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
    this.polls.clockWentBack(now);
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
    this.polls.watched(reported);
  }

  /**
   * The database was written, by anyone (a `job add`, the API, this
   * service): it is looked for, and polled for when another wrote it
   * (poll_timing.ts `changed`).
   */
  changed(): void {
    this.polls.changed();
  }

  /**
   * Begin a graceful stop: no new fires; running jobs get shutdown_timeout
   * (none with `interruptNow`), and the whole shutdown ends by `deadline`.
   * Later calls change nothing.
   */
  stop(deadline: Deadline, interruptNow = false): void {
    if (this.stopping) return;
    this.deadline = deadline;
    this.interruptNow = interruptNow;
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
        const begun = this.o.clock.now();
        const asked = this.reloads.appliedMarker;
        const state = await this.o.store.pollState(this.nodeId, asked);
        this.o.health.readsTaken();
        await this.reloads.reloadIfMarked(state, asked);
        // A failed reload leaves its markers: the fires before the next poll ask again.
        if (this.reloads.appliedMarker >= state.latestMarker) this.polls.applied(begun);
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
        if (state.cancelRequests || this.requests.asksLost) {
          await this.requests.takeCancelRequests();
        }
        if (this.aftermath.awaitingRecords) await this.aftermath.followRecordedEnds();
        if (this.aftermath.owesDrops) await this.aftermath.settleDrops();
      } while (this.pollAgain && !this.stopping);
    })().catch((error) => this.o.health.failed(error)).finally(() => this.polling = false);
  }

  /** Whether `jobId` is in the timetable (enabled, valid, with a schedule). */
  private readonly scheduled = (jobId: string) => this.timetable.job(jobId) !== undefined;

  /** The ids of the enabled, valid jobs as loaded that run as another user, sorted. */
  get jobsWithUser(): string[] {
    return [...this.known.values()].filter((job) => job.user !== null).map((job) => job.id).sort();
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
   * own previous service that died): counted, retried, followed, as any end.
   */
  private async lost(ids: number[]): Promise<void> {
    // A node is declared dead as this one registers, before its jobs are loaded.
    await this.loaded.promise;
    for (const id of ids) {
      const run = await this.o.store.getRun(id);
      // Its node, back, wrote its end over `lost` meanwhile. One whose note does not start with
      // the lost note was written as by an earlier version, which followed it (atk222: a second
      // follow-up, a second retry): left to it. One that does was written by a node that follows
      // nothing it finds marked lost (lost_ends.ts): followed here, or by no one.
      // A cancel its node wrote over `lost` keeps its own note: a row this node marked lost reads
      // `cancelled` only so (no other write lands on a row marked lost), and its node followed
      // nothing (the attempt before a cancelled retry: atk226's risk).
      const cancelledOver = run?.status === "cancelled" && run.cancel_requested_at !== null;
      if (!run || !(markedLost(run) || cancelledOver)) continue;
      // Counted by the node that wrote them lost, as every node counts the rows it ends: one
      // its node ended is counted there.
      if (run.status === "lost") this.o.observer?.ended(run.job_id, run.status);
      // Disabled since it started, it is followed as its node follows an end of such a job (its
      // retry queued, and skipped when due, saying why; its follow-ups start): only enabled jobs
      // are loaded, and its node follows nothing it finds marked lost (atk226: none followed it).
      const job = this.known.get(run.job_id) ?? await this.o.store.getJob(run.job_id);
      if (!job) {
        schedulerLog.warn(
          "job {job} run {run}: lost, and its job was removed since: not retried, nothing follows it",
          { job: run.job_id, run: id },
        );
        continue;
      }
      // Its cancel was asked before it was lost: it was to end, as a cancelled run. It is not
      // retried, and nothing follows it; a retry's attempts end in failure with the one before it,
      // whose follow-ups start here (a node declared dead that runs again, and records the run
      // `cancelled`, leaves them to this one).
      if (run.cancel_requested_at !== null) {
        const retry = run.trigger === "retry";
        schedulerLog.info(
          `job {job} run {run}: lost, after {by} asked at {at} to cancel it: not retried${
            retry ? "; the follow-ups of the attempt before it start" : ", nothing follows it"
          }`,
          {
            job: job.id,
            run: id,
            by: run.cancel_requested_by,
            at: new Date(run.cancel_requested_at).toISOString(),
          },
        );
        if (retry) await this.aftermath.followAttemptBefore(job, run);
        continue;
      }
      await this.aftermath.ended(job, {
        id,
        // As marked: how its node ended it since is not what was decided here.
        status: "lost",
        finishedAt: run.finished_at ?? this.o.clock.now(),
        attempt: run.attempt,
        firstRunId: run.first_run_id,
        scheduledAt: run.scheduled_at,
      });
    }
  }

  /**
   * The runs and waiting fires held here whose rows the node that declared
   * this one dead marked `lost`, and followed there (retried, follow-ups
   * queued): a run goes on, nothing following its end here; a fire waiting
   * for a worker never starts (atk223: it ran beside its retry). A waiting
   * fire whose cancel was asked is left to the cancel look, which records
   * it `cancelled`.
   */
  private async lostElsewhere(held: number[]): Promise<void> {
    for (const run of await this.o.store.lostOf(this.nodeId, held)) {
      const here = [run.id, this.recorder.knownAs(run.id)].filter((id) => id !== undefined);
      if (here.some((id) => this.runs.lostElsewhere(id, run.id))) continue;
      if (run.cancel_requested_at !== null) continue;
      const due = here.map((id) => this.fires.cancelWaiting(id)).find((d) => d !== undefined);
      if (due === undefined) continue;
      schedulerLog.info(
        "job {job} run {run}: it waited here for a worker, and was marked lost by the node that declared this one dead, which retried it where its job says so; it does not start here",
        { job: due.job.id, run: run.id },
      );
    }
  }

  /** Runs a cleanly stopped service left, ended `interrupted` here: counted, as every end. */
  private async counted(ids: number[]): Promise<void> {
    for (const id of ids) {
      const run = await this.o.store.getRun(id);
      if (run) this.o.observer?.ended(run.job_id, run.status);
    }
  }

  private track(write: Promise<unknown>): void {
    const tracked = write.catch((error) => {
      schedulerLog.error("could not write a run record: {error}", { error: String(error) });
    }).finally(() => this.writes.delete(tracked));
    this.writes.add(tracked);
  }

  private async shutdown(deadline: Deadline): Promise<void> {
    if (this.interruptNow) {
      schedulerLog.info("stopping: {running} runs running, interrupted now", {
        running: this.runs.size,
      });
    } else {
      schedulerLog.info("stopping: {running} runs running, waiting up to {seconds} s for them", {
        running: this.runs.size,
        seconds: this.o.shutdownTimeoutMs / 1000,
      });
    }
    const now = this.o.clock.now();
    this.shells.disarm();
    this.fires.interruptAll(now);
    await this.runs.stop(deadline, this.interruptNow ? 0 : this.o.shutdownTimeoutMs);
    // Run records go through the recorder, which buffers what the database
    // refuses; only a database that does not answer at all holds these up.
    await deadline.wait(Promise.all([this.reloads.underWay, ...this.writes]));
    // Records the database keeps refusing are tried till then, not to the end of the stop: the
    // node's stop mark comes after (`job run --wait` and the other nodes go by it).
    await this.recorder.close(Math.max(0, deadline.left - LAST_STEPS_MS));
    schedulerLog.info("stopped");
  }
}
