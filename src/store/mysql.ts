/**
 * The MySQL / MariaDB store driver: a `mysql2` pool, through its callback
 * API (its promise API captures a stack trace at every query, work for
 * nothing: our errors say where they come from). Driver errors
 * become DatabaseError with a message that says what to check; the
 * password never appears in them.
 */
import type mysql from "mysql2";
import { ContentionError, DatabaseError, isUnreachable } from "../errors.ts";
import type { Driver, ExecResult, Executor, Param, Row, SqlStatement } from "./driver.ts";
import { eachStatement, PROFILES } from "./driver.ts";
import { describeTarget, type MysqlTarget, serverOf } from "./target.ts";

/**
 * The advisory lock that keeps two migrators of `database` apart. GET_LOCK's
 * names are the whole server's: one name for all held every database's
 * migration behind one hung elsewhere on the server, for 60 s, then refused
 * it naming the wrong database. At most 64 characters: a longer one hashed.
 */
export async function migrationLock(database: string): Promise<string> {
  const name = `jobsmanager.migrate.${database}`;
  if (name.length <= 64) return name;
  const hash = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(database));
  return `jobsmanager.migrate.${
    [...new Uint8Array(hash)].map((b) => b.toString(16).padStart(2, "0")).join("").slice(0, 44)
  }`;
}
const MIGRATION_LOCK_WAIT_S = 60;
/**
 * No statement may hang longer (but the migration lock's wait): a network
 * that drops packets would otherwise hold a query, and whoever awaits it,
 * for TCP's many minutes.
 */
const QUERY_TIMEOUT_MS = 30_000;

/** How long the ask to stop a statement given up may take (see `MysqlDriver.stopAbandoned`). */
const KILL_TIMEOUT_MS = 5000;
/** Statements given up waiting to be stopped, at most; those beyond end in the server's time. */
const MAX_KILLS_WAITING = 64;

/** Prepared statements a connection keeps (see `MysqlDriver.executed`). */
const PREPARED_KEPT = 8;

/** The error of a statement that got no answer in time, as mysql2 makes it for a query. */
function noAnswer(): Error {
  return Object.assign(new Error("Query inactivity timeout"), {
    code: "PROTOCOL_SEQUENCE_TIMEOUT",
  });
}

/**
 * Runs of a transaction InnoDB may pick as a deadlock victim before it is
 * given up: 8 clients adding jobs at once lost one write in 5 with 3 runs
 * back to back, each run meeting the same others again.
 */
const DEADLOCK_ATTEMPTS = 10;

/**
 * The longest wait before a deadlock victim runs again; the n-th wait is a
 * random time up to 5 ms × 2ⁿ, below this, so that the transactions that
 * met do not meet again in step.
 */
const DEADLOCK_BACKOFF_MAX_MS = 250;

type Queryable = mysql.Pool | mysql.PoolConnection;

/** `fn`'s callback as a promise. */
function settled<T>(fn: (done: (error: unknown, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) =>
    fn((error, value) => error ? reject(error) : resolve(value as T))
  );
}

interface DriverError {
  code?: string;
  errno?: number;
  message?: string;
  /** mysql2: the error broke the connection. */
  fatal?: boolean;
  /** The server's SQLSTATE: class 08 is a connection exception. */
  sqlState?: string;
}

/**
 * mysql2's pool destroys a connection a read-only error came on
 * (ER_OPTION_PREVENTS_STATEMENT, ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION,
 * ER_READ_ONLY_MODE): after a failover the next one may reach the new
 * writer. Kept, as the pool's own query did before this driver gave its
 * connections back itself.
 */
const READ_ONLY_ERRNOS = new Set([1290, 1792, 1836]);

/**
 * Whether the driver error under `error` (as explainMysqlError wraps it,
 * or not yet) left its connection unfit for another statement: one the
 * driver says broke it (fatal, a closed state), or one after which the
 * server closes it (SQLSTATE class 08: a packet over max_allowed_packet,
 * ER_NET_PACKET_TOO_LARGE, is answered, then the connection closed; given
 * back to the pool, the next statement on it failed "Can't add new
 * command when connection is in closed state", which counted as an outage).
 */
function breaksConnection(error: unknown): boolean {
  const e = (error instanceof DatabaseError ? error.cause : error) as DriverError | undefined;
  if (e === undefined || e === null) return false;
  return e.fatal === true || e.code === "ER_NET_PACKET_TOO_LARGE" ||
    (e.sqlState?.startsWith("08") ?? false) || READ_ONLY_ERRNOS.has(e.errno ?? 0);
}

/** How mysql2 reaches `target`'s server: its socket, or host and port. */
function address(target: MysqlTarget): { socketPath: string } | { host: string; port: number } {
  return target.socket === undefined
    ? { host: target.host, port: target.port }
    : { socketPath: target.socket };
}

/**
 * mysql2's TLS options for `target` (config/database.ts resolves them);
 * none: plain text. Without a CA of its own, the system's (what
 * update-ca-certificates installs, or SSL_CERT_FILE names): Node's TLS
 * would trust only the roots it was built with. A client certificate and
 * a key that are not a pair are refused here, saying so: the server would
 * say only that the handshake failed.
 */
async function sslOptions(target: MysqlTarget): Promise<mysql.SslOptions | undefined> {
  const tls = target.tls;
  if (tls === undefined) return undefined;
  let client = {};
  if (tls.cert !== null && tls.key !== null) {
    const { createPrivateKey, X509Certificate } = await import("node:crypto");
    let paired: boolean;
    try {
      paired = new X509Certificate(tls.cert).checkPrivateKey(createPrivateKey(tls.key));
    } catch (error) {
      throw new DatabaseError(
        `the client certificate (db.ssl_cert, or the URL's ssl-cert) or its key (db.ssl_key, ssl-key) cannot be read: ${
          (error as Error).message
        }`,
        { cause: error, turnedAway: true },
      );
    }
    if (!paired) {
      throw new DatabaseError(
        "the client certificate (db.ssl_cert, or the URL's ssl-cert) and the key (db.ssl_key, ssl-key) are not a pair: give the key the certificate was made for",
        { turnedAway: true },
      );
    }
    client = { cert: tls.cert, key: tls.key };
  }
  if (tls.mode === "required") return { ...client, rejectUnauthorized: false };
  const system = () =>
    import("node:tls").then((nodeTls) =>
      (nodeTls as unknown as { getCACertificates(kind: "system"): string[] })
        .getCACertificates("system")
    );
  return {
    ...client,
    ca: tls.ca ?? await system(),
    rejectUnauthorized: true,
    verifyIdentity: tls.mode === "verify_identity",
  };
}

/** What a TLS alert from the server (`received fatal alert: UnknownCA`) says of this client's certificate. */
const CLIENT_CERTIFICATE_ALERT =
  /alert:? *(UnknownCA|BadCertificate|CertificateRequired|CertificateUnknown|UnsupportedCertificate|CertificateExpired|CertificateRevoked)/i;

/**
 * What an operator does about a TLS handshake that failed (`message`:
 * Node's, such as "self-signed certificate in certificate chain").
 */
function tlsAdvice(message: string, target: MysqlTarget): string {
  if (/altname|does not match|hostname/i.test(message)) {
    return `the server's certificate is not made out to '${target.host}'; connect by a name it holds, or set ssl-mode to verify_ca (which checks who signed it, not the name)`;
  }
  if (/expired|not yet valid/i.test(message)) {
    return "renew the server's certificate (ssl_cert on the server)";
  }
  if (/self.signed|issuer|verify|unknown ca|untrusted/i.test(message)) {
    return `the server's certificate is not signed by ${
      target.tls?.ca
        ? "a CA in db.ssl_ca (or the URL's ssl-ca)"
        : "a CA this system trusts (update-ca-certificates, or SSL_CERT_FILE)"
    }; set db.ssl_ca (ssl-ca= in the URL) to the CA file that signed it, or ssl-mode to required to encrypt without checking the server`;
  }
  return "check the server's TLS settings (ssl_cert, ssl_key, tls_version) and db.ssl_*";
}

/** Turn a driver error into one an operator can act on. */
export function explainMysqlError(error: unknown, target: MysqlTarget): Error {
  if (error instanceof DatabaseError) return error;
  const e = error as DriverError;
  const source = target.source !== undefined;
  const where = source ? `${serverOf(target)} (the source database)` : serverOf(target);
  const options = { cause: error, ofSource: source };
  const turnedAway = { ...options, turnedAway: true };
  // MariaDB's number for a locked account (4151) is another error's in MySQL, whose name mysql2 gives it.
  const code = e.errno === 4151 && /locked/i.test(e.message ?? "")
    ? "ER_ACCOUNT_HAS_BEEN_LOCKED"
    : e.code;
  switch (code) {
    case "ECONNREFUSED":
      return new DatabaseError(
        `cannot connect to ${where}: connection refused; is the server running, and ${
          source
            ? `is ${FROM_DATABASE} right?`
            : target.socket === undefined
            ? "are db.host/db.port (or --database) right?"
            : "is db.socket (or the URL's socket) right?"
        }`,
        options,
      );
    case "ENOENT":
      return new DatabaseError(
        `cannot connect to ${where}: no such socket; is the server running on this machine, and is ${
          source ? `the socket in ${FROM_DATABASE}` : "db.socket (or the URL's socket)"
        } its socket (SELECT @@socket tells)?`,
        options,
      );
    case "EACCES":
      return new DatabaseError(
        `cannot connect to ${where}: this user may not open the socket (permission denied); let it into the socket's directory, or connect by host and port`,
        turnedAway,
      );
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return new DatabaseError(
        `cannot connect to ${where}: host '${target.host}' not found; check ${
          source ? FROM_DATABASE : "db.host"
        }`,
        options,
      );
    case "ETIMEDOUT":
      return new DatabaseError(
        `cannot connect to ${where}: no answer within ${
          target.connectTimeoutMs / 1000
        } s; check the address and any firewall`,
        options,
      );
    case "ER_DBACCESS_DENIED_ERROR":
      // The password was right: the user may do nothing in that database. A source is only read.
      if (source) {
        return new DatabaseError(
          `${where} refused user '${target.user}' database '${target.database}' (access denied: it has no privilege there); ${
            grantAdvice(target)
          }`,
          { ...options, unreachable: false, readsRefused: true },
        );
      }
    // falls through: jobsmanager's own database says it as any login refused.
    case "ER_ACCESS_DENIED_ERROR":
    // MariaDB's, for a user without a password or unknown (1698).
    case "ER_ACCESS_DENIED_NO_PASSWORD_ERROR":
      return new DatabaseError(
        `${where} rejected the login of user '${target.user}' to database '${target.database}' (access denied); check ${
          source
            ? `the user and password in ${FROM_DATABASE}`
            : "db.username and the password (JM_DB_PASSWORD, db.password_file or the URL)"
        }${
          target.tls === undefined
            ? ` (a server or user that requires TLS refuses a plain login so too: see ${
              source ? `ssl-mode in ${FROM_DATABASE}` : "db.ssl_mode"
            })`
            : target.tls.cert === null
            ? "; a user created REQUIRE X509 (or SUBJECT, ISSUER) is refused so too without a client certificate: then set db.ssl_cert and db.ssl_key (?ssl-cert=, ?ssl-key=)"
            : ""
        }`,
        turnedAway,
      );
    case "ER_SECURE_TRANSPORT_REQUIRED":
      return new DatabaseError(
        `${where} refused a connection without TLS (require_secure_transport); set db.ssl_mode (?ssl-mode= in the URL) to verify_identity, verify_ca or required`,
        turnedAway,
      );
    case "HANDSHAKE_NO_SSL_SUPPORT":
      return new DatabaseError(
        `${where} does not offer TLS, which ssl-mode ${target.tls?.mode} asks for; set it up on the server (ssl_cert, ssl_key), or set ssl-mode to disabled to connect in plain text`,
        turnedAway,
      );
    case "HANDSHAKE_SSL_ERROR":
      return new DatabaseError(
        `cannot connect to ${where}: TLS failed (${e.message ?? "no detail"}); ${
          tlsAdvice(e.message ?? "", target)
        }`,
        turnedAway,
      );
    case "ER_ACCOUNT_HAS_BEEN_LOCKED":
      return new DatabaseError(
        `${where} rejected the login of user '${target.user}': the account is locked; unlock it with ALTER USER '${target.user}'@'<its host>' ACCOUNT UNLOCK`,
        turnedAway,
      );
    case "ER_MUST_CHANGE_PASSWORD_LOGIN":
      return new DatabaseError(
        `${where} rejected the login of user '${target.user}': its password has expired; set a new one with ALTER USER '${target.user}'@'<its host>' IDENTIFIED BY '...', and give it to jobsmanager (JM_DB_PASSWORD, db.password_file or the URL)`,
        turnedAway,
      );
    case "ER_CON_COUNT_ERROR":
      return new DatabaseError(
        `${where} refused the connection: it has too many connections (max_connections); raise max_connections, or lower db.pool_size of the services that share it`,
        options,
      );
    case "ER_USER_LIMIT_REACHED":
      if (/max_user_connections/.test(e.message ?? "")) {
        const allowed = e.message?.match(/current value: (\d+)/)?.[1] ?? "fewer";
        return new DatabaseError(
          `${where} refused user '${target.user}' a connection: it may hold ${allowed} at once (max_user_connections), and each side of a service (the scheduler, the HTTP API) opens up to ${
            connectionsOf(target)
          } (db.pool_size ${target.poolSize}, and ${BATCH_CONNECTIONS} for claims); raise it (ALTER USER '${target.user}'@'<its host>' WITH MAX_USER_CONNECTIONS ${
            2 * connectionsOf(target)
          }), or lower db.pool_size; meanwhile the service keeps to the connections it has`,
          options,
        );
      }
      // An hourly limit (queries, updates, connections): the server says which.
      return new DatabaseError(
        `${where} refused user '${target.user}': it reached one of its resource limits (${
          e.message ?? "no detail"
        }); raise that limit (ALTER USER ... WITH ...), or wait for an hourly one to reset`,
        options,
      );
    case "ER_TOO_MANY_USER_CONNECTIONS":
      return new DatabaseError(
        `${where} refused the connection: user '${target.user}' has as many connections as it may (max_user_connections); raise that limit, or lower db.pool_size of the services that share the user`,
        options,
      );
    case "ER_HOST_IS_BLOCKED":
      return new DatabaseError(
        `${where} refused the connection: this host is blocked after too many failed connections; unblock it with FLUSH HOSTS (and see max_connect_errors)`,
        turnedAway,
      );
    case "ER_HOST_NOT_PRIVILEGED":
      return new DatabaseError(
        `${where} refused the connection: this host may not connect; create the user for it (CREATE USER '${target.user}'@'<this host>') or use one that may`,
        turnedAway,
      );
    case "ER_BAD_DB_ERROR":
      return new DatabaseError(
        `database '${target.database}' does not exist on ${where}; create it with: CREATE DATABASE \`${target.database}\` CHARACTER SET utf8mb4`,
        turnedAway,
      );
    case "PROTOCOL_CONNECTION_LOST":
    case "ECONNRESET":
    case "ECONNABORTED":
    case "EPIPE":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
    case "ER_SERVER_SHUTDOWN":
      return new DatabaseError(`lost the connection to ${where}; is the server running?`, options);
    case "ER_CONNECTION_KILLED":
      // The server answers: "is it running?" sent people looking in the wrong place.
      return new DatabaseError(
        `${where} killed the connection (an administrator's KILL, or a server timeout such as wait_timeout), and with it the statement, which may or may not have finished; run the command again`,
        options,
      );
    case "PROTOCOL_SEQUENCE_TIMEOUT":
      return new DatabaseError(
        `no answer from ${where} within the statement's timeout; is the server overloaded, or the network dropping packets?`,
        options,
      );
  }
  const alert = e.message?.match(CLIENT_CERTIFICATE_ALERT);
  if (alert) {
    return new DatabaseError(
      `${where} refused this client's TLS certificate (${alert[1]}): ${
        target.tls?.cert
          ? "give db.ssl_cert and db.ssl_key (ssl-cert=, ssl-key= in the URL) a certificate signed by a CA the server trusts (its ssl_ca), made out to this user"
          : "it asks for one: set db.ssl_cert and db.ssl_key (ssl-cert=, ssl-key= in the URL)"
      }`,
      turnedAway,
    );
  }
  // The connection broke (the driver says so): whether the statement was done is unknown.
  if (e.fatal === true) {
    return new DatabaseError(
      `lost the connection to ${where}: ${e.message ?? String(error)}`,
      options,
    );
  }
  // The server answered: the statement itself was refused.
  const denied = PRIVILEGE_DENIED.has(code);
  const advice = denied ? `; ${grantAdvice(target)}` : "";
  // A SELECT denied is a read refused (an UPDATE's WHERE reads too), not a write; and whatever a
  // source denies (SHOW CREATE TABLE too): it is only read.
  const readDenied = denied && (source || /^SELECT command denied/.test(e.message ?? ""));
  return new DatabaseError(`${describeTarget(target)}: ${e.message ?? String(error)}${advice}`, {
    ...options,
    unreachable: false,
    unstorable: UNSTORABLE.has(code),
    writesRefused: WRITES_REFUSED.has(code) || (denied && !readDenied),
    readsRefused: readDenied,
  });
}

/** Refusals of a statement for a privilege the user lacks (`CREATE command denied to user …`). */
const PRIVILEGE_DENIED = new Set<string | undefined>([
  "ER_TABLEACCESS_DENIED_ERROR",
  "ER_COLUMNACCESS_DENIED_ERROR",
]);

/** Where an import source's address was given, as its errors' advice names it. */
const FROM_DATABASE = "the URL given to --from-database";

/**
 * What the user needs, as the README's "The MySQL user" grants it; of a
 * source, SELECT on the one table read.
 */
function grantAdvice(target: MysqlTarget): string {
  if (target.source !== undefined) {
    return `user '${target.user}' needs SELECT on the table read (and nothing more: the import only reads it): GRANT SELECT ON \`${target.database}\`.\`${target.source.table}\` TO '${target.user}'@'<its host>'`;
  }
  return `user '${target.user}' needs SELECT, INSERT, UPDATE, DELETE on jobsmanager's database, and CREATE, ALTER, INDEX too to create or upgrade its tables (db migrate, serve, the commands that add jobs): GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON \`${target.database}\`.* TO '${target.user}'@'<its host>'`;
}

/**
 * Refusals of the values a statement carries: too long for a column, a
 * packet over max_allowed_packet, a string the column's character set
 * cannot hold (also what strict mode says of a long text cut inside a
 * character).
 */
const UNSTORABLE = new Set<string | undefined>([
  "ER_DATA_TOO_LONG",
  "ER_NET_PACKET_TOO_LARGE",
  "ER_TRUNCATED_WRONG_VALUE_FOR_FIELD",
]);

/**
 * Refusals of every write until someone acts on the server: a table or
 * its tablespace full, the disk full, the server read-only; and a write
 * privilege the user lacks (revoked, or a GRANT left out: nothing is
 * recorded until it is granted, though the server answers). A read
 * refused is not one: the next heartbeat written would say writes are
 * taken again, and a read denied is no write refused.
 */
const WRITES_REFUSED = new Set<string | undefined>([
  "ER_RECORD_FILE_FULL",
  "ER_DISK_FULL",
  "ER_OPTION_PREVENTS_STATEMENT",
]);

/** mysql2's code for the error under `error` (as explainMysqlError wraps it). */
function driverCode(error: unknown): string | undefined {
  return ((error as Error).cause as DriverError | undefined)?.code;
}

/** Whether `error` (as explainMysqlError wraps it) says the database named does not exist. */
export function isNoSuchDatabase(error: unknown): boolean {
  return driverCode(error) === "ER_BAD_DB_ERROR";
}

function isDeadlock(error: unknown): boolean {
  return !(error instanceof ContentionError) && driverCode(error) === "ER_LOCK_DEADLOCK";
}

/** Refusals of a new connection for want of room: the server's max_connections, a user's. */
/** A refusal for the user's own connection limit (max_user_connections), not the server's. */
function userLimit(error: DriverError): boolean {
  return error.code === "ER_TOO_MANY_USER_CONNECTIONS" ||
    (error.code === "ER_USER_LIMIT_REACHED" && /max_user_connections/.test(error.message ?? ""));
}

const CONNECTION_LIMITS = new Set<string | undefined>([
  "ER_CON_COUNT_ERROR",
  "ER_TOO_MANY_USER_CONNECTIONS",
  "ER_USER_LIMIT_REACHED",
]);

/**
 * Run `fn` again, after a short random wait, while InnoDB rolls it back as a
 * deadlock victim, DEADLOCK_ATTEMPTS times at most; then a ContentionError
 * (nothing was written: the caller may try again).
 */
async function againIfDeadlocked<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (!isDeadlock(error)) throw error;
      if (attempt >= DEADLOCK_ATTEMPTS) {
        throw new ContentionError(
          `the database chose this write as a deadlock victim ${attempt} times (other writes at once wanted the same rows); nothing was written: try again (${
            (error as Error).message
          })`,
          { cause: error },
        );
      }
      const ceiling = Math.min(DEADLOCK_BACKOFF_MAX_MS, 5 * 2 ** attempt);
      await new Promise((resolve) => setTimeout(resolve, Math.random() * ceiling));
    }
  }
}

/**
 * A pooled connection unused this long is closed (looked for as often): a
 * connection that died unseen (a NAT or proxy that forgot it) is not kept,
 * and idle services do not hold connections for hours.
 */
const IDLE_CLOSE_MS = 60_000;

/**
 * Close `pool`'s connections idle for `idleMs`; returns what stops it.
 * mysql2 does this itself only with `maxIdle` below the pool's size, on a
 * timer every second that cost an idle service more than its queries.
 */
function closeIdle(pool: mysql.Pool, idleMs: number): () => void {
  const idleSince = new Map<mysql.PoolConnection, number>();
  pool.on("release", (connection) => idleSince.set(connection, Date.now()));
  pool.on("acquire", (connection) => idleSince.delete(connection));
  const timer = setInterval(() => {
    const now = Date.now();
    for (const [connection, since] of idleSince) {
      if (now - since < idleMs) continue;
      idleSince.delete(connection);
      connection.destroy();
    }
  }, idleMs);
  Deno.unrefTimer(timer);
  return () => clearInterval(timer);
}

/**
 * Row parsers mysql2 keeps, one per shape of result (our statements make a
 * few dozen); its default room, 15,000, is made up front (0.5 MiB).
 */
const PARSERS_KEPT = 256;

/**
 * What every connection sets for itself before its first statement:
 * whatever the server's defaults (`SET GLOBAL`, `init_connect`, my.cnf),
 * the statements behave as written. Left to the server:
 * - `NO_BACKSLASH_ESCAPES` in sql_mode: mysql2 escapes values with
 *   backslashes, so a quote in a command failed the write, and a job's
 *   output holding `' -- ` ended a run's UPDATE early, its WHERE commented
 *   out: every row of jm_runs overwritten; without strict mode, values cut
 *   silently;
 * - `autocommit=0` or `completion_type=CHAIN`: writes left in transactions
 *   never committed, holding their locks (fires lost, a clean stop undone);
 * - `sql_select_limit`: jobs beyond it never loaded, with no word (DEFAULT
 *   would be the server's: the limit is set to the largest);
 * - a `time_zone` with daylight saving: `UNIX_TIMESTAMP(NOW(3))`, the
 *   database's clock the cluster reads, an hour behind for an hour;
 * - a server that ignores the client's character set
 *   (`skip-character-set-client-handshake`): 😀 stored as `????`;
 * - `sql_safe_updates`: retention's deletes refused;
 * - a `wait_timeout` below the pool's own idle close (`closeIdle`): the
 *   server closed idle connections first, each an error and an outage;
 * - `sql_quote_show_create` off: SHOW CREATE TABLE, which the schema
 *   check reads columns from (driver.ts), quotes only the names that are
 *   keywords, and the check saw none of the others (the original
 *   JobsManager's table then read as none, and was migrated over);
 * - the isolation level: the claims and checks were written and tested
 *   under REPEATABLE READ, InnoDB's default (SERIALIZABLE makes every read
 *   a locking one, READ UNCOMMITTED reads what may be rolled back).
 */
function sessionSql(charset: string): string[] {
  const [name, ...collation] = charset.trim().toLowerCase().split("_");
  // `charset` is utf8mb4 or one of its collations (charset.ts): nothing else reaches here.
  const names = collation.length === 0 ? name : `${name} COLLATE ${charset.trim().toLowerCase()}`;
  return [
    // Its own statement: the variable is tx_isolation on MariaDB before 11.1, transaction_isolation on MySQL 8.
    "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    `SET NAMES ${names}, time_zone = '+00:00', sql_mode = '${SESSION_SQL_MODE}', autocommit = 1, completion_type = 0, sql_select_limit = 18446744073709551615, sql_safe_updates = 0, sql_quote_show_create = 1, wait_timeout = GREATEST(@@GLOBAL.wait_timeout, ${
      IDLE_CLOSE_MS / 1000 * 2
    })`,
  ];
}

/** MariaDB's default sql_mode, in words MySQL 8 knows too. */
const SESSION_SQL_MODE = "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION";

/** Connections for `batch` (see MysqlDriver), beside the pool's `poolSize`. */
export const BATCH_CONNECTIONS = 2;

/** Connections a driver on `target` opens at most. */
function connectionsOf(target: MysqlTarget): number {
  return target.poolSize + BATCH_CONNECTIONS;
}

/** mysql2's pool, as far as `MysqlDriver.acquire` reads and sets it (none of it is in its types). */
interface PoolInternals {
  config: { connectionLimit: number };
  _allConnections: { length: number };
  _freeConnections: { length: number; get(index: number): mysql.PoolConnection };
}

export class MysqlDriver implements Driver {
  readonly profile = PROFILES.mysql;
  readonly description: string;
  readonly connections: number;
  /** Set once a migration under `withMigrationLock` made jobsmanager's schema (see `created`). */
  #created = false;
  /** Made on first use: loading mysql2 is most of a short command's start on SQLite. */
  #pool: Promise<mysql.Pool> | null = null;
  /**
   * Connections for `batch`, which sends several statements as one
   * query: a capability kept off the connections every other statement
   * uses. Two: a batch (an instant's claim) never waits for a connection
   * behind the others' statements.
   */
  #batchPool: Promise<mysql.Pool> | null = null;
  #ssl: Promise<mysql.SslOptions | undefined> | null = null;

  /** mysql2's TLS options (see `sslOptions`), made once for every pool and connection. */
  private get ssl(): Promise<mysql.SslOptions | undefined> {
    this.#ssl ??= sslOptions(this.target);
    return this.#ssl;
  }
  /** Batches go statement by statement: the server (or a proxy before it) refused one whole. */
  #oneByOne = false;
  /**
   * Cleared when the server first refuses a connection for want of room
   * (see `acquire`): batches run on the pool's connections from then on.
   */
  #batchRoom = true;
  /**
   * Connections a statement's error left unfit for another (see
   * `breaksConnection`; an outage's too, whose answer may never come):
   * `giveBack` destroys them, the pool opens new ones as needed.
   */
  #broken = new WeakSet<mysql.PoolConnection>();
  /** Threads whose statement was given up, still to be asked to stop (see `stopAbandoned`). */
  #toKill = new Set<number>();
  /** The asks on their way; null when none is. */
  #killing: Promise<void> | null = null;
  /** Connections whose session is set (see `sessionSql`). */
  #set = new WeakSet<mysql.PoolConnection>();

  #stopClosingIdle: (() => void)[] = [];

  /**
   * `idleCloseMs`, `queryTimeoutMs`: tests shorten them. `multiStatements`
   * false: the batch connections do not ask for several statements a
   * query, as where a proxy before the server refuses them (a test's).
   */
  constructor(
    private readonly target: MysqlTarget,
    private readonly idleCloseMs = IDLE_CLOSE_MS,
    private readonly multiStatements = true,
    private readonly queryTimeoutMs = QUERY_TIMEOUT_MS,
  ) {
    this.description = describeTarget(target);
    this.connections = connectionsOf(target);
  }

  /**
   * Whether this driver made jobsmanager's schema in a database that held
   * none of it (see `Store.created`): its `withMigrationLock` found no
   * jm_schema_version, and the migration under it succeeded. The database
   * itself is made by hand, before.
   */
  get created(): boolean {
    return this.#created;
  }

  private get pool(): Promise<mysql.Pool> {
    this.#pool ??= this.newPool(this.target.poolSize, false);
    return this.#pool;
  }

  private get batchPool(): Promise<mysql.Pool> {
    this.#batchPool ??= this.newPool(BATCH_CONNECTIONS, this.multiStatements);
    return this.#batchPool;
  }

  private newPool(connections: number, multipleStatements: boolean): Promise<mysql.Pool> {
    return Promise.all([import("mysql2"), this.ssl]).then(([{ default: mysql }, ssl]) => {
      mysql.setMaxParserCache(PARSERS_KEPT);
      return mysql.createPool({
        ...address(this.target),
        user: this.target.user,
        password: this.target.password,
        database: this.target.database,
        charset: this.target.charset,
        ssl,
        connectionLimit: connections,
        connectTimeout: this.target.connectTimeoutMs,
        supportBigNumbers: true,
        // Without FOUND_ROWS, a duplicate that `ON DUPLICATE KEY UPDATE id = id`
        // leaves alone counts 0 affected rows, which is how a claim tells it lost.
        flags: ["-FOUND_ROWS"],
        dateStrings: true,
        // Idle ones are closed by closeIdle, not by mysql2's timer.
        maxIdle: connections,
        enableKeepAlive: true,
        // Only the reads of jm_jobs are prepared (`executed`), six
        // statements; the cache's room is made up front (its default,
        // 16,000 slots, is 0.5 MiB a connection).
        maxPreparedStatements: PREPARED_KEPT,
        multipleStatements,
      });
    }).then((pool) => {
      this.#stopClosingIdle.push(closeIdle(pool, this.idleCloseMs));
      return pool;
    });
  }

  /**
   * `sql` on `on`: a connection held (a transaction's), or one of the
   * pool's for this statement alone, given back after it (see `giveBack`).
   */
  private async query(
    on: Queryable,
    sql: string,
    params: Param[],
    timeout = this.queryTimeoutMs,
  ): Promise<unknown> {
    const conn = "release" in on ? on : await this.connection();
    let result: unknown;
    try {
      result = await settled((done) => conn.query({ sql, timeout }, params, done));
    } catch (caught) {
      this.stopAbandoned(conn, caught);
      const error = explainMysqlError(caught, this.target);
      if (isUnreachable(error) || breaksConnection(caught)) this.#broken.add(conn);
      if (conn !== on) this.giveBack(conn);
      throw error;
    }
    if (conn !== on) this.giveBack(conn);
    return result;
  }

  /**
   * The statement on `conn` got no answer in time and was given up: ask
   * the server to stop it (KILL QUERY), or it runs on there, and a check
   * repeated meanwhile piled them up (5 at once were seen, each 55-100 s).
   * Never awaited: with the server away, the ask fails as the statement
   * did. Several given up at once are each asked for, in turn, on a
   * connection of its own outside the pools (a full pool would hold it
   * back), up to MAX_KILLS_WAITING.
   */
  private stopAbandoned(conn: mysql.PoolConnection, caught: unknown): void {
    const thread = conn.threadId;
    if ((caught as { code?: unknown })?.code !== "PROTOCOL_SEQUENCE_TIMEOUT") return;
    if (thread === null || thread === undefined || this.#toKill.size >= MAX_KILLS_WAITING) return;
    this.#toKill.add(Number(thread));
    this.startKilling();
  }

  private startKilling(): void {
    this.#killing ??= this.killAbandoned().finally(() => {
      this.#killing = null;
      // Given up while the last ask was on its way out.
      if (this.#toKill.size > 0) this.startKilling();
    });
  }

  private async killAbandoned(): Promise<void> {
    let killer: mysql.Connection | null = null;
    try {
      const [{ default: mysql }, ssl] = await Promise.all([import("mysql2"), this.ssl]);
      killer = mysql.createConnection({
        ...address(this.target),
        user: this.target.user,
        password: this.target.password,
        ssl,
        connectTimeout: this.target.connectTimeoutMs,
      });
      killer.on("error", () => {});
      for (const thread of this.#toKill) {
        this.#toKill.delete(thread);
        await settled((done) =>
          killer!.query({ sql: `KILL QUERY ${thread}`, timeout: KILL_TIMEOUT_MS }, done)
        ).catch(() => undefined);
      }
    } catch {
      // The server is away: the statements given up end with their connections, in its time.
      this.#toKill.clear();
    } finally {
      killer?.destroy();
    }
  }

  /**
   * Give `conn` back to the pool, or destroy it when an error left it
   * unfit (`#broken`). (One the server closed while idle, mysql2's pool
   * drops by itself.)
   */
  private giveBack(conn: mysql.PoolConnection): void {
    if (this.#broken.has(conn)) conn.destroy();
    else conn.release();
  }

  /**
   * `sql`'s rows as arrays of values, from a prepared statement: mysql2
   * reads an execution's binary rows in about half the time of a query's
   * text ones (a reload's 20 reads of 500 jobs, warm: 17-30 ms against
   * 45-70). A connection prepares each statement once. mysql2's timeout
   * counts from the execution, not from the prepare before it: the call is
   * bounded here, and a connection whose answer is late or lost goes, so
   * that nothing waits behind it. Whole numbers go as text: mysql2 sends a
   * number as a DOUBLE, which MySQL 8.0.22 and later refuse for LIMIT.
   */
  private async executed(on: Queryable, sql: string, params: Param[]): Promise<unknown[][]> {
    const conn = "release" in on ? on : await this.connection();
    const late = Promise.withResolvers<never>();
    const timer = setTimeout(() => late.reject(noAnswer()), this.queryTimeoutMs);
    try {
      const rows = await Promise.race([
        settled((done) =>
          conn.execute(
            { sql, timeout: this.queryTimeoutMs, rowsAsArray: true },
            params.map((p) => typeof p === "number" && Number.isSafeInteger(p) ? String(p) : p),
            done,
          )
        ),
        late.promise,
      ]);
      if (conn !== on) this.giveBack(conn);
      return rows as unknown[][];
    } catch (caught) {
      this.stopAbandoned(conn, caught);
      const error = explainMysqlError(caught, this.target);
      if (isUnreachable(error) || breaksConnection(caught)) this.#broken.add(conn);
      // Its answer may be on its way still: nothing waits behind it, a ROLLBACK neither.
      if (isUnreachable(error)) conn.destroy();
      else if (conn !== on) this.giveBack(conn);
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  private executor(on: Queryable): Executor {
    return {
      all: async (sql, params = []) => await this.query(on, sql, params) as Row[],
      // mysql2 hands over every row at once: there is nothing to gain by mapping them one by one.
      map: async (sql, params, fn) => (await this.query(on, sql, params) as Row[]).map(fn),
      mapValues: async (sql, params, fn) => (await this.executed(on, sql, params)).map(fn),
      run: async (sql, params = []) => {
        const header = await this.query(on, sql, params) as mysql.ResultSetHeader;
        return { changes: header.affectedRows, lastId: Number(header.insertId) };
      },
    };
  }

  async all(sql: string, params: Param[] = []): Promise<Row[]> {
    return await this.autocommit((on) => on.all(sql, params));
  }

  async map<T>(sql: string, params: Param[], fn: (row: Row) => T): Promise<T[]> {
    return await this.autocommit((on) => on.map(sql, params, fn));
  }

  async mapValues<T>(sql: string, params: Param[], fn: (values: unknown[]) => T): Promise<T[]> {
    return await this.autocommit((on) => on.mapValues(sql, params, fn));
  }

  async run(sql: string, params: Param[] = []): Promise<ExecResult> {
    return await this.autocommit((on) => on.run(sql, params));
  }

  /**
   * One statement on its own: InnoDB may pick it too as a deadlock victim
   * (services starting together upsert their jm_nodes rows, mark their
   * markers applied), and has then rolled it back whole: it runs again.
   */
  private async autocommit<T>(fn: (on: Executor) => Promise<T>): Promise<T> {
    const on = this.executor(await this.pool);
    return await againIfDeadlocked(() => fn(on));
  }

  private async connection(from = this.pool): Promise<mysql.PoolConnection> {
    let conn: mysql.PoolConnection;
    try {
      conn = await this.acquire(await from, from !== this.#batchPool);
    } catch (error) {
      throw explainMysqlError(error, this.target);
    }
    if (this.#set.has(conn)) return conn;
    try {
      for (const sql of sessionSql(this.target.charset)) {
        await settled((done) => conn.query({ sql, timeout: this.queryTimeoutMs }, done));
      }
    } catch (error) {
      conn.destroy();
      throw explainMysqlError(error, this.target);
    }
    this.#set.add(conn);
    return conn;
  }

  /**
   * A connection of `pool`'s (`main`: the pool, not the batches'). Where
   * the server refuses a new one for the user's max_user_connections (a
   * limit that stays till an administrator changes it; the server's
   * max_connections, others' connections fill for a while, and is waited
   * out as an outage), the batch connections go for good, their batches on the pool's connections, and the pool keeps
   * to those it has open: a statement waits for one of them. (A user
   * allowed one connection had its one slot held by an idle batch
   * connection, then flapped between "unreachable" and "back" at every
   * busy moment: dozens of error lines a minute.) With none open, the
   * refusal is the caller's: an outage, whose probe tries again.
   */
  private async acquire(pool: mysql.Pool, main: boolean): Promise<mysql.PoolConnection> {
    try {
      return await settled<mysql.PoolConnection>((done) => pool.getConnection(done));
    } catch (error) {
      if (!userLimit(error as DriverError)) throw error;
      await this.dropBatchConnections();
      const internals = pool as unknown as PoolInternals;
      const open = internals._allConnections.length;
      if (!main || open === 0) throw error;
      internals.config.connectionLimit = Math.min(internals.config.connectionLimit, open);
      return await settled<mysql.PoolConnection>((done) => pool.getConnection(done));
    }
  }

  /** No connections for batches any more: the idle ones close now, the busy ones after their batch. */
  private async dropBatchConnections(): Promise<void> {
    if (!this.#batchRoom) return;
    this.#batchRoom = false;
    if (this.#batchPool === null) return;
    const free = ((await this.#batchPool) as unknown as PoolInternals)._freeConnections;
    const idle = Array.from({ length: free.length }, (_, i) => free.get(i));
    for (const conn of idle) conn.destroy();
  }

  /**
   * Two transactions that lock the same missing row (`SELECT … FOR UPDATE`
   * takes only a shared gap lock) and then both insert it deadlock; InnoDB
   * rolls one back and says to restart it. Run again, it finds the row the
   * other committed.
   */
  async transaction<T>(fn: (tx: Executor) => Promise<T>): Promise<T> {
    return await againIfDeadlocked(() => this.transactionOnce(fn));
  }

  private async transactionOnce<T>(fn: (tx: Executor) => Promise<T>): Promise<T> {
    const conn = await this.connection();
    try {
      await this.query(conn, "START TRANSACTION", []);
      try {
        const result = await fn(this.executor(conn));
        await this.query(conn, "COMMIT", []);
        return result;
      } catch (error) {
        // A connection that broke takes its transaction with it when it closes.
        if (!this.#broken.has(conn)) {
          await settled((done) => conn.query("ROLLBACK", done)).catch(() => undefined);
        }
        throw error;
      }
    } finally {
      this.giveBack(conn);
    }
  }

  async batch(statements: readonly SqlStatement[]): Promise<Row[][]> {
    if (statements.length === 0) return [];
    return await againIfDeadlocked(() => this.batchOnce(statements));
  }

  private async batchOnce(statements: readonly SqlStatement[]): Promise<Row[][]> {
    if (this.#oneByOne || !this.#batchRoom) return await this.oneByOne(statements);
    let conn: mysql.PoolConnection;
    try {
      conn = await this.connection(this.batchPool);
    } catch (error) {
      // No connection of its own for want of room (the server's or the
      // user's connection limit): the pool's, as claims did before.
      if (!CONNECTION_LIMITS.has(driverCode(error))) throw error;
      return await this.oneByOne(statements);
    }
    let results: unknown[];
    try {
      results = await this.query(
        conn,
        ["START TRANSACTION", ...statements.map((s) => s.sql), "COMMIT"].join(";\n"),
        statements.flatMap((s) => s.params),
      ) as unknown[];
    } catch (error) {
      if (isUnreachable(error)) {
        // Its answer may never come (a timeout leaves the server running it):
        // the connection goes, so that the next batch does not wait behind it.
        conn.destroy();
        throw error;
      }
      // The server ran the statements up to the one that failed, and no further: not the COMMIT.
      if (!this.#broken.has(conn)) {
        await settled((done) => conn.query("ROLLBACK", done)).catch(() => undefined);
      }
      this.giveBack(conn);
      // A server or proxy that takes no statements after the first (a syntax error where the
      // second starts): they go one by one from now on; one of ours that is wrong fails there too.
      if (driverCode(error) !== "ER_PARSE_ERROR") throw error;
      this.#oneByOne = true;
      return await this.oneByOne(statements);
    }
    // Room was short meanwhile (see `acquire`): its slot is the pool's now.
    if (this.#batchRoom) this.giveBack(conn);
    else conn.destroy();
    return statements.map((_, i) => {
      const result = results[i + 1];
      return Array.isArray(result) ? result as Row[] : [];
    });
  }

  /** `statements` in a transaction on the pool's connections, one answer each. */
  private async oneByOne(statements: readonly SqlStatement[]): Promise<Row[][]> {
    return await this.transactionOnce((tx) => eachStatement(tx, statements));
  }

  async withMigrationLock<T>(fn: (tx: Executor) => Promise<T>): Promise<T> {
    const lock = await migrationLock(this.target.database);
    const conn = await this.connection();
    try {
      const rows = await this.query(
        conn,
        "SELECT GET_LOCK(?, ?) AS got",
        [lock, MIGRATION_LOCK_WAIT_S],
        (MIGRATION_LOCK_WAIT_S + 10) * 1000,
      ) as Row[];
      if (Number(rows[0]?.got) !== 1) {
        throw new DatabaseError(
          `another process has been migrating ${this.description} for over ${MIGRATION_LOCK_WAIT_S} s; try again when it is done`,
        );
      }
      try {
        // Read under the lock: of two processes migrating a new database at once, the first makes it.
        const found = await this.query(
          conn,
          "SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'jm_schema_version'",
          [],
        ) as Row[];
        // DDL commits implicitly in MySQL, so the advisory lock, not a
        // transaction, is what keeps two migrators apart.
        const result = await fn(this.executor(conn));
        if (Number(found[0]?.n) === 0) this.#created = true;
        return result;
      } finally {
        await settled((done) => conn.query("SELECT RELEASE_LOCK(?)", [lock], done))
          .catch(() => undefined);
      }
    } finally {
      this.giveBack(conn);
    }
  }

  async close(): Promise<void> {
    for (const stop of this.#stopClosingIdle) stop();
    for (const made of [this.#pool, this.#batchPool]) {
      // Never used: there is nothing to end, nor any reason to load mysql2.
      if (made === null) continue;
      const pool = await made;
      await settled((done) => pool.end(done));
    }
  }
}
