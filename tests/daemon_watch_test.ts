/**
 * A daemon told of every write to its database (`serve` on SQLite watches
 * the file), in-process with a fake clock, on every backend: the timed
 * poll becomes a safety net every 5 s, a reported write is polled for 50 ms
 * after it (its commit visible by then) but never sooner than 0.5 s after
 * the last poll, and not at all on SQLite when no other connection
 * committed (the service's own writes); what the service's own writes
 * used to set off a poll for is polled for by itself: queued runs left
 * for lack of a worker once one is free, more than a poll's batch by the
 * same poll, an end waiting for its record every 0.5 s. A retry queued
 * by an earlier service is taken at its instant, not at the next timed
 * poll. Sole on its database (`serve` holding the SQLite file's lock), it
 * looks for other nodes only at each heartbeat. Told only
 * of its machine's writes (`serve` on MySQL watching for change notices),
 * it polls for others' every 2 s while alone, every reload_interval beside
 * another live node. Alone on its database, any node looks for others at
 * each heartbeat, and every second once one has joined.
 */
import { assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase, saveNodes, serviceRow, type TestDatabase } from "./helpers.ts";
import { DaemonHarness, storeWith, T0 } from "./daemon_harness.ts";
import { fire, manualRequest } from "./store_contract.ts";
import type { Store } from "../src/store/store.ts";

/**
 * A store that counts the service's calls of `method` (its polls:
 * pollState), and the answers each method gave.
 */
/** Whether the node's heartbeat row says it loaded its one job (the first load reported). */
async function loadReported(h: DaemonHarness): Promise<boolean> {
  return (await h.store.nodesAndNow()).nodes.some((n) => n.jobs_loaded === 1);
}

function counting(
  db: TestDatabase,
  method: keyof Store = "pollState",
): { calls: () => number; answered: (method: keyof Store) => number; open: () => Store } {
  let calls = 0;
  const answers = new Map<PropertyKey, number>();
  return {
    calls: () => calls,
    answered: (method) => answers.get(method) ?? 0,
    open: () => {
      const store = db.open();
      return new Proxy(store, {
        get(target, key) {
          const value = Reflect.get(target, key);
          if (typeof value !== "function") return value;
          return (...args: unknown[]) => {
            if (key === method) calls++;
            const result = value.apply(target, args);
            if (result instanceof Promise) {
              result.then(() => answers.set(key, (answers.get(key) ?? 0) + 1), () => {});
            }
            return result;
          };
        },
      });
    },
  };
}

/**
 * A watched service (reload_interval 2) on a `counting` store, with one
 * job that never fires, once it has made its second poll (at 2 s).
 */
async function watchedService(db: TestDatabase) {
  const store = counting(db);
  const h = await DaemonHarness.create(db, {
    store: store.open,
    settings: { "jobsmanager.reload_interval": 2 },
  });
  await h.job("idle", { cron: "0 12 15 6 *" });
  const daemon = await h.start();
  daemon.watched(true);
  // The poll the start planned, reload_interval after the first.
  await h.clock.set(T0 + 2000);
  await h.until(() => store.calls() === 2, `the second poll (${store.calls()} so far)`);
  return { h, daemon, store };
}

/**
 * Past the first look at a write (at 2.05 s), whose answer, the first, is
 * always yes, and the poll it made (at 2.5 s); then past the look at a
 * write of its own, reported at 3 s: looked for at 3.05 s, found no
 * other connection's.
 */
async function ownWriteLookedFor(
  h: DaemonHarness,
  daemon: { changed(): void },
  store: ReturnType<typeof counting>,
): Promise<void> {
  daemon.changed();
  await h.clock.set(T0 + 2050);
  await h.until(() => store.answered("writtenElsewhere") === 1, "the first look");
  await h.clock.set(T0 + 2500);
  await h.until(() => store.calls() === 3, `the poll for the first look (${store.calls()})`);
  await h.clock.set(T0 + 3000);
  daemon.changed();
  await h.clock.set(T0 + 3050);
  await h.until(() => store.answered("writtenElsewhere") === 2, "the look 50 ms after");
}

const at = (s: number) => T0 + s * 1000;

/**
 * A store whose claims of scheduled fires wait until `answer()` (a claim
 * the database answers late, within claimTimeoutMs: no outage), and
 * which counts the service's polls.
 */
function lateClaims(db: Parameters<typeof storeWith>[0]) {
  const gate = Promise.withResolvers<void>();
  let answered = 0;
  let polls = 0;
  const open = storeWith(db, {
    claimRuns: (target: Store) => async (rows) => {
      const held = answered === 0 && rows.some((r) => r.trigger === "schedule");
      if (held) await gate.promise;
      const ids = await target.claimRuns(rows);
      if (held) answered++;
      return ids;
    },
    pollState: (target: Store) => (...args) => {
      polls++;
      return target.pollState(...args);
    },
  });
  return { open, answer: () => gate.resolve(), answered: () => answered, polls: () => polls };
}

const ENDED_AWAY = /ended failed while the database was away; its retry is queued/;

/** A harness whose claims answer late (`lateClaims`), polling every 5 s. */
function lateHarness(db: TestDatabase, store: ReturnType<typeof lateClaims>) {
  return DaemonHarness.create(db, {
    store: store.open,
    // The claim may answer up to 3 s late without the database counting as away.
    claimTimeoutMs: 3000,
    // Timed polls every 5 s (as watched): at T0, 5 s, 10 s.
    settings: { "jobsmanager.reload_interval": 5 },
  });
}

/**
 * Start the service with `flaky` (one retry) due at `second` s: its claim
 * gives up 250 ms before the fire's grace (1 s) ends, so the run starts
 * under a provisional id, and it fails at +800 ms, before its claim lands.
 */
async function failBeforeItsRecord(
  h: DaemonHarness,
  store: ReturnType<typeof lateClaims>,
  second: number,
): Promise<void> {
  await h.job("flaky", {
    schedule: { second: String(second), minute: "0", hour: "0" },
    retries: "1",
    retry_delay: "1",
  });
  await h.start();
  await h.until(() => store.polls() === 1, "the first poll");
  await h.clock.set(at(second));
  await h.clock.set(at(second) + 750);
  const run = await h.started("flaky", at(second));
  assertEquals(run.spec.env.JM_RUN_ID, "", "the run has no row yet");
  await h.clock.set(at(second) + 800);
  run.finish({ status: "failed", exitCode: 1 });
  await h.until(() => h.line(ENDED_AWAY), "its end to wait for its record");
}

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: watched, it polls every 5 s, and for a reported write 50 ms after it, 0.5 s after the last poll at the soonest`, async () => {
    const { h: watched, daemon, store } = await watchedService(await freshDatabase(backend));
    await using h = watched;

    const added = await h.job("added", { cron: "0 12 15 6 *" });
    await h.clock.set(T0 + 4000);
    assertEquals(store.calls(), 2, "a timed poll came at reload_interval, not after 5 s");
    daemon.changed();
    // Not at once: SQLite makes a commit visible a moment after its last write.
    await h.clock.set(T0 + 4049);
    assertEquals(store.calls(), 2, "a poll came sooner than 50 ms after the write");
    await h.clock.set(T0 + 4050);
    await h.until(() => store.calls() === 3, `a poll for the write (${store.calls()} so far)`);
    await h.until(
      async () => (await h.markers()).find((m) => m.id === added)?.updated,
      `marker ${added} to be applied`,
    );

    // Another write right after: its poll waits until 0.5 s after the last.
    await h.clock.set(T0 + 4250);
    const second = await h.job("second", { cron: "0 12 15 6 *" });
    daemon.changed();
    await h.clock.set(T0 + 4549);
    assertEquals(store.calls(), 3, "a poll came sooner than 0.5 s after the last");
    await h.clock.set(T0 + 4550);
    await h.until(() => store.calls() === 4, `the poll for the second write (${store.calls()})`);
    await h.until(
      async () => (await h.markers()).find((m) => m.id === second)?.updated,
      `marker ${second} to be applied`,
    );

    // A write reported with no other connection's commit since (its own,
    // on SQLite): no poll for it; MySQL cannot tell, and polls.
    await h.clock.set(T0 + 5500);
    const looked = store.answered("writtenElsewhere");
    daemon.changed();
    await h.clock.set(T0 + 5550);
    await h.until(
      () => store.answered("writtenElsewhere") > looked,
      "the reported write to be looked for",
    );
    const own = backend === "sqlite" ? 4 : 5;
    await h.until(() => store.calls() === own, `${own} polls (${store.calls()} so far)`);
    const safety = backend === "sqlite" ? T0 + 9550 : T0 + 10_550;

    // Nothing written: the safety net, 5 s after the last poll.
    await h.clock.set(safety - 1);
    assertEquals(store.calls(), own, "a poll came before the 5 s safety net");
    await h.clock.set(safety);
    await h.until(() => store.calls() === own + 1, `the safety-net poll (${store.calls()})`);

    // No longer watched: every reload_interval again.
    daemon.watched(false);
    await h.clock.set(safety + 2000);
    await h.until(() => store.calls() === own + 2, `a poll at reload_interval (${store.calls()})`);
  });

  Deno.test(`daemon[${backend}]: watched, a write reported while one is looked for is looked for again after it`, async () => {
    const { h: watched, daemon, store } = await watchedService(await freshDatabase(backend));
    await using h = watched;

    await h.clock.set(T0 + 3000);
    daemon.changed();
    // Reported while the first is looked for: a commit that becomes visible after that look.
    await h.clock.set(T0 + 3030);
    daemon.changed();
    await h.clock.set(T0 + 3050);
    await h.until(() => store.answered("writtenElsewhere") === 1, "the first look");
    const added = await h.job("added", { cron: "0 12 15 6 *" });
    // Looked for again at 3080; its poll 0.5 s after the one the first look made.
    await h.clock.set(T0 + 3550);
    await h.until(
      async () => (await h.markers()).find((m) => m.id === added)?.updated,
      `marker ${added} to be applied (looks: ${
        store.answered("writtenElsewhere")
      }, polls: ${store.calls()}, wake-ups: ${h.clock.wakeUps.map((t) => t - T0)})`,
    );
  });

  // MySQL's notices come after the commit; SQLite's reports can come before it (a slow sync).
  if (backend === "sqlite") {
    Deno.test(`daemon[${backend}]: watched, a commit that becomes visible after its last report is found 0.5 s after it`, async () => {
      const { h: watched, daemon, store } = await watchedService(await freshDatabase(backend));
      await using h = watched;
      await ownWriteLookedFor(h, daemon, store);
      // Committed after that look, with no report of its own.
      const added = await h.job("added", { cron: "0 12 15 6 *" });
      await h.clock.set(T0 + 3500);
      await h.until(
        async () => (await h.markers()).find((m) => m.id === added)?.updated,
        `marker ${added} to be applied by the look 0.5 s after the report (looks: ${
          store.answered("writtenElsewhere")
        }, polls: ${store.calls()}, wake-ups: ${h.clock.wakeUps.map((t) => t - T0)})`,
      );
    });

    Deno.test(`daemon[${backend}]: watched, a write reported while a write of its own waits for its second look is looked for 50 ms after it`, async () => {
      const { h: watched, daemon, store } = await watchedService(await freshDatabase(backend));
      await using h = watched;
      // The second look at its own write would be at 3500.
      await ownWriteLookedFor(h, daemon, store);
      const added = await h.job("added", { cron: "0 12 15 6 *" });
      await h.clock.set(T0 + 3100);
      daemon.changed();
      await h.until(
        () => h.clock.wakeUps.includes(T0 + 3150),
        `a look planned for 3150 (wake-ups: ${h.clock.wakeUps.map((t) => t - T0)})`,
      );
      await h.clock.set(T0 + 3150);
      await h.until(
        async () => (await h.markers()).find((m) => m.id === added)?.updated,
        `marker ${added} to be applied 50 ms after its report (looks: ${
          store.answered("writtenElsewhere")
        }, polls: ${store.calls()}, wake-ups: ${h.clock.wakeUps.map((t) => t - T0)})`,
      );
    });
  }

  Deno.test(`daemon[${backend}]: watched, a job run request left for lack of a worker is taken as the run holding the worker ends, not at the next timed poll`, async () => {
    const db = await freshDatabase(backend);
    // The fake times of the looks for job run requests, each once it has its answer.
    const looked: number[] = [];
    await using h = await DaemonHarness.create(db, {
      settings: { "jobsmanager.max_workers": 1 },
      store: storeWith(db, {
        queuedManualRuns: (s) => async (limit) => {
          const at = h.clock.now();
          const runs = await s.queuedManualRuns(limit);
          looked.push(at - T0);
          return runs;
        },
      }),
    });
    await h.job("long", { cron: "0 12 15 6 *" });
    await h.job("manual", { cron: "0 12 15 6 *" });
    await h.store.claimRuns([manualRequest("long", T0 - 2000), manualRequest("manual", T0 - 1000)]);
    const daemon = await h.start();
    daemon.watched(true);
    await h.until(() => h.runner.of("long").length === 1, "long to start");
    await h.clock.set(T0 + 2000);
    await h.until(
      async () =>
        (await h.runs("manual"))[0]?.status === "queued" && h.clock.wakeUps.includes(T0 + 7000),
      `manual queued, the service waiting for its timed poll at T0+7000 (wake-ups: ${
        h.clock.wakeUps.map((t) => t - T0)
      })`,
    );
    // The poll at 2 s runs on while the service sleeps: on a loaded machine it
    // could find long ended, and take manual then, unless it has looked first.
    await h.until(
      () => looked.includes(2000),
      `the poll at 2 s to look for job run requests (looks at: ${looked})`,
    );
    await h.clock.set(T0 + 2100);
    h.runner.of("long")[0].finish();
    await h.until(async () => (await h.runs("long"))[0]?.status === "success", "long recorded");
    // Its poll 0.5 s after the last.
    await h.clock.set(T0 + 2499);
    assertEquals(
      h.runner.of("manual").length,
      0,
      "manual started before 0.5 s after the last poll",
    );
    await h.clock.set(T0 + 2500);
    await h.until(
      () => h.runner.of("manual").length === 1,
      `manual to start (wake-ups: ${h.clock.wakeUps.map((t) => t - T0)})`,
    );
  });

  Deno.test(`daemon[${backend}]: a run that ended before its late claim landed is retried within 0.5 s of its record being written, not at the next timed poll`, async () => {
    const db = await freshDatabase(backend);
    const store = lateClaims(db);
    await using h = await lateHarness(db, store);
    await failBeforeItsRecord(h, store, 4);

    // The timed poll at 5 s finds its record not written yet.
    await h.clock.set(at(5));
    await h.until(() => store.polls() === 2, "the timed poll at 5 s");
    // The claim lands at 5.1 s: the record is written.
    await h.clock.set(at(5) + 100);
    store.answer();
    await h.until(() => store.answered() === 1, "the late claim's answer");
    await h.run("flaky", at(4), "failed");
    assertEquals(
      (await h.runs("flaky")).filter((r) => r.trigger === "retry"),
      [],
      "a retry queued before a poll",
    );

    // Looked for every 0.5 s while it waits: the poll at 5.5 s queues the retry, not the
    // timed one at 10 s.
    await h.clock.set(at(5) + 500);
    const retry = await h.until(
      async () => (await h.runs("flaky")).find((r) => r.trigger === "retry"),
      "the retry to be queued by the poll at 5.5 s",
      3000,
    );
    assertEquals([retry.status, retry.attempt], ["queued", 2]);
    // ... and it runs at its instant (4.8 s + 1 s, jitter up to 10 %).
    await h.clock.set(at(6));
    await h.started("flaky", retry.scheduled_at);
  });

  Deno.test(`daemon[${backend}]: a run whose late claim lands before the next timed poll is retried 0.5 s after, not at the timed poll`, async () => {
    const db = await freshDatabase(backend);
    const store = lateClaims(db);
    await using h = await lateHarness(db, store);
    await failBeforeItsRecord(h, store, 1);
    await h.clock.set(at(1) + 900);
    store.answer();
    await h.until(() => store.answered() === 1, "the late claim's answer");
    await h.run("flaky", at(1), "failed");
    // Written at 1.9 s; looked for every 0.5 s from its end (1.8 s): queued by the poll at 2.3 s.
    await h.clock.set(at(2) + 500);
    await h.until(
      async () => (await h.runs("flaky")).find((r) => r.trigger === "retry"),
      `the retry to be queued by 2.5 s (polls: ${store.polls()}; wake-ups: ${
        h.clock.wakeUps.map((t) => t - T0)
      })`,
      3000,
    );
  });

  Deno.test(`daemon[${backend}]: a job run request left for lack of a worker is taken once the fire holding the worker is missed at its start`, async () => {
    const db = await freshDatabase(backend);
    let polls = 0;
    let manualReads = 0;
    await using h = await DaemonHarness.create(db, {
      store: storeWith(db, {
        pollState: (target: Store) => (...args) => {
          polls++;
          return target.pollState(...args);
        },
        queuedManualRuns: (target: Store) => async (limit) => {
          const rows = await target.queuedManualRuns(limit);
          manualReads++;
          return rows;
        },
      }),
      settings: { "jobsmanager.max_workers": 1, "jobsmanager.reload_interval": 5 },
    });
    await h.job("tick", { schedule: { second: "1", minute: "0", hour: "0" } });
    await h.job("manual", { cron: "0 12 15 6 *" });
    const daemon = await h.start();
    await h.until(() => polls === 1, "the first poll");
    // The fire at 1 s takes the only worker; its start is held up (a burst in the runner).
    h.runner.holdStarts = true;
    await h.clock.set(at(1));
    await h.until(() => h.runner.heldStarts === 1, "tick to be handed out");
    // A `job run` request, reported: the poll for it finds no worker free.
    await h.store.claimRuns([manualRequest("manual", at(1) + 200)]);
    await h.clock.set(at(1) + 200);
    daemon.changed();
    await h.clock.set(at(1) + 250);
    await h.until(() => manualReads === 1, "the poll for the request");
    // The runner gets to tick past its grace: it never starts, and its worker is free.
    await h.clock.set(at(2) + 100);
    h.runner.holdStarts = false;
    h.runner.releaseStarts();
    await h.run("tick", at(1), "missed");
    // A run ending polls at once, 0.5 s after the last poll at the soonest (1.25 s): a fire
    // missed at its start does not, and the request waits for the timed poll at 6.25 s.
    await h.clock.set(at(2) + 200);
    await h.until(
      () => h.runner.of("manual").length === 1,
      `manual to start by 2.2 s (polls: ${polls}; wake-ups: ${h.clock.wakeUps.map((t) => t - T0)})`,
      3000,
    );
  });

  Deno.test(`daemon[${backend}]: job run requests beyond one poll's batch are taken by the same poll, not the next timed one`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "jobsmanager.reload_interval": 5 },
    });
    await h.job("one", { cron: "0 12 15 6 *", max_instances: "1" });
    // More than a poll takes at once (100); all but the first skipped by max_instances 1.
    await h.store.claimRuns(
      Array.from({ length: 150 }, (_, i) => manualRequest("one", T0 - 10_000 + i)),
    );
    await h.start();
    await h.until(
      async () => (await h.runs("one")).filter((r) => r.status === "skipped").length === 149,
      "149 skipped before the timed poll at 5 s",
    );
  });

  Deno.test(`daemon[${backend}]: a retry an earlier service queued is taken at its instant, between timed polls`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("flaky", { cron: "0 12 15 6 *" });
    await h.store.claimRuns([fire("flaky", T0 + 3000, { status: "queued", trigger: "retry" })]);
    const daemon = await h.start();
    daemon.watched(true);
    // The poll at reload_interval learns when it is due; the next timed poll would be 5 s later.
    await h.clock.set(T0 + h.settings["jobsmanager.reload_interval"] * 1000);
    await h.until(() => h.clock.wakeUps.includes(T0 + 3000), "the service to wait for T0+3000");
    await h.clock.set(T0 + 3000);
    await h.started("flaky", T0 + 3000);
  });

  Deno.test(`daemon[${backend}]: the sole service of its database looks for other nodes at each heartbeat, not each second`, async () => {
    const db = await freshDatabase(backend);
    const store = counting(db, "nodesAndNow");
    await using h = await DaemonHarness.create(db, { store: store.open, soleService: true });
    await h.job("idle", { cron: "0 12 15 6 *" });
    await h.start();
    // The start's looks (the previous heartbeat, this node's clock, the others, the loop's
    // first turn and the first load reported) are done once the load is reported and the loop
    // waits for the heartbeat.
    await h.until(
      async () => (await loadReported(h)) && h.clock.wakeUps.includes(T0 + 5000),
      "the first load reported and the cluster loop to wait for T0+5s",
    );
    const atStart = store.calls();
    for (const at of [1000, 2000, 3000, 4000, 4999]) await h.clock.set(T0 + at);
    assertEquals(store.calls(), atStart, "a sweep came before the heartbeat");
    await h.clock.set(T0 + 5000);
    await h.until(
      () => store.calls() === atStart + 1,
      `the sweep at the heartbeat (${store.calls()})`,
    );
  });

  Deno.test(`daemon[${backend}]: watched locally, alone it polls for others' writes every 5 s; beside another live node, every reload_interval`, async () => {
    const db = await freshDatabase(backend);
    const store = counting(db);
    await using h = await DaemonHarness.create(db, { store: store.open });
    await h.job("idle", { cron: "0 12 15 6 *" });
    const daemon = await h.start();
    daemon.watchedLocally(true);
    // The poll the start planned, reload_interval (0.5 s) after the first.
    await h.clock.set(T0 + 500);
    await h.until(() => store.calls() === 2, `the second poll (${store.calls()} so far)`);
    // The cluster's heartbeat (it sees no other node), then the next at T0+10s.
    await h.clock.set(T0 + 5000);
    await h.until(() => h.clock.wakeUps.includes(T0 + 10_000), "the next heartbeat at T0+10s");
    await h.clock.set(T0 + 5499);
    assertEquals(store.calls(), 2, "a poll came before 5 s");
    await h.clock.set(T0 + 5500);
    await h.until(() => store.calls() === 3, `the poll 5 s later (${store.calls()})`);

    // Another node joins; this one sees it at its next heartbeat (T0+10s), and polls every 0.5 s.
    await saveNodes(db, serviceRow("other"));
    await h.clock.set(T0 + 10_000);
    await h.until(() => h.line(/^2 live nodes/), "the node to see the other one");
    await h.until(() => store.calls() === 4, `a poll once it is not alone (${store.calls()})`);
    await h.until(() => h.clock.wakeUps.includes(T0 + 11_000), "the next sweep a second later");
    await h.clock.set(T0 + 10_500);
    await h.until(() => store.calls() === 5, `a poll at reload_interval (${store.calls()})`);

    // Alone again: the poll planned at reload_interval comes, and then none for 5 s.
    await h.sql("UPDATE jm_nodes SET stopped_at = heartbeat_at WHERE id = 'other'");
    await h.clock.set(T0 + 11_000);
    await h.until(() => h.line(/^1 live nodes/), "the node to see the other one gone");
    await h.clock.set(T0 + 11_500);
    await h.until(
      () => !h.clock.wakeUps.some((at) => at > T0 + 11_500 && at <= T0 + 12_500),
      `no wake-up within a second, alone again (wake-ups at T0+${
        h.clock.wakeUps.map((at) => at - T0).join(", ")
      })`,
    );
  });

  Deno.test(`daemon[${backend}]: alone on its database, a node looks for others at each heartbeat; once one has joined, every second`, async () => {
    const db = await freshDatabase(backend);
    const store = counting(db, "nodesAndNow");
    await using h = await DaemonHarness.create(db, { store: store.open });
    await h.job("idle", { cron: "0 12 15 6 *" });
    await h.start();
    // The start's looks are done once the load is reported and the loop waits for the heartbeat.
    await h.until(
      async () => (await loadReported(h)) && h.clock.wakeUps.includes(T0 + 5000),
      "the first load reported and the cluster loop to wait for T0+5s",
    );
    const atStart = store.calls();
    for (const at of [1000, 2000, 3000, 4000, 4999]) await h.clock.set(T0 + at);
    assertEquals(store.calls(), atStart, "a sweep came before the heartbeat");
    await saveNodes(db, serviceRow("other"));
    await h.clock.set(T0 + 5000);
    await h.until(
      () => h.line(/^2 live nodes/),
      "the sweep at the heartbeat to see the other node",
    );
    await h.until(() => h.clock.wakeUps.includes(T0 + 6000), "the cluster loop to wait for T0+6s");
    await h.clock.set(T0 + 6000);
    await h.until(
      () => store.calls() === atStart + 2,
      `a sweep a second later (${store.calls() - atStart} since the start)`,
    );
  });
}
