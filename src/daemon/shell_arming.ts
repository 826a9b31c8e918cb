/**
 * The shells armed ahead of an instant's fires (runner.ts ArmedShell), so
 * that the fire only releases them: when to arm them, how many (free
 * workers, a burst's share, the open-file limit), which jobs get them, and
 * handing each to its fire or disarming it. The service's loop says when
 * the next instant is; its dispatch takes the shells armed for it.
 */
import type { Job } from "../domain/job.ts";
import type { Clock } from "./clock.ts";
import type { Armed, ArmRun, LaunchSpec } from "./runner.ts";
import type { SlotGate } from "./slots.ts";
import type { Due, Policy, Timetable } from "./timetable.ts";
import { newMarker } from "./processes.ts";

/**
 * How long before a fire the shells of its runs are armed: ARM_MS, or
 * some time for each, so that a burst's shells are all there at its
 * instant; up to ARM_MAX_MS, and at least ARM_AFTER_FIRES_MS after the
 * fires before (a job whose run still runs then is armed when it ends). A
 * shell takes ARM_PER_SHELL_MS, or SPAWN_SHARE times what a spawn holds
 * the thread that makes it: a spawn takes 1–2 ms on a quick machine, 3–6
 * on a slow one, where 500 shells took 3 s; and the thread does other
 * work between its spawns (the runs' ends and records, its own log). With
 * 1.5 times, 100 every-second jobs were armed 500 ms ahead, and under a
 * flood of 10,000 log lines a second 15 % of them were not armed by their
 * instant, started anew, up to 200 ms late.
 */
const ARM_MS = 500;
const ARM_PER_SHELL_MS = 3;
const SPAWN_SHARE = 2.5;
const ARM_AFTER_FIRES_MS = 200;
const ARM_MAX_MS = 5000;
/**
 * A burst's shells, at most, for each free worker: a burst of quick runs
 * goes through its workers several times within a grace of a second or
 * two, and each shell beyond is a process that waits on its stdin for
 * nothing. (Those its lane has not armed by the instant start anew.)
 */
const BURST_SHELLS_PER_WORKER = 4;
/** Descriptors an armed shell holds in the service: its three pipes and its process (a pidfd). */
const FILES_PER_SHELL = 4;
/** An instant with no fire this long before it is alone: a burst, not every-second jobs. */
const ALONE_AFTER_MS = 2500;

/** A run's shell armed for a fire of `job` (see `arm`). */
export interface ArmedFire {
  /** The job as armed: a reload that changed it replaces this object in the timetable. */
  job: Job;
  /** Its JM_RUN_MARKER, recorded with the claim. */
  marker: string;
  shell: Armed;
}

export interface ShellArmingOptions {
  clock: Clock;
  timetable: Timetable;
  slots: SlotGate;
  /** Arms a run's shell; none: each run is started at its fire, and nothing is armed. */
  armRun?: ArmRun;
  /** How long a spawn holds the thread that makes it, in ms; none: 0. */
  spawnCost?: () => number;
  /** Descriptors the process may still open; none: no bound. */
  fileRoom?: () => number;
  /** What the runner runs for a run of `job` (run id 0: not claimed yet). */
  runSpec(job: Job, runId: number, scheduledAt: number, marker: string): LaunchSpec;
  /** Whether this node fires `jobId` (another node's fires get no shell here). */
  mayFire(jobId: string): boolean;
  /** `dues` in the order the workers go to them. */
  inTurn<T extends { job: Job }>(dues: T[]): T[];
  /** Whether nothing more is armed: the service stops, or the database is away. */
  stopping(): boolean;
  online(): boolean;
  /** Fires waiting for a worker: an armed shell would be released before them. */
  waiting(): number;
}

export class ShellArming {
  /**
   * The shells armed for the fires at `at`, by job id; how many fires are
   * due then, and how many shells more the open-file limit left room for
   * when they were armed (see `armAfterEnd`).
   */
  private armed: { at: number; fires: Map<string, ArmedFire>; due: number; room: number } = {
    at: NaN,
    fires: new Map(),
    due: 0,
    room: 0,
  };
  /** How long before the fires at `at` their shells are armed. */
  private armLead = { at: NaN, ms: ARM_MS };
  /** When fires were last dispatched. */
  private lastFired = -Infinity;

  constructor(private readonly o: ShellArmingOptions) {}

  /** The instant the shells are armed for (NaN: none). */
  get at(): number {
    return this.armed.at;
  }

  /** Fires were dispatched at `now`: the next instant's lead and burst are counted from it. */
  fired(now: number): void {
    this.lastFired = now;
  }

  /**
   * When to arm the shells of the fires at `at`: sized by how many are due
   * then, counted ARM_MAX_MS before.
   */
  armAt(at: number, now: number): number {
    if (this.o.armRun === undefined || at === Infinity) return Infinity;
    if (this.armLead.at !== at) {
      if (at - now > ARM_MAX_MS) return at - ARM_MAX_MS;
      const count = Math.min(this.o.timetable.dueAt(at).length, this.armable(at));
      const longest = Math.min(
        ARM_MAX_MS,
        Math.max(ARM_MS, at - this.lastFired - ARM_AFTER_FIRES_MS),
      );
      const perShell = Math.max(ARM_PER_SHELL_MS, SPAWN_SHARE * (this.o.spawnCost?.() ?? 0));
      this.armLead = { at, ms: Math.min(longest, Math.max(ARM_MS, Math.ceil(count * perShell))) };
    }
    return at - this.armLead.ms;
  }

  /**
   * How many shells to arm for the fires at `at`: as many as workers are
   * free; for an instant that does not follow fires closely (a burst, not
   * the next second of every-second jobs), its fires that will wait for a
   * worker too (released as one frees up: a write to a pipe, not a spawn
   * then), up to BURST_SHELLS_PER_WORKER times as many. Never more than
   * their descriptors fit under the open-file limit.
   */
  private armable(at: number): number {
    const wanted = this.wantedShells(at);
    return wanted === 0 ? 0 : Math.min(wanted, this.shellRoom());
  }

  /** `armable` but for the open-file limit. */
  private wantedShells(at: number): number {
    const alone = at - this.lastFired > ALONE_AFTER_MS;
    return (alone ? BURST_SHELLS_PER_WORKER : 1) * this.o.slots.freeWorkers;
  }

  /** Shells whose descriptors fit under the open-file limit (a pass over /proc/self/fd). */
  private shellRoom(): number {
    return Math.floor((this.o.fileRoom?.() ?? Infinity) / FILES_PER_SHELL);
  }

  /**
   * Arm the shells of the fires at `at` (those armed before are disarmed):
   * the jobs this node fires, as many as `armable`, skipping those whose
   * max_instances runs still run.
   */
  arm(at: number): void {
    this.disarm();
    this.armed.at = at;
    if (this.o.armRun === undefined || this.o.stopping() || at === Infinity) return;
    const wanted = this.wantedShells(at);
    const room = wanted === 0 ? 0 : this.shellRoom();
    let free = Math.min(wanted, room);
    const dues = this.o.timetable.dueAt(at);
    // Fewer shells than fires: they go to the fires that will get the workers.
    for (const due of this.o.inTurn(dues)) {
      if (free === 0) break;
      if (this.armOne(due, at)) free--;
    }
    this.armed.due = dues.length;
    this.armed.room = room - this.armed.fires.size;
  }

  /** Arm a shell for `due`'s fire at `at`, unless another node fires it or its runs fill its max_instances. */
  private armOne({ job, policy }: { job: Job; policy: Policy }, at: number): boolean {
    if (!this.o.mayFire(job.id) || this.o.slots.held(job.id) >= policy.maxInstances) {
      return false;
    }
    const marker = newMarker();
    const shell = this.o.armRun!(this.o.runSpec(job, 0, at, marker));
    this.armed.fires.set(job.id, { job, marker, shell });
    return true;
  }

  /**
   * A run of `jobId` ended: if the shells of the next instant are armed and
   * the job fires then, it gets its shell now (its run filled its
   * max_instances when they were armed). Only while a worker is free for
   * each fire of that instant and none waits for one: an armed shell is
   * released before the fires that wait, and this job, having run last,
   * is the last of them in turn. The open-file room is the one counted
   * when the others were armed, less theirs: a run's end does not read
   * /proc again.
   */
  armAfterEnd(jobId: string): void {
    const { at, fires, due, room } = this.armed;
    if (this.o.armRun === undefined || !(at > this.o.clock.now()) || fires.has(jobId)) return;
    if (this.o.stopping() || !this.o.online() || room === 0) return;
    if (this.o.waiting() > 0 || due > this.o.slots.freeWorkers) return;
    const fire = this.o.timetable.dueAtFor(jobId, at);
    if (fire !== null && this.armOne(fire, at)) this.armed.room--;
  }

  /** Disarm every shell armed, for whichever instant. */
  disarm(): void {
    for (const fire of this.take(Infinity).values()) fire.shell.disarm();
    this.armed.at = NaN;
  }

  /** The shells armed for fires at `now` or before, no longer kept here. */
  take(now: number): Map<string, ArmedFire> {
    const { at, fires } = this.armed;
    if (!(at <= now) || fires.size === 0) return new Map();
    this.armed.fires = new Map();
    return fires;
  }

  /** The shell armed for `due` (out of `armed`), if one was and the job did not change since. */
  armedFor(armed: Map<string, ArmedFire>, due: Due): ArmedFire | null {
    const fire = armed.get(due.job.id);
    if (fire === undefined || fire.job !== due.job || due.scheduledAt !== this.armed.at) {
      return null;
    }
    armed.delete(due.job.id);
    return fire;
  }
}
