/**
 * Time, injected: policy code asks a Clock, never `Date.now()`, so tests
 * drive it without sleeping.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /**
   * Resolve after `ms`, or as soon as `signal` aborts. Never rejects.
   * `precise`: for a fire's instant, which the system clock keeps to a
   * millisecond by blocking the thread for the last few.
   */
  sleep(ms: number, signal?: AbortSignal, precise?: boolean): Promise<void>;
}

/**
 * Timers fire 1-3 ms late. The system clock's precise sleep therefore ends
 * its timer this much early and blocks the thread for the rest (a futex
 * wait, no spinning), so a fire starts within a millisecond of its
 * instant. Other waits (polls, sweeps, back-offs) do not block: the
 * thread hears the runs' ends meanwhile.
 */
export const PRECISE_TAIL_MS = 4;
const futex = new Int32Array(new SharedArrayBuffer(4));

/**
 * The time is the system's wall clock, read anew each time: a clock
 * stepped while the service runs (NTP's first sync, `date -s`, a VM
 * restored) moves the fires with it. (The monotonic clock plus the wall
 * time at start, used before, kept every fire off by the step until a
 * restart, and made the service report its own clock as off the
 * database's.) A sleep is measured on the monotonic clock; a precise one
 * also waits out what the wall clock still lacks of its end (a slewed
 * clock: a few ms at most; more, and the clock was stepped back).
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal, precise = false) =>
    new Promise((resolve) => {
      if (signal?.aborted || ms <= 0) return resolve();
      const deadline = performance.now() + ms;
      const wallDeadline = Date.now() + ms;
      const timer = setTimeout(finish, Math.max(0, ms - (precise ? PRECISE_TAIL_MS : 0)));
      signal?.addEventListener("abort", abort, { once: true });
      function finish() {
        signal?.removeEventListener("abort", abort);
        if (precise) {
          const rest = deadline - performance.now();
          if (rest > 0) Atomics.wait(futex, 0, 0, rest);
          // Beyond a few ms, the clock was stepped back: the caller reads it and sleeps again.
          for (
            let lacking = wallDeadline - Date.now();
            lacking > 0 && lacking <= PRECISE_TAIL_MS;
            lacking = wallDeadline - Date.now()
          ) Atomics.wait(futex, 0, 0, lacking);
        }
        resolve();
      }
      function abort() {
        clearTimeout(timer);
        resolve();
      }
    }),
};

/**
 * Wait for `work`, but no longer than `ms`: true when it settled in time.
 * For shutdown steps that must not hang on a database that does not answer.
 */
export async function settlesWithin(
  clock: Clock,
  work: Promise<unknown>,
  ms: number,
): Promise<boolean> {
  const timeout = new AbortController();
  const settled = await Promise.race([
    work.then(() => true, () => true),
    clock.sleep(ms, timeout.signal).then(() => false),
  ]);
  timeout.abort();
  return settled;
}

/**
 * One instant that every step of a stop shares: each step waits at most
 * for what is left of it, so the steps together cannot overrun it however
 * many of them hang.
 */
export class Deadline {
  constructor(private readonly clock: Clock, readonly at: number) {}

  /** A deadline `ms` from now. */
  static in(clock: Clock, ms: number): Deadline {
    return new Deadline(clock, clock.now() + ms);
  }

  /** Milliseconds left, 0 once passed. */
  get left(): number {
    return Math.max(0, this.at - this.clock.now());
  }

  /** Wait for `work` until the deadline, or for `ms` if that ends sooner: true when it settled. */
  wait(work: Promise<unknown>, ms = Infinity): Promise<boolean> {
    return settlesWithin(this.clock, work, Math.min(ms, this.left));
  }
}
