/**
 * The store contract of `Store.migrate` (store.ts): the schema it creates,
 * idempotence, and the databases it refuses to touch, with their messages.
 */
import { assertEquals, assertRejects } from "./assert.ts";
import { RuntimeError } from "../src/errors.ts";
import { MIGRATIONS, SCHEMA_VERSION, versionTable } from "../src/store/migrations.ts";
import { VERSION } from "../src/version.ts";
import { rawQuery, type TestDatabase } from "./helpers.ts";
import { countRows, job, onEveryBackend } from "./store_contract.ts";

const TABLES = [
  "jm_jobs",
  "jm_nodes",
  "jm_runs",
  "jm_schema_version",
  "jm_syslog",
  "jm_update_info",
];

/** The tables of the database, by name. */
async function tables(db: TestDatabase): Promise<string[]> {
  const rows = await rawQuery(
    db,
    db.backend === "sqlite"
      ? "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
      : "SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()",
  );
  return rows.map((r) => String(r.name)).sort();
}

async function versions(db: TestDatabase): Promise<[number, string][]> {
  const rows = await rawQuery(db, "SELECT version, name FROM jm_schema_version ORDER BY version");
  return rows.map((r) => [Number(r.version), String(r.name)]);
}

onEveryBackend(
  "migrate",
  "a fresh database gets every table and a row per migration",
  async (db) => {
    const store = db.open();
    try {
      assertEquals(await store.migrate(), {
        from: 0,
        to: SCHEMA_VERSION,
        applied: MIGRATIONS.map((m) => m.version),
      });
    } finally {
      await store.close();
    }
    assertEquals(await tables(db), TABLES);
    assertEquals(await versions(db), MIGRATIONS.map((m) => [m.version, m.name]));
  },
);

onEveryBackend("migrate", "run again, it applies nothing and keeps the data", async (db) => {
  const store = db.open();
  try {
    await store.migrate();
    await store.changeJob("alpha", () => job("alpha"));
    assertEquals(await store.migrate(), { from: SCHEMA_VERSION, to: SCHEMA_VERSION, applied: [] });
    assertEquals(await store.getJob("alpha"), job("alpha"));
  } finally {
    await store.close();
  }
  assertEquals(await versions(db), MIGRATIONS.map((m) => [m.version, m.name]));
});

onEveryBackend("migrate", "three stores migrating at once apply each version once", async (db) => {
  const stores = [db.open(), db.open(), db.open()];
  try {
    const reports = await Promise.all(stores.map((s) => s.migrate()));
    assertEquals(reports.flatMap((r) => r.applied), MIGRATIONS.map((m) => m.version));
    assertEquals(reports.map((r) => r.to), [SCHEMA_VERSION, SCHEMA_VERSION, SCHEMA_VERSION]);
  } finally {
    await Promise.all(stores.map((s) => s.close()));
  }
  assertEquals(await versions(db), MIGRATIONS.map((m) => [m.version, m.name]));
});

onEveryBackend(
  "migrate",
  "a newer schema is refused, naming both versions, creating nothing",
  async (db, backend) => {
    await rawQuery(db, versionTable(backend));
    await rawQuery(
      db,
      "INSERT INTO jm_schema_version (version, name, applied_at) VALUES (99, 'future', 0)",
    );
    const store = db.open();
    try {
      const error = await assertRejects(() => store.migrate(), RuntimeError);
      assertEquals(
        error.message,
        `${store.description} has schema version 99, newer than this jobsmanager ${VERSION} understands (${SCHEMA_VERSION}); run the jobsmanager release that migrated it, or a newer one`,
      );
    } finally {
      await store.close();
    }
    assertEquals(await tables(db), ["jm_schema_version"]);
  },
);

onEveryBackend(
  "migrate",
  "the original APScheduler jm_jobs is refused untouched; the rename it names fixes it",
  async (db, backend) => {
    await rawQuery(
      db,
      "CREATE TABLE jm_jobs (id VARCHAR(191) NOT NULL PRIMARY KEY, next_run_time DOUBLE, job_state BLOB NOT NULL)",
    );
    await rawQuery(
      db,
      "INSERT INTO jm_jobs (id, next_run_time, job_state) VALUES ('old', 1.5, 'x')",
    );
    const rename = backend === "sqlite"
      ? "ALTER TABLE jm_jobs RENAME TO jm_jobs_apscheduler;"
      : "RENAME TABLE jm_jobs TO jm_jobs_apscheduler;";
    const store = db.open();
    try {
      const error = await assertRejects(() => store.migrate(), RuntimeError);
      assertEquals(
        error.message,
        `table jm_jobs in ${store.description} is the original JobsManager's APScheduler job store (it has next_run_time and job_state); jobsmanager changed nothing. Move it aside with \`${rename}\`, then bring its jobs in with \`jobsmanager import apscheduler\` (which migrates)`,
      );
      assertEquals(await tables(db), ["jm_jobs"]);
      assertEquals(await countRows(db, "jm_jobs", "id = 'old'"), 1);

      await rawQuery(db, rename);
      assertEquals((await store.migrate()).to, SCHEMA_VERSION);
      assertEquals(await countRows(db, "jm_jobs_apscheduler"), 1);
    } finally {
      await store.close();
    }
  },
);

onEveryBackend(
  "migrate",
  "the original jm_syslog is refused untouched; the rename it names fixes it",
  async (db, backend) => {
    await rawQuery(
      db,
      "CREATE TABLE jm_syslog (id INTEGER PRIMARY KEY, created_at DATETIME, level VARCHAR(16), logger_name VARCHAR(64), message TEXT)",
    );
    await rawQuery(
      db,
      "INSERT INTO jm_syslog (id, created_at, level, logger_name, message) VALUES (1, '2020-01-01 00:00:00', 'INFO', 'old', 'kept')",
    );
    const rename = backend === "sqlite"
      ? "ALTER TABLE jm_syslog RENAME TO jm_syslog_original;"
      : "RENAME TABLE jm_syslog TO jm_syslog_original;";
    const store = db.open();
    try {
      const error = await assertRejects(() => store.migrate(), RuntimeError);
      assertEquals(
        error.message,
        `table jm_syslog in ${store.description} is the original JobsManager's log table (it has no context column); jobsmanager changed nothing. Move it aside with \`${rename}\` (its rows stay there to read), then run \`jobsmanager db migrate\``,
      );
      assertEquals(await tables(db), ["jm_syslog"]);
      assertEquals(await countRows(db, "jm_syslog", "message = 'kept'"), 1);

      await rawQuery(db, rename);
      assertEquals((await store.migrate()).to, SCHEMA_VERSION);
      assertEquals(await countRows(db, "jm_syslog_original"), 1);
    } finally {
      await store.close();
    }
  },
);
