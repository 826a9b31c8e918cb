/**
 * The running service: fires the timetable on time, gates fires through
 * max_instances and max_workers, records every fire in `jm_runs`, applies
 * reload markers, and shuts down cleanly. Decisions come from the pure
 * timetable; this class owns the timers, the processes and the writes.
 */
import { type Job, sameDefinition, validateJob } from "../domain/job.ts";
import { log } from "./log.ts";
import type { NewRun, Run, RunUpdate } from "../domain/run.ts";
import type { Marker, Store } from "../store/store.ts";
import { type Clock, settlesWithin } from "./clock.ts";
import { backoff, RunRecorder } from "./recorder.ts";
import { finishedRecord, runEnv, type RunHandle, type RunResult, startRun } from "./runner.ts";
import { type Decision, type Due, type JobDefaults, Timetable } from "./timetable.ts";

export interface ServiceOptions {
  store: Store;
  clock: Clock;
  nodeId: string;
  defaults: JobDefaults;
  reloadIntervalMs: number;
  maxWorkers: number;
  shutdownTimeoutMs: number;
  killGraceMs: number;
  outputCap: number;
  /** The environment every run starts from (secrets already removed). */
  baseEnv: Record<string, string>;
}

/** No timer waits longer than this: the clock is re-read, so suspend and clock jumps heal. */
const MAX_SLEEP_MS = 30_000;
const MARKERS_PER_RELOAD = 10_000;
const MANUAL_RUNS_PER_POLL = 100;
/** A fire waits at most this long for its claim before it starts anyway. */
const CLAIM_TIMEOUT_MS = 1000;
const MAX_BUFFERED_RECORDS = 10_000;
/** At shutdown, how long buffered run records may take to reach the database. */
const FINAL_WRITE_MS = 5000;

export interface ServiceState {
  jobsLoaded: number;
  appliedMarker: number;
  lastReload: { at: number; ms: number } | null;
}
/** Jobs a reload applies between two chances for the timers to run. */
const RELOAD_CHUNK = 500;

interface Active {
  job: Job;
  handle: RunHandle;
}

function coalescedNote(due: Due): string | null {
  return due.coalesced > 0 ? `coalesced ${due.coalesced + 1} fires into one run` : null;
}

interface Waiting {
  due: Due;
  runId: number;
}

const schedulerLog = log("scheduler");
const runnerLog = log("runner");
const reloadLog = log("reload");

export class Service {
  private readonly timetable: Timetable;
  private readonly active = new Map<number, Active>();
  /** Runs of each job that are running or waiting for a worker. */
  private readonly perJob = new Map<string, number>();
  private readonly waiting: Waiting[] = [];
  /** Writes of finished runs still in flight; shutdown waits for them. */
  private readonly writes = new Set<Promise<unknown>>();
  private lastMarker = 0;
  private stopping = false;
  private wake = new AbortController();
  private reloading: Promise<void> | null = null;
  private reloadAgain = false;
  private polling = false;
  private lastReload: { at: number; ms: number } | null = null;
  /** Run records, kept through database outages. */
  readonly recorder: RunRecorder;

  constructor(private readonly o: ServiceOptions) {
    this.timetable = new Timetable(o.defaults);
    this.recorder = new RunRecorder(o.store, o.clock, {
      claimTimeoutMs: CLAIM_TIMEOUT_MS,
      maxBuffered: MAX_BUFFERED_RECORDS,
      retryDelayMs: backoff,
    });
  }

  /** What the heartbeat reports. */
  get state(): ServiceState {
    return {
      jobsLoaded: this.timetable.size,
      appliedMarker: this.lastMarker,
      lastReload: this.lastReload,
    };
  }

  /** Recover from a crash, load every enabled job, and apply pending markers. */
  async start(): Promise<void> {
    const now = this.o.clock.now();
    const orphans = await this.o.store.interruptOrphans(this.o.nodeId, now);
    if (orphans > 0) {
      schedulerLog.warn("{count} runs left running by a previous service were marked interrupted", {
        count: orphans,
      });
    }
    const latest = await this.o.store.latestMarkerId();
    const jobs = await this.o.store.listJobs();
    const lastFires = await this.o.store.lastFires();
    for (const job of jobs) {
      if (!job.enabled || !this.valid(job)) continue;
      // Resume after the last recorded fire, so fires missed while the
      // service was down are decided (run or recorded missed) right away.
      this.timetable.set(job, lastFires.get(job.id) ?? now);
    }
    const pending = await this.markersToApply(latest);
    await this.o.store.markApplied(
      pending.filter((m) => !m.updated && m.id <= latest).map((m) => m.id),
    );
    this.lastMarker = latest;
    schedulerLog.info("loaded {jobs} enabled jobs of {total}; last marker {marker}", {
      jobs: this.timetable.size,
      total: jobs.length,
      marker: latest,
    });
  }

  /** Fire until `stop()`, then shut down. */
  async run(): Promise<void> {
    let nextPoll = this.o.clock.now();
    while (!this.stopping) {
      const now = this.o.clock.now();
      const decision = this.timetable.takeDue(now);
      if (decision.run.length > 0 || decision.missed.length > 0) await this.dispatch(decision, now);
      if (now >= nextPoll) {
        nextPoll = now + this.o.reloadIntervalMs;
        this.poll();
      }
      const wakeAt = Math.min(this.timetable.nextDue() ?? Infinity, nextPoll, now + MAX_SLEEP_MS);
      this.wake = new AbortController();
      if (!this.stopping) await this.o.clock.sleep(wakeAt - this.o.clock.now(), this.wake.signal);
    }
    await this.shutdown();
  }

  /** Begin a graceful stop: no new fires; running jobs get shutdown_timeout. */
  stop(): void {
    this.stopping = true;
    this.wake.abort();
  }

  /** Reload now (SIGHUP); a request during a reload folds into one follow-up. */
  requestReload(): void {
    if (this.reloading) {
      this.reloadAgain = true;
      return;
    }
    this.reloading = this.reloadLoop().finally(() => this.reloading = null);
  }

  private async reloadLoop(): Promise<void> {
    do {
      this.reloadAgain = false;
      try {
        await this.reload();
      } catch (error) {
        // The old timetable stays; polling retries once the database answers.
        reloadLog.warn("reload failed, keeping the current timetable: {error}", {
          error: String(error),
        });
        this.recorder.failed(error);
        return;
      }
    } while (this.reloadAgain && !this.stopping);
  }

  private poll(): void {
    // While the database is away the recorder probes it; polling resumes after.
    if (this.polling || this.stopping || !this.recorder.online) return;
    this.polling = true;
    (async () => {
      const [latest, oldestPending] = await Promise.all([
        this.o.store.latestMarkerId(),
        this.o.store.oldestPendingMarkerId(),
      ]);
      if (latest > this.lastMarker || oldestPending !== null) {
        this.requestReload();
        await this.reloading;
      }
      await this.takeManualRuns();
    })().catch((error) => this.recorder.failed(error)).finally(() => this.polling = false);
  }

  private valid(job: Job): boolean {
    try {
      validateJob(job);
      return true;
    } catch (error) {
      reloadLog.error("job {job} is invalid and is not scheduled: {error}", {
        job: job.id,
        error: (error as Error).message,
      });
      return false;
    }
  }

  /**
   * Markers newer than `afterId`, and older ones still pending: on MySQL a
   * marker can commit after one with a higher id (two writers at once), and
   * must not be skipped for it.
   */
  private async markersToApply(afterId: number): Promise<Marker[]> {
    const oldestPending = await this.o.store.oldestPendingMarkerId();
    const from = oldestPending === null ? afterId : Math.min(afterId, oldestPending - 1);
    return (await this.o.store.listMarkers(from, MARKERS_PER_RELOAD))
      .filter((m) => m.id > afterId || !m.updated);
  }

  /** Apply the markers after the last applied one: only the difference changes. */
  private async reload(): Promise<void> {
    const started = performance.now();
    const markers = await this.markersToApply(this.lastMarker);
    if (markers.length === 0) return;
    const jobs = await this.o.store.listJobs();
    const now = this.o.clock.now();
    const counts = { added: 0, changed: 0, removed: 0, unchanged: 0 };
    const seen = new Set<string>();
    for (const [i, job] of jobs.entries()) {
      // Compiling thousands of schedules takes a while: let due fires go first.
      if (i % RELOAD_CHUNK === RELOAD_CHUNK - 1) {
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
      if (!job.enabled) continue;
      const current = this.timetable.job(job.id);
      seen.add(job.id);
      if (current && sameDefinition(current, job)) {
        counts.unchanged++;
      } else if (this.valid(job)) {
        this.timetable.set(job, now);
        counts[current ? "changed" : "added"]++;
      }
    }
    for (const id of this.timetable.ids()) {
      if (!seen.has(id)) {
        this.timetable.delete(id);
        counts.removed++;
      }
    }
    const ids = markers.map((m) => m.id);
    await this.o.store.markApplied(ids.filter((_, i) => !markers[i].updated));
    this.lastMarker = Math.max(this.lastMarker, ...ids);
    this.lastReload = { at: now, ms: Math.round(performance.now() - started) };
    this.wake.abort();
    reloadLog.info(
      "reload applied markers {first}-{last}: {added} added, {changed} changed, {removed} removed, {unchanged} unchanged in {ms} ms",
      { first: ids[0], last: this.lastMarker, ...counts, ms: this.lastReload.ms },
    );
  }

  private instances(jobId: string): number {
    return this.perJob.get(jobId) ?? 0;
  }

  private countInstance(jobId: string, delta: number): void {
    const n = this.instances(jobId) + delta;
    if (n <= 0) this.perJob.delete(jobId);
    else this.perJob.set(jobId, n);
  }

  /** Record what the timetable decided, then start what may start. */
  private async dispatch(decision: Decision, now: number): Promise<void> {
    const rows: NewRun[] = [];
    const plans: ({ kind: "start" | "wait"; due: Due } | null)[] = [];
    for (const m of decision.missed) {
      const grace = this.timetable.policy(m.job.id)?.graceMs ?? 0;
      rows.push({
        job_id: m.job.id,
        scheduled_at: m.last,
        status: "missed",
        trigger: "schedule",
        node_id: this.o.nodeId,
        finished_at: now,
        note: `${m.more ? "more than " : ""}${m.count} fire${m.count === 1 ? "" : "s"} from ${
          new Date(m.first).toISOString()
        } to ${new Date(m.last).toISOString()} came later than misfire_grace_time (${
          grace / 1000
        } s)`,
      });
      plans.push(null);
      schedulerLog.warn("job {job}: {count} fires missed", { job: m.job.id, count: m.count });
    }
    let planned = this.active.size;
    for (const due of decision.run) {
      const policy = this.timetable.policy(due.job.id)!;
      const base = {
        job_id: due.job.id,
        scheduled_at: due.scheduledAt,
        trigger: "schedule" as const,
        node_id: this.o.nodeId,
      };
      if (this.instances(due.job.id) >= policy.maxInstances) {
        rows.push({
          ...base,
          status: "skipped",
          finished_at: now,
          note: `max_instances (${policy.maxInstances}) runs were still running`,
        });
        plans.push(null);
        schedulerLog.info("job {job}: fire skipped, max_instances reached", { job: due.job.id });
        continue;
      }
      this.countInstance(due.job.id, 1);
      const start = planned < this.o.maxWorkers;
      if (start) planned++;
      rows.push({
        ...base,
        status: start ? "running" : "queued",
        started_at: start ? now : null,
        note: coalescedNote(due),
      });
      plans.push({ kind: start ? "start" : "wait", due });
    }
    const ids = await this.recorder.claim(rows);
    plans.forEach((plan, i) => {
      if (!plan) return;
      const id = ids[i];
      if (id === null) {
        // Another node or an earlier life of this one claimed it.
        this.countInstance(plan.due.job.id, -1);
      } else if (plan.kind === "start") {
        this.launch(plan.due.job, id, plan.due.scheduledAt, coalescedNote(plan.due));
      } else {
        this.waiting.push({ due: plan.due, runId: id });
      }
    });
    // Runs may have ended while the claim was written: their workers are free now.
    this.startWaiting();
  }

  /** Start a claimed run; `note` (coalesced, forced) is kept in its record when it ends. */
  private launch(job: Job, runId: number, scheduledAt: number, note: string | null): void {
    const handle = startRun({
      command: job.command,
      env: runEnv(this.o.baseEnv, job, runId, scheduledAt),
      cwd: job.cwd ?? undefined,
      timeoutMs: job.timeout * 1000,
      killGraceMs: this.o.killGraceMs,
      outputCap: this.o.outputCap,
    }, () => this.o.clock.now());
    this.active.set(runId, { job, handle });
    runnerLog.info("job {job} run {run} started, {lag} ms after its fire time", {
      job: job.id,
      run: runId,
      lag: handle.startedAt - scheduledAt,
    });
    handle.done.then((result) => this.finished(job, runId, result, note)).catch((error) => {
      runnerLog.error("job {job} run {run}: could not finish its record: {error}", {
        job: job.id,
        run: runId,
        error: String(error),
      });
    });
  }

  private finished(job: Job, runId: number, result: RunResult, claimNote: string | null): void {
    this.active.delete(runId);
    this.countInstance(job.id, -1);
    const level = result.status === "success" ? "info" : "warn";
    runnerLog[level](
      "job {job} run {run} ended {status} (exit {exit}) after {ms} ms, {bytes} bytes of output",
      {
        job: job.id,
        run: runId,
        status: result.status,
        exit: result.exitCode ?? result.signal,
        ms: result.finishedAt - result.startedAt,
        bytes: result.outputBytes,
      },
    );
    this.track(this.recorder.update(runId, finishedRecord(result, claimNote)));
    this.startWaiting();
  }

  /** Give free workers to waiting fires, oldest first; too late ones are missed. */
  private startWaiting(): void {
    while (this.waiting.length > 0 && this.active.size < this.o.maxWorkers && !this.stopping) {
      const { due, runId } = this.waiting.shift()!;
      const now = this.o.clock.now();
      const grace = this.timetable.policy(due.job.id)?.graceMs ??
        this.o.defaults.misfireGraceTime * 1000;
      if (now - due.scheduledAt > grace) {
        this.countInstance(due.job.id, -1);
        this.track(this.recorder.update(runId, {
          status: "missed",
          finished_at: now,
          note: `waited ${
            now - due.scheduledAt
          } ms for a free worker (max_workers ${this.o.maxWorkers})`,
        }));
        continue;
      }
      this.track(this.recorder.update(runId, { status: "running", started_at: now }));
      this.launch(due.job, runId, due.scheduledAt, coalescedNote(due));
    }
  }

  /** Take `job run` requests: same max_instances gate unless forced. */
  private async takeManualRuns(): Promise<void> {
    const requests = await this.o.store.queuedManualRuns(MANUAL_RUNS_PER_POLL);
    for (const request of requests) {
      if (this.stopping || this.active.size >= this.o.maxWorkers) return;
      await this.takeManualRun(request);
    }
  }

  private async takeManualRun(request: Run): Promise<void> {
    const now = this.o.clock.now();
    const job = await this.o.store.getJob(request.job_id);
    // Shutdown may have begun meanwhile: leave the request for the next service.
    if (this.stopping) return;
    const claim = (update: RunUpdate) =>
      this.o.store.updateRun(request.id, { node_id: this.o.nodeId, ...update }, "queued");
    if (!job) {
      await claim({
        status: "error",
        finished_at: now,
        note: "the job was removed before the run started",
      });
      return;
    }
    const maxInstances = job.max_instances ?? this.o.defaults.maxInstances;
    if (!request.forced && this.instances(job.id) >= maxInstances) {
      await claim({
        status: "skipped",
        finished_at: now,
        note: `max_instances (${maxInstances}) runs were still running`,
      });
      return;
    }
    this.countInstance(job.id, 1);
    if (await claim({ status: "running", started_at: now })) {
      if (this.stopping) {
        this.countInstance(job.id, -1);
        this.track(this.recorder.update(request.id, {
          status: "interrupted",
          finished_at: this.o.clock.now(),
          note: "the service stopped before the run started",
        }));
        return;
      }
      this.launch(job, request.id, request.scheduled_at, request.note);
    } else {
      this.countInstance(job.id, -1);
    }
  }

  private track(write: Promise<unknown>): void {
    const tracked = write.catch((error) => {
      schedulerLog.error("could not write a run record: {error}", { error: String(error) });
    }).finally(() => this.writes.delete(tracked));
    this.writes.add(tracked);
  }

  private async shutdown(): Promise<void> {
    schedulerLog.info("stopping: {running} runs running, waiting up to {seconds} s for them", {
      running: this.active.size,
      seconds: this.o.shutdownTimeoutMs / 1000,
    });
    const now = this.o.clock.now();
    for (const { runId, due } of this.waiting.splice(0)) {
      this.countInstance(due.job.id, -1);
      this.track(this.recorder.update(runId, {
        status: "interrupted",
        finished_at: now,
        note: "the service stopped before a worker was free",
      }));
    }
    const all = () => Promise.all([...this.active.values()].map((a) => a.handle.done));
    const timeout = new AbortController();
    await Promise.race([all(), this.o.clock.sleep(this.o.shutdownTimeoutMs, timeout.signal)]);
    timeout.abort();
    for (const { handle } of this.active.values()) handle.interrupt();
    await all();
    // Run records go through the recorder, which buffers what the database refuses;
    // only a database that hangs (no answer at all) can hold these up, and not for long.
    await settlesWithin(
      this.o.clock,
      Promise.all([this.reloading, ...this.writes]),
      FINAL_WRITE_MS,
    );
    await this.recorder.close(FINAL_WRITE_MS);
    schedulerLog.info("stopped");
  }
}
