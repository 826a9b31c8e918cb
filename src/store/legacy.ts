/**
 * Reading the original JobsManager's APScheduler 3 job table (SQLAlchemy's
 * `id`, `next_run_time`, `job_state`), in this database or another one.
 * Read only: the rows are only selected, never changed.
 */
import { NotFoundError, RuntimeError, UsageError } from "../errors.ts";
import type { Driver } from "./driver.ts";
import { isNoSuchDatabase, MysqlDriver } from "./mysql.ts";
import { SqliteDriver } from "./sqlite.ts";
import { type DatabaseTarget, serverOf } from "./target.ts";

/** One row of an APScheduler 3 SQLAlchemy job table. */
export interface LegacyRow {
  id: string;
  /** Epoch seconds; null when the job is paused. */
  next_run_time: number | null;
  /** The pickled job state, not decoded; null when the column holds no BLOB (see `held`). */
  job_state: Uint8Array | null;
  /** What the column holds when it is no BLOB: `NULL`, `text`, `a number`. */
  held?: string;
}

const COLUMNS = ["id", "next_run_time", "job_state"];
/** Names safe to quote with backticks in both dialects. */
const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_$]{0,63}$/;

/** Every row of `table` in `target`, ordered by id. */
export async function readApschedulerTable(
  target: DatabaseTarget,
  table: string,
): Promise<LegacyRow[]> {
  if (!TABLE_NAME.test(table)) {
    throw new UsageError(
      `table: ${
        JSON.stringify(table)
      } is not a table name (allowed: letters, digits, _ and $, up to 64, not starting with a digit)`,
    );
  }
  if (target.kind === "sqlite") await mustExist(target.path);
  const driver: Driver = target.kind === "sqlite"
    ? SqliteDriver.open(target.path)
    : new MysqlDriver(target);
  try {
    const columns = await columnsOf(driver, target, table);
    if (columns.length === 0) {
      throw new NotFoundError(
        `table ${table} does not exist in ${driver.description}; name the original's table with --table (after the rename jobsmanager asks for it is jm_jobs_apscheduler), or its database with --from-database`,
      );
    }
    const missing = COLUMNS.filter((c) => !columns.includes(c));
    if (missing.length > 0) {
      // After the import, the original's database holds jobsmanager's own jm_jobs under the
      // name --from-database reads by default: the original's table is the renamed one.
      const ours = table.toLowerCase() === "jm_jobs" && columns.includes("command")
        ? ": it is jobsmanager's own jobs table"
        : "";
      throw new RuntimeError(
        `table ${table} in ${driver.description} is not an APScheduler job table (it has no ${
          missing.join(" or ")
        } column)${ours}; name the original's table with --table (after the rename jobsmanager asks for it is jm_jobs_apscheduler)`,
      );
    }
    const rows = await driver.all(
      `SELECT id, next_run_time, job_state FROM \`${table}\` ORDER BY id`,
    );
    // A row whose job_state is no BLOB is one job that cannot be imported, not a failed import.
    return rows.map((row) => {
      const blob = row.job_state instanceof Uint8Array;
      return {
        id: String(row.id),
        next_run_time: row.next_run_time === null ? null : Number(row.next_run_time),
        job_state: blob ? new Uint8Array(row.job_state as Uint8Array) : null,
        ...(blob ? {} : { held: heldInstead(row.job_state) }),
      };
    });
  } finally {
    await driver.close();
  }
}

/**
 * The table's columns. The database read is the original's, named by hand:
 * one that does not exist is a mistyped URL, not one to create (as
 * jobsmanager's own database is).
 */
async function columnsOf(driver: Driver, target: DatabaseTarget, table: string) {
  try {
    return await driver.profile.columns(driver, table);
  } catch (error) {
    if (target.kind !== "mysql" || !isNoSuchDatabase(error)) throw error;
    throw new NotFoundError(
      `database '${target.database}' does not exist on ${
        serverOf(target)
      }; check the URL given to --from-database`,
    );
  }
}

function heldInstead(value: unknown): string {
  if (value === null) return "NULL";
  if (typeof value === "string") return "text";
  if (typeof value === "number" || typeof value === "bigint") return "a number";
  return typeof value;
}

/** Opening a SQLite path that does not exist would create an empty file there. */
async function mustExist(path: string): Promise<void> {
  try {
    await Deno.stat(path);
  } catch {
    throw new NotFoundError(`SQLite database '${path}' does not exist; check --from-database`);
  }
}
