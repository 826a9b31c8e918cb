/**
 * The notification outbox under attack, every backend: a delivery that
 * ends while a look reads its row, backlogs of pending rows, a stop that
 * cuts deliveries or meets claims under way, a node restarting under its
 * id, an outcome that cannot be written, a version-8 database, the order
 * of a failure and its recovery, a thousand deliveries waiting, a take
 * raced, min_interval set to 0, a backlog's reads. Each test
 * holds the promise of the README's "A stop or a crash loses no
 * notification" (two attack reviews found each of them broken first).
 */
import { assert, assertEquals } from "./assert.ts";
import {
  type Backend,
  BACKENDS,
  freshDatabase,
  rawQuery,
  schemaAt,
  serviceRow,
  waitFor,
} from "./helpers.ts";
import { DaemonHarness, NODE_ID, storeWith, T0 } from "./daemon_harness.ts";
import {
  appendStdin,
  failureLeftPending,
  failurePayload,
  hookedWithinAMinute,
  jsonLines,
  leftPending,
  outcomes,
  tempDir,
  touched,
} from "./notify_fixtures.ts";
import { Metrics } from "../src/http/metrics.ts";

/**
 * Node n2 stops, leaving a notification it claimed `claimedAgoMs` ago
 * pending; it comes back under its id and sends it (its hook waits for
 * `go`), while n1, which looks at the nodes once a heartbeat (60 s), has
 * not seen it back yet: n1 must not send it too.
 */
async function restartRace(backend: Backend, claimedAgoMs: number): Promise<void> {
  await using dir = await tempDir();
  const d = dir.path;
  const db = await freshDatabase(backend);
  const options = (nodeId: string) => ({
    nodeId,
    claimTimeoutMs: 600_000,
    settings: { "jobsmanager.heartbeat_interval": 60, "notify.min_interval": 0 },
  });
  const n1 = await DaemonHarness.create(db, options("n1"));
  const n2 = await DaemonHarness.create(db, options("n2"));
  const n2again = await DaemonHarness.create(db, options("n2"));
  const all = [n1, n2, n2again];
  for (const h of all) {
    h.peers = all;
    h.owner = false;
  }
  try {
    await n1.job("j", {
      schedule: { second: "0", minute: "0", hour: "12" },
      on_failure: `touch '${d}/started.'$$; while ! test -e '${d}/go'; do sleep 0.05; done`,
    });
    await n1.start();
    await n2.start();
    await n1.until(async () => {
      if (!n1.line(/^2 live nodes: n1, n2$/)) await n1.clock.advance(1000);
      return n1.line(/^2 live nodes: n1, n2$/);
    }, "n1 to see n2");
    await n2.stop();
    await n2.until(async () => {
      if (!n2.ended) await n2.clock.advance(1000);
      return n2.ended;
    }, "n2 to stop");
    await n1.until(async () => {
      if (!n1.line(/^1 live nodes: n1$/)) await n1.clock.advance(1000);
      return n1.line(/^1 live nodes: n1$/);
    }, "n1 to see n2 gone");
    // What n2 left pending, claimed `claimedAgoMs` ago, waiting for a turn as it stopped.
    await leftPending(n1.store, {
      job: "j",
      ref: 7,
      at: n1.clock.now() - claimedAgoMs,
      node: "n2",
    });
    n2again.clock.set(n1.clock.now());
    await n2again.start();
    await n2again.until(async () => {
      if (await touched(`${d}/started`) === 0) await n2again.clock.advance(1000);
      return await touched(`${d}/started`) === 1;
    }, "n2 to send its pending notification");
    // 15 s of n1's looks (every 5 s); its next look at the nodes is a heartbeat (60 s) after the last.
    // n2's hook holds till the end: each step waits for n1's reads only.
    const from = n1.clock.now();
    await n1.stepUntil(
      () => n1.clock.now() >= from + 15_000,
      "15 s of n1",
      { to: from + 15_000, ready: () => n1.storeIdle },
    );
    await n1.until(
      async () =>
        n1.count(/claimed by node n2, which stopped before it went out/) === 0 ||
        await touched(`${d}/started`) === 2,
      "n1's delivery to start, if it sends it",
    );
    const n1Lines = n1.lines.filter((l) => /notification \(of 7\)|live nodes/.test(l));
    assertEquals(
      await touched(`${d}/started`),
      1,
      `sent by both: ${n1Lines.join(" | ")} ; row: ${
        JSON.stringify(
          await rawQuery(db, "SELECT node_id, attempt, outcome FROM jm_notifications"),
        )
      }`,
    );
  } finally {
    await Deno.writeTextFile(`${d}/go`, "").catch(() => {});
    for (const h of all) await h[Symbol.asyncDispose]().catch((e) => console.error(e));
    await db[Symbol.asyncDispose]();
  }
}

for (const backend of BACKENDS) {
  /*
   * A delivery that ends while a look reads its row (the read answered
   * after the outcome was written): the look must not send it again.
   */
  Deno.test(`notify outbox[${backend}]: a delivery that ends while the sweep's SELECT is answered is not sent again`, async () => {
    await using dir = await tempDir();
    const d = dir.path;
    const file = `${d}/failure`;
    const db = await freshDatabase(backend);
    // The sweep's SELECT answers only once `gate` opens (a slow database; or earlier rows' getJob).
    let armed = false;
    const entered = Promise.withResolvers<void>();
    const gate = Promise.withResolvers<void>();
    await using h = await DaemonHarness.create(db, {
      settings: { "notify.min_interval": 0 },
      store: storeWith(db, {
        pendingNotifications: (s) => async (query) => {
          const rows = await s.pendingNotifications(query);
          if (armed && rows.length > 0) {
            armed = false;
            entered.resolve();
            await gate.promise;
          }
          return rows;
        },
      }),
    });
    // The hook waits for `go` (a hook that takes a moment), then keeps its stdin.
    await h.job("a", {
      schedule: { second: "1", minute: "0", hour: "0" },
      on_failure: `touch '${d}/started.'$$; while ! test -e '${d}/go'; do sleep 0.05; done; ${
        appendStdin(file)
      }`,
    });
    await h.start();
    await h.clock.set(T0 + 1000);
    (await h.started("a", T0 + 1000)).finish({ status: "failed", exitCode: 1 });
    await h.until(async () => await touched(`${d}/started`) === 1, "the hook to start");
    armed = true;
    // The next look (every 5 s) reads the row: pending, being sent by this node.
    await h.until(async () => {
      let done = false;
      await Promise.race([entered.promise.then(() => done = true), Promise.resolve()]);
      if (!done) await h.clock.advance(1000);
      return done;
    }, "the sweep to read the pending row");
    // The hook ends meanwhile and its row is marked sent.
    await Deno.writeTextFile(`${d}/go`, "");
    await h.until(async () => Object.values(await outcomes(h))[0] === "sent", "marked sent");
    gate.resolve();
    // Let the sweep finish: the next one runs only after it.
    await h.until(async () => {
      await h.clock.advance(1000);
      return h.count(/claimed before and not sent yet: sending it now/) > 0 ||
        h.clock.now() >= T0 + 30_000;
    }, "the sweep to finish");
    if (h.count(/claimed before and not sent yet: sending it now/) > 0) {
      await h.until(async () => (await jsonLines(file)).length === 2, "the second delivery");
    }
    assertEquals(
      (await jsonLines(file)).length,
      1,
      `sent twice by a live node:\n${h.lines.filter((l) => l.startsWith("notify")).join("\n")}`,
    );
  });
}

for (const backend of BACKENDS) {
  /*
   * Another live node's 100 older pending rows (its webhook host is down)
   * must not hide this node's own from its looks.
   */
  Deno.test(`notify outbox[${backend}]: a node's own pending notification is sent though a live node has 100 older ones`, async () => {
    await using dir = await tempDir();
    const file = `${dir.path}/failure`;
    const db = await freshDatabase(backend);
    await using h = await DaemonHarness.create(db, { settings: { "notify.min_interval": 0 } });
    await h.job("mine", {
      schedule: { second: "0", minute: "0", hour: "12" },
      on_failure: appendStdin(file),
    });
    await h.job("theirs", {
      schedule: { second: "0", minute: "0", hour: "12" },
      on_failure_url: "http://127.0.0.1:9/hook",
    });
    // Another node, live (a heartbeat an hour long), working through 100 notifications to a slow host.
    await h.store.saveNode({
      ...serviceRow("busy"),
      db_heartbeat_at: await h.store.databaseNow(),
      heartbeat_ms: 3_600_000,
    });
    for (let ref = 1; ref <= 100; ref++) {
      await leftPending(h.store, { job: "theirs", ref, at: T0 - 120_000 + ref, node: "busy" });
    }
    // This node's own, left pending by its last run (a stop, a crash), claimed later.
    await leftPending(h.store, { job: "mine", ref: 500, at: T0 - 10_000, node: NODE_ID });
    await h.start();
    // README: "sent by the same service when it starts again ... within 5 s".
    const sent = await hookedWithinAMinute(h, file, 1, "its own notification");
    assertEquals(
      sent.map((p) => [p.job_id, p.run_id]),
      [["mine", 500]],
      `pending: ${JSON.stringify(await outcomes(h))}`,
    );
  });

  /*
   * At a restart, 150 own pending posts to a hung webhook host come
   * first: a later pending command hook of another job must still go.
   */
  Deno.test(`notify outbox[${backend}]: a pending command hook is not starved at restart by 150 pending posts to a hung host`, async () => {
    await using dir = await tempDir();
    const file = `${dir.path}/failure`;
    const { promise: released, resolve: release } = Promise.withResolvers<void>();
    const requests: string[] = [];
    await using server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      async (request) => {
        requests.push(new URL(request.url).pathname);
        await request.body?.cancel();
        await released;
        return new Response(null, { status: 200 });
      },
    );
    try {
      const db = await freshDatabase(backend);
      await using h = await DaemonHarness.create(db, {
        settings: { "notify.min_interval": 0, "notify.webhook_timeout": 600 },
      });
      await h.job("paged", {
        schedule: { second: "0", minute: "0", hour: "12" },
        on_failure: appendStdin(file),
      });
      await h.job("hooked", {
        schedule: { second: "0", minute: "0", hour: "12" },
        on_failure_url: `http://127.0.0.1:${server.addr.port}/hook`,
      });
      // What the last run of this node left pending: 150 posts to a host that hangs, then a page.
      for (let ref = 1; ref <= 150; ref++) {
        await leftPending(h.store, { job: "hooked", ref, at: T0 - 120_000 + ref, node: NODE_ID });
      }
      await leftPending(h.store, { job: "paged", ref: 500, at: T0 - 10_000, node: NODE_ID });
      await h.start();
      const sent = await hookedWithinAMinute(h, file, 1, "the page");
      assertEquals(
        sent.map((p) => [p.job_id, p.run_id]),
        [["paged", 500]],
        `posts to the hung host: ${requests.length}; log:\n${
          h.lines.filter((l) => l.startsWith("notify")).slice(-5).join("\n")
        }`,
      );
    } finally {
      release();
    }
  });
}

for (const backend of BACKENDS) {
  /*
   * A claim that settles after the stop began starts no hook (one the
   * stop would neither wait for nor interrupt): it stays pending.
   */
  Deno.test(`notify outbox[${backend}]: a claim that settles during the stop starts no hook the stop neither waits for nor interrupts`, async () => {
    await using dir = await tempDir();
    const d = dir.path;
    const file = `${d}/failure`;
    const db = await freshDatabase(backend);
    let gated = true;
    const claimEntered = Promise.withResolvers<void>();
    const gate = Promise.withResolvers<void>();
    const first = await DaemonHarness.create(db, {
      settings: { "notify.min_interval": 0 },
      store: storeWith(db, {
        claimNotification: (s) => async (claim) => {
          const out = await s.claimNotification(claim);
          if (gated) {
            gated = false;
            claimEntered.resolve();
            await gate.promise;
          }
          return out;
        },
      }),
    });
    first.owner = false;
    try {
      await first.job("a", {
        schedule: { second: "1", minute: "0", hour: "0" },
        on_failure:
          `echo $$ > '${d}/pid'; touch '${d}/started.'$$; while ! test -e '${d}/go'; do sleep 0.05; done; ${
            appendStdin(file)
          }`,
      });
      await first.start();
      await first.clock.set(T0 + 1000);
      (await first.started("a", T0 + 1000)).finish({ status: "failed", exitCode: 1 });
      await claimEntered.promise;
      const stoppedAt = await first.stop();
      // notifier.close waits (half its 5 s) for the claim under way.
      await first.until(
        () => first.clock.wakeUps.includes(stoppedAt + 2500),
        "notifier.close to wait for the claim",
      );
      assertEquals(await touched(`${d}/started`), 0);
      gate.resolve();
      await first.until(() => first.ended, "the first service to end");
      const startedDuringStop = await touched(`${d}/started`);
      const pid = startedDuringStop > 0 ? (await Deno.readTextFile(`${d}/pid`)).trim() : null;
      let alive = false;
      try {
        if (pid !== null) alive = Deno.statSync(`/proc/${pid}`).isDirectory;
      } catch { /* gone */ }
      const rows = await outcomes(first);
      assertEquals(
        startedDuringStop,
        0,
        `a hook was started after close() began; its pid ${pid} alive after the end: ${alive}; outcome: ${
          JSON.stringify(rows)
        }; log: ${first.lines.filter((l) => /notify|stopp/.test(l)).join(" | ")}`,
      );
    } finally {
      await Deno.writeTextFile(`${d}/go`, "").catch(() => {});
      await first[Symbol.asyncDispose]();
      await db[Symbol.asyncDispose]();
    }
  });
}

for (const backend of BACKENDS) {
  /*
   * A webhook post cut short by a stop is neither logged nor counted as
   * a failed delivery: its row stays pending and the next start sends it.
   */
  Deno.test(`notify outbox[${backend}]: a webhook cut short by a stop is not counted failed`, async () => {
    const { promise: released, resolve: release } = Promise.withResolvers<void>();
    const requests: string[] = [];
    await using server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      async (request) => {
        requests.push(new URL(request.url).pathname);
        await request.body?.cancel();
        await released;
        return new Response(null, { status: 200 });
      },
    );
    const metrics = new Metrics();
    const db = await freshDatabase(backend);
    try {
      await using h = await DaemonHarness.create(db, {
        observer: metrics,
        settings: { "notify.min_interval": 0, "notify.webhook_timeout": 600 },
      });
      h.owner = false;
      await h.job("sync", {
        schedule: { second: "1", minute: "0", hour: "0" },
        on_failure_url: `http://127.0.0.1:${server.addr.port}/hook`,
      });
      await h.start();
      await h.clock.set(T0 + 1000);
      (await h.started("sync", T0 + 1000)).finish({ status: "failed", exitCode: 1 });
      await h.until(() => requests.length === 1, "the POST under way");
      await h.stop();
      await h.until(async () => {
        if (!h.ended) await h.clock.advance(1000);
        return h.ended;
      }, "the service to stop");
      const text = await metrics.text();
      assertEquals(Object.values(await outcomes(h)), ["pending"], h.lines.join("\n"));
      assert(!text.includes('outcome="failed"'), text);
    } finally {
      release();
      await db[Symbol.asyncDispose]();
    }
  });
}

for (const backend of BACKENDS) {
  /*
   * A node restarting under its id, and another that has not seen it
   * come back yet (it looks once a heartbeat_interval): one of them only
   * takes and sends its pending notification.
   */
  Deno.test(`notify outbox[${backend}]: a node restarting under its id and a node that has not seen it back yet do not both send its pending notification`, async () => {
    await restartRace(backend, 60_000);
  });
}

for (const backend of BACKENDS) {
  /*
   * The write of `sent` fails once (a lock wait timeout): the live node
   * tries it again, and does not send the notification a second time.
   */
  Deno.test(`notify outbox[${backend}]: a notification delivered whose 'sent' write failed once is not sent again by its live node`, async () => {
    await using dir = await tempDir();
    const file = `${dir.path}/failure`;
    const db = await freshDatabase(backend);
    let failures = 1;
    const { DatabaseError } = await import("../src/errors.ts");
    await using h = await DaemonHarness.create(db, {
      settings: { "notify.min_interval": 0 },
      store: storeWith(db, {
        notificationDone: (s) => (jobId, event, ref, outcome) => {
          if (failures-- > 0) {
            return Promise.reject(
              new DatabaseError("Lock wait timeout exceeded; try restarting transaction", {
                unreachable: false,
              }),
            );
          }
          return s.notificationDone(jobId, event, ref, outcome);
        },
      }),
    });
    await h.job("a", {
      schedule: { second: "1", minute: "0", hour: "0" },
      on_failure: appendStdin(file),
    });
    await h.start();
    await h.clock.set(T0 + 1000);
    (await h.started("a", T0 + 1000)).finish({ status: "failed", exitCode: 1 });
    await h.until(async () => (await jsonLines(file)).length === 1, "the hook");
    await h.until(() => h.line(/refused a statement/), "the failed write");
    await h.stepUntil(
      () => h.clock.now() >= T0 + 30_000,
      "30 s of looks",
      { to: T0 + 30_000 },
    );
    await h.until(
      async () =>
        h.count(/claimed before and not sent yet/) === 0 || (await jsonLines(file)).length === 2,
      "a second delivery to end, if any",
    );
    assertEquals(
      (await jsonLines(file)).length,
      1,
      h.lines.filter((l) => /notify|store/.test(l)).join("\n"),
    );
  });
}

for (const backend of BACKENDS) {
  Deno.test(`notify outbox[${backend}]: a database at version 8 with notifications held, sent and failed migrates, and its held one goes out`, async () => {
    await using dir = await tempDir();
    const file = `${dir.path}/failure`;
    const db = await freshDatabase(backend);
    await schemaAt(db, 8);
    // What version 8 wrote: a claim sent, one failed, two held (the state keeps the latest's payload).
    const rows: [number, string][] = [[1, "sent"], [2, "failed"], [3, "held"], [4, "held"]];
    for (const [ref, outcome] of rows) {
      await rawQuery(
        db,
        "INSERT INTO jm_notifications (job_id, event, ref, status, created_at, node_id, outcome) VALUES ('old', 'failure', ?, 'failed', ?, 'v8-node', ?)",
        [ref, T0 - 600_000 + ref, outcome],
      );
    }
    await rawQuery(
      db,
      "INSERT INTO jm_notify_state (job_id, last_sent_at, held_count, held_since, held_statuses, held_payload) VALUES ('old', ?, 2, ?, ?, ?)",
      [
        T0 - 600_000 + 1,
        T0 - 600_000 + 3,
        JSON.stringify({ failed: 2 }),
        JSON.stringify(failurePayload("old", 4, "v8-node")),
      ],
    );
    await using h = await DaemonHarness.create(db, { settings: { "notify.min_interval": 30 } });
    await h.job("old", {
      schedule: { second: "0", minute: "0", hour: "12" },
      on_failure: appendStdin(file),
    });
    await h.start();
    const [sent] = await hookedWithinAMinute(h, file, 1, "the held one");
    assertEquals([sent.run_id, sent.held_back?.count], [4, 1]);
    await h.until(async () => (await outcomes(h))[4] === "sent", "marked sent");
    assertEquals(await outcomes(h), { 1: "sent", 2: "failed", 3: "held", 4: "sent" });
  });
}

for (const backend of BACKENDS) {
  /*
   * A failure left pending by a stop goes out at the next start before
   * the recovery of a run that succeeds right after it.
   */
  Deno.test(`notify outbox[${backend}]: a failure left pending by a stop goes out before the recovery that follows it`, async () => {
    await using dir = await tempDir();
    const d = dir.path;
    const file = `${d}/events`;
    const db = await freshDatabase(backend);
    const settings = { "notify.min_interval": 0 };
    const hook = `test -e '${d}/go' || sleep 600; ${appendStdin(file)}`;
    const first = await DaemonHarness.create(db, { settings });
    first.owner = false;
    try {
      await first.job("flaky", {
        schedule: { second: "1,3", minute: "0", hour: "0" },
        on_failure: hook,
        on_recovery: hook,
      });
      await first.start();
      await first.clock.set(T0 + 1000);
      (await first.started("flaky", T0 + 1000)).finish({ status: "failed", exitCode: 1 });
      await first.until(async () => Object.keys(await outcomes(first)).length === 1, "claimed");
      await first.stop();
      await first.until(async () => {
        if (!first.ended) await first.clock.advance(100);
        return first.ended;
      }, "the first service to stop");
    } finally {
      await first[Symbol.asyncDispose]();
    }
    assertEquals(Object.values(await outcomes(first)), ["pending"]);
    await Deno.writeTextFile(`${d}/go`, "");
    await using second = await DaemonHarness.create(db, { settings });
    await second.start();
    await second.clock.set(T0 + 3000);
    (await second.started("flaky", T0 + 3000)).finish();
    const got = await hookedWithinAMinute(second, file, 2, "both notifications");
    assertEquals(got.map((p) => p.event), ["failure", "recovery"]);
  });
}

for (const backend of BACKENDS) {
  /*
   * With 1,000 deliveries waiting for a turn, the next notification is
   * still claimed, and waits in the database.
   */
  Deno.test(`notify outbox[${backend}]: with 1,000 deliveries waiting, a new notification is claimed and waits in the database`, async () => {
    await using dir = await tempDir();
    const d = dir.path;
    const db = await freshDatabase(backend);
    const metrics = new Metrics();
    await using h = await DaemonHarness.create(db, {
      observer: metrics,
      settings: {
        "notify.min_interval": 0,
        "notify.max_concurrent": 1,
        "jobsmanager.max_workers": 2000,
      },
    });
    const count = 1010;
    const schedule = { second: "1", minute: "0", hour: "0" };
    const hook = `while ! test -e '${d}/go'; do sleep 0.05; done`;
    for (let i = 0; i < count; i++) await h.job(`j${i}`, { schedule, on_failure: hook });
    await h.start();
    await h.clock.set(T0 + 1000);
    await h.until(() => h.runner.runs.length === count, "every run started");
    const rows = async () =>
      Number((await rawQuery(db, "SELECT COUNT(*) AS n FROM jm_notifications"))[0].n);
    // Runs end 100 at a time, each batch claimed before the next: no burst of claims.
    for (let i = 0; i < count; i += 100) {
      for (const run of h.runner.runs.slice(i, i + 100)) {
        run.finish({ status: "failed", exitCode: 1 });
      }
      const want = Math.min(i + 100, count);
      await h.until(
        async () => await rows() >= want || h.count(/notification dropped/) > 0,
        `claims of the first ${want}`,
      );
      await h.until(
        async () => await rows() + h.count(/notification dropped/) >= want,
        `batch ${i}`,
      );
    }
    const text = await metrics.text();
    try {
      assertEquals(
        { rows: await rows(), dropped: h.count(/notification dropped/) },
        { rows: count, dropped: 0 },
        `${h.line(/notification dropped/)}\n${
          text.split("\n").filter((l) => l.includes("notifications_total")).join("\n")
        }`,
      );
    } finally {
      await Deno.writeTextFile(`${d}/go`, "");
    }
  });
}

for (const backend of BACKENDS) {
  /*
   * Another node may take a pending row over only long after its last
   * take, not its claim: a node restarting under its id that takes its own
   * 170 s old row is not raced by a node that has not seen it back yet.
   */
  Deno.test(`notify outbox[${backend}]: a node that takes an old pending row is not raced by another that has not seen it yet`, async () => {
    await restartRace(backend, 170_000);
  });
}

for (const backend of BACKENDS) {
  /*
   * What a node left pending goes before anything newer: a recovery
   * claimed while the first look at start still reads waits for it.
   */
  Deno.test(`notify outbox[${backend}]: a recovery claimed while the first look reads goes after the failure left pending`, async () => {
    await using dir = await tempDir();
    const d = dir.path;
    const file = `${d}/events`;
    const db = await freshDatabase(backend);
    const settings = { "notify.min_interval": 0 };
    const hook = appendStdin(file);
    // The failure the last run of this node left pending, and its run (the recovery's reason).
    await failureLeftPending(db);
    // The first look's read is answered late (a slow database, or a long backlog before it).
    let first = true;
    const gate = Promise.withResolvers<void>();
    await using second = await DaemonHarness.create(db, {
      settings,
      store: storeWith(db, {
        pendingNotifications: (s) => async (query) => {
          if (first) {
            first = false;
            await gate.promise;
          }
          return await s.pendingNotifications(query);
        },
      }),
    });
    await second.job("flaky", {
      schedule: { second: "3", minute: "0", hour: "0" },
      on_failure: hook,
      on_recovery: hook,
    });
    await second.start();
    await second.clock.set(T0 + 3000);
    (await second.started("flaky", T0 + 3000)).finish();
    // Its end is recorded, so its recovery is being claimed, while the first look still reads.
    await second.until(async () => {
      const [row] = await rawQuery(
        db,
        "SELECT COUNT(*) AS n FROM jm_runs WHERE status = 'success'",
      );
      return Number(row.n) === 1;
    }, "the run's end recorded");
    gate.resolve();
    const got = await hookedWithinAMinute(second, file, 2, "both notifications");
    assertEquals(got.map((p) => p.event), ["failure", "recovery"]);
  });
}

for (const backend of BACKENDS) {
  /*
   * A backlog of pending posts to one hung host: a look reads the job of
   * that backlog once, not once a row it cannot queue.
   */
  Deno.test(`notify outbox[${backend}]: a backlog of one full host costs a look one read of its job, not one a row`, async () => {
    const { promise: released, resolve: release } = Promise.withResolvers<void>();
    await using server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      async (request) => {
        await request.body?.cancel();
        await released;
        return new Response(null, { status: 200 });
      },
    );
    try {
      const db = await freshDatabase(backend);
      let getJobs = 0;
      let reads = 0;
      await using h = await DaemonHarness.create(db, {
        settings: { "notify.min_interval": 0, "notify.webhook_timeout": 600 },
        store: storeWith(db, {
          getJob: (s) => (id) => {
            getJobs++;
            return s.getJob(id);
          },
          pendingNotifications: (s) => async (q) => {
            reads++;
            return await s.pendingNotifications(q);
          },
        }),
      });
      await h.job("hooked", {
        schedule: { second: "0", minute: "0", hour: "12" },
        on_failure_url: `http://127.0.0.1:${server.addr.port}/hook`,
      });
      const backlog = 2000;
      for (let ref = 1; ref <= backlog; ref++) {
        await leftPending(h.store, { job: "hooked", ref, at: T0 - 120_000 + ref, node: NODE_ID });
      }
      await h.start();
      await h.until(() => h.count(/sending it now/) >= 101, "the host's queue to fill");
      const pages = backlog / 100 + 1;
      await waitFor(() => reads >= pages, { what: "the first look", timeoutMs: 120_000 });
      const before = { getJobs, reads };
      // Looks for 15 s of the fake clock: nothing can be queued for that host meanwhile.
      await h.stepUntil(
        () => h.clock.now() >= T0 + 15_000 && (reads - before.reads) % pages === 0,
        "15 s of looks",
        { to: T0 + 15_000, timeoutMs: 120_000 },
      );
      const looks = (reads - before.reads) / pages;
      const perLook = (getJobs - before.getJobs) / looks;
      assert(perLook < 100, `${perLook} getJob queries per look (every 5 s)`);
    } finally {
      release();
    }
  });
}

for (const backend of BACKENDS) {
  /*
   * A notification held while min_interval was 300 s goes out once it is
   * set to 0: the look for held ones is made then too.
   */
  Deno.test(`notify outbox[${backend}]: a notification held while min_interval was 300 s goes out once it is set to 0`, async () => {
    await using dir = await tempDir();
    const file = `${dir.path}/failure`;
    const db = await freshDatabase(backend);
    await using h = await DaemonHarness.create(db, { settings: { "notify.min_interval": 0 } });
    await h.job("a", {
      schedule: { second: "0", minute: "0", hour: "12" },
      on_failure: appendStdin(file),
    });
    const base = {
      job_id: "a",
      event: "failure" as const,
      status: "failed",
      node_id: NODE_ID,
      minIntervalMs: 300_000,
    };
    await h.store.claimNotification({
      ...base,
      ref: 1,
      at: T0 - 120_000,
      payload: JSON.stringify(failurePayload("a", 1, NODE_ID)),
    });
    await h.store.notificationDone("a", "failure", 1, "sent");
    await h.store.claimNotification({
      ...base,
      ref: 2,
      at: T0 - 60_000,
      payload: JSON.stringify(failurePayload("a", 2, NODE_ID)),
    });
    await h.start();
    await h.stepUntil(
      async () => h.clock.now() >= T0 + 600_000 || (await outcomes(h))[2] === "sent",
      "10 minutes of looks, or the held one sent",
      { to: T0 + 600_000, step: 5000 },
    );
    assertEquals({ sent: (await jsonLines(file)).length, outcomes: await outcomes(h) }, {
      sent: 1,
      outcomes: { 1: "sent", 2: "sent" },
    });
  });
}
