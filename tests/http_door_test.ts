/**
 * A database that hangs holds the requests that read it; what reads no
 * table (the dashboard's files, /metrics, the session, the API's
 * description) still answers, and a request that would wait behind the
 * held ones is answered 503 once the door has not turned for its bound
 * (src/http/starts.ts `Door`, src/http/app.ts). The hang is a store whose
 * calls wait for the test, on either backend.
 */
import { assertEquals, assertStringIncludes } from "./assert.ts";
import { FakeClock, settled } from "./fake_clock.ts";
import { BACKENDS, freshDatabase, type TestDatabase, waitFor } from "./helpers.ts";
import { type Answer, type Api, startApi } from "./http_harness.ts";
import { Metrics, nodeMetrics } from "../src/http/metrics.ts";
import { Door, Starts } from "../src/http/starts.ts";
import { HttpError } from "../src/http/errors.ts";
import type { Store } from "../src/store/store.ts";

const T0 = 1_700_000_000_000;

Deno.test("door: a request refused once none inside has ended for the bound, told why", async () => {
  const clock = new FakeClock(T0);
  const door = new Door(new Starts(undefined, clock), 1, 5000, clock);
  const held = Promise.withResolvers<void>();
  const inside = door.through(() => held.promise);
  let handled = false;
  const waiting = door.through(() => Promise.resolve(handled = true));
  const outcome = waiting.then(() => "admitted", (e: HttpError) => `${e.status} ${e.message}`);
  await clock.set(T0 + 4999);
  assertEquals(await settled(waiting), false, `still waiting; wakes at ${clock.wakeUps}`);
  await clock.set(T0 + 5000);
  const said = await outcome;
  assertStringIncludes(said, "503 the API is not answering: none of the 1 requests");
  assertStringIncludes(said, "wait on the database, which does not answer");
  assertEquals(handled, false);
  // The slot is still the held one's; the next request after it goes in as before.
  held.resolve();
  await inside;
  assertEquals(await door.through(() => Promise.resolve("next")), "next");
  assertEquals(clock.wakeUps, [], "no timer left behind");
});

Deno.test("door: a request waits on while those inside end, however long the queue takes", async () => {
  const clock = new FakeClock(T0);
  const door = new Door(new Starts(undefined, clock), 1, 5000, clock);
  const ends = Array.from({ length: 4 }, () => Promise.withResolvers<void>());
  const requests = ends.map((end) => door.through(() => end.promise));
  const last = door.through(() => Promise.resolve("last"));
  // Each ends 4 s after the one before: 16 s in all, never 5 s without a departure.
  for (let i = 0; i < ends.length; i++) {
    await clock.set(T0 + (i + 1) * 4000);
    ends[i].resolve();
    await requests[i];
  }
  assertEquals(await last, "last");
  assertEquals(clock.wakeUps, [], "no timer left behind");
});

/** A store whose calls wait, while `hang` is on, until `release()`; `entered` counts them. */
class Hang {
  on = false;
  entered = 0;
  private released = Promise.withResolvers<void>();

  wrap(store: Store): Store {
    return new Proxy(store, {
      get: (target, prop, receiver) => {
        const value = Reflect.get(target, prop, receiver);
        if (typeof value !== "function") return value;
        return (...args: unknown[]) => {
          if (!this.on) return value.apply(target, args);
          this.entered++;
          return this.released.promise.then(() => value.apply(target, args));
        };
      },
    });
  }

  release(): void {
    this.on = false;
    this.released.resolve();
  }
}

/** How long a request that should not wait is given, however busy the machine. */
const ANSWER_WITHIN_MS = 20_000;

/** `path`'s answer, or a failure saying it waited (behind the held reads) past ANSWER_WITHIN_MS. */
async function answerOf(api: Api, path: string): Promise<Answer> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `GET ${path} did not answer within ${ANSWER_WITHIN_MS} ms while four reads waited on the database`,
          ),
        ),
      ANSWER_WITHIN_MS,
    );
  });
  const call = api.call("GET", path);
  try {
    return await Promise.race([call, late]);
  } catch (error) {
    // Its answer may come once the test lets the database go: not left unawaited.
    call.catch(() => {});
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** The reads that hold the door: distinct, so none shares another's answer. */
const HELD = [
  "/api/v1/runs?limit=1",
  "/api/v1/runs?limit=2",
  "/api/v1/runs?limit=3",
  "/api/v1/runs?limit=4",
];

/**
 * On `api`, whose database `hung` holds: the held reads fill the door, the
 * tableless routes answer meanwhile, a read behind them is answered 503.
 * `entered()`: the store calls under way (the held reads inside the door).
 */
async function whileHung(api: Api, entered: () => number): Promise<Promise<Answer>[]> {
  const held = HELD.map((path) => api.call("GET", path));
  await waitFor(() => entered() >= HELD.length, {
    timeoutMs: 10_000,
    what: "the four reads to wait on the database",
    detail: () => `store calls waiting: ${entered()}`,
  });
  const stillHeld = async (what: string) => {
    const ended = [];
    for (const [i, read] of held.entries()) {
      if (await settled(read)) ended.push(HELD[i]);
    }
    assertEquals(ended, [], `${what}: it waited for these reads to end`);
  };
  for (const path of ["/", "/assets/app.js", "/api/v1/session", "/api/v1/openapi.json"]) {
    const answer = await answerOf(api, path);
    assertEquals(answer.status, 200, `${path}: ${JSON.stringify(answer.body)}`);
    await stillHeld(`${path} answered only once the database did`);
  }
  const metrics = await answerOf(api, "/metrics");
  assertEquals(metrics.status, 200, String(metrics.body));
  assertStringIncludes(String(metrics.body), "jobsmanager_nodes_known 0");
  await stillHeld("/metrics answered only once the database did");
  const behind = await answerOf(api, "/api/v1/jobs");
  await stillHeld("the read behind them was answered only once the database did");
  assertEquals(behind.status, 503, JSON.stringify(behind.body));
  assertStringIncludes(
    (behind.body as { error: string }).error,
    "the API is not answering: none of the 4 requests it handles at once has ended",
  );
  assertEquals(behind.headers.get("retry-after"), "1");
  return held;
}

/** Serve `db` with a door whose bound is short, and /metrics as the HTTP worker makes it. */
function startWithDoor(db: TestDatabase, served: (store: Store) => Store): Promise<Api> {
  let shown: Store | null = null;
  const own = new Metrics();
  let nodes: ReturnType<typeof nodeMetrics> | null = null;
  return startApi(db, {}, (store) => shown = served(store), Deno.uid(), {
    starts: new Starts(),
    doorStuckMs: 1000,
    metrics: {
      contentType: own.contentType,
      text: async () => {
        nodes ??= nodeMetrics(shown!, 5000);
        return await own.text() + await nodes.metrics();
      },
    },
  });
}

for (const backend of BACKENDS) {
  Deno.test(`door (${backend}): while the database hangs, what reads no table answers and a read behind the held ones is told why`, async () => {
    await using db = await freshDatabase(backend);
    const hang = new Hang();
    await using api = await startWithDoor(db, (store) => hang.wrap(store));
    hang.on = true;
    let held: Promise<Answer>[];
    try {
      held = await whileHung(api, () => hang.entered);
    } finally {
      hang.release();
    }
    assertEquals((await Promise.all(held)).map((a) => a.status), [200, 200, 200, 200]);
    assertEquals((await api.call("GET", "/api/v1/jobs")).status, 200, "the door turns again");
  });
}
