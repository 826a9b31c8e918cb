/**
 * The Store contract, written once and run against every backend.
 */
import { assert, assertEquals, assertRejects, assertThrows } from "./assert.ts";
import { buildJob, type Job, validateJob } from "../src/domain/job.ts";
import { ValidationError } from "../src/errors.ts";
import { SCHEMA_VERSION } from "../src/store/migrations.ts";
import type { Store } from "../src/store/store.ts";
import { BACKENDS, freshDatabase, rawQuery, type TestDatabase } from "./helpers.ts";

function job(id: string, extra: Partial<Job> = {}): Job {
  return {
    ...buildJob(id, { command: `echo ${id}`, cron: "*/5 * * * *" }, null, 1_700_000_000_000),
    ...extra,
  };
}

async function withStore(db: TestDatabase, fn: (store: Store) => Promise<void>): Promise<void> {
  const store = db.open();
  try {
    await fn(store);
  } finally {
    await store.close();
  }
}

async function counts(db: TestDatabase): Promise<{ jobs: number; markers: number }> {
  const [j] = await rawQuery(db, "SELECT COUNT(*) AS n FROM jm_jobs");
  const [m] = await rawQuery(db, "SELECT COUNT(*) AS n FROM jm_update_info");
  return { jobs: Number(j.n), markers: Number(m.n) };
}

for (const backend of BACKENDS) {
  Deno.test(`store[${backend}]`, async (t) => {
    await using db = await freshDatabase(backend);

    await t.step("migrate creates every table once and is idempotent", async () => {
      await withStore(db, async (store) => {
        assertEquals(await store.migrate(), { from: 0, to: SCHEMA_VERSION, applied: [1, 2] });
        assertEquals(await store.migrate(), {
          from: SCHEMA_VERSION,
          to: SCHEMA_VERSION,
          applied: [],
        });
      });
      for (
        const table of [
          "jm_jobs",
          "jm_update_info",
          "jm_syslog",
          "jm_runs",
          "jm_nodes",
          "jm_schema_version",
        ]
      ) {
        const rows = await rawQuery(db, `SELECT COUNT(*) AS n FROM ${table}`);
        assertEquals(rows.length, 1, table);
      }
      const versions = await rawQuery(db, "SELECT version FROM jm_schema_version");
      assertEquals(versions.map((r) => Number(r.version)), [1, 2]);
    });

    await t.step(
      "add, update and remove each write the job and one marker with snapshots",
      async () => {
        await withStore(db, async (store) => {
          const a = job("alpha");
          const added = await store.changeJob("alpha", () => a);
          assertEquals(added.before, null);
          assertEquals(added.after, a);
          assert(added.markerId !== null);
          assertEquals(await store.getJob("alpha"), a);

          const changed = {
            ...a,
            command: "echo changed",
            env: { B: "2", A: "1" },
            updated_at: a.updated_at + 5,
          };
          const updated = await store.changeJob("alpha", (cur) => ({ ...cur!, ...changed }));
          assertEquals(updated.before, a);
          assertEquals(await store.getJob("alpha"), changed);

          const removed = await store.changeJob("alpha", () => null);
          assertEquals(removed.after, null);
          assertEquals(await store.getJob("alpha"), null);

          const markers = await store.listMarkers(0, 10);
          assertEquals(markers.map((m) => m.id), [
            added.markerId,
            updated.markerId,
            removed.markerId,
          ]);
          assertEquals(markers.map((m) => m.updated), [false, false, false]);
          assertEquals(markers[0].jobs_before_update, []);
          assertEquals(markers[0].jobs_after_update, [a]);
          assertEquals(markers[1].jobs_before_update, [a]);
          assertEquals(markers[1].jobs_after_update, [changed]);
          assertEquals(markers[2].jobs_before_update, [changed]);
          assertEquals(markers[2].jobs_after_update, []);
        });
      },
    );

    await t.step("an unchanged job writes nothing and inserts no marker", async () => {
      await withStore(db, async (store) => {
        await store.changeJob("same", () => job("same"));
        const before = await counts(db);
        const change = await store.changeJob("same", (cur) => ({ ...cur!, updated_at: 42 }));
        assertEquals(change.markerId, null);
        assertEquals(await counts(db), before);
        assertEquals((await store.getJob("same"))!.updated_at, 1_700_000_000_000);
      });
    });

    await t.step("a mutation that throws writes neither job nor marker", async () => {
      await withStore(db, async (store) => {
        const before = await counts(db);
        await assertRejects(
          () =>
            store.changeJob("boom", () => {
              throw new Error("refused");
            }),
          Error,
          "refused",
        );
        assertEquals(await counts(db), before);
      });
    });

    await t.step("a failing marker insert rolls the job write back", async () => {
      await withStore(db, async (store) => {
        const before = await counts(db);
        await rawQuery(db, "ALTER TABLE jm_update_info RENAME TO jm_update_info_away");
        try {
          await assertRejects(() => store.changeJob("orphan", () => job("orphan")));
        } finally {
          await rawQuery(db, "ALTER TABLE jm_update_info_away RENAME TO jm_update_info");
        }
        assertEquals(await store.getJob("orphan"), null);
        assertEquals(await counts(db), before);
      });
    });

    await t.step("markApplied marks exactly the given markers", async () => {
      await withStore(db, async (store) => {
        const first = await store.insertMarker([], []);
        const second = await store.insertMarker([], []);
        const pending = (await store.listMarkers(first - 1, 100)).map((m) => m.id);
        assertEquals(pending, [first, second]);
        const third = await store.insertMarker([], []);
        assertEquals(await store.markApplied([first, second]), 2);
        const after = await store.listMarkers(first - 1, 100);
        assertEquals(after.map((m) => [m.id, m.updated]), [[first, true], [second, true], [
          third,
          false,
        ]]);
        assert(after[0].update_time !== null);
        assertEquals(
          await store.markApplied([first]),
          0,
          "already applied markers are not touched again",
        );
      });
    });

    await t.step(
      "jobs are listed by id; a row written by hand with SQL defaults reads back",
      async () => {
        await rawQuery(
          db,
          "INSERT INTO jm_jobs (id, command, minute) VALUES ('hand.made', 'true', '*/10')",
        );
        await withStore(db, async (store) => {
          const ids = (await store.listJobs()).map((j) => j.id);
          assertEquals(ids, [...ids].sort());
          const hand = await store.getJob("hand.made");
          assertEquals(hand?.minute, "*/10");
          assertEquals(hand?.second, "*");
          assertEquals(hand?.timeout, 60);
          assertEquals(hand?.enabled, true);
          assertEquals(hand?.env, {});
          assert(
            Math.abs(hand!.created_at - Date.now()) < 60_000,
            "created_at defaults to now in ms",
          );
        });
      },
    );

    await t.step("a row broken by hand still loads, and validation names the fix", async () => {
      await rawQuery(
        db,
        "INSERT INTO jm_jobs (id, command, minute, env, max_instances) VALUES ('broken', 'true', '*/10', 'not json', 0)",
      );
      await withStore(db, async (store) => {
        const broken = (await store.listJobs()).find((j) => j.id === "broken")!;
        assertThrows(
          () => validateJob({ ...broken, max_instances: 1 }),
          ValidationError,
          `env: "not json" is not a JSON object`,
        );
        assertThrows(
          () => validateJob({ ...broken, env: {} }),
          ValidationError,
          "max_instances: 0 is not valid",
        );
        await store.changeJob("broken", () => null);
      });
    });

    await t.step("two stores adding the same id at once: exactly one wins", async () => {
      const [s1, s2] = [db.open(), db.open()];
      try {
        const before = await counts(db);
        const add = (store: Store) =>
          store.changeJob("race", (cur) => {
            if (cur) throw new Error("exists");
            return job("race");
          });
        const results = await Promise.allSettled([add(s1), add(s2)]);
        assertEquals(results.filter((r) => r.status === "fulfilled").length, 1);
        const after = await counts(db);
        assertEquals(after, { jobs: before.jobs + 1, markers: before.markers + 1 });
      } finally {
        await s1.close();
        await s2.close();
      }
    });
  });

  Deno.test(`store[${backend}]: concurrent first migrations both succeed, applying each version once`, async () => {
    await using db = await freshDatabase(backend);
    const stores = [db.open(), db.open(), db.open()];
    try {
      const reports = await Promise.all(stores.map((s) => s.migrate()));
      assertEquals(reports.flatMap((r) => r.applied), [1, 2]);
      const versions = await rawQuery(db, "SELECT version FROM jm_schema_version");
      assertEquals(versions.length, 2);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  Deno.test(`store[${backend}]: a newer schema is refused, naming both versions`, async () => {
    await using db = await freshDatabase(backend);
    const store = db.open();
    try {
      await store.migrate();
      await rawQuery(
        db,
        "INSERT INTO jm_schema_version (version, name, applied_at) VALUES (99, 'future', 0)",
      );
      await assertRejects(
        () => store.migrate(),
        Error,
        `has schema version 99, newer than this jobsmanager`,
      );
      await assertRejects(() => store.migrate(), Error, `understands (${SCHEMA_VERSION})`);
    } finally {
      await store.close();
    }
  });

  Deno.test(`store[${backend}]: the original APScheduler jm_jobs table is left untouched`, async () => {
    await using db = await freshDatabase(backend);
    await rawQuery(
      db,
      "CREATE TABLE jm_jobs (id VARCHAR(191) NOT NULL PRIMARY KEY, next_run_time DOUBLE, job_state BLOB NOT NULL)",
    );
    const store = db.open();
    try {
      await assertRejects(
        () => store.migrate(),
        Error,
        "is the original JobsManager's APScheduler job store (it has next_run_time and job_state); jobsmanager changed nothing. Move it aside with",
      );
    } finally {
      await store.close();
    }
    const version = await rawQuery(
      db,
      backend === "sqlite"
        ? "SELECT name FROM sqlite_master WHERE name = 'jm_schema_version'"
        : "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'jm_schema_version'",
    );
    assertEquals(version, [], "no table was created");
  });
}

for (const backend of BACKENDS) {
  Deno.test(`store[${backend}]: a batch of fires is claimed once; fires claimed before come back null`, async () => {
    await using db = await freshDatabase(backend);
    const store = db.open();
    try {
      await store.migrate();
      const fire = (job_id: string, scheduled_at: number) => ({
        job_id,
        scheduled_at,
        status: "running" as const,
        trigger: "schedule" as const,
        node_id: "n1",
      });
      const [a1] = await store.claimRuns([fire("a", 1000)]);
      assert(a1 !== null);
      // b@1000 and a@2000 share a job id and an instant with a@1000: only exact keys count.
      const ids = await store.claimRuns([
        fire("a", 1000),
        fire("b", 1000),
        fire("a", 2000),
        fire("b", 2000),
      ]);
      assertEquals(ids[0], null);
      assert(ids.slice(1).every((id) => id !== null));
      assertEquals(new Set(ids.slice(1)).size, 3);
      for (const [i, [job, at]] of [["b", 1000], ["a", 2000], ["b", 2000]].entries()) {
        const run = await store.getRun(ids[i + 1]!);
        assertEquals([run?.job_id, run?.scheduled_at], [job, at]);
      }
      const manual = await store.claimRuns([{ ...fire("a", 1000), trigger: "manual" }]);
      assert(manual[0] !== null, "the same instant with another trigger is another fire");
      const many = await store.claimRuns(
        Array.from({ length: 1200 }, (_, i) => fire(`j${i}`, 5000)),
      );
      assertEquals(new Set(many).size, 1200);
      assertEquals(
        await store.claimRuns(Array.from({ length: 1200 }, (_, i) => fire(`j${i}`, 5000))),
        Array(1200).fill(null),
      );
    } finally {
      await store.close();
    }
  });
}

for (const backend of BACKENDS) {
  Deno.test(`store[${backend}]: two stores claiming the same fires at once: each fire has one winner`, async () => {
    await using db = await freshDatabase(backend);
    const stores = [db.open(), db.open()];
    try {
      await stores[0].migrate();
      const fires = Array.from({ length: 300 }, (_, i) => ({
        job_id: `j${i % 7}`,
        scheduled_at: 1000 * (1 + Math.floor(i / 7)),
        status: "running" as const,
        trigger: "schedule" as const,
      }));
      const [x, y] = await Promise.all(
        stores.map((s, n) => s.claimRuns(fires.map((f) => ({ ...f, node_id: `n${n}` })))),
      );
      for (let i = 0; i < fires.length; i++) {
        assertEquals([x[i], y[i]].filter((id) => id !== null).length, 1, `fire ${i}`);
      }
      const [{ n }] = await rawQuery(db, "SELECT COUNT(*) AS n FROM jm_runs");
      assertEquals(Number(n), fires.length);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });
}

for (const backend of BACKENDS) {
  Deno.test(`store[${backend}]: nodes, logs, counts and retention`, async (t) => {
    await using db = await freshDatabase(backend);
    const store = db.open();
    try {
      await store.migrate();

      await t.step("saveNode inserts, then updates the same id", async () => {
        const node = {
          id: "host-a",
          host: "host-a",
          pid: 10,
          version: "0.1.0",
          started_at: 1000,
          heartbeat_at: 1000,
          applied_marker: null,
          jobs_loaded: 0,
          last_reload_at: null,
          last_reload_ms: null,
          stopped_at: null,
        };
        await store.saveNode(node);
        await store.saveNode({
          ...node,
          heartbeat_at: 6000,
          jobs_loaded: 7,
          applied_marker: 3,
          last_reload_ms: 12,
        });
        await store.saveNode({ ...node, id: "host-b", host: "host-b", heartbeat_at: 2000 });
        const nodes = await store.listNodes();
        assertEquals(
          nodes.map((
            n,
          ) => [n.id, n.heartbeat_at, n.jobs_loaded, n.applied_marker, n.last_reload_ms]),
          [
            ["host-a", 6000, 7, 3, 12],
            ["host-b", 2000, 0, null, null],
          ],
        );
      });

      await t.step("log rows filter by level, job, run, time, and follow by id", async () => {
        const row = (n: number, level: string, context: Record<string, unknown>) => ({
          created_at: 1000 * n,
          level,
          logger_name: "jobsmanager.test",
          message: `message ${n}`,
          context,
        });
        await store.insertLogs([
          row(1, "debug", {}),
          row(2, "info", { job: "a", run: 7 }),
          row(3, "warning", { job: "b", run: 8 }),
          row(4, "error", { job: "a", run: 9 }),
        ]);
        const messages = async (filter: Parameters<Store["listLogs"]>[0]) =>
          (await store.listLogs(filter)).map((r) => r.message);
        assertEquals(await messages({ limit: 10 }), [
          "message 4",
          "message 3",
          "message 2",
          "message 1",
        ]);
        assertEquals(await messages({ minLevel: "warning", limit: 10 }), [
          "message 4",
          "message 3",
        ]);
        assertEquals(await messages({ job_id: "a", limit: 10 }), ["message 4", "message 2"]);
        assertEquals(await messages({ run_id: 8, limit: 10 }), ["message 3"]);
        assertEquals(await messages({ since: 3000, limit: 10 }), ["message 4", "message 3"]);
        const [second] = await store.listLogs({
          job_id: "a",
          limit: 1,
          since: 2000,
          minLevel: "info",
        });
        assertEquals(second.context, { job: "a", run: 9 });
        const after = (await store.listLogs({ limit: 10 })).at(-1)!.id!;
        assertEquals(await messages({ afterId: after, limit: 2 }), ["message 2", "message 3"]);
        const many = Array.from({ length: 1234 }, (_, i) => row(10 + i, "info", { i }));
        await store.insertLogs(many);
        assertEquals((await store.listLogs({ since: 10_000, limit: 5000 })).length, 1234);
      });

      await t.step("pending markers and runs by status", async () => {
        const before = await store.pendingMarkers();
        const id = await store.insertMarker([], []);
        assertEquals(await store.pendingMarkers(), before + 1);
        await store.markApplied([id]);
        assertEquals(await store.pendingMarkers(), before);
        const fire = (job: string, at: number, status: "success" | "failed" | "running") => ({
          job_id: job,
          scheduled_at: at,
          status,
          trigger: "schedule" as const,
        });
        await store.claimRuns([
          fire("a", 100, "success"),
          fire("b", 100, "failed"),
          fire("a", 200, "success"),
          fire("a", 50, "running"),
        ]);
        assertEquals(await store.countRuns(100), { success: 2, failed: 1 });
      });

      await t.step(
        "retention deletes old rows in batches, never a run that has not ended",
        async () => {
          assertEquals(await store.pruneOlderThan("jm_syslog", 3000, 1), 1);
          assertEquals(await store.pruneOlderThan("jm_syslog", 3000, 100), 1);
          assertEquals(await store.pruneOlderThan("jm_syslog", 3000, 100), 0);
          assertEquals(
            (await store.listLogs({ limit: 5000 })).filter((r) => r.created_at < 3000),
            [],
          );
          assertEquals(
            await store.pruneOlderThan("jm_runs", 150, 100),
            2,
            "b@100 and a@100; a@50 still runs",
          );
          assertEquals(
            (await store.listRuns({ limit: 10 })).map((r) => [r.job_id, r.scheduled_at]).sort(),
            [["a", 200], ["a", 50]],
          );
        },
      );
    } finally {
      await store.close();
    }
  });
}

for (const backend of BACKENDS) {
  Deno.test(`store[${backend}]: the original jm_syslog table is left untouched`, async () => {
    await using db = await freshDatabase(backend);
    await rawQuery(
      db,
      "CREATE TABLE jm_syslog (id INTEGER PRIMARY KEY, created_at DATETIME, level VARCHAR(16), logger_name VARCHAR(64), message TEXT)",
    );
    const store = db.open();
    try {
      await assertRejects(
        () => store.migrate(),
        Error,
        "is the original JobsManager's log table (it has no context column); jobsmanager changed nothing. Move it aside with",
      );
    } finally {
      await store.close();
    }
    const [{ n }] = await rawQuery(db, "SELECT COUNT(*) AS n FROM jm_syslog");
    assertEquals(Number(n), 0);
  });
}
