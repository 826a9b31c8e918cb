/**
 * The jobs and reload markers as this service last read them: the first
 * load, the reloads that apply the markers written since (only the
 * difference changes the timetable), SIGHUP's re-read of every job, an
 * emptied jm_update_info, and where each job new to the timetable resumes.
 * The service's polls hand it their state; it tells the service what the
 * timetable now holds.
 */
import { setImmediate } from "node:timers";
import { hasSchedule, type Job, jobProblem, sameDefinition } from "../domain/job.ts";
import { MAX_SKEW_MS } from "../domain/node.ts";
import type {
  FireAhead,
  JobStore,
  LastFires,
  Marker,
  MarkerStore,
  PollState,
  RunStore,
} from "../store/store.ts";
import type { Clock } from "./clock.ts";
import type { Cluster } from "./cluster.ts";
import type { DbHealth } from "./db_health.ts";
import { log } from "./log.ts";
import { type JobDefaults, policyOf, type Timetable } from "./timetable.ts";

/**
 * How far ahead of this node's clock a scheduled fire's row may be and
 * still be where its job resumes: a node fires by its own clock, which may
 * be MAX_SKEW_MS from the database's, so up to twice that from this one's.
 * A row further ahead (written by hand for 2099) is not waited for.
 */
const FIRES_AHEAD_MS = 2 * MAX_SKEW_MS;
const MARKERS_PER_RELOAD = 10_000;
/** Jobs a reload applies between two chances for the timers to run. */
const RELOAD_CHUNK = 200;
/** After a SIGHUP re-read failed, the next is made at a poll this long on or later. */
const REREAD_RETRY_MS = 30_000;
/** Jobs a reload reads per query (see `JobStore.jobsInChunks`). */
const RELOAD_READ_CHUNK = 500;

export interface ReloadOptions {
  store: JobStore & MarkerStore & Pick<RunStore, "lastFires">;
  clock: Clock;
  health: DbHealth;
  /** Told when a reload changed what the heartbeat reports. */
  cluster: Pick<Cluster, "reportSoon">;
  defaults: JobDefaults;
  timetable: Timetable;
  nodeId(): string;
  stopping(): boolean;
  /** The dispatch of due fires under way, if any: a long reload lets it end first. */
  dispatching(): Promise<void> | undefined;
  /** The enabled, valid jobs as read, and the disabled ones that follow one. */
  know(known: Map<string, Job>, idle: Job[]): void;
  /** Every job in the table now (a reload read them all). */
  jobsInTable(ids: ReadonlySet<string>): void;
  /** Job `id` left the timetable. */
  removed(id: string): void;
  /** A reload at `now` changed the timetable; `inTable`: every job in jm_jobs, read at `marker`. */
  reloaded(inTable: ReadonlySet<string>, now: number, marker: number): void;
}

const reloadLog = log("reload");
const schedulerLog = log("scheduler");

export class Reload {
  private lastMarker = 0;
  /** Times jm_update_info was seen emptied: a reload under way then does not move `lastMarker`. */
  private markersEmptied = 0;
  /** When `lastMarker` was inserted, once known: another time there means jm_update_info was emptied. */
  private lastMarkerInserted: string | undefined;
  private reloading: Promise<void> | null = null;
  private reloadAgain = false;
  /** A reload asked to re-read every job, marker or not (SIGHUP), is pending. */
  private rereadEveryJob = false;
  /** A failed SIGHUP re-read is made again from then (ms): not a read of every job each poll. */
  private rereadRetryAt = 0;
  private lastReload: { at: number; ms: number } | null = null;
  /** When every job was last read (the start, a reload): a job a reload finds new was not there then. */
  private readAt = 0;
  /** Markers this node applied that others may not have yet (still `updated = 0`). */
  private readonly appliedHere = new Set<number>();
  /** The runs `sayAhead` told of already. */
  private readonly aheadSaid = new Set<number>();
  /** The time a schedule applies from ahead of this clock told of, by job (`sayWriterAhead`). */
  private readonly appliesFromSaid = new Map<string, number>();

  constructor(private readonly o: ReloadOptions) {}

  /** The last marker applied here. */
  get appliedMarker(): number {
    return this.lastMarker;
  }

  /** When the last reload ran, and how long it took. */
  get last(): { at: number; ms: number } | null {
    return this.lastReload;
  }

  /** The reload under way, if any. */
  get underWay(): Promise<void> | null {
    return this.reloading;
  }

  /**
   * Read every job at the start, at `now`: each enabled, valid one with a
   * schedule goes in the timetable after its last recorded fire. Returns
   * every job read, and the newest marker before it (`appliedUpTo` takes it).
   */
  async load(now: number): Promise<{ jobs: Job[]; latest: number }> {
    const latest = await this.o.store.latestMarkerId();
    const jobs = await this.o.store.listJobs();
    const { fires: lastFires, enabledAt, ahead } = await this.lastFires(now);
    this.sayAhead(ahead, now);
    this.readAt = now;
    const known = new Map<string, Job>();
    const idle: Job[] = [];
    for (const job of jobs) {
      if (!job.enabled && idleFollower(job)) idle.push(job);
      if (!job.enabled || !this.valid(job)) continue;
      known.set(job.id, job);
      // A job without a schedule runs only after another's runs.
      if (!hasSchedule(job)) continue;
      // Resume after the last recorded fire, so fires missed while the
      // service was down are decided (run or recorded missed) right away,
      // as `resumeAfterFire` says. A job that never fired, as `resumeAfter` says.
      const last = lastFires.get(job.id);
      this.o.timetable.set(
        job,
        last === undefined
          ? this.resumeAfter(job, now)
          : this.resumeAfterFire(job.id, last, enabledAt.get(job.id), now),
      );
    }
    this.o.know(known, idle);
    return { jobs, latest };
  }

  /** The markers up to `latest`, read with every job at the start, are applied here. */
  async appliedUpTo(latest: number): Promise<void> {
    const pending = await this.markersToApply(latest);
    await this.applied(pending.filter((m) => !m.updated && m.id <= latest).map((m) => m.id));
    this.lastMarker = latest;
  }

  /** The last fire recorded of each job, as of `now` (those too far ahead apart). */
  lastFires(now: number): Promise<LastFires> {
    return this.o.store.lastFires(now + FIRES_AHEAD_MS);
  }

  /**
   * Reload now; a request during a reload folds into one follow-up. With
   * `everyJob` (SIGHUP) every job is re-read even when no marker is
   * pending, so an `UPDATE jm_jobs` written by hand without a marker is
   * applied too.
   */
  request(everyJob = false): void {
    this.rereadEveryJob ||= everyJob;
    if (this.reloading) {
      this.reloadAgain = true;
      return;
    }
    this.reloading = this.reloadLoop().finally(() => this.reloading = null);
  }

  private async reloadLoop(): Promise<void> {
    do {
      this.reloadAgain = false;
      const everyJob = this.rereadEveryJob;
      this.rereadEveryJob = false;
      try {
        await this.reload(everyJob);
      } catch (error) {
        // The old timetable stays; polling retries once the database answers, SIGHUP's re-read too.
        if (everyJob) {
          this.rereadEveryJob = true;
          this.rereadRetryAt = this.o.clock.now() + REREAD_RETRY_MS;
        }
        reloadLog.warn(
          `reload failed, keeping the current timetable: {error}${
            everyJob
              ? `; every job is re-read (as SIGHUP asked) at a poll ${
                REREAD_RETRY_MS / 1000
              } s on or later`
              : ""
          }`,
          { error: String(error) },
        );
        this.o.health.failed(error);
        return;
      }
    } while (this.reloadAgain && !this.o.stopping());
  }

  /**
   * Apply the markers written since the last poll (a reload, when there
   * are any), and nothing else a poll does: retries and `job run` requests
   * taken first would take the slots of the fires due. Never rejects.
   */
  async applyChanges(): Promise<void> {
    if (this.o.stopping() || !this.o.health.online) return;
    try {
      const asked = this.lastMarker;
      await this.reloadIfMarked(await this.o.store.pollState(this.o.nodeId(), asked), asked);
    } catch (error) {
      this.o.health.failed(error);
    }
  }

  /** `asked`: the marker whose `insert_time` `state` gives. */
  async reloadIfMarked(state: PollState, asked: number): Promise<void> {
    // A reload since the poll asked moved lastMarker on: the answer is of another marker.
    const ofLast = asked === this.lastMarker && asked > 0;
    const known = this.lastMarkerInserted;
    if (
      state.latestMarker < this.lastMarker ||
      (ofLast && (state.markerInserted === null ||
        (known !== undefined && state.markerInserted !== known)))
    ) {
      this.markersWentBack(state.latestMarker);
    } else if (ofLast) this.lastMarkerInserted = state.markerInserted!;
    const reread = this.rereadEveryJob && this.o.clock.now() >= this.rereadRetryAt;
    if (reread || state.latestMarker > this.lastMarker || state.oldestPendingMarker !== null) {
      this.request();
      await this.reloading;
    }
  }

  /**
   * Tell, once each, of the scheduled fires recorded beyond FIRES_AHEAD_MS
   * from `now`, which no job resumes after: one written by hand made its
   * job wait for it without a word. Several at once (this clock stepped
   * back since they were recorded, or a script wrote them) make one line.
   */
  sayAhead(ahead: FireAhead[], now: number): void {
    const fresh = ahead.filter((run) => !this.aheadSaid.has(run.id));
    for (const run of fresh) this.aheadSaid.add(run.id);
    if (fresh.length === 1) {
      const [run] = fresh;
      const at = new Date(run.scheduled_at);
      schedulerLog.warn(
        "job {job}: run {run} is recorded as its fire of {at}, {ahead} s ahead of this service's clock; the job goes on from its fires before it, not from then. If the row was written by hand, remove it: DELETE FROM jm_runs WHERE id = {run}",
        {
          job: run.job_id,
          run: run.id,
          at: Number.isNaN(at.getTime()) ? run.scheduled_at : at.toISOString(),
          ahead: Math.round((run.scheduled_at - now) / 1000),
        },
      );
    } else if (fresh.length > 1) {
      const ids = fresh.map((run) => run.id).join(", ");
      schedulerLog.warn(
        "{count} runs of {jobs} are recorded as fires up to {ahead} s ahead of this service's clock; their jobs go on from their fires before them, not from then. If this clock was stepped back since they ran, they are real and nothing needs doing; if the rows were written by hand, remove them: DELETE FROM jm_runs WHERE id IN ({ids})",
        {
          count: fresh.length,
          jobs: jobsNamed([...new Set(fresh.map((run) => run.job_id))]),
          ahead: Math.round((Math.max(...fresh.map((run) => run.scheduled_at)) - now) / 1000),
          ids,
        },
      );
    }
  }

  /**
   * Where a job that last fired at `last` resumes at `now` (the start, a
   * node taking it over): after that fire, but not before its current
   * schedule applies from (`appliesFrom`: jm_jobs.enabled_at, when it was
   * last enabled or given other fire times; unknown for a job from before
   * schema 18, or enabled in SQL), so that neither the fires of a stretch it
   * was disabled nor those of a schedule it did not have yet are owed. That
   * time is the writer's clock: one ahead of this one is taken as `now`, and
   * said (`sayWriterAhead`).
   */
  resumeAfterFire(id: string, last: number, appliesFrom: number | undefined, now: number): number {
    if (appliesFrom === undefined) return last;
    this.sayWriterAhead(id, appliesFrom, "when it was last enabled or its schedule changed", now);
    return Math.max(last, Math.min(appliesFrom, now));
  }

  /**
   * Where a job that never fired here (new, or enabled) resumes: after its
   * last change, but no more than its grace ago, so that a first fire due
   * during a restart runs late, and one added while no service ran is not
   * owed its fires since. A job a reload finds changed after `seenAt`, the
   * previous read of every job, is owed every fire since that change: one
   * between the change and the reload that applies it runs late, or is
   * recorded missed (the poll can take longer than the grace), rather than
   * vanish. (A change by hand that left `updated_at` as it was is not known
   * to be that recent: the grace bounds it, as at the start.) In whole
   * seconds, when no fire falls between: jobs changed in the same second
   * ask their schedule the same question, answered once (croner.ts). A
   * change the writer's clock put ahead of this one is taken as `now`, and
   * said (`sayWriterAhead`).
   */
  private resumeAfter(job: Job, now: number, seenAt = Infinity): number {
    this.sayWriterAhead(job.id, job.updated_at, "when it was last written: its updated_at", now);
    const from = job.updated_at > seenAt
      ? job.updated_at
      : Math.max(job.updated_at, now - policyOf(job, this.o.defaults).graceMs);
    return from >= now ? now : Math.floor(from / 1000) * 1000;
  }

  /**
   * Tell that job `id`'s schedule applies from `at` (`what` set it), more
   * than MAX_SKEW_MS ahead of `now`: the writer's clock was ahead, and the
   * job goes on from now (waiting for `at`, it would fire nothing and
   * record nothing), so the fires between the write and now that no
   * service ran are not owed. Once per job and write: a reload, a takeover
   * or a start that meets the same time again says nothing more.
   */
  private sayWriterAhead(id: string, at: number, what: string, now: number): void {
    if (at - now <= MAX_SKEW_MS || this.appliesFromSaid.get(id) === at) return;
    this.appliesFromSaid.set(id, at);
    schedulerLog.warn(
      `job {job}: its schedule applies from {at} (${what}), {ahead} s ahead of this service's clock: the clock of the host that wrote it was ahead. It goes on from now, not from then: its fires due between that write and now that no service ran (it was down, or its node was, or the write was not applied yet) are neither run nor recorded missed. Fix that host's time sync (NTP)`,
      { job: id, at: new Date(at).toISOString(), ahead: Math.round((at - now) / 1000) },
    );
  }

  private valid(job: Job): boolean {
    const problem = jobProblem(job);
    if (problem !== null) {
      reloadLog.error("job {job} is invalid and is not scheduled: {error}", {
        job: job.id,
        error: problem,
      });
    }
    return problem === null;
  }

  /**
   * The newest marker is older than the last one applied, or the last one
   * applied is gone or inserted again: jm_update_info was emptied
   * (TRUNCATE, or dropped and made again by `db migrate`), and its ids
   * start over. Markers are taken from the first again, and every job is
   * read again: a change whose marker went with the table is in jm_jobs
   * all the same. (Left so, the new markers' ids, up to the last one
   * applied, were taken for applied: no change applied until the ids
   * passed the old ones, thousands of changes later.)
   */
  private markersWentBack(latest: number): void {
    reloadLog.warning(
      "reload marker {last}, the last one applied here, is gone or was inserted again (the newest is {latest}): jm_update_info was emptied or made again; every job is read again, and its markers are applied from the first",
      { latest, last: this.lastMarker },
    );
    this.lastMarker = 0;
    this.lastMarkerInserted = undefined;
    this.markersEmptied++;
    this.appliedHere.clear();
    this.rereadEveryJob = true;
  }

  /**
   * Markers newer than `afterId`, and older ones still pending: on MySQL a
   * marker can commit after one with a higher id (two writers at once), and
   * must not be skipped for it.
   */
  private async markersToApply(afterId: number): Promise<Marker[]> {
    const oldestPending = await this.o.store.oldestPendingMarkerId();
    const from = oldestPending === null ? afterId : Math.min(afterId, oldestPending - 1);
    if (oldestPending !== null) {
      for (const id of this.appliedHere) if (id < oldestPending) this.appliedHere.delete(id);
    }
    return (await this.o.store.listMarkers(from, MARKERS_PER_RELOAD))
      .filter((m) => m.id > afterId || (!m.updated && !this.appliedHere.has(m.id)));
  }

  /**
   * Record that this node applied markers `ids`; each becomes `updated`
   * once every live node has applied it.
   */
  private async applied(ids: number[]): Promise<void> {
    await this.o.store.recordApplied(this.o.nodeId(), ids);
    for (const id of ids) this.appliedHere.add(id);
    await this.o.store.settleMarkers();
  }

  /**
   * Apply the markers after the last applied one: only the difference
   * changes. `everyJob`: re-read every job though no marker is pending.
   */
  private async reload(everyJob: boolean): Promise<void> {
    const started = performance.now();
    const emptied = this.markersEmptied;
    const markers = await this.markersToApply(this.lastMarker);
    if (markers.length === 0 && !everyJob) return;
    const counts = { added: 0, changed: 0, removed: 0, unchanged: 0 };
    const seen = new Set<string>();
    const inTable = new Set<string>();
    const known = new Map<string, Job>();
    const idle: Job[] = [];
    // One instant for the whole reload: a job new to the timetable is owed
    // its fires up to it (resumeAfter), a changed schedule goes on from it.
    const now = this.o.clock.now();
    for await (const jobs of this.o.store.jobsInChunks(RELOAD_READ_CHUNK)) {
      for (let i = 0; i < jobs.length; i++) {
        // Compiling thousands of schedules takes a while: let due fires go first.
        if (i % RELOAD_CHUNK === RELOAD_CHUNK - 1) await this.giveWay();
        const job = jobs[i];
        inTable.add(job.id);
        if (!job.enabled) {
          if (idleFollower(job)) idle.push(job);
          continue;
        }
        if (!hasSchedule(job)) {
          // Out of the timetable (removed, if it had a schedule before): it runs only after another.
          if (this.valid(job)) known.set(job.id, job);
          continue;
        }
        const current = this.o.timetable.job(job.id);
        if (current && sameDefinition(current, job)) {
          seen.add(job.id);
          counts.unchanged++;
          known.set(job.id, job);
        } else if (this.valid(job)) {
          seen.add(job.id);
          // A new schedule of a job that fired here goes on from now: what it fired stays fired.
          this.o.timetable.set(job, current ? now : this.resumeAfter(job, now, this.readAt));
          known.set(job.id, job);
          counts[current ? "changed" : "added"]++;
        }
        // Made invalid (by hand: writes refuse it): its old definition leaves the timetable too.
      }
      await this.giveWay();
    }
    this.readAt = now;
    this.o.know(known, idle);
    this.o.jobsInTable(inTable);
    for (const id of this.o.timetable.ids()) {
      if (!seen.has(id)) {
        this.o.timetable.delete(id);
        this.o.removed(id);
        counts.removed++;
      }
    }
    const ids = markers.map((m) => m.id);
    // The timetable changed: the loop sleeps till the new first fire, not till the writes below.
    this.o.reloaded(inTable, now, Math.max(this.lastMarker, ...ids));
    // Its markers went with an emptied table (their ids may come again):
    // not recorded, and the reload that follows starts from the first.
    if (emptied === this.markersEmptied) {
      await this.applied(ids.filter((_, i) => !markers[i].updated));
    }
    const last = Math.max(this.lastMarker, ...ids);
    if (last !== this.lastMarker && emptied === this.markersEmptied) {
      this.lastMarker = last;
      this.lastMarkerInserted = markers.find((m) => m.id === last)?.insert_time;
    }
    this.lastReload = { at: now, ms: Math.round(performance.now() - started) };
    this.o.cluster.reportSoon();
    const summary =
      "{added} added, {changed} changed, {removed} removed, {unchanged} unchanged in {ms} ms";
    if (ids.length === 0) {
      reloadLog.info(`reload re-read every job (no marker pending): ${summary}`, {
        ...counts,
        ms: this.lastReload.ms,
      });
    } else {
      reloadLog.info(`reload applied markers {first}-{last}: ${summary}`, {
        first: ids[0],
        last: this.lastMarker,
        ...counts,
        ms: this.lastReload.ms,
      });
    }
  }

  /**
   * Let due fires go before more of a long task (a reload): the timers run
   * (setImmediate, not setTimeout(0): nested timeouts wait 4 ms each), and
   * a dispatch under way ends, its claim's round trips not each waiting
   * for a slice of the task.
   */
  private async giveWay(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    // Its failure is the run loop's to report, not the task's.
    await this.o.dispatching()?.catch(() => undefined);
  }
}

/** A disabled job whose link a run's end would follow, were it enabled (a valid row). */
function idleFollower(job: Job): boolean {
  return job.after_job !== null && jobProblem(job) === null;
}

/** `job a` when one, else `3 jobs`. */
function jobsNamed(ids: string[]): string {
  return ids.length === 1 ? `job ${ids[0]}` : `${ids.length} jobs`;
}
