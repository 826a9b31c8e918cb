/**
 * The runs this service started, from their launch to their record: the
 * start recorded `running` (or `missed`, when the runner got to it past
 * its grace), the end recorded with its status and what escaped its group,
 * notified and followed (retry, follow-ups), cancels, runs whose row
 * jm_runs gave to a newer run, and, at a stop, those still running
 * interrupted by the deadline. The slots they hold are the gate's; their
 * end gives the next waiting fire its worker.
 */
import type { Job } from "../domain/job.ts";
import type { NewRun, RowKey, RunStatus, RunTrigger, RunUpdate } from "../domain/run.ts";
import type { Aftermath } from "./aftermath.ts";
import type { Clock, Deadline } from "./clock.ts";
import { log } from "./log.ts";
import type { Notifier } from "./notifier.ts";
import type { RunRecorder } from "./recorder.ts";
import type { RunGuard } from "./run_guard.ts";
import {
  type Armed,
  finishedRecord,
  type Launch,
  type LaunchSpec,
  runEnv,
  type RunResult,
  type Started,
  type StartRun,
} from "./runner.ts";
import type { Slot } from "./slots.ts";

/**
 * At shutdown, how long after the interrupted runs' SIGKILL their output
 * may take to end (a process that left its group can hold it open).
 */
const KILLED_OUTPUT_MS = 1000;

interface Active {
  job: Job;
  run: Launch;
  /** Its process group once started (null: it could not start). */
  pid: number | null;
  /** When its process started (null: not yet, or never): a row written anew keeps it. */
  startedAt: number | null;
  /** The JM_RUN_MARKER its processes carry, which the guard watches. */
  marker: string;
  slot: Slot;
  /** Why the run exists (coalesced, forced), kept in its record when it ends. */
  note: string | null;
  /** Which attempt it is (1 = the first) and the run of the first, for its retry. */
  attempt: number;
  firstRunId: number | null;
  scheduledAt: number;
  trigger: RunTrigger;
}

/** Why a fire that would have started at `now`, past its grace, is missed: `heldBy` held it. */
export function lateNote(
  scheduledAt: number,
  now: number,
  graceMs: number,
  heldBy: string,
): string {
  return `would have started ${now - scheduledAt} ms after its fire time, later than ${
    graceMs / 1000
  } s of grace: ${heldBy}`;
}

export interface ActiveRunsOptions {
  clock: Clock;
  startRun: StartRun;
  /** Told which process groups run, to end them if the service dies; null without one. */
  guard: RunGuard | null;
  killGraceMs: number;
  shutdownTimeoutMs: number;
  outputCap: number;
  /** Strings never stored from a run's output (the database password). */
  secrets: readonly string[];
  recorder: Pick<
    RunRecorder,
    "update" | "recordAnew" | "runWords" | "realId" | "rowIds" | "afterJudged" | "stopJudging"
  >;
  notifier: Pick<Notifier, "runEnded">;
  observer?: {
    started(jobId: string, lagMs: number, trigger: RunTrigger): void;
    ended(jobId: string, status: RunStatus): void;
  };
  aftermath: Aftermath;
  nodeId(): string;
  /** Keep `write` till the stop, logging its failure. */
  track(write: Promise<unknown>): void;
  /** A run of `jobId` ended: its job may get a shell for the next instant. */
  armAfterEnd(jobId: string): void;
  /** A worker may be free: the fires waiting for one start. */
  startWaiting(): void;
  /** A claimed fire that would have started past its grace: record it missed. */
  missedAtStart(job: Job, scheduledAt: number, runId: number, slot: Slot, note: string): void;
  /** Job `jobId` as the last reload read it, while it is enabled and valid. */
  current(jobId: string): Job | undefined;
}

const schedulerLog = log("scheduler");
const runnerLog = log("runner");

export class ActiveRuns {
  private readonly active = new Map<number, Active>();
  /**
   * Runs whose id the database gave to a newer run: jm_runs was emptied
   * while they ran (TRUNCATE, or dropped and made again by `db migrate`),
   * and its ids started over. They go on: their ends are written as new
   * rows, not over the newer run's row, and free their slots.
   */
  private readonly rowless = new Map<Active, number>();
  /**
   * Runs being ended because someone asked (`runs cancel`): the note each
   * is recorded with, and whether what its end leads to was started
   * elsewhere (its row marked lost by a node that declared this one dead).
   */
  private readonly cancelling = new Map<number, { note: string; followed: boolean }>();
  /**
   * Runs whose rows the node that declared this one dead marked `lost`, and
   * followed there (retried, follow-ups queued): their ends are recorded
   * here, and nothing follows them here (`lostElsewhere`).
   */
  private readonly followedElsewhere = new Set<number>();
  /** When each job's last run started: under overload, the longest waiting go first. */
  private readonly lastStarted = new Map<string, number>();

  constructor(private readonly o: ActiveRunsOptions) {}

  /** Runs holding a worker. */
  get size(): number {
    return this.active.size;
  }

  /** Job `jobId` left the timetable: its turn under overload is forgotten. */
  forget(jobId: string): void {
    this.lastStarted.delete(jobId);
  }

  /**
   * The database gave `runId` to a new row of `jobId`: a run here that
   * still holds that id lost its row (see `rowless`), unless it is that
   * row's own run (`row`: a queued row a poll took and started before the
   * answer to its insert came back).
   */
  idTaken(runId: number, jobId: string, row?: RowKey): void {
    const before = this.active.get(runId);
    if (before === undefined) return;
    const own = row !== undefined && before.job.id === jobId &&
      before.scheduledAt === row.scheduled_at && before.trigger === row.trigger;
    if (!own) this.loseRow(runId, before, jobId);
  }

  /**
   * Start a claimed run holding `slot`, its processes carrying `marker`;
   * `note` (coalesced, forced) is kept in its record; `from` says what
   * started it and which attempt it is; a runner that gets to it after
   * `startBy` does not start it (its grace).
   */
  launch(
    job: Job,
    runId: number,
    scheduledAt: number,
    note: string | null,
    slot: Slot,
    marker: string,
    startBy: { at: number; graceMs: number } | null,
    from: { trigger: RunTrigger; attempt: number; firstRunId: number | null } = {
      trigger: "schedule",
      attempt: 1,
      firstRunId: null,
    },
    armed?: Armed,
  ) {
    // Told as the run is handed out, so a service killed just after the
    // start leaves nothing running (for a burst's first runs, see run_guard.ts).
    this.o.guard?.watch(marker);
    const run = this.o.startRun(this.runSpec(job, runId, scheduledAt, marker), {
      now: () => this.o.clock.now(),
      startBy: startBy?.at ?? Infinity,
      armed,
    });
    const active: Active = {
      job,
      run,
      pid: null,
      startedAt: null,
      marker,
      slot,
      note,
      scheduledAt,
      ...from,
    };
    const before = this.active.get(runId);
    if (before !== undefined) this.loseRow(runId, before, job.id);
    this.active.set(runId, active);
    run.started.then((started) => {
      if (!("late" in started)) active.startedAt = started.startedAt;
      if (this.rowless.has(active)) {
        if ("late" in started) return this.endedRowless(runId, active, null);
        return void active.run.done.then((result) => this.finished(runId, result, active));
      }
      // A stop that gave up on it has recorded it already.
      if (this.active.get(runId) !== active) return;
      if (!("late" in started)) return this.running(active, runId, started);
      this.o.guard?.unwatch(marker);
      this.active.delete(runId);
      this.cancelling.delete(runId);
      this.o.missedAtStart(
        job,
        scheduledAt,
        runId,
        slot,
        lateNote(
          scheduledAt,
          this.o.clock.now(),
          startBy!.graceMs,
          started.heldBy ?? "the runner was busy starting other runs",
        ),
      );
      // Its worker is free for the fires waiting for one.
      this.o.startWaiting();
    }).catch((error) => {
      const { words, values } = this.o.recorder.runWords(runId, job.id, scheduledAt);
      runnerLog.error(`job {job} ${words}: could not record its start: {error}`, {
        job: job.id,
        ...values,
        error: String(error),
      });
    });
  }

  /** What the runner runs for run `runId` of `job` (0: not claimed yet, an armed shell). */
  runSpec(job: Job, runId: number, scheduledAt: number, marker: string): LaunchSpec {
    return {
      command: job.command,
      env: runEnv({}, job, runId, scheduledAt),
      cwd: job.cwd ?? undefined,
      user: job.user === null ? undefined : { job: job.id, name: job.user },
      timeoutMs: job.timeout * 1000,
      killGraceMs: this.o.killGraceMs,
      outputCap: this.o.outputCap,
      secrets: this.o.secrets,
      marker,
    };
  }

  /** Under overload the workers go to the jobs that waited longest since they last started. */
  inTurn<T extends { job: Job }>(dues: T[]): T[] {
    const lastStart = (due: T) => this.lastStarted.get(due.job.id) ?? 0;
    return dues.toSorted((a, b) => lastStart(a) - lastStart(b));
  }

  /** A launched run's process started: record it running, and wait for its end. */
  private running(active: Active, runId: number, started: Started): void {
    const { job, scheduledAt } = active;
    active.pid = started.pid;
    // Only a run that started counts: a late one keeps its job first in line.
    this.lastStarted.set(job.id, started.startedAt);
    if (started.pid !== null) this.o.guard?.add(started.pid);
    // When it really started, and the version of the job it runs (a queued
    // run's may have changed since); and its group and marker, so that a
    // service starting after a crash can end what this run left.
    this.o.track(this.o.recorder.update(runId, {
      status: "running",
      started_at: started.startedAt,
      job_updated_at: job.updated_at,
      ...(started.pid === null ? {} : { pgid: started.pid, marker: started.marker }),
    }));
    this.o.observer?.started(job.id, started.startedAt - scheduledAt, active.trigger);
    const { words, values } = this.o.recorder.runWords(runId, job.id, scheduledAt);
    runnerLog.info(`job {job} ${words} started, {lag} ms after its fire time`, {
      job: job.id,
      ...values,
      lag: started.startedAt - scheduledAt,
    });
    active.run.done.then((result) => this.finished(runId, result, active)).catch((error) => {
      const { words, values } = this.o.recorder.runWords(runId, job.id, scheduledAt);
      runnerLog.error(`job {job} ${words}: could not finish its record: {error}`, {
        job: job.id,
        ...values,
        error: String(error),
      });
    });
  }

  /**
   * The database gave `runId`, still `before`'s here, to a new run of
   * `job`: `before` lost its row (see `rowless`).
   */
  private loseRow(runId: number, before: Active, job: string): void {
    this.active.delete(runId);
    this.rowless.set(before, runId);
    // A cancel asked of the old run is not the new one's.
    this.cancelling.delete(runId);
    schedulerLog.error(
      "run {run} of job {was} still runs here, but the database gave its id to a new run of job {job}: jm_runs was emptied while runs were going (TRUNCATE, or dropped and made again by db migrate), and its ids started over; the older run goes on, and its end is written as a new row, not over run {run}, which is the newer one's",
      { run: this.rowId(runId), was: before.job.id, job },
    );
  }

  /** A run that lost its row (see `rowless`) ended, or never started (`result` null). */
  private endedRowless(runId: number, run: Active, result: RunResult | null): void {
    this.rowless.delete(run);
    if (run.pid !== null) this.o.guard?.remove(run.pid);
    const unwatch = () => this.o.guard?.unwatch(run.marker);
    if (result === null) unwatch();
    else run.run.escaped.then(unwatch, unwatch);
    run.slot.release();
    runnerLog.error(
      `job {job}: its run that was run {run} before jm_runs was emptied ended {status} (exit {exit})${
        result === null ? "" : "; its end is written as a new row, its note saying so"
      }`,
      {
        job: run.job.id,
        run: this.rowId(runId),
        status: result?.status ?? "without starting",
        exit: result?.exitCode ?? result?.signal ?? null,
      },
    );
    if (result !== null) {
      const record = finishedRecord(result, run.note);
      this.o.recorder.recordAnew(runId, this.wholeRow(run, record));
    }
    this.o.startWaiting();
  }

  private finished(runId: number, result: RunResult, ended: Active): void {
    if (this.rowless.has(ended)) return this.endedRowless(runId, ended, result);
    const run = this.active.get(runId);
    // Shutdown already recorded a run that outlived its kill.
    if (run !== ended) return;
    this.active.delete(runId);
    if (run.pid !== null) this.o.guard?.remove(run.pid);
    // What left the run's group is looked for a while after its end: the
    // guard watches its marker until then.
    const unwatch = () => this.o.guard?.unwatch(run.marker);
    run.run.escaped.then(unwatch, unwatch);
    run.slot.release();
    this.o.armAfterEnd(run.job.id);
    // What its end leads to (who is told, its retry, its follow-ups) is the job's as it is
    // now: a hook re-pointed or retries changed while it ran apply to it. Removed or
    // disabled since, it is the job it ran; its retry is then queued and skipped, saying why.
    const job = this.o.current(run.job.id) ?? run.job;
    const cancelled = this.cancelling.get(runId);
    this.cancelling.delete(runId);
    const record = cancelled === undefined
      ? finishedRecord(result, run.note)
      : { ...finishedRecord(result, run.note), status: "cancelled" as const, note: cancelled.note };
    // Logged as recorded; a cancel someone asked for is no trouble.
    const level = record.status === "success" || record.status === "cancelled" ? "info" : "warn";
    // An error's why, from its note: during an outage the log is all there is of it.
    const { words, values } = this.o.recorder.runWords(runId, run.job.id, run.scheduledAt);
    runnerLog[level](
      `job {job} ${words} ended {status} (exit {exit}) after {ms} ms, {bytes} bytes of output${
        record.status === "error" ? ": {note}" : ""
      }`,
      {
        job: run.job.id,
        ...values,
        status: record.status,
        exit: result.exitCode ?? result.signal,
        ms: result.finishedAt - result.startedAt,
        bytes: result.outputBytes,
        ...record.status === "error" ? { note: record.note } : {},
      },
    );
    const recorded = this.o.recorder.update(runId, record, this.wholeRow(run, record));
    // Processes that had left the run's group are found a little after its end.
    this.o.track(
      run.run.escaped.then((escaped) =>
        escaped === null ? undefined : this.o.recorder.update(runId, {
          note: [record.note, escaped].filter((n) => n !== null).join("; "),
        })
      ),
    );
    // Every attempt speaks: a retry may never run (the next fire drops it), and
    // notify.min_interval keeps a retried failure from flooding.
    if (cancelled === undefined) {
      this.o.notifier.runEnded(job, {
        id: runId,
        job_id: run.job.id,
        status: result.status,
        exit_code: result.exitCode,
        signal: result.signal,
        scheduled_at: run.scheduledAt,
        started_at: result.startedAt,
        finished_at: result.finishedAt,
        node_id: this.o.nodeId(),
        trigger: run.trigger,
        note: record.note ?? null,
        stdout: result.stdout,
        stderr: result.stderr,
        attempt: run.attempt,
      });
    }
    this.o.observer?.ended(run.job.id, cancelled === undefined ? result.status : "cancelled");
    this.o.startWaiting();
    const followed = this.followedElsewhere.delete(runId) || cancelled?.followed === true;
    const follow = followed ? null : cancelled === undefined
      ? () =>
        this.o.aftermath.ended(job, {
          id: runId,
          status: result.status,
          finishedAt: result.finishedAt,
          attempt: run.attempt,
          firstRunId: run.firstRunId,
          scheduledAt: run.scheduledAt,
        })
      // A retry cancelled: the attempts end in failure with the one before it.
      : run.trigger === "retry"
      ? () =>
        this.o.aftermath.followAttemptBefore(job, {
          attempt: run.attempt,
          first_run_id: run.firstRunId,
        })
      : null;
    // After its record (the update never rejects): a retry or follow-up never precedes its cause.
    // None where the record found the row marked lost by the node that declared this one dead,
    // which retried and followed it: a run that ended during this node's pause, its end seen
    // before the look that finds it was declared dead (`followedElsewhere`), was followed twice
    // (two attempts 2, two follow-ups). An end waiting for the database is judged once written;
    // at a stop, by the recorder's close, which writes what follows it before exit.
    this.o.track(
      follow === null
        ? recorded
        : recorded.then(() =>
          this.o.recorder.afterJudged(runId, (lost) => {
            if (!lost) return follow();
            const { words, values } = this.o.recorder.runWords(runId, run.job.id, run.scheduledAt);
            runnerLog.info(
              `job {job} ${words}: its row was marked lost by the node that declared this one dead, which retried and followed it where its job says so; its end is recorded, and nothing follows it here`,
              { job: run.job.id, ...values },
            );
          })
        ),
    );
  }

  /**
   * The ids of the rows of the runs holding a worker here (one started
   * under a provisional id, by the id its row got; one with no row yet
   * left out).
   */
  get rowIds(): number[] {
    return this.o.recorder.rowIds(this.active.keys());
  }

  /**
   * Run `runId`, running here, had its row marked `lost` by the node that
   * declared this one dead, which followed it: it goes on, its end is
   * recorded as it ends, and nothing follows it here (atk223: a second
   * retry, a second follow-up). False when it does not run here.
   */
  lostElsewhere(runId: number, id: number): boolean {
    const active = this.active.get(runId);
    if (!active) return false;
    this.followedElsewhere.add(runId);
    runnerLog.info(
      "job {job} run {run}: marked lost by the node that declared this one dead, which retried and followed it where its job says so; it goes on here, its end recorded as it ends, and nothing follows it here",
      { job: active.job.id, run: id },
    );
    return true;
  }

  /** Whether run `runId` holds a worker here (its id its row's). */
  runsHere(runId: number): boolean {
    return this.active.has(runId);
  }

  /**
   * End run `runId` if it runs here (`runs cancel`, for `note`): false when
   * it does not. `followed`: what its end leads to was started elsewhere.
   */
  cancelRunning(runId: number, note: string, followed = false): boolean {
    const active = this.active.get(runId);
    if (!active || this.cancelling.has(runId)) return false;
    this.cancelling.set(runId, { note, followed });
    const { words, values } = this.o.recorder.runWords(runId, active.job.id, active.scheduledAt);
    runnerLog.info(`job {job} ${words}: {note}; ending it`, {
      job: active.job.id,
      ...values,
      note,
    });
    active.run.interrupt();
    return true;
  }

  /**
   * At a stop: the runs get `waitMs` (shutdown_timeout) to end, then are
   * interrupted (SIGTERM, SIGKILL after kill_grace); those whose output
   * still did not end are recorded `interrupted` here. All by `deadline`.
   */
  async stop(deadline: Deadline, waitMs: number): Promise<void> {
    // An end that waits for the database is not waited for here: the recorder's close judges it
    // once written, and writes what follows it (followed now as not lost, it was followed twice
    // where the backlog then wrote it over `lost`: atk226).
    this.o.recorder.stopJudging();
    // A run its thread gets to too late never ends: it leaves `active` instead.
    const all = () =>
      Promise.all(
        [...this.active.values(), ...this.rowless.keys()].map((a) =>
          a.run.started.then((started) => "late" in started ? undefined : a.run.done)
        ),
      );
    await deadline.wait(all(), waitMs);
    for (const { run } of [...this.active.values(), ...this.rowless.keys()]) run.interrupt();
    await deadline.wait(all(), this.o.killGraceMs + KILLED_OUTPUT_MS);
    for (const [runId, run] of this.active) {
      this.active.delete(runId);
      const record = this.killedAtStop(run);
      this.o.track(this.o.recorder.update(runId, record, this.wholeRow(run, record)));
    }
    // A run whose id the database gave away ends as the others, in a new row (`endedRowless`
    // ends those whose output did end): left out, it stayed in no row at all.
    for (const [run, runId] of this.rowless) {
      this.rowless.delete(run);
      const record = this.killedAtStop(run);
      runnerLog.error(
        "job {job}: its run that was run {run} before jm_runs was emptied was still running at the stop; it is recorded interrupted in a new row, its note saying so",
        { job: run.job.id, run: this.rowId(runId) },
      );
      this.o.recorder.recordAnew(runId, this.wholeRow(run, record));
    }
  }

  /**
   * The id of the row run `runId` had (one started under a provisional id
   * is known here by it): a run whose row jm_runs gave to another had one.
   */
  private rowId(runId: number): number {
    return runId < 0 ? this.o.recorder.realId(runId) ?? runId : runId;
  }

  /** `run`, still going when the stop's kill grace ended, let go of: its end, to be written. */
  private killedAtStop(run: Active): RunUpdate {
    run.slot.release();
    this.o.observer?.ended(run.job.id, "interrupted");
    return {
      status: "interrupted",
      finished_at: this.o.clock.now(),
      note: "killed: the service was shutting down; its output was not read to the end",
    };
  }

  /** `run`'s row as it stands with its end `record`: written anew if its own is gone (RunRecorder.update). */
  private wholeRow(run: Active, record: RunUpdate): NewRun {
    return {
      job_id: run.job.id,
      scheduled_at: run.scheduledAt,
      trigger: run.trigger,
      attempt: run.attempt,
      first_run_id: run.firstRunId,
      job_updated_at: run.job.updated_at,
      node_id: this.o.nodeId(),
      marker: run.marker,
      pgid: run.pid,
      started_at: run.startedAt,
      ...record,
      status: record.status ?? "interrupted",
    };
  }
}
