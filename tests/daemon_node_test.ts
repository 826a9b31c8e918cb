/**
 * What the daemon's heartbeat tells the CLI in jm_nodes: the zone it fires
 * jobs without a zone in, so `job list` shows them in that zone; how far
 * this machine's clock is from the database's, said in the log and in
 * `status` when it is more than 2 s.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { status } from "../src/app/status.ts";
import { BACKENDS, freshDatabase, rawQuery, serviceRow, writeOlderNode } from "./helpers.ts";
import { renderMessage } from "../src/daemon/log_sink.ts";
import { buildJob } from "../src/domain/job.ts";
import { DaemonHarness, storeWith, T0 } from "./daemon_harness.ts";
import { openStore } from "../src/store/open.ts";
import { SCHEMA_VERSION } from "../src/store/migrations.ts";
import { DatabaseError } from "../src/errors.ts";
import { describeTarget } from "../src/store/target.ts";

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: the heartbeat reports the zone of jobs without one, and the schema version the service understands`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "jobsmanager.timezone": "Asia/Tokyo" },
    });
    await h.start();
    const node = await h.until(
      async () => (await h.store.nodesAndNow()).nodes.find((n) => n.timezone !== null),
      "a heartbeat with a zone",
    );
    assertEquals(node.timezone, "Asia/Tokyo");
    // What the others, and each command that gives a job a user, tell an older release by.
    assertEquals(node.schema_version, SCHEMA_VERSION);
  });
}

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: a clock 5 s off the database's is said in the log and in status; alone, the node fires its jobs`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      wallClock: () => Date.now() + 5000,
    });
    await h.job("tick", { schedule: { second: "*" } });
    await h.start();
    await h.clock.set(T0 + 1000);
    (await h.started("tick", T0 + 1000)).finish();
    const node = await h.until(
      async () => (await h.store.nodesAndNow()).nodes.find((n) => n.skew_ms != null),
      "a heartbeat with the skew",
    );
    // The database runs on this machine: the skew is the 5 s given, give or take a second.
    assert(Math.abs(node.skew_ms! - 5000) < 1000, `skew ${node.skew_ms} ms`);
    assertMatch(
      h.line(/clock is/)!,
      /^this node's clock is \d+ ms off the database's; fires are computed from a node's own clock, so this node takes no share of the jobs while another live node's clock is within 2000 ms of the database's \(alone, or with all off, it fires at its clock's instants\); fix its time sync \(NTP\)$/,
    );
    const report = await status(h.store, {
      now: Date.now(),
      heartbeatMs: 5000,
      defaultZone: "UTC",
    });
    assertEquals(report.services.map((n) => [n.id, n.state, n.skew_ms]), [[
      node.id,
      "live",
      node.skew_ms,
    ]]);
  });

  Deno.test(`daemon[${backend}]: a clock reading slower than the skew it would show (the database stalled) is not taken`, async () => {
    // Ten seconds pass between each two readings of this clock: each round
    // trip to the database looks ten seconds long, its middle ever further off.
    let readings = 0;
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      wallClock: () => Date.now() + 10_000 * readings++,
    });
    await h.start();
    await h.until(
      async () => (await h.store.nodesAndNow()).nodes.find((n) => n.db_heartbeat_at != null),
      "a heartbeat",
    );
    const [node] = (await h.store.nodesAndNow()).nodes;
    assertEquals([node.skew_ms, h.line(/clock is/)], [null, undefined], h.lines.join("\n"));
  });

  Deno.test(`daemon[${backend}]: a clock stepped back keeps the heartbeats coming (else the others declare this node dead), even while a heartbeat was being written`, async () => {
    const db = await freshDatabase(backend);
    const beats: number[] = [];
    // The write of the heartbeat at 5 s is held till the clock has gone back.
    const held = Promise.withResolvers<void>();
    await using h = await DaemonHarness.create(db, {
      settings: { "jobsmanager.heartbeat_interval": 5 },
      store: storeWith(db, {
        saveNode: (target) => async (...args) => {
          beats.push(args[0].heartbeat_at);
          if (args[0].heartbeat_at >= T0 + 5000) await held.promise;
          return await target.saveNode(...args);
        },
      }),
    });
    await h.start();
    for (let s = 1; s <= 6; s++) await h.clock.set(T0 + s * 1000);
    await h.until(() => beats.some((b) => b >= T0 + 5000), "the heartbeat at 5 s");
    await h.clock.stepBack(120_000);
    held.resolve();
    const back = h.clock.now();
    // Ten seconds on the stepped clock: two heartbeats at least.
    for (let s = 1; s <= 10; s++) {
      await h.clock.advance(1000);
      if (s % 5 === 0) {
        await h.until(
          () => beats.filter((b) => b >= back && b <= h.clock.now()).length >= s / 5,
          `${s / 5} heartbeats in the ${s} s after a step back of 120 s (beats at ${
            beats.map((b) => (b - T0) / 1000)
          } s from T0)`,
        );
      }
    }
  });

  Deno.test(`daemon[${backend}]: the next heartbeat is due a heartbeat after the wake that wrote one, however long its look took`, async () => {
    const db = await freshDatabase(backend);
    const held = Promise.withResolvers<void>();
    let holding = false;
    let looked = false;
    await using h = await DaemonHarness.create(db, {
      store: storeWith(db, {
        nodesAndNow: (target) => async () => {
          if (holding) {
            looked = true;
            await held.promise;
          }
          return await target.nodesAndNow();
        },
      }),
    });
    await h.start();
    await h.until(() => h.clock.wakeUps.includes(T0 + 5000), "the heartbeat due at T0+5s");
    holding = true;
    await h.clock.set(T0 + 5000);
    // The turn at 5 s has woken and looks (its wake read the clock at 5 s); its look answers
    // only once the clock has moved on 400 ms.
    await h.until(() => looked, "the look of the turn at T0+5s");
    await h.clock.set(T0 + 5400);
    held.resolve();
    const beat = async () => (await h.store.nodesAndNow()).nodes[0]?.heartbeat_at ?? 0;
    await h.until(async () => (await beat()) >= T0 + 5000, "the heartbeat of the turn at T0+5s");
    // The next is due at T0+10s, not a heartbeat after the look's answer (T0+10.4s).
    await h.clock.set(T0 + 10_000);
    await h.until(
      async () => (await beat()) === T0 + 10_000,
      `the heartbeat at T0+10s (last at T0+${(await beat()) - T0})`,
    );
  });

  Deno.test(`daemon[${backend}]: the fake clock, years from the database's, is not measured: no skew`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.start();
    const node = await h.until(
      async () => (await h.store.nodesAndNow()).nodes.find((n) => n.skew_ms != null),
      "a heartbeat with the skew",
    );
    assert(Math.abs(node.skew_ms!) < 1000, `skew ${node.skew_ms} ms`);
    assertEquals(h.line(/clock is/), undefined);
  });
}

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: a heartbeat takes the database's clock from the sweep before it: no query of its own`, async () => {
    const db = await freshDatabase(backend);
    let clockQueries = 0;
    await using h = await DaemonHarness.create(db, {
      store: () => {
        const store = db.open();
        const databaseNow = store.databaseNow.bind(store);
        store.databaseNow = () => {
          clockQueries++;
          return databaseNow();
        };
        return store;
      },
    });
    await h.start();
    for (let beat = 1; beat <= 3; beat++) {
      await h.clock.advance(5000);
      await h.until(
        async () => (await h.store.nodesAndNow()).nodes[0]?.heartbeat_at === h.clock.now(),
        `heartbeat ${beat} at the fake clock's T0+${h.clock.now() - T0}`,
      );
    }
    const node = (await h.store.nodesAndNow()).nodes[0];
    assert(node.db_heartbeat_at! > 0 && node.skew_ms !== null, JSON.stringify(node));
    assertEquals(clockQueries, 0);
  });
}

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: a sweep that fails to declare a node dead does not hold back the heartbeat`, async () => {
    const db = await freshDatabase(backend);
    // Once started: a start whose sweep fails does not start.
    let failing = false;
    await using h = await DaemonHarness.create(db, {
      store: () => {
        const store = db.open();
        store.declareDead = () =>
          failing
            ? Promise.reject(
              new DatabaseError("Lock wait timeout exceeded", { unreachable: false }),
            )
            : Promise.resolve(null);
        return store;
      },
    });
    // A node silent for 4 minutes by the database's clock: each sweep tries to declare it dead.
    const databaseNow = await h.store.databaseNow();
    await h.store.saveNode({
      ...serviceRow("other", { agoMs: 240_000 }),
      db_heartbeat_at: databaseNow - 240_000,
      heartbeat_ms: 5000,
    });
    await h.start();
    failing = true;
    for (let beat = 1; beat <= 3; beat++) {
      await h.clock.advance(5000);
      await h.until(
        async () =>
          (await h.store.nodesAndNow()).nodes.find((n) => n.id === h.nodeId)?.heartbeat_at ===
            h.clock.now(),
        `heartbeat ${beat} at the fake clock's T0+${h.clock.now() - T0}`,
      );
    }
    assert(h.line(/refused a statement: Lock wait timeout exceeded/), "the failed sweep is logged");
  });
}

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: a service that creates its database says so; one that opens it, not`, async () => {
    // The daemon's database, beside each harness's own: a new SQLite file, an empty MySQL database.
    await using shared = await freshDatabase(backend);
    const target = shared.target;
    const created = /^created /;
    const database = describeTarget(target);
    for (const expected of [true, false]) {
      await using h = await DaemonHarness.create(await freshDatabase(backend), {
        store: () => openStore(target),
      });
      await h.start();
      assertEquals(
        h.line(created),
        expected
          ? `${
            backend === "sqlite"
              ? "created a new, empty database"
              : "created jobsmanager's tables in the empty database"
          } ${database}; add jobs with \`jobsmanager job add --database ${database} …\``
          : undefined,
      );
    }
  });
}

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: a reload is in jm_nodes at the next sweep, not at the next heartbeat`, async () => {
    // status and the dashboard compare each node's applied marker with the latest.
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.start();
    const row = async () => (await h.store.nodesAndNow()).nodes[0];
    await h.until(row, "the first heartbeat");
    const marker = await h.job("a", { schedule: { second: "30" } });
    await h.clock.advance(600);
    await h.until(
      async () => (await h.markers()).find((m) => m.id === marker)?.updated,
      `marker ${marker} applied`,
    );
    // One sweep later; the next heartbeat is 5 s away.
    await h.clock.advance(1000);
    const node = await h.until(
      async () => {
        const node = await row();
        return node.applied_marker === marker && node.jobs_loaded === 1 ? node : null;
      },
      `jm_nodes to report marker ${marker} and 1 job`,
    );
    assertEquals([node.applied_marker, node.jobs_loaded], [marker, 1]);
  });
}

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: a live node of an older release is said as an error once enabled jobs have a user, once, again when another job has one, and again when it comes back`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("plain", { schedule: { hour: "4" } });
    await h.job("idle", { schedule: { hour: "4" }, user: "bob", enabled: false });
    await writeOlderNode(h.db, "old-1");
    await h.start();
    // Each turn of the loop looks at the nodes a fake second apart.
    const turn = async <T>(probe: () => T | Promise<T>, what: string) =>
      await h.until(async () => {
        await h.clock.advance(1000);
        return await probe();
      }, what);
    await turn(() => h.line(/^2 live nodes: old-1, test-node$/), "the older node seen live");
    const saidOf = (jobs: string) =>
      new RegExp(
        `^node old-1 \\(host web-1, pid 4242, last heartbeat \\d+ s ago\\) runs an older release of jobsmanager \\(its row in jm_nodes names no schema_version\\), which ignores a job's user: the enabled jobs with a user \\(${jobs}\\) run there as that service's own user, root typically, when they fall to it; upgrade or stop that service$`,
      );
    const said = saidOf("2: rotate, sync");
    assertEquals(h.count(/older release/), 0, "no enabled job has a user yet");
    // One marker: one reload loads both.
    await h.store.changeJobs(() => ({
      put: [
        buildJob("sync", { command: "true", schedule: { hour: "4" }, user: "nobody" }, null, T0),
        buildJob("rotate", { command: "true", schedule: { hour: "4" }, user: "33" }, null, T0),
      ],
      remove: [],
    }));
    await turn(() => h.line(said), "the older node to be said");
    assertEquals(h.logs.find((r) => said.test(renderMessage(r)))?.level, "error");
    await turn(
      async () =>
        (await rawQuery(
          h.db,
          "SELECT level FROM jm_syslog WHERE message LIKE 'node old-1 (host web-1, pid 4242, %'",
        )).map((r) => r.level).join() === "error",
      "the error in jm_syslog",
    );
    // Said once, not at each look: two heartbeats on, the second written by a turn after one
    // that looked again (a turn writes the heartbeat, then looks).
    const ownBeat = async () =>
      (await h.store.nodesAndNow()).nodes.find((n) => n.id === h.nodeId)!.heartbeat_at;
    for (let beat = 1; beat <= 2; beat++) {
      const before = await ownBeat();
      await turn(async () => await ownBeat() > before, `a heartbeat after T0+${before - T0}`);
    }
    assertEquals(h.count(said), 1);
    // A job enabled since (or given a user) is at risk anew: said again, naming it.
    await h.store.changeJob("idle", (job) => ({ ...job!, enabled: true }));
    const saidAll = saidOf("3: idle, rotate, sync");
    await turn(() => h.line(saidAll), "the older node said again, with the job enabled since");
    // Silent past its intervals (paused, cut off from the database), then beating again.
    await h.sql(
      "UPDATE jm_nodes SET db_heartbeat_at = db_heartbeat_at - 3600000 WHERE id = 'old-1'",
    );
    await turn(() => h.line(/^1 live nodes: test-node$/), "the older node seen silent");
    await h.sql("DELETE FROM jm_nodes WHERE id = 'old-1'");
    await writeOlderNode(h.db, "old-1");
    await turn(() => h.count(saidAll) === 2, "the older node said again once back");
  });
}
