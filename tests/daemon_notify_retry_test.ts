/**
 * A webhook receiver that is down longer than the webhook retries, every
 * backend, in-process on a fake clock: its notifications wait in the
 * database (pending, counted as retrying by `status`), go once it answers,
 * and are given up only after notify.give_up_after, which the job's next
 * notification then says.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { type Backend, BACKENDS, freshDatabase } from "./helpers.ts";
import { DaemonHarness, storeWith, T0 } from "./daemon_harness.ts";
import { outcomes } from "./notify_fixtures.ts";
import type { NotifyPayload } from "../src/daemon/notify_message.ts";
import { fetchFailure } from "../src/daemon/notify_message.ts";

/** A receiver answering 503 while `down.now`, else 200; what it got, with each delivery id. */
function receiver(down: { now: boolean }) {
  const got: { status: number; delivery: string | null; payload: NotifyPayload }[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const payload = JSON.parse(await request.text()) as NotifyPayload;
      const status = down.now ? 503 : 200;
      got.push({ status, delivery: request.headers.get("x-jobsmanager-delivery"), payload });
      return new Response(null, { status });
    },
  );
  return { server, got, url: `http://127.0.0.1:${server.addr.port}/hook` };
}

const WAITS = /waits in the database for its webhook receiver/;

/**
 * A daemon whose job `sync` fails at T0 + 1 s, its failure posted to `url`
 * (no webhook retries), the database refusing the notification's retry
 * (as with it away) while `refused.now`; `refused.calls` counts refusals.
 */
async function retryRefused(
  backend: Backend,
  url: string,
  refused: { now: boolean; calls: number },
) {
  const db = await freshDatabase(backend);
  const h = await DaemonHarness.create(db, {
    settings: { "notify.webhook_retries": 0, "notify.give_up_after": 3600 },
    store: storeWith(db, {
      retryNotification: (target) => (...args) => {
        if (!refused.now) return target.retryNotification(...args);
        refused.calls++;
        return Promise.reject(new Error("connect ECONNREFUSED 127.0.0.1:3306"));
      },
    }),
  });
  await h.job("sync", { schedule: { second: "1", minute: "0", hour: "0" }, on_failure_url: url });
  await h.start();
  await h.clock.set(T0 + 1000);
  (await h.started("sync", T0 + 1000)).finish({ status: "failed", exitCode: 1 });
  await h.until(async () => {
    if (refused.calls < 2) await h.clock.advance(500);
    return refused.calls >= 2;
  }, "the notification's retry refused twice");
  return h;
}

for (const backend of BACKENDS) {
  Deno.test(`notify retry[${backend}]: a receiver down longer than the webhook retries gets the notification once it is back`, async () => {
    const down = { now: true };
    const r = receiver(down);
    await using _server = r.server;
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "notify.webhook_retries": 1, "notify.give_up_after": 3600 },
    });
    await h.job("sync", {
      schedule: { second: "1", minute: "0", hour: "0" },
      on_failure_url: r.url,
    });
    await h.start();
    await h.clock.set(T0 + 1000);
    (await h.started("sync", T0 + 1000)).finish({ status: "failed", exitCode: 1 });
    await h.until(async () => {
      if (!h.line(/waits in the database for its webhook receiver/)) await h.clock.advance(500);
      return h.line(/waits in the database for its webhook receiver/);
    }, "the notification left waiting for the receiver");
    assertEquals(Object.values(await outcomes(h)), ["pending"]);
    // Said once its retry is written: the count follows the line (CI, under load, read [1, 0]
    // when it was said before).
    const waiting = await h.store.notificationsPending();
    assertEquals([waiting.count, waiting.retrying], [1, 1]);
    assert(
      waiting.nextRetry !== null && waiting.nextRetry > h.clock.now(),
      String(waiting.nextRetry),
    );
    // Down for minutes: tried again, still pending.
    await h.stepUntil(
      () => h.clock.now() >= T0 + 300_000,
      "five minutes of the receiver down",
      { to: T0 + 300_000 },
    );
    await h.until(
      async () => Object.values(await outcomes(h))[0] === "pending" && r.got.length >= 4,
      "tries",
    );
    down.now = false;
    // Its next try is up to 5 min off (the doubling waits' cap): 5 s steps, each once the daemon
    // is quiet (1 s steps with a read each, CI under load did not get there in 15 s).
    await h.stepUntil(
      async () => Object.values(await outcomes(h))[0] === "sent",
      "the notification sent once the receiver answers",
      { to: h.clock.now() + 600_000, step: 5000 },
    );
    assertEquals(r.got.filter((g) => g.status === 200).length, 1);
    // The same delivery id at every try, for receivers that drop repeats.
    assertEquals(new Set(r.got.map((g) => g.delivery)).size, 1);
    assertEquals((await h.store.notificationsPending()).count, 0);
  });

  Deno.test(`notify retry[${backend}]: a recovery waits behind its failure, which waits for the receiver: the receiver gets them in order`, async () => {
    const down = { now: true };
    const r = receiver(down);
    await using _server = r.server;
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "notify.webhook_retries": 0, "notify.min_interval": 0 },
    });
    await h.job("sync", {
      schedule: { second: "1", minute: "*", hour: "0" },
      on_failure_url: r.url,
      on_recovery_url: r.url,
    });
    await h.start();
    await h.clock.set(T0 + 1000);
    (await h.started("sync", T0 + 1000)).finish({ status: "failed", exitCode: 1 });
    await h.until(
      () => h.line(/failure notification waits in the database for its webhook receiver/),
      "the failure left waiting for the receiver",
    );
    // The next run succeeds while the failure waits (or is being tried again: the recovery's post
    // then waits for it in the job's lane, and waits for the receiver too); the receiver is back.
    await h.clock.set(T0 + 61_000);
    (await h.started("sync", T0 + 61_000)).finish();
    // A run that ends before its row is written is claimed at the next look (every 5 s): the
    // clock moves on for it, not as far as the failure's next try (T0 + 91 s).
    await h.stepUntil(
      () => h.line(/recovery notification waits in the database (behind|for its webhook receiver)/),
      "the recovery to wait",
      { to: T0 + 70_000 },
    );
    down.now = false;
    await h.until(async () => {
      if (r.got.filter((g) => g.status === 200).length < 2) await h.clock.advance(1000);
      return Object.values(await outcomes(h)).every((o) => o === "sent");
    }, "both sent once the receiver answers");
    assertEquals(
      r.got.filter((g) => g.status === 200).map((g) => g.payload.event),
      ["failure", "recovery"],
    );
  });

  Deno.test(`notify retry[${backend}]: a hook command that failed while the receiver was down leaves the notification failed once the post goes`, async () => {
    const down = { now: true };
    const r = receiver(down);
    await using _server = r.server;
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "notify.webhook_retries": 0 },
    });
    await h.job("sync", {
      schedule: { second: "1", minute: "0", hour: "0" },
      on_failure: "exit 3",
      on_failure_url: r.url,
    });
    await h.start();
    await h.clock.set(T0 + 1000);
    (await h.started("sync", T0 + 1000)).finish({ status: "failed", exitCode: 1 });
    await h.until(
      () => h.line(/failure notification waits in the database for its webhook receiver/),
      "the notification left waiting for the receiver",
    );
    down.now = false;
    await h.until(async () => {
      if (!r.got.some((g) => g.status === 200)) await h.clock.advance(1000);
      const now = Object.values(await outcomes(h));
      return now.length !== 0 && now.every((o) => o !== "pending");
    }, "the post sent once the receiver answers");
    assertEquals(Object.values(await outcomes(h)), ["failed"]);
  });

  Deno.test(`notify retry[${backend}]: one given up after notify.give_up_after is an error, and the job's next notification says so`, async () => {
    const down = { now: true };
    const r = receiver(down);
    await using _server = r.server;
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: {
        "notify.webhook_retries": 0,
        "notify.give_up_after": 60,
        "notify.min_interval": 0,
      },
    });
    await h.job("sync", {
      schedule: { second: "1", minute: "*/5", hour: "0" },
      on_failure_url: r.url,
    });
    await h.start();
    await h.clock.set(T0 + 1000);
    (await h.started("sync", T0 + 1000)).finish({ status: "failed", exitCode: 1 });
    await h.until(async () => {
      if (!h.line(/notification given up/)) await h.clock.advance(1000);
      return h.line(/notification given up/);
    }, "the notification given up");
    const record = h.logs.find((l) => /notification given up:/.test(String(l.rawMessage)));
    assertEquals(record?.level, "error");
    // Said, then written.
    await h.until(async () => {
      const now = Object.values(await outcomes(h));
      return now.length === 1 && now[0] === "given_up";
    }, "the notification recorded given_up");
    assertEquals((await h.store.notificationsPending()).count, 0);
    down.now = false;
    await h.clock.set(T0 + 301_000);
    (await h.started("sync", T0 + 301_000)).finish({ status: "failed", exitCode: 2 });
    const sent = await h.until(
      () => r.got.find((g) => g.status === 200),
      "the next failure posted",
    );
    assertEquals(sent.payload.given_up, 1);
    assertMatch(sent.payload.summary, /; 1 earlier notification of this job was given up/);
    // Told once.
    await h.until(async () => Object.values(await outcomes(h)).includes("sent"), "sent");
    assertEquals(await h.store.givenUp("sync"), 0);
  });
}

Deno.test("notify retry: a webhook's network error says its cause", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const error = await fetch(`http://127.0.0.1:${port}/x`, { method: "POST", body: "{}" }).then(
    () => null,
    (e) => e,
  );
  assertMatch(fetchFailure(error, 10_000), /^connection refused \(tcp connect error: /);
  const timeout = new DOMException("The operation was aborted due to timeout", "TimeoutError");
  assertEquals(fetchFailure(timeout, 10_000), "no answer within notify.webhook_timeout (10 s)");
  const dns = new TypeError("fetch failed", {
    cause: new Error(
      "error sending request for url (http://x.invalid/): client error (Connect): dns error: failed to lookup address information: Name or service not known",
    ),
  });
  assertMatch(fetchFailure(dns, 10_000), /^DNS lookup failed \(dns error: /);
});

for (const backend of BACKENDS) {
  Deno.test(`notify retry[${backend}]: the wait for the receiver is said once the database has it, not while it refuses it`, async () => {
    const r = receiver({ now: true });
    await using _server = r.server;
    const refused = { now: true, calls: 0 };
    await using h = await retryRefused(backend, r.url, refused);
    assert(!h.line(WAITS), h.lines.join("\n"));
    assertEquals((await h.store.notificationsPending()).retrying, 0);
    refused.now = false;
    await h.until(async () => {
      if (!h.line(WAITS)) await h.clock.advance(1000);
      return h.line(WAITS);
    }, "the wait said once written");
    // Said once written: the count follows at once.
    const pending = await h.store.notificationsPending();
    assertEquals([pending.count, pending.retrying], [1, 1]);
  });

  Deno.test(`notify retry[${backend}]: a stop while the database refuses the wait for the receiver says the notification stays pending as it was`, async () => {
    const r = receiver({ now: true });
    await using _server = r.server;
    const refused = { now: true, calls: 0 };
    await using h = await retryRefused(backend, r.url, refused);
    await h.stop();
    await h.stopped();
    assertEquals(
      h.line(/^job sync: failure notification found its webhook receiver unreachable/),
      "job sync: failure notification found its webhook receiver unreachable, and the service stopped before the database took its next try: it stays pending as it was, for the next service to send again",
    );
    assert(!h.line(WAITS), h.lines.join("\n"));
    assertEquals(Object.values(await outcomes(h)), ["pending"]);
  });
}
