/**
 * The API makes way for starts (src/http/starts.ts): a request waits until
 * no run has started for QUIET_MS, never longer than MAX_WAIT_MS, and at
 * most MAX_HANDLED requests are handled at once; the probes never wait.
 * The clock is a fake one: the test moves it and looks at what waits.
 */
import { assertEquals } from "./assert.ts";
import { FakeClock, settle, settled } from "./fake_clock.ts";
import { BACKENDS, freshDatabase } from "./helpers.ts";
import { DaemonHarness, T0 as HARNESS_T0 } from "./daemon_harness.ts";
import { ADMIN, READER, serverDeps } from "./http_harness.ts";
import { buildHttpApp } from "../src/http/app.ts";
import { changeSettles } from "../src/http/api/env_masks.ts";
import { Tokens } from "../src/http/auth.ts";
import { Metrics } from "../src/http/metrics.ts";
import { Door, LEAD_MS, MAX_WAIT_MS, QUIET_MS, Starts } from "../src/http/starts.ts";

const T0 = 1_700_000_000_000;

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
      tokens: new Tokens([{ token: ADMIN, role: "admin", from: "JM_HTTP_TOKEN" }]),
      closing: new AbortController().signal,
      changeSettlesMs: changeSettles(500),
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

Deno.test("door: identical reads waiting together get one answer; a read arriving once it began gets its own", async () => {
  const clock = new FakeClock(T0);
  const starts = new Starts(undefined, clock);
  const door = new Door(starts, 4);
  let computed = 0;
  const release = Promise.withResolvers<void>();
  const handle = async () => {
    const n = ++computed;
    await release.promise;
    return new Response(`answer ${n}`, { status: 201, headers: { "X-Answer": String(n) } });
  };
  starts.started();
  const first = door.share("k", handle);
  const second = door.share("k", handle);
  const other = door.share("other", handle);
  await settle();
  assertEquals(computed, 0, "during the burst");
  await clock.set(T0 + QUIET_MS);
  assertEquals(computed, 2, "one answer for 'k', one for 'other'");
  const late = door.share("k", handle);
  await settle();
  assertEquals(
    computed,
    3,
    "a read arriving while 'k' is computed may have missed a write: its own answer",
  );
  release.resolve();
  const answers = await Promise.all([first, second, other, late]);
  assertEquals(
    await Promise.all(
      answers.map(async (a) => [a.status, a.headers.get("x-answer"), await a.text()]),
    ),
    [[201, "1", "answer 1"], [201, "1", "answer 1"], [201, "2", "answer 2"], [
      201,
      "3",
      "answer 3",
    ]],
  );
});

Deno.test("door: a shared read that fails fails for all who waited, and the next computes again", async () => {
  const clock = new FakeClock(T0);
  const starts = new Starts(undefined, clock);
  const door = new Door(starts, 4);
  starts.started();
  const failing = () => Promise.reject(new Error("database gone"));
  const waiting = [door.share("k", failing), door.share("k", failing)];
  const outcomes = waiting.map((w) => w.then(() => "answered", (e: Error) => e.message));
  await clock.set(T0 + QUIET_MS);
  assertEquals(await Promise.all(outcomes), ["database gone", "database gone"]);
  const next = await door.share("k", () => Promise.resolve(new Response("back")));
  assertEquals(await next.text(), "back");
});

Deno.test("app: identical API reads during a burst cost one query; another token's read is its own", async () => {
  await using db = await freshDatabase("sqlite");
  const store = db.open();
  await store.migrate();
  try {
    let queries = 0;
    const latestRuns = store.latestRuns.bind(store);
    store.latestRuns = () => {
      queries++;
      return latestRuns();
    };
    const clock = new FakeClock(T0);
    const starts = new Starts(undefined, clock);
    const app = buildHttpApp({
      ...serverDeps(store),
      tokens: new Tokens([
        { token: ADMIN, role: "admin", from: "http.tokens" },
        { token: READER, role: "read", from: "http.tokens" },
      ]),
      closing: new AbortController().signal,
      changeSettlesMs: changeSettles(500),
      starts,
    });
    const get = (token: string) =>
      Promise.resolve(
        app.request("/api/v1/jobs", { headers: { Authorization: `Bearer ${token}` } }),
      );
    starts.started();
    const reads = [get(ADMIN), get(ADMIN), get(ADMIN), get(READER), get("not-a-token")];
    await settle();
    assertEquals(queries, 0, "during the burst");
    await clock.set(T0 + QUIET_MS);
    const answers = await Promise.all(reads);
    assertEquals(answers.map((a) => a.status), [200, 200, 200, 200, 401]);
    assertEquals(queries, 2, "one for the admin token's three reads, one for the reader's");
    const bodies = await Promise.all(answers.map((a) => a.text()));
    assertEquals(bodies.slice(0, 4), Array(4).fill("[]"));
  } finally {
    await store.close();
  }
});

Deno.test("starts: from LEAD_MS before the next fire a request waits as if its burst had begun", async () => {
  const clock = new FakeClock(T0);
  const starts = new Starts(undefined, clock);
  const fire = T0 + 1000;
  starts.upcoming(fire);
  assertEquals(await settled(starts.quiet()), true, "a second before the fire");
  await clock.set(fire - LEAD_MS);
  const waiting = starts.quiet();
  assertEquals(await settled(waiting), false, `${LEAD_MS} ms before the fire`);
  await clock.set(fire + QUIET_MS - 1);
  assertEquals(await settled(waiting), false, `wakes at ${clock.wakeUps}`);
  await clock.set(fire + QUIET_MS);
  assertEquals(await settled(waiting), true, `wakes at ${clock.wakeUps}`);
  starts.upcoming(Infinity);
  assertEquals(await settled(starts.quiet()), true, "no fire ahead");
});

for (const backend of BACKENDS) {
  Deno.test(`starts (${backend}): the scheduler notes its next fire before the fire's starts, then the one after`, async () => {
    const db = await freshDatabase(backend);
    const metrics = new Metrics();
    await using h = await DaemonHarness.create(db, { observer: metrics });
    const starts = new Starts(undefined, h.clock);
    metrics.announceStarts(starts);
    await h.job("every10", { schedule: { second: "*/10" } });
    await h.start();
    const fire = HARNESS_T0 + 10_000;
    await h.clock.set(fire - LEAD_MS);
    const waiting = starts.quiet();
    assertEquals(await settled(waiting), false, "the API waits for the coming fire");
    await h.clock.set(fire);
    (await h.started("every10", fire)).finish();
    await h.run("every10", fire, "success");
    await h.clock.set(fire + QUIET_MS);
    await waiting;
    await h.clock.set(fire + 10_000 - LEAD_MS - 1);
    assertEquals(await settled(starts.quiet()), true, "before the lead of the fire after");
    await h.clock.set(fire + 10_000 - LEAD_MS);
    assertEquals(await settled(starts.quiet()), false, "within the lead of the fire after");
  });
}
