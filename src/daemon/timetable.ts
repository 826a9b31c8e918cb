/**
 * The timetable: each enabled job's next fire, and what to do with fires
 * that are due. Pure: every method takes the current time as an argument;
 * the service owns the clock and the timers.
 */
import { type Job, scheduleText } from "../domain/job.ts";
import { compileSchedule, type Schedule, scheduleOrOutline } from "../cron/croner.ts";

/** Service-wide defaults for what a job leaves null. */
export interface JobDefaults {
  timezone: string;
  coalesce: boolean;
  maxInstances: number;
  /** Seconds. */
  misfireGraceTime: number;
}

/** A job's effective policy, its nulls resolved. */
export interface Policy {
  zone: string;
  coalesce: boolean;
  maxInstances: number;
  graceMs: number;
}

/**
 * However small the grace, a fire started within this of its instant is on
 * time: the dispatch itself takes a few milliseconds, and a grace of 0
 * must not turn every fire into a miss.
 */
export const MIN_GRACE_MS = 250;

export function policyOf(
  job: Pick<Job, "timezone" | "coalesce" | "max_instances" | "misfire_grace_time">,
  defaults: JobDefaults,
): Policy {
  return {
    zone: job.timezone ?? defaults.timezone,
    coalesce: job.coalesce ?? defaults.coalesce,
    maxInstances: job.max_instances ?? defaults.maxInstances,
    graceMs: Math.max(MIN_GRACE_MS, (job.misfire_grace_time ?? defaults.misfireGraceTime) * 1000),
  };
}

/** A job's policy fields when it sets none. */
const NO_POLICY = { timezone: null, coalesce: null, max_instances: null, misfire_grace_time: null };

/**
 * The one grace rule: a fire may still start at `now` when it is at most
 * the grace late. The timetable asks it of due fires, the service of fires
 * that waited for a worker.
 */
export function onTime(fire: number, now: number, policy: Pick<Policy, "graceMs">): boolean {
  return now - fire <= policy.graceMs;
}

/** Fires of one job that came too late to run, as one summary. */
export interface Missed {
  job: Job;
  policy: Policy;
  first: number;
  last: number;
  /** How many fires; at least this many when `more` is set. */
  count: number;
  more: boolean;
}

/** A fire to run now. `coalesced` counts the earlier fires folded into it. */
export interface Due {
  job: Job;
  /**
   * The job's policy when the fire was taken: a reload meanwhile changes
   * it only for a fire not started yet (waiting_fires.ts `rebase`).
   */
  policy: Policy;
  scheduledAt: number;
  coalesced: number;
}

export interface Decision {
  run: Due[];
  missed: Missed[];
}

/**
 * Split the due fires of one job (ascending, all <= now) into those to run
 * and those missed: late beyond the grace is missed; with coalesce only the
 * latest fire is considered and the earlier ones fold into it.
 */
export function decideLate(
  fires: number[],
  now: number,
  policy: Pick<Policy, "graceMs" | "coalesce">,
): { run: number[]; missed: number[]; coalesced: number } {
  if (fires.length === 0) return { run: [], missed: [], coalesced: 0 };
  const inTime = (f: number) => onTime(f, now, policy);
  if (policy.coalesce) {
    const latest = fires[fires.length - 1];
    return inTime(latest)
      ? { run: [latest], missed: [], coalesced: fires.length - 1 }
      : { run: [], missed: fires, coalesced: 0 };
  }
  return { run: fires.filter(inTime), missed: fires.filter((f) => !inTime(f)), coalesced: 0 };
}

/** Most fires of one job enumerated in one step; beyond it they are counted as "more". */
const MAX_FIRES_PER_STEP = 1000;
/** A job whose outline fires this soon after it is set is compiled at once (see `set`). */
const COMPILE_AHEAD_MS = 60_000;
/** Cron fires are whole seconds apart at the least. */
const MIN_FIRE_GAP_MS = 1000;

interface Entry {
  job: Job;
  policy: Policy;
  /** The job's schedule; its outline while `roughFrom` is set. */
  schedule: Schedule;
  /**
   * Next fire (ms), or null when the schedule never fires again; while
   * `roughFrom` is set, the outline's, which the job's own is not before.
   */
  next: number | null;
  /**
   * Set when `next` was just taken on time and the one after it is not
   * computed yet: croner needs tens of microseconds per job, which should
   * not stand between a due fire and its start.
   */
  advanceFrom?: number;
  /**
   * Set while the job's own schedule is not compiled (see
   * `scheduleOrOutline`): its next fire is its first after this instant,
   * found once the outline's fire is the earliest.
   */
  roughFrom?: number;
}

export class Timetable {
  private readonly entries = new Map<string, Entry>();
  /** Entries whose next fire is still to compute (see `Entry.advanceFrom`). */
  private pending: Entry[] = [];
  /** Entries known by their outline (see `Entry.roughFrom`). */
  private readonly rough = new Set<Entry>();
  /**
   * The earliest next fire of any exact entry (null: none fires again),
   * or undefined when a change may have moved it: then the next `nextDue`
   * finds it again. A service polling while nothing is due asks
   * `takeDue` and `nextDue` without walking every job.
   */
  private earliest: number | null | undefined = null;
  /** The earliest outline fire of a rough entry, kept like `earliest`. */
  private roughEarliest: number | null | undefined = null;

  /** The policy of a job that sets none of its own. */
  private readonly defaultPolicy: Policy;

  constructor(private readonly defaults: JobDefaults) {
    this.defaultPolicy = policyOf(NO_POLICY, defaults);
  }

  get size(): number {
    return this.entries.size;
  }

  job(id: string): Job | undefined {
    return this.entries.get(id)?.job;
  }

  /** The policy job `id`'s fires are decided by, while it is here. */
  policy(id: string): Policy | undefined {
    return this.entries.get(id)?.policy;
  }

  ids(): string[] {
    return [...this.entries.keys()];
  }

  /**
   * Schedule `job`, its first fire strictly after `after` (ms), or after
   * its old schedule's fire that is due and not taken yet. A job already
   * here whose schedule and zone did not change keeps its next fire, so
   * changing a command never skips or repeats a fire.
   */
  set(job: Job, after: number): void {
    this.advance();
    // Most jobs leave every policy field to the defaults: they share one policy.
    const policy = job.timezone === null && job.coalesce === null && job.max_instances === null &&
        job.misfire_grace_time === null
      ? this.defaultPolicy
      : policyOf(job, this.defaults);
    const old = this.entries.get(job.id);
    if (old && old.policy.zone === policy.zone && scheduleText(old.job) === scheduleText(job)) {
      old.job = job;
      old.policy = policy;
      return;
    }
    if (old) this.forget(old);
    // A fire of the old schedule due and not taken yet (a change applied just before an
    // instant's fires are taken) is decided by the new one: a reload at the instant would skip it.
    if (old?.next != null && old.next <= after) after = old.next - 1;
    // Thousands of new schedules are ordered by their outlines, and each
    // compiled when it is about to fire, not all at once in a reload.
    let { schedule, exact } = scheduleOrOutline(job, policy.zone);
    let next = schedule.nextAfterMs(after);
    if (!exact && next !== null && next - after <= COMPILE_AHEAD_MS) {
      // About to fire: compiled now, between the steps of the reload that
      // adds it, not in one go with the others when its outline's fire comes.
      schedule = compileSchedule(job, policy.zone);
      next = schedule.nextAfterMs(after);
      exact = true;
    }
    const roughFrom = exact ? undefined : after;
    const entry: Entry = { job, policy, schedule, next, advanceFrom: undefined, roughFrom };
    this.entries.set(job.id, entry);
    if (exact) {
      this.sooner(next);
      return;
    }
    this.rough.add(entry);
    if (
      next !== null && this.roughEarliest !== undefined &&
      (this.roughEarliest === null || next < this.roughEarliest)
    ) {
      this.roughEarliest = next;
    }
  }

  /** A fire at `next` was added: it may be the new earliest. */
  private sooner(next: number | null): void {
    if (
      next !== null && this.earliest !== undefined &&
      (this.earliest === null || next < this.earliest)
    ) {
      this.earliest = next;
    }
  }

  /** `entry` leaves the timetable (or is replaced): the earliest is found again if it was its. */
  private forget(entry: Entry): void {
    if (this.rough.delete(entry)) {
      if (entry.next === this.roughEarliest) this.roughEarliest = undefined;
    } else if (entry.next === this.earliest) {
      this.earliest = undefined;
    }
  }

  /**
   * Compile the schedule of every rough entry whose outline fires at `at`
   * or before, and give it its own next fire (the same or later).
   */
  private refine(at: number): void {
    const earliest = this.roughEarliest;
    if (earliest === null || (earliest !== undefined && earliest > at)) return;
    for (const entry of this.rough) {
      if (entry.next === null || entry.next > at) continue;
      entry.schedule = compileSchedule(entry.job, entry.policy.zone);
      entry.next = entry.schedule.nextAfterMs(entry.roughFrom!);
      entry.roughFrom = undefined;
      this.rough.delete(entry);
      this.sooner(entry.next);
    }
    this.roughEarliest = undefined;
  }

  /**
   * Bring the next fire of job `id` back to the first one after `after`,
   * when that is earlier: fires another node was to run (it died) or that
   * could not be claimed (an outage) are decided again, late.
   */
  rewind(id: string, after: number): void {
    this.advance();
    const entry = this.entries.get(id);
    if (!entry) return;
    const next = entry.schedule.nextAfterMs(after);
    if (next === null || (entry.next !== null && next >= entry.next)) return;
    entry.next = next;
    if (entry.roughFrom === undefined) {
      this.sooner(next);
      return;
    }
    // Its own first fire after the earlier instant is the first of the two.
    entry.roughFrom = Math.min(entry.roughFrom, after);
    if (this.roughEarliest !== undefined && (this.roughEarliest ?? Infinity) > next) {
      this.roughEarliest = next;
    }
  }

  delete(id: string): boolean {
    this.advance();
    const entry = this.entries.get(id);
    if (entry) this.forget(entry);
    return this.entries.delete(id);
  }

  /** Compute the next fire of every job whose fire was just taken. */
  private advance(): void {
    if (this.pending.length === 0) return;
    for (const entry of this.pending) {
      if (entry.advanceFrom === undefined) continue;
      entry.next = entry.schedule.nextAfterMs(entry.advanceFrom);
      entry.advanceFrom = undefined;
      this.sooner(entry.next);
    }
    this.pending = [];
  }

  /** The earliest next fire of any job, or null when none will fire. */
  nextDue(): number | null {
    this.advance();
    for (;;) {
      this.earliest ??= earliestOf(this.entries.values(), (e) => e.roughFrom === undefined);
      this.roughEarliest ??= earliestOf(this.rough, () => true);
      // No job fires before its outline: an exact fire sooner than every outline's is the first.
      if (this.roughEarliest === null || (this.earliest ?? Infinity) < this.roughEarliest) {
        return this.earliest;
      }
      this.refine(this.roughEarliest);
    }
  }

  /** The jobs whose next fire is at `at`, as a `takeDue` then would take them, on time. */
  dueAt(at: number): { job: Job; policy: Policy }[] {
    this.advance();
    this.refine(at);
    const due: { job: Job; policy: Policy }[] = [];
    for (const { job, policy, next } of this.entries.values()) {
      if (next === at) due.push({ job, policy });
    }
    return due;
  }

  /** Job `id` as `dueAt(at)` would list it, when its next fire is at `at`; else null. */
  dueAtFor(id: string, at: number): { job: Job; policy: Policy } | null {
    this.advance();
    const entry = this.entries.get(id);
    if (entry === undefined || entry.roughFrom !== undefined || entry.next !== at) return null;
    return { job: entry.job, policy: entry.policy };
  }

  /**
   * Take every fire due at `now` or before, move each job past `now`, and
   * decide. A fire taken on time is returned before the job's following
   * fire is computed; `nextDue` (or the next `takeDue`) computes it.
   */
  takeDue(now: number): Decision {
    this.advance();
    const decision: Decision = { run: [], missed: [] };
    const earliest = this.nextDue();
    if (earliest === null || earliest > now) return decision;
    this.refine(now);
    // Fires are taken: the earliest is found again once their next ones are known.
    this.earliest = undefined;
    for (const entry of this.entries.values()) {
      if (entry.next === null || entry.next > now) continue;
      if (now - entry.next < MIN_FIRE_GAP_MS && onTime(entry.next, now, entry.policy)) {
        // The usual case: one fire, on time, and no other can be due yet.
        decision.run.push({
          job: entry.job,
          policy: entry.policy,
          scheduledAt: entry.next,
          coalesced: 0,
        });
        entry.advanceFrom = entry.next;
        entry.next = null;
        this.pending.push(entry);
        continue;
      }
      const fires: number[] = [];
      let next: number | null = entry.next;
      while (next !== null && next <= now && fires.length < MAX_FIRES_PER_STEP) {
        fires.push(next);
        next = entry.schedule.nextAfterMs(next);
      }
      let more = false;
      if (next !== null && next <= now) {
        // Too many to list (a long outage of a frequent job): skip ahead.
        more = true;
        next = entry.schedule.nextAfterMs(now);
      }
      entry.next = next;
      const { job, policy } = entry;
      const { run, missed, coalesced } = decideLate(fires, now, policy);
      for (const scheduledAt of run) decision.run.push({ job, policy, scheduledAt, coalesced });
      if (missed.length > 0 || more) {
        const all = missed.length > 0 ? missed : fires;
        decision.missed.push({
          job,
          policy,
          first: all[0],
          last: more ? fires[fires.length - 1] : all[all.length - 1],
          count: all.length,
          more,
        });
      }
    }
    return decision;
  }
}

/** The earliest next fire of the entries that `counts`, or null when none fires again. */
function earliestOf(entries: Iterable<Entry>, counts: (entry: Entry) => boolean): number | null {
  let min: number | null = null;
  for (const e of entries) {
    if (e.next !== null && (min === null || e.next < min) && counts(e)) min = e.next;
  }
  return min;
}
