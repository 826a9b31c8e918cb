/**
 * The embedded store: one SQLite file through `node:sqlite`. WAL mode lets a
 * CLI process write while `serve` reads. node:sqlite is synchronous, so
 * statements are queued one at a time inside this process; a transaction
 * holds the queue until it ends.
 *
 * SQLite's own busy timeout would block the whole thread while it waits,
 * freezing every timer of the service (and deadlocking two connections of
 * one process). So the timeout is 0 and a locked database is retried here,
 * asynchronously, until BUSY_TIMEOUT_MS.
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { DatabaseError } from "../errors.ts";
import type { Driver, ExecResult, Executor, Param, Row, SqlStatement } from "./driver.ts";
import { eachStatement, PROFILES } from "./driver.ts";
import { explainSqliteError } from "./sqlite_errors.ts";
import { createDatabaseFile } from "./sqlite_owner.ts";
import { databaseFile, openDatabase, openDatabaseReadOnly } from "./sqlite_path.ts";
import { accessFailure } from "./access.ts";
import { type Identity, identityOf } from "./no_follow.ts";
import { heldUnder, type LiveService, liveService, shmLost } from "./sqlite_sidecars.ts";

const BUSY_TIMEOUT_MS = 10_000;
const BUSY_RETRY_MS = [1, 2, 5, 10, 20, 50];
/** How long a `-shm` missing beside a live service's file is given to appear (see `sharedWithService`). */
const SHM_RECHECK_MS = 200;

function isBusy(error: unknown): boolean {
  // node:sqlite reports SQLITE_BUSY as a generic ERR_SQLITE_ERROR; its text
  // ("database is locked") is what tells it apart.
  const e = error as { code?: string; message?: string };
  return e.code === "ERR_SQLITE_ERROR" && /database is (locked|busy)/.test(e.message ?? "");
}

type Bindable = string | number | null;

function bind(params: Param[]): Bindable[] {
  return params.map((p) => typeof p === "boolean" ? (p ? 1 : 0) : p);
}

/** Prepared statements kept per connection: the service asks the same few many times a second. */
const MAX_STATEMENTS = 200;

type Statement = StatementSync & {
  setReturnArrays(on: boolean): void;
  setReadBigInts(on: boolean): void;
};

/**
 * The rows of `statement`. An integer beyond 2^53 (a column set by hand,
 * 9223372036854775000) makes node:sqlite refuse the whole read, naming
 * no table, row or column: every command, and the service, failed on one
 * row. Such a read is made again with integers as BigInts, and those too
 * large are given as their digits, as mysql2 gives MySQL's
 * (`supportBigNumbers`): the row mappers read them as MySQL's, and the
 * job rules name the column. Only then: BigInts for every read would cost
 * each integer of each row.
 */
function allRows(statement: Statement, params: Bindable[]): unknown[][] {
  try {
    return statement.all(...params) as unknown as unknown[][];
  } catch (error) {
    if ((error as { code?: string }).code !== "ERR_OUT_OF_RANGE") throw error;
  }
  statement.setReadBigInts(true);
  try {
    const rows = statement.all(...params) as unknown as unknown[][];
    for (const values of rows) {
      for (let i = 0; i < values.length; i++) {
        const v = values[i];
        if (typeof v === "bigint") {
          values[i] = Number.isSafeInteger(Number(v)) ? Number(v) : String(v);
        }
      }
    }
    return rows;
  } finally {
    statement.setReadBigInts(false);
  }
}

/**
 * A function making a row object of a row's values, by column list. An
 * object literal compiled for the columns builds rows with one shape in a
 * single step: setting the names one by one in a loop took 2.7 µs per
 * jm_jobs row (30 ms of a 10,000-job `job list`), this takes 0.15.
 */
const rowMakers = new Map<string, (values: unknown[]) => Row>();

function rowMaker(names: string[]): (values: unknown[]) => Row {
  const key = JSON.stringify(names);
  let make = rowMakers.get(key);
  if (make) return make;
  // A quoted `__proto__` in a literal would set the prototype: such a list is built by a loop.
  make = names.includes("__proto__")
    ? (values) => {
      const row: Row = {};
      for (let i = 0; i < names.length; i++) row[names[i]] = values[i];
      return row;
    }
    : new Function(
      "values",
      `return {${names.map((name, i) => `${JSON.stringify(name)}: values[${i}]`).join(", ")}};`,
    ) as (values: unknown[]) => Row;
  if (rowMakers.size >= MAX_STATEMENTS) rowMakers.clear();
  rowMakers.set(key, make);
  return make;
}

class SqliteExecutor implements Executor {
  private readonly statements = new Map<string, Statement>();

  constructor(protected readonly db: DatabaseSync) {}

  private prepared(sql: string): Statement {
    const known = this.statements.get(sql);
    if (known) return known;
    const statement = this.db.prepare(sql) as Statement;
    // Rows as arrays, made into objects below: node:sqlite's own row objects
    // have no prototype, which V8 keeps as slow dictionaries (1.6 kB for a
    // row of jm_jobs, and several times slower to read).
    statement.setReturnArrays(true);
    if (this.statements.size >= MAX_STATEMENTS) this.statements.clear();
    this.statements.set(sql, statement);
    return statement;
  }

  all(sql: string, params: Param[] = []): Promise<Row[]> {
    return this.map(sql, params, (row) => row);
  }

  map<T>(sql: string, params: Param[], fn: (row: Row) => T): Promise<T[]> {
    const statement = this.prepared(sql);
    const values = allRows(statement, bind(params));
    // Asked each time: a migration may have changed what a statement returns.
    const toRow = rowMaker(statement.columns().map((c) => c.name));
    return Promise.resolve(values.map((v) => fn(toRow(v))));
  }

  mapValues<T>(sql: string, params: Param[], fn: (values: unknown[]) => T): Promise<T[]> {
    const values = allRows(this.prepared(sql), bind(params));
    return Promise.resolve(values.map(fn));
  }

  run(sql: string, params: Param[] = []): Promise<ExecResult> {
    const result = this.prepared(sql).run(...bind(params));
    return Promise.resolve({
      changes: Number(result.changes),
      lastId: Number(result.lastInsertRowid),
    });
  }
}

export class SqliteDriver implements Driver {
  readonly profile = PROFILES.sqlite;
  readonly description: string;
  readonly connections = 1;
  private executor: SqliteExecutor;
  /** The tail of the queue of work on this connection. */
  private queue: Promise<unknown> = Promise.resolve();

  /** Set by `abandon`: every statement from then on fails with it. */
  private gone: DatabaseError | null = null;

  private constructor(
    private db: DatabaseSync,
    private readonly path: string,
    readonly created: boolean,
    /** The file's path, links resolved, as SQLite names its `-wal` and `-shm` after it. */
    private readonly realPath: string | null,
  ) {
    this.description = `sqlite:${path}`;
    this.executor = new SqliteExecutor(db);
  }

  /** Open (creating if needed) the file; throws DatabaseError when it cannot. */
  static open(path: string): SqliteDriver {
    let db: DatabaseSync;
    let created = false;
    let file = path;
    try {
      // Readable by its owner only: it holds commands, environments and job
      // output (SQLite gives its -wal and -shm files its mode). No link
      // followed but a trusted one (sqlite_path.ts).
      file = databaseFile(path);
      const made = createDatabaseFile(file);
      created = "identity" in made;
      db = openDatabase(file, "identity" in made ? made.identity : null, path);
    } catch (error) {
      const explained = explainSqliteError(error, path);
      if (explained instanceof DatabaseError && !explained.unreachable) throw explained;
      throw new DatabaseError(
        `cannot open SQLite database '${path}': ${
          (error as Error).message
        }; check that the directory exists and is writable, or pass --database sqlite:PATH`,
      );
    }
    let realPath: string | null = null;
    try {
      realPath = Deno.realPathSync(path);
    } catch {
      // Gone already: `abandon` then leaves whatever lies beside the path.
    }
    const driver = new SqliteDriver(db, path, created, realPath);
    // Setting up a file reads it, and switching a new one to WAL takes the
    // write lock: another process opening the same file may hold the lock
    // for a moment, so this is retried like any statement.
    driver.ready = driver.whenUnlocked(() => {
      db.exec("PRAGMA busy_timeout = 0");
      // Before anything written: a read-only filesystem fails on it (see `readOnlyFallback`).
      db.exec("PRAGMA journal_mode = WAL");
      // In WAL mode NORMAL is still safe from corruption; it skips an fsync
      // per commit, which would cap the service at a few hundred writes/s.
      db.exec("PRAGMA synchronous = NORMAL");
      // A WAL that grew behind a long read (a backup, a big report) while writes went on is cut
      // back to this once checkpointed; it kept its largest size (665 MB seen) for good.
      db.exec("PRAGMA journal_size_limit = 67108864");
      db.exec("PRAGMA foreign_keys = ON");
      return Promise.resolve();
    }).catch((error) => {
      const readOnly = driver.readOnlyFallback(error, file, created);
      if (readOnly === true) return;
      if (readOnly instanceof DatabaseError) throw readOnly;
      throw explainSqliteError(
        error,
        path,
        (said) => `cannot use SQLite database '${path}': ${said}`,
      );
    });
    driver.ready.catch(() => undefined);
    return driver;
  }

  /**
   * On a read-only filesystem SQLite cannot set a database up as `open`
   * does (WAL mode makes a `-wal` and `-shm` beside it, and a read-only
   * mount refuses them): `job list` on a backup mounted read-only failed,
   * "the database refuses writes", though it writes nothing. Such a file
   * is read read-only instead, a write then refused by SQLite, and said to
   * be so by `explainSqliteError` with the fix. With no `-wal` beside it
   * (a clean stop removes it), read as immutable: SQLite needs no `-shm`
   * then, and nothing on that mount can change the file. Whether it did;
   * why not, when that is a `-wal` SQLite cannot read without a `-shm`.
   */
  private readOnlyFallback(
    error: unknown,
    file: string,
    created: boolean,
  ): boolean | DatabaseError {
    if (created || (error as { code?: string })?.code !== "ERR_SQLITE_ERROR") return false;
    if (accessFailure(file) !== "EROFS") return false;
    let db: DatabaseSync | null = null;
    try {
      db = openDatabaseReadOnly(file, this.path);
      db.exec("PRAGMA foreign_keys = ON");
      db.prepare("SELECT count(*) FROM sqlite_master").get();
    } catch {
      db?.close();
      const there = (suffix: string) => identityOrNull(`${file}${suffix}`) !== null;
      // Not readable either: the first error says more, but for this.
      if (!there("-wal") || there("-shm")) return false;
      const dir = file.slice(0, file.lastIndexOf("/")) || "/";
      return new DatabaseError(
        `cannot read the SQLite database ${file} on the read-only filesystem holding ${dir}: its -wal file holds writes not yet checkpointed into it (a service that did not stop cleanly leaves them), and SQLite reads them only through a -shm file, which it cannot make there; remount it read-write (mount -o remount,rw), or copy the database with its -wal file to a writable place and point db.url (--database) at the copy`,
        { cause: error, unreachable: false },
      );
    }
    if (this.db.isOpen) this.db.close();
    this.db = db;
    this.executor = new SqliteExecutor(db);
    return true;
  }

  /** The connection's setup; every statement waits for it and fails with it. */
  private ready: Promise<void> = Promise.resolve();

  private enqueue<T>(work: () => Promise<T>): Promise<T> {
    if (this.gone) return Promise.reject(this.gone);
    const result = this.queue.then(() => this.ready).then(work);
    // Not the result itself: the tail would hold the last rows read (10,000 jobs) until the next statement.
    this.queue = result.then(() => undefined, () => undefined);
    return result;
  }

  /** Run `op`, retrying while another connection holds the write lock. */
  private async whenUnlocked<T>(op: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + BUSY_TIMEOUT_MS;
    for (let attempt = 0;; attempt++) {
      try {
        return await op();
      } catch (error) {
        if (!isBusy(error)) throw error;
        if (Date.now() >= deadline) {
          throw new DatabaseError(
            `${this.description} stayed locked by another process for ${
              BUSY_TIMEOUT_MS / 1000
            } s; try again`,
            // Nothing failed: the statement waited for an answer it did not get in time.
            { unanswered: true },
          );
        }
        const wait = BUSY_RETRY_MS[Math.min(attempt, BUSY_RETRY_MS.length - 1)];
        await new Promise((resolve) => setTimeout(resolve, wait * (0.5 + Math.random())));
      }
    }
  }

  all(sql: string, params: Param[] = []): Promise<Row[]> {
    return this.map(sql, params, (row) => row);
  }

  map<T>(sql: string, params: Param[], fn: (row: Row) => T): Promise<T[]> {
    return this.enqueue(() => this.whenUnlocked(() => this.executor.map(sql, params, fn)))
      .catch((error) => this.rethrowExplained(error));
  }

  mapValues<T>(sql: string, params: Param[], fn: (values: unknown[]) => T): Promise<T[]> {
    return this.enqueue(() => this.whenUnlocked(() => this.executor.mapValues(sql, params, fn)))
      .catch((error) => this.rethrowExplained(error));
  }

  run(sql: string, params?: Param[]): Promise<ExecResult> {
    return this.enqueue(async () => {
      await this.sharedWithService();
      return this.whenUnlocked(() => this.executor.run(sql, params));
    }).catch((error) => this.rethrowExplained(error));
  }

  transaction<T>(fn: (tx: Executor) => Promise<T>): Promise<T> {
    return this.enqueue(async () => {
      await this.sharedWithService();
      // IMMEDIATE takes the write lock now, so two writers never both read
      // a row and then both try to upgrade (which SQLite would fail).
      await this.whenUnlocked(() => Promise.resolve(this.db.exec("BEGIN IMMEDIATE")));
      try {
        const result = await fn(this.executor);
        this.db.exec("COMMIT");
        return result;
      } catch (error) {
        // SQLite rolls back by itself on some errors (a full disk, an I/O
        // error): a ROLLBACK then would fail and hide the error that matters.
        if (this.db.isTransaction) this.db.exec("ROLLBACK");
        throw error;
      }
    }).catch((error) => this.rethrowExplained(error));
  }

  batch(statements: readonly SqlStatement[]): Promise<Row[][]> {
    return this.transaction((tx) => eachStatement(tx, statements));
  }

  /** Set once this process is found to be the service holding the file's lock: nothing to check then. */
  private served = false;
  /**
   * The `-shm` the name gave at the last look that found nothing wrong:
   * while it names that file still, there is nothing to look at again
   * (/proc/locks takes most of a millisecond to read).
   */
  private shmSeen: Identity | null = null;

  /**
   * Throws, before a write, when a live service of another process holds
   * the file's lock but no longer maps the `-shm` its name gives (deleted
   * or replaced under it: see sqlite_sidecars.ts): this process's writes
   * and the service's would overwrite each other in the WAL, and the
   * command would say it was done. Looked at again after a moment before
   * refusing: a service starting takes its lock on the file just before
   * SQLite maps the `-shm`.
   */
  private async sharedWithService(): Promise<void> {
    if (this.served || this.realPath === null) return;
    const shm = identityOrNull(`${this.realPath}-shm`);
    if (shm !== null && shm === this.shmSeen) return;
    const found = liveService(this.realPath);
    if (found === "self") {
      this.served = true;
      return;
    }
    let lost = unshared(found);
    if (lost !== null) {
      await new Promise((resolve) => setTimeout(resolve, SHM_RECHECK_MS));
      lost = unshared(liveService(this.realPath));
    }
    if (lost === null) {
      this.shmSeen = shm;
      return;
    }
    throw new DatabaseError(
      `refusing to write to ${this.description}: ${
        shmLost(this.realPath, lost)
      }; that file indexes the WAL, which every process writing the database must share, so what this command wrote would be overwritten by the service's writes and lost. Restart the service (systemctl restart jobsmanager; a service of this version stops by itself once it notices), then run this again; never delete the -wal or -shm file of a database in use`,
      { unreachable: false, writesRefused: true },
    );
  }

  private rethrowExplained(error: unknown): never {
    throw explainSqliteError(error, this.path);
  }

  withMigrationLock<T>(fn: (tx: Executor) => Promise<T>): Promise<T> {
    return this.transaction(fn);
  }

  /**
   * The path no longer names the file this connection has open (another
   * file moved over it, or it was deleted): from now on every statement
   * fails with `why`. Once the statements under way end, what the WAL
   * holds is checkpointed into the file through the open connection, the
   * connection is closed, and its `-wal` and `-shm` are removed from
   * beside the path. SQLite itself would leave them (it checkpoints and
   * removes them on closing only while the path names the file), and
   * whoever opens the file the path names now would replay the old file's
   * pages into it: a malformed database, or a restored copy silently
   * given the later writes. Only the files this process has open under
   * those names are removed: a `-wal` that came with the new file stays.
   * With `sideFiles` "keep" (the path still names the file, but its `-wal`
   * or `-shm` was deleted or replaced under it), none is: SQLite removes
   * them as it closes when no other process uses the file, and they are
   * the file's own. Resolves with what could not be done, for the log.
   */
  abandon(why: string, sideFiles: "remove" | "keep" = "remove"): Promise<string[]> {
    this.gone ??= new DatabaseError(why, { unreachable: false });
    const done = this.queue.then(() => {
      if (!this.db.isOpen) return [];
      const problems: string[] = [];
      const names = this.realPath === null ? [] : [`${this.realPath}-wal`, `${this.realPath}-shm`];
      const held = heldUnder(names);
      try {
        const { busy } = this.db.prepare("PRAGMA wal_checkpoint(TRUNCATE)").get() as {
          busy: number;
        };
        if (busy !== 0) problems.push("another connection kept its WAL from being checkpointed");
      } catch (error) {
        problems.push(`its WAL could not be checkpointed: ${(error as Error).message}`);
      }
      this.db.close();
      if (sideFiles === "keep") return problems;
      if (held === null) {
        problems.push(
          `/proc/self/fd cannot be read, so ${names.join(" and ")} were left, which may be its own`,
        );
        return problems;
      }
      for (const name of names) {
        try {
          if (held.get(name)?.has(identityOf(Deno.statSync(name)))) Deno.removeSync(name);
        } catch (error) {
          if (!(error instanceof Deno.errors.NotFound)) {
            problems.push(`${name} could not be removed: ${(error as Error).message}`);
          }
        }
      }
      return problems;
    });
    this.queue = done.then(() => undefined, () => undefined);
    return done;
  }

  close(): Promise<void> {
    // Not through enqueue: a connection whose setup failed must still close.
    const closed = this.queue.then(() => {
      if (this.db.isOpen) this.db.close();
    });
    this.queue = closed;
    return closed;
  }
}

/** The live service `found`, when it does not map the `-shm` beside its file; else null. */
function unshared(found: LiveService | "self" | null): LiveService | null {
  return found !== null && found !== "self" && found.shm !== "shared" ? found : null;
}

/** The identity of the file at `path`; null when there is none, or it cannot be looked at. */
function identityOrNull(path: string): Identity | null {
  try {
    return identityOf(Deno.statSync(path));
  } catch {
    return null;
  }
}

/**
 * Remove the SQLite file at `path` if it holds no table, nor does its WAL
 * hold anything: the file is empty, or is the header page alone (opening a
 * new file in WAL mode writes that page, and every table takes a page of
 * its own). Another process that opened the new file meanwhile and wrote a
 * schema keeps it in `PATH-wal` until a checkpoint: such a file stays, as
 * does a file that is not SQLite's. Best effort: the error that stopped the
 * command says what is wrong.
 */
export function removeIfNoTables(path: string): void {
  const sizeOf = (file: string) => {
    try {
      return Deno.statSync(file).size;
    } catch (error) {
      return error instanceof Deno.errors.NotFound ? 0 : null;
    }
  };
  const size = sizeOf(path);
  if (size === null || sizeOf(`${path}-wal`) !== 0) return;
  if (size !== 0 && size > headerPageSize(path)) return;
  try {
    Deno.removeSync(path);
  } catch {
    // Gone already, or not ours to remove: nothing to add to the error.
  }
}

/** The page size a SQLite file's header gives; 0 when it is not one. */
function headerPageSize(path: string): number {
  const magic = "SQLite format 3\0";
  let file: Deno.FsFile | undefined;
  try {
    file = Deno.openSync(path);
    const header = new Uint8Array(18);
    if (file.readSync(header) !== 18) return 0;
    if (new TextDecoder().decode(header.subarray(0, 16)) !== magic) return 0;
    const size = (header[16] << 8) | header[17];
    // 1 stands for 65,536, which two bytes cannot hold.
    return size === 1 ? 65_536 : size;
  } catch {
    return 0;
  } finally {
    file?.close();
  }
}
