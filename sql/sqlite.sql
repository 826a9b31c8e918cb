-- jobsmanager schema for SQLite, version 19.
-- Generated from src/store/migrations.ts (deno task generate); jobsmanager
-- applies the same statements itself on `serve` and `db migrate`.

CREATE TABLE IF NOT EXISTS jm_schema_version (
  version INTEGER NOT NULL PRIMARY KEY,
  name TEXT NOT NULL,
  applied_at BIGINT NOT NULL
);

-- migration 1: jobs, reload markers, logs, runs, nodes
CREATE TABLE IF NOT EXISTS jm_jobs (
  id TEXT NOT NULL PRIMARY KEY,
  command TEXT NOT NULL,
  `second` TEXT NOT NULL DEFAULT '*',
  `minute` TEXT NOT NULL DEFAULT '*',
  `hour` TEXT NOT NULL DEFAULT '*',
  `day` TEXT NOT NULL DEFAULT '*',
  `month` TEXT NOT NULL DEFAULT '*',
  `day_of_week` TEXT NOT NULL DEFAULT '*',
  timezone TEXT NULL,
  timeout INTEGER NOT NULL DEFAULT 60,
  enabled INTEGER NOT NULL DEFAULT 1,
  max_instances INTEGER NULL,
  `coalesce` INTEGER NULL,
  misfire_grace_time INTEGER NULL,
  env TEXT NULL,
  cwd TEXT NULL,
  description TEXT NULL,
  created_at BIGINT NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
  updated_at BIGINT NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
);
CREATE TABLE IF NOT EXISTS jm_update_info (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  updated INTEGER NOT NULL DEFAULT 0,
  insert_time TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
  update_time TEXT NULL,
  jobs_before_update TEXT NULL,
  jobs_after_update TEXT NULL
);
CREATE TABLE IF NOT EXISTS jm_syslog (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  created_at BIGINT NOT NULL,
  level TEXT NOT NULL,
  logger_name TEXT NOT NULL,
  message TEXT NOT NULL,
  context TEXT NULL
);
CREATE TABLE IF NOT EXISTS jm_runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL,
  scheduled_at BIGINT NOT NULL,
  started_at BIGINT NULL,
  finished_at BIGINT NULL,
  status TEXT NOT NULL,
  exit_code INTEGER NULL,
  `signal` TEXT NULL,
  stdout TEXT NULL,
  stderr TEXT NULL,
  node_id TEXT NULL,
  `trigger` TEXT NOT NULL,
  note TEXT NULL,
  UNIQUE (job_id, scheduled_at, `trigger`)
);
CREATE TABLE IF NOT EXISTS jm_nodes (
  id TEXT NOT NULL PRIMARY KEY,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  version TEXT NOT NULL,
  started_at BIGINT NOT NULL,
  heartbeat_at BIGINT NOT NULL,
  applied_marker BIGINT NULL,
  jobs_loaded INTEGER NOT NULL DEFAULT 0,
  last_reload_at BIGINT NULL,
  last_reload_ms INTEGER NULL,
  stopped_at BIGINT NULL
);
CREATE INDEX IF NOT EXISTS jm_update_info_updated ON jm_update_info (updated, id);
CREATE INDEX IF NOT EXISTS jm_syslog_created_at ON jm_syslog (created_at);
CREATE INDEX IF NOT EXISTS jm_runs_job ON jm_runs (job_id, id);
CREATE INDEX IF NOT EXISTS jm_runs_status ON jm_runs (status);
CREATE INDEX IF NOT EXISTS jm_runs_scheduled_at ON jm_runs (scheduled_at);
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (1, 'jobs, reload markers, logs, runs, nodes', 0);

-- migration 2: jm_runs.forced: job run --force as a column
ALTER TABLE jm_runs ADD COLUMN forced INTEGER NOT NULL DEFAULT 0;
UPDATE jm_runs SET forced = 1 WHERE note = 'forced: max_instances not checked';
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (2, 'jm_runs.forced: job run --force as a column', 0);

-- migration 3: jm_nodes.timezone and cancel requests in jm_runs
ALTER TABLE jm_nodes ADD COLUMN timezone TEXT NULL;
ALTER TABLE jm_runs ADD COLUMN cancel_requested_at BIGINT NULL;
ALTER TABLE jm_runs ADD COLUMN cancel_requested_by TEXT NULL;
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (3, 'jm_nodes.timezone and cancel requests in jm_runs', 0);

-- migration 4: jm_runs.pgid and marker; SQLite jm_jobs defaults any SQLite evaluates
ALTER TABLE jm_runs ADD COLUMN pgid INTEGER NULL;
ALTER TABLE jm_runs ADD COLUMN marker TEXT NULL;
CREATE TABLE IF NOT EXISTS jm_jobs_rebuilt (
  id TEXT NOT NULL PRIMARY KEY,
  command TEXT NOT NULL,
  `second` TEXT NOT NULL DEFAULT '*',
  `minute` TEXT NOT NULL DEFAULT '*',
  `hour` TEXT NOT NULL DEFAULT '*',
  `day` TEXT NOT NULL DEFAULT '*',
  `month` TEXT NOT NULL DEFAULT '*',
  `day_of_week` TEXT NOT NULL DEFAULT '*',
  timezone TEXT NULL,
  timeout INTEGER NOT NULL DEFAULT 60,
  enabled INTEGER NOT NULL DEFAULT 1,
  max_instances INTEGER NULL,
  `coalesce` INTEGER NULL,
  misfire_grace_time INTEGER NULL,
  env TEXT NULL,
  cwd TEXT NULL,
  description TEXT NULL,
  created_at BIGINT NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
  updated_at BIGINT NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
);
INSERT INTO jm_jobs_rebuilt (`id`, `command`, `second`, `minute`, `hour`, `day`, `month`, `day_of_week`, `timezone`, `timeout`, `enabled`, `max_instances`, `coalesce`, `misfire_grace_time`, `env`, `cwd`, `description`, `created_at`, `updated_at`) SELECT `id`, `command`, `second`, `minute`, `hour`, `day`, `month`, `day_of_week`, `timezone`, `timeout`, `enabled`, `max_instances`, `coalesce`, `misfire_grace_time`, `env`, `cwd`, `description`, `created_at`, `updated_at` FROM jm_jobs;
DROP TABLE jm_jobs;
ALTER TABLE jm_jobs_rebuilt RENAME TO jm_jobs;
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (4, 'jm_runs.pgid and marker; SQLite jm_jobs defaults any SQLite evaluates', 0);

-- migration 5: several services: liveness by the database clock, markers applied per node
ALTER TABLE jm_nodes ADD COLUMN db_heartbeat_at BIGINT NULL;
ALTER TABLE jm_nodes ADD COLUMN heartbeat_ms INTEGER NULL;
ALTER TABLE jm_nodes ADD COLUMN skew_ms BIGINT NULL;
ALTER TABLE jm_nodes ADD COLUMN jobs_owned INTEGER NULL;
ALTER TABLE jm_nodes ADD COLUMN declared_dead_at BIGINT NULL;
ALTER TABLE jm_nodes ADD COLUMN declared_dead_by TEXT NULL;
CREATE TABLE IF NOT EXISTS jm_marker_nodes (
  marker_id BIGINT NOT NULL,
  node_id TEXT NOT NULL,
  PRIMARY KEY (marker_id, node_id)
);
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (5, 'several services: liveness by the database clock, markers applied per node', 0);

-- migration 6: retries and follow-up jobs: jm_jobs retry and after columns, jm_runs attempts
ALTER TABLE jm_jobs ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jm_jobs ADD COLUMN retry_delay INTEGER NOT NULL DEFAULT 10;
ALTER TABLE jm_jobs ADD COLUMN retry_max_delay INTEGER NOT NULL DEFAULT 3600;
ALTER TABLE jm_jobs ADD COLUMN retry_on TEXT NOT NULL DEFAULT 'failed,timeout,error,lost';
ALTER TABLE jm_jobs ADD COLUMN retry_overlap INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jm_jobs ADD COLUMN after_job TEXT NULL;
ALTER TABLE jm_jobs ADD COLUMN after_outcome TEXT NULL;
ALTER TABLE jm_runs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
ALTER TABLE jm_runs ADD COLUMN first_run_id BIGINT NULL;
ALTER TABLE jm_runs ADD COLUMN parent_run_id BIGINT NULL;
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (6, 'retries and follow-up jobs: jm_jobs retry and after columns, jm_runs attempts', 0);

-- migration 7: notifications: hooks and silence alerts per job, claims and throttling
ALTER TABLE jm_jobs ADD COLUMN on_failure TEXT NULL;
ALTER TABLE jm_jobs ADD COLUMN on_failure_url TEXT NULL;
ALTER TABLE jm_jobs ADD COLUMN on_recovery TEXT NULL;
ALTER TABLE jm_jobs ADD COLUMN on_recovery_url TEXT NULL;
ALTER TABLE jm_jobs ADD COLUMN on_success TEXT NULL;
ALTER TABLE jm_jobs ADD COLUMN on_success_url TEXT NULL;
ALTER TABLE jm_jobs ADD COLUMN alert_after INTEGER NULL;
CREATE TABLE IF NOT EXISTS jm_notifications (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL,
  event TEXT NOT NULL,
  ref BIGINT NOT NULL,
  status TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  node_id TEXT NULL,
  outcome TEXT NOT NULL,
  UNIQUE (job_id, event, ref)
);
CREATE INDEX IF NOT EXISTS jm_notifications_created_at ON jm_notifications (created_at);
CREATE TABLE IF NOT EXISTS jm_notify_state (
  job_id TEXT NOT NULL PRIMARY KEY,
  last_sent_at BIGINT NULL,
  held_count INTEGER NOT NULL DEFAULT 0,
  held_since BIGINT NULL,
  held_statuses TEXT NULL,
  held_payload TEXT NULL
);
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (7, 'notifications: hooks and silence alerts per job, claims and throttling', 0);

-- migration 8: several services: a node stopping says so while it ends its runs
ALTER TABLE jm_nodes ADD COLUMN leaving_at BIGINT NULL;
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (8, 'several services: a node stopping says so while it ends its runs', 0);

-- migration 9: notifications outlive their service: a claim keeps what it sends until it is sent
ALTER TABLE jm_notifications ADD COLUMN payload TEXT NULL;
ALTER TABLE jm_notifications ADD COLUMN held_back TEXT NULL;
ALTER TABLE jm_notifications ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jm_notifications ADD COLUMN taken_at BIGINT NULL;
CREATE INDEX IF NOT EXISTS jm_notifications_outcome ON jm_notifications (outcome, created_at);
ALTER TABLE jm_notify_state ADD COLUMN held_id BIGINT NULL;
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (9, 'notifications outlive their service: a claim keeps what it sends until it is sent', 0);

-- migration 10: notifications wait for a webhook receiver that is down, then say what was given up
ALTER TABLE jm_notifications ADD COLUMN retry_at BIGINT NULL;
ALTER TABLE jm_notifications ADD COLUMN tries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jm_notifications ADD COLUMN channels TEXT NULL;
ALTER TABLE jm_notify_state ADD COLUMN given_up INTEGER NOT NULL DEFAULT 0;
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (10, 'notifications wait for a webhook receiver that is down, then say what was given up', 0);

-- migration 11: log lines name the service that wrote them
ALTER TABLE jm_syslog ADD COLUMN node_id TEXT NULL;
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (11, 'log lines name the service that wrote them', 0);

-- migration 12: nodes say what they share the jobs from
ALTER TABLE jm_nodes ADD COLUMN share_basis TEXT NULL;
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (12, 'nodes say what they share the jobs from', 0);

-- migration 13: log lines found by job and run through an index
ALTER TABLE jm_syslog ADD COLUMN job_id TEXT GENERATED ALWAYS AS (CASE WHEN json_valid(context) THEN CAST(json_extract(context, '$.job') AS TEXT) END) VIRTUAL;
ALTER TABLE jm_syslog ADD COLUMN run_id TEXT GENERATED ALWAYS AS (CASE WHEN json_valid(context) THEN CAST(json_extract(context, '$.run') AS TEXT) END) VIRTUAL;
CREATE INDEX IF NOT EXISTS jm_syslog_job_id ON jm_syslog (job_id);
CREATE INDEX IF NOT EXISTS jm_syslog_run_id ON jm_syslog (run_id);
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (13, 'log lines found by job and run through an index', 0);

-- migration 14: runs name the version of their job they ran
ALTER TABLE jm_runs ADD COLUMN job_updated_at BIGINT NULL;
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (14, 'runs name the version of their job they ran', 0);

-- migration 15: nodes say the boot and pid namespace their pid is of
ALTER TABLE jm_nodes ADD COLUMN boot_id TEXT NULL;
ALTER TABLE jm_nodes ADD COLUMN pid_ns BIGINT NULL;
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (15, 'nodes say the boot and pid namespace their pid is of', 0);

-- migration 16: a job may run as another user
ALTER TABLE jm_jobs ADD COLUMN `user` TEXT NULL;
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (16, 'a job may run as another user', 0);

-- migration 17: nodes say the schema version they understand
ALTER TABLE jm_nodes ADD COLUMN schema_version INTEGER NULL;
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (17, 'nodes say the schema version they understand', 0);

-- migration 18: jobs say when they were last enabled
ALTER TABLE jm_jobs ADD COLUMN enabled_at BIGINT NULL;
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (18, 'jobs say when they were last enabled', 0);

-- migration 19: nodes say when their process started since boot
ALTER TABLE jm_nodes ADD COLUMN process_start BIGINT NULL;
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (19, 'nodes say when their process started since boot', 0);
