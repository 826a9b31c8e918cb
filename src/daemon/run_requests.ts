/**
 * The runs asked of the service through jm_runs rather than by the
 * timetable: `job run` requests and due retries and follow-up runs (queued
 * rows any service takes, by a write conditional on `queued`), the takes
 * whose answer was lost, and `runs cancel` requests. A poll says which
 * there are; this takes them through the same gates as fires.
 */
import { type Job, jobProblem } from "../domain/job.ts";
import type { Run, RunStatus, RunUpdate } from "../domain/run.ts";
import { idWord } from "../domain/shell.ts";
import type { JobStore, RunStore } from "../store/store.ts";
import type { ActiveRuns } from "./active_runs.ts";
import type { Aftermath } from "./aftermath.ts";
import type { Clock } from "./clock.ts";
import { log } from "./log.ts";
import type { RunRecorder } from "./recorder.ts";
import type { SlotGate } from "./slots.ts";
import type { Due, JobDefaults } from "./timetable.ts";
import { newMarker } from "./processes.ts";

const MANUAL_RUNS_PER_POLL = 100;
/** Retries and follow-up runs taken per poll. */
const DUE_RUNS_PER_POLL = 100;

export interface RunRequestsOptions {
  store: JobStore & RunStore;
  clock: Clock;
  slots: SlotGate;
  defaults: JobDefaults;
  recorder: Pick<RunRecorder, "update" | "knownAs" | "claiming" | "recording">;
  aftermath: Aftermath;
  observer?: { ended(jobId: string, status: RunStatus): void };
  nodeId(): string;
  stopping(): boolean;
  /** The enabled, valid jobs as loaded. */
  known(): ReadonlyMap<string, Job>;
  /** Keep `write` till the stop, logging its failure. */
  track(write: Promise<unknown>): void;
  /** What `max_instances` skips say of runs on other nodes. */
  elsewhereNote(jobId: string): string;
  /** Start run `runId` of `job`, claimed, holding `slot` (see ActiveRuns.launch). */
  launch: ActiveRuns["launch"];
  /** End run `runId` running here, for `note`; false when it does not run here. */
  cancelRunning(runId: number, note: string, followed: boolean): boolean;
  /** Whether run `runId` runs here (being ended, it may be). */
  runsHere(runId: number): boolean;
  /** The fire of run `runId` that waits here, never to start; undefined when none. */
  cancelWaiting(runId: number): Due | undefined;
  /** Wake the loop: a due instant was added. */
  wake(): void;
  /** Poll soon: a worker freed for the queued runs that wait for one. */
  pollSoon(): void;
}

const schedulerLog = log("scheduler");

export class RunRequests {
  /**
   * Queued runs this service took by a write whose answer was lost: the
   * write may have landed, leaving the row `running` here with nothing
   * behind it. By run id, the request as read and the take's marker.
   */
  private readonly takesInDoubt = new Map<number, { request: Run; marker: string }>();
  /** When retries and follow-up runs are due (queued here, or seen by a poll): it polls then. */
  private readonly dueRuns: number[] = [];
  /** Whether queued runs wait in the database for a worker (`waitForWorker`). */
  private queuedWaitForWorker = false;
  /**
   * Runs running or waiting here when this service found that another
   * node declared it dead, which marked their rows `lost`: the next cancel
   * look asks whether a cancel of them was asked (see `declaredDead`).
   */
  private lostHeld: number[] = [];

  constructor(private readonly o: RunRequestsOptions) {}

  /** Whether a take's answer was lost: `settleTakesInDoubt` looks. */
  get inDoubt(): boolean {
    return this.takesInDoubt.size > 0;
  }

  /** The instants at which retries and follow-up runs are due. */
  get dueInstants(): readonly number[] {
    return this.dueRuns;
  }

  /**
   * Another node declared this service dead while it ran on (paused, then
   * resumed): the rows of the runs it holds and of the fires waiting here
   * for a worker or behind their job's earlier fire (`rowIds`) were marked
   * `lost`, and a cancel asked of one before that is found by no look at
   * `running` or `queued` rows; a waiting one cancelled never starts. The
   * next poll asks of these (`takeCancelRequests`), once: `runs cancel`
   * refuses a row once it is `lost`, so none is asked later.
   */
  declaredDead(rowIds: readonly number[]): void {
    if (rowIds.length === 0) return;
    this.lostHeld.push(...rowIds);
    this.o.pollSoon();
  }

  /** Whether the next poll is to look for cancels of runs marked lost here (`declaredDead`). */
  get asksLost(): boolean {
    return this.lostHeld.length > 0;
  }

  /** A worker may be free: queued runs left for lack of one are polled for. */
  workerFreed(): void {
    if (this.queuedWaitForWorker && this.o.slots.workerFree && !this.o.stopping()) {
      this.queuedWaitForWorker = false;
      this.o.pollSoon();
    }
  }

  /**
   * End what `runs cancel` asked this service to end: a running run's group
   * gets SIGTERM, then SIGKILL after kill_grace; a fire still waiting for a
   * worker, or queued behind its job's earlier fire, never starts. Both are recorded `cancelled`, naming who asked.
   * A run whose row says it is this service's, which it does not know, is answered (`notHere`).
   * So are the runs this service holds whose rows another node marked `lost` (`declaredDead`).
   */
  async takeCancelRequests(): Promise<void> {
    const lostHeld = [...this.lostHeld];
    const requests = await this.o.store.cancelRequests(this.o.nodeId(), lostHeld);
    // Asked (a failed look leaves them to the next poll); those added meanwhile are not.
    this.lostHeld = this.lostHeld.slice(lostHeld.length);
    for (const request of requests) {
      const note = `cancelled by ${request.cancel_requested_by} at ${
        new Date(request.cancel_requested_at!).toISOString()
      }`;
      if (request.node_id === null) {
        await this.cancelRetry(request, note);
        continue;
      }
      // Marked lost: the node that did so started what its end leads to (service.ts `lost`).
      const lost = request.status === "lost";
      if (this.cancelHere(request.id, request.id, note, lost)) continue;
      // One that started while the database was away is known here by its provisional id.
      const provisional = this.o.recorder.knownAs(request.id);
      if (provisional !== undefined && this.cancelHere(provisional, request.id, note, lost)) {
        continue;
      }
      // Lost, and no longer here: it ended since it was asked of, recorded as it ended.
      if (request.status === "lost") continue;
      await this.notHere(request, note);
    }
  }

  /**
   * End run `runId` (`id` in jm_runs) if it runs or waits here, for
   * `note`; false when this service does not know it by that id.
   * `followed`: what its end leads to was started elsewhere.
   */
  private cancelHere(runId: number, id: number, note: string, followed: boolean): boolean {
    if (this.o.cancelRunning(runId, note, followed) || this.o.runsHere(runId)) return true;
    const due = this.o.cancelWaiting(runId);
    if (!due) return false;
    schedulerLog.info("job {job} run {run}: {note} before it started", {
      job: due.job.id,
      run: id,
      note,
    });
    this.o.track(this.o.recorder.update(runId, {
      status: "cancelled",
      finished_at: this.o.clock.now(),
      note,
    }));
    this.o.observer?.ended(due.job.id, "cancelled");
    return true;
  }

  /**
   * `runs cancel` of a run whose row says it runs (or waits) here, which
   * this service does not know: a row restored from a backup or written by
   * hand while the service ran, or left by an earlier service on this
   * node. Nothing here runs it, so it is recorded `cancelled`, its note
   * saying so, which is the answer `runs cancel` waits for. Not while a
   * claim of this service is on its way: the row may be of a run about to
   * start here, which the next poll knows. Nor while an update of it is
   * still to be written here: a run that just ended, its row not saying so yet.
   */
  private async notHere(request: Run, note: string): Promise<void> {
    if (this.o.recorder.claiming || this.o.recorder.recording(request.id)) return;
    const node = this.o.nodeId();
    const ended = await this.o.store.updateRun(
      request.id,
      {
        status: "cancelled",
        finished_at: this.o.clock.now(),
        note: `${note}; ${notHereNote(node, request.status)}`,
      },
      request.status,
      node,
    );
    if (!ended) return;
    this.o.observer?.ended(request.job_id, "cancelled");
    schedulerLog.warn(
      "job {job} run {run}: {note}, but this service does not run it: its row said {status} (restored from a backup or written by hand while the service ran, or left by an earlier service on this node); recorded cancelled, nothing was ended",
      { job: request.job_id, run: request.id, note, status: request.status },
    );
  }

  /**
   * `runs cancel` of a retry no service took yet: recorded `cancelled` by a
   * write conditional on `queued` (one service does it), and the attempts
   * end in failure with the one before it, whose failure follow-ups start
   * now, as when max_instances skips a retry.
   */
  private async cancelRetry(request: Run, note: string): Promise<void> {
    const cancelled = await this.o.store.updateRun(request.id, {
      status: "cancelled",
      node_id: this.o.nodeId(),
      finished_at: this.o.clock.now(),
      note,
    }, "queued");
    if (!cancelled) return;
    this.o.observer?.ended(request.job_id, "cancelled");
    schedulerLog.info(
      "job {job} run {run}: {note} before it started; the attempts end with the one before it",
      { job: request.job_id, run: request.id, note },
    );
    const job = this.o.known().get(request.job_id) ?? await this.o.store.getJob(request.job_id);
    if (job) await this.o.aftermath.followAttemptBefore(job, request);
  }

  /** Poll at `instant`, when a retry or follow-up run is due. */
  dueAt(instant: number): void {
    if (this.dueRuns.includes(instant)) return;
    this.dueRuns.push(instant);
    this.o.wake();
  }

  /** Whether a retry or follow-up run is due by `now` (each instant counts once). */
  takeDueInstants(now: number): boolean {
    let due = false;
    for (let i = this.dueRuns.length - 1; i >= 0; i--) {
      if (this.dueRuns[i] <= now) {
        this.dueRuns.splice(i, 1);
        due = true;
      }
    }
    return due;
  }

  /**
   * Queued runs (due retries and follow-ups, `job run` requests) were left
   * for lack of a worker: the next worker freed (`workerFreed`) polls for
   * them. (A run's record is this service's own write, which no write
   * report tells of.)
   */
  private waitForWorker(): void {
    this.queuedWaitForWorker = true;
  }

  /**
   * Take retries and follow-up runs that are due: the same gate as `job run`
   * requests. True when a full batch was taken: more may be behind it.
   */
  async takeDueRuns(): Promise<boolean> {
    const due = await this.o.store.dueQueuedRuns(this.o.clock.now(), DUE_RUNS_PER_POLL);
    for (const request of due) {
      if (this.o.stopping()) return false;
      if (!this.o.slots.workerFree) {
        this.waitForWorker();
        return false;
      }
      await this.takeQueuedRun(request);
    }
    // Each was taken, or skipped, or ended: a full batch may have more behind it.
    return due.length === DUE_RUNS_PER_POLL;
  }

  /** Take `job run` requests: same max_instances gate unless forced. True as `takeDueRuns`. */
  async takeManualRuns(): Promise<boolean> {
    const requests = await this.o.store.queuedManualRuns(MANUAL_RUNS_PER_POLL);
    for (const request of requests) {
      if (this.o.stopping()) return false;
      if (!this.o.slots.workerFree) {
        this.waitForWorker();
        return false;
      }
      await this.takeQueuedRun(request);
    }
    return requests.length === MANUAL_RUNS_PER_POLL;
  }

  /**
   * Take one queued run no service has taken (a `job run` request, a due
   * retry or follow-up run) by a write conditional on `queued`, so that one
   * service takes it: it starts, or is skipped by the max_instances gate,
   * or waits for the next poll when no worker is free.
   */
  private async takeQueuedRun(request: Run): Promise<void> {
    // Someone asked to cancel it since: the cancel requests' turn ends it.
    if (request.cancel_requested_at !== null) return;
    const now = this.o.clock.now();
    const job = await this.o.store.getJob(request.job_id);
    // Shutdown may have begun meanwhile: leave the request for the next service.
    if (this.o.stopping()) return;
    const claim = (update: RunUpdate) =>
      this.o.store.updateRun(request.id, { node_id: this.o.nodeId(), ...update }, "queued");
    // Not a failure of the job: the operator removed it (its runs are not followed, its
    // followers are idle), as one disabled is not.
    if (!job) {
      const ended = await claim({
        status: "skipped",
        finished_at: now,
        note: `the job was removed before its ${request.trigger} run started`,
      });
      if (ended) this.o.observer?.ended(request.job_id, "skipped");
      return;
    }
    // Broken by hand after it was queued: run, it would fail to start with less said.
    const problem = jobProblem(job);
    if (problem !== null) {
      const ended = await claim({
        status: "error",
        finished_at: now,
        note: `not run: the job is invalid: ${problem}`,
      });
      if (!ended) return;
      this.o.observer?.ended(job.id, "error");
      if (request.trigger === "retry") await this.o.aftermath.followAttemptBefore(job, request);
      return;
    }
    if (!job.enabled && request.trigger !== "manual") {
      const skipped = await claim({
        status: "skipped",
        finished_at: now,
        note: `the job was disabled before its ${request.trigger} run started`,
      });
      if (!skipped) return;
      this.o.observer?.ended(job.id, "skipped");
      if (request.trigger === "retry") await this.o.aftermath.followAttemptBefore(job, request);
      return;
    }
    // A retry beyond the attempts the job allows now (its retries were lowered since it was
    // queued) does not run: the attempts end with the one before it.
    if (request.trigger === "retry" && request.attempt > job.retries + 1) {
      const skipped = await claim({
        status: "skipped",
        finished_at: now,
        note:
          `not run: the job's retries were lowered to ${job.retries} since this retry was queued (attempt ${request.attempt}; it allows ${
            job.retries + 1
          } now)`,
      });
      if (!skipped) return;
      this.o.observer?.ended(job.id, "skipped");
      schedulerLog.info(
        "job {job} run {run}: not run, the job's retries were lowered to {retries}; the attempts end with the one before it",
        { job: job.id, run: request.id, retries: job.retries },
      );
      await this.o.aftermath.followAttemptBefore(job, request);
      return;
    }
    const maxInstances = job.max_instances ?? this.o.defaults.maxInstances;
    const slot = this.o.slots.tryAcquire(job.id, request.forced ? Infinity : maxInstances);
    if (!slot) {
      const skipped = await claim({
        status: "skipped",
        finished_at: now,
        note: `max_instances (${maxInstances}) runs were still running${
          this.o.elsewhereNote(job.id)
        }${request.trigger === "manual" ? forceHint(job.id) : ""}`,
      });
      if (!skipped) return;
      this.o.observer?.ended(job.id, "skipped");
      if (request.trigger === "retry") await this.o.aftermath.followAttemptBefore(job, request);
      return;
    }
    // No worker is free after all: the request waits for the next poll.
    if (!slot.working) {
      slot.release();
      return this.waitForWorker();
    }
    // Recorded with the claim, before the process exists (see firing.ts).
    const marker = newMarker();
    let claimed = false;
    try {
      claimed = await claim({ status: "running", started_at: now, marker });
    } catch (error) {
      this.takesInDoubt.set(request.id, { request, marker });
      throw error;
    } finally {
      if (!claimed) slot.release();
    }
    if (!claimed) return;
    if (this.o.stopping()) {
      slot.release();
      this.o.track(this.o.recorder.update(request.id, {
        status: "interrupted",
        finished_at: this.o.clock.now(),
        note: "the service stopped before the run started",
      }));
      this.o.observer?.ended(job.id, "interrupted");
      return;
    }
    this.o.launch(job, request.id, request.scheduled_at, request.note, slot, marker, null, {
      trigger: request.trigger,
      attempt: request.attempt,
      firstRunId: request.first_run_id,
    });
  }

  /**
   * Put back in the queue each run a take whose answer was lost did write:
   * it is `running` here with this take's marker, and never started. A
   * service then takes it as any other request (this one too).
   */
  async settleTakesInDoubt(): Promise<void> {
    for (const [id, { request, marker }] of this.takesInDoubt) {
      const run = await this.o.store.getRun(id);
      if (run?.status === "running" && run.node_id === this.o.nodeId() && run.marker === marker) {
        const requeued = await this.o.store.updateRun(id, {
          status: "queued",
          node_id: request.node_id,
          started_at: request.started_at,
          marker: request.marker,
        }, "running");
        if (requeued) {
          schedulerLog.warn(
            "run {run} of job {job}: this service's take of it reached the database, but the answer was lost; it never started, and is back in the queue",
            { run: id, job: request.job_id },
          );
        }
      }
      this.takesInDoubt.delete(id);
    }
  }
}

/**
 * Why a run cancelled on `node` in `status` ended without anything ended:
 * what `runs cancel` prints, and the run's note keeps.
 */
function notHereNote(node: string, status: string): string {
  return `it was not ${
    status === "running" ? "running" : "waiting"
  } in the service on ${node}, though its row said ${status}: the row was restored from a backup or written by hand while the service ran, or left by an earlier service on that node; nothing was ended`;
}

/**
 * How a person who asked for a run skipped for max_instances runs it all
 * the same: forced through the service, or in their own process.
 */
function forceHint(jobId: string): string {
  return `; to run it anyway, ask with \`jobsmanager job run --force ${
    idWord(jobId)
  }\` (the API's "force": true), or run it in your own process with \`jobsmanager job run --here ${
    idWord(jobId)
  }\``;
}
