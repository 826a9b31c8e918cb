/**
 * The order of a job's notifications, every backend: a recovery never
 * reaches a hook (or a pager) before its failure, whatever held the
 * failure (its hook still running, its claim slow, no turn free for it, a
 * first look that failed), while other jobs and other hosts go past. Real
 * `/bin/sh` hooks and loopback webhook receivers; fake runs and clock.
 */
import { assertEquals, assertMatch } from "./assert.ts";
import { DatabaseError } from "../src/errors.ts";
import { BACKENDS, freshDatabase, rawQuery, serviceRow } from "./helpers.ts";
import { DaemonHarness, NODE_ID, storeWith, T0 } from "./daemon_harness.ts";
import {
  appendStdin,
  failureLeftPending,
  hookedWithinAMinute,
  jsonLines,
  leftPending,
  outcomes,
  readIfThere,
  tempDir,
} from "./notify_fixtures.ts";

/** Fires at T0 + 1 s, + 2 s, + 3 s: fail, then succeed (its recovery), then the other job's. */
const AT = (seconds: string) => ({ second: seconds, minute: "0", hour: "0" });

/** A loopback webhook receiver: `got`, the job ids posted so far; `hang`, answers held until `release`. */
function receiver(hang: boolean) {
  const got: string[] = [];
  const { promise: released, resolve: release } = Promise.withResolvers<void>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      got.push((await request.json()).job_id);
      if (hang) await released;
      return new Response(null, { status: 200 });
    },
  );
  return {
    got,
    release,
    url: `http://127.0.0.1:${server.addr.port}/hook`,
    async [Symbol.asyncDispose]() {
      release();
      await server.shutdown();
    },
  };
}

/**
 * Job "flaky" (fires at `seconds`; its failure and recovery hooks keep
 * what they got in `events`, its failure also posted to `hung`) fails at
 * T0 + 1 s while the hung host has 100 posts waiting: its failure waits
 * in the database, for want of a turn.
 */
async function failureFindsNoTurn(
  h: DaemonHarness,
  hung: string,
  events: string,
  seconds: string,
): Promise<void> {
  await h.job("busy", { schedule: AT("59"), on_failure_url: hung });
  // One post under way and 100 waiting: the host's queue is full.
  for (let ref = 1; ref <= 101; ref++) {
    await leftPending(h.store, { job: "busy", ref, at: T0 - 120_000 + ref, node: NODE_ID });
  }
  await h.job("flaky", {
    schedule: AT(seconds),
    on_failure: appendStdin(events),
    on_failure_url: hung,
    on_recovery: appendStdin(events),
  });
  await h.start();
  await h.until(() => h.count(/sending it now/) >= 101, "the host's queue to fill");
  await h.clock.set(T0 + 1000);
  (await h.started("flaky", T0 + 1000)).finish({ status: "failed", exitCode: 1 });
  await h.until(
    () => h.line(/job flaky: failure notification waits in the database: 100 posts/),
    "flaky's failure left in the database",
  );
}

async function recoveryClaimed(h: DaemonHarness, job: string): Promise<boolean> {
  const rows = await rawQuery(
    h.db,
    "SELECT COUNT(*) AS n FROM jm_notifications WHERE job_id = ? AND event = 'recovery'",
    [job],
  );
  return Number(rows[0].n) === 1;
}

for (const backend of BACKENDS) {
  /*
   * A job's hooks go one at a time, in the order of its runs: its recovery
   * waits for the hook of its failure still running (a pager would
   * otherwise open the incident after its end). Another job's goes past.
   */
  Deno.test(`notify order[${backend}]: a job's recovery waits for the hook of its failure, still running`, async () => {
    await using dir = await tempDir();
    const d = dir.path;
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "notify.min_interval": 0 },
    });
    const events = `${d}/events`;
    // The failure's hook holds until the test says, or until the recovery's has written.
    await h.job("flaky", {
      schedule: AT("1,2"),
      on_failure:
        `touch '${d}/failing'; while ! test -e '${d}/go' && ! test -e '${d}/recovered'; do sleep 0.05; done; ${
          appendStdin(events)
        }`,
      on_recovery: `${appendStdin(events)} && touch '${d}/recovered'`,
    });
    await h.job("other", { schedule: AT("3"), on_failure: appendStdin(`${d}/other`) });
    await h.start();
    await h.clock.set(T0 + 1000);
    (await h.started("flaky", T0 + 1000)).finish({ status: "failed", exitCode: 1 });
    await h.until(async () => await readIfThere(`${d}/failing`) !== null, "the failure's hook");
    await h.clock.set(T0 + 2000);
    (await h.started("flaky", T0 + 2000)).finish();
    await h.run("flaky", T0 + 2000, "success");
    await h.until(() => recoveryClaimed(h, "flaky"), "the recovery claimed");
    // Queued after the recovery: once it ran, the recovery had its turn if it were free to.
    await h.clock.set(T0 + 3000);
    (await h.started("other", T0 + 3000)).finish({ status: "failed", exitCode: 1 });
    await h.until(async () => (await jsonLines(`${d}/other`)).length === 1, "the other job's hook");
    await Deno.writeTextFile(`${d}/go`, "");
    const got = await h.until(async () => {
      const got = await jsonLines(events);
      return got.length === 2 ? got : null;
    }, "both hooks of flaky");
    assertEquals(got.map((p) => p.event), ["failure", "recovery"]);
  });

  /*
   * The claim of a recovery waits for the claim of the failure before it:
   * a slow one (a lock, a busy database) is not overtaken.
   */
  Deno.test(`notify order[${backend}]: a recovery is decided after the failure's claim, however slow`, async () => {
    await using dir = await tempDir();
    const d = dir.path;
    const db = await freshDatabase(backend);
    const gate = Promise.withResolvers<void>();
    let asked = 0;
    await using h = await DaemonHarness.create(db, {
      settings: { "notify.min_interval": 0 },
      store: storeWith(db, {
        claimNotification: (s) => async (claim) => {
          if (claim.job_id === "flaky" && claim.event === "failure") await gate.promise;
          return await s.claimNotification(claim);
        },
        failingBefore: (s) => (job, before, statuses) => {
          if (job === "flaky") asked++;
          return s.failingBefore(job, before, statuses);
        },
      }),
    });
    await h.job("flaky", {
      schedule: AT("1,2"),
      on_failure: appendStdin(`${d}/events`),
      on_recovery: appendStdin(`${d}/events`),
    });
    await h.job("other", { schedule: AT("3"), on_success: appendStdin(`${d}/other`) });
    await h.start();
    await h.clock.set(T0 + 1000);
    (await h.started("flaky", T0 + 1000)).finish({ status: "failed", exitCode: 1 });
    await h.clock.set(T0 + 2000);
    (await h.started("flaky", T0 + 2000)).finish();
    await h.run("flaky", T0 + 2000, "success");
    // Ended after flaky's success was recorded: its hook ran once flaky's recovery could be decided.
    await h.clock.set(T0 + 3000);
    (await h.started("other", T0 + 3000)).finish();
    await h.until(async () => (await jsonLines(`${d}/other`)).length === 1, "the other job's hook");
    assertEquals(asked, 0, "flaky's recovery decided while its failure's claim was under way");
    gate.resolve();
    const got = await hookedWithinAMinute(h, `${d}/events`, 2, "both hooks of flaky");
    assertEquals(got.map((p) => p.event), ["failure", "recovery"]);
  });

  /*
   * A failure that found no turn (its webhook's host has 100 posts
   * waiting) waits in the database: the job's recovery waits there too,
   * behind it, and both go in order once there is room.
   */
  Deno.test(`notify order[${backend}]: a recovery waits in the database behind its failure that found no turn`, async () => {
    await using dir = await tempDir();
    const d = dir.path;
    await using hung = receiver(true);
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "notify.min_interval": 0, "notify.webhook_timeout": 600 },
    });
    await failureFindsNoTurn(h, hung.url, `${d}/events`, "1,2");
    await h.clock.set(T0 + 2000);
    (await h.started("flaky", T0 + 2000)).finish();
    await h.until(
      () => h.line(/job flaky: recovery notification waits in the database behind/),
      "flaky's recovery left behind it",
    );
    assertEquals(await jsonLines(`${d}/events`), []);
    await hung[Symbol.asyncDispose]();
    const got = await hookedWithinAMinute(h, `${d}/events`, 2, "both hooks of flaky");
    assertEquals(got.map((p) => p.event), ["failure", "recovery"]);
  });

  /*
   * A job's post that waits for its earlier one (to a hung host) holds
   * back that job only: another job's post to a healthy host goes at once.
   */
  Deno.test(`notify order[${backend}]: a job's post waiting behind a hung host holds back no other job's`, async () => {
    await using hung = receiver(true);
    await using healthy = receiver(false);
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "notify.min_interval": 0, "notify.webhook_timeout": 600 },
    });
    await h.job("x", {
      schedule: AT("1,2"),
      on_failure_url: hung.url,
      on_success_url: healthy.url,
    });
    await h.job("y", { schedule: AT("3"), on_success_url: healthy.url });
    await h.start();
    await h.clock.set(T0 + 1000);
    (await h.started("x", T0 + 1000)).finish({ status: "failed", exitCode: 1 });
    await h.until(() => hung.got.includes("x"), "x's failure posted to the hung host");
    await h.clock.set(T0 + 2000);
    (await h.started("x", T0 + 2000)).finish();
    await h.run("x", T0 + 2000, "success");
    await h.clock.set(T0 + 3000);
    (await h.started("y", T0 + 3000)).finish();
    await h.until(() => healthy.got.includes("y"), "y's post to the healthy host");
    assertEquals(healthy.got, ["y"], "x's success went before its failure was answered");
  });

  /*
   * The first look at start failed (the database refused it): what the
   * node left pending still goes before anything newer, at the next look.
   */
  Deno.test(`notify order[${backend}]: after a first look that failed, what was left pending still goes first`, async () => {
    await using dir = await tempDir();
    const file = `${dir.path}/events`;
    const db = await freshDatabase(backend);
    const hook = appendStdin(file);
    await failureLeftPending(db);
    let first = true;
    await using h = await DaemonHarness.create(db, {
      settings: { "notify.min_interval": 0 },
      store: storeWith(db, {
        pendingNotifications: (s) => (query) => {
          if (!first) return s.pendingNotifications(query);
          first = false;
          throw new Error("a refusal of the first look");
        },
      }),
    });
    await h.job("flaky", { schedule: AT("3"), on_failure: hook, on_recovery: hook });
    await h.start();
    await h.until(() => h.line(/a refusal of the first look/), "the first look to fail");
    await h.clock.set(T0 + 3000);
    (await h.started("flaky", T0 + 3000)).finish();
    await h.run("flaky", T0 + 3000, "success");
    const got = await hookedWithinAMinute(h, file, 2, "both notifications");
    assertEquals(got.map((p) => p.event), ["failure", "recovery"]);
  });
}

for (const backend of BACKENDS) {
  /*
   * The look for pending notifications fails every time (the database
   * refuses it): after three, newer notifications no longer wait for what
   * it cannot read, and a warning says so. Order gives way, not alerts.
   */
  Deno.test(`notify order[${backend}]: looks for pending ones that keep failing hold new notifications back for three looks, not for good`, async () => {
    await using dir = await tempDir();
    const file = `${dir.path}/events`;
    const db = await freshDatabase(backend);
    await using h = await DaemonHarness.create(db, {
      settings: { "notify.min_interval": 0 },
      store: storeWith(db, {
        pendingNotifications: () => () => {
          throw new DatabaseError("a refusal of every look", { unreachable: false });
        },
      }),
    });
    await h.job("flaky", { schedule: AT("1"), on_failure: appendStdin(file) });
    await h.start();
    await h.clock.set(T0 + 1000);
    (await h.started("flaky", T0 + 1000)).finish({ status: "failed", exitCode: 1 });
    const got = await hookedWithinAMinute(h, file, 1, "the failure");
    assertEquals(got.map((p) => p.event), ["failure"]);
    assertMatch(
      h.line(/could not be read at 3 looks in a row/) ?? "",
      /a refusal of every look\): newer ones are sent meanwhile/,
    );
  });

  /*
   * A pending notification whose kept payload does not parse (broken by
   * hand) is marked failed, and says why: it stops neither the look nor
   * its job's later notifications.
   */
  Deno.test(`notify order[${backend}]: a pending notification that does not parse is marked failed and holds nothing back`, async () => {
    await using dir = await tempDir();
    const file = `${dir.path}/events`;
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "notify.min_interval": 0 },
    });
    await h.job("flaky", { schedule: AT("59"), on_failure: appendStdin(file) });
    for (const ref of [1, 2]) {
      await leftPending(h.store, { job: "flaky", ref, at: T0 - 10_000 + ref, node: NODE_ID });
    }
    await rawQuery(h.db, "UPDATE jm_notifications SET payload = '{' WHERE ref = 1");
    await h.start();
    const got = await hookedWithinAMinute(h, file, 1, "the one that parses");
    assertEquals(got.map((p) => p.run_id), [2]);
    assertMatch(
      h.line(/notification \(of 1\) is not sent/) ?? "",
      /what its claim in jm_notifications keeps does not parse/,
    );
    await h.until(
      async () => (await outcomes(h))[1] === "failed",
      "the broken one marked failed",
    );
  });
}

for (const backend of BACKENDS) {
  /*
   * A look sends a job's notification left behind (no turn, then room);
   * meanwhile the job's next one is left behind it: the look's end keeps
   * the job waiting, and the one after goes behind both, not before.
   */
  Deno.test(`notify order[${backend}]: a notification left behind while a look sends the job's earlier one keeps its place`, async () => {
    await using dir = await tempDir();
    const events = `${dir.path}/events`;
    await using hung = receiver(true);
    const db = await freshDatabase(backend);
    let armed = false;
    const atGate = Promise.withResolvers<void>();
    const gate = Promise.withResolvers<void>();
    await using h = await DaemonHarness.create(db, {
      settings: { "notify.min_interval": 0, "notify.webhook_timeout": 600 },
      store: storeWith(db, {
        takeNotification: (s) => async (id, attempt, node, now) => {
          if (armed) {
            armed = false;
            atGate.resolve();
            await gate.promise;
          }
          return await s.takeNotification(id, attempt, node, now);
        },
      }),
    });
    await failureFindsNoTurn(h, hung.url, events, "1,20,21");
    hung.release();
    await h.until(async () => {
      const [row] = await rawQuery(
        h.db,
        "SELECT COUNT(*) AS n FROM jm_notifications WHERE job_id = 'busy' AND outcome = 'sent'",
      );
      return Number(row.n) === 101;
    }, "the host's queue to drain");
    // The next look takes flaky's failure, and is held there.
    armed = true;
    let reached = false;
    atGate.promise.then(() => reached = true);
    await h.until(async () => {
      if (!reached) await h.clock.advance(1000);
      return reached;
    }, "a look to take flaky's failure");
    await h.clock.set(T0 + 20_000);
    (await h.started("flaky", T0 + 20_000)).finish();
    await h.until(
      () => h.line(/job flaky: recovery notification waits in the database behind an earlier one/),
      "flaky's recovery left behind its failure",
    );
    gate.resolve();
    await h.until(async () => (await jsonLines(events)).length === 1, "flaky's failure sent");
    // Before the next look (5 s after the held one ended) reads the recovery.
    await h.clock.set(T0 + 21_000);
    (await h.started("flaky", T0 + 21_000)).finish({ status: "failed", exitCode: 1 });
    const got = await hookedWithinAMinute(h, events, 3, "flaky's three notifications");
    assertEquals(got.map((p) => p.event), ["failure", "recovery", "failure"]);
  });
}

for (const backend of BACKENDS) {
  /*
   * A job's failure finds no turn (its host has 100 posts waiting) and
   * waits in the database; its recovery, held back by notify.min_interval,
   * falls due meanwhile: it waits behind the failure too, though its own
   * hook (a command) has room, and goes after it.
   */
  Deno.test(`notify order[${backend}]: a held-back notification that falls due while its job's earlier one waits for a turn goes after it`, async () => {
    await using dir = await tempDir();
    const events = `${dir.path}/events`;
    await using hung = receiver(true);
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "notify.min_interval": 30, "notify.webhook_timeout": 600 },
    });
    await failureFindsNoTurn(h, hung.url, events, "1,2");
    await h.clock.set(T0 + 2000);
    (await h.started("flaky", T0 + 2000)).finish();
    await h.until(
      () => h.line(/job flaky: recovery notification held back/),
      "flaky's recovery held back",
    );
    // Due 30 s after the failure's claim: a look takes it while the failure still waits.
    await h.stepUntil(
      async () => {
        const [row] = await rawQuery(
          h.db,
          "SELECT outcome FROM jm_notifications WHERE job_id = 'flaky' AND event = 'recovery'",
        );
        return row?.outcome === "pending";
      },
      "a look to take flaky's held-back recovery",
      { to: T0 + 40_000 },
    );
    hung.release();
    // Once a post is answered (in real time: the clock waits for it), the host's queue has room,
    // and flaky's turn comes at a look (every 5 s), before busy fires at 59 s.
    const room = async () => {
      const [row] = await rawQuery(
        h.db,
        "SELECT COUNT(*) AS n FROM jm_notifications WHERE job_id = 'busy' AND outcome = 'pending'",
      );
      return Number(row.n) <= 100 && await h.quiet();
    };
    const got = await h.stepUntil(
      async () => {
        const got = await jsonLines(events);
        return got.length >= 2 ? got : null;
      },
      "both notifications of flaky",
      { to: T0 + 58_000, ready: room },
    );
    assertEquals(got.map((p) => p.event), ["failure", "recovery"]);
  });
}

for (const backend of BACKENDS) {
  /*
   * The first look finds 1,201 notifications left pending and stops
   * reading once the queue is full (1,000): job x's, the last, is not
   * read. Once the queue has drained, x's next notification still waits
   * behind it, until a look reads both, in order.
   */
  Deno.test(`notify order[${backend}]: a notification waits behind its job's one that a look stopped by a full queue left unread`, async () => {
    await using dir = await tempDir();
    const events = `${dir.path}/events`;
    const hosts = Array.from({ length: 12 }, () => receiver(true));
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "notify.min_interval": 0, "notify.webhook_timeout": 600 },
    });
    try {
      // 100 posts to each of 12 hosts, which hang: more than the queue's 1,000, on full pages.
      for (const [i, host] of hosts.entries()) {
        await h.job(`busy${i}`, { schedule: AT("59"), on_failure_url: host.url });
        for (let ref = 1; ref <= 100; ref++) {
          const at = T0 - 120_000 + i * 100 + ref;
          await leftPending(h.store, { job: `busy${i}`, ref, at, node: NODE_ID });
        }
      }
      await h.job("x", { schedule: AT("2"), on_failure: appendStdin(events) });
      await h.job("probe", { schedule: AT("1"), on_failure: appendStdin(`${dir.path}/probe`) });
      // Of a run recorded before (its id is not one of this test's runs).
      await leftPending(h.store, { job: "x", ref: 100_000, at: T0 - 1000, node: NODE_ID });
      await h.start();
      // Decided once the first look has ended: new notifications wait for it.
      await h.clock.set(T0 + 1000);
      (await h.started("probe", T0 + 1000)).finish({ status: "failed", exitCode: 1 });
      // It reads 1,201 rows first: a loaded CI took more than the default 15 s on MySQL.
      await h.until(
        () => h.line(/job probe: failure notification waits/),
        "the first look to end",
        60_000,
      );
      assertEquals(h.line(/\(of 100000\)/), undefined, "x's pending one was read");
      for (const host of hosts) host.release();
      // Every one the look queued was sent (those it had no room for wait for the next look).
      await h.until(
        async () => {
          const [row] = await rawQuery(
            h.db,
            "SELECT COUNT(*) AS n FROM jm_notifications WHERE job_id LIKE 'busy%' AND outcome = 'sent'",
          );
          return Number(row.n) === h.count(/sending it now/);
        },
        "the queue to drain",
        60_000,
      );
      await h.clock.set(T0 + 2000);
      const run = await h.started("x", T0 + 2000);
      run.finish({ status: "failed", exitCode: 1 });
      await h.until(
        () =>
          h.line(/job x: failure notification waits in the database behind those the last look/),
        "x's failure left behind the unread one",
      );
      const got = await hookedWithinAMinute(h, events, 2, "both failures of x");
      assertEquals(got.map((p) => p.run_id), [100_000, run.runId]);
    } finally {
      for (const host of hosts) await host[Symbol.asyncDispose]();
    }
  });

  /*
   * The runs a killed service left, marked lost at the restart, notify
   * oldest end first, and before the runs whose end is learnt after them
   * (a fire found missed), however slow their reading is.
   */
  Deno.test(`notify order[${backend}]: lost runs notify oldest end first, before a fire missed after them`, async () => {
    await using dir = await tempDir();
    const events = `${dir.path}/events`;
    const db = await freshDatabase(backend);
    const read = Promise.withResolvers<void>();
    await using h = await DaemonHarness.create(db, {
      settings: { "notify.min_interval": 0 },
      store: storeWith(db, {
        listRuns: (s) => async (filter) => {
          if (filter.status === "lost") await read.promise;
          return await s.listRuns(filter);
        },
      }),
    });
    await h.job("flaky", { schedule: AT("1"), on_failure: appendStdin(events) });
    // The row a service killed with SIGKILL left: its last beat 30 s before the restart.
    await h.store.saveNode({
      ...serviceRow(NODE_ID),
      heartbeat_at: T0 - 30_000,
      db_heartbeat_at: (await h.store.databaseNow()) - 600_000,
      heartbeat_ms: 5000,
    });
    // Ended (at their start, or at the last beat when later) 10, 30 and 20 s before it: ids
    // ascending and descending are both out of that order.
    const left = { job_id: "flaky", trigger: "schedule" as const, node_id: NODE_ID };
    const ids = await h.store.claimRuns([-10_000, -60_000, -20_000].map((ago) => ({
      ...left,
      scheduled_at: T0 + ago,
      started_at: T0 + ago,
      status: "running" as const,
    })));
    await h.start();
    // 4 s after its fire, beyond misfire_grace_time (1 s): missed while the lost runs are read.
    await h.clock.set(T0 + 5000);
    const missed = await h.run("flaky", T0 + 1000, "missed");
    read.resolve();
    const got = await hookedWithinAMinute(
      h,
      events,
      4,
      "the hooks of the lost runs and the missed fire",
    );
    assertEquals(
      got.map((p) => [p.run_id, p.status]),
      [[ids[1], "lost"], [ids[2], "lost"], [ids[0], "lost"], [missed.id, "missed"]],
    );
  });
}
