/**
 * Configuration: one table of keys (doc, default, parser), loaded from a
 * JSON5 file, overridden by environment variables, overridden by flags.
 *
 * The file shape is the original project's `etc/global.json` (sections `db`,
 * `log`, `lib`, `jobsmanager`) plus our own keys, so an old file loads as is:
 * its quirks (`port: "3306"`, `coalesce: "False"`) are accepted on purpose.
 */
import { Json5Error, parseJson5 } from "./json5.ts";
import { ValidationError } from "../errors.ts";
import { LOG_LEVELS, type LogLevel, parseLogLevel } from "../domain/log_row.ts";
import { wholeNumber, wholeNumberRule } from "../domain/number.ts";
import { validateTimezone } from "../cron/croner.ts";
import { checkHookUrl } from "../domain/notify.ts";
import { charsetProblem } from "./charset.ts";
import { masked } from "../domain/secrets.ts";
import { TLS_MODES, type TlsMode } from "../store/target.ts";

type Parser<T> = (value: unknown, key: string) => T;

interface KeySpec<T> {
  /** One line, shown in the example config. */
  doc: string;
  default: T;
  parse: Parser<T>;
  /** Environment variable that overrides the file. */
  env?: string;
  /** Never echo the value, not even in an error about it. */
  secret?: boolean;
}

function fail(key: string, value: unknown, allowed: string): never {
  throw new ValidationError(key, `${key}: ${JSON.stringify(value)} is not valid (${allowed})`);
}

const text: Parser<string> = (v, key) =>
  typeof v === "string" ? v : fail(key, v, "expected a string");

/** A file name alone (log.file): not empty, and no directory in it (that is log.path's). */
const fileName: Parser<string> = (v, key) =>
  typeof v === "string" && v !== "" && v !== "." && v !== ".." && !v.includes("/")
    ? v
    : fail(key, v, "expected a file name: not empty, without a '/'; the directory is log.path");

/** The original global.json wrote numbers as strings ("3306"): wholeNumber accepts those too. */
function integer(min: number, max: number): Parser<number> {
  return (v, key) =>
    wholeNumber(v, min, max) ?? fail(key, v, `expected ${wholeNumberRule(min, max)}`);
}

function seconds(min: number, max: number): Parser<number> {
  return (v, key) => {
    const n = typeof v === "string" && /^\s*\d+(\.\d+)?\s*$/.test(v) ? Number(v) : v;
    if (typeof n !== "number" || !Number.isFinite(n) || n < min || n > max) {
      fail(key, v, `expected a number of seconds from ${min} to ${max}`);
    }
    return n;
  };
}

const boolean: Parser<boolean> = (v, key) => {
  if (typeof v === "boolean") return v;
  // The original global.json wrote Python booleans as strings ("False").
  if (typeof v === "string" && /^(true|false)$/i.test(v.trim())) {
    return v.trim().toLowerCase() === "true";
  }
  return fail(key, v, "expected true or false");
};

const logLevel: Parser<LogLevel> = (v, key) =>
  (typeof v === "string" ? parseLogLevel(v) : null) ??
    fail(key, v, `expected one of ${LOG_LEVELS.join(", ")}`);

const optionalLevel: Parser<LogLevel | ""> = (v, key) => v === "" ? "" : logLevel(v, key);

function fixed(value: string): Parser<string> {
  return (v, key) =>
    v === value
      ? value
      : fail(key, v, `jobsmanager always uses ${JSON.stringify(value)}; remove the key`);
}

/** A TLS mode, as the mysql client writes it (REQUIRED, VERIFY_CA) or as the config does. */
export function tlsMode(v: unknown, key: string): TlsMode {
  const mode = typeof v === "string" ? v.trim().toLowerCase().replaceAll("-", "_") : "";
  if ((TLS_MODES as readonly string[]).includes(mode)) return mode as TlsMode;
  if (mode === "preferred") {
    return fail(
      key,
      v,
      "jobsmanager does not fall back to plain text when TLS fails, as 'preferred' would; use required (or disabled)",
    );
  }
  return fail(key, v, `expected one of ${TLS_MODES.join(", ")}`);
}

function oneOf<T extends string>(...values: T[]): Parser<T> {
  return (v, key) =>
    values.includes(v as T) ? v as T : fail(key, v, `expected one of ${values.join(", ")}`);
}

const timezone: Parser<string> = (v, key) => {
  const tz = text(v, key);
  if (tz === "") return tz;
  try {
    return validateTimezone(tz);
  } catch (error) {
    throw new ValidationError(key, `${key}: ${(error as Error).message}`);
  }
};

/** A webhook URL (notify.*_url): http(s) or empty; the message never shows it (it may hold a token). */
const hookUrl: Parser<string> = (v, key) => {
  const url = text(v, key);
  return url === "" ? url : checkHookUrl(url, key);
};

/** notify.sendmail: a command; empty would drop every mail (no "mail off": that is notify.mailto ""). */
const sendmail: Parser<string> = (v, key) => {
  const command = text(v, key);
  if (command.trim() === "") {
    throw new ValidationError(
      key,
      `${key}: is empty, which would drop every mail; give the command that sends a mail read on stdin, e.g. "/usr/sbin/sendmail -t -oi" (the default; or "/usr/bin/msmtp -t"), or set notify.mailto to "" to send no mail`,
    );
  }
  return command;
};

/** A bearer token of the HTTP API, as configured: the token itself or a file holding it. */
export interface TokenSpec {
  token?: string;
  token_file?: string;
  role: TokenRole;
}

export const TOKEN_ROLES = ["read", "admin"] as const;
export type TokenRole = typeof TOKEN_ROLES[number];

/** Shortest token accepted: guessable ones ("admin", "changeme") are refused. */
export const MIN_TOKEN_LENGTH = 16;

/** `http.tokens`: its messages name the entry and the field, never a token's value. */
const tokens: Parser<TokenSpec[]> = (v, key) => {
  if (!Array.isArray(v)) {
    throw new ValidationError(
      key,
      `${key}: expected a list like [{ token_file: "/etc/jobsmanager/admin.token", role: "admin" }]`,
    );
  }
  return v.map((entry, i): TokenSpec => {
    const at = `${key}[${i}]`;
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      throw new ValidationError(key, `${at}: expected { token or token_file, role }`);
    }
    const unknown = Object.keys(entry).find((k) => !["token", "token_file", "role"].includes(k));
    if (unknown !== undefined) {
      throw new ValidationError(
        key,
        `${at}: unknown key '${unknown}' (known here: token, token_file, role)`,
      );
    }
    const { token, token_file, role } = entry as Record<string, unknown>;
    if ((token === undefined) === (token_file === undefined)) {
      throw new ValidationError(key, `${at}: give either token or token_file, not both or neither`);
    }
    if (token !== undefined) checkToken(token, `${at}.token`, key);
    if (token_file !== undefined && (typeof token_file !== "string" || token_file === "")) {
      throw new ValidationError(key, `${at}.token_file: expected the path of a file`);
    }
    if (!(TOKEN_ROLES as readonly unknown[]).includes(role)) {
      throw new ValidationError(
        key,
        `${at}.role: ${JSON.stringify(role)} is not valid (expected ${TOKEN_ROLES.join(" or ")})`,
      );
    }
    return { token: token as string | undefined, token_file, role: role as TokenRole };
  });
};

/** Throw unless `value` is a usable token; the message never shows it. */
export function checkToken(value: unknown, where: string, key = where): string {
  if (typeof value !== "string" || value.trim().length < MIN_TOKEN_LENGTH || /\s/.test(value)) {
    throw new ValidationError(
      key,
      `${where}: expected at least ${MIN_TOKEN_LENGTH} characters without spaces, e.g. from \`openssl rand -hex 32\` (the value is not shown)`,
    );
  }
  return value;
}

/** `http.token`: one admin token, usually from the environment; empty = none. */
const optionalToken: Parser<string> = (v, key) => v === "" ? "" : checkToken(v, key);

/** Every config key, in file order. The example config is rendered from this table. */
export const CONFIG_KEYS = {
  "db.url": {
    doc:
      "Database URL, sqlite:PATH or mysql://USER@HOST:PORT/DB; empty = built from host/port/… when host is set, else sqlite:jobsmanager.db",
    default: "",
    parse: text,
    env: "JM_DATABASE_URL",
  } as KeySpec<string>,
  "db.host": { doc: "MySQL/MariaDB host; setting it selects MySQL", default: "", parse: text },
  "db.port": { doc: "MySQL/MariaDB port", default: 3306, parse: integer(1, 65535) },
  "db.username": { doc: "MySQL/MariaDB user", default: "root", parse: text },
  "db.password": {
    doc: "MySQL/MariaDB password (better: JM_DB_PASSWORD or password_file)",
    default: "",
    parse: text,
    env: "JM_DB_PASSWORD",
    secret: true,
  },
  "db.password_file": {
    doc: "File whose first line is the password; not together with password",
    default: "",
    parse: text,
  },
  "db.database": { doc: "MySQL/MariaDB database name", default: "jobsmanager", parse: text },
  "db.charset": {
    doc:
      "Connection character set: utf8mb4 (or one of its collations), which every other would corrupt text in",
    default: "utf8mb4",
    parse: (v, key) => {
      const charset = text(v, key);
      const wrong = charsetProblem(charset);
      if (wrong === null) return charset;
      throw new ValidationError(
        key,
        `${key}: ${JSON.stringify(charset)} ${wrong}; set it to utf8mb4, or remove the key`,
      );
    },
  },
  "db.pool_size": {
    doc:
      "Most MySQL connections one pool of the service opens (the scheduler's; the HTTP side, when it listens, has its own; claims of several fires at once have two more of their own); one unused for a minute is closed",
    default: 10,
    parse: integer(1, 1000),
  },
  "db.connect_timeout": {
    doc: "Seconds to wait for a database connection before giving up",
    default: 10,
    parse: seconds(1, 600),
  },
  "db.socket": {
    doc:
      "Unix socket of a MySQL/MariaDB server on this machine, reached instead of host and port (e.g. /run/mysqld/mysqld.sock; with a user IDENTIFIED VIA unix_socket, no password); setting it selects MySQL; a URL naming another host than localhost is not reached through it; empty = TCP (in a URL: ?socket=)",
    default: "",
    parse: (v, key) => {
      const path = text(v, key);
      if (path === "" || path.startsWith("/")) return path;
      return fail(key, v, "expected the socket's absolute path, e.g. /run/mysqld/mysqld.sock");
    },
  } as KeySpec<string>,
  "db.ssl_mode": {
    doc:
      "TLS to MySQL/MariaDB, as the mysql client's --ssl-mode: disabled, required (encrypted, the server not checked), verify_ca (its certificate signed by ssl_ca, else a CA the system trusts), verify_identity (and made out to db.host); empty = verify_ca when ssl_ca is set, else disabled (in a URL: ?ssl-mode=)",
    default: "",
    parse: (v, key) => v === "" ? "" : tlsMode(v, key),
  } as KeySpec<TlsMode | "">,
  "db.ssl_ca": {
    doc:
      "PEM file of the CA(s) that sign the server's certificate; empty = the system's (in a URL: ?ssl-ca=)",
    default: "",
    parse: text,
  },
  "db.ssl_cert": {
    doc:
      "PEM client certificate file, for a user created REQUIRE X509 (with ssl_key; in a URL: ?ssl-cert=)",
    default: "",
    parse: text,
  },
  "db.ssl_key": {
    doc: "PEM private key file of ssl_cert (in a URL: ?ssl-key=)",
    default: "",
    parse: text,
  },
  "log.level": {
    doc: `Lowest level logged: ${LOG_LEVELS.join(", ")}`,
    default: "info" as LogLevel,
    parse: logLevel,
    env: "JM_LOG_LEVEL",
  },
  "log.console_level": {
    doc: "Lowest level written to stderr; empty = log.level",
    default: "" as LogLevel | "",
    parse: optionalLevel,
  },
  "log.file_level": {
    doc: "Lowest level written to the log file; empty = log.level",
    default: "" as LogLevel | "",
    parse: optionalLevel,
  },
  "log.db_level": {
    doc: "Lowest level written to the jm_syslog table; empty = log.level",
    default: "" as LogLevel | "",
    parse: optionalLevel,
  },
  "log.keep_days": {
    doc: "Days of jm_syslog rows kept; older ones are deleted by the service; 0 = keep all",
    default: 30,
    parse: integer(0, 36_500),
  },
  "log.path": {
    doc: "Directory of the log file, relative to the working directory",
    default: "log",
    parse: text,
    env: "JM_LOG_PATH",
  },
  "log.file": {
    doc: "Log file name inside log.path",
    default: "jobsmanager.log",
    parse: fileName,
  },
  "log.table": {
    doc: "Log table (fixed; kept for old configs)",
    default: "jm_syslog",
    parse: fixed("jm_syslog"),
  },
  "log.rotate.max_size": {
    doc: "Rotate the log file when it reaches this many MiB",
    default: 500,
    parse: integer(1, 1_000_000),
  },
  "log.rotate.backup_count": {
    doc: "Rotated log files kept",
    default: 7,
    parse: integer(0, 1000),
  },
  "runs.keep_days": {
    doc:
      "Days of jm_runs rows (and jm_notifications claims) kept; older ended runs are deleted by the service; 0 = keep all",
    default: 90,
    parse: integer(0, 36_500),
  },
  "changes.keep_days": {
    doc:
      "Days of jm_update_info rows (reload markers, with their before/after snapshots of the jobs changed) kept; older ones every service has applied are deleted by the service, the newest never; 0 = keep all",
    default: 90,
    parse: integer(0, 36_500),
  },
  "lib.path": {
    doc: "Ignored; kept so the original global.json loads",
    default: "lib",
    parse: text,
  },
  "jobsmanager.table": {
    doc: "Jobs table (fixed; kept for old configs)",
    default: "jm_jobs",
    parse: fixed("jm_jobs"),
  },
  "jobsmanager.timezone": {
    doc: "Time zone of jobs that name none (IANA name); empty = this machine's zone",
    default: "",
    parse: timezone,
    env: "JM_TIMEZONE",
  },
  "jobsmanager.coalesce": {
    doc: "Run several late fires of one job once, for jobs that do not say",
    default: false,
    parse: boolean,
  },
  "jobsmanager.max_instances": {
    doc: "Concurrent runs of one job, for jobs that do not say",
    default: 1,
    parse: integer(1, 10_000),
  },
  "jobsmanager.max_workers": {
    doc: "Concurrent runs across all jobs; further fires queue",
    default: 300,
    parse: integer(1, 100_000),
    env: "JM_MAX_WORKERS",
  },
  "jobsmanager.misfire_grace_time": {
    doc:
      "Seconds a fire may start late and still run, for jobs that do not say (0 counts as 0.25 s)",
    default: 1,
    parse: seconds(0, 31_536_000),
  },
  "jobsmanager.reload_interval": {
    doc:
      "Seconds between polls for reload markers, `job run` requests and cancels (each poll one indexed query); serve also polls as soon as a change is made on its machine (SQLite: the file is written; MySQL: the CLI or the API leaves a notice in notice_dir), and then only every 5 s or this, whichever is longer (on MySQL, while no other service on the database is live)",
    default: 0.5,
    parse: seconds(0.1, 3600),
    env: "JM_RELOAD_INTERVAL",
  },
  "jobsmanager.notice_dir": {
    doc:
      "Directory where the CLI and the API leave a notice of each change to a MySQL database for the services on this machine, which apply it at once; empty = /run/jobsmanager when it exists (the systemd unit makes it), else /tmp/jobsmanager-notices",
    default: "",
    parse: text,
    env: "JM_NOTICE_DIR",
  } as KeySpec<string>,
  "jobsmanager.heartbeat_interval": {
    doc: "Seconds between the service's heartbeats in jm_nodes; status calls it stale after 3",
    default: 5,
    parse: seconds(1, 3600),
  },
  "jobsmanager.shutdown_timeout": {
    doc: "Seconds running jobs get to finish on SIGTERM before they are killed",
    default: 25,
    parse: seconds(0, 3600),
  },
  "jobsmanager.kill_grace": {
    doc: "Seconds between SIGTERM and SIGKILL for a job that timed out",
    default: 5,
    parse: seconds(0, 600),
  },
  "jobsmanager.node_id": {
    doc:
      "This service's name in jm_nodes, unique among the services on one database; empty = the host name (host:2, host:3 … while a live service holds it)",
    default: "",
    parse: text,
    env: "JM_NODE_ID",
  } as KeySpec<string>,
  "jobsmanager.output_cap": {
    doc:
      "Bytes of stdout and of stderr kept per run (head and tail), as written to the database: a backslash, quote, newline or tab counts 2, a byte that is not UTF-8 (kept as \\xNN) 5",
    default: 65536,
    // Both streams of a run in one row must stay under MySQL's default 16 MiB packet
    // once mysql2 has escaped them: which is why escapes count (capture.ts).
    parse: integer(0, 4 * 1024 * 1024),
  },
  "cluster.on_database_outage": {
    doc:
      "While the database is away: run (fire the timetable's own jobs anyway) or hold (fire nothing that cannot be claimed); auto = run when every other service this one last saw in jm_nodes had stopped cleanly (none live, none dead that may start again), else hold",
    default: "auto",
    parse: oneOf("auto", "run", "hold"),
  } as KeySpec<"auto" | "run" | "hold">,
  // Notifications (issue 13): defaults for jobs that name no hook of their own.
  "notify.on_failure": {
    doc:
      "Shell command run when a run fails (failed, timeout, error, killed, lost, missed) or a job falls silent, for jobs without their own; the run as JSON on stdin, JM_* variables; empty = none",
    default: "",
    parse: text,
  } as KeySpec<string>,
  "notify.on_failure_url": {
    doc: "URL POSTed the same JSON when a run fails, for jobs without their own; empty = none",
    default: "",
    parse: hookUrl,
    env: "JM_NOTIFY_ON_FAILURE_URL",
    secret: true,
  } as KeySpec<string>,
  "notify.on_recovery": {
    doc: "Shell command run on a job's first success after a failure; empty = none",
    default: "",
    parse: text,
  } as KeySpec<string>,
  "notify.on_recovery_url": {
    doc: "URL POSTed on a job's first success after a failure; empty = none",
    default: "",
    parse: hookUrl,
    env: "JM_NOTIFY_ON_RECOVERY_URL",
    secret: true,
  } as KeySpec<string>,
  "notify.on_success": {
    doc: "Shell command run after every successful run (never held back); empty = none",
    default: "",
    parse: text,
  } as KeySpec<string>,
  "notify.on_success_url": {
    doc: "URL POSTed after every successful run (never held back); empty = none",
    default: "",
    parse: hookUrl,
    secret: true,
  } as KeySpec<string>,
  "notify.mailto": {
    doc:
      "Address(es) mailed on failures, silence and recoveries of every job, as cron's MAILTO; empty = no mail",
    default: "",
    parse: text,
    env: "JM_NOTIFY_MAILTO",
  } as KeySpec<string>,
  "notify.sendmail": {
    doc: "Command that sends a mail given on stdin with its headers (notify.mailto)",
    default: "/usr/sbin/sendmail -t -oi",
    parse: sendmail,
  } as KeySpec<string>,
  "notify.min_interval": {
    doc:
      "Seconds between two notifications of one job; those in between are held back and summarised in the next",
    default: 300,
    parse: seconds(0, 86_400),
  },
  "notify.timeout": {
    doc: "Seconds a hook command (or sendmail) may run before it is killed",
    default: 30,
    parse: seconds(1, 3600),
  },
  "notify.webhook_timeout": {
    doc: "Seconds a webhook POST may take before it counts as failed",
    default: 10,
    parse: seconds(1, 600),
  },
  "notify.webhook_retries": {
    doc:
      "Further attempts of a webhook that failed (network error, 5xx, 429), 1 s, 2 s, 4 s … apart",
    default: 3,
    parse: integer(0, 10),
  },
  "notify.give_up_after": {
    doc:
      "Seconds a notification whose webhook receiver is unreachable (network error, 5xx, 429) waits in the database, tried again up to 5 min apart, before it is given up (logged as an error, counted in the job's next one); 0 = after the webhook retries",
    default: 3600,
    parse: seconds(0, 604_800),
  },
  "notify.webhook_secret": {
    doc:
      "Key of the X-Jobsmanager-Signature header (sha256=HMAC-SHA256 of the body, hex); empty = unsigned",
    default: "",
    parse: text,
    env: "JM_NOTIFY_WEBHOOK_SECRET",
    secret: true,
  } as KeySpec<string>,
  "notify.max_concurrent": {
    doc:
      "Hooks, webhooks and mails delivered at once; more wait for a turn (beyond 1000, in the database)",
    default: 4,
    parse: integer(1, 100),
  },
  "http.listen": {
    doc:
      "Where serve answers HTTP (API, /metrics, /healthz, /readyz, dashboard), HOST:PORT or :PORT; empty = no HTTP",
    default: "",
    parse: text,
    env: "JM_HTTP_LISTEN",
  } as KeySpec<string>,
  "http.tokens": {
    doc:
      'Bearer tokens, each { token: "…" or token_file: PATH, role: "read" or "admin" }; none = loopback only, no auth, and a service run as root refuses to start',
    default: [] as TokenSpec[],
    parse: tokens,
  },
  "http.token": {
    doc: "One more admin token; better given in the environment than in this file",
    default: "",
    parse: optionalToken,
    env: "JM_HTTP_TOKEN",
    secret: true,
  },
  "http.cert": {
    doc: "PEM certificate file: serve HTTPS instead of HTTP (with http.key)",
    default: "",
    parse: text,
  },
  "http.key": { doc: "PEM private key file of http.cert", default: "", parse: text },
  "http.max_connections": {
    doc:
      "HTTP connections open at once, so that clients cannot take the descriptors runs need: at the cap a newcomer takes the place of one idle a second without a whole request in, else it is refused",
    default: 256,
    parse: integer(1, 10_000),
  },
} satisfies Record<string, KeySpec<unknown>>;

export type ConfigKey = keyof typeof CONFIG_KEYS;

const SPECS: [string, KeySpec<unknown>][] = Object.entries(CONFIG_KEYS);

/**
 * Environment variables a job must not inherit: those of the secret
 * settings (the database password, webhook URLs and their signing key, the
 * API token).
 */
const PRIVATE_ENV: readonly string[] = SPECS.flatMap(([, spec]) =>
  spec.secret && spec.env ? [spec.env] : []
);

/**
 * What systemd gives the service alone: its notify socket and watchdog
 * (daemon/sd_notify.ts), and sockets it passed (socket activation). A job
 * that runs a program speaking that protocol must not speak it for the
 * service.
 */
const SERVICE_ENV = [
  "NOTIFY_SOCKET",
  "WATCHDOG_USEC",
  "WATCHDOG_PID",
  "LISTEN_FDS",
  "LISTEN_PID",
  "LISTEN_FDNAMES",
];

/**
 * The environment a job inherits from this process's `env`: without the
 * secret settings, and with JM_DATABASE_URL without its password (a
 * relative sqlite: path made absolute), so that a job that runs the
 * jobsmanager CLI reaches the service's database, or is refused by it,
 * rather than make a new SQLite database where it runs. A URL the service
 * would refuse is left out, as it may hold a password anywhere.
 */
export function inheritedEnv(
  env: Record<string, string> = Deno.env.toObject(),
  cwd: string = Deno.cwd(),
): Record<string, string> {
  const inherited = { ...env };
  for (const name of [...PRIVATE_ENV, ...SERVICE_ENV]) delete inherited[name];
  const url = env.JM_DATABASE_URL?.trim();
  if (url === undefined || url === "") return inherited;
  const shown = databaseUrlWithoutPassword(url, cwd);
  if (shown === null) delete inherited.JM_DATABASE_URL;
  else inherited.JM_DATABASE_URL = shown;
  return inherited;
}

function databaseUrlWithoutPassword(url: string, cwd: string): string | null {
  if (url.startsWith("sqlite:")) {
    const path = url.slice("sqlite:".length);
    return path === "" || path.startsWith("/") ? url : `sqlite:${cwd}/${path}`;
  }
  if (!URL.canParse(url)) return null;
  const parsed = new URL(url);
  if (parsed.protocol !== "mysql:" && parsed.protocol !== "mariadb:") return null;
  parsed.password = "";
  // A relative TLS file, as the relative sqlite: path: the job may run elsewhere.
  parsed.search = parsed.search.replace(
    /([?&]ssl-(?:ca|cert|key)=)([^&]*)/g,
    (whole, name: string, value: string) => {
      if (value === "" || value.startsWith("/") || value.startsWith("%2F")) return whole;
      return `${name}${encodeURIComponent(cwd)}%2F${value}`;
    },
  );
  return parsed.toString();
}

/**
 * The values of the secret settings to keep out of every run's output: each
 * whole, and a URL's password and query values (a webhook's token) on their
 * own, as a job may print them apart; redactSecrets masks the long ones.
 */
export function secretValues(settings: Settings): string[] {
  const values: string[] = [];
  for (const [key, spec] of SPECS) {
    const value = settings[key as ConfigKey];
    if (!spec.secret || typeof value !== "string" || value === "") continue;
    values.push(value);
    if (!URL.canParse(value)) continue;
    const url = new URL(value);
    if (url.password !== "") values.push(decodeURIComponent(url.password));
    values.push(...url.searchParams.values());
  }
  return values;
}

/**
 * The secret settings too short for redactSecrets to mask (its
 * MIN_MASKED_LENGTH): a value, or the password of a URL, each named as
 * `serve` warns of it. The database password is the target's (which a
 * password file or the URL may give).
 */
export function unmaskedSecrets(settings: Settings): string[] {
  const found: string[] = [];
  for (const [key, spec] of SPECS) {
    const value = settings[key as ConfigKey];
    if (!spec.secret || key === "db.password" || typeof value !== "string" || value === "") {
      continue;
    }
    if (!URL.canParse(value)) {
      if (!masked(value)) found.push(key);
      continue;
    }
    const password = decodeURIComponent(new URL(value).password);
    if (password !== "" && !masked(password)) found.push(`the password in ${key}`);
  }
  return found;
}
type ValueOf<K extends ConfigKey> = (typeof CONFIG_KEYS)[K]["default"];
/** The effective settings, flat, keyed as in the file (`db.port`). */
export type Settings = { -readonly [K in ConfigKey]: ValueOf<K> };

/** Where the settings came from, for messages and `--json` output. */
export interface LoadedConfig {
  settings: Settings;
  /** The config file read, or null when none was found. */
  file: string | null;
  /**
   * Where each setting not at its default came from, for the start's log:
   * `$JM_LOG_PATH (over "log" in config /etc/…)`, `config /etc/…`, `--database`.
   */
  sources: Partial<Record<ConfigKey, string>>;
}

/** Flags that override the file and the environment. */
export interface ConfigOverrides {
  config?: string;
  database?: string;
}

export const DEFAULT_CONFIG_PATHS = ["./etc/jobsmanager.json", "/etc/jobsmanager/jobsmanager.json"];

export function defaultSettings(): Settings {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(CONFIG_KEYS)) out[key] = spec.default;
  return out as Settings;
}

/** Flatten a parsed JSON5 document into dotted keys; unknown ones go to `unknown`, each with what is known there. */
function flatten(
  doc: unknown,
  prefix: string,
  file: string,
  out: Map<string, unknown>,
  unknown: string[],
): void {
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new ValidationError(
      prefix || "config",
      `config ${file}: ${prefix || "the document"} must be an object`,
    );
  }
  const known = Object.keys(CONFIG_KEYS);
  for (const [name, value] of Object.entries(doc)) {
    const key = prefix ? `${prefix}.${name}` : name;
    if (known.includes(key)) {
      out.set(key, value);
    } else if (known.some((k) => k.startsWith(`${key}.`))) {
      flatten(value, key, file, out, unknown);
    } else {
      const siblings = known.filter((k) => k.startsWith(prefix ? `${prefix}.` : ""))
        .map((k) => k.slice(prefix ? prefix.length + 1 : 0).split(".")[0]);
      unknown.push(`'${key}' (known here: ${[...new Set(siblings)].join(", ")})`);
    }
  }
}

/** The config file to read, and whether it was found without being named (see `refuseUntrusted`). */
function findConfigFile(
  overrides: ConfigOverrides,
  env: Record<string, string | undefined>,
  searched: readonly string[],
): { path: string; named: boolean } | null {
  const explicit = overrides.config ?? env.JM_CONFIG;
  if (explicit !== undefined && explicit !== "") {
    const from = overrides.config !== undefined ? "--config" : "JM_CONFIG";
    if (isDirectory(explicit)) {
      throw new ValidationError(
        "config",
        `config file '${explicit}' (from ${from}) is a directory; name the file in it (…/jobsmanager.json)`,
      );
    }
    if (!exists(explicit)) {
      throw new ValidationError(
        "config",
        `config file '${explicit}' (from ${from}) does not exist; fix the path or drop ${from} to use the defaults`,
      );
    }
    return { path: explicit, named: true };
  }
  // A working directory closed to the caller (`sudo -u` from root's home), or an unrelated `etc`
  // in it, hides no config of this install: only a closed absolute one is an error.
  const found = searched.find((path) => exists(path, !path.startsWith("/")));
  return found === undefined ? null : { path: found, named: false };
}

/**
 * A config found without being named is read only if no other user could
 * have written it: `./etc/jobsmanager.json` is looked for in whatever
 * directory the command runs from, and a root `job run` in a directory
 * another user owns would run what that user's config points at. A file
 * named by --config or JM_CONFIG is the caller's choice, and is read.
 */
function refuseUntrusted(path: string, { uid, gid, mode }: Deno.FileInfo): void {
  if (Deno.build.os === "windows") return;
  const me = Deno.uid();
  const where = path.startsWith("./") ? ` (found in the working directory ${Deno.cwd()})` : "";
  const otherOwner = uid !== null && uid !== me && uid !== 0;
  // A group of root's or the caller's own (umask 002 with a group per user) is no other user.
  const otherGroup = gid !== null && gid !== 0 && gid !== Deno.gid() &&
    mode !== null && (mode & 0o020) !== 0;
  const worldWritable = mode !== null && (mode & 0o002) !== 0;
  if (!otherOwner && !otherGroup && !worldWritable) return;
  const why = otherOwner
    ? `is owned by uid ${uid}, neither you (uid ${me}) nor root`
    : worldWritable
    ? "is writable by every user"
    : `is writable by group ${gid}, neither yours nor root's`;
  throw new ValidationError(
    "config",
    `config file '${path}'${where} ${why}: jobsmanager does not read a config another user may have written; ${
      otherOwner ? "run from another directory" : `chmod go-w '${path}'`
    }, or name the file with --config if you trust it`,
  );
}

function isDirectory(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

/**
 * Whether a config file is at `path`. One behind a directory closed to the
 * caller (`/etc/jobsmanager` is 0750 root:jobsmanager) is not taken for
 * missing, unless `closedIsMissing`: the command would go on with the
 * defaults, on a stray database.
 */
function exists(path: string, closedIsMissing = false): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch (error) {
    if (!(error instanceof Deno.errors.PermissionDenied) || closedIsMissing) return false;
    throw new ValidationError(
      "config",
      `config file '${path}' cannot be looked at: a directory on its path is closed to you (uid ${Deno.uid()}); run as a user who may read it (root, or a member of its directory's group), or name another file with --config`,
    );
  }
}

/**
 * The text of config `file`; one found without being named is checked on
 * the handle it is read from (a link swapped between a check by path and
 * the read would pass another file's check).
 */
function readConfig(file: string, named: boolean): string {
  const handle = Deno.openSync(file);
  try {
    if (!named) refuseUntrusted(file, handle.statSync());
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(64 * 1024);
    for (let n = handle.readSync(buffer); n !== null; n = handle.readSync(buffer)) {
      chunks.push(buffer.slice(0, n));
    }
    const text = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    chunks.reduce((at, c) => (text.set(c, at), at + c.length), 0);
    return new TextDecoder().decode(text);
  } finally {
    handle.close();
  }
}

function parseFile(file: string, named: boolean): Map<string, unknown> {
  let source: string;
  try {
    source = readConfig(file, named);
  } catch (error) {
    if (error instanceof ValidationError) throw error;
    throw new ValidationError(
      "config",
      `config ${file}: cannot be read: ${(error as Error).message}`,
    );
  }
  let doc: unknown;
  try {
    doc = parseJson5(source).value;
  } catch (error) {
    if (!(error instanceof Json5Error)) throw error;
    throw new ValidationError(
      "config",
      error.syntax
        ? `config ${file}: not valid JSON5: ${error.message.replace(/^JSON5: /, "")}`
        : `config ${file}:${error.line}: ${error.message}`,
    );
  }
  const out = new Map<string, unknown>();
  const unknown: string[] = [];
  flatten(doc, "", file, out, unknown);
  // Every one at once: fixing them one run at a time is as many restarts.
  if (unknown.length > 0) {
    throw new ValidationError(
      unknown[0].slice(1, unknown[0].indexOf("'", 1)),
      `config ${file}: unknown key${unknown.length === 1 ? "" : "s"} ${unknown.join("; ")}`,
    );
  }
  return out;
}

/**
 * Load settings: defaults < file < environment < flags. Throws
 * ValidationError (exit 2) naming the key for anything malformed.
 * `searched`: where a config not named is looked for (tests name others).
 */
export function loadConfig(
  overrides: ConfigOverrides = {},
  env: Record<string, string | undefined> = Deno.env.toObject(),
  searched: readonly string[] = DEFAULT_CONFIG_PATHS,
): LoadedConfig {
  const found = findConfigFile(overrides, env, searched);
  const file = found?.path ?? null;
  const values = found ? parseFile(found.path, found.named) : new Map<string, unknown>();
  const settings: Record<string, unknown> = {};
  const sources: Record<string, string> = {};
  for (const [key, spec] of Object.entries(CONFIG_KEYS) as [string, KeySpec<unknown>][]) {
    const envValue = spec.env ? env[spec.env] : undefined;
    const where = file ? `config ${file}: ` : "";
    const parse = (value: unknown) =>
      spec.secret ? parseSecret(spec, value, key) : spec.parse(value, key);
    if (envValue !== undefined && envValue !== "") {
      settings[key] = withSource(() => parse(envValue), `environment ${spec.env}: `);
      sources[key] = values.has(key) && !spec.secret
        ? `$${spec.env}, over ${JSON.stringify(values.get(key))} in config ${file}`
        : `$${spec.env}`;
    } else if (values.has(key)) {
      settings[key] = withSource(() => parse(values.get(key)), where);
      sources[key] = `config ${file}`;
    } else {
      settings[key] = spec.default;
    }
  }
  if (overrides.database !== undefined) {
    settings["db.url"] = overrides.database;
    sources["db.url"] = "--database";
  } else {
    refuseBlankUrl(settings["db.url"] as string, (env.JM_DATABASE_URL ?? "") !== "", file);
  }
  // The file's password_file gives way to a password from above it, as any setting does: the
  // password from JM_DB_PASSWORD, or in a URL from JM_DATABASE_URL or --database.
  const urlFromAbove = overrides.database ?? env.JM_DATABASE_URL ?? "";
  if (
    settings["db.password_file"] !== "" &&
    ((env.JM_DB_PASSWORD ?? "") !== "" || urlPassword(urlFromAbove) !== "")
  ) {
    settings["db.password_file"] = "";
    delete sources["db.password_file"];
  }
  return { settings: settings as Settings, file, sources };
}

/**
 * Refuse a db.url of only blanks (from $JM_DATABASE_URL when `fromEnv`,
 * else config `file`), as `--database " "` is: empty or left out, it means
 * db.host or ./jobsmanager.db, and blanks (a variable set from an unset one,
 * `" $URL"`) would mean the same without a word, a command writing another
 * database than meant.
 */
function refuseBlankUrl(url: string, fromEnv: boolean, file: string | null): void {
  if (url === "" || url.trim() !== "") return;
  throw new ValidationError(
    "db.url",
    `${fromEnv ? "environment JM_DATABASE_URL" : `config ${file}`}: db.url: ${
      JSON.stringify(url)
    } is only blanks; give sqlite:PATH or mysql://USER@HOST:PORT/DB, or leave it ${
      fromEnv ? "unset or empty" : "out or empty"
    } to use db.host or ./jobsmanager.db`,
  );
}

/** The password in a MySQL URL; "" for none, or for text that is no URL (refused later, by its key). */
function urlPassword(url: string): string {
  try {
    return new URL(url.trim()).password;
  } catch {
    return "";
  }
}

function parseSecret(spec: KeySpec<unknown>, value: unknown, key: string): unknown {
  try {
    return spec.parse(value, key);
  } catch (error) {
    // A message that does not contain the value (a token parser's) may stand.
    const shown = typeof value === "string" ? value : JSON.stringify(value) ?? "";
    if (!(error instanceof ValidationError)) throw error;
    if (shown !== "" && !error.message.includes(shown)) throw error;
    throw new ValidationError(
      key,
      `${key}: is not valid (expected a string; the value is not shown)`,
    );
  }
}

function withSource<T>(parse: () => T, source: string): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof ValidationError) {
      throw new ValidationError(error.field, `${source}${error.message}`);
    }
    throw error;
  }
}

/** The example config file: every key, its doc line and its default. */
export function renderExampleConfig(): string {
  const lines = [
    "// jobsmanager configuration (JSON5). Every key is optional; the values below are",
    "// the defaults. Environment variables named after a key override the file, and",
    "// command-line flags (--database) override both. The original project's",
    "// etc/global.json loads as it is.",
  ];
  const open: string[] = [];
  lines.push("{");
  for (const [key, spec] of Object.entries(CONFIG_KEYS) as [string, KeySpec<unknown>][]) {
    const path = key.split(".");
    const name = path.pop()!;
    while (open.length > 0 && open.join(".") !== path.slice(0, open.length).join(".")) {
      open.pop();
      lines.push(`${"  ".repeat(open.length + 1)}},`);
    }
    while (open.length < path.length) {
      lines.push(`${"  ".repeat(open.length + 1)}${path[open.length]}: {`);
      open.push(path[open.length]);
    }
    const indent = "  ".repeat(open.length + 1);
    const env = spec.env ? ` (env ${spec.env})` : "";
    lines.push(`${indent}// ${spec.doc}${env}`);
    lines.push(`${indent}${name}: ${JSON.stringify(spec.default)},`);
  }
  while (open.length > 0) {
    open.pop();
    lines.push(`${"  ".repeat(open.length + 1)}},`);
  }
  lines.push("}");
  return lines.join("\n") + "\n";
}
