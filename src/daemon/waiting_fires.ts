/**
 * Claimed fires that have not started: those waiting for a worker
 * (max_workers), and those of a catch-up without coalesce queued behind
 * their job's earlier fire. Each starts when a worker or its job's slot
 * frees, if still within its grace; one past it is recorded `missed`,
 * saying what held it, as soon as it is so. A reload rebases them on
 * their job as it now is (`rebase`); a stop records them `interrupted`.
 */
import type { Job } from "../domain/job.ts";
import type { NewRun, RunStatus } from "../domain/run.ts";
import { type ActiveRuns, lateNote } from "./active_runs.ts";
import type { Aftermath } from "./aftermath.ts";
import type { Clock } from "./clock.ts";
import type { Notifier } from "./notifier.ts";
import type { EndedRun } from "./notify_message.ts";
import type { RunRecorder } from "./recorder.ts";
import type { Armed } from "./runner.ts";
import type { Slot, SlotGate } from "./slots.ts";
import { type Due, onTime, type Timetable } from "./timetable.ts";

/** A fire recorded `missed`, as the notifier is told of it. */
export function missedRun(id: number, row: NewRun, now: number): EndedRun {
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

export function coalescedNote(due: Due): string | null {
  return due.coalesced > 0 ? `coalesced ${due.coalesced + 1} fires into one run` : null;
}

export interface Waiting {
  due: Due;
  runId: number;
  slot: Slot;
  /** Its JM_RUN_MARKER, recorded with the claim. */
  marker: string;
  /** Its shell, when one was armed for it. */
  shell?: Armed;
}

/** A fire of a catch-up without coalesce, queued behind its job's earlier fire (see `behind`). */
export interface Behind {
  due: Due;
  runId: number;
  marker: string;
}

export interface WaitingFiresOptions {
  clock: Clock;
  slots: SlotGate;
  timetable: Timetable;
  maxWorkers: number;
  recorder: Pick<RunRecorder, "update" | "rowIds">;
  notifier: Pick<Notifier, "runEnded">;
  observer?: { ended(jobId: string, status: RunStatus): void };
  aftermath: Aftermath;
  runs: Pick<ActiveRuns, "launch">;
  nodeId(): string;
  stopping(): boolean;
  /** Keep `write` till the stop, logging its failure. */
  track(write: Promise<unknown>): void;
  /** The fires waiting took the free workers they could: queued runs may have the rest. */
  workerFreed(): void;
}

export class WaitingFires {
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

  constructor(private readonly o: WaitingFiresOptions) {}

  /** Fires waiting for a worker, or behind their job's earlier fire. */
  get queued(): number {
    return this.waiting.length + [...this.behind.values()].reduce((n, q) => n + q.length, 0);
  }

  /** Fires waiting for a worker: an armed shell is released before them. */
  get waitingForWorker(): number {
    return this.waiting.length;
  }

  /**
   * The ids of the rows of the fires waiting for a worker or behind their
   * job's earlier fire (one claimed under a provisional id, by the id its
   * row got; one with no row yet left out), as `ActiveRuns.rowIds`.
   */
  get rowIds(): number[] {
    const fires = [...this.waiting, ...[...this.behind.values()].flat()];
    return this.o.recorder.rowIds(fires.map((fire) => fire.runId));
  }

  /** A claimed fire waits for a worker. */
  push(waiting: Waiting): void {
    this.waiting.push(waiting);
  }

  /** A claimed fire of a catch-up without coalesce waits for its job's earlier fire to end. */
  queueBehind(jobId: string, behind: Behind): void {
    const queue = this.behind.get(jobId) ?? [];
    queue.push(behind);
    this.behind.set(jobId, queue);
  }

  /** At a stop, at `now`: no fire that waits starts; each is recorded `interrupted`. */
  interruptAll(now: number): void {
    for (const { due, runId, slot, shell } of this.waiting.splice(0)) {
      slot.release();
      shell?.disarm();
      this.o.observer?.ended(due.job.id, "interrupted");
      this.o.track(this.o.recorder.update(runId, {
        status: "interrupted",
        finished_at: now,
        note: "the service stopped before a worker was free",
      }));
    }
    for (const { due, runId } of [...this.behind.values()].flat()) {
      this.o.observer?.ended(due.job.id, "interrupted");
      this.o.track(this.o.recorder.update(runId, {
        status: "interrupted",
        finished_at: now,
        note: "the service stopped before the fire before it ended",
      }));
    }
    this.behind.clear();
  }

  /**
   * After a reload, the fires not started yet go on as their job now is
   * (its command, env, cwd, timeout, max_instances, grace), as the runs
   * they start record: a shell armed for the job as it was is disarmed,
   * and the run started anew at its turn. Those of a job removed, disabled
   * or made invalid are skipped, their slots given back; so are the latest
   * of a job whose max_instances was lowered below the slots it holds.
   */
  rebase(now: number): void {
    const skip = (
      jobId: string,
      runId: number,
      note = "its job was removed, disabled or made invalid before its turn",
    ) => {
      this.o.observer?.ended(jobId, "skipped");
      this.o.track(this.o.recorder.update(runId, { status: "skipped", finished_at: now, note }));
    };
    for (const [jobId, queue] of this.behind) {
      const job = this.o.timetable.job(jobId);
      const policy = this.o.timetable.policy(jobId);
      if (job !== undefined && policy !== undefined) {
        for (const b of queue) b.due = { ...b.due, job, policy };
        continue;
      }
      this.behind.delete(jobId);
      for (const { runId } of queue) skip(jobId, runId);
    }
    // The job's fires queued behind are gone first: a slot given back here starts none of them.
    const gone: Waiting[] = [];
    let kept = 0;
    for (const waiting of this.waiting) {
      const jobId = waiting.due.job.id;
      const job = this.o.timetable.job(jobId);
      const policy = this.o.timetable.policy(jobId);
      if (job === undefined || policy === undefined) {
        gone.push(waiting);
        continue;
      }
      if (job !== waiting.due.job) {
        waiting.shell?.disarm();
        waiting.shell = undefined;
      }
      waiting.due = { ...waiting.due, job, policy };
      this.waiting[kept++] = waiting;
    }
    this.waiting.length = kept;
    for (const { due, runId, slot, shell } of gone) {
      shell?.disarm();
      slot.release();
      skip(due.job.id, runId);
    }
    // Each waiting fire holds a slot taken under the old max_instances: the latest go first.
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      const { due, runId, slot, shell } = this.waiting[i];
      const max = due.policy.maxInstances;
      if (this.o.slots.held(due.job.id) <= max) continue;
      this.waiting.splice(i, 1);
      shell?.disarm();
      slot.release();
      skip(
        due.job.id,
        runId,
        `max_instances (${max}) runs were still running: a reload lowered it while this fire waited for a worker`,
      );
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
  cancelWaiting(runId: number): Due | undefined {
    const at = this.waiting.findIndex((w) => w.runId === runId);
    const waiting = at >= 0 ? this.waiting.splice(at, 1)[0] : undefined;
    waiting?.slot.release();
    waiting?.shell?.disarm();
    return waiting?.due ?? this.takeBehind(runId)?.due;
  }

  /** The first instant at which a fire waiting for a worker is past its grace. */
  waitingPastGrace(now: number): number {
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
  missLateWaiting(now: number): void {
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
  startWaiting(): void {
    while (this.waiting.length > 0 && this.o.slots.workerFree && !this.o.stopping()) {
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
    this.o.workerFreed();
  }

  /**
   * Start a claimed fire holding a worker, unless it is too late by now:
   * grace is judged when the process would start, whatever held it (the
   * worker pool, a burst of other starts, a slow claim), and a fire that
   * would start later than its grace is `missed`, saying what held it.
   */
  startOnTime(
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
      this.o.runs.launch(
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
  missedAtStart(
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
    this.o.track(this.o.recorder.update(runId, missed));
    this.o.notifier.runEnded(
      job,
      missedRun(runId, {
        job_id: job.id,
        scheduled_at: scheduledAt,
        node_id: this.o.nodeId(),
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
  startBehind(jobId: string): void {
    const queue = this.behind.get(jobId);
    if (queue === undefined || this.o.stopping()) return;
    const max = queue[0].due.policy.maxInstances;
    const slot = this.o.slots.tryAcquire(jobId, max, this.waiting.length === 0);
    // Another run holds it: its end comes back here.
    if (!slot) return;
    const { due, runId, marker } = queue.shift()!;
    if (queue.length === 0) this.behind.delete(jobId);
    this.o.track(this.o.aftermath.fired(due.job, runId, due.scheduledAt));
    if (slot.working) {
      this.startOnTime(due, runId, slot, marker, "it waited for the fire before it to end");
    } else {
      this.waiting.push({ due, runId, slot, marker });
    }
  }
}
