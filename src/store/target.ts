/**
 * Where a store points: a SQLite file or a MySQL server (resolved from the
 * settings by `config/database.ts`). `describeTarget` is the one way to
 * print a target, and it never shows the password.
 */

export interface SqliteTarget {
  kind: "sqlite";
  path: string;
}

export interface MysqlTarget {
  kind: "mysql";
  host: string;
  port: number;
  user: string;
  password: string;
  /**
   * Whether the password was written in the URL (`db.url`, --database), which
   * `describeTarget` then shows as `:***`; absent: it came from elsewhere
   * (JM_DB_PASSWORD, db.password, db.password_file) or there is none.
   */
  passwordInUrl?: boolean;
  database: string;
  charset: string;
  poolSize: number;
  connectTimeoutMs: number;
  /** TLS to the server; absent: plain text. */
  tls?: MysqlTls;
  /** The server's Unix socket, reached instead of host and port; absent: TCP. */
  socket?: string;
  /**
   * Set for a database that is not jobsmanager's, only read from (the
   * original's, named by `--from-database`): its errors name it the source
   * database and that option, and the GRANT they advise is SELECT on
   * `table` alone. Absent: jobsmanager's own.
   */
  source?: { table: string };
}

/** How far a TLS connection checks the server, as the mysql client's --ssl-mode. */
export const TLS_MODES = ["disabled", "required", "verify_ca", "verify_identity"] as const;
export type TlsMode = typeof TLS_MODES[number];

/** TLS to a MySQL server: the files' contents, read when the settings were. */
export interface MysqlTls {
  /** required: encrypted, the server unchecked; verify_ca: its certificate signed by `ca`; verify_identity: and for its host name. */
  mode: Exclude<TlsMode, "disabled">;
  /** PEM CA certificates; null: the system's. */
  ca: string | null;
  /** A client certificate and its key (PEM), for a user created REQUIRE X509; null: none. */
  cert: string | null;
  key: string | null;
}

export type DatabaseTarget = SqliteTarget | MysqlTarget;

/** Replace the password in a URL-shaped string with `***`. */
export function redactUrl(url: string): string {
  // Up to the last "@": an unencoded password may hold "/" or "@".
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/]*:).*@/i, "$1***@");
}

/**
 * A target as people see it: `mysql://root:***@127.0.0.1:3306/test`,
 * `sqlite:jobs.db`. The URL as it was given, its password `***`: a
 * password from JM_DB_PASSWORD or a password file is not shown as one in
 * the URL, which then reads as the one to give again with that password.
 */
export function describeTarget(target: DatabaseTarget): string {
  if (target.kind === "sqlite") return `sqlite:${target.path}`;
  const auth = target.passwordInUrl === true && target.password !== ""
    ? `${target.user}:***`
    : target.user;
  const params = [
    ...target.socket === undefined ? [] : [`socket=${target.socket}`],
    ...target.tls === undefined ? [] : [`ssl-mode=${target.tls.mode}`],
  ];
  const query = params.length === 0 ? "" : `?${params.join("&")}`;
  return `mysql://${auth}@${target.host}:${target.port}/${target.database}${query}`;
}

/**
 * A description (`describeTarget`'s, a store's) as a message that must lead
 * back to the database from any directory names it: a SQLite path made
 * absolute.
 */
export function absoluteDescription(description: string): string {
  return description.startsWith("sqlite:")
    ? `sqlite:${absolutePath(description.slice("sqlite:".length))}`
    : description;
}

/**
 * `path` from the root: the file's real path once it exists (links
 * resolved), else joined to the working directory. (Not node:path: the CLI
 * loads no Node module, whose first one costs ~15 ms at every start.)
 */
function absolutePath(path: string): string {
  try {
    return Deno.realPathSync(path);
  } catch {
    return path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
  }
}

/** Where a MySQL target's server is, as messages name it: its socket, or host and port. */
export function serverOf(target: MysqlTarget): string {
  return target.socket === undefined
    ? `MySQL at ${target.host}:${target.port}`
    : `MySQL at socket ${target.socket}`;
}

/**
 * Strings that must never be printed: the configured password, if any, as
 * it is and %-encoded as it appears in a URL.
 */
export function secretsOf(target: DatabaseTarget): string[] {
  if (target.kind !== "mysql" || target.password === "") return [];
  return [...new Set([target.password, encodeURIComponent(target.password)])];
}
