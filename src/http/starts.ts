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
 *
 * The scheduler also notes its next fire: from `LEAD_MS` before it, new
 * requests wait as if the burst had begun, so the answers in flight are
 * written, and their clients have asked again, before the starts, not
 * during them.
 */
import { type Clock, systemClock as daemonClock } from "../daemon/clock.ts";
import { HttpError } from "./errors.ts";

/** After a start, this long without another one ends the burst. */
export const QUIET_MS = 50;
/** How long before the next fire requests begin to wait for it. */
export const LEAD_MS = 50;
/** No request waits longer for a quiet moment. */
export const MAX_WAIT_MS = 1000;
/**
 * Requests handled at once; the others wait at the door, costing nothing.
 * Admitted requests finish whatever starts meanwhile, so few are admitted:
 * a burst begins with little API work ahead of it.
 */
export const MAX_HANDLED = 4;
/**
 * A request that has waited at the door this long, while none of those
 * inside ended, is answered 503: they all wait on something that does not
 * answer (the database, most likely), and would hold it until their query
 * times out (30 s), or for good. Under mere load requests leave all the
 * time, and a request waits on: only a door that stopped turning refuses.
 */
export const STUCK_MS = 5_000;

export interface StartsClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const systemClock: StartsClock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/** Slots of the shared memory: the last start, the next fire (ms; 0 = none). */
const LAST_START = 0;
const NEXT_FIRE = 1;

/** The instant of the last start and of the next fire, in memory both threads see. */
export class Starts {
  private readonly instants: BigInt64Array;

  /** `memory`: the one given by the other thread's `Starts`, or a new one. */
  constructor(
    readonly memory: SharedArrayBuffer = new SharedArrayBuffer(16),
    private readonly clock: StartsClock = systemClock,
  ) {
    this.instants = new BigInt64Array(memory);
  }

  /** A run started (the scheduler's thread). */
  started(): void {
    Atomics.store(this.instants, LAST_START, BigInt(this.clock.now()));
  }

  /** The next fire is at `at` (ms), or none when not finite (the scheduler's thread). */
  upcoming(at: number): void {
    Atomics.store(this.instants, NEXT_FIRE, BigInt(Number.isFinite(at) ? Math.round(at) : 0));
  }

  /**
   * Resolves once no run has started for QUIET_MS, counting the next fire
   * as a start from LEAD_MS before it, or after MAX_WAIT_MS (the HTTP worker).
   */
  async quiet(): Promise<void> {
    const deadline = this.clock.now() + MAX_WAIT_MS;
    for (;;) {
      const now = this.clock.now();
      const next = Number(Atomics.load(this.instants, NEXT_FIRE));
      const burst = Math.max(
        Number(Atomics.load(this.instants, LAST_START)),
        next !== 0 && now >= next - LEAD_MS ? next : 0,
      );
      const left = Math.min(burst + QUIET_MS, deadline) - now;
      if (left <= 0) return;
      await this.clock.sleep(left);
    }
  }
}

/** An answer to a read, copied for every request that waited for it. */
interface SharedAnswer {
  status: number;
  headers: [string, string][];
  body: Uint8Array<ArrayBuffer>;
}

/**
 * Who may go in: at most MAX_HANDLED requests at once, each once the starts
 * are quiet. Identical reads waiting together are answered once (`share`).
 * A request refused after STUCK_MS without a departure is told why (503).
 */
export class Door {
  private inside = 0;
  private readonly queue: (() => void)[] = [];
  /** Reads waiting at the door, by key, with the answer they will share. */
  private readonly reads = new Map<string, Promise<SharedAnswer>>();
  /** When a request last left (clock ms): the door turns while this moves. */
  private leftAt = -Infinity;

  constructor(
    private readonly starts: Starts,
    private readonly limit = MAX_HANDLED,
    private readonly stuckMs = STUCK_MS,
    private readonly clock: Clock = daemonClock,
  ) {}

  /**
   * Handle a request with `handle` once admitted; the next one goes in when
   * it ends, or once it calls `leave` (a request that goes on waiting for
   * something else, minutes maybe, without holding a slot). Throws a 503
   * HttpError, `handle` not called, once it has waited `stuckMs` while no
   * request left.
   */
  async through<T>(handle: (leave: () => void) => Promise<T>): Promise<T> {
    if (this.inside >= this.limit) {
      await this.wait();
    } else {
      this.inside++;
    }
    let inside = true;
    const leave = () => {
      if (!inside) return;
      inside = false;
      this.leftAt = this.clock.now();
      const next = this.queue.shift();
      if (next) next();
      else this.inside--;
    };
    try {
      await this.starts.quiet();
      return await handle(leave);
    } finally {
      leave();
    }
  }

  /** Until a slot is handed over; a 503 once the door has not turned for `stuckMs`. */
  private async wait(): Promise<void> {
    const since = this.clock.now();
    let admitted = false;
    const admit = Promise.withResolvers<void>();
    const enter = () => {
      admitted = true;
      admit.resolve();
    };
    this.queue.push(enter);
    for (;;) {
      const left = Math.max(since, this.leftAt) + this.stuckMs - this.clock.now();
      if (left <= 0) break;
      const woken = new AbortController();
      await Promise.race([admit.promise, this.clock.sleep(left, woken.signal)]);
      woken.abort();
      if (admitted) return;
    }
    this.queue.splice(this.queue.indexOf(enter), 1);
    throw new HttpError(
      503,
      `the API is not answering: none of the ${this.limit} requests it handles at once has ended for ${
        this.stuckMs / 1000
      } s, so this one was not taken; they most likely wait on the database, which does not answer (GET /readyz and the service's log say more); try again in a little while`,
      Math.ceil(this.stuckMs / 1000),
    );
  }

  /**
   * Handle a read like `through`, except that a request with the same `key`
   * (its method, URL and credentials) that arrives while one is still
   * waiting at the door gets a copy of that one's answer. The answer is
   * computed after both arrived, so it is no older than a read of its own
   * would be; a request arriving once the computation began waits for the
   * next. Under load the many clients of one page cost one query.
   */
  async share(key: string, handle: () => Promise<Response>): Promise<Response> {
    let answer = this.reads.get(key);
    if (answer === undefined) {
      const computed = this.through(async () => {
        // From here on the answer may predate a newcomer: it waits for its own.
        if (this.reads.get(key) === computed) this.reads.delete(key);
        const response = await handle();
        return {
          status: response.status,
          headers: [...response.headers],
          body: new Uint8Array(await response.arrayBuffer()),
        };
      });
      answer = computed;
      this.reads.set(key, computed);
      // A failure reaches every request that waited for it, not an unhandled rejection.
      computed.catch(() => {
        if (this.reads.get(key) === computed) this.reads.delete(key);
      });
    }
    const { status, headers, body } = await answer;
    return new Response(status === 204 || status === 304 ? null : body, { status, headers });
  }
}
