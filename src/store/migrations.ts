/**
 * Numbered schema migrations, embedded so the single binary carries them.
 * `sql/mysql.sql` and `sql/sqlite.sql` are rendered from this file for
 * people (`deno task generate`); a test proves they match.
 *
 * Never edit a migration that has shipped: add the next one.
 */

export type Dialect = "sqlite" | "mysql";

export interface Migration {
  version: number;
  name: string;
  statements: Record<Dialect, string[]>;
}

const MYSQL_TABLE = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";
export const MYSQL_NOW_MS = "(CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS UNSIGNED))";
/** Needs SQLite 3.42 ('subsec'); Debian 12's sqlite3 (3.40) makes it NULL. Version 1 only. */
const SQLITE_NOW_MS_3_42 = "(CAST(unixepoch('subsec') * 1000 AS INTEGER))";
/** The same, in ms, in every SQLite: julianday() has had ms precision since 3.0. */
export const SQLITE_NOW_MS = "(CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))";

/** jm_jobs, as `name`, its timestamps defaulting to `sqliteNow` on SQLite. */
function jobsTable(d: Dialect, name = "jm_jobs", sqliteNow = SQLITE_NOW_MS_3_42): string {
  const [str, text, bool, now] = d === "mysql"
    ? ["VARCHAR(191)", "TEXT", "TINYINT(1)", MYSQL_NOW_MS]
    : ["TEXT", "TEXT", "INTEGER", sqliteNow];
  const field = (name: string) =>
    `  \`${name}\` ${d === "mysql" ? "VARCHAR(255)" : "TEXT"} NOT NULL DEFAULT '*',`;
  return [
    `CREATE TABLE IF NOT EXISTS ${name} (`,
    `  id ${str} NOT NULL PRIMARY KEY,`,
    `  command ${text} NOT NULL,`,
    ...["second", "minute", "hour", "day", "month", "day_of_week"].map(field),
    `  timezone ${d === "mysql" ? "VARCHAR(64)" : "TEXT"} NULL,`,
    `  timeout INTEGER NOT NULL DEFAULT 60,`,
    `  enabled ${bool} NOT NULL DEFAULT 1,`,
    `  max_instances INTEGER NULL,`,
    `  \`coalesce\` ${bool} NULL,`,
    `  misfire_grace_time INTEGER NULL,`,
    `  env ${text} NULL,`,
    `  cwd ${text} NULL,`,
    `  description ${text} NULL,`,
    `  created_at BIGINT NOT NULL DEFAULT ${now},`,
    `  updated_at BIGINT NOT NULL DEFAULT ${now}`,
    d === "mysql" ? `) ${MYSQL_TABLE}` : ")",
  ].join("\n");
}

function updateInfoTable(d: Dialect): string {
  return d === "mysql"
    ? [
      "CREATE TABLE IF NOT EXISTS jm_update_info (",
      "  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,",
      "  updated TINYINT NOT NULL DEFAULT 0,",
      "  insert_time DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),",
      "  update_time DATETIME(3) NULL,",
      "  jobs_before_update LONGTEXT NULL,",
      "  jobs_after_update LONGTEXT NULL,",
      "  KEY jm_update_info_updated (updated, id)",
      `) ${MYSQL_TABLE}`,
    ].join("\n")
    : [
      "CREATE TABLE IF NOT EXISTS jm_update_info (",
      "  id INTEGER PRIMARY KEY AUTOINCREMENT,",
      "  updated INTEGER NOT NULL DEFAULT 0,",
      "  insert_time TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),",
      "  update_time TEXT NULL,",
      "  jobs_before_update TEXT NULL,",
      "  jobs_after_update TEXT NULL",
      ")",
    ].join("\n");
}

function idColumn(d: Dialect): string {
  return d === "mysql"
    ? "id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY"
    : "id INTEGER PRIMARY KEY AUTOINCREMENT";
}

function syslogTable(d: Dialect): string {
  const str = d === "mysql" ? "VARCHAR(191)" : "TEXT";
  return [
    "CREATE TABLE IF NOT EXISTS jm_syslog (",
    `  ${idColumn(d)},`,
    "  created_at BIGINT NOT NULL,",
    `  level ${d === "mysql" ? "VARCHAR(16)" : "TEXT"} NOT NULL,`,
    `  logger_name ${str} NOT NULL,`,
    `  message ${d === "mysql" ? "MEDIUMTEXT" : "TEXT"} NOT NULL,`,
    `  context ${d === "mysql" ? "MEDIUMTEXT" : "TEXT"} NULL${d === "mysql" ? "," : ""}`,
    ...mysqlKeys(d, [["jm_syslog_created_at", "created_at"]]),
    d === "mysql" ? `) ${MYSQL_TABLE}` : ")",
  ].join("\n");
}

/**
 * A context property of jm_syslog as text, for a generated column; NULL
 * where the context is not JSON (a line written by hand), which both
 * databases would refuse to index, failing the row and the migration. On
 * MySQL cut to the column's width: in strict mode a longer value (a line
 * naming an invalid job id) would fail its row, and with it the sink's
 * whole batch. Filters name valid ids, which fit.
 */
function logKey(d: Dialect, property: string, width: number): string {
  return d === "mysql"
    ? `IF(JSON_VALID(context), LEFT(JSON_UNQUOTE(JSON_EXTRACT(context, '$.${property}')), ${width}), NULL)`
    // As text, as MySQL gives it: json_extract would give 42, which is not '42'.
    : `CASE WHEN json_valid(context) THEN CAST(json_extract(context, '$.${property}') AS TEXT) END`;
}

function runsTable(d: Dialect): string {
  const [str, short, out] = d === "mysql"
    ? ["VARCHAR(191)", "VARCHAR(16)", "MEDIUMTEXT"]
    : ["TEXT", "TEXT", "TEXT"];
  return [
    "CREATE TABLE IF NOT EXISTS jm_runs (",
    `  ${idColumn(d)},`,
    `  job_id ${str} NOT NULL,`,
    "  scheduled_at BIGINT NOT NULL,",
    "  started_at BIGINT NULL,",
    "  finished_at BIGINT NULL,",
    `  status ${short} NOT NULL,`,
    "  exit_code INTEGER NULL,",
    `  \`signal\` ${short} NULL,`,
    `  stdout ${out} NULL,`,
    `  stderr ${out} NULL,`,
    `  node_id ${str} NULL,`,
    `  \`trigger\` ${short} NOT NULL,`,
    "  note TEXT NULL,",
    `  UNIQUE (job_id, scheduled_at, \`trigger\`)${d === "mysql" ? "," : ""}`,
    ...mysqlKeys(d, RUNS_INDEXES),
    d === "mysql" ? `) ${MYSQL_TABLE}` : ")",
  ].join("\n");
}

function nodesTable(d: Dialect): string {
  const str = d === "mysql" ? "VARCHAR(191)" : "TEXT";
  return [
    "CREATE TABLE IF NOT EXISTS jm_nodes (",
    `  id ${str} NOT NULL PRIMARY KEY,`,
    `  host ${d === "mysql" ? "VARCHAR(255)" : "TEXT"} NOT NULL,`,
    "  pid INTEGER NOT NULL,",
    `  version ${d === "mysql" ? "VARCHAR(32)" : "TEXT"} NOT NULL,`,
    "  started_at BIGINT NOT NULL,",
    "  heartbeat_at BIGINT NOT NULL,",
    "  applied_marker BIGINT NULL,",
    "  jobs_loaded INTEGER NOT NULL DEFAULT 0,",
    "  last_reload_at BIGINT NULL,",
    "  last_reload_ms INTEGER NULL,",
    "  stopped_at BIGINT NULL",
    d === "mysql" ? `) ${MYSQL_TABLE}` : ")",
  ].join("\n");
}

/** Which node applied which marker, until every live node has (then the marker is `updated`). */
function markerNodesTable(d: Dialect): string {
  return [
    "CREATE TABLE IF NOT EXISTS jm_marker_nodes (",
    "  marker_id BIGINT NOT NULL,",
    `  node_id ${d === "mysql" ? "VARCHAR(191)" : "TEXT"} NOT NULL,`,
    "  PRIMARY KEY (marker_id, node_id)",
    d === "mysql" ? `) ${MYSQL_TABLE}` : ")",
  ].join("\n");
}

/**
 * Notifications (issue 13): one row per notification claimed, whose unique
 * key makes a hook run once cluster-wide (`ref`: the run's id; for a
 * silence alert, the instant the silence is measured from).
 */
function notificationsTable(d: Dialect): string {
  const [str, short] = d === "mysql" ? ["VARCHAR(191)", "VARCHAR(16)"] : ["TEXT", "TEXT"];
  return [
    "CREATE TABLE IF NOT EXISTS jm_notifications (",
    `  ${idColumn(d)},`,
    `  job_id ${str} NOT NULL,`,
    `  event ${short} NOT NULL,`,
    "  ref BIGINT NOT NULL,",
    `  status ${short} NOT NULL,`,
    "  created_at BIGINT NOT NULL,",
    `  node_id ${str} NULL,`,
    `  outcome ${short} NOT NULL,`,
    `  UNIQUE (job_id, event, ref)${d === "mysql" ? "," : ""}`,
    ...mysqlKeys(d, [["jm_notifications_created_at", "created_at"]]),
    d === "mysql" ? `) ${MYSQL_TABLE}` : ")",
  ].join("\n");
}

/** Per job: when it was last notified (null: never), and what was held back since (notify.min_interval). */
function notifyStateTable(d: Dialect): string {
  const [str, text] = d === "mysql" ? ["VARCHAR(191)", "MEDIUMTEXT"] : ["TEXT", "TEXT"];
  return [
    "CREATE TABLE IF NOT EXISTS jm_notify_state (",
    `  job_id ${str} NOT NULL PRIMARY KEY,`,
    "  last_sent_at BIGINT NULL,",
    "  held_count INTEGER NOT NULL DEFAULT 0,",
    "  held_since BIGINT NULL,",
    `  held_statuses ${text} NULL,`,
    `  held_payload ${text} NULL`,
    d === "mysql" ? `) ${MYSQL_TABLE}` : ")",
  ].join("\n");
}

function both(build: (d: Dialect) => string): Record<Dialect, string[]> {
  return { sqlite: [build("sqlite")], mysql: [build("mysql")] };
}

const RUNS_INDEXES: [name: string, columns: string][] = [
  ["jm_runs_job", "job_id, id"],
  ["jm_runs_status", "status"],
  ["jm_runs_scheduled_at", "scheduled_at"],
];

/**
 * MySQL has no CREATE INDEX IF NOT EXISTS, so its indexes live inside
 * CREATE TABLE IF NOT EXISTS, which a half-finished migration can re-run.
 */
function mysqlKeys(d: Dialect, keys: [name: string, columns: string][]): string[] {
  if (d !== "mysql") return [];
  return keys.map(([name, columns], i) =>
    `  KEY ${name} (${columns})${i < keys.length - 1 ? "," : ""}`
  );
}

function sqliteIndexes(
  specs: [name: string, table: string, columns: string][],
): Record<Dialect, string[]> {
  return {
    mysql: [],
    sqlite: specs.map(([name, table, columns]) =>
      `CREATE INDEX IF NOT EXISTS ${name} ON ${table} (${columns})`
    ),
  };
}

function merge(...parts: Record<Dialect, string[]>[]): Record<Dialect, string[]> {
  return {
    sqlite: parts.flatMap((p) => p.sqlite),
    mysql: parts.flatMap((p) => p.mysql),
  };
}

/**
 * The columns of jm_jobs as migration 4 found them, in their order. Frozen on
 * purpose, not `JOB_FIELDS`: a migration must keep meaning what it meant when
 * jm_jobs gains a column.
 */
const JOB_COLUMN_NAMES = [
  "id",
  "command",
  ...["second", "minute", "hour", "day", "month", "day_of_week"],
  "timezone",
  "timeout",
  "enabled",
  "max_instances",
  "coalesce",
  "misfire_grace_time",
  "env",
  "cwd",
  "description",
  "created_at",
  "updated_at",
];
const JOB_COLUMNS = JOB_COLUMN_NAMES.map((c) => `\`${c}\``).join(", ");

/**
 * Migration 4's rebuild of jm_jobs on SQLite, which cannot change a
 * column's default: a copy made with the new defaults, the rows copied
 * into it, the table replaced. Not idempotent as ALTERs are made (see
 * `alterClauses`): run over a jm_jobs that has the later migrations'
 * columns (its version rows lost), it would copy the first columns alone.
 * So it runs only while jm_jobs has a default it replaces (`replaces`),
 * and never over columns it would not copy (`copies`).
 */
export const SQLITE_JOBS_REBUILD = {
  statements: [
    jobsTable("sqlite", "jm_jobs_rebuilt", SQLITE_NOW_MS),
    `INSERT INTO jm_jobs_rebuilt (${JOB_COLUMNS}) SELECT ${JOB_COLUMNS} FROM jm_jobs`,
    "DROP TABLE jm_jobs",
    "ALTER TABLE jm_jobs_rebuilt RENAME TO jm_jobs",
  ],
  /** What a default of created_at or updated_at it replaces holds (only SQLite 3.42 evaluates it). */
  replaces: "unixepoch('subsec')",
  /** The columns it copies. */
  copies: JOB_COLUMN_NAMES,
};

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: "jobs, reload markers, logs, runs, nodes",
    statements: merge(
      both(jobsTable),
      both(updateInfoTable),
      both(syslogTable),
      both(runsTable),
      both(nodesTable),
      sqliteIndexes([
        ["jm_update_info_updated", "jm_update_info", "updated, id"],
        ["jm_syslog_created_at", "jm_syslog", "created_at"],
        ...RUNS_INDEXES.map((
          [name, columns],
        ): [string, string, string] => [name, "jm_runs", columns]),
      ]),
    ),
  },
  {
    version: 2,
    name: "jm_runs.forced: job run --force as a column",
    // Version 1 marked a forced run by its note alone: requests queued
    // across the upgrade stay forced.
    statements: merge(
      {
        mysql: ["ALTER TABLE jm_runs ADD COLUMN forced TINYINT(1) NOT NULL DEFAULT 0"],
        sqlite: ["ALTER TABLE jm_runs ADD COLUMN forced INTEGER NOT NULL DEFAULT 0"],
      },
      both(() => "UPDATE jm_runs SET forced = 1 WHERE note = 'forced: max_instances not checked'"),
    ),
  },
  {
    version: 3,
    name: "jm_nodes.timezone and cancel requests in jm_runs",
    // All nullable: a service that predates them reports no zone, and a run
    // nobody asked to cancel has no request.
    statements: {
      mysql: [
        "ALTER TABLE jm_nodes ADD COLUMN timezone VARCHAR(64) NULL",
        "ALTER TABLE jm_runs ADD COLUMN cancel_requested_at BIGINT NULL",
        "ALTER TABLE jm_runs ADD COLUMN cancel_requested_by VARCHAR(191) NULL",
      ],
      sqlite: [
        "ALTER TABLE jm_nodes ADD COLUMN timezone TEXT NULL",
        "ALTER TABLE jm_runs ADD COLUMN cancel_requested_at BIGINT NULL",
        "ALTER TABLE jm_runs ADD COLUMN cancel_requested_by TEXT NULL",
      ],
    },
  },
  {
    version: 4,
    name: "jm_runs.pgid and marker; SQLite jm_jobs defaults any SQLite evaluates",
    // The process group and JM_RUN_MARKER of a run, so that a service
    // starting after a crash ends what its runs left. SQLite cannot change a
    // column's default: jm_jobs is rebuilt, rows kept.
    statements: {
      mysql: [
        "ALTER TABLE jm_runs ADD COLUMN pgid INTEGER NULL",
        "ALTER TABLE jm_runs ADD COLUMN marker VARCHAR(36) NULL",
      ],
      sqlite: [
        "ALTER TABLE jm_runs ADD COLUMN pgid INTEGER NULL",
        "ALTER TABLE jm_runs ADD COLUMN marker TEXT NULL",
        ...SQLITE_JOBS_REBUILD.statements,
      ],
    },
  },
  {
    version: 5,
    name: "several services: liveness by the database clock, markers applied per node",
    // db_heartbeat_at is the database's own time at the heartbeat, so that
    // clock skew between servers cannot make a live node look dead.
    statements: merge(
      ...[
        "db_heartbeat_at BIGINT NULL",
        "heartbeat_ms INTEGER NULL",
        "skew_ms BIGINT NULL",
        "jobs_owned INTEGER NULL",
        "declared_dead_at BIGINT NULL",
      ].map((column) => both(() => `ALTER TABLE jm_nodes ADD COLUMN ${column}`)),
      {
        mysql: ["ALTER TABLE jm_nodes ADD COLUMN declared_dead_by VARCHAR(191) NULL"],
        sqlite: ["ALTER TABLE jm_nodes ADD COLUMN declared_dead_by TEXT NULL"],
      },
      both(markerNodesTable),
    ),
  },
  {
    version: 6,
    name: "retries and follow-up jobs: jm_jobs retry and after columns, jm_runs attempts",
    // Defaults keep every existing job as it was (no retries, no parent) and
    // make every existing run a first attempt.
    statements: merge(
      ...[
        "retries INTEGER NOT NULL DEFAULT 0",
        "retry_delay INTEGER NOT NULL DEFAULT 10",
        "retry_max_delay INTEGER NOT NULL DEFAULT 3600",
      ].map((column) => both(() => `ALTER TABLE jm_jobs ADD COLUMN ${column}`)),
      {
        mysql: [
          "ALTER TABLE jm_jobs ADD COLUMN retry_on VARCHAR(191) NOT NULL DEFAULT 'failed,timeout,error,lost'",
          "ALTER TABLE jm_jobs ADD COLUMN retry_overlap TINYINT(1) NOT NULL DEFAULT 0",
          "ALTER TABLE jm_jobs ADD COLUMN after_job VARCHAR(191) NULL",
          "ALTER TABLE jm_jobs ADD COLUMN after_outcome VARCHAR(16) NULL",
        ],
        sqlite: [
          "ALTER TABLE jm_jobs ADD COLUMN retry_on TEXT NOT NULL DEFAULT 'failed,timeout,error,lost'",
          "ALTER TABLE jm_jobs ADD COLUMN retry_overlap INTEGER NOT NULL DEFAULT 0",
          "ALTER TABLE jm_jobs ADD COLUMN after_job TEXT NULL",
          "ALTER TABLE jm_jobs ADD COLUMN after_outcome TEXT NULL",
        ],
      },
      ...[
        "attempt INTEGER NOT NULL DEFAULT 1",
        "first_run_id BIGINT NULL",
        "parent_run_id BIGINT NULL",
      ].map((column) => both(() => `ALTER TABLE jm_runs ADD COLUMN ${column}`)),
    ),
  },
  {
    version: 7,
    name: "notifications: hooks and silence alerts per job, claims and throttling",
    // All nullable: a job without hooks uses the notify.* defaults.
    statements: merge(
      ...[
        "on_failure",
        "on_failure_url",
        "on_recovery",
        "on_recovery_url",
        "on_success",
        "on_success_url",
      ].map((column) => both(() => `ALTER TABLE jm_jobs ADD COLUMN ${column} TEXT NULL`)),
      both(() => "ALTER TABLE jm_jobs ADD COLUMN alert_after INTEGER NULL"),
      both(notificationsTable),
      sqliteIndexes([["jm_notifications_created_at", "jm_notifications", "created_at"]]),
      both(notifyStateTable),
    ),
  },
  {
    version: 8,
    name: "several services: a node stopping says so while it ends its runs",
    statements: both(() => "ALTER TABLE jm_nodes ADD COLUMN leaving_at BIGINT NULL"),
  },
  {
    version: 9,
    name: "notifications outlive their service: a claim keeps what it sends until it is sent",
    // `pending` claims are found by outcome; `attempt` changes with each
    // taker, so that one node only sends it, and `taken_at` is when the last
    // took it (another may take it over only long after that); `held_id` names the held claim
    // whose payload jm_notify_state keeps. One ALTER a table on MySQL, so
    // that each is all or nothing there too.
    statements: {
      mysql: [
        "ALTER TABLE jm_notifications ADD COLUMN payload MEDIUMTEXT NULL, ADD COLUMN held_back TEXT NULL, ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0, ADD COLUMN taken_at BIGINT NULL, ADD KEY jm_notifications_outcome (outcome, created_at)",
        "ALTER TABLE jm_notify_state ADD COLUMN held_id BIGINT NULL",
      ],
      sqlite: [
        "ALTER TABLE jm_notifications ADD COLUMN payload TEXT NULL",
        "ALTER TABLE jm_notifications ADD COLUMN held_back TEXT NULL",
        "ALTER TABLE jm_notifications ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE jm_notifications ADD COLUMN taken_at BIGINT NULL",
        "CREATE INDEX IF NOT EXISTS jm_notifications_outcome ON jm_notifications (outcome, created_at)",
        "ALTER TABLE jm_notify_state ADD COLUMN held_id BIGINT NULL",
      ],
    },
  },
  {
    version: 10,
    name: "notifications wait for a webhook receiver that is down, then say what was given up",
    // `retry_at`: a pending claim whose webhook could not reach its receiver
    // is not looked at before then; `tries`, how many times it went out;
    // `channels`, what is left of it ('webhook': the hook and mail went).
    // `given_up` counts the job's claims given up since one was sent, for
    // the next to say.
    statements: {
      mysql: [
        "ALTER TABLE jm_notifications ADD COLUMN retry_at BIGINT NULL, ADD COLUMN tries INTEGER NOT NULL DEFAULT 0, ADD COLUMN channels VARCHAR(32) NULL",
        "ALTER TABLE jm_notify_state ADD COLUMN given_up INTEGER NOT NULL DEFAULT 0",
      ],
      sqlite: [
        "ALTER TABLE jm_notifications ADD COLUMN retry_at BIGINT NULL",
        "ALTER TABLE jm_notifications ADD COLUMN tries INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE jm_notifications ADD COLUMN channels TEXT NULL",
        "ALTER TABLE jm_notify_state ADD COLUMN given_up INTEGER NOT NULL DEFAULT 0",
      ],
    },
  },
  {
    version: 11,
    name: "log lines name the service that wrote them",
    // Nullable: lines from before, and those a service logs before it knows its id.
    statements: both((d) =>
      `ALTER TABLE jm_syslog ADD COLUMN node_id ${d === "mysql" ? "VARCHAR(191)" : "TEXT"} NULL`
    ),
  },
  {
    version: 12,
    name: "nodes say what they share the jobs from",
    // JSON (domain/share.ts ShareBasis); nullable: rows of releases before it.
    statements: both(() => "ALTER TABLE jm_nodes ADD COLUMN share_basis TEXT NULL"),
  },
  {
    version: 13,
    name: "log lines found by job and run through an index",
    // Generated from context, not written by the sink: rows from before the
    // upgrade, and rows older services of a cluster still write without
    // them, are indexed alike. VIRTUAL: adding them rewrites no row; the
    // index build reads the table once (README, Upgrading).
    statements: {
      mysql: [
        `ALTER TABLE jm_syslog ADD COLUMN job_id VARCHAR(191) GENERATED ALWAYS AS (${
          logKey("mysql", "job", 191)
        }) VIRTUAL, ADD COLUMN run_id VARCHAR(32) GENERATED ALWAYS AS (${
          logKey("mysql", "run", 32)
        }) VIRTUAL`,
        // Apart: MariaDB builds an index of virtual columns while the table is written only in
        // an ALTER of its own (with the columns, the services' log writes waited for the build).
        "ALTER TABLE jm_syslog ADD KEY jm_syslog_job_id (job_id), ADD KEY jm_syslog_run_id (run_id)",
      ],
      sqlite: [
        `ALTER TABLE jm_syslog ADD COLUMN job_id TEXT GENERATED ALWAYS AS (${
          logKey("sqlite", "job", 191)
        }) VIRTUAL`,
        `ALTER TABLE jm_syslog ADD COLUMN run_id TEXT GENERATED ALWAYS AS (${
          logKey("sqlite", "run", 32)
        }) VIRTUAL`,
        "CREATE INDEX IF NOT EXISTS jm_syslog_job_id ON jm_syslog (job_id)",
        "CREATE INDEX IF NOT EXISTS jm_syslog_run_id ON jm_syslog (run_id)",
      ],
    },
  },
  {
    version: 14,
    name: "runs name the version of their job they ran",
    // Nullable and last: an instant ADD COLUMN on both; rows from before, and
    // those older services of a cluster still write, hold NULL.
    statements: both(() => "ALTER TABLE jm_runs ADD COLUMN job_updated_at BIGINT NULL"),
  },
  {
    version: 15,
    name: "nodes say the boot and pid namespace their pid is of",
    // Nullable: rows of releases before it (older services of a cluster
    // write none while they run on), judged by their heartbeat alone.
    statements: {
      mysql: [
        "ALTER TABLE jm_nodes ADD COLUMN boot_id VARCHAR(36) NULL, ADD COLUMN pid_ns BIGINT NULL",
      ],
      sqlite: [
        "ALTER TABLE jm_nodes ADD COLUMN boot_id TEXT NULL",
        "ALTER TABLE jm_nodes ADD COLUMN pid_ns BIGINT NULL",
      ],
    },
  },
  {
    version: 16,
    name: "a job may run as another user",
    // Nullable: every job from before runs as the service's own user, as it did.
    // VARCHAR(64): any user name useradd makes (32), any uid, and room for a longer one by hand.
    statements: {
      mysql: ["ALTER TABLE jm_jobs ADD COLUMN `user` VARCHAR(64) NULL"],
      sqlite: ["ALTER TABLE jm_jobs ADD COLUMN `user` TEXT NULL"],
    },
  },
  {
    version: 17,
    name: "nodes say the schema version they understand",
    // Nullable: a row of a release before it (an older service of the cluster still running,
    // which ignores jobs' user and runs them as its own) holds NULL, and jobs are not given a
    // user while such a node is live (app/older_nodes.ts).
    statements: both(() => "ALTER TABLE jm_nodes ADD COLUMN schema_version INTEGER NULL"),
  },
  {
    version: 18,
    name: "jobs say when they were last enabled",
    // When a job's current schedule applies from: the write that last enabled it, or gave it,
    // enabled, other fire times. A service resumes a job from its last fire, but not from
    // before then: the fires of a disabled stretch, or of a schedule it did not have, are not
    // owed. Nullable, and left NULL for the jobs from before: when they were enabled is not
    // known (their updated_at moves with any change, a description's too, so taking it dropped
    // the fires owed across the upgrade's downtime of a job edited meanwhile); they resume from
    // their last fire, as before, until a write enables them or changes their schedule.
    statements: both(() => "ALTER TABLE jm_jobs ADD COLUMN enabled_at BIGINT NULL"),
  },
  {
    version: 19,
    name: "nodes say when their process started since boot",
    // Whether a stale service's pid is still its process is told by the kernel's count since
    // boot (/proc/PID/stat starttime), which no step of the wall clock moves. Nullable: a row
    // of a release before it (an older service of the cluster still running) holds NULL, and is
    // judged by its started_at against the wall clock, as before.
    statements: both(() => "ALTER TABLE jm_nodes ADD COLUMN process_start BIGINT NULL"),
  },
];

/** A column a table made before jobsmanager may hold narrower than the schema declares. */
export interface Widening {
  table: string;
  column: string;
  /** Its types (information_schema's DATA_TYPE) too narrow for what jobsmanager writes. */
  narrower: string[];
  /** The column as the schema declares it. */
  sql: string;
}

/**
 * Columns `migrate` widens whatever the version: CREATE TABLE IF NOT
 * EXISTS keeps a table the original JobsManager made, and its
 * jm_update_info has TEXT snapshots, which a marker of a few hundred jobs
 * outgrows ("Data too long for column 'jobs_after_update'").
 */
export const WIDENINGS: Record<Dialect, Widening[]> = {
  mysql: ["jobs_before_update", "jobs_after_update"].map((column) => ({
    table: "jm_update_info",
    column,
    narrower: ["tinytext", "text", "mediumtext", "varchar", "char"],
    sql:
      `ALTER TABLE jm_update_info MODIFY ${column} LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL`,
  })),
  // SQLite's TEXT has no length.
  sqlite: [],
};

/** The tables of the schema (but jm_schema_version), which `migrate` checks are all there. */
export const SCHEMA_TABLES = [
  "jm_jobs",
  "jm_update_info",
  "jm_syslog",
  "jm_runs",
  "jm_nodes",
  "jm_marker_nodes",
  "jm_notifications",
  "jm_notify_state",
];

/**
 * The schema tables a statement touches: by name, or through a name built
 * on one (its indexes, `jm_jobs_rebuilt`). Replaying, in order, the
 * statements that touch a table creates it as the migrations left it.
 */
export function tablesOf(statement: string): string[] {
  const names = statement.match(/\bjm_\w+/g) ?? [];
  return SCHEMA_TABLES.filter((table) =>
    names.some((name) => name === table || name.startsWith(`${table}_`))
  );
}

/** One `ADD COLUMN name …` or `ADD KEY name (…)` of an ALTER TABLE, as written. */
export interface AlterClause {
  kind: "column" | "key";
  name: string;
  text: string;
}

/**
 * The table and the clauses of a migration's `ALTER TABLE t ADD …, ADD …`;
 * null for any other statement (which is idempotent: CREATE … IF NOT
 * EXISTS, an UPDATE), or one whose clauses are not all ADD COLUMN or ADD KEY.
 */
export function alterClauses(statement: string): { table: string; clauses: AlterClause[] } | null {
  const m = statement.match(/^ALTER TABLE (\w+) (ADD [^]*)$/);
  if (m === null) return null;
  const clauses: AlterClause[] = [];
  // No ", ADD " in a clause: defaults are simple ('failed,timeout,error,lost').
  for (const text of m[2].split(/, (?=ADD )/)) {
    const c = text.match(/^ADD (COLUMN|KEY) `?(\w+)`?/);
    if (c === null) return null;
    clauses.push({ kind: c[1] === "KEY" ? "key" : "column", name: c[2], text });
  }
  return { table: m[1], clauses };
}

/** The schema version this build creates and understands. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;

/** The table that records applied migrations. */
export function versionTable(d: Dialect): string {
  return d === "mysql"
    ? `CREATE TABLE IF NOT EXISTS jm_schema_version (\n  version INTEGER NOT NULL PRIMARY KEY,\n  name VARCHAR(191) NOT NULL,\n  applied_at BIGINT NOT NULL\n) ${MYSQL_TABLE}`
    : "CREATE TABLE IF NOT EXISTS jm_schema_version (\n  version INTEGER NOT NULL PRIMARY KEY,\n  name TEXT NOT NULL,\n  applied_at BIGINT NOT NULL\n)";
}

/** The whole schema as one SQL file, for DBAs: what `sql/<dialect>.sql` holds. */
export function renderSchema(d: Dialect): string {
  const out = [
    `-- jobsmanager schema for ${
      d === "mysql" ? "MySQL / MariaDB" : "SQLite"
    }, version ${SCHEMA_VERSION}.`,
    "-- Generated from src/store/migrations.ts (deno task generate); jobsmanager",
    "-- applies the same statements itself on `serve` and `db migrate`.",
    "",
    `${versionTable(d)};`,
  ];
  for (const m of MIGRATIONS) {
    out.push("", `-- migration ${m.version}: ${m.name}`);
    for (const s of m.statements[d]) out.push(`${s};`);
    out.push(
      `INSERT INTO jm_schema_version (version, name, applied_at) VALUES (${m.version}, '${
        m.name.replaceAll("'", "''")
      }', 0);`,
    );
  }
  return out.join("\n") + "\n";
}
