/**
 * A Clock whose time moves only when the test says so: `now()` is what the
 * test set, and `sleep()` resolves when the test moves the time past its
 * end (or its signal aborts). Real I/O (the database, processes) goes on
 * in real time meanwhile, so a test moves the clock to an instant, then
 * waits for the state it expects.
 */
import type { Clock } from "../src/daemon/clock.ts";

interface Sleeper {
  until: number;
  resolve: () => void;
}

/** Let every callback queued so far run, timers of 0 ms included. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

export class FakeClock implements Clock {
  private sleepers: Sleeper[] = [];

  constructor(private time: number) {}

  now(): number {
    return this.time;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted || ms <= 0) return resolve();
      const sleeper = { until: this.time + ms, resolve };
      this.sleepers.push(sleeper);
      signal?.addEventListener("abort", () => {
        this.sleepers = this.sleepers.filter((s) => s !== sleeper);
        resolve();
      }, { once: true });
    });
  }

  /** When each sleeper wakes, soonest first (for failure messages). */
  get wakeUps(): number[] {
    return this.sleepers.map((s) => s.until).sort((a, b) => a - b);
  }

  /** Move the time to `at` (never back), wake the sleepers due by then, and let them run. */
  async set(at: number): Promise<void> {
    if (at < this.time) throw new Error(`the fake clock cannot go back from ${this.time} to ${at}`);
    this.time = at;
    const due = this.sleepers.filter((s) => s.until <= at).sort((a, b) => a.until - b.until);
    this.sleepers = this.sleepers.filter((s) => s.until > at);
    for (const s of due) s.resolve();
    await settle();
  }

  /**
   * Step the time back by `ms`, as `date -s` or NTP steps a system clock:
   * a sleep lasts what it was asked for (the real one is measured on the
   * monotonic clock), so each sleeper wakes as far from now as before.
   */
  async stepBack(ms: number): Promise<void> {
    this.time -= ms;
    for (const s of this.sleepers) s.until -= ms;
    await settle();
  }

  /**
   * Move the time on by `ms` at once, from inside the code under test (a
   * start that takes that long): sleepers due by then wake when it yields.
   */
  pass(ms: number): void {
    void this.set(this.time + ms);
  }

  advance(ms: number): Promise<void> {
    return this.set(this.time + ms);
  }
}

/** A promise's state, without waiting for it. */
export async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(() => done = true, () => done = true);
  await settle();
  return done;
}
