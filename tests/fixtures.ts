/** Test data shared by several test files. */

export interface OriginalDb {
  host: string;
  port: string;
  username: string;
  password: string;
  database: string;
}

/** The original project's etc/global.json, as it shipped, pointing at `db`. */
export function originalGlobalJson(db: OriginalDb = {
  host: "172.18.0.7",
  port: "3306",
  username: "root",
  password: "pass",
  database: "workflow",
}): string {
  return `{
  db: {
    host: "${db.host}",
    port: "${db.port}",
    username: "${db.username}",
    password: "${db.password}",
    database: "${db.database}",
    charset: "utf8mb4",
  },
  log: {
    path: "log",
    file: "jobsmanager.log",
    level: "debug",
    table: "jm_syslog",
    rotate: {
      max_size: 500,
      backup_count: 7,
    },
  },
  lib: {
    path: "lib",
  },
  jobsmanager: {
    table: "jm_jobs",
    coalesce: "False",
    max_instances: 1,
    max_workers: 300,
    misfire_grace_time: 1,
    timezone: "Asia/Hong_Kong",
    reload_interval: 10
  },
}
`;
}
