/**
 * What a run's end leads to: its retry, when the job retries that outcome
 * and attempts are left, else a run of each job following it whose outcome
 * matches (a disabled follower's turn recorded `skipped`). Each is a
 * `queued` row any service takes once due, as `job run` requests are; a
 * retry still pending when the job's next scheduled fire is claimed is
 * dropped, unless the job keeps it (`--retry-overlap`).
 */
import { afterMatches, followCycle, type Job, retryDelayMs, retryOn } from "../domain/job.ts";
import type { NewRun, RowKey, Run, RunStatus } from "../domain/run.ts";
import type { RunStore } from "../store/store.ts";
import { idWord } from "../domain/shell.ts";
import { isUnreachable } from "../errors.ts";
import type { Clock } from "./clock.ts";
import { log } from "./log.ts";
import type { RunRecorder } from "./recorder.ts";

/** Pending retries of one job a fire looks at to drop. */
const PENDING_RETRIES = 100;
/** Instants a retry or follow-up row may move by when its own instant is taken. */
const QUEUE_TRIES = 10;

/** How a run ended, as the retry and follow-up decisions need it. */
export interface Ended {
  id: number;
  status: RunStatus;
  finishedAt: number;
  attempt: number;
  firstRunId: number | null;
  /** Its instant: a scheduled fire of a later one started by its end drops its retry. */
  scheduledAt: number;
  /** Its retry was dropped: no other comes, its follow-ups start now. */
  retryDropped?: boolean;
}

export interface AftermathOptions {
  store: RunStore;
  clock: Clock;
  recorder: Pick<RunRecorder, "claim" | "realId">;
  nodeId(): string;
  observer?: { ended(jobId: string, status: RunStatus): void };
  /** A retry or follow-up row is due at `instant`: poll then. */
  dueAt(instant: number): void;
  /**
   * The database gave `runId` to a retry or follow-up row of `jobId`: a
   * run here still holding that id lost its row (jm_runs emptied).
   */
  idTaken(runId: number, jobId: string, row?: RowKey): void;
  /** A run ended before its record was written: look for it soon (see `awaitingRecords`). */
  recordAwaited(): void;
}

const schedulerLog = log("scheduler");
const reloadLog = log("reload");

export class Aftermath {
  /** By job: the enabled jobs that follow it. */
  private followers = new Map<string, Job[]>();
  /** By job: the disabled jobs that follow it, whose turns are recorded skipped. */
  private idleFollowers = new Map<string, Job[]>();
  /**
   * Runs that ended while the database was away, by provisional id: their
   * retry or follow-ups are queued once the record gives them a real id.
   */
  private readonly endsToFollow = new Map<number, { job: Job; ended: Ended }>();
  /**
   * By job whose retries the next fire drops: its last scheduled fire
   * claimed, and when. A run of an earlier instant that ended no later
   * (the fire was queued behind it) has its retry dropped at once.
   */
  private readonly nextFireOf = new Map<string, { at: number; id: number; scheduledAt: number }>();
  /** Fires whose drop of their job's pending retries met the database away, by job. */
  private readonly dropsOwed = new Map<
    string,
    { job: Job; id: number; scheduledAt: number; warned: boolean }
  >();

  constructor(private readonly o: AftermathOptions) {}

  /** Runs ended while the database was away wait for their records. */
  get awaitingRecords(): boolean {
    return this.endsToFollow.size > 0;
  }

  /**
   * The enabled, valid jobs as loaded (`known`) and the disabled jobs that
   * follow one (`idle`): who follows whom.
   */
  know(known: Map<string, Job>, idle: Job[]): void {
    this.followers = new Map();
    this.idleFollowers = new Map();
    for (const job of idle) {
      this.idleFollowers.set(job.after_job!, [
        ...this.idleFollowers.get(job.after_job!) ?? [],
        job,
      ]);
    }
    for (const id of this.nextFireOf.keys()) if (!known.has(id)) this.nextFireOf.delete(id);
    for (const id of this.dropsOwed.keys()) if (!known.has(id)) this.dropsOwed.delete(id);
    for (const job of known.values()) {
      if (job.after_job === null) continue;
      // Writes refuse cycles; one written by hand in SQL would run for ever.
      const cycle = followCycle(known, job);
      if (cycle !== null) {
        reloadLog.error(
          "job {job}: its follow-up link closes a cycle, {cycle}, and is ignored (fix it with `jobsmanager job update --after '' {jobWord}`)",
          { job: job.id, cycle: cycle.join(" → "), jobWord: idWord(job.id) },
        );
        continue;
      }
      this.followers.set(job.after_job, [...this.followers.get(job.after_job) ?? [], job]);
    }
  }

  /**
   * A run ended: queue its retry when its outcome is one the job retries
   * on and attempts are left; else queue a run of each job following it
   * whose outcome matches. Queued rows (`queued`, no node) are taken by
   * any service once due, as `job run` requests are.
   */
  async ended(job: Job, ended: Ended): Promise<void> {
    const retryable = job.retries > 0 && retryOn(job).includes(ended.status);
    const retries = retryable && ended.attempt <= job.retries && !ended.retryDropped;
    if (retryable && !retries && !ended.retryDropped) {
      const known = ended.id < 0 ? this.o.recorder.realId(ended.id) : ended.id;
      schedulerLog.warn(
        "job {job} run {run} ended {status}: attempt {attempt}/{attempts}, no retry left",
        {
          job: job.id,
          run: typeof known === "number" ? known : "(not recorded yet)",
          status: ended.status,
          attempt: ended.attempt,
          attempts: job.retries + 1,
        },
      );
    }
    const followers = (this.followers.get(job.id) ?? [])
      .filter((f) => afterMatches(f.after_outcome!, ended.status));
    const idle = retries ? [] : (this.idleFollowers.get(job.id) ?? [])
      .filter((f) => afterMatches(f.after_outcome!, ended.status));
    if (!retries && followers.length === 0 && idle.length === 0) return;
    let id = ended.id;
    if (id < 0) {
      const real = this.o.recorder.realId(id);
      // Another service had claimed the fire: its run is the one retried and followed.
      if (real === null) return;
      if (real === undefined) {
        // Ended while the database was away: queued once its record is written.
        this.endsToFollow.set(id, { job, ended });
        this.o.recordAwaited();
        schedulerLog.info(
          "job {job}: its run ended {status} while the database was away; its {what} is queued once its record is written",
          { job: job.id, status: ended.status, what: retries ? "retry" : "follow-up" },
        );
        return;
      }
      id = real;
    }
    if (retries) {
      const first = ended.firstRunId ?? id;
      const at = ended.finishedAt + retryDelayMs(job, ended.attempt, id);
      const retryId = await this.queue({
        job_id: job.id,
        job_updated_at: job.updated_at,
        scheduled_at: at,
        status: "queued",
        trigger: "retry",
        attempt: ended.attempt + 1,
        first_run_id: first,
        note: `retry: run ${id} ended ${ended.status}`,
      });
      schedulerLog.info(
        "job {job} run {run} ended {status}: attempt {attempt}/{attempts} (run {retry}) at {at}",
        {
          job: job.id,
          run: id,
          status: ended.status,
          attempt: ended.attempt + 1,
          attempts: job.retries + 1,
          retry: retryId,
          at: new Date(at).toISOString(),
        },
      );
      const next = this.nextFireOf.get(job.id);
      if (next && next.at >= ended.finishedAt && next.scheduledAt > ended.scheduledAt) {
        await this.dropRetries(job, next.id, next.scheduledAt);
      }
      return;
    }
    for (const follower of followers) {
      const runId = await this.queue({
        job_id: follower.id,
        job_updated_at: follower.updated_at,
        scheduled_at: ended.finishedAt,
        status: "queued",
        trigger: "after",
        parent_run_id: id,
        note: `after run ${id} of ${job.id} ended ${ended.status}`,
      });
      schedulerLog.info("job {job} run {run} ended {status}: follow-up job {follower} (run {id})", {
        job: job.id,
        run: id,
        status: ended.status,
        follower: follower.id,
        id: runId,
      });
    }
    // A disabled follower does not run; its row says why its turn passed.
    for (const follower of idle) {
      const runId = await this.queue({
        job_id: follower.id,
        job_updated_at: follower.updated_at,
        scheduled_at: ended.finishedAt,
        status: "skipped",
        trigger: "after",
        parent_run_id: id,
        node_id: this.o.nodeId(),
        finished_at: ended.finishedAt,
        note: `not run: the job is disabled (after run ${id} of ${job.id} ended ${ended.status})`,
      });
      if (runId !== null) this.o.observer?.ended(follower.id, "skipped");
    }
  }

  /** Queue the retries and follow-ups of the runs in `endsToFollow` whose records are written. */
  async followRecordedEnds(): Promise<void> {
    for (const [provisional, { job, ended }] of this.endsToFollow) {
      const real = this.o.recorder.realId(provisional);
      if (real === undefined) continue;
      this.endsToFollow.delete(provisional);
      if (real !== null) await this.ended(job, { ...ended, id: real });
    }
  }

  /**
   * Insert a retry or follow-up row, waiting for any service to take it at
   * its instant. Only the node that saw its cause inserts it, so an instant
   * already taken (two runs ending in the same ms) moves it on by one ms.
   */
  private async queue(row: NewRun): Promise<number | null> {
    for (let i = 0; i < QUEUE_TRIES; i++) {
      const queued = { ...row, scheduled_at: row.scheduled_at + i };
      const [id] = await this.o.recorder.claim([queued]);
      if (id !== null) {
        this.o.idTaken(id, row.job_id, queued);
        this.o.dueAt(row.scheduled_at + i);
        return id;
      }
    }
    schedulerLog.error(
      "job {job}: could not queue its {trigger} run: {tries} instants from {at} were all taken",
      {
        job: row.job_id,
        trigger: row.trigger,
        tries: QUEUE_TRIES,
        at: new Date(row.scheduled_at).toISOString(),
      },
    );
    return null;
  }

  /**
   * A scheduled fire of `job` was claimed as run `id`: its pending retries
   * are dropped; with the database away (its outage said once, by the
   * health check), at the first poll once it answers (`settleDrops`).
   */
  async fired(job: Job, id: number, scheduledAt: number): Promise<void> {
    if (job.retries === 0 || job.retry_overlap) return;
    this.nextFireOf.set(job.id, { at: this.o.clock.now(), id, scheduledAt });
    try {
      await this.dropRetries(job, id, scheduledAt, true);
      // An earlier fire's drop that waited is this one's too.
      this.dropsOwed.delete(job.id);
    } catch (error) {
      if (!isUnreachable(error)) throw error;
      this.dropsOwed.set(job.id, { job, id, scheduledAt, warned: false });
    }
  }

  /** Whether fires' drops of pending retries wait for the database (see `fired`). */
  get owesDrops(): boolean {
    return this.dropsOwed.size > 0;
  }

  /**
   * Make the drops of pending retries that waited for the database. One
   * that fails again waits for the next poll, said once: the poll goes on
   * (a database truly away fails its own reads).
   */
  async settleDrops(): Promise<void> {
    for (const [jobId, owed] of this.dropsOwed) {
      // A later fire came since: its drop is made, or waits in this one's place.
      if (this.nextFireOf.get(jobId)?.id !== owed.id) {
        this.dropsOwed.delete(jobId);
        continue;
      }
      try {
        await this.dropRetries(owed.job, owed.id, owed.scheduledAt, true);
        this.dropsOwed.delete(jobId);
      } catch (error) {
        if (owed.warned) continue;
        owed.warned = true;
        schedulerLog.warn(
          "job {job}: its pending retries, which the fire at {at} drops, could not be read: {error}; tried again at each poll",
          { job: jobId, at: new Date(owed.scheduledAt).toISOString(), error: String(error) },
        );
      }
    }
  }

  /**
   * A scheduled fire of `job` was claimed: retries of earlier runs still
   * pending are dropped (`skipped`, saying why), unless the job keeps them
   * (`--retry-overlap`). Not the fire's own: a run that failed at once may
   * have queued its retry before this look was answered. `queuedBefore`:
   * only retries queued before the fire was claimed (a look made as it
   * fired, or later for it); those of runs that end later are `ended`'s.
   */
  private async dropRetries(
    job: Job,
    fireId: number,
    scheduledAt: number,
    queuedBefore = false,
  ): Promise<void> {
    const queued = await this.o.store.listRuns({
      job_id: job.id,
      status: "queued",
      limit: PENDING_RETRIES,
    });
    // A fire started under a provisional id: its retries name the id its row got.
    const own = fireId < 0 ? this.o.recorder.realId(fireId) : fireId;
    const pending = queued.filter((r) =>
      r.trigger === "retry" && r.node_id === null && r.id !== own && r.first_run_id !== own &&
      !(queuedBefore && typeof own === "number" && r.id > own)
    );
    for (const retry of pending) {
      const dropped = await this.o.store.updateRun(retry.id, {
        status: "skipped",
        node_id: this.o.nodeId(),
        finished_at: this.o.clock.now(),
        // A fire started while the database was away has no id yet: its instant names it.
        note: `retry dropped: the next scheduled fire (${fireId < 0 ? "" : `run ${fireId} `}at ${
          new Date(scheduledAt).toISOString()
        }) came before it ran (--retry-overlap keeps retries)`,
      }, "queued");
      if (!dropped) continue;
      this.o.observer?.ended(job.id, "skipped");
      schedulerLog.info("job {job}: retry run {run} dropped, the next fire came first", {
        job: job.id,
        run: retry.id,
      });
      await this.followAttemptBefore(job, retry);
    }
  }

  /**
   * A retry that will not run (dropped, skipped, cancelled): the attempt it
   * would have retried is the last, and its failure follow-ups start now.
   */
  async followAttemptBefore(
    job: Job,
    retry: Pick<Run, "attempt" | "first_run_id">,
  ): Promise<void> {
    const failed = (await this.o.store.listRuns({ job_id: job.id, limit: PENDING_RETRIES }))
      .find((r) =>
        r.attempt === retry.attempt - 1 &&
        (r.id === retry.first_run_id || r.first_run_id === retry.first_run_id)
      );
    if (!failed) return;
    await this.ended(job, {
      id: failed.id,
      status: failed.status,
      finishedAt: failed.finished_at ?? this.o.clock.now(),
      attempt: failed.attempt,
      firstRunId: failed.first_run_id,
      scheduledAt: failed.scheduled_at,
      retryDropped: true,
    });
  }
}
