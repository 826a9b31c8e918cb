/**
 * Where a service's runs are started, watched and reaped (run_pool.ts
 * hands them out): each `start` is spawned with runner.ts, unless its
 * grace is over by the time the lane gets to it; the run's start, its end
 * and what left its group are sent back. A lane lives in a worker thread
 * (run_worker.ts) or in the scheduler's own thread. Times are this
 * process's wall clock (Date.now). A run or a shell with a cwd waits,
 * while the lane goes on, for the check of that directory
 * (directory_check.ts): one that does not answer (a hung mount) would
 * hold the thread in a stat or a spawn, and every run of it.
 */
import { checkSlowNote, DirectoryChecks, hungNote } from "./directory_check.ts";
import { type Account, AccountLookups, lookupNote, lookupSlowNote } from "./run_as.ts";
import { Outbox } from "./outbox.ts";
import {
  type ArmedShell,
  armRun,
  type LaunchSpec,
  type RunHandle,
  type RunResult,
  startRun,
  unwatched,
} from "./runner.ts";

export type ToRunLane =
  /** The environment every run starts from; its own variables go over it. */
  | { type: "base"; env: Record<string, string> }
  /**
   * `startBy`: the latest Date.now() at which the process may start;
   * `armed`: the `arm` whose shell is released for it, if any.
   */
  | { type: "start"; id: number; spec: LaunchSpec; startBy: number; armed?: number }
  | { type: "interrupt"; id: number }
  /** Start a run's shell ahead of its fire (runner.ts `armRun`), after the starts queued. */
  | { type: "arm"; id: number; spec: LaunchSpec }
  | { type: "disarm"; id: number }
  /** The lane's thread is to end (run_worker.ts): the lane closes (`close`). */
  | { type: "end" };

export type FromRunLane =
  | { type: "started"; id: number; startedAt: number; pid: number | null; marker: string | null }
  /** `heldBy`: what held it past its grace, when not the runs started before it (see Late). */
  | { type: "late"; id: number; at: number; heldBy: string | null }
  | { type: "done"; id: number; result: RunResult }
  | { type: "escaped"; id: number; note: string | null };

/**
 * `directory`: which directory its cwd named when checked (null: none
 * there); undefined while a cwd it has is not checked yet. `heldBy`: the
 * lookup of its user's account, when that ended after its `startBy`.
 */
type Start = Extract<ToRunLane, { type: "start" }> & {
  directory?: string | null;
  heldBy?: string;
};
type Arm = Extract<ToRunLane, { type: "arm" }> & { directory?: string | null };

/** Runs started in one turn of the event loop. */
const STARTS_PER_TURN = 8;

export class RunLane {
  private readonly outbox: Outbox<FromRunLane>;
  private readonly runs = new Map<number, RunHandle>();
  private base: Record<string, string> = {};
  /** Runs to start, in the order they came. */
  private readonly queue: Start[] = [];
  private starting = false;
  /** Shells to arm, once the queued runs have started. */
  private readonly arming: Arm[] = [];
  /** Armed shells, by their arm's id. */
  private readonly armed = new Map<number, ArmedShell>();
  /**
   * Runs whose armed shell was let go in the batch being received, and
   * which are not started (watched) yet, with when each went: a bug
   * between the two leaves some so (see `close`).
   */
  private readonly released = new Map<number, { shell: ArmedShell; at: number }>();
  /** Queued runs interrupted before they started: none of them starts. */
  private readonly interruptedEarly = new Set<number>();
  /** Runs, and shells to arm, whose cwd is being checked, by id. */
  private readonly checking = new Set<number>();
  private readonly armsChecking = new Set<number>();
  private closed = false;

  /**
   * `failed`: told of a bug met while starting the runs queued (after
   * `receive` returned; a bug within it is thrown to its caller).
   * `turnMs`: once starting runs has held a turn of the event loop this
   * long, the rest wait for the next turn (at least one starts a turn).
   * `now`: the clock grace is judged on (a test's may jump).
   * `accounts`: where the accounts of runs with a user are found.
   * `directories`: where the working directories of runs are checked.
   */
  constructor(
    send: (batch: FromRunLane[]) => void,
    private readonly failed: (error: unknown) => void,
    private readonly turnMs = Infinity,
    private readonly now: () => number = Date.now,
    private readonly accounts = new AccountLookups(),
    private readonly directories: Pick<DirectoryChecks, "check"> = new DirectoryChecks(),
  ) {
    this.outbox = new Outbox(send);
  }

  receive(batch: ToRunLane[]): void {
    if (this.closed) return;
    // The armed runs due now go first, each a write to a pipe (see ArmedShell.go),
    // each judged late or not just before its write: a burst's writes take
    // a while (a write wakes a shell, which competes for the CPU).
    const judged = new Map<Start, number>();
    for (const message of batch) {
      // A cwd is checked first (checkThenStart): not in this turn.
      if (message.type !== "start" || message.armed === undefined || message.spec.cwd) continue;
      const at = this.now();
      judged.set(message, at);
      const shell = this.armed.get(message.armed);
      if (shell && at <= message.startBy && shell.go(message.spec.env.JM_RUN_ID ?? "")) {
        this.released.set(message.id, { shell, at });
      }
    }
    for (const message of batch) {
      switch (message.type) {
        case "base":
          this.base = message.env;
          break;
        case "interrupt":
          this.interrupt(message.id);
          break;
        case "arm":
          this.arming.push(message);
          break;
        case "disarm":
          this.takeArmed(message.id)?.disarm();
          break;
        case "end":
          this.close();
          return;
        case "start": {
          // A release is a write to a pipe: it does not wait behind the spawns queued.
          const shell = message.armed === undefined ? null : this.takeArmed(message.armed);
          // Judged late or not as it went (above).
          if (shell && message.spec.cwd) this.checkThenStart(message, shell);
          else if (shell) this.start(message, shell, judged.get(message));
          else this.queue.push(message);
          // Watched now: a bug in its own start left it to `close`.
          this.released.delete(message.id);
        }
      }
    }
    this.startQueuedSoon();
  }

  private startQueuedSoon(): void {
    if (!this.starting) this.startQueued().catch(this.failed);
  }

  /**
   * Check the cwd of `message`'s run, then start it (a release of `shell`
   * when armed, else queued again), judged late or not then; one whose cwd
   * does not answer ends `error`, saying so, and its shell is disarmed.
   */
  private checkThenStart(message: Start, shell: ArmedShell | null): void {
    this.checking.add(message.id);
    const asked = this.now();
    this.directories.check(message.spec.cwd!).then((found) => {
      this.checking.delete(message.id);
      if (this.closed) {
        shell?.disarm();
        return;
      }
      const answered = this.now();
      // In time when asked, past its grace once answered: the check held it (a slow mount).
      const heldBy = asked <= message.startBy && answered > message.startBy
        ? checkSlowNote(message.spec.cwd!, answered - asked)
        : message.heldBy;
      // Interrupted meanwhile: that is what it was (see `start`), answer or not.
      if ("hung" in found && !this.interruptedEarly.has(message.id)) {
        shell?.disarm();
        this.notStarted(message.id, unwatched("error", this.now(), hungNote(message.spec.cwd!)));
        return;
      }
      const directory = "hung" in found ? null : found.id;
      if (shell) {
        this.start({ ...message, directory, heldBy }, shell);
        return;
      }
      this.queue.push({ ...message, directory, heldBy });
      this.startQueuedSoon();
    }).catch(this.failed);
  }

  /**
   * Find the account of the user `message`'s run runs as, off this thread,
   * then queue it again; one whose account is not found in time ends
   * `error`, saying so (an interrupt meanwhile is what it was).
   */
  private findThenStart(message: Start): void {
    const user = message.spec.user!;
    this.checking.add(message.id);
    const asked = this.now();
    this.accounts.find(user.name).then((found) => {
      this.checking.delete(message.id);
      if (this.closed) return;
      const answered = this.now();
      // In time when asked, past its grace once answered: the lookup held it (a slow name
      // service), not the runs before it.
      const heldBy = asked <= message.startBy && answered > message.startBy
        ? lookupSlowNote(user.name, answered - asked)
        : undefined;
      const note = lookupNote(found, user.job, user.name, this.accounts.waitMs);
      if (note !== null && !this.interruptedEarly.has(message.id)) {
        this.notStarted(message.id, unwatched("error", this.now(), note));
        return;
      }
      // Interrupted meanwhile: it starts as that, whatever its account.
      const account = note === null ? found as Account | null : null;
      this.queue.push({
        ...message,
        spec: { ...message.spec, user: { ...user, account } },
        heldBy,
      });
      this.startQueuedSoon();
    }).catch(this.failed);
  }

  /** Find the account of `arm`'s user, then arm it (queued again), unless taken meanwhile or not found in time. */
  private findThenArm(arm: Arm): void {
    const user = arm.spec.user!;
    this.armsChecking.add(arm.id);
    this.accounts.find(user.name).then((found) => {
      const note = lookupNote(found, user.job, user.name, this.accounts.waitMs);
      if (!this.armsChecking.delete(arm.id) || this.closed || note !== null) return;
      const account = found as Account | null;
      this.arming.push({ ...arm, spec: { ...arm.spec, user: { ...user, account } } });
      this.startQueuedSoon();
    }).catch(this.failed);
  }

  /** Check the cwd of `arm`'s shell, then arm it (queued again), unless taken meanwhile or it does not answer. */
  private checkThenArm(arm: Arm): void {
    this.armsChecking.add(arm.id);
    this.directories.check(arm.spec.cwd!).then((found) => {
      // Its fire came meanwhile (it then starts anew, checked again), or it was disarmed.
      if (!this.armsChecking.delete(arm.id) || this.closed || "hung" in found) return;
      this.arming.push({ ...arm, directory: found.id });
      this.startQueuedSoon();
    }).catch(this.failed);
  }

  /** Run `id` ended as `result` without starting: said started (no process), ended, and nothing left. */
  private notStarted(id: number, result: RunResult): void {
    this.outbox.push({ type: "started", id, startedAt: result.startedAt, pid: null, marker: null });
    this.outbox.push({ type: "done", id, result });
    this.outbox.push({ type: "escaped", id, note: null });
  }

  /**
   * The lane is given up (its service stops, or it failed): what it
   * heard is sent, its shells exit, runs queued never start, and nothing
   * more is sent; the runs going on are the service's to end. A shell let
   * go in a batch that broke the lane runs its command: it is sent as
   * started, so that its group is ended with the others (unwatched, it
   * would run on with no timeout).
   */
  close(): void {
    if (this.closed) return;
    for (const [id, { shell, at }] of this.released) {
      this.outbox.push({
        type: "started",
        id,
        startedAt: at,
        pid: shell.pid,
        marker: shell.marker,
      });
    }
    this.released.clear();
    this.outbox.flush();
    this.closed = true;
    for (const shell of this.armed.values()) shell.disarm();
    this.armed.clear();
    this.arming.length = 0;
    this.queue.length = 0;
  }

  /** The armed shell of arm `id`, no longer armed; null when it is not (yet) there: then it never will be. */
  private takeArmed(id: number): ArmedShell | null {
    const shell = this.armed.get(id);
    this.armed.delete(id);
    this.armsChecking.delete(id);
    const queued = this.arming.findIndex((a) => a.id === id);
    if (queued >= 0) this.arming.splice(queued, 1);
    return shell ?? null;
  }

  private interrupt(id: number): void {
    const handle = this.runs.get(id);
    if (handle) handle.interrupt();
    else if (this.queue.some((run) => run.id === id) || this.checking.has(id)) {
      this.interruptedEarly.add(id);
    }
  }

  /**
   * Start the queued runs a few at a time, letting the event loop turn
   * between: the ends of the runs started first (a burst's are quick) are
   * heard and sent meanwhile, which frees their workers for the rest.
   */
  private async startQueued(): Promise<void> {
    this.starting = true;
    while (this.queue.length > 0 || this.arming.length > 0) {
      const turnEnds = performance.now() + this.turnMs;
      for (let n = 0; n < STARTS_PER_TURN && (n === 0 || performance.now() < turnEnds); n++) {
        const run = this.queue.shift();
        if (run?.spec.user && run.spec.user.account === undefined) this.findThenStart(run);
        else if (run?.spec.cwd && run.directory === undefined) this.checkThenStart(run, null);
        else if (run) this.start(run);
        if (run) continue;
        const arm = this.arming.shift();
        if (!arm) break;
        if (arm.spec.user && arm.spec.user.account === undefined) {
          this.findThenArm(arm);
          continue;
        }
        if (arm.spec.cwd && arm.directory === undefined) {
          this.checkThenArm(arm);
          continue;
        }
        const shell = armRun({ ...arm.spec, baseEnv: this.base }, arm.directory ?? null);
        if (shell) this.armed.set(arm.id, shell);
      }
      await new Promise((turn) => setTimeout(turn, 0));
    }
    this.starting = false;
  }

  private start(
    { id, spec, startBy, directory = null, heldBy }: Start,
    shell: ArmedShell | null = null,
    now = this.now(),
  ) {
    const outbox = this.outbox;
    // Interrupted (a stop, a cancel) before it was due to start: that is what it was, late or not.
    if (this.interruptedEarly.delete(id)) {
      shell?.disarm();
      this.notStarted(id, unwatched("interrupted", now, "the service stopped before it started"));
      return;
    }
    if (now > startBy) {
      shell?.disarm();
      outbox.push({ type: "late", id, at: now, heldBy: heldBy ?? null });
      return;
    }
    const full = { ...spec, baseEnv: this.base };
    const handle = shell ? shell.release(full, undefined, directory) : startRun(full);
    this.runs.set(id, handle);
    const { startedAt, pid, marker } = handle;
    outbox.push({ type: "started", id, startedAt, pid, marker });
    handle.done.then((result) => {
      this.runs.delete(id);
      if (!this.closed) outbox.push({ type: "done", id, result });
    });
    handle.escaped.then((note) => {
      if (!this.closed) outbox.push({ type: "escaped", id, note });
    });
  }
}
