/**
 * The daemon through a database outage, in-process with a fake clock, on
 * MariaDB behind a loopback proxy (tcp_proxy.ts) that the test cuts
 * (connections closed, new ones refused) or blackholes (queries hang).
 * Fires keep starting from the timetable; their records and log rows wait
 * in memory and are written once the health probe finds the database
 * back; the outage is logged once each way; polling resumes by itself.
 */
import { assert, assertEquals } from "./assert.ts";
import { type Backend, BACKENDS, freshDatabase, mysqlTest } from "./helpers.ts";
import { DaemonHarness, describeRun, storeWith, T0, throughProxy } from "./daemon_harness.ts";
import { proxyFor } from "./tcp_proxy.ts";
import { renderMessage } from "../src/daemon/log_sink.ts";
import { readinessOf } from "../src/http/health.ts";

const at = (s: number) => T0 + s * 1000;
const iso = (ms: number) => new Date(ms).toISOString();
const UNREACHABLE = /^the database is unreachable/;
/** An outage that began with a claim unanswered (queries that hang, a lock wait). */
const UNANSWERED = /^the database did not answer in time \(no answer to a claim within 1000 ms: /;
const BACK = /^the database is back after (\d+) s$/;

const STILL = /^still unreachable \(.*\); next attempt in (\d+) s$/;

/** Wait until `n` probes have failed; return in how many seconds the last said the next comes. */
async function failedProbes(h: DaemonHarness, n: number): Promise<number> {
  await h.until(() => h.count(STILL) >= n, `${n} failed probes`);
  return Number(h.logs.map(renderMessage).filter((m) => STILL.test(m))[n - 1].match(STILL)![1]);
}

/** Every fire of `tick` at these seconds has exactly one row, ended `success`, under a real id. */
async function recorded(h: DaemonHarness, seconds: number[]): Promise<void> {
  await h.until(async () => {
    const rows = await h.runs("tick");
    return seconds.every((s) => {
      const mine = rows.filter((r) => r.scheduled_at === at(s));
      return mine.length === 1 && mine[0].status === "success";
    });
  }, `one successful row for each fire at ${seconds} s`);
  const rows = await h.runs("tick");
  assertEquals(new Set(rows.map((r) => r.scheduled_at)).size, rows.length, "a fire recorded twice");
  assert(rows.every((r) => r.id > 0), rows.map(describeRun).join("\n"));
}

mysqlTest(
  "daemon[mysql]: connections cut and refused: fires go on, records and logs follow",
  async () => {
    const db = await freshDatabase("mysql");
    await using proxy = proxyFor(db);
    await using h = await DaemonHarness.create(db, { store: throughProxy(db, proxy) });
    await h.job("tick", { schedule: { second: "*" } });
    await h.start();
    await h.clock.set(at(1));
    (await h.started("tick", at(1))).finish();
    await h.run("tick", at(1), "success");

    proxy.cut();
    // The fire at 2 s finds the database gone: it runs under a provisional id.
    await h.clock.set(at(2));
    const during = [await h.started("tick", at(2))];
    assertEquals(during[0].spec.env.JM_RUN_ID, "", "a run without a row yet has no id");
    await h.until(() => h.line(UNREACHABLE), "the outage to be logged");
    during[0].finish({ stdout: "2\n" });
    // Probes back off from 1 s: the one at 3 s fails, the next comes at 5 s.
    await h.clock.set(at(3));
    assertEquals(await failedProbes(h, 1), 2);
    // Meanwhile fires do not even try the database.
    for (const s of [3, 4]) {
      await h.clock.set(at(s));
      const run = await h.started("tick", at(s));
      assertEquals(run.spec.env.JM_RUN_ID, "");
      run.finish({ stdout: `${s}\n` });
      during.push(run);
    }
    proxy.restore();
    // The probe at 5 s finds it back and writes what waited.
    await h.clock.set(at(5));
    await h.until(() => h.line(BACK), "the database to be back");
    (await h.started("tick", at(5))).finish();
    await recorded(h, [1, 2, 3, 4, 5]);
    assertEquals(h.line(BACK)!.match(BACK)![1], "3");
    assertEquals([h.count(UNREACHABLE), h.count(BACK)], [1, 1], h.lines.join("\n"));
    for (const [i, s] of [2, 3, 4].entries()) {
      assertEquals((await h.run("tick", at(s), "success")).stdout, `${s}\n`, `run ${during[i]}`);
    }

    // The runner's lines of the outage reach jm_syslog under the runs' real ids.
    for (const s of [2, 3, 4]) {
      const id = (await h.run("tick", at(s), "success")).id;
      await h.until(
        async () => (await h.store.listLogs({ run_id: id, limit: 10 })).length >= 2,
        `the started and ended lines of run ${id} in jm_syslog`,
      );
    }

    // Polling resumes by itself: a job added now is loaded at the next poll (6 s),
    // and its fire there, which came after it was added, runs (late).
    const marker = await h.job("after", { schedule: { second: "*" } });
    await h.clock.set(at(6));
    await h.until(
      async () => (await h.markers()).find((m) => m.id === marker)?.updated,
      "the marker written after the outage to be applied",
    );
    (await h.started("after", at(6))).finish();
    await h.clock.set(at(7));
    await h.started("after", at(7));
  },
);

/**
 * A daemon on `backend` with job `daily` (at second 1) whose claims wait
 * until `release()`: a database that stopped answering (a lock held
 * elsewhere, a server that hangs, or one slow under load).
 */
async function stalledClaims(
  backend: Backend,
): Promise<{ h: DaemonHarness; release(): void; answered(): number }> {
  const db = await freshDatabase(backend);
  const answer = Promise.withResolvers<void>();
  let stall: Promise<void> | null = answer.promise;
  let answered = 0;
  const h = await DaemonHarness.create(db, {
    store: storeWith(db, {
      claimRuns: (target) => async (...args) => {
        await stall;
        const ids = await target.claimRuns(...args);
        answered++;
        return ids;
      },
    }),
  });
  await h.job("daily", { schedule: { second: "1" } });
  await h.start();
  return {
    h,
    release() {
      stall = null;
      answer.resolve();
    },
    answered: () => answered,
  };
}

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: auto holds an outage till the node has looked at the others twice: one that started with it may have written its row after the first look`, async () => {
    const db = await freshDatabase(backend);
    const second = Promise.withResolvers<void>();
    let loading = false;
    await using h = await DaemonHarness.create(db, {
      store: storeWith(db, {
        // Asked as the jobs are loaded, after the node's row and its first look.
        activeRunsElsewhere: (store) => (...args) => {
          loading = true;
          return store.activeRunsElsewhere(...args);
        },
        nodesAndNow: (store) => async () => {
          if (loading) await second.promise;
          return await store.nodesAndNow();
        },
      }),
    });
    await h.job("tick", { schedule: { second: "*" } });
    const daemon = await h.start({ wait: false });
    await h.until(() => h.line(/^loaded \d+ enabled jobs/), "the daemon to load its jobs");
    assertEquals(
      [daemon.settled, daemon.vitals.holdingReason],
      [
        false,
        "cluster.on_database_outage is auto and this node has not looked at the others twice since it started: one that started with it may not be seen yet",
      ],
    );
    second.resolve();
    await h.until(() => daemon.settled, "the node's second look");
    assertEquals(daemon.vitals.holdingReason, null, "alone, it fires through an outage");
  });

  Deno.test(`daemon[${backend}]: a claim the database does not answer gives up in time for its fire's grace`, async () => {
    const { h: harness, release } = await stalledClaims(backend);
    await using h = harness;
    try {
      await h.clock.set(at(1));
      // A grace of 1 s (the default): the claim gives up after 750 ms, and the fire starts.
      await h.clock.set(at(1) + 750);
      assertEquals((await h.started("daily", at(1))).startedAt, at(1) + 750);
      assertEquals(h.line(UNREACHABLE), undefined, "an outage after 750 ms");
      // The database counts as away once the claim has gone a second without an answer.
      await h.clock.set(at(1) + 1000);
      await h.until(() => h.line(UNANSWERED), "the outage to be logged");
    } finally {
      release();
    }
    h.runner.endAll();
    // The health probe finds the database back, and the run's record is written.
    await h.clock.set(at(3));
    await h.until(() => h.line(BACK), "the database to be back");
    const row = await h.run("daily", at(1), "success");
    assertEquals([row.started_at, row.note], [at(1) + 750, null]);
  });

  Deno.test(`daemon[${backend}]: a claim held up (a lock wait) is not called unreachable, and once the ping answers, the database is said to answer`, async () => {
    // jm_runs locked (another session's SELECT … FOR UPDATE): its reads and writes wait, a ping does not.
    const db = await freshDatabase(backend);
    const lock = Promise.withResolvers<void>();
    const waits =
      <A extends unknown[], R>(method: (...args: A) => Promise<R>) => async (...args: A) => {
        await lock.promise;
        return await method(...args);
      };
    await using h = await DaemonHarness.create(db, {
      store: storeWith(db, {
        claimRuns: (target) => waits(target.claimRuns.bind(target)),
        runStatuses: (target) => waits(target.runStatuses.bind(target)),
        updateRun: (target) => waits(target.updateRun.bind(target)),
        updateRuns: (target) => waits(target.updateRuns.bind(target)),
      }),
    });
    await h.job("tick", { schedule: { second: "*" } });
    h.runner.endAll();
    await h.start();
    const release = () => lock.resolve();
    const detail = () => readinessOf(h.daemon.vitals).database.detail;
    try {
      await h.clock.set(at(1));
      // The claim gives up for the fire's grace; a second after it began, it counts as an outage.
      await h.clock.set(at(1) + 750);
      await h.started("tick", at(1));
      await h.clock.set(at(1) + 1000);
      const said = await h.until(() => h.line(/^the database did not answer/), "the outage");
      assertEquals(
        said,
        "the database did not answer in time (no answer to a claim within 1000 ms: a lock wait, overload, or the network); jobs keep firing from the current timetable and their run records wait in memory",
      );
      assertEquals(h.line(UNREACHABLE), undefined, "a claim unanswered called unreachable");
      assertEquals(
        detail(),
        "a claim got no answer in time (a lock wait, overload, or the network); jobs keep firing from the timetable in memory",
      );
      // The fire at 2 s waits in memory. The probe's ping is answered; writing that fire waits
      // as the first claim did.
      await h.started("tick", at(2));
      await h.clock.set(at(3));
      await h.until(() => h.daemon.vitals.databaseAway === "answers", "the ping to be answered");
      assertEquals(
        detail(),
        "the database answers, but a claim got no answer in time (a lock wait, or overload); jobs keep firing from the timetable in memory",
      );
    } finally {
      release();
    }
    await h.until(() => h.line(BACK), "the database to be back");
    assertEquals(detail(), "reachable");
    await recorded(h, [1, 2]);
  });

  Deno.test(`daemon[${backend}]: a claim answered late, within a second, starts its fire in time and is no outage`, async () => {
    const { h: harness, release, answered } = await stalledClaims(backend);
    await using h = harness;
    await h.clock.set(at(1));
    await h.clock.set(at(1) + 750);
    const run = await h.started("daily", at(1));
    assertEquals(run.startedAt, at(1) + 750);
    // Answered now, within the second (the clock waits for the answer to be heard).
    release();
    await h.until(() => answered() === 1, "the late claim's answer");
    await h.clock.set(at(2));
    run.finish();
    const row = await h.run("daily", at(1), "success");
    assertEquals(
      [row.started_at, h.line(UNREACHABLE)],
      [at(1) + 750, undefined],
      h.lines.join("\n"),
    );
  });
}

mysqlTest(
  "daemon[mysql]: queries hang: a fire starts once its claim gives up, within its grace, recorded after",
  async () => {
    const db = await freshDatabase("mysql");
    await using proxy = proxyFor(db);
    await using h = await DaemonHarness.create(db, {
      store: throughProxy(db, proxy),
      // The fire waiting for its claim overlaps the next one: let both run.
      settings: { "jobsmanager.max_instances": 2 },
    });
    await h.job("tick", { schedule: { second: "*" } });
    await h.start();
    await h.clock.set(at(1));
    (await h.started("tick", at(1))).finish();
    await h.run("tick", at(1), "success");

    proxy.blackhole();
    await h.clock.set(at(2));
    // The claim does not answer: it gives up 250 ms before the fire's grace (1 s) ends,
    // and the fire starts within it.
    await h.clock.set(at(2) + 750);
    const late = await h.started("tick", at(2));
    assertEquals([late.startedAt, late.spec.env.JM_RUN_ID], [at(2) + 750, ""]);
    // The outage begins once the claim has gone a second without an answer.
    await h.clock.set(at(3));
    await h.until(() => h.line(UNANSWERED), "the outage to be logged");
    const next = await h.started("tick", at(3));
    late.finish();
    next.finish();
    proxy.restore();
    // The held claim lands; the probe at 4 s finds the database back and writes the rest.
    await h.clock.set(at(4));
    (await h.started("tick", at(4))).finish();
    await h.until(() => h.line(BACK), "the database to be back");
    await recorded(h, [1, 2, 3, 4]);
    assertEquals((await h.run("tick", at(2), "success")).started_at, at(2) + 750);
    assertEquals([h.count(UNANSWERED), h.count(BACK)], [1, 1], h.lines.join("\n"));
  },
);

mysqlTest(
  "daemon[mysql]: a run that failed while the database was away is retried and followed once its record is written",
  async () => {
    const db = await freshDatabase("mysql");
    await using proxy = proxyFor(db);
    await using h = await DaemonHarness.create(db, { store: throughProxy(db, proxy) });
    const once = { second: "1", minute: "0", hour: "0" };
    await h.job("flaky", { schedule: once, retries: "1", retry_delay: "1" });
    await h.job("single", { schedule: once });
    await h.job("cleanup", { after: "single:failure" });
    await h.start();
    proxy.cut();
    await h.clock.set(at(1));
    // Their claims fail: they start under provisional ids, and end before the database is back.
    const [flaky, single] = [await h.started("flaky", at(1)), await h.started("single", at(1))];
    assertEquals([flaky.spec.env.JM_RUN_ID, single.spec.env.JM_RUN_ID], ["", ""]);
    flaky.finish({ status: "failed", exitCode: 1 });
    single.finish({ status: "failed", exitCode: 1 });
    await h.until(() => h.count(/while the database was away; its/) === 2, "both ends to wait");
    proxy.restore();
    await h.until(async () => {
      if (h.line(BACK)) return true;
      await h.clock.advance(1000);
      return false;
    }, "the database to be back");
    const [retry, follow] = await h.until(async () => {
      await h.clock.advance(1000);
      const retry = (await h.runs("flaky")).find((r) => r.trigger === "retry");
      const follow = (await h.runs("cleanup")).find((r) => r.trigger === "after");
      return retry && follow ? [retry, follow] : null;
    }, "the retry and the follow-up to be queued");
    const [first] = (await h.runs("flaky")).filter((r) => r.trigger === "schedule");
    assertEquals([retry.attempt, retry.first_run_id], [2, first.id]);
    const [parent] = await h.runs("single");
    assertEquals(follow.parent_run_id, parent.id);
  },
);

mysqlTest(
  "daemon[mysql]: a stop while the database is away writes its runs' records once it is back within the stop's time",
  async () => {
    const db = await freshDatabase("mysql");
    await using proxy = proxyFor(db);
    await using h = await DaemonHarness.create(db, { store: throughProxy(db, proxy) });
    await h.job("tick", { schedule: { second: "1", minute: "0", hour: "0" } });
    await h.start();
    await h.clock.set(at(1));
    const run = await h.started("tick", at(1));
    await h.run("tick", at(1), "running");
    proxy.cut();
    run.finish({ stdout: "done\n" });
    await h.stop();
    // Stopping, it tries the record again each second; the database comes back meanwhile.
    await h.clock.advance(2000);
    proxy.restore();
    await h.until(async () => {
      if (!h.ended) await h.clock.advance(1000);
      return h.ended;
    }, "the daemon to stop");
    assert(!h.line(/could not be written before exit/), h.lines.join("\n"));
    assertEquals((await h.run("tick", at(1), "success")).stdout, "done\n");
  },
);

mysqlTest(
  "daemon[mysql]: watched, a change written during an outage is applied as the database comes back, not at the next 5 s poll",
  async () => {
    const db = await freshDatabase("mysql");
    await using proxy = proxyFor(db);
    await using h = await DaemonHarness.create(db, { store: throughProxy(db, proxy) });
    await h.job("idle", { cron: "0 12 15 6 *" });
    const daemon = await h.start();
    daemon.watched(true);
    proxy.cut();
    // The timed poll finds the database gone.
    await h.clock.set(at(5));
    await h.until(() => h.line(UNREACHABLE), "the outage to be logged");
    // Written meanwhile: the poll for the reported write finds the database still away.
    const marker = await h.job("added", { cron: "0 12 15 6 *" });
    daemon.changed();
    await h.clock.set(at(5) + 500);
    await h.until(
      () => h.clock.wakeUps.includes(at(10) + 500),
      `the service to wait for its next timed poll (${h.clock.wakeUps})`,
    );
    proxy.restore();
    // The probe 1 s later finds it back; the next timed poll would be at 10 s.
    await h.clock.set(at(6));
    await h.until(() => h.line(BACK), "the database to be back");
    await h.until(
      async () => (await h.markers()).find((m) => m.id === marker)?.updated,
      `marker ${marker}, written during the outage, to be applied (clock at 6 s)`,
    );
  },
);

mysqlTest(
  "daemon[mysql]: fires held through an outage and missed say when the database was unreachable",
  async () => {
    const db = await freshDatabase("mysql");
    await using proxy = proxyFor(db);
    await using h = await DaemonHarness.create(db, {
      store: throughProxy(db, proxy),
      settings: { "cluster.on_database_outage": "hold" },
    });
    await h.job("tick", { schedule: { second: "*" } });
    h.runner.endAll();
    await h.start();
    await h.clock.set(at(1));
    await h.run("tick", at(1), "success");
    proxy.cut();
    // The claim of the fire at 2 s fails: the outage begins, the fire is held.
    await h.clock.set(at(2));
    await h.until(() => h.line(UNREACHABLE), "the outage to be logged");
    // Probes back off from 1 s: the one at 3 s fails, the next comes at 5 s.
    await h.clock.set(at(3));
    assertEquals(await failedProbes(h, 1), 2);
    await h.clock.set(at(4));
    proxy.restore();
    await h.clock.set(at(5));
    await h.until(() => h.line(BACK), "the database to be back");
    // Decided once it is back: the fires at 2 and 3 s are past their grace (1 s) at 5 s.
    const missed = await h.until(async () => {
      const rows = (await h.runs("tick")).filter((r) => r.status === "missed");
      return rows.length > 0 ? rows : null;
    }, "the held fires to be recorded missed");
    assertEquals(
      missed.map((r) => r.note),
      [
        `2 fires from ${iso(at(2))} to ${
          iso(at(3))
        } came later than misfire_grace_time (1 s); the database was unreachable from ${
          iso(at(2))
        } to ${iso(at(5))}`,
      ],
      missed.map(describeRun).join("\n"),
    );
  },
);
