/**
 * The order of a job's notifications, every backend: a recovery never
 * reaches a hook (or a pager) before its failure, whatever held the
 * failure (its hook still running, its claim slow, no turn free for it, a
 * first look that failed), while other jobs and other hosts go past. Real
 * `/bin/sh` hooks and loopback webhook receivers; fake runs and clock.
 */
import { assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase, rawQuery } from "./helpers.ts";
import { DaemonHarness, NODE_ID, storeWith, T0 } from "./daemon_harness.ts";
import {
  appendStdin,
  hookedWithinAMinute,
  jsonLines,
  leftPending,
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
    url: `http://127.0.0.1:${server.addr.port}/hook`,
    async [Symbol.asyncDispose]() {
      release();
      await server.shutdown();
    },
  };
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
    await h.job("busy", { schedule: AT("59"), on_failure_url: hung.url });
    // One post under way and 100 waiting: the host's queue is full.
    for (let ref = 1; ref <= 101; ref++) {
      await leftPending(h.store, { job: "busy", ref, at: T0 - 120_000 + ref, node: NODE_ID });
    }
    await h.job("flaky", {
      schedule: AT("1,2"),
      on_failure: appendStdin(`${d}/events`),
      on_failure_url: hung.url,
      on_recovery: appendStdin(`${d}/events`),
    });
    await h.start();
    await h.until(() => h.count(/sending it now/) >= 101, "the host's queue to fill");
    await h.clock.set(T0 + 1000);
    (await h.started("flaky", T0 + 1000)).finish({ status: "failed", exitCode: 1 });
    await h.until(
      () => h.line(/job flaky: failure notification waits in the database: 100 posts/),
      "flaky's failure left in the database",
    );
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
    const seed = db.open();
    await seed.migrate();
    await leftPending(seed, { job: "flaky", ref: 1, at: T0 - 10_000, node: NODE_ID });
    await seed.close();
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
    await rawQuery(
      db,
      "INSERT INTO jm_runs (job_id, scheduled_at, started_at, finished_at, status, exit_code, node_id, `trigger`) VALUES ('flaky', ?, ?, ?, 'failed', 1, ?, 'schedule')",
      [T0 - 20_000, T0 - 20_000, T0 - 10_000, NODE_ID],
    );
    await h.start();
    await h.until(() => h.line(/a refusal of the first look/), "the first look to fail");
    await h.clock.set(T0 + 3000);
    (await h.started("flaky", T0 + 3000)).finish();
    await h.run("flaky", T0 + 3000, "success");
    const got = await hookedWithinAMinute(h, file, 2, "both notifications");
    assertEquals(got.map((p) => p.event), ["failure", "recovery"]);
  });
}
