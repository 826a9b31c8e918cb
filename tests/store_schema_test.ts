/**
 * The store contract of `Store.migrate` (store.ts): the schema it creates,
 * idempotence, and the databases it refuses to touch, with their messages.
 */
import { assert, assertEquals, assertRejects } from "./assert.ts";
import { RuntimeError } from "../src/errors.ts";
import {
  MIGRATIONS,
  SCHEMA_TABLES,
  SCHEMA_VERSION,
  versionTable,
} from "../src/store/migrations.ts";
import { VERSION } from "../src/version.ts";
import {
  freshDatabase,
  jm,
  migrateFresh,
  rawQuery,
  schemaAt,
  type TestDatabase,
} from "./helpers.ts";
import { migrationLock, MysqlDriver } from "../src/store/mysql.ts";
import type { MysqlTarget } from "../src/store/target.ts";
import { countRows, job, node, onEveryBackend } from "./store_contract.ts";

const TABLES = [
  "jm_jobs",
  "jm_marker_nodes",
  "jm_nodes",
  "jm_notifications",
  "jm_notify_state",
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

/** Every column (name, type, null, default) and index column of `table`, as text. */
async function shape(db: TestDatabase, table: string): Promise<string[]> {
  const rows = db.backend === "sqlite"
    ? [
      ...await rawQuery(
        db,
        'SELECT name, type, "notnull" AS n, dflt_value AS d, pk, hidden FROM pragma_table_xinfo(?)',
        [table],
      ),
      ...await rawQuery(
        db,
        'SELECT il.name AS i, ii.name AS c, il."unique" AS u FROM pragma_index_list(?) il, pragma_index_info(il.name) ii',
        [table],
      ),
    ]
    : [
      ...await rawQuery(
        db,
        "SELECT COLUMN_NAME AS name, COLUMN_TYPE AS type, IS_NULLABLE AS n, COLUMN_DEFAULT AS d FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        [table],
      ),
      ...await rawQuery(
        db,
        "SELECT INDEX_NAME AS i, COLUMN_NAME AS c, SEQ_IN_INDEX AS q FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY INDEX_NAME, SEQ_IN_INDEX",
        [table],
      ),
    ];
  return rows.map((r) => JSON.stringify(r)).sort();
}

/** The rows of jm_schema_version the migrations up to `version` leave. */
function versionsUpTo(version: number): [number, string][] {
  return MIGRATIONS.filter((m) => m.version <= version).map((m) => [m.version, m.name]);
}

async function versions(db: TestDatabase): Promise<[number, string][]> {
  const rows = await rawQuery(db, "SELECT version, name FROM jm_schema_version ORDER BY version");
  return rows.map((r) => [Number(r.version), String(r.name)]);
}

onEveryBackend(
  "migrate",
  "madeSchema: the store that made jobsmanager's tables beside the original's moved aside, and no other",
  async (db) => {
    await rawQuery(
      db,
      "CREATE TABLE jm_jobs_apscheduler (id VARCHAR(191) PRIMARY KEY, next_run_time FLOAT, job_state BLOB NOT NULL)",
    );
    const first = db.open();
    try {
      assertEquals(first.madeSchema, false, "before migrate");
      await first.migrate();
      await first.migrate();
      assertEquals(first.madeSchema, true, "made by this store, migrated again");
    } finally {
      await first.close();
    }
    const second = db.open();
    try {
      await second.migrate();
      assertEquals(second.madeSchema, false, "another store, on the schema made");
    } finally {
      await second.close();
    }
  },
);

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
        created: [],
      });
    } finally {
      await store.close();
    }
    assertEquals(await tables(db), TABLES);
    assertEquals(await versions(db), MIGRATIONS.map((m) => [m.version, m.name]));
  },
);

onEveryBackend(
  "migrate",
  "the tests' shortcut (migrateFresh: on MySQL, tables copied from a template) makes what migrate makes",
  async (db, backend) => {
    const store = db.open();
    try {
      await store.migrate();
    } finally {
      await store.close();
    }
    await using copied = await freshDatabase(backend);
    const copiedStore = copied.open();
    try {
      await migrateFresh(copied, copiedStore);
    } finally {
      await copiedStore.close();
    }
    const definition = async (of: TestDatabase, table: string) => {
      if (of.backend === "sqlite") {
        return (await rawQuery(
          of,
          "SELECT sql FROM sqlite_master WHERE tbl_name = ? ORDER BY name",
          [
            table,
          ],
        )).map((r) => String(r.sql));
      }
      const [row] = await rawQuery(of, `SHOW CREATE TABLE ${table}`);
      return [String(row["Create Table"])];
    };
    assertEquals(await tables(copied), TABLES);
    for (const table of TABLES) {
      assertEquals(await definition(copied, table), await definition(db, table), table);
    }
    assertEquals(await versions(copied), await versions(db));
  },
);

onEveryBackend(
  "hasSchema",
  "false on a fresh database, which it leaves empty; true once migrated",
  async (db) => {
    const store = db.open();
    try {
      assertEquals(await store.hasSchema(), false);
      // SQLite's own file, made by opening it, is no table.
      assertEquals(await tables(db), []);
      await store.migrate();
      assertEquals(await store.hasSchema(), true);
    } finally {
      await store.close();
    }
  },
);

onEveryBackend("migrate", "run again, it applies nothing and keeps the data", async (db) => {
  const store = db.open();
  try {
    await store.migrate();
    await store.changeJob("alpha", () => job("alpha"));
    assertEquals(await store.migrate(), {
      from: SCHEMA_VERSION,
      to: SCHEMA_VERSION,
      applied: [],
      created: [],
    });
    assertEquals(await store.getJob("alpha"), job("alpha"));
  } finally {
    await store.close();
  }
  assertEquals(await versions(db), MIGRATIONS.map((m) => [m.version, m.name]));
});

onEveryBackend(
  "migrate",
  "one stopped half-way, or whose version rows were lost, resumes: what is there is done",
  async (db) => {
    const store = db.open();
    try {
      await store.migrate();
      await store.changeJob("alpha", () => job("alpha", { on_failure: "echo failed" }));
      // As MySQL leaves a migration killed in its ALTERs: the columns of 7 to 11 there,
      // but 10's tries, and none of their versions recorded.
      await rawQuery(db, "ALTER TABLE jm_notifications DROP COLUMN tries");
      await rawQuery(db, "DELETE FROM jm_schema_version WHERE version >= 7");
      assertEquals(await store.migrate(), {
        from: 6,
        to: SCHEMA_VERSION,
        applied: MIGRATIONS.filter((m) => m.version >= 7).map((m) => m.version),
        created: [],
      });
      assertEquals((await store.getJob("alpha"))?.on_failure, "echo failed");
      assertEquals(await countRows(db, "jm_notifications", "tries = 0"), 0);
    } finally {
      await store.close();
    }
    assertEquals(await versions(db), MIGRATIONS.map((m) => [m.version, m.name]));
  },
);

onEveryBackend(
  "migrate",
  "from schema 6, the tables a later migration makes are made, not reported as dropped",
  async (db) => {
    const store = db.open();
    try {
      await store.migrate();
      // As schema 6 left a database: migration 7 makes jm_notifications and jm_notify_state.
      await rawQuery(db, "DROP TABLE jm_notifications");
      await rawQuery(db, "DROP TABLE jm_notify_state");
      await rawQuery(db, "DELETE FROM jm_schema_version WHERE version >= 7");
      assertEquals(await store.migrate(), {
        from: 6,
        to: SCHEMA_VERSION,
        applied: MIGRATIONS.filter((m) => m.version >= 7).map((m) => m.version),
        created: [],
      });
      assertEquals(await countRows(db, "jm_notify_state"), 0);
    } finally {
      await store.close();
    }
  },
);

onEveryBackend(
  "migrate",
  "version rows lost from 4 on: what is there is done, and no column of jm_jobs loses its data",
  async (db) => {
    const store = db.open();
    const kept = job("alpha", {
      description: "kept",
      retries: 3,
      after_job: "beta",
      after_outcome: "success",
      on_failure: "echo failed",
    });
    try {
      await store.migrate();
      await store.changeJob("alpha", () => kept);
      const before = await shape(db, "jm_jobs");
      // SQLite's jm_jobs was rebuilt by migration 4, with the columns of 1 to 3: not again.
      await rawQuery(db, "DELETE FROM jm_schema_version WHERE version >= 4");
      assertEquals(await store.migrate(), {
        from: 3,
        to: SCHEMA_VERSION,
        applied: MIGRATIONS.filter((m) => m.version >= 4).map((m) => m.version),
        created: [],
      });
      assertEquals(await shape(db, "jm_jobs"), before);
      assertEquals(await store.getJob("alpha"), kept);
    } finally {
      await store.close();
    }
    assertEquals(await versions(db), MIGRATIONS.map((m) => [m.version, m.name]));
  },
);

Deno.test("migrate[sqlite]: a jm_jobs with the defaults before version 4 and later columns is not rebuilt over them", async () => {
  await using db = await freshDatabase("sqlite");
  const store = db.open();
  const kept = job("alpha", { retries: 3, on_failure: "echo failed" });
  try {
    await store.migrate();
    await store.changeJob("alpha", () => kept);
    // Made again by hand with version 1's defaults, every column kept.
    const [{ sql }] = await rawQuery(db, "SELECT sql FROM sqlite_master WHERE name = 'jm_jobs'");
    await rawQuery(
      db,
      String(sql).replace(/"?jm_jobs"?/, "jm_jobs_old").replaceAll(
        "(CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))",
        "(CAST(unixepoch('subsec') * 1000 AS INTEGER))",
      ),
    );
    await rawQuery(db, "INSERT INTO jm_jobs_old SELECT * FROM jm_jobs");
    await rawQuery(db, "DROP TABLE jm_jobs");
    await rawQuery(db, "ALTER TABLE jm_jobs_old RENAME TO jm_jobs");
    await rawQuery(db, "DELETE FROM jm_schema_version WHERE version >= 4");
    const before = await shape(db, "jm_jobs");
    const error = await assertRejects(() => store.migrate(), RuntimeError);
    assertEquals(
      error.message,
      `table jm_jobs in ${db.url} has created_at and updated_at defaults from before schema version 4, and columns that migration 4's rebuild of it would not copy (${
        ["retries", "retry_delay", "retry_max_delay", "retry_on", "retry_overlap", "after_job"]
          .join(", ")
      }, after_outcome, on_failure, on_failure_url, on_recovery, on_recovery_url, on_success, on_success_url, alert_after, user, enabled_at); jobsmanager changed nothing. Give those two columns the default (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)) by hand (SQLite makes a copy of the table for that: https://www.sqlite.org/lang_altertable.html#otheralter), then run \`jobsmanager db migrate\``,
    );
    assertEquals(await shape(db, "jm_jobs"), before);
    assertEquals(await store.getJob("alpha"), kept);
    assertEquals((await versions(db)).length, 3);
  } finally {
    await store.close();
  }
});

onEveryBackend(
  "migrate",
  "the original JobsManager's TEXT snapshots in jm_update_info are widened, at any version",
  async (db) => {
    const types = async () =>
      (await rawQuery(
        db,
        "SELECT COLUMN_NAME AS c, DATA_TYPE AS t FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'jm_update_info' AND COLUMN_NAME LIKE 'jobs%' ORDER BY 1",
      )).map((r) => `${r.c} ${r.t}`);
    await rawQuery(
      db,
      "CREATE TABLE jm_update_info (id int AUTO_INCREMENT PRIMARY KEY, updated int DEFAULT 0, insert_time datetime DEFAULT CURRENT_TIMESTAMP, update_time datetime NULL, jobs_before_update text, jobs_after_update text)",
    );
    const store = db.open();
    try {
      const widened = ["jm_update_info.jobs_before_update", "jm_update_info.jobs_after_update"];
      assertEquals((await store.migrate()).widened, widened);
      assertEquals(await types(), ["jobs_after_update longtext", "jobs_before_update longtext"]);
      // Once the schema is current, too: the table was there before jobsmanager.
      await rawQuery(db, "ALTER TABLE jm_update_info MODIFY jobs_after_update TEXT NULL");
      assertEquals(await store.migrate(), {
        from: SCHEMA_VERSION,
        to: SCHEMA_VERSION,
        applied: [],
        created: [],
        widened: ["jm_update_info.jobs_after_update"],
      });
      const many = Array.from({ length: 400 }, (_, i) => job(`job-${i}`));
      await store.changeJobs(() => ({ put: many, remove: [] }));
      assertEquals((await store.listJobs()).length, 400);
      assertEquals((await store.migrate()).widened, undefined);
    } finally {
      await store.close();
    }
  },
  ["mysql"],
);

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
  "on MySQL, a migration hung on one database holds none of another on the same server",
  async (db) => {
    if (db.target.kind !== "mysql") throw new Error("a MySQL test got another backend");
    // Another installation's migration on this server, hung (a suspended `db migrate`).
    await using other = await freshDatabase("mysql");
    const hung = Promise.withResolvers<void>();
    const inside = Promise.withResolvers<void>();
    const driver = new MysqlDriver(other.target as MysqlTarget);
    const migrating = driver.withMigrationLock(async () => {
      inside.resolve();
      await hung.promise;
    });
    try {
      await inside.promise;
      const store = db.open();
      try {
        assertEquals((await store.migrate()).to, SCHEMA_VERSION);
      } finally {
        await store.close();
      }
    } finally {
      hung.resolve();
      await migrating;
      await driver.close();
    }
    assertEquals((await migrationLock("j".repeat(64))).length, 64, "GET_LOCK takes 64 characters");
  },
  ["mysql"],
);

onEveryBackend(
  "migrate",
  "without upgrade, an older schema is refused, naming both versions, changing nothing; a new one is made",
  async (db) => {
    const older = SCHEMA_VERSION - 1;
    await schemaAt(db, older);
    const before = await Promise.all((await tables(db)).map((t) => shape(db, t)));
    const store = db.open();
    try {
      const refused =
        `${store.description} has schema version ${older}, older than this jobsmanager ${VERSION} uses (${SCHEMA_VERSION}); this command changed nothing. Upgrade it with \`jobsmanager db migrate\` (or by starting this release's \`jobsmanager serve\`); services of the older release cannot start on it once it is migrated, so upgrade them together`;
      const error = await assertRejects(() => store.migrate({ upgrade: false }), RuntimeError);
      assertEquals(error.message, refused);
      const asked = await assertRejects(() => store.hasSchema(), RuntimeError);
      assertEquals(asked.message, refused);
      assertEquals(await Promise.all((await tables(db)).map((t) => shape(db, t))), before);
      assertEquals(await versions(db), versionsUpTo(older));
      // The explicit way up.
      assertEquals((await store.migrate()).applied, [SCHEMA_VERSION]);
      assertEquals(await store.hasSchema(), true);
    } finally {
      await store.close();
    }
    await using fresh = await freshDatabase(db.backend);
    const made = fresh.open();
    try {
      assertEquals((await made.migrate({ upgrade: false })).to, SCHEMA_VERSION);
      assertEquals(await tables(fresh), TABLES);
    } finally {
      await made.close();
    }
  },
);

onEveryBackend(
  "hasSchema",
  "a table dropped by hand is refused, naming it and db migrate, and not made again",
  async (db) => {
    const store = db.open();
    try {
      await store.migrate();
      await rawQuery(db, "DROP TABLE jm_nodes");
      await rawQuery(db, "DROP TABLE jm_runs");
      const error = await assertRejects(() => store.hasSchema(), RuntimeError);
      assertEquals(
        error.message,
        `${store.description} lacks the tables jm_runs, jm_nodes of its schema (dropped by hand?); this command changed nothing. Create them again, empty, with \`jobsmanager db migrate\``,
      );
      assertEquals(await tables(db), TABLES.filter((t) => t !== "jm_nodes" && t !== "jm_runs"));
    } finally {
      await store.close();
    }
  },
);

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
  "the original's jm_jobs and jm_syslog are named in one refusal; the two renames it names fix it",
  async (db, backend) => {
    await rawQuery(
      db,
      "CREATE TABLE jm_jobs (id VARCHAR(191) NOT NULL PRIMARY KEY, next_run_time DOUBLE, job_state BLOB NOT NULL)",
    );
    await rawQuery(
      db,
      "CREATE TABLE jm_syslog (id INTEGER PRIMARY KEY, created_at DATETIME, level VARCHAR(16), logger_name VARCHAR(64), message TEXT)",
    );
    const renames = backend === "sqlite"
      ? [
        "ALTER TABLE jm_jobs RENAME TO jm_jobs_apscheduler;",
        "ALTER TABLE jm_syslog RENAME TO jm_syslog_original;",
      ]
      : [
        "RENAME TABLE jm_jobs TO jm_jobs_apscheduler;",
        "RENAME TABLE jm_syslog TO jm_syslog_original;",
      ];
    const store = db.open();
    try {
      for (const refused of [() => store.migrate(), () => store.hasSchema()]) {
        const error = await assertRejects(refused, RuntimeError);
        assertEquals(
          error.message,
          `tables jm_jobs and jm_syslog in ${store.description} are the original JobsManager's: jm_jobs its APScheduler job store (it has next_run_time and job_state), jm_syslog its log table (it has no context column); jobsmanager changed nothing. Move both aside with \`${
            renames[0]
          }\` and \`${
            renames[1]
          }\` (the log's rows stay there to read), then bring its jobs in with \`jobsmanager import apscheduler\` (which migrates)`,
        );
      }
      assertEquals(await tables(db), ["jm_jobs", "jm_syslog"]);

      for (const rename of renames) await rawQuery(db, rename);
      assertEquals((await store.migrate()).to, SCHEMA_VERSION);
    } finally {
      await store.close();
    }
  },
);

Deno.test("migrate[sqlite]: the original's tables are found whatever their names' case; a view is said to be one", async () => {
  const ORIGINAL = "is the original JobsManager's";
  const VIEW = "is a view, where jobsmanager needs a table";
  const cases: [string[], string][] = [
    [
      ["CREATE TABLE JM_JOBS (id TEXT PRIMARY KEY, next_run_time REAL, job_state BLOB NOT NULL)"],
      ORIGINAL,
    ],
    [
      [
        "CREATE TABLE ap (id TEXT PRIMARY KEY, next_run_time REAL, job_state BLOB NOT NULL)",
        "CREATE VIEW jm_jobs AS SELECT * FROM ap",
      ],
      VIEW,
    ],
    [["CREATE VIEW JM_SYSLOG AS SELECT 1 AS id"], VIEW],
    [["CREATE TABLE Jm_Syslog (id INTEGER PRIMARY KEY, message TEXT)"], ORIGINAL],
    [
      [
        versionTable("sqlite").replace("jm_schema_version", "JM_SCHEMA_VERSION"),
        "INSERT INTO JM_SCHEMA_VERSION VALUES (99, 'future', 0)",
      ],
      "has schema version 99",
    ],
  ];
  for (const [setup, refusal] of cases) {
    await using db = await freshDatabase("sqlite");
    for (const sql of setup) await rawQuery(db, sql);
    const store = db.open();
    try {
      const error = await assertRejects(() => store.migrate(), RuntimeError);
      assert(error.message.includes(refusal), error.message);
    } finally {
      await store.close();
    }
  }
});

onEveryBackend(
  "migrate",
  "a view where a schema table goes is refused as a view, not as the original's table nor as one without transactions; dropping it fixes it",
  async (db) => {
    const store = db.open();
    const refusal =
      `jm_runs, jm_syslog in ${store.description} are views, where jobsmanager needs tables (it writes its rows there); jobsmanager changed nothing. Drop them (\`DROP VIEW jm_runs;\` \`DROP VIEW jm_syslog;\`; keep their definitions first if wanted), then run \`jobsmanager db migrate\`, which makes the tables`;
    try {
      await rawQuery(db, "CREATE VIEW jm_syslog AS SELECT 1 AS id");
      await rawQuery(db, "CREATE VIEW jm_runs AS SELECT 1 AS id, 'x' AS context");
      for (const call of [() => store.migrate(), () => store.hasSchema()]) {
        const error = await assertRejects(call, RuntimeError);
        assertEquals(error.message, refusal);
      }
      // information_schema.TABLES lists views too; sqlite_master's tables are tables.
      assertEquals(
        await tables(db),
        db.backend === "mysql" ? ["jm_runs", "jm_syslog"] : [],
        "tables made",
      );
      await rawQuery(db, "DROP VIEW jm_syslog");
      await rawQuery(db, "DROP VIEW jm_runs");
      assertEquals((await store.migrate()).to, SCHEMA_VERSION);
      // One made over a table of a current schema.
      await rawQuery(db, "DROP TABLE jm_runs");
      await rawQuery(db, "CREATE VIEW jm_runs AS SELECT 1 AS id");
      const error = await assertRejects(() => store.hasSchema(), RuntimeError);
      assertEquals(
        error.message,
        `jm_runs in ${store.description} is a view, where jobsmanager needs a table (it writes its rows there); jobsmanager changed nothing. Drop it (\`DROP VIEW jm_runs;\`; keep its definition first if wanted), then run \`jobsmanager db migrate\`, which makes the table`,
      );
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

onEveryBackend(
  "migrate",
  "a table dropped by hand is created again, as the migrations left it, and reported",
  async (db) => {
    const store = db.open();
    try {
      await store.migrate();
      await store.changeJob("alpha", () => job("alpha"));
      for (const table of SCHEMA_TABLES) {
        const before = await shape(db, table);
        await rawQuery(db, `DROP TABLE ${table}`);
        assertEquals(await store.migrate(), {
          from: SCHEMA_VERSION,
          to: SCHEMA_VERSION,
          applied: [],
          created: [table],
        });
        assertEquals(await shape(db, table), before, table);
      }
      assertEquals(await tables(db), TABLES);
    } finally {
      await store.close();
    }
  },
);

onEveryBackend(
  "migrate",
  "migration 4 keeps the jobs it finds, their times included",
  async (db) => {
    await schemaAt(db, 3);
    await rawQuery(
      db,
      "INSERT INTO jm_jobs (id, command, created_at, updated_at) VALUES ('kept', 'true', 5, 6)",
    );
    const store = db.open();
    try {
      const later = MIGRATIONS.filter((m) => m.version >= 4).map((m) => m.version);
      assertEquals((await store.migrate()).applied, later);
      const kept = await store.getJob("kept");
      assertEquals([kept?.command, kept?.created_at, kept?.updated_at], ["true", 5, 6]);
    } finally {
      await store.close();
    }
  },
);

onEveryBackend(
  "migrate",
  "migration 13 finds by job and run the log lines before it, and those older services write after it",
  async (db) => {
    await schemaAt(db, 12);
    // As a release of schema 12 writes them (log_sink), and one written by hand, not JSON.
    const older = (message: string, context: string) =>
      rawQuery(
        db,
        "INSERT INTO jm_syslog (created_at, level, logger_name, message, context, node_id) VALUES (1, 'info', 'jobsmanager.runner', ?, ?, 'n1')",
        [message, context],
      );
    await older("before", JSON.stringify({ job: "backup", run: 7 }));
    await older("by hand", "not JSON");
    await older("other", JSON.stringify({ job: "other", run: 8 }));
    const store = db.open();
    try {
      assertEquals((await store.migrate()).applied, [13, 14, 15, 16, 17, 18, 19]);
      await older("after", JSON.stringify({ job: "backup", run: 7, pid: 1 }));
      const found = async (filter: { job_id?: string; run_id?: number }) =>
        (await store.listLogs({ ...filter, limit: 10 })).map((r) => r.message);
      assertEquals(await found({ job_id: "backup" }), ["after", "before"]);
      assertEquals(await found({ run_id: 7 }), ["after", "before"]);
      assertEquals(await found({ job_id: "other", run_id: 8 }), ["other"]);
      assertEquals(await found({ job_id: "not JSON" }), []);
    } finally {
      await store.close();
    }
  },
);

onEveryBackend(
  "migrate",
  "migration 14: runs from before, and those older services write after it, name no job version; the rest do",
  async (db) => {
    await schemaAt(db, 13);
    // As a release of schema 13 claims a run.
    const older = (scheduledAt: number) =>
      rawQuery(
        db,
        "INSERT INTO jm_runs (job_id, scheduled_at, status, `trigger`) VALUES ('backup', ?, 'queued', 'manual')",
        [scheduledAt],
      );
    await older(1000);
    const store = db.open();
    try {
      assertEquals((await store.migrate()).applied, [14, 15, 16, 17, 18, 19]);
      await older(2000);
      const [ours] = await store.claimRuns([{
        job_id: "backup",
        job_updated_at: 123,
        scheduled_at: 3000,
        status: "queued",
        trigger: "manual",
      }]);
      const runs = await store.listRuns({ job_id: "backup", limit: 10 });
      assertEquals(runs.map((r) => [r.scheduled_at, r.job_updated_at]), [
        [3000, 123],
        [2000, null],
        [1000, null],
      ]);
      await store.updateRun(ours!, { status: "running", job_updated_at: 456 });
      assertEquals((await store.getRun(ours!))?.job_updated_at, 456);
    } finally {
      await store.close();
    }
  },
);

/** Node `old`'s heartbeat with `pid`, as a release of schema 14 to 16 writes it (sql_status's upsert). */
function olderHeartbeat(db: TestDatabase, pid: number) {
  return rawQuery(
    db,
    db.backend === "mysql"
      ? "INSERT INTO jm_nodes (id, host, pid, version, started_at, heartbeat_at, jobs_loaded) VALUES ('old', 'web-1', ?, '0.1.0', 1, 2, 0) ON DUPLICATE KEY UPDATE pid = VALUES(pid)"
      : "INSERT INTO jm_nodes (id, host, pid, version, started_at, heartbeat_at, jobs_loaded) VALUES ('old', 'web-1', ?, '0.1.0', 1, 2, 0) ON CONFLICT (id) DO UPDATE SET pid = excluded.pid",
    [pid],
  );
}

onEveryBackend(
  "migrate",
  "migration 15: a node's row written before it, and those older services write after it, say no boot or pid namespace",
  async (db) => {
    await schemaAt(db, 14);
    // As a release of schema 14 writes its heartbeat, before and after.
    const beat = (pid: number) => olderHeartbeat(db, pid);
    await beat(10);
    const store = db.open();
    try {
      assertEquals((await store.migrate()).applied, [15, 16, 17, 18, 19]);
      await beat(11);
      const [row] = (await store.nodesAndNow()).nodes;
      assertEquals([row.pid, row.boot_id, row.pid_ns], [11, null, null]);
    } finally {
      await store.close();
    }
  },
);

onEveryBackend(
  "migrate",
  "migration 16: jobs from before run as the service's user, and a job written after it keeps its user",
  async (db) => {
    await schemaAt(db, 15);
    // As a release of schema 15 writes a job: it names no user.
    await rawQuery(db, "INSERT INTO jm_jobs (id, command) VALUES ('old', 'true')");
    const store = db.open();
    try {
      assertEquals((await store.migrate()).applied, [16, 17, 18, 19]);
      assertEquals((await store.getJob("old"))?.user, null);
      await store.changeJob("old", (job) => ({ ...job!, user: "nobody" }));
      assertEquals((await store.getJob("old"))?.user, "nobody");
      const [marker] = await rawQuery(
        db,
        "SELECT jobs_after_update FROM jm_update_info ORDER BY id DESC LIMIT 1",
      );
      assertEquals(JSON.parse(String(marker.jobs_after_update))[0].user, "nobody");
    } finally {
      await store.close();
    }
  },
);

onEveryBackend(
  "migrate",
  "migration 17: a node's row written before it, and those older services write after it, name no schema version; this release's do",
  async (db) => {
    await schemaAt(db, 16);
    // As a release of schema 16 writes its heartbeat, before and after.
    const beat = (pid: number) => olderHeartbeat(db, pid);
    await beat(10);
    const store = db.open();
    try {
      assertEquals((await store.migrate()).applied, [17, 18, 19]);
      await beat(11);
      await store.saveNode(node("new", { schema_version: SCHEMA_VERSION }));
      const rows = (await store.nodesAndNow()).nodes.sort((a, b) => a.id < b.id ? 1 : -1);
      assertEquals(rows.map((n) => [n.id, n.pid, n.schema_version]), [
        ["old", 11, null],
        ["new", 10, SCHEMA_VERSION],
      ]);
    } finally {
      await store.close();
    }
  },
);

onEveryBackend(
  "migrate",
  "migration 18: no job from before has a time its schedule applies from (its updated_at is not its enable: it resumes from its last fire, as before); the CLI's enable gives one",
  async (db) => {
    await schemaAt(db, 17);
    // As a release of schema 17 writes jobs: 'on' was last changed (its description edited,
    // say) at 5000, after its last enable.
    await rawQuery(
      db,
      "INSERT INTO jm_jobs (id, command, enabled, created_at, updated_at) VALUES ('on', 'true', 1, 1000, 5000), ('off', 'true', 0, 1000, 6000)",
    );
    const store = db.open();
    try {
      assertEquals((await store.migrate()).applied, [18, 19]);
      assertEquals((await store.lastFires(0)).enabledAt, new Map());
      const enable = await jm(db, "job", "enable", "off");
      assertEquals([enable.code, enable.stderr], [0, ""]);
      const enabledAt = (await store.lastFires(0)).enabledAt;
      assertEquals(enabledAt, new Map([["off", (await store.getJob("off"))!.updated_at]]));
      assert(enabledAt.get("off")! > 6000, `enabled_at of off: ${enabledAt.get("off")}`);
    } finally {
      await store.close();
    }
  },
);

onEveryBackend(
  "migrate",
  "migration 19: a node's row written before it, and those older services write after it, name no process start; this release's do",
  async (db) => {
    await schemaAt(db, 18);
    // As a release of schema 18 writes its heartbeat, before and after.
    const beat = (pid: number) => olderHeartbeat(db, pid);
    await beat(10);
    const store = db.open();
    try {
      assertEquals((await store.migrate()).applied, [19]);
      await beat(11);
      await store.saveNode(node("new", { process_start: 123_456_789_012 }));
      const rows = (await store.nodesAndNow()).nodes.sort((a, b) => a.id < b.id ? 1 : -1);
      assertEquals(rows.map((n) => [n.id, n.pid, n.process_start]), [
        ["old", 11, null],
        ["new", 10, 123_456_789_012],
      ]);
    } finally {
      await store.close();
    }
  },
);

/** The system's sqlite3 shell, where installed (Debian 12's is 3.40, older than 'subsec'). */
const SQLITE3 = ["/usr/bin/sqlite3", "/bin/sqlite3"].find((path) => {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
});

Deno.test("migrate[sqlite]: no default of the schema needs an SQLite newer than 3.38", async () => {
  await using db = await freshDatabase("sqlite");
  const store = db.open();
  try {
    await store.migrate();
  } finally {
    await store.close();
  }
  const ddl = await rawQuery(db, "SELECT name, sql FROM sqlite_master WHERE sql LIKE '%subsec%'");
  assertEquals(ddl, []);
});

Deno.test({
  name: "migrate[sqlite]: a job row written by hand with the sqlite3 shell gets its timestamps",
  ignore: SQLITE3 === undefined,
  fn: async () => {
    await using db = await freshDatabase("sqlite");
    const store = db.open();
    try {
      await store.migrate();
      const path = db.target.kind === "sqlite" ? db.target.path : "";
      const shell = await new Deno.Command(SQLITE3!, {
        args: [path, "INSERT INTO jm_jobs (id, command) VALUES ('by-hand', 'true')"],
        stderr: "piped",
      }).output();
      assertEquals(shell.code, 0, new TextDecoder().decode(shell.stderr));
      const job = await store.getJob("by-hand");
      assert(job !== null && Math.abs(job.created_at - Date.now()) < 60_000, JSON.stringify(job));
      assertEquals(job.updated_at, job.created_at);
    } finally {
      await store.close();
    }
  },
});

onEveryBackend(
  "migrate",
  "MySQL tables in an engine without transactions are refused, naming the ALTER that converts them",
  async (db) => {
    const store = db.open();
    try {
      await store.migrate();
      await rawQuery(db, "ALTER TABLE jm_runs ENGINE=MyISAM");
      for (const call of [() => store.migrate(), () => store.hasSchema()]) {
        const error = await assertRejects(call, RuntimeError);
        assertEquals(
          error.message,
          `${store.description}: jm_runs is MyISAM, an engine without transactions, which jobsmanager needs (a change and its reload marker are one write); jobsmanager changed nothing. Convert it: ALTER TABLE jm_runs ENGINE=InnoDB; (and check the server's enforce_storage_engine and default_storage_engine)`,
        );
      }
      await rawQuery(db, "ALTER TABLE jm_runs ENGINE=InnoDB");
      assert(await store.hasSchema());
    } finally {
      await store.close();
    }
  },
  ["mysql"],
);

onEveryBackend(
  "hasSchema",
  "MySQL's schema check builds no temporary table on disk, and still reads each table's columns, types and engine",
  async (db) => {
    const store = db.open();
    try {
      await store.migrate();
    } finally {
      await store.close();
    }
    await rawQuery(db, "DROP TABLE jm_notify_state");
    const driver = new MysqlDriver(db.target as MysqlTarget);
    try {
      // On one connection, whose own counts these are: information_schema.COLUMNS (and SHOW
      // COLUMNS) built an Aria table each query, whose drop crashed MariaDB 10.11 twice.
      const { before, rows, after } = await driver.withMigrationLock(async (tx) => {
        const count = async () =>
          Object.fromEntries(
            (await tx.all("SHOW SESSION STATUS LIKE 'Created_tmp_disk_tables'")).map((
              row,
            ) => [row.Variable_name, Number(row.Value)]),
          );
        const before = await count();
        const rows = await driver.profile.tableColumns(
          tx,
          ["jm_runs", "jm_update_info", "jm_notify_state"],
          ["jm_update_info", "jm_notify_state"],
        );
        return { before, rows, after: await count() };
      });
      assertEquals(after, before, "temporary tables made on disk");
      assertEquals(
        rows.filter((row) => row.name === null).sort((a, b) =>
          String(a.tbl).localeCompare(String(b.tbl))
        ),
        [
          { tbl: "jm_runs", name: null, type: null, engine: "InnoDB", is_view: 0 },
          { tbl: "jm_update_info", name: null, type: null, engine: "InnoDB", is_view: 0 },
        ],
      );
      assert(rows.every((row) => row.name === null || row.tbl === "jm_update_info"));
      assertEquals(
        rows.filter((row) => String(row.name).startsWith("jobs_")).map((row) => row.type),
        ["longtext", "longtext"],
      );
      assertEquals(
        await driver.profile.columns(driver, "jm_update_info"),
        rows.filter((row) => row.name !== null).map((row) => row.name),
      );
      assertEquals(await driver.profile.columns(driver, "jm_notify_state"), []);
    } finally {
      await driver.close();
    }
  },
  ["mysql"],
);
