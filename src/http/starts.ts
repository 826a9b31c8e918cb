/**
 * The API makes way for the scheduler while it starts runs. Each second
 * that many jobs share, the scheduler spends a burst of CPU starting their
 * processes (a hundred every-second jobs: a few hundred ms of each second
 * on two cores); API requests answered meanwhile, and their clients, take
 * that CPU from the starts, which then come later. Lowering the HTTP
 * thread's priority (priority.ts) does not stop a client on the same
 * machine, so the API holds new requests instead: the scheduler's thread
 * notes each start in memory shared with the HTTP worker, and a request
 * waits until no run has started for `QUIET_MS`, `MAX_WAIT_MS` at most, so
 * the API answers even while starts never pause. Clients that wait for
 * their answers wait with it, and leave the CPU to the starts too.
 */

/** After a start, this long without another one ends the burst. */
export const QUIET_MS = 50;
/** No request waits longer for a quiet moment. */
export const MAX_WAIT_MS = 1000;
/**
 * Requests handled at once; the others wait at the door, costing nothing.
 * Admitted requests finish whatever starts meanwhile, so few are admitted:
 * a burst begins with little API work ahead of it.
 */
export const MAX_HANDLED = 4;

export interface StartsClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const systemClock: StartsClock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/** The instant of the last start, in memory both threads see. */
export class Starts {
  private readonly last: BigInt64Array;

  /** `memory`: the one given by the other thread's `Starts`, or a new one. */
  constructor(
    readonly memory: SharedArrayBuffer = new SharedArrayBuffer(8),
    private readonly clock: StartsClock = systemClock,
  ) {
    this.last = new BigInt64Array(memory);
  }

  /** A run started (the scheduler's thread). */
  started(): void {
    Atomics.store(this.last, 0, BigInt(this.clock.now()));
  }

  /** Resolves once no run has started for QUIET_MS, or after MAX_WAIT_MS (the HTTP worker). */
  async quiet(): Promise<void> {
    const deadline = this.clock.now() + MAX_WAIT_MS;
    for (;;) {
      const now = this.clock.now();
      const left = Math.min(Number(Atomics.load(this.last, 0)) + QUIET_MS, deadline) - now;
      if (left <= 0) return;
      await this.clock.sleep(left);
    }
  }
}

/** Who may go in: at most MAX_HANDLED requests at once, each once the starts are quiet. */
export class Door {
  private inside = 0;
  private readonly queue: (() => void)[] = [];

  constructor(private readonly starts: Starts, private readonly limit = MAX_HANDLED) {}

  /** Handle a request with `handle` once admitted; the next one goes in when it ends. */
  async through<T>(handle: () => Promise<T>): Promise<T> {
    if (this.inside >= this.limit) {
      await new Promise<void>((resolve) => this.queue.push(resolve));
    } else {
      this.inside++;
    }
    try {
      await this.starts.quiet();
      return await handle();
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.inside--;
    }
  }
}
