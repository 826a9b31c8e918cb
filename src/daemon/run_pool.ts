/**
 * A service's runs, handed to lanes (run_lane.ts) that spawn, capture and
 * reap them and say when each started and how it ended. A lane judges the
 * fire's grace when it gets to the run, so a run queued behind a burst is
 * not started late: it is reported late, and the service records it
 * missed.
 *
 * The first LOCAL_RUNS runs at a time go to a lane in the scheduler's own
 * thread; more go to worker threads (run_worker.ts). Starting a process
 * holds the thread that does it for a millisecond or two (the vfork waits
 * for setsid's exec, longer while hundreds of children compete for the
 * CPU): a burst of 500 started from the scheduler's thread held its event
 * loop for a second or more, and with it the claims, the records and the
 * ends of the runs that started first. A worker thread costs 14–25 MiB and
 * a post each way per turn, which up to a hundred runs at a time do not
 * repay (peak RSS, 10 every-second jobs: 91–95 → 78–84 MiB; 100: 110–112
 * → 91–96 MiB). The local lane starts runs for LOCAL_TURN_MS of a turn
 * of the event loop (at least one a turn, however long a spawn takes), so
 * a burst's claims and records go on between its turns; the writes that
 * release an instant's armed shells are made in one turn, after the worker
 * threads got theirs. (With 8 starts a turn and no time bound, 128 runs
 * here held the thread while a burst was armed: on a slow
 * machine a burst of 500 on MySQL had every fire missed, its claim
 * unanswered within a second.)
 */
import { errorMessage } from "../errors.ts";
import { log } from "./log.ts";
import { Outbox } from "./outbox.ts";
import { signalGroup } from "./processes.ts";
import {
  type Armed,
  type ArmRun,
  type Late,
  type Launch,
  type LaunchOptions,
  type LaunchSpec,
  type RunResult,
  type Started,
  type StartRun,
  unwatched,
} from "./runner.ts";
import { type FromRunLane, RunLane, type ToRunLane } from "./run_lane.ts";
import type { FromRunWorker } from "./run_worker.ts";

/**
 * Threads that start runs, at most. On two cores one is best: a second
 * competes with the children it starts (bench cost/firing at 100 fires/s:
 * p99 lag 283 vs 316 ms, CPU 15.8 vs 19.5 %, RSS 196 vs 239 MiB). With more
 * cores, a second starts while a burst queues runs in the first.
 */
const THREADS = navigator.hardwareConcurrency > 2 ? 2 : 1;
/** Runs at a time (armed, or not yet ended) in the scheduler's own thread; more go to worker threads. */
const LOCAL_RUNS = 128;
/** How long the local lane starts runs in a turn of the scheduler's event loop (one at least). */
const LOCAL_TURN_MS = 4;
/** Runs waiting in every thread's queue that start one more thread. */
const MORE_AT = 4;
/** A thread with no run for this long ends: a service whose jobs fire rarely keeps none between fires. */
const IDLE_MS = 60_000;

interface Pending {
  thread: Thread;
  now: () => number;
  /** When it was handed out, on `now`: it cannot have started before. */
  launchedAt: number;
  /** When it started, on `now`. */
  startedAt: number;
  /** Its process group once started; undefined before. */
  pid: number | null | undefined;
  /** Its end and what left its group (either may come first): heard once both are. */
  ended: boolean;
  escapedHeard: boolean;
  started: PromiseWithResolvers<Started | Late>;
  done: PromiseWithResolvers<RunResult>;
  escaped: PromiseWithResolvers<string | null>;
}

interface Thread {
  /** Ends the lane: its shells exit, its runs are no longer watched. */
  end(): void;
  outbox: Outbox<ToRunLane>;
  /** Runs posted to it and not started yet: the next run goes to the shortest queue. */
  queued: number;
  runs: Set<number>;
  /** Runs posted to it whose end was not heard yet (what left their groups may be looked for after). */
  live: number;
  /** Shells armed in it, not released or disarmed yet. */
  armed: number;
  /** Set while it has no run: ends it after IDLE_MS. */
  idle?: ReturnType<typeof setTimeout>;
}

/** A shell armed in one of the pool's threads: released by one launch, or disarmed. */
class PooledShell implements Armed {
  private used = false;

  constructor(
    readonly thread: Thread,
    readonly id: number,
    private readonly dropped: () => void,
  ) {}

  /** Whether it is still armed; it no longer is. */
  take(): boolean {
    const armed = !this.used;
    if (armed) this.thread.armed--;
    this.used = true;
    return armed;
  }

  disarm(): void {
    if (this.take()) this.dropped();
  }
}

export class RunPool {
  /** The lane in the scheduler's thread; null with `localRuns` 0. */
  private local: Thread | null;
  private readonly localRuns: number;
  private readonly threads: (Thread | null)[];
  private readonly runs = new Map<number, Pending>();
  private nextId = 0;
  /** Whether a thread that could not be made was logged, since one last was. */
  private noThreadSaid = false;

  constructor(
    private readonly o: {
      /** The environment every run starts from (secrets already removed). */
      baseEnv?: Record<string, string>;
      /** Worker threads at most. */
      threads?: number;
      /** Runs at a time in the scheduler's thread (0: every run goes to a worker thread). */
      localRuns?: number;
      idleMs?: number;
      /** The module a worker thread runs: run_worker.ts, or a test's that plants a bug in it. */
      worker?: URL;
    } = {},
  ) {
    this.threads = Array.from({ length: o.threads ?? THREADS }, () => null);
    this.localRuns = o.localRuns ?? LOCAL_RUNS;
    this.local = this.localRuns > 0 ? this.localLane() : null;
  }

  /** Worker threads running now. */
  get running(): number {
    return this.threads.filter((t) => t !== null).length;
  }

  /** Arm a run's shell in a thread (runner.ts `armRun`), for a `launch` to release. */
  readonly arm: ArmRun = (spec: LaunchSpec): Armed => {
    const id = this.nextId++;
    const thread = this.thread();
    clearTimeout(thread.idle);
    thread.armed++;
    this.post(thread, { type: "arm", id, spec });
    return new PooledShell(thread, id, () => {
      this.post(thread, { type: "disarm", id });
      if (thread.runs.size === 0) this.idleOut(thread);
    });
  };

  /** Hand a run to a thread (to the shell armed for it, if any); see Launch. */
  readonly launch: StartRun = (spec: LaunchSpec, o: LaunchOptions): Launch => {
    const id = this.nextId++;
    // A shell armed in a thread that failed since is gone with it.
    const shell = o.armed instanceof PooledShell && o.armed.take() &&
        (o.armed.thread === this.local || this.threads.includes(o.armed.thread))
      ? o.armed
      : null;
    const thread = shell?.thread ?? this.thread();
    const run: Pending = {
      thread,
      now: o.now,
      launchedAt: o.now(),
      startedAt: 0,
      pid: undefined,
      ended: false,
      escapedHeard: false,
      started: Promise.withResolvers(),
      done: Promise.withResolvers(),
      escaped: Promise.withResolvers(),
    };
    this.runs.set(id, run);
    thread.runs.add(id);
    thread.queued++;
    thread.live++;
    clearTimeout(thread.idle);
    // The thread's clock is Date.now(); the service's may differ (a test's, or set apart).
    const startBy = o.startBy === Infinity ? Infinity : o.startBy - (o.now() - Date.now());
    thread.outbox.push({ type: "start", id, spec, startBy, armed: shell?.id }, shell !== null);
    return {
      started: run.started.promise,
      done: run.done.promise,
      escaped: run.escaped.promise,
      interrupt: () => this.post(thread, { type: "interrupt", id }),
    };
  };

  /**
   * Send what was handed out now, not at the next turn of the event loop:
   * the worker threads' first, then the scheduler's thread's lane starts
   * its share.
   */
  readonly flush = (): void => {
    for (const thread of this.threads) thread?.outbox.flush();
    this.local?.outbox.flush();
  };

  /** Stop the lanes: runs still going are no longer watched (the service has ended them). */
  close(): void {
    this.local?.end();
    for (const thread of this.threads) {
      if (thread) this.end(thread);
    }
  }

  private end(thread: Thread): void {
    clearTimeout(thread.idle);
    thread.end();
    const index = this.threads.indexOf(thread);
    if (index >= 0) this.threads[index] = null;
  }

  private post(thread: Thread, message: ToRunLane): void {
    thread.outbox.push(message);
  }

  /**
   * The local lane while it has fewer than `localRuns` runs; else the
   * running thread with the shortest queue; another is started while every
   * queue is at least MORE_AT long (a burst), up to the pool's size.
   */
  private thread(): Thread {
    const local = this.local;
    if (local && local.live + local.armed < this.localRuns) return local;
    let best: Thread | null = null;
    for (const thread of this.threads) {
      if (thread !== null && (best === null || thread.queued < best.queued)) best = thread;
    }
    const free = this.threads.indexOf(null);
    if (free < 0 || (best !== null && best.queued < MORE_AT)) return best!;
    try {
      const thread = this.spawn(free);
      this.noThreadSaid = false;
      return thread;
    } catch (e) {
      // No thread could be made (EAGAIN: the service's process limit,
      // which a job's processes can fill): the run goes to one running.
      const instead = best ?? local;
      if (instead === null) throw e;
      if (!this.noThreadSaid) {
        this.noThreadSaid = true;
        log("runner").warn(
          "no runner thread could be started ({why}): runs go to the threads running meanwhile; the service's user or cgroup is at its process limit (ulimit -u, LimitNPROC=, pids.max, TasksMax= in the systemd unit), held perhaps by a job's processes",
          { why: errorMessage(e) },
        );
      }
      return instead;
    }
  }

  private localLane(): Thread {
    // A bug in the lane fails its runs as a worker thread's would, not the service.
    const failed = (e: unknown) => this.failed(thread, errorMessage(e));
    const lane = new RunLane(
      (batch) => {
        for (const message of batch) this.heard(thread, message);
      },
      failed,
      LOCAL_TURN_MS,
    );
    const thread: Thread = {
      end: () => lane.close(),
      outbox: new Outbox((batch) => {
        // The worker threads get what is theirs first: the releases of an
        // instant's armed runs here hold this thread for hundreds of ms on
        // a busy machine, and theirs would wait behind them, missed.
        for (const other of this.threads) other?.outbox.flush();
        try {
          lane.receive(batch);
        } catch (e) {
          failed(e);
        }
      }),
      queued: 0,
      live: 0,
      armed: 0,
      runs: new Set(),
    };
    this.post(thread, { type: "base", env: this.o.baseEnv ?? {} });
    return thread;
  }

  private spawn(index: number): Thread {
    const module = this.o.worker ?? new URL("./run_worker.ts", import.meta.url);
    const worker = new Worker(module.href, { type: "module" });
    const outbox = new Outbox<ToRunLane>((batch) => worker.postMessage(batch));
    const thread: Thread = {
      // The thread ends itself, having closed what it holds outside its own resources.
      end: () => {
        outbox.push({ type: "end" });
        outbox.flush();
      },
      outbox,
      queued: 0,
      live: 0,
      armed: 0,
      runs: new Set(),
    };
    this.threads[index] = thread;
    this.post(thread, { type: "base", env: this.o.baseEnv ?? {} });
    this.idleOut(thread);
    // Told by the thread itself: it ends once it has reaped its children.
    let saidFailed = false;
    worker.onmessage = ({ data }: MessageEvent<FromRunWorker[]>) => {
      for (const message of data) {
        if (message.type !== "failed") {
          this.heard(thread, message);
          continue;
        }
        saidFailed = true;
        worker.onmessage = null;
        this.failed(thread, message.why);
        return;
      }
    };
    worker.onerror = (event) => {
      event.preventDefault();
      worker.terminate();
      if (!saidFailed) {
        this.failed(thread, event.message);
        return;
      }
      log("runner").error(
        "a runner thread that had failed failed again ({why}) while its children ended: it was stopped, and those not reaped yet stay as zombies until the service exits",
        { why: event.message },
      );
    };
    return thread;
  }

  private heard(thread: Thread, message: FromRunLane): void {
    const run = this.runs.get(message.id);
    if (!run) return;
    // From the thread's clock to the run's, in order: a test's clock may stand still.
    const onClock = (at: number, notBefore: number) =>
      Math.max(notBefore, at + (run.now() - Date.now()));
    switch (message.type) {
      case "started":
        thread.queued--;
        run.pid = message.pid;
        run.startedAt = onClock(message.startedAt, run.launchedAt);
        run.started.resolve({
          startedAt: run.startedAt,
          pid: message.pid,
          marker: message.marker,
        });
        break;
      case "late":
        thread.queued--;
        thread.live--;
        this.forget(thread, message.id);
        run.started.resolve({ late: true, heldBy: message.heldBy });
        break;
      case "done":
        thread.live--;
        run.ended = true;
        run.done.resolve({
          ...message.result,
          startedAt: run.startedAt,
          finishedAt: onClock(message.result.finishedAt, run.startedAt),
        });
        if (run.escapedHeard) this.forget(thread, message.id);
        break;
      case "escaped":
        run.escapedHeard = true;
        run.escaped.resolve(message.note);
        if (run.ended) this.forget(thread, message.id);
    }
  }

  private forget(thread: Thread, id: number): void {
    this.runs.delete(id);
    thread.runs.delete(id);
    if (thread.runs.size === 0) this.idleOut(thread);
  }

  /** End a worker `thread` unless a run or an armed shell comes to it within IDLE_MS. */
  private idleOut(thread: Thread): void {
    if (thread === this.local) return;
    clearTimeout(thread.idle);
    const idle = setTimeout(() => {
      // What came to it meanwhile idles it out again once it is over.
      if (thread.runs.size === 0 && thread.armed === 0) {
        this.end(thread);
      }
    }, this.o.idleMs ?? IDLE_MS);
    Deno.unrefTimer(idle);
    thread.idle = idle;
  }

  /**
   * A thread failed (a bug, not a job's doing): its runs cannot be watched
   * any more. Those it had started are ended with their groups (a worker
   * thread that said it failed reaps them, then ends), those it had not are
   * never started; all end `error`, saying why. The next run starts a new
   * thread.
   */
  private failed(thread: Thread, why: string): void {
    this.end(thread);
    if (thread === this.local) this.local = this.localLane();
    log("runner").error("a runner thread failed ({why}): its {count} runs end as errors", {
      why,
      count: [...thread.runs].filter((id) => !this.runs.get(id)?.ended).length,
    });
    for (const id of thread.runs) {
      const run = this.runs.get(id)!;
      this.runs.delete(id);
      run.escaped.resolve(null);
      if (run.ended) continue;
      const now = run.now();
      const wasStarted = run.pid !== undefined;
      if (run.pid) signalGroup(run.pid, "SIGKILL");
      if (!wasStarted) run.started.resolve({ startedAt: now, pid: null, marker: null });
      run.done.resolve(unwatched(
        "error",
        now,
        wasStarted
          ? `the thread that ran it failed (${why}): its process group was killed, its output lost`
          : `the thread that was to start it failed (${why}): it never started`,
      ));
    }
    thread.runs.clear();
  }
}
