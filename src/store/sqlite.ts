/**
 * The embedded store: one SQLite file through `node:sqlite`. WAL mode and a
 * busy timeout let a CLI process write while `serve` reads. node:sqlite is
 * synchronous, so statements are queued one at a time inside this process;
 * a transaction holds the queue until it ends.
 */
import { DatabaseSync } from "node:sqlite";
import { DatabaseError } from "../errors.ts";
import type { Driver, Executor, Param, Row, RunResult } from "./driver.ts";
import { PROFILES } from "./driver.ts";

const BUSY_TIMEOUT_MS = 10_000;

type Bindable = string | number | null;

function bind(params: Param[]): Bindable[] {
  return params.map((p) => typeof p === "boolean" ? (p ? 1 : 0) : p);
}

class SqliteExecutor implements Executor {
  constructor(protected readonly db: DatabaseSync) {}

  all(sql: string, params: Param[] = []): Promise<Row[]> {
    return Promise.resolve(this.db.prepare(sql).all(...bind(params)) as Row[]);
  }

  run(sql: string, params: Param[] = []): Promise<RunResult> {
    const result = this.db.prepare(sql).run(...bind(params));
    return Promise.resolve({
      changes: Number(result.changes),
      lastId: Number(result.lastInsertRowid),
    });
  }
}

export class SqliteDriver implements Driver {
  readonly profile = PROFILES.sqlite;
  readonly description: string;
  private readonly executor: SqliteExecutor;
  /** The tail of the queue of work on this connection. */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(private readonly db: DatabaseSync, path: string) {
    this.description = `sqlite:${path}`;
    this.executor = new SqliteExecutor(db);
  }

  /** Open (creating if needed) the file; throws DatabaseError when it cannot. */
  static open(path: string): SqliteDriver {
    let db: DatabaseSync;
    try {
      db = new DatabaseSync(path);
    } catch (error) {
      throw new DatabaseError(
        `cannot open SQLite database '${path}': ${
          (error as Error).message
        }; check that the directory exists and is writable, or pass --database sqlite:PATH`,
      );
    }
    try {
      db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
      db.exec("PRAGMA journal_mode = WAL");
      db.exec("PRAGMA foreign_keys = ON");
    } catch (error) {
      db.close();
      throw new DatabaseError(`cannot use SQLite database '${path}': ${(error as Error).message}`);
    }
    return new SqliteDriver(db, path);
  }

  private enqueue<T>(work: () => Promise<T>): Promise<T> {
    const result = this.queue.then(work);
    this.queue = result.catch(() => undefined);
    return result;
  }

  all(sql: string, params?: Param[]): Promise<Row[]> {
    return this.enqueue(() => this.executor.all(sql, params));
  }

  run(sql: string, params?: Param[]): Promise<RunResult> {
    return this.enqueue(() => this.executor.run(sql, params));
  }

  transaction<T>(fn: (tx: Executor) => Promise<T>): Promise<T> {
    return this.enqueue(async () => {
      // IMMEDIATE takes the write lock now, so two writers never both read
      // a row and then both try to upgrade (which SQLite would fail).
      this.db.exec("BEGIN IMMEDIATE");
      try {
        const result = await fn(this.executor);
        this.db.exec("COMMIT");
        return result;
      } catch (error) {
        this.db.exec("ROLLBACK");
        throw error;
      }
    });
  }

  withMigrationLock<T>(fn: (tx: Executor) => Promise<T>): Promise<T> {
    return this.transaction(fn);
  }

  close(): Promise<void> {
    return this.enqueue(() => {
      if (this.db.isOpen) this.db.close();
      return Promise.resolve();
    });
  }
}
