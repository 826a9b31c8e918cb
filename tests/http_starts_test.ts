/**
 * The API makes way for starts (src/http/starts.ts): a request waits until
 * no run has started for QUIET_MS, never longer than MAX_WAIT_MS, and at
 * most MAX_HANDLED requests are handled at once; the probes never wait.
 * The clock is a fake one: the test moves it and looks at what waits.
 */
import { assertEquals } from "./assert.ts";
import { FakeClock, settle } from "./fake_clock.ts";
import { freshDatabase } from "./helpers.ts";
import { ADMIN, serverDeps } from "./http_harness.ts";
import { buildHttpApp } from "../src/http/app.ts";
import { Tokens } from "../src/http/auth.ts";
import { Door, MAX_WAIT_MS, QUIET_MS, Starts } from "../src/http/starts.ts";

const T0 = 1_700_000_000_000;

/** A promise's state, without waiting for it. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(() => done = true, () => done = true);
  await settle();
  return done;
}

Deno.test("starts: a request goes ahead at once when no run started lately", async () => {
  const clock = new FakeClock(T0);
  const starts = new Starts(undefined, clock);
  assertEquals(await settled(starts.quiet()), true);
  starts.started();
  await clock.set(T0 + QUIET_MS);
  assertEquals(await settled(starts.quiet()), true, `${QUIET_MS} ms after the last start`);
});

Deno.test("starts: a request waits until no run has started for QUIET_MS", async () => {
  const clock = new FakeClock(T0);
  const starts = new Starts(undefined, clock);
  starts.started();
  const waiting = starts.quiet();
  await clock.set(T0 + QUIET_MS - 20);
  assertEquals(await settled(waiting), false, "during the burst");
  // Another start moves the end of the burst on.
  starts.started();
  await clock.set(T0 + QUIET_MS + 10);
  assertEquals(await settled(waiting), false, `wakes at ${clock.wakeUps}`);
  await clock.set(T0 + 2 * QUIET_MS - 20);
  assertEquals(await settled(waiting), true, `wakes at ${clock.wakeUps}`);
});

Deno.test("starts: a request waits MAX_WAIT_MS at most while starts never pause", async () => {
  const clock = new FakeClock(T0);
  const starts = new Starts(undefined, clock);
  starts.started();
  const waiting = starts.quiet();
  let t = T0;
  while (t < T0 + MAX_WAIT_MS - 10) {
    t += 10;
    await clock.set(t);
    starts.started();
    assertEquals(await settled(waiting), false, `${t - T0} ms after the call`);
  }
  await clock.set(T0 + MAX_WAIT_MS);
  assertEquals(await settled(waiting), true, `wakes at ${clock.wakeUps}`);
});

Deno.test("starts: the HTTP worker sees the starts the scheduler notes in the shared memory", async () => {
  const clock = new FakeClock(T0);
  const scheduler = new Starts(undefined, clock);
  const worker = new Starts(scheduler.memory, clock);
  scheduler.started();
  assertEquals(await settled(worker.quiet()), false);
});

Deno.test("door: at most the limit of requests are handled at once, the others in turn", async () => {
  const clock = new FakeClock(T0);
  const door = new Door(new Starts(undefined, clock), 2);
  const ends = Array.from({ length: 4 }, () => Promise.withResolvers<void>());
  const handled: number[] = [];
  const requests = ends.map((end, i) =>
    door.through(async () => {
      handled.push(i);
      await end.promise;
      return i;
    })
  );
  await settle();
  assertEquals(handled, [0, 1], "two go in");
  ends[1].resolve();
  assertEquals(await requests[1], 1);
  await settle();
  assertEquals(handled, [0, 1, 2], "the first waiting goes in when one ends");
  ends[0].resolve();
  ends[2].resolve();
  await settle();
  assertEquals(handled, [0, 1, 2, 3]);
  ends[3].resolve();
  assertEquals(await Promise.all(requests), [0, 1, 2, 3]);
});

Deno.test("door: a failed request lets the next one in", async () => {
  const clock = new FakeClock(T0);
  const door = new Door(new Starts(undefined, clock), 1);
  const failing = door.through(() => Promise.reject(new Error("boom")));
  const next = door.through(() => Promise.resolve("next"));
  await failing.catch(() => {});
  assertEquals(await next, "next");
});

Deno.test("door: a request admitted during a burst is handled once it is quiet", async () => {
  const clock = new FakeClock(T0);
  const starts = new Starts(undefined, clock);
  const door = new Door(starts, 2);
  starts.started();
  let handled = false;
  const request = door.through(() => Promise.resolve(handled = true));
  await settle();
  assertEquals(handled, false, "during the burst");
  await clock.set(T0 + QUIET_MS);
  await request;
  assertEquals(handled, true);
});

Deno.test("app: the probes answer during a burst of starts, the API once it is quiet", async () => {
  await using db = await freshDatabase("sqlite");
  const store = db.open();
  await store.migrate();
  try {
    const clock = new FakeClock(T0);
    const starts = new Starts(undefined, clock);
    const app = buildHttpApp({
      ...serverDeps(store),
      tokens: new Tokens([{ token: ADMIN, role: "admin" }]),
      closing: new AbortController().signal,
      starts,
    });
    starts.started();
    assertEquals((await app.request("/healthz")).status, 200);
    assertEquals((await app.request("/readyz")).status, 200);
    const session = Promise.resolve(app.request("/api/v1/session", {
      headers: { Authorization: `Bearer ${ADMIN}` },
    }));
    assertEquals(await settled(session), false, "the API during the burst");
    await clock.set(T0 + QUIET_MS);
    assertEquals((await session).status, 200);
  } finally {
    await store.close();
  }
});
