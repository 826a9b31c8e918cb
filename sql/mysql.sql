-- jobsmanager schema for MySQL / MariaDB, version 19.
-- Generated from src/store/migrations.ts (deno task generate); jobsmanager
-- applies the same statements itself on `serve` and `db migrate`.

CREATE TABLE IF NOT EXISTS jm_schema_version (
  version INTEGER NOT NULL PRIMARY KEY,
  name VARCHAR(191) NOT NULL,
  applied_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- migration 1: jobs, reload markers, logs, runs, nodes
CREATE TABLE IF NOT EXISTS jm_jobs (
  id VARCHAR(191) NOT NULL PRIMARY KEY,
  command TEXT NOT NULL,
  `second` VARCHAR(255) NOT NULL DEFAULT '*',
  `minute` VARCHAR(255) NOT NULL DEFAULT '*',
  `hour` VARCHAR(255) NOT NULL DEFAULT '*',
  `day` VARCHAR(255) NOT NULL DEFAULT '*',
  `month` VARCHAR(255) NOT NULL DEFAULT '*',
  `day_of_week` VARCHAR(255) NOT NULL DEFAULT '*',
  timezone VARCHAR(64) NULL,
  timeout INTEGER NOT NULL DEFAULT 60,
  enabled TINYINT(1) NOT NULL DEFAULT 1,
  max_instances INTEGER NULL,
  `coalesce` TINYINT(1) NULL,
  misfire_grace_time INTEGER NULL,
  env TEXT NULL,
  cwd TEXT NULL,
  description TEXT NULL,
  created_at BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS UNSIGNED)),
  updated_at BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS UNSIGNED))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS jm_update_info (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  updated TINYINT NOT NULL DEFAULT 0,
  insert_time DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  update_time DATETIME(3) NULL,
  jobs_before_update LONGTEXT NULL,
  jobs_after_update LONGTEXT NULL,
  KEY jm_update_info_updated (updated, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS jm_syslog (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  created_at BIGINT NOT NULL,
  level VARCHAR(16) NOT NULL,
  logger_name VARCHAR(191) NOT NULL,
  message MEDIUMTEXT NOT NULL,
  context MEDIUMTEXT NULL,
  KEY jm_syslog_created_at (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS jm_runs (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  job_id VARCHAR(191) NOT NULL,
  scheduled_at BIGINT NOT NULL,
  started_at BIGINT NULL,
  finished_at BIGINT NULL,
  status VARCHAR(16) NOT NULL,
  exit_code INTEGER NULL,
  `signal` VARCHAR(16) NULL,
  stdout MEDIUMTEXT NULL,
  stderr MEDIUMTEXT NULL,
  node_id VARCHAR(191) NULL,
  `trigger` VARCHAR(16) NOT NULL,
  note TEXT NULL,
  UNIQUE (job_id, scheduled_at, `trigger`),
  KEY jm_runs_job (job_id, id),
  KEY jm_runs_status (status),
  KEY jm_runs_scheduled_at (scheduled_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS jm_nodes (
  id VARCHAR(191) NOT NULL PRIMARY KEY,
  host VARCHAR(255) NOT NULL,
  pid INTEGER NOT NULL,
  version VARCHAR(32) NOT NULL,
  started_at BIGINT NOT NULL,
  heartbeat_at BIGINT NOT NULL,
  applied_marker BIGINT NULL,
  jobs_loaded INTEGER NOT NULL DEFAULT 0,
  last_reload_at BIGINT NULL,
  last_reload_ms INTEGER NULL,
  stopped_at BIGINT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (1, 'jobs, reload markers, logs, runs, nodes', 0);

-- migration 2: jm_runs.forced: job run --force as a column
ALTER TABLE jm_runs ADD COLUMN forced TINYINT(1) NOT NULL DEFAULT 0;
UPDATE jm_runs SET forced = 1 WHERE note = 'forced: max_instances not checked';
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (2, 'jm_runs.forced: job run --force as a column', 0);

-- migration 3: jm_nodes.timezone and cancel requests in jm_runs
ALTER TABLE jm_nodes ADD COLUMN timezone VARCHAR(64) NULL;
ALTER TABLE jm_runs ADD COLUMN cancel_requested_at BIGINT NULL;
ALTER TABLE jm_runs ADD COLUMN cancel_requested_by VARCHAR(191) NULL;
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (3, 'jm_nodes.timezone and cancel requests in jm_runs', 0);

-- migration 4: jm_runs.pgid and marker; SQLite jm_jobs defaults any SQLite evaluates
ALTER TABLE jm_runs ADD COLUMN pgid INTEGER NULL;
ALTER TABLE jm_runs ADD COLUMN marker VARCHAR(36) NULL;
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (4, 'jm_runs.pgid and marker; SQLite jm_jobs defaults any SQLite evaluates', 0);

-- migration 5: several services: liveness by the database clock, markers applied per node
ALTER TABLE jm_nodes ADD COLUMN db_heartbeat_at BIGINT NULL;
ALTER TABLE jm_nodes ADD COLUMN heartbeat_ms INTEGER NULL;
ALTER TABLE jm_nodes ADD COLUMN skew_ms BIGINT NULL;
ALTER TABLE jm_nodes ADD COLUMN jobs_owned INTEGER NULL;
ALTER TABLE jm_nodes ADD COLUMN declared_dead_at BIGINT NULL;
ALTER TABLE jm_nodes ADD COLUMN declared_dead_by VARCHAR(191) NULL;
CREATE TABLE IF NOT EXISTS jm_marker_nodes (
  marker_id BIGINT NOT NULL,
  node_id VARCHAR(191) NOT NULL,
  PRIMARY KEY (marker_id, node_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (5, 'several services: liveness by the database clock, markers applied per node', 0);

-- migration 6: retries and follow-up jobs: jm_jobs retry and after columns, jm_runs attempts
ALTER TABLE jm_jobs ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jm_jobs ADD COLUMN retry_delay INTEGER NOT NULL DEFAULT 10;
ALTER TABLE jm_jobs ADD COLUMN retry_max_delay INTEGER NOT NULL DEFAULT 3600;
ALTER TABLE jm_jobs ADD COLUMN retry_on VARCHAR(191) NOT NULL DEFAULT 'failed,timeout,error,lost';
ALTER TABLE jm_jobs ADD COLUMN retry_overlap TINYINT(1) NOT NULL DEFAULT 0;
ALTER TABLE jm_jobs ADD COLUMN after_job VARCHAR(191) NULL;
ALTER TABLE jm_jobs ADD COLUMN after_outcome VARCHAR(16) NULL;
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
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  job_id VARCHAR(191) NOT NULL,
  event VARCHAR(16) NOT NULL,
  ref BIGINT NOT NULL,
  status VARCHAR(16) NOT NULL,
  created_at BIGINT NOT NULL,
  node_id VARCHAR(191) NULL,
  outcome VARCHAR(16) NOT NULL,
  UNIQUE (job_id, event, ref),
  KEY jm_notifications_created_at (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS jm_notify_state (
  job_id VARCHAR(191) NOT NULL PRIMARY KEY,
  last_sent_at BIGINT NULL,
  held_count INTEGER NOT NULL DEFAULT 0,
  held_since BIGINT NULL,
  held_statuses MEDIUMTEXT NULL,
  held_payload MEDIUMTEXT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (7, 'notifications: hooks and silence alerts per job, claims and throttling', 0);

-- migration 8: several services: a node stopping says so while it ends its runs
ALTER TABLE jm_nodes ADD COLUMN leaving_at BIGINT NULL;
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (8, 'several services: a node stopping says so while it ends its runs', 0);

-- migration 9: notifications outlive their service: a claim keeps what it sends until it is sent
ALTER TABLE jm_notifications ADD COLUMN payload MEDIUMTEXT NULL, ADD COLUMN held_back TEXT NULL, ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0, ADD COLUMN taken_at BIGINT NULL, ADD KEY jm_notifications_outcome (outcome, created_at);
ALTER TABLE jm_notify_state ADD COLUMN held_id BIGINT NULL;
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (9, 'notifications outlive their service: a claim keeps what it sends until it is sent', 0);

-- migration 10: notifications wait for a webhook receiver that is down, then say what was given up
ALTER TABLE jm_notifications ADD COLUMN retry_at BIGINT NULL, ADD COLUMN tries INTEGER NOT NULL DEFAULT 0, ADD COLUMN channels VARCHAR(32) NULL;
ALTER TABLE jm_notify_state ADD COLUMN given_up INTEGER NOT NULL DEFAULT 0;
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (10, 'notifications wait for a webhook receiver that is down, then say what was given up', 0);

-- migration 11: log lines name the service that wrote them
ALTER TABLE jm_syslog ADD COLUMN node_id VARCHAR(191) NULL;
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (11, 'log lines name the service that wrote them', 0);

-- migration 12: nodes say what they share the jobs from
ALTER TABLE jm_nodes ADD COLUMN share_basis TEXT NULL;
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (12, 'nodes say what they share the jobs from', 0);

-- migration 13: log lines found by job and run through an index
ALTER TABLE jm_syslog ADD COLUMN job_id VARCHAR(191) GENERATED ALWAYS AS (IF(JSON_VALID(context), LEFT(JSON_UNQUOTE(JSON_EXTRACT(context, '$.job')), 191), NULL)) VIRTUAL, ADD COLUMN run_id VARCHAR(32) GENERATED ALWAYS AS (IF(JSON_VALID(context), LEFT(JSON_UNQUOTE(JSON_EXTRACT(context, '$.run')), 32), NULL)) VIRTUAL;
ALTER TABLE jm_syslog ADD KEY jm_syslog_job_id (job_id), ADD KEY jm_syslog_run_id (run_id);
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (13, 'log lines found by job and run through an index', 0);

-- migration 14: runs name the version of their job they ran
ALTER TABLE jm_runs ADD COLUMN job_updated_at BIGINT NULL;
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (14, 'runs name the version of their job they ran', 0);

-- migration 15: nodes say the boot and pid namespace their pid is of
ALTER TABLE jm_nodes ADD COLUMN boot_id VARCHAR(36) NULL, ADD COLUMN pid_ns BIGINT NULL;
INSERT INTO jm_schema_version (version, name, applied_at) VALUES (15, 'nodes say the boot and pid namespace their pid is of', 0);

-- migration 16: a job may run as another user
ALTER TABLE jm_jobs ADD COLUMN `user` VARCHAR(64) NULL;
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
