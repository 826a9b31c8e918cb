/**
 * Jobs and runs crossing between this node and the others: the slots held
 * here for runs of this node's jobs that run on another node (they count
 * against max_instances as that node's would), and the jobs this node
 * gains, whose fires wait until those slots are held and are then decided
 * from their last recorded fire.
 */
import type { Run } from "../domain/run.ts";
import type { FireAhead, LastFires, RunStore } from "../store/store.ts";
import { type Clock, settlesWithin } from "./clock.ts";
import type { Cluster, Gained } from "./cluster.ts";
import type { DbHealth } from "./db_health.ts";
import type { Slot, SlotGate } from "./slots.ts";
import type { Timetable } from "./timetable.ts";

/**
 * How long a fire waits for the rows of the runs elsewhere it would be
 * skipped for (see `releaseEndedOf`): an indexed read by id, answered in a
 * millisecond or two by a database that answers at all.
 */
const ASK_BEFORE_SKIP_MS = 250;

export interface HandoverOptions {
  store: Pick<RunStore, "activeRunsElsewhere">;
  clock: Clock;
  health: DbHealth;
  cluster: Pick<Cluster, "mayFire">;
  slots: SlotGate;
  timetable: Timetable;
  nodeId(): string;
  /** Whether `jobId` is in the timetable. */
  scheduled(jobId: string): boolean;
  /** The last fire recorded of each job, as of `now`. */
  lastFires(now: number): Promise<LastFires>;
  /**
   * Where a job that last fired at `last` resumes at `now`: not before its
   * current schedule applies from (`appliesFrom`), nor after `now`.
   */
  resumeAfterFire(id: string, last: number, appliesFrom: number | undefined, now: number): number;
  /** Tell of recorded fires too far ahead to resume from. */
  sayAhead(ahead: FireAhead[], now: number): void;
  /** Wake the loop: fires were put back in the timetable. */
  wake(): void;
}

export class Handover {
  /** Jobs just gained, until the runs of theirs elsewhere hold their slots (see `gain`). */
  private readonly gaining = new Set<string>();
  /** The first fire of each job in `gaining` that was held back, to decide again. */
  private readonly heldBack = new Map<string, number>();
  /** Runs on other nodes that hold slots here, by run id (see `holdRunsElsewhere`). */
  private readonly elsewhere = new Map<number, { node: string; slot: Slot }>();
  /** Jobs taken over from a node that is gone, and why: their missed fires say so. */
  private readonly inherited = new Map<string, string>();

  constructor(private readonly o: HandoverOptions) {}

  /** Whether runs elsewhere hold slots here. */
  get holdsAny(): boolean {
    return this.elsewhere.size > 0;
  }

  /**
   * Whether this node fires `jobId`'s fires from `from` now: other nodes
   * fire the other jobs (the claim settles moments of disagreement), and
   * a job just gained waits for the runs elsewhere to hold their slots.
   */
  mayFire(jobId: string, from: number): boolean {
    if (!this.o.cluster.mayFire(jobId)) return false;
    if (!this.gaining.has(jobId)) return true;
    // Decided again once the runs elsewhere hold their slots (see `gain`).
    this.heldBack.set(jobId, Math.min(this.heldBack.get(jobId) ?? Infinity, from));
    return false;
  }

  /** Why `jobId` was taken over from a node that is gone, until its fires are decided. */
  inheritedWhy(jobId: string): string | undefined {
    return this.inherited.get(jobId);
  }

  /** A fire of `jobId` was decided here: its next ones are this node's own. */
  decided(jobId: string): void {
    this.inherited.delete(jobId);
  }

  /**
   * Hold a slot for each run that runs, or waits for a worker, on another
   * live node: a job that moved here while it ran there (a node joined,
   * restarted or left) counts it against max_instances, as that node
   * would have. Polls let each go once its run has ended.
   */
  async holdRunsElsewhere(): Promise<void> {
    this.holdElsewhere(await this.o.store.activeRunsElsewhere(this.o.nodeId()));
  }

  /** Hold a slot of its job for each of `active` not held yet. */
  private holdElsewhere(active: Pick<Run, "id" | "job_id" | "node_id">[]): void {
    for (const run of active) {
      if (this.elsewhere.has(run.id)) continue;
      this.elsewhere.set(run.id, {
        node: run.node_id!,
        slot: this.o.slots.holdElsewhere(run.job_id),
      });
    }
  }

  /** Hold the slots of the runs on other nodes, and let go of those that ended: one query. */
  async syncRunsElsewhere(): Promise<void> {
    // Only those held before asking: a hold taken meanwhile is not in the answer.
    const asked = [...this.elsewhere.keys()];
    const active = await this.o.store.activeRunsElsewhere(this.o.nodeId());
    this.releaseEnded(asked, active);
    this.holdElsewhere(active);
  }

  /** Let go of the slots of runs on other nodes that ended, or whose node is gone. */
  async releaseEndedElsewhere(): Promise<void> {
    // Only those asked about: a hold taken meanwhile is not in the answer.
    const asked = [...this.elsewhere.keys()];
    this.releaseEnded(asked, await this.o.store.activeRunsElsewhere(this.o.nodeId(), asked));
  }

  /** Whether runs on other nodes hold slots of `jobId`. */
  holdsFor(jobId: string): boolean {
    return [...this.elsewhere.values()].some((r) => r.slot.jobId === jobId);
  }

  /**
   * Let go of the slots runs on other nodes hold of `jobIds` where those
   * runs ended, or their node is gone: one query, asked before a fire of
   * theirs is skipped for them, waited for ASK_BEFORE_SKIP_MS at most (the
   * instant's other fires wait with it; an answer that comes later still
   * counts). The poll lets them go too, but it may come after the next
   * fire: a lone node's comes every 5 s while it is watched, and where two
   * nodes started together one may see itself alone for a heartbeat, fire
   * the other's jobs, lose their claims and hold their runs.
   */
  async releaseEndedOf(jobIds: ReadonlySet<string>): Promise<void> {
    // Only those asked about: a hold taken meanwhile is not in the answer.
    const asked = [...this.elsewhere].filter(([, r]) => jobIds.has(r.slot.jobId)).map(([id]) => id);
    if (asked.length === 0 || !this.o.health.online) return;
    const answer = this.o.store.activeRunsElsewhere(this.o.nodeId(), asked).then(
      (active) => this.releaseEnded(asked, active),
      (error) => this.o.health.failed(error),
    );
    await settlesWithin(this.o.clock, answer, ASK_BEFORE_SKIP_MS);
  }

  /** Of the runs elsewhere `asked` about, let go of those not `active` any more. */
  private releaseEnded(asked: number[], active: Pick<Run, "id">[]): void {
    const still = new Set(active.map((run) => run.id));
    for (const id of asked) {
      if (still.has(id)) continue;
      this.elsewhere.get(id)?.slot.release();
      this.elsewhere.delete(id);
    }
  }

  /** ` (N of them on node X)` where runs elsewhere hold slots of `jobId`; else nothing. */
  elsewhereNote(jobId: string): string {
    const nodes = [...this.elsewhere.values()].filter((r) => r.slot.jobId === jobId)
      .map((r) => r.node);
    if (nodes.length === 0) return "";
    const names = [...new Set(nodes)].sort();
    return ` (${nodes.length} of them on node${names.length === 1 ? "" : "s"} ${names.join(", ")})`;
  }

  /**
   * Jobs became this node's: decide their fires since the last one
   * recorded (the node that had them may have died before running them),
   * but not before its current schedule applies from (a disabled stretch,
   * or a schedule it did not have, owes no fire), or, for a job that never
   * fired, since its last change (one added while its owner was dead, not
   * yet declared so), late or missed by the usual grace and coalesce rules.
   */
  gain(gained: Gained): void {
    for (const [job, why] of gained) {
      if (why && this.o.scheduled(job)) this.inherited.set(job, why);
      // Not fired before the runs elsewhere hold their slots: the rewind decides those fires.
      this.gaining.add(job);
    }
    const now = this.o.clock.now();
    // The fires held back meanwhile are decided again, from the last recorded one where known.
    const decideAgain = ({ fires, enabledAt }: Pick<LastFires, "fires" | "enabledAt">) => {
      for (const job of gained.keys()) {
        this.gaining.delete(job);
        const heldBack = this.heldBack.get(job);
        this.heldBack.delete(job);
        // Not in the timetable (disabled, no schedule): nothing to decide.
        const scheduled = this.o.timetable.job(job);
        if (scheduled === undefined) continue;
        const last = fires.get(job);
        const resume = last === undefined
          ? scheduled.updated_at
          : this.o.resumeAfterFire(job, last, enabledAt.get(job), now);
        this.o.timetable.rewind(job, Math.min(resume, (heldBack ?? Infinity) - 1));
      }
      this.o.wake();
    };
    Promise.all([
      this.o.lastFires(now),
      this.holdRunsElsewhere(),
    ]).then(([last]) => {
      this.o.sayAhead(last.ahead, now);
      decideAgain(last);
    }, (error) => {
      decideAgain({ fires: new Map(), enabledAt: new Map() });
      this.o.health.failed(error);
    });
  }
}
