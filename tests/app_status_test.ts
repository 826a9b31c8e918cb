/**
 * The operations use cases on a real store, every backend, each test on a
 * fresh database: reload's marker, what status gathers, the migrate report
 * (from nothing and from schema 1), and reading the log.
 */
import { assert, assertEquals } from "./assert.ts";
import { addJob, reload } from "../src/app/jobs.ts";
import { followFrom, logsAfter, recentLogs } from "../src/app/logs.ts";
import { migrateSchema } from "../src/app/schema.ts";
import { status } from "../src/app/status.ts";
import { CLI_NAMES } from "../src/cli/input_names.ts";
import { buildJob } from "../src/domain/job.ts";
import type { Node } from "../src/domain/node.ts";
import type { NewRun } from "../src/domain/run.ts";
import { MIGRATIONS, SCHEMA_VERSION, versionTable } from "../src/store/migrations.ts";
import { BACKENDS, freshDatabase, markerRows, onFreshStore, rawQuery } from "./helpers.ts";

const NOW = Date.UTC(2026, 0, 1, 0, 0, 30);
const HEARTBEAT_MS = 5000;
const HOUR_MS = 3_600_000;

function node(id: string, heartbeatAgoMs: number, stopped = false): Node {
  return {
    id,
    host: "host",
    pid: 1,
    version: "0.1.0",
    started_at: NOW - HOUR_MS,
    heartbeat_at: NOW - heartbeatAgoMs,
    applied_marker: null,
    jobs_loaded: 0,
    last_reload_at: null,
    last_reload_ms: null,
    stopped_at: stopped ? NOW - heartbeatAgoMs : null,
    timezone: null,
  };
}

function run(scheduledAt: number, status: NewRun["status"]): NewRun {
  return { job_id: "j", scheduled_at: scheduledAt, status, trigger: "schedule" };
}

for (const backend of BACKENDS) {
  const test = (name: string, fn: Parameters<typeof onFreshStore>[1]) =>
    Deno.test(`app operations[${backend}]: ${name}`, () => onFreshStore(backend, fn));

  test("reload inserts one pending marker that changes no job", async (store, db) => {
    const id = await reload(store);
    assertEquals(
      (await markerRows(db)).map((
        m,
      ) => [m.id, m.updated, m.jobs_before_update, m.jobs_after_update]),
      [[id, false, [], []]],
    );
    assertEquals(await store.pendingMarkers(), 1);
  });

  test(
    "status gathers services and their state, pending markers, the last hour's runs, the next fires",
    async (store, db) => {
      await store.saveNode(node("live", 1000));
      await store.saveNode(node("stale", 4 * HEARTBEAT_MS));
      await store.saveNode(node("stopped", 2000, true));
      await store.claimRuns([
        run(NOW - 10 * 60_000, "success"),
        run(NOW - 20 * 60_000, "success"),
        run(NOW - 30 * 60_000, "failed"),
        run(NOW - 2 * HOUR_MS, "failed"),
      ]);
      // Jobs firing at minute 1…6, and a disabled one that would fire first.
      for (const minute of [6, 2, 4, 1, 5, 3]) {
        const options = { command: "true", schedule: { minute: String(minute) } };
        await addJob(store, buildJob(`m${minute}`, options, null, NOW), {
          replace: false,
          names: CLI_NAMES,
        });
      }
      await addJob(
        store,
        buildJob("off", { command: "true", schedule: { second: "45" }, enabled: false }, null, NOW),
        { replace: false, names: CLI_NAMES },
      );
      // A row broken by hand is left out, not an error that hides the rest.
      await rawQuery(
        db,
        "INSERT INTO jm_jobs (id, command, minute) VALUES ('broken', 'true', 'bogus')",
      );
      await reload(store);
      const report = await status(store, {
        now: NOW,
        heartbeatMs: HEARTBEAT_MS,
        defaultZone: "UTC",
      });
      assertEquals(report.services.map((n) => [n.id, n.state]), [
        ["live", "live"],
        ["stopped", "stopped"],
        ["stale", "stale"],
      ]);
      assertEquals(report.pendingMarkers, 8);
      assertEquals(report.runsLastHour, { success: 2, failed: 1 });
      assertEquals(report.nextFires.map(({ job, at }) => [job.id, at.toISOString()]), [
        ["m1", "2026-01-01T00:01:00.000Z"],
        ["m2", "2026-01-01T00:02:00.000Z"],
        ["m3", "2026-01-01T00:03:00.000Z"],
        ["m4", "2026-01-01T00:04:00.000Z"],
        ["m5", "2026-01-01T00:05:00.000Z"],
      ]);
    },
  );

  test("status judges nodes that report the database's clock by it: live, stale, dead, leaving", async (store) => {
    const databaseNow = await store.databaseNow();
    const beat = (id: string, dbAgoMs: number, extra: Partial<Node> = {}) =>
      store.saveNode({
        // Its own clock an hour off: it is the database's that counts.
        ...node(id, HOUR_MS),
        db_heartbeat_at: databaseNow - dbAgoMs,
        heartbeat_ms: HEARTBEAT_MS,
        ...extra,
      });
    await beat("fresh", 0);
    await beat("late", 4 * HEARTBEAT_MS);
    await beat("declared", 4 * HEARTBEAT_MS, {
      declared_dead_at: databaseNow,
      declared_dead_by: "fresh",
    });
    // Stopping, ending its runs; one killed meanwhile stops beating and is stale as any other.
    await beat("leaving", 0, { leaving_at: NOW });
    await beat("killed while leaving", 4 * HEARTBEAT_MS, { leaving_at: NOW });
    const report = await status(store, { now: NOW, heartbeatMs: HEARTBEAT_MS, defaultZone: "UTC" });
    assertEquals(
      Object.fromEntries(report.services.map((n) => [n.id, n.state])),
      {
        fresh: "live",
        late: "stale",
        declared: "dead",
        leaving: "leaving",
        "killed while leaving": "stale",
      },
    );
    assertEquals(report.services.find((n) => n.id === "leaving")?.leaving_at, NOW);
  });

  test("status of an empty database", async (store) => {
    const { databaseNow, ...report } = await status(store, {
      now: NOW,
      heartbeatMs: HEARTBEAT_MS,
      defaultZone: "UTC",
    });
    // The database's own clock, read with the nodes.
    assert(typeof databaseNow === "number" && Math.abs(databaseNow - Date.now()) < 60_000);
    assertEquals(
      report,
      {
        services: [],
        pendingMarkers: 0,
        latestMarker: 0,
        runsLastHour: {},
        runningOnGone: 0,
        nextFires: [],
        silentJobs: [],
        pendingNotifications: { count: 0, oldest: null, retrying: 0, nextRetry: null },
      },
    );
  });

  test("status counts the notifications claimed and not sent yet, with the oldest claim", async (store) => {
    const claim = (ref: number, at: number) =>
      store.claimNotification({
        job_id: "backup",
        event: "failure",
        ref,
        status: "failed",
        at,
        node_id: "n1",
        minIntervalMs: null,
        payload: "{}",
      });
    await claim(1, NOW - 5000);
    await claim(2, NOW - 3000);
    await claim(3, NOW - 1000);
    await store.notificationDone("backup", "failure", 1, "sent");
    const report = await status(store, { now: NOW, heartbeatMs: HEARTBEAT_MS, defaultZone: "UTC" });
    assertEquals(report.pendingNotifications, {
      count: 2,
      oldest: NOW - 3000,
      retrying: 0,
      nextRetry: null,
    });
  });

  test("recentLogs gives the newest lines oldest first; the follow-up ones come after them", async (store) => {
    const line = (n: number, level: string) => ({
      created_at: NOW + n,
      level,
      logger_name: "jobsmanager",
      message: `line ${n}`,
      context: {},
    });
    await store.insertLogs([line(1, "info"), line(2, "error"), line(3, "info"), line(4, "error")]);
    const shown = await recentLogs(store, { minLevel: "error" }, 1);
    assertEquals(shown.map((r) => r.message), ["line 4"]);
    assertEquals(await followFrom(store, shown), shown[0].id);
    assertEquals((await recentLogs(store, {}, 3)).map((r) => r.message), [
      "line 2",
      "line 3",
      "line 4",
    ]);
    // Nothing matched: follow on from the newest line of all, so only later ones come.
    const none = await recentLogs(store, { job_id: "x" }, 10);
    const from = await followFrom(store, none);
    assertEquals(from, shown[0].id);
    await store.insertLogs([line(5, "error"), line(6, "info")]);
    assertEquals((await logsAfter(store, { minLevel: "error" }, from)).map((r) => r.message), [
      "line 5",
    ]);
  });
}

for (const backend of BACKENDS) {
  Deno.test(`app operations[${backend}]: migrateSchema reports what it applied`, async () => {
    await using db = await freshDatabase(backend);
    const store = db.open();
    try {
      const all = MIGRATIONS.map((m) => m.version);
      assertEquals(await migrateSchema(store), {
        database: store.description,
        from: 0,
        to: SCHEMA_VERSION,
        applied: all,
        created: [],
        version: SCHEMA_VERSION,
      });
      assertEquals(await migrateSchema(store), {
        database: store.description,
        from: SCHEMA_VERSION,
        to: SCHEMA_VERSION,
        applied: [],
        created: [],
        version: SCHEMA_VERSION,
      });
    } finally {
      await store.close();
    }
  });

  Deno.test(`app operations[${backend}]: a schema 1 database gains jm_runs.forced, set where the note said so`, async () => {
    await using db = await freshDatabase(backend);
    await rawQuery(db, versionTable(backend));
    for (const statement of MIGRATIONS[0].statements[backend]) await rawQuery(db, statement);
    await rawQuery(
      db,
      "INSERT INTO jm_schema_version (version, name, applied_at) VALUES (1, 'one', 0)",
    );
    await rawQuery(
      db,
      "INSERT INTO jm_runs (job_id, scheduled_at, status, `trigger`, note) VALUES ('plain', 1, 'queued', 'manual', NULL), ('forced', 2, 'queued', 'manual', 'forced: max_instances not checked')",
    );
    const store = db.open();
    try {
      const report = await migrateSchema(store);
      assertEquals([report.from, report.applied], [1, MIGRATIONS.slice(1).map((m) => m.version)]);
      assertEquals(
        (await store.queuedManualRuns(10)).map((r) => [r.job_id, r.forced]),
        [["plain", false], ["forced", true]],
      );
    } finally {
      await store.close();
    }
  });
}
