/**
 * Shared test fixtures: a fresh database per test on every backend, the
 * real CLI run as a subprocess (to its end, or kept running), and waiting
 * for a state with a deadline.
 */
import mysql from "mysql2/promise";
import { configure, dispose, type LogLevel, type LogRecord } from "@logtape/logtape";
import { renderMessage } from "../src/daemon/log_sink.ts";
import { openStore } from "../src/store/open.ts";
import type { Store } from "../src/store/store.ts";
import type { Node } from "../src/domain/node.ts";
import { resolveTarget } from "../src/config/database.ts";
import type { DatabaseTarget, MysqlTarget } from "../src/store/target.ts";
import { noticeDirectories, noticeFolder } from "../src/store/change_notice.ts";
import { defaultSettings } from "../src/config/config.ts";
import {
  MIGRATIONS,
  MYSQL_NOW_MS,
  SCHEMA_VERSION,
  SQLITE_NOW_MS,
  versionTable,
} from "../src/store/migrations.ts";

/** The MariaDB/MySQL server tests may create databases on (CI always sets it). */
export const MYSQL_URL = Deno.env.get("JM_TEST_DATABASE_URL") ?? "";

export type Backend = "sqlite" | "mysql";

/** Every backend to run against: SQLite always, MySQL when a server is given. */
export const BACKENDS: Backend[] = MYSQL_URL === "" ? ["sqlite"] : ["sqlite", "mysql"];

/** The README's test command with a MariaDB server, as the skip line shows it. */
export const WITH_MYSQL =
  "JM_TEST_DATABASE_URL=mysql://root@127.0.0.1:3306/test npx --yes deno@2.9.6 task test";

/**
 * A test only MariaDB can run: ignored, not failed, without
 * JM_TEST_DATABASE_URL (mariadb_test.ts says so once per run).
 */
export function mysqlTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, ignore: MYSQL_URL === "", fn });
}

export interface TestDatabase extends AsyncDisposable {
  backend: Backend;
  /** `--database` value for the CLI. */
  url: string;
  target: DatabaseTarget;
  /** A scratch directory, removed with the database. */
  dir: string;
  /** Open a store on it (the caller closes it). */
  open(): Store;
}

function mysqlTarget(url: string): MysqlTarget {
  const target = resolveTarget({ ...defaultSettings(), "db.url": url });
  if (target.kind !== "mysql") {
    throw new Error(`JM_TEST_DATABASE_URL is not a mysql:// URL: ${url}`);
  }
  return target;
}

/** `fn` on a root connection to the test server, chosen no database (one may be dropped by then). */
export async function admin<T>(fn: (conn: mysql.Connection) => Promise<T>): Promise<T> {
  const t = mysqlTarget(MYSQL_URL);
  const conn = await mysql.createConnection({
    host: t.host,
    port: t.port,
    user: t.user,
    password: t.password,
  });
  try {
    return await fn(conn);
  } finally {
    await conn.end();
  }
}

/** A connection of its own to a MySQL test database (the caller ends it). */
export async function mysqlConnection(db: TestDatabase): Promise<mysql.Connection> {
  if (db.target.kind !== "mysql") throw new Error(`${db.backend} is not a MySQL test database`);
  const t = db.target;
  return await mysql.createConnection({
    host: t.host,
    port: t.port,
    user: t.user,
    password: t.password,
    database: t.database,
  });
}

/** A jm_update_info row with its snapshots parsed: the store writes them and never reads them back. */
export interface MarkerRow {
  id: number;
  updated: boolean;
  update_time: string | null;
  jobs_before_update: unknown;
  jobs_after_update: unknown;
}

/** The markers of `db`, oldest first, with what each says changed. */
export async function markerRows(db: TestDatabase): Promise<MarkerRow[]> {
  const rows = await rawQuery(
    db,
    "SELECT id, updated, update_time, jobs_before_update, jobs_after_update FROM jm_update_info ORDER BY id",
  );
  return rows.map((r) => ({
    id: Number(r.id),
    updated: Number(r.updated) !== 0,
    update_time: r.update_time === null ? null : String(r.update_time),
    jobs_before_update: JSON.parse(String(r.jobs_before_update)),
    jobs_after_update: JSON.parse(String(r.jobs_after_update)),
  }));
}

/**
 * Give a migrated `db`'s jm_update_info a nullable insert_time, as a table
 * made by hand may have (kept as it was by migrate). Before any
 * marker is written: SQLite's table is made again, empty.
 */
export async function markerTimesNullable(db: TestDatabase): Promise<void> {
  if (db.target.kind === "mysql") {
    await rawQuery(
      db,
      "ALTER TABLE jm_update_info MODIFY insert_time DATETIME(3) NULL DEFAULT CURRENT_TIMESTAMP(3)",
    );
    return;
  }
  // SQLite changes no column's constraints: the table is made again.
  await rawQuery(db, "DROP TABLE jm_update_info");
  await rawQuery(
    db,
    "CREATE TABLE jm_update_info (id INTEGER PRIMARY KEY AUTOINCREMENT, updated INTEGER NOT NULL DEFAULT 0, insert_time TEXT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')), update_time TEXT NULL, jobs_before_update TEXT NULL, jobs_after_update TEXT NULL)",
  );
  await rawQuery(db, "CREATE INDEX jm_update_info_updated ON jm_update_info (updated, id)");
}

/** The text of file `file`, or null where there is none (a thread or process of `/proc` that ended). */
export async function readIfThere(file: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/** Run raw SQL on a test database (for checks and for simulating hand edits). */
export async function rawQuery(
  db: TestDatabase,
  sql: string,
  params: unknown[] = [],
): Promise<Record<string, unknown>[]> {
  if (db.target.kind === "sqlite") {
    const { DatabaseSync } = await import("node:sqlite");
    // Waits out a lock the CLI or a service under test holds for a moment, as they wait for ours.
    const conn = new DatabaseSync(db.target.path, { timeout: 10_000 });
    try {
      const stmt = conn.prepare(sql);
      return /^\s*(select|pragma|with|explain)/i.test(sql)
        ? stmt.all(...params as (string | number | null)[]) as Record<string, unknown>[]
        : (stmt.run(...params as (string | number | null)[]), []);
    } finally {
      conn.close();
    }
  }
  const conn = await mysqlConnection(db);
  try {
    const [rows] = await conn.query(sql, params);
    return Array.isArray(rows) ? rows as Record<string, unknown>[] : [];
  } finally {
    await conn.end();
  }
}

/**
 * The folders of the database `target` names in the default notice
 * directories: a serve on it killed (SIGKILL) left its own there. Named
 * by the database, which no other test uses.
 */
async function removeNoticeFolders(target: MysqlTarget): Promise<void> {
  const folder = await noticeFolder(target);
  for (const dir of noticeDirectories("")) {
    try {
      await Deno.remove(`${dir}/${folder}`, { recursive: true });
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
}

/** A fresh, empty database on `backend`, dropped on dispose. */
export async function freshDatabase(backend: Backend): Promise<TestDatabase> {
  const dir = await Deno.makeTempDir({ prefix: "jm-test-" });
  let url: string;
  let drop = async () => {};
  if (backend === "sqlite") {
    url = `sqlite:${dir}/jobs.db`;
  } else {
    if (MYSQL_URL === "") {
      throw new Error(
        "a MySQL test database needs JM_TEST_DATABASE_URL: register the test with mysqlTest() or over BACKENDS so it is skipped without one",
      );
    }
    const name = `jm_test_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
    await admin((c) => c.query(`CREATE DATABASE ${name} CHARACTER SET utf8mb4`));
    const base = new URL(MYSQL_URL);
    base.pathname = `/${name}`;
    url = base.toString();
    drop = async () => {
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name}`));
      await removeNoticeFolders(target as MysqlTarget);
    };
  }
  const target = resolveTarget({ ...defaultSettings(), "db.url": url });
  return {
    backend,
    url,
    target,
    dir,
    open: () => openStore(target),
    async [Symbol.asyncDispose]() {
      await drop();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/**
 * Give the fresh database `db` the schema as an older release left it: the
 * migrations up to `version` and their rows in jm_schema_version.
 */
export async function schemaAt(db: TestDatabase, version: number): Promise<void> {
  await rawQuery(db, versionTable(db.backend));
  for (const m of MIGRATIONS.filter((m) => m.version <= version)) {
    for (const statement of m.statements[db.backend]) await rawQuery(db, statement);
    await rawQuery(
      db,
      "INSERT INTO jm_schema_version (version, name, applied_at) VALUES (?, ?, 0)",
      [m.version, m.name],
    );
  }
}

/** The schema version `db` holds: the highest row of jm_schema_version. */
export async function schemaVersionOf(db: TestDatabase): Promise<number> {
  const [row] = await rawQuery(db, "SELECT MAX(version) AS v FROM jm_schema_version");
  return Number(row?.v ?? 0);
}

/**
 * The MySQL database the schema is copied from, and its tables: migrated once
 * per server and schema (its name holds a hash of the migrations), kept for
 * the next runs, made under a lock of the same name.
 */
let schemaTemplate: Promise<{ name: string; tables: string[] }> | null = null;

function templateDatabase(): Promise<{ name: string; tables: string[] }> {
  schemaTemplate ??= (async () => {
    const statements = new TextEncoder().encode(
      JSON.stringify(MIGRATIONS.map((m) => [m.version, m.statements.mysql])),
    );
    const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", statements));
    const name = `jm_test_template_${
      [...hash.slice(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join("")
    }`;
    return await admin(async (c) => {
      // Test files running at once: one makes it, the others wait and find it made.
      const [[locked]] = await c.query("SELECT GET_LOCK(?, 120) AS ok", [name]) as [
        { ok: number }[],
        unknown,
      ];
      if (Number(locked.ok) !== 1) {
        throw new Error(
          `the lock ${name} was held for 120 s by another test process making the template; see what it waits on with SHOW PROCESSLIST on the server, or drop the database ${name} and run again`,
        );
      }
      try {
        const versions = await c.query(`SELECT MAX(version) AS v FROM ${name}.jm_schema_version`)
          .then(([rows]) => Number((rows as { v: number }[])[0].v), () => 0);
        // Not there, or left half made by a process killed while it migrated.
        if (versions !== SCHEMA_VERSION) {
          await c.query(`DROP DATABASE IF EXISTS ${name}`);
          await c.query(`CREATE DATABASE ${name} CHARACTER SET utf8mb4`);
          const base = new URL(MYSQL_URL);
          base.pathname = `/${name}`;
          const store = openStore(
            resolveTarget({ ...defaultSettings(), "db.url": base.toString() }),
          );
          try {
            await store.migrate();
          } finally {
            await store.close();
          }
        }
        const [rows] = await c.query(
          "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = ?",
          [name],
        );
        return { name, tables: (rows as { t: string }[]).map((r) => r.t) };
      } finally {
        await c.query("SELECT RELEASE_LOCK(?)", [name]);
      }
    });
  })();
  // Failed (a lock waited out, a server away for a moment), it is made again for the next
  // test: kept, it failed every later test of the file in a millisecond, saying the same.
  const made = schemaTemplate;
  made.catch(() => {
    if (schemaTemplate === made) schemaTemplate = null;
  });
  return made;
}

/**
 * Give the fresh, empty database `db` the schema its store's `migrate()`
 * makes, then migrate it (which finds it up to date). On MySQL the tables
 * are copied from a template (CREATE TABLE … LIKE, and its rows): the 45
 * statements of the migrations took 0.1-1.5 s a test on a busy server,
 * the copy a tenth of it. A database that already has tables (an older
 * schema a test made) is only migrated.
 */
export async function migrateFresh(db: TestDatabase, store: Store): Promise<void> {
  if (db.target.kind === "mysql") {
    const own = db.target.database;
    const [{ n }] = await rawQuery(
      db,
      "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = ?",
      [own],
    );
    if (Number(n) === 0) {
      const template = await templateDatabase();
      await admin(async (c) => {
        for (const t of template.tables) {
          await c.query(`CREATE TABLE ${own}.${t} LIKE ${template.name}.${t}`);
          await c.query(`INSERT INTO ${own}.${t} SELECT * FROM ${template.name}.${t}`);
        }
      });
    }
  }
  await store.migrate();
}

/** Run `fn` on a migrated store over a fresh database of `backend`, closed after. */
export async function onFreshStore(
  backend: Backend,
  fn: (store: Store, db: TestDatabase) => Promise<void>,
): Promise<void> {
  await using db = await freshDatabase(backend);
  const store = db.open();
  try {
    await migrateFresh(db, store);
    await fn(store, db);
  } finally {
    await store.close();
  }
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The CLI's entry point, as `deno run` takes it. */
export const MAIN = new URL("../src/main.ts", import.meta.url).pathname;

export interface CliOptions {
  /** Where the CLI runs (relative paths in its arguments); the test's cwd by default. */
  cwd?: string;
  /** Variables added to the scrubbed environment (see `cliEnv`). */
  env?: Record<string, string>;
  /** Its standard input (none by default). */
  input?: string;
  /** Run without any capability (root then meets file permissions as other users do). */
  withoutCapabilities?: boolean;
  /** Its open-file limit, soft and hard (`prlimit --nofile`); the caller's by default. */
  openFiles?: number;
  /**
   * Run on a pseudo-terminal given no size, as `script`, `docker exec -t` and some CI runners
   * give one (0 columns), without the caller's $COLUMNS: stdout and stderr both come on stdout.
   */
  terminal?: boolean;
}

/**
 * The environment a CLI subprocess gets: the caller's, without its JM_*
 * variables (a developer's JM_DATABASE_URL must not reach a test), with
 * NO_COLOR, plus `extra`.
 */
export function cliEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(Deno.env.toObject())) {
    if (!k.startsWith("JM_")) env[k] = v;
  }
  return { ...env, NO_COLOR: "1", ...extra };
}

/** `deno run -A src/main.ts ARGS`, the one way tests start the real CLI. */
function cliCommand(args: string[], options: CliOptions): Deno.Command {
  let deno = [Deno.execPath(), "run", "--allow-all", "--quiet", MAIN, ...args];
  if (options.withoutCapabilities) deno.unshift("setpriv", "--bounding-set=-all");
  if (options.openFiles !== undefined) deno.unshift("prlimit", `--nofile=${options.openFiles}`);
  const env = cliEnv(options.env);
  if (options.terminal) {
    const line = deno.map((word) => `'${word.replaceAll("'", `'\\''`)}'`).join(" ");
    deno = ["script", "--quiet", "--return", "--command", line, "/dev/null"];
    if (options.env?.COLUMNS === undefined) delete env.COLUMNS;
  }
  return new Deno.Command(deno[0], {
    args: deno.slice(1),
    cwd: options.cwd ?? Deno.cwd(),
    env,
    clearEnv: true,
    stdin: options.input === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  });
}

/** Run the real CLI to its end. */
export async function cli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const child = cliCommand(args, options).spawn();
  if (options.input !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.input));
    await writer.close();
  }
  const out = await child.output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

/** The CLI on `db`, run in its folder: `jm(db, "job", "list")`. */
export function jm(db: TestDatabase, ...args: string[]): Promise<CliResult> {
  return cli(["--database", db.url, ...args], { cwd: db.dir });
}

async function collect(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  into: string[],
): Promise<void> {
  const decoder = new TextDecoder();
  for (let read = await reader.read(); !read.done; read = await reader.read()) {
    into.push(decoder.decode(read.value, { stream: true }));
  }
}

/**
 * The real CLI kept running (`serve`, `logs --follow`), its output read
 * as it comes. Dispose it (`await using`) so it is killed if still running
 * and its pipes are drained: nothing leaks.
 */
export class CliProcess implements AsyncDisposable {
  readonly pid: number;
  /** Resolves when the process has exited. */
  readonly status: Promise<Deno.CommandStatus>;
  readonly startedAt = Date.now();
  private exited: Deno.CommandStatus | null = null;
  private readonly out: string[] = [];
  private readonly err: string[] = [];
  private readonly drains: Promise<unknown>;
  private readonly child: Deno.ChildProcess;
  private readonly stdoutReader: ReadableStreamDefaultReader<Uint8Array>;

  constructor(args: string[], options: CliOptions = {}) {
    this.child = cliCommand(args, options).spawn();
    this.pid = this.child.pid;
    this.stdoutReader = this.child.stdout.getReader();
    this.drains = Promise.all([
      collect(this.stdoutReader, this.out),
      collect(this.child.stderr.getReader(), this.err),
    ]);
    this.status = this.child.status.then((s) => this.exited = s);
  }

  get running(): boolean {
    return this.exited === null;
  }

  get stdout(): string {
    return this.out.join("");
  }

  get stderr(): string {
    return this.err.join("");
  }

  /** Stop reading its stdout and close the pipe, as `| head` does once it has its lines. */
  async closeStdout(): Promise<void> {
    await this.stdoutReader.cancel();
  }

  signal(signal: Deno.Signal): void {
    if (this.running) this.child.kill(signal);
  }

  /** Wait for the process to exit by itself within `timeoutMs`, its output read to the end. */
  async exit(timeoutMs: number, what = "the process to exit"): Promise<Deno.CommandStatus> {
    await waitFor(() => !this.running, {
      timeoutMs,
      what,
      intervalMs: 20,
      detail: () => `stderr:\n${this.stderr}`,
    });
    await this.drains;
    return await this.status;
  }

  /** Send `signal`, then wait for the exit; returns the status and how long the exit took. */
  async stop(
    signal: Deno.Signal,
    timeoutMs: number,
  ): Promise<{ status: Deno.CommandStatus; ms: number }> {
    const sent = Date.now();
    this.signal(signal);
    const status = await this.exit(timeoutMs, `the process to exit after ${signal}`);
    return { status, ms: Date.now() - sent };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.running) this.child.kill("SIGKILL");
    await this.status;
    await this.drains;
  }
}

/**
 * `jobsmanager ARGS serve` run until it has loaded its jobs, then stopped
 * with SIGTERM, which it must answer with exit 0: its stderr, for what it
 * logged at its start.
 */
export async function serveUntilLoaded(args: string[], options: CliOptions = {}): Promise<string> {
  await using serve = new CliProcess([...args, "serve"], options);
  await waitFor(() => serve.stderr.includes('"loaded '), {
    timeoutMs: 30_000,
    what: "serve to load its jobs",
    detail: () => serve.stderr,
  });
  serve.signal("SIGTERM");
  const { code } = await serve.exit(30_000);
  if (code !== 0) throw new Error(`serve exited ${code}:\n${serve.stderr}`);
  return serve.stderr;
}

/**
 * A new account on this host (root only) for `use`, deleted after: a
 * name (jmt_exp_…) no other test or run takes, home `/`.
 */
export async function withTestAccount(use: (name: string) => Promise<void>): Promise<void> {
  const name = `jmt_exp_${crypto.randomUUID().slice(0, 8)}`;
  const run = async (...argv: string[]) => {
    const out = await new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(`${argv.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
    }
  };
  await run("useradd", "--no-create-home", "--home-dir", "/", name);
  try {
    await use(name);
  } finally {
    await removeAccount(name, run);
  }
}

/** `userdel` of `name`: a shell of it the test ended (a disarmed run) may take a moment to exit. */
async function removeAccount(
  name: string,
  run: (...argv: string[]) => Promise<void>,
): Promise<void> {
  let refusal: unknown = null;
  await waitFor(async () => {
    refusal = await run("userdel", name).then(() => null, (error) => error);
    return refusal === null || !/currently used by process/.test(String(refusal));
  }, {
    timeoutMs: 10_000,
    what: `the processes of ${name} to end, so it can be removed`,
    detail: () => String(refusal),
  });
  if (refusal !== null) throw refusal;
}

/**
 * A test account expired on 2020-01-01 (`chage -E`) for `use`, with
 * `chage` to change it and the CLI's warning line about it for a write
 * that did with its jobs what `stored` says.
 */
export async function withExpiredAccount(
  use: (
    name: string,
    warning: (stored: string) => string,
    chage: (...args: string[]) => Promise<void>,
  ) => Promise<void>,
): Promise<void> {
  await withTestAccount(async (name) => {
    const chage = async (...args: string[]) => {
      const out = await new Deno.Command("chage", { args: [...args, name] }).output();
      if (!out.success) {
        throw new Error(`chage ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
      }
    };
    await chage("-E", "2020-01-01");
    await use(
      name,
      (stored) =>
        `jobsmanager: warning: user '${name}' on this host (${Deno.hostname()}), whose account ${name} expired on 2020-01-01 (its shadow expiry date, as \`chage -l ${name}\` shows): ${stored}, but a service here records each run of its job as an error, as cron runs no job of an expired account; renew it (chage -E -1 ${name})`,
      chage,
    );
  });
}

/** The warning lines of a command's stderr. */
export function warningsIn(stderr: string): string[] {
  return stderr.split("\n").filter((line) => line.includes(": warning: "));
}

/**
 * Poll `probe` until it returns something truthy, and return that; throw
 * a message naming `what` (and the current state, from `detail`) when
 * `timeoutMs` passes first.
 */
export async function waitFor<T>(
  probe: () => T | Promise<T>,
  options: { timeoutMs: number; what: string; intervalMs?: number; detail?: () => unknown },
): Promise<NonNullable<T>> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) {
      let detail = "";
      if (options.detail) {
        try {
          detail = `\n${await options.detail()}`;
        } catch (error) {
          detail = `\n(could not describe the state: ${error})`;
        }
      }
      throw new Error(
        `timed out after ${options.timeoutMs} ms waiting for ${options.what}${detail}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 100));
  }
}

/**
 * A `jm_nodes` row of a service of this release whose last heartbeat was
 * `agoMs` ago (by this machine's clock), reporting `timezone`: to give a
 * test live, stale or stopped services without running any.
 */
export function serviceRow(
  id: string,
  options: { agoMs?: number; timezone?: string | null } = {},
): Node {
  const now = Date.now();
  return {
    id,
    host: id,
    pid: 4242,
    version: "0.1.0",
    started_at: now - 3_600_000,
    heartbeat_at: now - (options.agoMs ?? 1000),
    applied_marker: null,
    jobs_loaded: 0,
    last_reload_at: null,
    last_reload_ms: null,
    stopped_at: null,
    timezone: options.timezone ?? null,
    schema_version: SCHEMA_VERSION,
  };
}

/**
 * The row of node `id` as a service of a release before schema version 17
 * writes its heartbeat: every column but `schema_version`, which it does
 * not know, its heartbeat the database's clock now unless `agoMs` says how
 * old; `stopped` (it stopped cleanly) or `dead` (another node declared it
 * dead) as said. Its interval is 10 minutes: it stays live for 30 minutes
 * of a test however busy the machine.
 */
export async function writeOlderNode(
  db: TestDatabase,
  id: string,
  options: { agoMs?: number; stopped?: boolean; dead?: boolean } = {},
): Promise<void> {
  const now = db.target.kind === "mysql" ? MYSQL_NOW_MS : SQLITE_NOW_MS;
  await rawQuery(
    db,
    `INSERT INTO jm_nodes (id, host, pid, version, started_at, heartbeat_at, jobs_loaded, db_heartbeat_at, heartbeat_ms, stopped_at, declared_dead_at, declared_dead_by) VALUES (?, 'web-1', 4242, '0.1.0', ${now} - 3600000, ${now} - ?, 0, ${now} - ?, 600000, ?, ?, ?)`,
    [
      id,
      options.agoMs ?? 0,
      options.agoMs ?? 0,
      options.stopped ? Date.now() : null,
      options.dead ? Date.now() : null,
      options.dead ? "n2" : null,
    ],
  );
}

/** Write service rows into `db` (its schema first). */
export async function saveNodes(db: TestDatabase, ...nodes: Node[]): Promise<void> {
  const store = db.open();
  try {
    await store.migrate();
    for (const node of nodes) await store.saveNode(node);
  } finally {
    await store.close();
  }
}

/** A `sleep` in a process group and session of its own, as a run's shell would be, with `env`. */
export function detachedSleep(env: Record<string, string>): Deno.ChildProcess {
  return new Deno.Command("sleep", {
    args: [`300.${Math.floor(Math.random() * 100_000)}`],
    env,
    detached: true,
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/** Pids of live (not zombie) processes whose command line contains `needle`. */
export function livePidsMatching(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).replaceAll("\0", " ");
      const state = Deno.readTextFileSync(`/proc/${entry.name}/stat`).split(") ")[1]?.[0];
      if (cmdline.includes(needle) && state !== "Z") pids.push(Number(entry.name));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

/** Process `pid` exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1]?.[0] !== "Z";
  } catch {
    return false;
  }
}

/**
 * This process's log messages from `lowestLevel` on, as rendered (alone, or
 * after their level: `info: …`), captured until disposed.
 */
export async function captureLogs(
  lowestLevel: LogLevel,
): Promise<{ messages: () => string[]; leveled: () => string[] } & AsyncDisposable> {
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { memory: (record) => records.push(record) },
    loggers: [
      { category: ["jobsmanager"], lowestLevel, sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["memory"] },
    ],
  });
  return {
    messages: () => records.map(renderMessage),
    leveled: () => records.map((r) => `${r.level}: ${renderMessage(r)}`),
    [Symbol.asyncDispose]: () => dispose(),
  };
}
