/**
 * The slot gate: the one place that decides whether a fire starts now,
 * waits for a worker, or is skipped. Every run of a job that is running or
 * waiting for a worker holds a slot of that job (max_instances counts
 * both); at most max_workers slots hold a worker at once.
 */

export interface Slot {
  readonly jobId: string;
  /** True while the slot holds one of the max_workers workers; false while it waits for one. */
  readonly working: boolean;
  /** Take a free worker for a waiting slot: false when none is free. */
  work(): boolean;
  /** Give the slot, and its worker if it holds one, back. Later calls do nothing. */
  release(): void;
}

export class SlotGate {
  private readonly perJob = new Map<string, number>();
  private busy = 0;

  /** `released`: told of each slot given back, after the gate counts it free. */
  constructor(
    private readonly maxWorkers: number,
    private readonly released: (jobId: string) => void = () => {},
  ) {}

  get workerFree(): boolean {
    return this.busy < this.maxWorkers;
  }

  /** Workers no slot holds. */
  get freeWorkers(): number {
    return this.maxWorkers - this.busy;
  }

  /** Slots `jobId` holds, working or waiting. */
  held(jobId: string): number {
    return this.perJob.get(jobId) ?? 0;
  }

  /**
   * A slot for a run of `jobId`, or null (skip it) while `maxInstances`
   * runs of the job hold slots; pass Infinity for a run that ignores
   * max_instances. The slot holds a worker if one is free (and `work`),
   * else it waits.
   */
  tryAcquire(jobId: string, maxInstances: number, work = true): Slot | null {
    if (this.held(jobId) >= maxInstances) return null;
    const slot = this.slot(jobId, true);
    if (work) slot.work();
    return slot;
  }

  /**
   * A slot of `jobId` for its run on another node, which max_instances
   * counts too (the job moved here while it ran there): it never takes one
   * of this node's workers.
   */
  holdElsewhere(jobId: string): Slot {
    return this.slot(jobId, false);
  }

  private slot(jobId: string, local: boolean): Slot {
    this.perJob.set(jobId, this.held(jobId) + 1);
    let working = false;
    let released = false;
    const slot: Slot = {
      jobId,
      get working() {
        return working;
      },
      work: () => {
        if (released) throw new Error(`a released slot of job ${jobId} cannot take a worker`);
        if (local && !working && this.workerFree) {
          working = true;
          this.busy++;
        }
        return working;
      },
      release: () => {
        if (released) return;
        released = true;
        if (working) this.busy--;
        working = false;
        const left = this.held(jobId) - 1;
        if (left === 0) this.perJob.delete(jobId);
        else this.perJob.set(jobId, left);
        this.released(jobId);
      },
    };
    return slot;
  }
}
