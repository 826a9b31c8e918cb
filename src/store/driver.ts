/**
 * The seam between the store's SQL and a database library. Both drivers
 * take `?` placeholders and return rows as plain objects; what differs
 * between the dialects is listed once, in `DialectProfile`.
 */
import { type Dialect, MYSQL_NOW_MS, SQLITE_NOW_MS } from "./migrations.ts";

export type Param = string | number | boolean | null;
export type Row = Record<string, unknown>;

export interface ExecResult {
  /** Rows inserted, updated or deleted. */
  changes: number;
  /** The auto-increment id of an INSERT. */
  lastId: number;
}

/** `INSERT INTO table (columns) VALUES (?, …), …` for `rows` rows, then `tail`. */
export function insertSql(table: string, columns: readonly string[], rows = 1, tail = ""): string {
  const row = `(${columns.map(() => "?").join(", ")})`;
  return `INSERT INTO ${table} (${columns.map((c) => `\`${c}\``).join(", ")}) VALUES ${
    Array(rows).fill(row).join(", ")
  }${tail}`;
}

/** One statement and its parameters. */
export interface SqlStatement {
  sql: string;
  params: Param[];
}

/**
 * `statements` on `tx`, one answer each: each one's rows (none for a
 * write). A batch where one query cannot take them all.
 */
export async function eachStatement(
  tx: Executor,
  statements: readonly SqlStatement[],
): Promise<Row[][]> {
  const rows: Row[][] = [];
  for (const { sql, params } of statements) {
    // MySQL answers a write with a header, not rows.
    const result: unknown = await tx.all(sql, params);
    rows.push(Array.isArray(result) ? result : []);
  }
  return rows;
}

/** Runs statements: the driver itself, or one open transaction. */
export interface Executor {
  all(sql: string, params?: Param[]): Promise<Row[]>;
  /**
   * `all`'s rows, each made into a `T` as it is read: a row is garbage at
   * once, not kept with all the others until the last is read. Kept, the
   * 10,000 rows of jm_jobs survive collection after collection: a cold
   * read of them took 165-240 ms on SQLite instead of 80-120.
   */
  map<T>(sql: string, params: Param[], fn: (row: Row) => T): Promise<T[]>;
  /**
   * `map`, each row given as its values in the order the statement selects
   * them: no object is made per row only to be copied into a `T` (a reload
   * of 10,000 jobs made and dropped 10,000 of them, of 33 fields each).
   */
  mapValues<T>(sql: string, params: Param[], fn: (values: unknown[]) => T): Promise<T[]>;
  run(sql: string, params?: Param[]): Promise<ExecResult>;
}

export interface Driver extends Executor {
  readonly profile: DialectProfile;
  /** Where it points, password redacted. */
  readonly description: string;
  /** Whether it created the database: opening it, or a migration under its lock (see `Store.created`). */
  readonly created: boolean;
  /** Connections it opens at most: MySQL's pool and its batches'; SQLite's one. */
  readonly connections: number;
  /**
   * Run `fn` in one transaction that holds the write lock on the rows it
   * reads with `profile.forUpdate` (SQLite: the whole database, BEGIN
   * IMMEDIATE). Commits when `fn` resolves, rolls back when it throws.
   * `fn` may run more than once (MySQL restarts a deadlock victim), so it
   * must have no effect outside the transaction.
   */
  transaction<T>(fn: (tx: Executor) => Promise<T>): Promise<T>;
  /**
   * Run `statements` in one transaction, as `transaction` would, and
   * return each one's rows (none for a write). MySQL gets them in one
   * round trip, where `transaction` waits for an answer per statement and
   * for its BEGIN and COMMIT: on a busy event loop each answer waits for a
   * turn (an instant's claim, four answers, took 70-200 ms under a flood
   * of log lines, where it takes 7-11 ms on a quiet one).
   */
  batch(statements: readonly SqlStatement[]): Promise<Row[][]>;
  /**
   * Run `fn` holding the lock that serializes migrations across processes
   * (MySQL: GET_LOCK on one connection; SQLite: BEGIN IMMEDIATE).
   */
  withMigrationLock<T>(fn: (tx: Executor) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** Everything the SQL in `sql_store.ts` needs to know about the dialect. */
export interface DialectProfile {
  dialect: Dialect;
  /**
   * Whether `id = ?` ignores trailing spaces (MySQL's and MariaDB's PAD
   * SPACE collations, utf8mb4_bin among them): 'zz ' is 'zz' to a key.
   */
  padsIds: boolean;
  /** Appended to a SELECT that must lock the rows it reads. */
  forUpdate: string;
  /** Appended to an INSERT so a duplicate key inserts nothing (0 changes) instead of failing. */
  onDuplicateIgnore: string;
  /** The current time as the jm_update_info timestamp columns hold it. */
  nowDatetime: string;
  /** The database's current time in ms since the epoch: the cluster's one clock. */
  nowMs: string;
  /** The names of `table`'s columns, read on `on`; none where there is no such table. */
  columns(on: Executor, table: string): Promise<string[]>;
  /** A query with one `?` (the table name) returning one row per index, named `name`. */
  indexesSql: string;
  /**
   * Which of the tables `names` exist, read on `on`, and the columns of
   * those of them in `detailed` at least: a row per column, `tbl`, `name`
   * and `type` (MySQL's data type, as information_schema's DATA_TYPE names
   * it; SQLite's declared type); MySQL also a row per table with its
   * `engine` (null for a view), `name` null. A view among `names` (which
   * jobsmanager cannot write its rows into) has a row with `is_view` 1,
   * `name` null; no other row has it.
   */
  tableColumns(on: Executor, names: string[], detailed: string[]): Promise<Row[]>;
  /**
   * `INSERT … ` tail that updates `columns` when the key exists: each to
   * the value inserted, or to the expression `set` gives for it.
   */
  upsertTail(key: string, columns: string[], set?: Record<string, string>): string;
  /** In an upsert's update, the value `column` was to be inserted with. */
  inserted(column: string): string;
  /**
   * Delete the `limit` oldest rows matching `where`, oldest by `by`: a
   * time column that `where` bounds, indexed as `TABLE_BY`, so that the statement reads
   * that index's range and no more (by id, a table of millions was read
   * whole, or sorted, at each batch).
   */
  deleteOldest(table: string, where: string, by: string): string;
  /** How to move an offending table aside, for error messages. */
  renameTable(from: string, to: string): string;
  /**
   * Rows one UPDATE or DELETE by id covers when many are written at once
   * (runs' records: `col = CASE id WHEN ? THEN ? … END`; jobs removed:
   * `id IN (…)`): a round trip saved for each on MySQL. SQLite has no
   * round trip to save, and would prepare a statement anew for each number
   * of rows (200 ms of a 500-job burst), where a one-row statement is
   * prepared once.
   */
  rowsPerUpdate: number;
  /**
   * A query whose one value changes when another connection commits
   * (SQLite's `PRAGMA data_version`; its own commits leave it); null where
   * the dialect has none.
   */
  dataVersionSql: string | null;
  /**
   * `column` in a condition whose index must not be chosen: SQLite, with
   * no statistics, took jm_runs_status for a job's successes (every success
   * of every job) over jm_runs_job (the job's own runs); its unary `+`
   * keeps it off. MySQL plans by its statistics.
   */
  noIndex(column: string): string;
  /**
   * A hint after a table's name that its reads go by `index`: MySQL's
   * statistics (sampled, or stale after a bulk load) may make it choose
   * another index of the same first column, the unique key, and sort every
   * run of each job for the newest (a watched job's last success: 3-6 s for
   * 2,000 jobs of 500 runs, every 5 s). None on SQLite, whose `noIndex`
   * does it.
   */
  forceIndex(index: string): string;
  /**
   * Whether a migration's DDL commits with its transaction (SQLite), so
   * another process never sees a schema half migrated; MySQL commits each
   * statement as it runs.
   */
  transactionalDdl: boolean;
}

/** MySQL's ER_NO_SUCH_TABLE: "Table '…' doesn't exist". */
const ER_NO_SUCH_TABLE = 1146;

/**
 * MySQL's table `name` as SHOW CREATE TABLE says it is: its columns with
 * their data types, and its engine (null for a view, whose columns are not
 * read); null where there is no such table. Not information_schema.COLUMNS
 * (nor SHOW COLUMNS, made from it): each query of it builds an Aria
 * temporary table, whose drop crashed MariaDB 10.11 twice
 * (ha_maria::drop_table from free_tmp_table); SHOW CREATE TABLE builds none.
 */
async function mysqlTable(
  on: Executor,
  name: string,
): Promise<{ columns: { name: string; type: string }[]; engine: string | null } | null> {
  let rows: Row[];
  try {
    rows = await on.all(`SHOW CREATE TABLE \`${name.replaceAll("`", "``")}\``);
  } catch (error) {
    if ((error as { cause?: { errno?: number } }).cause?.errno === ER_NO_SUCH_TABLE) return null;
    throw error;
  }
  const ddl = rows[0]?.["Create Table"];
  if (typeof ddl !== "string") return { columns: [], engine: null };
  // A column's line: two spaces, its quoted name, its type (`varchar(191)`: DATA_TYPE `varchar`).
  const columns = [...ddl.matchAll(/^ {2}`((?:[^`]|``)+)` (\w+)/gm)].map(([, column, type]) => ({
    name: column.replaceAll("``", "`"),
    type: type.toLowerCase(),
  }));
  return { columns, engine: ddl.match(/\n\) ENGINE=(\w+)/)?.[1] ?? null };
}

export const PROFILES: Record<Dialect, DialectProfile> = {
  mysql: {
    dialect: "mysql",
    padsIds: true,
    forUpdate: " FOR UPDATE",
    // Not INSERT IGNORE: that would also hide other errors (bad values, truncation).
    onDuplicateIgnore: " ON DUPLICATE KEY UPDATE id = id",
    nowDatetime: "CURRENT_TIMESTAMP(3)",
    nowMs: MYSQL_NOW_MS,
    columns: async (on, table) =>
      (await mysqlTable(on, table))?.columns.map((column) => column.name) ?? [],
    indexesSql:
      "SELECT DISTINCT INDEX_NAME AS name FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
    tableColumns: async (on, names, detailed) => {
      // information_schema.TABLES builds a MEMORY table, not an Aria one (see `mysqlTable`).
      const rows = await on.all(
        `SELECT TABLE_NAME AS tbl, NULL AS name, NULL AS type, ENGINE AS engine, TABLE_TYPE = 'VIEW' AS is_view FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (${
          names.map(() => "?").join(", ")
        })`,
        names,
      );
      for (const tbl of rows.map((row) => String(row.tbl))) {
        if (!detailed.includes(tbl)) continue;
        for (const { name, type } of (await mysqlTable(on, tbl))?.columns ?? []) {
          rows.push({ tbl, name, type, engine: null });
        }
      }
      return rows;
    },
    upsertTail: (_key, columns, set = {}) =>
      ` ON DUPLICATE KEY UPDATE ${
        columns.map((c) => `\`${c}\` = ${set[c] ?? `VALUES(\`${c}\`)`}`).join(", ")
      }`,
    inserted: (column) => `VALUES(\`${column}\`)`,
    deleteOldest: (table, where, by) =>
      `DELETE FROM ${table} WHERE ${where} ORDER BY ${by} LIMIT ?`,
    renameTable: (from, to) => `RENAME TABLE ${from} TO ${to};`,
    rowsPerUpdate: 100,
    dataVersionSql: null,
    noIndex: (column) => column,
    forceIndex: (index) => ` FORCE INDEX (${index})`,
    transactionalDdl: false,
  },
  sqlite: {
    dialect: "sqlite",
    padsIds: false,
    // BEGIN IMMEDIATE already holds the database's write lock.
    forUpdate: "",
    onDuplicateIgnore: " ON CONFLICT DO NOTHING",
    nowDatetime: "strftime('%Y-%m-%d %H:%M:%f', 'now')",
    nowMs: SQLITE_NOW_MS,
    // xinfo: table_info leaves out generated columns (jm_syslog's job_id, run_id).
    columns: async (on, table) =>
      (await on.all("SELECT name FROM pragma_table_xinfo(?)", [table])).map((row) =>
        String(row.name)
      ),
    indexesSql: "SELECT name FROM pragma_index_list(?)",
    // Each name looked up as pragma_table_info looks it up: in any case, a view too.
    tableColumns: (on, names, _detailed) => {
      const asked = `(VALUES ${Array(names.length).fill("(?)").join(", ")}) t`;
      return on.all(
        `SELECT t.column1 AS tbl, c.name AS name, c.type AS type, NULL AS is_view FROM ${asked}, pragma_table_info(t.column1) c
         UNION ALL SELECT t.column1, NULL, NULL, 1 FROM ${asked} JOIN sqlite_master m ON m.type = 'view' AND m.name = t.column1 COLLATE NOCASE`,
        [...names, ...names],
      );
    },
    upsertTail: (key, columns, set = {}) =>
      ` ON CONFLICT (${key}) DO UPDATE SET ${
        columns.map((c) => `\`${c}\` = ${set[c] ?? `excluded.\`${c}\``}`).join(", ")
      }`,
    inserted: (column) => `excluded.\`${column}\``,
    // SQLite's DELETE takes no LIMIT unless compiled for it.
    // Named: with a status among the conditions, the planner took the status index and sorted.
    deleteOldest: (table, where, by) =>
      `DELETE FROM ${table} WHERE id IN (SELECT id FROM ${table} INDEXED BY ${table}_${by} WHERE ${where} ORDER BY ${by} LIMIT ?)`,
    renameTable: (from, to) => `ALTER TABLE ${from} RENAME TO ${to};`,
    rowsPerUpdate: 1,
    dataVersionSql: "PRAGMA data_version",
    noIndex: (column) => `+${column}`,
    forceIndex: () => "",
    transactionalDdl: true,
  },
};
