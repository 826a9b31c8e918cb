/**
 * The Store contract (store.ts) written once in SQL both dialects accept;
 * what differs lives in the driver's DialectProfile.
 */
import { ConflictError, DatabaseError, RuntimeError } from "../errors.ts";
import { type Job, JOB_FIELDS, sameDefinition, scheduleText } from "../domain/job.ts";
import { VERSION } from "../version.ts";
import {
  type DialectProfile,
  type Driver,
  eachStatement,
  type Executor,
  insertSql,
  type Param,
  type Row,
  type SqlStatement,
} from "./driver.ts";
import {
  type AlterClause,
  alterClauses,
  MIGRATIONS,
  SCHEMA_TABLES,
  SCHEMA_VERSION,
  SQLITE_JOBS_REBUILD,
  tablesOf,
  versionTable,
  type Widening,
  WIDENINGS,
} from "./migrations.ts";
import type {
  JobChange,
  JobMutation,
  JobsChange,
  JobWrites,
  LastFires,
  LostClaim,
  Marker,
  MigrateOptions,
  MigrationReport,
  MinuteCounts,
  PollState,
  Store,
} from "./store.ts";
import { LAST_FIRES_AHEAD } from "./store.ts";
import type {
  ChannelsLeft,
  ClaimOutcome,
  NotificationClaim,
  PendingCount,
  PendingNotification,
  SilenceCandidate,
  TakenHeld,
} from "./store.ts";
import { fitNote } from "../domain/run.ts";
import { markedLost, OVER_LOST, overLostNote } from "./lost_ends.ts";
import { hereNode } from "../domain/here_run.ts";
import type { NewRun, Run, RunFilter, RunStatus, RunTrigger, RunUpdate } from "../domain/run.ts";
import type { LogFilter, LogRow } from "../domain/log_row.ts";
import type { Node } from "../domain/node.ts";
import * as status from "./sql_status.ts";
import * as notify from "./sql_notify.ts";

const JOB_SELECT = `SELECT ${JOB_FIELDS.map((c) => `\`${c}\``).join(", ")} FROM jm_jobs`;

/** The nodes of `job run --here` runs (`cli@HOST`), as a LIKE pattern. */
const HERE_NODES = `${hereNode("")}%`;

/** Rows per statement when claiming fires in bulk. */
const CLAIM_CHUNK = 500;
/** Jobs per statement when writing many (33 parameters each). */
const JOB_WRITE_CHUNK = 100;
/**
 * Most characters of a marker's two snapshots; beyond, each lists the
 * jobs' ids only. Whole, the snapshots of a change of some 15,000 jobs
 * outgrow MySQL's default 16 MiB packet, and the change failed as a lost
 * connection; those of 10,000 new jobs took 0.4-0.8 s to escape into the
 * statement and parse back out, for a text no one reads whole.
 */
const MARKER_SNAPSHOTS_MAX = 1024 * 1024;

/** The markers a running service names as the last it applied (see `pruneMarkers`). */
const MARKERS_IN_USE =
  "SELECT applied_marker FROM jm_nodes WHERE stopped_at IS NULL AND applied_marker IS NOT NULL";

/**
 * A marker inserted before the cutoff (given twice). A jm_update_info
 * made by hand, which migrate keeps as it finds it, may let insert_time be
 * NULL (the original JobsManager's DDL does not), which no cutoff is
 * after: such a marker stayed for ever. Its
 * update_time, when it was applied, is no earlier than its insertion and
 * stands in for it; with neither, nothing says it is recent.
 */
const INSERTED_BEFORE =
  "(insert_time < ? OR insert_time IS NULL AND (update_time IS NULL OR update_time < ?))";

/**
 * The oldest markers retention may delete (inserted before the cutoff,
 * given twice; limit): applied, not the newest, none a running service
 * last applied; read in the (updated, id) index's order. Recent ones at
 * the lowest ids (a database clock that ran ahead, a time written by hand)
 * are passed over, not taken into a batch the delete would leave, which
 * ended the pruning there.
 */
export const MARKERS_TO_PRUNE =
  `SELECT id FROM jm_update_info WHERE updated = 1 AND ${INSERTED_BEFORE} AND id < (SELECT MAX(id) FROM jm_update_info) AND id NOT IN (${MARKERS_IN_USE}) ORDER BY id LIMIT ?`;

/** Another process claimed one of a batch of fires meanwhile. */
class ClaimRace extends Error {}

/** What makes a fire one: its row's unique key (job, instant, trigger), for a run or a row. */
function fireKey(r: { [column: string]: unknown }): string {
  return `${r.scheduled_at}|${r.trigger}|${r.job_id}`;
}

/**
 * Characters of text values per statement writing many rows (a run's
 * output may be megabytes, a job's command 64 kB, escaped twice as long):
 * under 16 MiB packets.
 */
const TEXT_BUDGET = 2 * 1024 * 1024;

/** Characters of the text among `values` (another value counts as 8). */
function textOf(values: readonly Param[]): number {
  return values.reduce<number>((n, v) => n + (typeof v === "string" ? v.length : 8), 0);
}

/**
 * `items` in chunks of at most `size`; with `weigh`, also of at most
 * TEXT_BUDGET characters of text (a heavier item alone).
 */
function chunks<T>(items: readonly T[], size: number, weigh?: (item: T) => number): T[][] {
  const out: T[][] = [];
  let chunk: T[] = [];
  let text = 0;
  for (const item of items) {
    const weight = weigh?.(item) ?? 0;
    if (chunk.length === size || (chunk.length > 0 && text + weight > TEXT_BUDGET)) {
      out.push(chunk);
      chunk = [];
      text = 0;
    }
    chunk.push(item);
    text += weight;
  }
  if (chunk.length > 0) out.push(chunk);
  return out;
}

/** Each schema table's column names, and (`types`) the type of each `table.column`. */
type SchemaTables = Map<string, string[]> & {
  types: Map<string, string>;
  /** MySQL: each table's storage engine. */
  engines: Map<string, string>;
  /** Names of the schema's tables that are views: not among the tables. */
  views: string[];
};

/** Tables of the schema `tables` (from `schemaTables`) lacks. */
function missingTables(tables: Map<string, string[]>): string[] {
  return SCHEMA_TABLES.filter((table) => !tables.has(table));
}

/** Columns of the original project's APScheduler job store. */
const APSCHEDULER_COLUMNS = ["next_run_time", "job_state"];

const UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * A value SQLite holds as a BLOB (a row written by hand, X'30'): the text
 * its bytes spell in UTF-8, which is what was meant; other bytes are kept
 * as they are, for validateJob to name the column. Any other value as it is.
 */
function unBlob(v: unknown): unknown {
  if (!(v instanceof Uint8Array)) return v;
  try {
    return UTF8.decode(v);
  } catch {
    return v;
  }
}

/**
 * A text column. String() of a BLOB would be its bytes as numbers
 * ("101,99,104"), a command run as garbage.
 */
function textColumn(v: unknown): string {
  const text = unBlob(v);
  return (typeof text === "string" || text instanceof Uint8Array ? text : String(text)) as string;
}

function lossyText(v: unknown): string {
  return v instanceof Uint8Array ? new TextDecoder().decode(v) : String(v);
}

const nullableText = (v: unknown) => v === null || v === undefined ? null : textColumn(v);

/**
 * A numeric column. What a hand-written row holds that is no number
 * (SQLite keeps 'abc' or '' in an INTEGER column) is kept as written, not
 * made NaN or 0: validateJob then names it as it is (`timeout: "abc" is
 * not valid`). So are digits beyond 2^53, which mysql2 and the SQLite
 * driver give as text: as a number they would be another number.
 */
function numberColumn(v: unknown): number {
  if (typeof v === "number") return v;
  const value = unBlob(v);
  if (typeof value === "string" && value.trim() === "") return value as unknown as number;
  const n = Number(value);
  return Number.isNaN(n) ||
      (typeof value === "string" && Number.isInteger(n) && !Number.isSafeInteger(n))
    ? value as number
    : n;
}

function nullableNumber(v: unknown): number | null {
  return v === null || v === undefined ? null : numberColumn(v);
}

/**
 * A flag column: 0 is false, another number true. Else as written
 * (SQLite keeps 'false' or '' in an INTEGER column): read as a number,
 * 'false' was true and '' false; validateJob names it instead.
 */
function boolColumn(v: unknown): boolean {
  const n = numberColumn(v);
  return typeof n === "number" ? n !== 0 : n as unknown as boolean;
}

function nullableBool(v: unknown): boolean | null {
  return v === null || v === undefined ? null : boolColumn(v);
}

function parseJson<T>(v: unknown, fallback: T): T {
  v = unBlob(v);
  if (v === null || v === undefined || v === "") return fallback;
  return (typeof v === "string" ? JSON.parse(v) : v) as T;
}

/**
 * The env column as written. Not validated here: a row someone broke by
 * hand must still load, so that validateJob can name the job and the fix.
 */
function envColumn(v: unknown): Record<string, string> {
  try {
    return parseJson<Record<string, string>>(v, {});
  } catch {
    return v as Record<string, string>;
  }
}

/** Where each field of a job is among the values of a row JOB_SELECT reads. */
const AT = Object.fromEntries(JOB_FIELDS.map((field, i) => [field, i])) as Record<
  typeof JOB_FIELDS[number],
  number
>;

/** A row of jm_jobs, as JOB_SELECT's values, as a Job; tolerant of what hand-written SQL may leave. */
function valuesToJob(row: unknown[]): Job {
  return {
    // Lossy, for a key: bytes that are no UTF-8 leave U+FFFD, which validateId names.
    id: typeof row[AT.id] === "string" ? row[AT.id] as string : lossyText(row[AT.id]),
    command: textColumn(row[AT.command]),
    second: textColumn(row[AT.second]),
    minute: textColumn(row[AT.minute]),
    hour: textColumn(row[AT.hour]),
    day: textColumn(row[AT.day]),
    month: textColumn(row[AT.month]),
    day_of_week: textColumn(row[AT.day_of_week]),
    timezone: nullableText(row[AT.timezone]),
    timeout: numberColumn(row[AT.timeout]),
    enabled: boolColumn(row[AT.enabled]),
    max_instances: nullableNumber(row[AT.max_instances]),
    coalesce: nullableBool(row[AT.coalesce]),
    misfire_grace_time: nullableNumber(row[AT.misfire_grace_time]),
    env: envColumn(row[AT.env]),
    cwd: nullableText(row[AT.cwd]),
    description: nullableText(row[AT.description]),
    retries: numberColumn(row[AT.retries]),
    retry_delay: numberColumn(row[AT.retry_delay]),
    retry_max_delay: numberColumn(row[AT.retry_max_delay]),
    retry_on: textColumn(row[AT.retry_on]),
    retry_overlap: boolColumn(row[AT.retry_overlap]),
    after_job: nullableText(row[AT.after_job]),
    after_outcome: nullableText(row[AT.after_outcome]) as Job["after_outcome"],
    created_at: numberColumn(row[AT.created_at]),
    updated_at: numberColumn(row[AT.updated_at]),
    // Notifications (issue 13, migration 7).
    on_failure: nullableText(row[AT.on_failure]),
    on_failure_url: nullableText(row[AT.on_failure_url]),
    on_recovery: nullableText(row[AT.on_recovery]),
    on_recovery_url: nullableText(row[AT.on_recovery_url]),
    on_success: nullableText(row[AT.on_success]),
    on_success_url: nullableText(row[AT.on_success_url]),
    alert_after: nullableNumber(row[AT.alert_after]),
    // '' written in SQL is what `--user ''` means: the service's own user.
    user: nullableText(row[AT.user]) || null,
  };
}

function jobParams(job: Job): Param[] {
  return JOB_FIELDS.map((c) => c === "env" ? JSON.stringify(job.env) : job[c]);
}

/**
 * `job` as written over `stored`: its `updated_at` strictly after the
 * stored one. The time is the writer's clock, taken before its transaction,
 * so two writes at once could store two versions under one `updated_at`, or
 * a later one under an earlier time; an API client's If-Match names a
 * version by that time and would then accept a change made on a copy that
 * is no longer the stored one.
 */
function laterThan(stored: Job | null, job: Job): Job {
  if (stored === null || job.updated_at > stored.updated_at) return job;
  return { ...job, updated_at: stored.updated_at + 1 };
}

const RUN_COLUMNS = [
  "id",
  "job_id",
  "scheduled_at",
  "started_at",
  "finished_at",
  "status",
  "exit_code",
  "signal",
  "stdout",
  "stderr",
  "node_id",
  "trigger",
  "note",
  "forced",
  "cancel_requested_at",
  "cancel_requested_by",
  "pgid",
  "marker",
  "attempt",
  "first_run_id",
  "parent_run_id",
  "job_updated_at",
] as const;
const RUN_SELECT = `SELECT ${RUN_COLUMNS.map((c) => `\`${c}\``).join(", ")} FROM jm_runs`;
/** Runs without their output (NULL): up to 128 KiB a run that a list does not show. */
const RUN_SELECT_NO_OUTPUT = `SELECT ${
  RUN_COLUMNS.map((c) => c === "stdout" || c === "stderr" ? `NULL AS ${c}` : `\`${c}\``).join(", ")
} FROM jm_runs`;

/**
 * The newest run of each job in jm_jobs. MySQL finds each job's largest id
 * in jm_runs_job by a loose index scan (two entries a job); SQLite, which
 * has none, read an entry of every run for `GROUP BY job_id` (0.11 s at
 * 1 M runs, on the service's thread, for each dashboard poll): it looks
 * into each job's own runs instead (11-14 ms for 2,000 jobs of 250 runs,
 * against 65-68 ms).
 */
export const latestRunsSql = (profile: DialectProfile) =>
  profile.dialect === "mysql"
    ? `${RUN_SELECT_NO_OUTPUT} WHERE id IN (SELECT MAX(id) FROM jm_runs GROUP BY job_id) AND EXISTS (SELECT 1 FROM jm_jobs j WHERE j.id = jm_runs.job_id)`
    : `${RUN_SELECT_NO_OUTPUT} JOIN (SELECT (SELECT r.id FROM jm_runs r WHERE r.job_id = j.id ORDER BY r.id DESC LIMIT 1) AS latest FROM jm_jobs j) l ON jm_runs.id = l.latest`;

/**
 * The runs now running, oldest first: on jm_runs_status (which holds the id
 * too, so no sort), a few rows however many runs have ended.
 */
export const RUNNING_RUNS = `${RUN_SELECT_NO_OUTPUT} WHERE status = 'running' ORDER BY id`;
/** The columns a claim writes: all but the id the database gives. */
const NEW_RUN_COLUMNS = RUN_COLUMNS.filter((c) => c !== "id");

/** The latest instant a Date holds, in ms since the epoch. */
const MAX_INSTANT = 8_640_000_000_000_000;

/**
 * A run's time. One beyond what a Date holds (9223372036854775000, set by
 * hand) is read as the latest a Date holds: beyond, every list showing the
 * run failed to write its time.
 */
function runTime(v: unknown): number {
  const n = Number(v);
  return Math.abs(n) > MAX_INSTANT ? Math.sign(n) * MAX_INSTANT : n;
}

function nullableRunTime(v: unknown): number | null {
  return v === null || v === undefined ? null : runTime(v);
}

function rowToRun(row: Row): Run {
  return {
    id: Number(row.id),
    job_id: String(row.job_id),
    scheduled_at: runTime(row.scheduled_at),
    started_at: nullableRunTime(row.started_at),
    finished_at: nullableRunTime(row.finished_at),
    status: String(row.status) as RunStatus,
    exit_code: nullableNumber(row.exit_code),
    signal: nullableText(row.signal),
    stdout: nullableText(row.stdout),
    stderr: nullableText(row.stderr),
    node_id: nullableText(row.node_id),
    trigger: String(row.trigger) as RunTrigger,
    note: nullableText(row.note),
    forced: Number(row.forced) !== 0,
    cancel_requested_at: nullableRunTime(row.cancel_requested_at),
    cancel_requested_by: nullableText(row.cancel_requested_by),
    pgid: nullableNumber(row.pgid),
    marker: nullableText(row.marker),
    attempt: Number(row.attempt ?? 1),
    first_run_id: nullableNumber(row.first_run_id),
    parent_run_id: nullableNumber(row.parent_run_id),
    job_updated_at: nullableNumber(row.job_updated_at),
  };
}

/** The values of a new run's `columns`, absent ones NULL (forced: 0 or 1, as both dialects store it). */
function runParams(run: NewRun, columns: readonly (keyof Run)[]): Param[] {
  return columns.map((c) =>
    c === "forced"
      ? (run.forced ? 1 : 0)
      : c === "attempt"
      ? run.attempt ?? 1
      : c === "note"
      ? fitNote(run.note ?? null)
      : run[c] ?? null
  );
}

/** A run column's value as written: a note within what the column holds (NOTE_MAX). */
function runValue(column: string, value: unknown): Param {
  return (column === "note" && typeof value === "string" ? fitNote(value) : value) as Param;
}

function rowToMarker(row: Row): Marker {
  return {
    id: Number(row.id),
    updated: Number(row.updated) !== 0,
    insert_time: row.insert_time === null ? "" : String(row.insert_time),
    update_time: row.update_time === null ? null : String(row.update_time),
  };
}

/**
 * A row whose id is `id` and trailing spaces (written in SQL), which MySQL
 * and MariaDB compare as `id` (PAD SPACE): `job add` said the job existed,
 * and `job update` then refused the stored id's characters.
 */
function paddedTwin(id: string, twin: string): ConflictError {
  const quoted = twin.replaceAll("'", "''");
  return new ConflictError(
    `job '${twin}' (its id ends in spaces, written in SQL) stands for '${id}': the database compares ids ignoring trailing spaces; remove it (DELETE FROM jm_jobs WHERE id = '${quoted}') or give it another id (UPDATE jm_jobs SET id = '…' WHERE id = '${quoted}'), then run this again`,
  );
}

/** Refuse jobs to put whose id a stored one's stands for, but for its trailing spaces. */
function refusePaddedTwins(stored: readonly Job[], put: readonly Job[]): void {
  const padded = new Map<string, string>();
  for (const job of stored) {
    const bare = job.id.replace(/ +$/, "");
    if (bare !== job.id) padded.set(bare, job.id);
  }
  if (padded.size === 0) return;
  for (const job of put) {
    const twin = padded.get(job.id.replace(/ +$/, ""));
    if (twin !== undefined && twin !== job.id) throw paddedTwin(job.id, twin);
  }
}

/**
 * The runs a service must cancel: its own, running or waiting for a worker,
 * and retries no service took yet (any service may; one does).
 */
const CANCELS =
  "cancel_requested_at IS NOT NULL AND (status IN ('running', 'queued') AND node_id = ? OR status = 'queued' AND node_id IS NULL AND `trigger` = 'retry')";

/**
 * The scheduled fires beyond an instant (`?`), the first `?` of them: on
 * jm_runs_scheduled_at, and ordered by it too (by id, SQLite read the
 * whole table, 150 ms for 2 M runs, to find none, as it most often does).
 */
export const FIRES_AHEAD_SQL =
  "SELECT id, job_id, scheduled_at FROM jm_runs WHERE scheduled_at > ? AND `trigger` = 'schedule' ORDER BY scheduled_at, id LIMIT ?";

/**
 * Each job's newest scheduled fire (`bounded`: at or before `?`), from the
 * end of its part of the unique key (job_id, scheduled_at, trigger): a
 * MAX grouped by job read the whole index (2-3 s for 5 M runs) while a
 * node taking jobs over held their fires.
 */
export function lastFiresSql(bounded: boolean): string {
  return `SELECT j.id AS job_id, (SELECT r.scheduled_at FROM jm_runs r WHERE r.job_id = j.id AND r.\`trigger\` = 'schedule'${
    bounded ? " AND r.scheduled_at <= ?" : ""
  } ORDER BY r.scheduled_at DESC LIMIT 1) AS last, j.enabled_at FROM jm_jobs j`;
}

/**
 * Record when the current schedule of jobs just written applies from
 * (`enabled_at`; changeJob, changeJobs): the time of the write, `at`, for
 * each that it enabled or, enabled, gave another schedule (`schedulesAnew`).
 * `at` is the `updated_at` the writer gave (its clock), not the one stored:
 * a writer whose clock was once ahead left an `updated_at` in the future,
 * which every write since stores plus 1 ms (`laterThan`), so a schedule
 * would apply from that future time however right the clocks are now.
 */
async function markScheduleFrom(
  executor: Executor,
  writes: { id: string; at: number }[],
  rowsPerUpdate: number,
) {
  const byTime = Map.groupBy(writes, (write) => write.at);
  for (const [at, same] of byTime) {
    for (const chunk of chunks(same.map((write) => write.id), rowsPerUpdate)) {
      await executor.run(
        `UPDATE jm_jobs SET enabled_at = ? WHERE id IN (${chunk.map(() => "?").join(", ")})`,
        [at, ...chunk],
      );
    }
  }
}

/**
 * Whether writing `after` over `before` (null: none stored) starts the
 * schedule `after` fires by: it adds or enables the job, or gives the
 * enabled job other fire times (its six fields, its zone). Its command,
 * description, timeout... do not: the fires owed across a restart stay owed.
 */
function schedulesAnew(before: Job | null, after: Job): boolean {
  if (!after.enabled) return false;
  if (before === null || !before.enabled) return true;
  return scheduleText(before) !== scheduleText(after) || before.timezone !== after.timezone;
}

export class SqlStore implements Store {
  constructor(private readonly driver: Driver) {}

  get kind() {
    return this.driver.profile.dialect;
  }

  get description() {
    return this.driver.description;
  }

  get created() {
    return this.driver.created;
  }

  /** Set once `migrate` made jobsmanager's schema where there was none (see `Store.madeSchema`). */
  #madeSchema = false;

  get madeSchema(): boolean {
    return this.#madeSchema;
  }

  /** Whether the database held tables of another's when this store's migration found none of ours. */
  #heldOthers = false;

  async migrate(options: MigrateOptions = {}): Promise<MigrationReport> {
    const report = await this.migrateSchema(options);
    // Version 0 under the lock: no jobsmanager schema was there. An empty SQLite file another
    // command made a moment ago (commands started at once) is that command's to tell of.
    if (report.from === 0 && report.applied.length > 0 && this.#heldOthers) {
      this.#madeSchema = true;
    }
    return report;
  }

  private async migrateSchema(options: MigrateOptions): Promise<MigrationReport> {
    const upgrade = options.upgrade ?? true;
    let tables = await this.schemaTables(this.driver);
    this.refuseViews(tables);
    this.refuseOriginalTables(tables);
    this.refuseWithoutTransactions(tables);
    let current = await this.schemaVersion(this.driver, tables);
    this.refuseNewer(current);
    if (!upgrade) {
      // Refused before anything is written (a user allowed only to read and write rows would
      // be refused the DDL first, with the wrong reason).
      ({ tables, version: current } = await this.settled(tables, current));
      this.refuseNewer(current);
      this.refuseOlder(current);
    }
    if (
      current === SCHEMA_VERSION && missingTables(tables).length === 0 &&
      this.narrowColumns(tables).length === 0
    ) {
      return { from: current, to: current, applied: [], created: [] };
    }
    return await this.driver.withMigrationLock(async (tx) => {
      await tx.run(versionTable(this.kind));
      // Another process may have migrated while this one waited for the lock.
      const locked = await this.schemaTables(tx);
      const from = await this.schemaVersion(tx, locked);
      if (from === 0) this.#heldOthers = await this.holdsOtherTables(tx);
      this.refuseNewer(from);
      // An older service may have made the schema since the check above.
      if (!upgrade) this.refuseOlder(from);
      // Before the new migrations, which may alter a missing table. Only one an applied
      // migration made was dropped: a later one makes the others (jm_notifications, by 7).
      const made = MIGRATIONS.filter((m) => m.version <= from)
        .flatMap((m) => m.statements[this.kind].flatMap(tablesOf));
      const created = from === 0 ? [] : missingTables(locked).filter((t) => made.includes(t));
      for (const table of created) {
        for (const migration of MIGRATIONS.filter((m) => m.version <= from)) {
          for (const statement of migration.statements[this.kind]) {
            if (tablesOf(statement).includes(table)) await tx.run(statement);
          }
        }
      }
      const applied: number[] = [];
      for (const migration of MIGRATIONS.filter((m) => m.version > from)) {
        // Judged once, before its first statement: the rebuild takes jm_jobs away for a moment.
        let rebuild: boolean | undefined;
        for (const statement of migration.statements[this.kind]) {
          if (SQLITE_JOBS_REBUILD.statements.includes(statement)) {
            rebuild ??= await this.jobsRebuildLeft(tx);
            if (rebuild) await tx.run(statement);
            continue;
          }
          const left = await this.stillToDo(tx, statement);
          if (left !== null) await tx.run(left);
        }
        await tx.run(
          "INSERT INTO jm_schema_version (version, name, applied_at) VALUES (?, ?, ?)",
          [migration.version, migration.name, Date.now()],
        );
        applied.push(migration.version);
      }
      const widened: string[] = [];
      for (const widening of this.narrowColumns(await this.schemaTables(tx))) {
        await tx.run(widening.sql);
        widened.push(`${widening.table}.${widening.column}`);
      }
      return {
        from,
        to: SCHEMA_VERSION,
        applied,
        created,
        ...(widened.length === 0 ? {} : { widened }),
      };
    });
  }

  /**
   * What of a migration's statement is left to do: an ALTER without the
   * columns and indexes the table has already (null when it has them all).
   * MySQL's DDL is not transactional: a migration stopped half-way (its
   * ALTER killed, the connection lost) kept what it did, unrecorded, and
   * every later migrate failed on it ("Duplicate column name"); so did a
   * jm_schema_version row lost. A column or index is known by its name.
   */
  private async stillToDo(tx: Executor, statement: string): Promise<string | null> {
    const alter = alterClauses(statement);
    if (alter === null) return statement;
    const wanted = (kind: AlterClause["kind"]) => alter.clauses.some((c) => c.kind === kind);
    const columns = new Set(
      wanted("column") ? await this.driver.profile.columns(tx, alter.table) : [],
    );
    const indexes = new Set(
      wanted("key")
        ? (await tx.all(this.driver.profile.indexesSql, [alter.table])).map((row) =>
          String(row.name)
        )
        : [],
    );
    const left = alter.clauses.filter((c) =>
      !(c.kind === "column" ? columns : indexes).has(c.name)
    );
    if (left.length === 0) return null;
    return `ALTER TABLE ${alter.table} ${left.map((c) => c.text).join(", ")}`;
  }

  /**
   * Whether SQLite's jm_jobs is still to be rebuilt (SQLITE_JOBS_REBUILD):
   * it has a default the rebuild replaces. Its version row lost, a
   * rebuilt table is not rebuilt again, over the columns of the
   * migrations after it; nor is one that has columns the rebuild would
   * not copy (refused, saying which).
   */
  private async jobsRebuildLeft(tx: Executor): Promise<boolean> {
    const columns = await tx.all("SELECT name, dflt_value AS d FROM pragma_table_info('jm_jobs')");
    const replaced = columns.some((c) =>
      (c.name === "created_at" || c.name === "updated_at") &&
      String(c.d ?? "").includes(SQLITE_JOBS_REBUILD.replaces)
    );
    if (!replaced) return false;
    const lost = columns.map((c) => String(c.name)).filter((name) =>
      !SQLITE_JOBS_REBUILD.copies.includes(name)
    );
    if (lost.length > 0) {
      throw new RuntimeError(
        `table jm_jobs in ${this.description} has created_at and updated_at defaults from before schema version 4, and columns that migration 4's rebuild of it would not copy (${
          lost.join(", ")
        }); jobsmanager changed nothing. Give those two columns the default (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)) by hand (SQLite makes a copy of the table for that: https://www.sqlite.org/lang_altertable.html#otheralter), then run \`jobsmanager db migrate\``,
      );
    }
    return true;
  }

  async hasSchema(): Promise<boolean> {
    let tables = await this.schemaTables(this.driver);
    this.refuseViews(tables);
    this.refuseOriginalTables(tables);
    this.refuseWithoutTransactions(tables);
    if (!tables.has("jm_schema_version")) return false;
    let version = await this.schemaVersion(this.driver, tables);
    ({ tables, version } = await this.settled(tables, version));
    this.refuseNewer(version);
    this.refuseOlder(version);
    // What `migrate` would make again: a command that does not migrate would fail on it later.
    const missing = missingTables(tables);
    if (missing.length > 0) {
      const one = missing.length === 1;
      throw new RuntimeError(
        `${this.description} lacks the table${one ? "" : "s"} ${
          missing.join(", ")
        } of its schema (dropped by hand?); this command changed nothing. Create ${
          one ? "it" : "them"
        } again, empty, with \`jobsmanager db migrate\``,
      );
    }
    return true;
  }

  /**
   * The schema tables present, jm_schema_version included, with their
   * engines (MySQL); the column names of jm_jobs, jm_syslog (the original
   * JobsManager's are told by them) and those WIDENINGS name, and the types
   * of those (in `types`, by `table.column`). At the start of every
   * command: one query on SQLite; on MySQL one, then one a table read
   * whole (see `DialectProfile.tableColumns`).
   */
  /** Whether the database holds a table that is not jobsmanager's version table. */
  private async holdsOtherTables(executor: Executor): Promise<boolean> {
    const [row] = await executor.all(
      this.kind === "sqlite"
        ? "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name <> 'jm_schema_version' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        : "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name <> 'jm_schema_version'",
    );
    return Number(row.n) > 0;
  }

  private async schemaTables(executor: Executor): Promise<SchemaTables> {
    const names = [...SCHEMA_TABLES, "jm_schema_version"];
    const rows = await this.driver.profile.tableColumns(executor, names, [
      "jm_jobs",
      "jm_syslog",
      ...WIDENINGS[this.kind].map((w) => w.table),
    ]);
    const tables: SchemaTables = Object.assign(new Map<string, string[]>(), {
      types: new Map<string, string>(),
      engines: new Map<string, string>(),
      views: [] as string[],
    });
    for (const row of rows) {
      const table = String(row.tbl);
      if (Number(row.is_view) === 1) {
        tables.views.push(table);
        continue;
      }
      if (row.name === null) {
        tables.engines.set(table, String(row.engine));
        if (!tables.has(table)) tables.set(table, []);
        continue;
      }
      const columns = tables.get(table) ?? [];
      columns.push(String(row.name));
      tables.set(table, columns);
      tables.types.set(`${table}.${row.name}`, String(row.type).toLowerCase());
    }
    for (const view of tables.views) tables.delete(view);
    return tables;
  }

  /** The columns of WIDENINGS `tables` holds narrower than the schema declares. */
  private narrowColumns(tables: SchemaTables): Widening[] {
    return WIDENINGS[this.kind].filter((w) =>
      w.narrower.includes(tables.types.get(`${w.table}.${w.column}`) ?? "")
    );
  }

  /**
   * The schema as it stands once no migration is under way: an older
   * version may be another process's migration half done where DDL commits
   * statement by statement (MySQL), as when several first commands make a
   * new database at once; read again, without writing, once that process
   * has let go of the lock. Elsewhere, and for a current schema, as read.
   */
  private async settled(
    tables: SchemaTables,
    version: number,
  ): Promise<{ tables: SchemaTables; version: number }> {
    if (this.driver.profile.transactionalDdl || version === 0 || version >= SCHEMA_VERSION) {
      return { tables, version };
    }
    return await this.driver.withMigrationLock(async (tx) => {
      const now = await this.schemaTables(tx);
      return { tables: now, version: await this.schemaVersion(tx, now) };
    });
  }

  private async schemaVersion(executor: Executor, tables: Map<string, string[]>): Promise<number> {
    if (!tables.has("jm_schema_version")) return 0;
    const rows = await executor.all("SELECT MAX(version) AS v FROM jm_schema_version");
    return Number(rows[0]?.v ?? 0);
  }

  /**
   * Views where the schema's tables go (made by hand, or by a tool that
   * copied the schema): jobsmanager writes rows there, and CREATE TABLE IF
   * NOT EXISTS would pass over them. Said as views before the checks of
   * tables, which would take one for the original JobsManager's or for a
   * table without transactions.
   */
  private refuseViews(tables: SchemaTables): void {
    const views = tables.views.toSorted();
    if (views.length === 0) return;
    const one = views.length === 1;
    throw new RuntimeError(
      `${views.join(", ")} in ${this.description} ${
        one ? "is a view" : "are views"
      }, where jobsmanager needs ${
        one ? "a table" : "tables"
      } (it writes its rows there); jobsmanager changed nothing. Drop ${one ? "it" : "them"} (${
        views.map((view) => `\`DROP VIEW ${view};\``).join(" ")
      }; keep ${
        one ? "its definition" : "their definitions"
      } first if wanted), then run \`jobsmanager db migrate\`, which makes ${
        one ? "the table" : "the tables"
      }`,
    );
  }

  /**
   * MySQL tables in an engine without transactions (a server whose
   * `enforce_storage_engine` or `default_storage_engine` made them Aria or
   * MyISAM): a claim, a change and its reload marker would no longer be
   * one write, and a failed command would leave half of itself behind.
   */
  private refuseWithoutTransactions(tables: SchemaTables): void {
    const other = [...tables.engines].filter(([, engine]) => engine.toLowerCase() !== "innodb");
    if (other.length === 0) return;
    throw new RuntimeError(
      `${this.description}: ${
        other.map(([table, engine]) => `${table} is ${engine}`).join(", ")
      }, an engine without transactions, which jobsmanager needs (a change and its reload marker are one write); jobsmanager changed nothing. Convert ${
        other.length === 1 ? "it" : "them"
      }: ${
        other.map(([table]) => `ALTER TABLE ${table} ENGINE=InnoDB;`).join(" ")
      } (and check the server's enforce_storage_engine and default_storage_engine)`,
    );
  }

  private refuseNewer(version: number): void {
    if (version > SCHEMA_VERSION) {
      throw new RuntimeError(
        `${this.description} has schema version ${version}, newer than this jobsmanager ${VERSION} understands (${SCHEMA_VERSION}); run the jobsmanager release that migrated it, or a newer one`,
      );
    }
  }

  /**
   * Only `serve` and `db migrate` upgrade a schema: once upgraded, the
   * services of the older release refuse it and cannot start again, so an
   * upgrade must never be the side effect of another command. A schema of
   * version 0 (its table made, no migration recorded) is a new database.
   */
  private refuseOlder(version: number): void {
    if (version > 0 && version < SCHEMA_VERSION) {
      throw new RuntimeError(
        `${this.description} has schema version ${version}, older than this jobsmanager ${VERSION} uses (${SCHEMA_VERSION}); this command changed nothing. Upgrade it with \`jobsmanager db migrate\` (or by starting this release's \`jobsmanager serve\`); services of the older release cannot start on it once it is migrated, so upgrade them together`,
      );
    }
  }

  /**
   * The original project's jm_jobs (its APScheduler job store) and jm_syslog,
   * refused together: naming one at a time sent the operator back to rename
   * the other after the first was done. The original's jm_syslog has no
   * context column and keeps its times in its own way: writing into it would
   * fail on every log line. Ours always has a context column, so it is never
   * mistaken for it.
   */
  private refuseOriginalTables(tables: SchemaTables): void {
    const jobsColumns = tables.get("jm_jobs");
    const foreign = jobsColumns === undefined
      ? []
      : APSCHEDULER_COLUMNS.filter((c) => jobsColumns.includes(c));
    const logColumns = tables.get("jm_syslog");
    const originalLog = logColumns !== undefined && !logColumns.includes("context");
    if (foreign.length === 0 && !originalLog) return;
    const rename = (table: string, to: string) =>
      `\`${this.driver.profile.renameTable(table, to)}\``;
    const jobStore = `APScheduler job store (it has ${foreign.join(" and ")})`;
    const logTable = "log table (it has no context column)";
    const importJobs = "bring its jobs in with `jobsmanager import apscheduler` (which migrates)";
    if (!originalLog) {
      throw new RuntimeError(
        `table jm_jobs in ${this.description} is the original JobsManager's ${jobStore}; jobsmanager changed nothing. Move it aside with ${
          rename("jm_jobs", "jm_jobs_apscheduler")
        }, then ${importJobs}`,
      );
    }
    if (foreign.length === 0) {
      throw new RuntimeError(
        `table jm_syslog in ${this.description} is the original JobsManager's ${logTable}; jobsmanager changed nothing. Move it aside with ${
          rename("jm_syslog", "jm_syslog_original")
        } (its rows stay there to read), then run \`jobsmanager db migrate\``,
      );
    }
    throw new RuntimeError(
      `tables jm_jobs and jm_syslog in ${this.description} are the original JobsManager's: jm_jobs its ${jobStore}, jm_syslog its ${logTable}; jobsmanager changed nothing. Move both aside with ${
        rename("jm_jobs", "jm_jobs_apscheduler")
      } and ${
        rename("jm_syslog", "jm_syslog_original")
      } (the log's rows stay there to read), then ${importJobs}`,
    );
  }

  async listJobs(): Promise<Job[]> {
    return await this.driver.mapValues(`${JOB_SELECT} ORDER BY id`, [], valuesToJob);
  }

  async *jobsInChunks(size: number): AsyncIterable<Job[]> {
    const after = (id: string | null) => {
      const chunk = this.driver.mapValues(
        `${JOB_SELECT}${id === null ? "" : " WHERE id > ?"} ORDER BY id LIMIT ?`,
        id === null ? [size] : [id, size],
        valuesToJob,
      );
      // Heard from the start: it may fail while the chunk before is used, or
      // never be awaited (the reader left early); awaited, it still throws.
      chunk.catch(() => undefined);
      return chunk;
    };
    let next = after(null);
    for (;;) {
      const jobs = await next;
      // Asked for now, so that it is read while this chunk is used.
      if (jobs.length === size) next = after(jobs[size - 1].id);
      if (jobs.length > 0) yield jobs;
      if (jobs.length < size) return;
    }
  }

  async getJob(id: string): Promise<Job | null> {
    const found = await this.driver.mapValues(`${JOB_SELECT} WHERE id = ?`, [id], valuesToJob);
    return found.find((job) => job.id === id) ?? null;
  }

  async changeJob(id: string, mutate: JobMutation): Promise<JobChange> {
    return await this.driver.transaction(async (tx) => {
      const found = await tx.mapValues(
        `${JOB_SELECT} WHERE id = ?${this.driver.profile.forUpdate}`,
        [id],
        valuesToJob,
      );
      const before = found.find((job) => job.id === id) ?? null;
      if (before === null && found.length > 0) throw paddedTwin(id, found[0].id);
      const mutated = mutate(before);
      if (before === null && mutated === null) return { before, after: mutated, markerId: null };
      if (before !== null && mutated !== null && sameDefinition(before, mutated)) {
        return { before, after: before, markerId: null };
      }
      const after = mutated && laterThan(before, mutated);
      if (after === null) {
        await tx.run("DELETE FROM jm_jobs WHERE id = ?", [id]);
      } else if (before === null) {
        await tx.run(
          insertSql("jm_jobs", JOB_FIELDS),
          jobParams(after),
        );
      } else {
        const columns = JOB_FIELDS.filter((c) => c !== "id");
        await tx.run(
          `UPDATE jm_jobs SET ${columns.map((c) => `\`${c}\` = ?`).join(", ")} WHERE id = ?`,
          [...jobParams(after).slice(1), id],
        );
      }
      if (mutated !== null && schedulesAnew(before, mutated)) {
        await markScheduleFrom(
          tx,
          [{ id, at: mutated.updated_at }],
          this.driver.profile.rowsPerUpdate,
        );
      }
      const markerId = await this.insertMarkerWith(
        tx,
        before ? [before] : [],
        after ? [after] : [],
      );
      return { before, after, markerId };
    });
  }

  async changeJobs(mutate: (current: Job[]) => JobWrites): Promise<JobsChange> {
    return await this.driver.transaction(async (tx) => {
      const jobs = await tx.mapValues(
        `${JOB_SELECT} ORDER BY id${this.driver.profile.forUpdate}`,
        [],
        valuesToJob,
      );
      const stored = new Map(jobs.map((job) => [job.id, job]));
      const writes = mutate([...stored.values()]);
      if (this.driver.profile.padsIds) refusePaddedTwins(jobs, writes.put);
      const before: Job[] = [];
      const after: Job[] = [];
      const added: Job[] = [];
      const changed: Job[] = [];
      for (const job of writes.put) {
        const current = stored.get(job.id);
        if (current && sameDefinition(current, job)) continue;
        if (current) before.push(current);
        const written = laterThan(current ?? null, job);
        (current ? changed : added).push(written);
        after.push(written);
      }
      const removed = writes.remove.filter((id) => stored.has(id));
      for (const id of removed) before.push(stored.get(id)!);
      // Many rows a statement, not one each: 10,000 jobs took seconds on
      // MySQL, and on SQLite held the write lock, and so the service's
      // claims, a third longer.
      const others = JOB_FIELDS.filter((c) => c !== "id");
      for (
        const [jobs, tail] of [
          // A job put twice breaks the primary key, as it would one at a time.
          [added, ""],
          [changed, this.driver.profile.upsertTail("id", others)],
        ] as const
      ) {
        for (const chunk of chunks(jobs.map(jobParams), JOB_WRITE_CHUNK, textOf)) {
          await tx.run(insertSql("jm_jobs", JOB_FIELDS, chunk.length, tail), chunk.flat());
        }
      }
      await markScheduleFrom(
        tx,
        // A job these start anew differs from the stored one: it is among those written.
        writes.put.filter((job) => schedulesAnew(stored.get(job.id) ?? null, job))
          .map((job) => ({ id: job.id, at: job.updated_at })),
        this.driver.profile.rowsPerUpdate,
      );
      for (const chunk of chunks(removed, this.driver.profile.rowsPerUpdate)) {
        await tx.run(`DELETE FROM jm_jobs WHERE id IN (${chunk.map(() => "?").join(", ")})`, chunk);
      }
      if (before.length === 0 && after.length === 0) return { before, after, markerId: null };
      return { before, after, markerId: await this.insertMarkerWith(tx, before, after) };
    });
  }

  async insertMarker(before: Job[], after: Job[]): Promise<number> {
    return await this.driver.transaction((tx) => this.insertMarkerWith(tx, before, after));
  }

  private async insertMarkerWith(executor: Executor, before: Job[], after: Job[]): Promise<number> {
    let snapshots = [JSON.stringify(before), JSON.stringify(after)];
    if (snapshots[0].length + snapshots[1].length > MARKER_SNAPSHOTS_MAX) {
      snapshots = [before, after].map((jobs) => JSON.stringify(jobs.map(({ id }) => ({ id }))));
    }
    const result = await executor.run(
      "INSERT INTO jm_update_info (updated, jobs_before_update, jobs_after_update) VALUES (0, ?, ?)",
      snapshots,
    );
    // Who applied a marker of this id before jm_update_info was emptied (TRUNCATE starts
    // MySQL's ids over, as dropping it does SQLite's) applied another: this one is new to all.
    await executor.run("DELETE FROM jm_marker_nodes WHERE marker_id = ?", [result.lastId]);
    return result.lastId;
  }

  async latestMarkerId(): Promise<number> {
    const rows = await this.driver.all("SELECT MAX(id) AS id FROM jm_update_info");
    return Number(rows[0]?.id ?? 0);
  }

  async oldestPendingMarkerId(): Promise<number | null> {
    const rows = await this.driver.all(
      "SELECT MIN(id) AS id FROM jm_update_info WHERE updated = 0",
    );
    return rows[0]?.id === null || rows[0]?.id === undefined ? null : Number(rows[0].id);
  }

  async pollState(nodeId: string, markerId = 0): Promise<PollState> {
    // The conditions of queuedManualRuns, dueQueuedRuns and cancelRequests, each on an index.
    const [row] = await this.driver.all(
      `SELECT (SELECT MAX(id) FROM jm_update_info) AS latest,
        (SELECT insert_time FROM jm_update_info WHERE id = ?) AS marker_at,
        (SELECT insert_time IS NULL FROM jm_update_info WHERE id = ?) AS marker_untimed,
        (SELECT MIN(id) FROM jm_update_info WHERE updated = 0) AS pending,
        EXISTS (SELECT 1 FROM jm_runs WHERE status = 'queued' AND \`trigger\` = 'manual' AND node_id IS NULL) AS manual,
        (SELECT MIN(scheduled_at) FROM jm_runs WHERE status = 'queued' AND \`trigger\` IN ('retry', 'after') AND node_id IS NULL) AS due,
        EXISTS (SELECT 1 FROM jm_runs WHERE ${CANCELS}) AS cancels,
        EXISTS (SELECT 1 FROM jm_runs WHERE status = 'running' AND node_id LIKE ?) AS here`,
      [markerId, markerId, nodeId, HERE_NODES],
    );
    return {
      latestMarker: Number(row.latest ?? 0),
      oldestPendingMarker: row.pending === null || row.pending === undefined
        ? null
        : Number(row.pending),
      // A marker there with no insert_time (a table made by hand may allow it) is not
      // one gone: every poll read every job again.
      markerInserted: row.marker_at !== null && row.marker_at !== undefined
        ? String(row.marker_at)
        : Number(row.marker_untimed) === 1
        ? ""
        : null,
      manualRuns: Number(row.manual) !== 0,
      cancelRequests: Number(row.cancels) !== 0,
      hereRuns: Number(row.here) !== 0,
      nextDueRun: row.due === null || row.due === undefined ? null : Number(row.due),
    };
  }

  async listMarkers(afterId: number, limit: number): Promise<Marker[]> {
    const rows = await this.driver.all(
      "SELECT id, updated, insert_time, update_time FROM jm_update_info WHERE id > ? ORDER BY id LIMIT ?",
      [afterId, limit],
    );
    return rows.map(rowToMarker);
  }

  async markApplied(ids: number[]): Promise<number> {
    if (ids.length === 0) return 0;
    const result = await this.driver.run(
      `UPDATE jm_update_info SET updated = 1, update_time = ${this.driver.profile.nowDatetime} WHERE updated = 0 AND id IN (${
        ids.map(() => "?").join(", ")
      })`,
      ids,
    );
    return result.changes;
  }

  async claimRuns(runs: NewRun[]): Promise<(number | null)[]> {
    if (runs.length === 0) return [];
    // One fire (an every-second job's, most often): its insert alone, which
    // the unique key makes atomic. The transaction around the batch path
    // takes five more round trips on MySQL, each a fire's lag.
    if (runs.length === 1) return [await this.claimOne(this.driver, runs[0])];
    if (runs.length <= CLAIM_CHUNK && runs.every((r) => typeof r.marker === "string")) {
      return await this.claimByMarker(runs);
    }
    try {
      return await this.driver.transaction((tx) => this.claimBatch(tx, runs));
    } catch (error) {
      if (!(error instanceof ClaimRace)) throw error;
      return await this.driver.transaction((tx) => this.claimOneByOne(tx, runs));
    }
  }

  /**
   * Fires that each carry a marker of their own (a service's runs), few
   * enough for one statement: one INSERT that leaves fires claimed before
   * alone (more only for runs whose output passes the text budget,
   * written after an outage), then the rows of these fires read back,
   * this claim's being those with this batch's markers. Three statements
   * in the transaction where the general path takes four, and a race needs
   * no second pass one fire at a time (only a fire the INSERT dropped, see
   * below): an instant's 100 fires were claimed in a median 10.8-13.6 ms on
   * MySQL, now 9.2-9.4 (SQLite 3.1-3.9, now 2.6-2.7), the start of each run
   * waiting as long. In one transaction, so that a claim that fails
   * leaves no row; a claim sent again after its commit's answer was lost
   * gets its own ids back (but for a fire the INSERT dropped, below). The
   * statements go as one batch (on MySQL one round trip, not four: see
   * `Driver.batch`; in a service firing 100 jobs a second, the claim's
   * median went from 53-55 ms to 21-23, and under a flood of log lines
   * from 65-86 to 23-28), unless runs written after an outage carry so
   * much output that the INSERT is cut in several, each a packet of its own.
   */
  private async claimByMarker(runs: NewRun[]): Promise<(number | null)[]> {
    const rows = runs.map((run) => runParams(run, NEW_RUN_COLUMNS));
    const inserts = chunks(rows, CLAIM_CHUNK, textOf).map((chunk) => ({
      sql: insertSql(
        "jm_runs",
        NEW_RUN_COLUMNS,
        chunk.length,
        this.driver.profile.onDuplicateIgnore,
      ),
      // Runs written after an outage carry their output.
      params: chunk.flat(),
    }));
    const claimed = this.claimedAmong(runs);
    const rowsClaimed =
      (inserts.length === 1
        ? await this.driver.batch([inserts[0], claimed])
        : await this.driver.transaction((tx) => eachStatement(tx, [...inserts, claimed])))
        .at(-1)!;
    const byMarker = new Map<string, Row>();
    const held = new Set<string>();
    for (const row of rowsClaimed) {
      held.add(fireKey(row));
      if (typeof row.marker === "string") byMarker.set(row.marker, row);
    }
    const ids: (number | null)[] = [];
    for (const run of runs) {
      // No row at all: the INSERT dropped it without a word. Concurrent
      // multi-row ON DUPLICATE KEY UPDATEs can hand a row an auto-increment
      // id another claim just took (MySQL bug #66301, still seen on MariaDB
      // 10.11), and `id = id` then "updates" that row instead. Left so, the
      // fire would run nowhere and be recorded nowhere. Claimed on its own,
      // which its unique key makes atomic, after the others committed: its
      // failure, even a refusal, reads as an answer lost (the claim may
      // have been written), so that the fires are claimed again with their
      // markers and get the rows that stand.
      if (!held.has(fireKey(run))) {
        ids.push(
          await this.claimOne(this.driver, run).catch((error: Error) => {
            throw new DatabaseError(
              `${runs.length} fires were claimed but for one the database dropped, whose claim failed: ${error.message}`,
              { cause: error },
            );
          }),
        );
        continue;
      }
      const row = byMarker.get(run.marker!);
      const same = row !== undefined && fireKey(row) === fireKey(run);
      ids.push(same ? Number(row.id) : null);
    }
    return ids;
  }

  /**
   * The fast path, a few statements for any number of fires (one round
   * trip per row would delay 1,000 simultaneous fires by ~180 ms on
   * MySQL): skip fires already claimed, insert the rest in one statement,
   * read their ids back. If another process claimed one in between, the
   * insert count shows it and the slow path decides row by row.
   */
  private async claimBatch(tx: Executor, runs: NewRun[]): Promise<(number | null)[]> {
    const markers = new Map(runs.map((r) => [fireKey(r), r.marker ?? null]));
    const ids = new Map<string, number | null>();
    for (const chunk of chunks(runs, CLAIM_CHUNK)) {
      for (const row of await this.rowsOf(tx, this.claimedAmong(chunk))) {
        // A row with this claim's marker is this claim's, sent again after a lost answer.
        const own = row.marker !== null && row.marker === markers.get(fireKey(row));
        ids.set(fireKey(row), own ? Number(row.id) : null);
      }
    }
    const fresh = runs.filter((r) => !ids.has(fireKey(r)))
      .map((run) => ({ run, params: runParams(run, NEW_RUN_COLUMNS) }));
    // Runs written after an outage carry their output.
    for (const rows of chunks(fresh, CLAIM_CHUNK, ({ params }) => textOf(params))) {
      const result = await tx.run(
        insertSql("jm_runs", NEW_RUN_COLUMNS, rows.length, this.driver.profile.onDuplicateIgnore),
        rows.flatMap(({ params }) => params),
      );
      const chunk = rows.map(({ run }) => run);
      if (result.changes !== chunk.length) throw new ClaimRace();
      const inserted = new Set(chunk.map(fireKey));
      for (const row of await this.rowsOf(tx, this.claimedAmong(chunk))) {
        if (inserted.has(fireKey(row))) ids.set(fireKey(row), Number(row.id));
      }
    }
    return runs.map((r) => ids.get(fireKey(r)) ?? null);
  }

  /**
   * The statement reading the rows that may hold these fires (a superset:
   * the caller matches exact keys). Plain IN lists on the unique key's
   * columns; a row-value IN of hundreds of tuples made MariaDB scan the table.
   */
  private claimedAmong(runs: NewRun[]): SqlStatement {
    const jobIds = [...new Set(runs.map((r) => r.job_id))];
    const instants = [...new Set(runs.map((r) => r.scheduled_at))];
    return {
      sql: `SELECT id, job_id, scheduled_at, \`trigger\`, marker FROM jm_runs WHERE job_id IN (${
        jobIds.map(() => "?").join(", ")
      }) AND scheduled_at IN (${instants.map(() => "?").join(", ")})`,
      params: [...jobIds, ...instants],
    };
  }
  private rowsOf(tx: Executor, { sql, params }: SqlStatement): Promise<Row[]> {
    return tx.all(sql, params);
  }

  private async claimOneByOne(tx: Executor, runs: NewRun[]): Promise<(number | null)[]> {
    const ids: (number | null)[] = [];
    for (const run of runs) ids.push(await this.claimOne(tx, run));
    return ids;
  }

  /**
   * Insert one fire unless it was claimed: its id, or null. Its row
   * already there with its marker is its own (sent again after a lost
   * answer): that row's id.
   */
  private async claimOne(executor: Executor, run: NewRun): Promise<number | null> {
    const result = await executor.run(
      insertSql("jm_runs", NEW_RUN_COLUMNS, 1, this.driver.profile.onDuplicateIgnore),
      runParams(run, NEW_RUN_COLUMNS),
    );
    if (result.changes === 1) return result.lastId;
    if (typeof run.marker !== "string") return null;
    const [row] = await executor.all(
      "SELECT id FROM jm_runs WHERE job_id = ? AND scheduled_at = ? AND `trigger` = ? AND marker = ?",
      [run.job_id, run.scheduled_at, run.trigger, run.marker],
    );
    return row === undefined ? null : Number(row.id);
  }

  async updateRun(
    id: number,
    update: RunUpdate,
    onlyIf?: RunStatus,
    node?: string,
  ): Promise<boolean> {
    const statement = updateRunSql(id, update, onlyIf, node);
    if (statement === null) return false;
    return (await this.driver.run(...statement)).changes === 1;
  }

  async updateRuns(
    updates: readonly { id: number; update: RunUpdate }[],
    node?: string,
    foundLost?: (ids: number[]) => void,
  ): Promise<number[]> {
    const statements = updateRunsSql(updates, this.driver.profile.rowsPerUpdate, node);
    if (statements.length === 0) return [];
    const lost: number[] = [];
    const missing = await this.driver.transaction(async (tx) => {
      const missing: number[] = [];
      lost.length = 0;
      for (const { sql, params, ids, columns, rows, start } of statements) {
        const { changes } = await tx.run(sql, params);
        if (changes >= ids.length) continue;
        // Fewer changed than sent: rows gone, rows marked lost (or ended over `lost`), a start
        // of a row ended, or (MySQL counts changed rows, not matched ones) rows whose values
        // were those already. Only then asked.
        const found = new Map(
          (await tx.all(
            `SELECT id, status, note FROM jm_runs WHERE id IN (${ids.map(() => "?").join(", ")})${
              node === undefined ? "" : " AND node_id = ?"
            }`,
            node === undefined ? ids : [...ids, node],
          )).map((row) => [Number(row.id), row]),
        );
        missing.push(...ids.filter((id) => !found.has(id)));
        for (const row of rows) {
          const now = found.get(row.id);
          const current = now && {
            status: String(now.status) as RunStatus,
            note: now.note === null ? null : String(now.note),
          };
          if (!current || !markedLost(current)) continue;
          lost.push(row.id);
          const over = overLostSql(columns, row, current, start, node);
          if (over !== null) await tx.run(...over);
        }
      }
      return missing;
    });
    if (lost.length > 0) foundLost?.(lost);
    return missing;
  }

  async getRun(id: number): Promise<Run | null> {
    const rows = await this.driver.all(`${RUN_SELECT} WHERE id = ?`, [id]);
    return rows.length === 0 ? null : rowToRun(rows[0]);
  }

  async runStatuses(ids: readonly number[]): Promise<Map<number, RunStatus>> {
    const statuses = new Map<number, RunStatus>();
    for (const chunk of chunks(ids, CLAIM_CHUNK)) {
      const rows = await this.driver.all(
        `SELECT id, status FROM jm_runs WHERE id IN (${chunk.map(() => "?").join(", ")})`,
        [...chunk],
      );
      for (const row of rows) statuses.set(Number(row.id), String(row.status) as RunStatus);
    }
    return statuses;
  }

  async runVersions(
    ids: readonly number[],
  ): Promise<Map<number, Pick<Run, "scheduled_at" | "job_updated_at">>> {
    const versions = new Map<number, Pick<Run, "scheduled_at" | "job_updated_at">>();
    for (const chunk of chunks(ids, CLAIM_CHUNK)) {
      const rows = await this.driver.all(
        `SELECT id, scheduled_at, job_updated_at FROM jm_runs WHERE id IN (${
          chunk.map(() => "?").join(", ")
        })`,
        [...chunk],
      );
      for (const row of rows) {
        versions.set(Number(row.id), {
          scheduled_at: runTime(row.scheduled_at),
          job_updated_at: nullableNumber(row.job_updated_at),
        });
      }
    }
    return versions;
  }

  async activeRunsElsewhere(
    nodeId: string,
    among?: readonly number[],
  ): Promise<Pick<Run, "id" | "job_id" | "node_id">[]> {
    const found: Pick<Run, "id" | "job_id" | "node_id">[] = [];
    const sql = (ids: readonly number[] | null) =>
      `SELECT r.id, r.job_id, r.node_id FROM jm_runs r LEFT JOIN jm_nodes n ON n.id = r.node_id WHERE r.status IN ('running', 'queued') AND r.node_id <> ? AND (r.node_id LIKE ? OR (n.id IS NOT NULL AND n.declared_dead_at IS NULL AND n.stopped_at IS NULL))${
        ids === null ? "" : ` AND r.id IN (${ids.map(() => "?").join(", ")})`
      } ORDER BY r.id`;
    for (const ids of among === undefined ? [null] : chunks(among, CLAIM_CHUNK)) {
      const rows = await this.driver.all(sql(ids), [nodeId, HERE_NODES, ...ids ?? []]);
      for (const row of rows) {
        found.push({
          id: Number(row.id),
          job_id: String(row.job_id),
          node_id: String(row.node_id),
        });
      }
    }
    return found;
  }

  async listRuns(filter: RunFilter): Promise<Run[]> {
    const where: string[] = [];
    const params: Param[] = [];
    if (filter.job_id !== undefined) {
      where.push("job_id = ?");
      params.push(filter.job_id);
    }
    if (filter.status !== undefined) {
      // With a job: along its own runs, not every run of that status (SQLite: 9 s for 5 M runs).
      where.push(
        `${filter.job_id === undefined ? "status" : this.driver.profile.noIndex("status")} = ?`,
      );
      params.push(filter.status);
    }
    if (filter.node_id !== undefined) {
      where.push("node_id = ?");
      params.push(filter.node_id);
    }
    if (filter.since !== undefined) {
      where.push("scheduled_at >= ?");
      params.push(filter.since);
    }
    if (filter.beforeId !== undefined) {
      where.push("id < ?");
      params.push(filter.beforeId);
    }
    const clause = where.length === 0 ? "" : ` WHERE ${where.join(" AND ")}`;
    return await this.driver.map(
      `${
        filter.output === false ? RUN_SELECT_NO_OUTPUT : RUN_SELECT
      }${clause} ORDER BY id DESC LIMIT ?`,
      [...params, filter.limit],
      rowToRun,
    );
  }

  async queuedManualRuns(limit: number): Promise<Run[]> {
    const rows = await this.driver.all(
      `${RUN_SELECT} WHERE status = 'queued' AND \`trigger\` = 'manual' AND node_id IS NULL ORDER BY id LIMIT ?`,
      [limit],
    );
    return rows.map(rowToRun);
  }

  async dueQueuedRuns(now: number, limit: number): Promise<Run[]> {
    const rows = await this.driver.all(
      `${RUN_SELECT} WHERE status = 'queued' AND \`trigger\` IN ('retry', 'after') AND node_id IS NULL AND scheduled_at <= ? ORDER BY scheduled_at, id LIMIT ?`,
      [now, limit],
    );
    return rows.map(rowToRun);
  }

  async cancelRequests(nodeId: string, lostAmong: readonly number[] = []): Promise<Run[]> {
    const rows = await this.driver.all(
      `${RUN_SELECT} WHERE ${CANCELS} ORDER BY id`,
      [nodeId],
    );
    // By id, on the primary key: a node's lost rows of earlier deaths stay out.
    for (const chunk of chunks(lostAmong, CLAIM_CHUNK)) {
      rows.push(
        ...await this.driver.all(
          `${RUN_SELECT} WHERE cancel_requested_at IS NOT NULL AND status = 'lost' AND node_id = ? AND id IN (${
            chunk.map(() => "?").join(", ")
          })`,
          [nodeId, ...chunk],
        ),
      );
    }
    return rows.map(rowToRun).sort((a, b) => a.id - b.id);
  }

  async lostOf(nodeId: string, ids: readonly number[]): Promise<Run[]> {
    const rows: Row[] = [];
    // By id, on the primary key: a node's lost rows of earlier deaths stay out.
    for (const chunk of chunks(ids, CLAIM_CHUNK)) {
      rows.push(
        ...await this.driver.all(
          `${RUN_SELECT} WHERE status = 'lost' AND node_id = ? AND id IN (${
            chunk.map(() => "?").join(", ")
          })`,
          [nodeId, ...chunk],
        ),
      );
    }
    return rows.map(rowToRun).sort((a, b) => a.id - b.id);
  }

  async missLostClaims(
    claims: readonly LostClaim[],
    now: number,
    note: string,
  ): Promise<LostClaim[]> {
    if (claims.length === 0) return [];
    return await this.driver.transaction(async (tx) => {
      const ended: LostClaim[] = [];
      for (const claim of claims) {
        const result = await tx.run(
          "UPDATE jm_runs SET status = 'missed', finished_at = ?, note = ? WHERE job_id = ? AND scheduled_at = ? AND `trigger` = 'schedule' AND marker = ? AND status IN ('queued', 'running')",
          [now, note, claim.job_id, claim.scheduled_at, claim.marker],
        );
        if (result.changes > 0) ended.push(claim);
      }
      return ended;
    });
  }

  async endOrphans(
    nodeId: string,
    now: number,
    lastSeen: number | null,
    outcome: "lost" | "interrupted",
  ): Promise<number[]> {
    const known = lastSeen !== null && lastSeen <= now;
    const how = outcome === "lost" ? "killed or crashed" : "stopped, its record lost";
    const note = `its service ended without recording how it ended (${how})${
      known
        ? `; recorded as ended at its last heartbeat (${
          new Date(lastSeen).toISOString()
        }), or at its start when later`
        : ""
    }`;
    const where = "node_id = ? AND status IN ('running', 'queued')";
    return await this.driver.transaction(async (tx) => {
      // The ids, for the service to retry the lost runs and start what follows them.
      const rows = await tx.all(
        `SELECT id FROM jm_runs WHERE ${where} ORDER BY id${this.driver.profile.forUpdate}`,
        [nodeId],
      );
      if (rows.length === 0) return [];
      await tx.run(
        `UPDATE jm_runs SET status = ?, finished_at = ${status.ENDED_AT_OR_AFTER_START}, note = ? WHERE ${where}`,
        [outcome, known ? lastSeen : now, known ? lastSeen : now, note, nodeId],
      );
      return rows.map((r) => Number(r.id));
    });
  }

  async latestRuns(): Promise<Map<string, Run>> {
    const rows = await this.driver.all(latestRunsSql(this.driver.profile));
    return new Map(rows.map((row) => {
      const run = rowToRun(row);
      return [run.job_id, run];
    }));
  }

  async runningRuns(): Promise<Run[]> {
    return (await this.driver.all(RUNNING_RUNS)).map(rowToRun);
  }

  async lastFires(notAfter: number): Promise<LastFires> {
    const ahead = (await this.driver.all(FIRES_AHEAD_SQL, [notAfter, LAST_FIRES_AHEAD])).map((
      r,
    ) => ({
      id: Number(r.id),
      job_id: String(r.job_id),
      scheduled_at: Number(r.scheduled_at),
    }));
    const rows = await this.driver.all(
      lastFiresSql(ahead.length > 0),
      ahead.length === 0 ? [] : [notAfter],
    );
    return {
      fires: new Map(
        rows.filter((r) => r.last !== null).map((r) => [String(r.job_id), Number(r.last)]),
      ),
      enabledAt: new Map(
        rows.filter((r) => r.enabled_at !== null).map((
          r,
        ) => [String(r.job_id), Number(r.enabled_at)]),
      ),
      ahead,
    };
  }

  pendingMarkers(): Promise<number> {
    return status.pendingMarkers(this.driver);
  }

  countRuns(since: number): Promise<Partial<Record<RunStatus, number>>> {
    return status.countRuns(this.driver, since);
  }

  countRunsByMinute(since: number): Promise<MinuteCounts[]> {
    return status.countRunsByMinute(this.driver, since);
  }

  saveNode(node: Node, declarationSeen?: number | null): Promise<void> {
    return status.saveNode(this.driver, node, declarationSeen);
  }

  databaseNow(): Promise<number> {
    return status.databaseNow(this.driver, this.driver.profile);
  }

  nodesAndNow(): Promise<{ nodes: Node[]; databaseNow: number }> {
    return status.nodesAndNow(this.driver, this.driver.profile);
  }

  claimNode(
    node: Node,
    mayReplace: (existing: Node, databaseNow: number) => boolean,
  ): Promise<Node | null> {
    return status.claimNode(this.driver, node, mayReplace);
  }

  declareDead(
    id: string,
    lastBeat: number,
    by: string,
  ): Promise<{ at: number; lost: number; runIds: number[] } | null> {
    return status.declareDead(this.driver, id, lastBeat, by);
  }

  recordApplied(nodeId: string, ids: number[]): Promise<void> {
    return status.recordApplied(this.driver, nodeId, ids);
  }

  settleMarkers(): Promise<number> {
    return status.settleMarkers(this.driver);
  }

  async pruneMarkers(before: number, limit: number): Promise<number> {
    // As insert_time holds it (UTC, both dialects): '2026-12-07 02:00:43.123'.
    const cutoff = new Date(before).toISOString().slice(0, 23).replace("T", " ");
    return await this.driver.transaction(async (tx) => {
      const ids = (await tx.all(MARKERS_TO_PRUNE, [cutoff, cutoff, limit]))
        .map((r) => Number(r.id));
      if (ids.length === 0) return 0;
      const range = [ids[0], ids[ids.length - 1]];
      // The range's rows checked again (a marker pending when read may have settled since, a
      // service may name another as its last applied), the newest being past it.
      const deleted = await tx.run(
        `DELETE FROM jm_update_info WHERE updated = 1 AND id BETWEEN ? AND ? AND ${INSERTED_BEFORE} AND id NOT IN (${MARKERS_IN_USE})`,
        [...range, cutoff, cutoff],
      );
      await tx.run(
        "DELETE FROM jm_marker_nodes WHERE marker_id BETWEEN ? AND ? AND NOT EXISTS (SELECT 1 FROM jm_update_info u WHERE u.id = jm_marker_nodes.marker_id)",
        range,
      );
      return deleted.changes;
    });
  }

  insertLogs(rows: LogRow[]): Promise<void> {
    return status.insertLogs(this.driver, rows);
  }

  listLogs(filter: LogFilter): Promise<LogRow[]> {
    return status.listLogs(this.driver, filter);
  }

  pruneOlderThan(
    table: "jm_syslog" | "jm_runs" | "jm_notifications",
    before: number,
    limit: number,
  ): Promise<number> {
    return status.pruneOlderThan(this.driver, table, before, limit);
  }

  // Notifications (issue 13).
  notificationDone(
    jobId: string,
    event: string,
    ref: number,
    outcome: "sent" | "failed" | "given_up",
    told = 0,
  ): Promise<void> {
    return notify.notificationDone(this.driver, { jobId, event, ref }, outcome, told);
  }

  async retryNotification(
    jobId: string,
    event: string,
    ref: number,
    retryAt: number,
    channels: ChannelsLeft,
  ): Promise<void> {
    await this.driver.run(
      "UPDATE jm_notifications SET retry_at = ?, tries = tries + 1, attempt = attempt + 1, channels = ? WHERE job_id = ? AND event = ? AND ref = ? AND outcome = 'pending'",
      [retryAt, channels, jobId, event, ref],
    );
  }

  givenUp(jobId: string): Promise<number> {
    return notify.givenUp(this.driver, jobId);
  }

  dropNotifications(jobId: string): Promise<number> {
    return notify.dropNotifications(this.driver, jobId);
  }

  pendingNotifications(
    query: Parameters<Store["pendingNotifications"]>[0],
  ): Promise<PendingNotification[]> {
    return notify.pendingNotifications(this.driver, query);
  }

  async notificationsPending(): Promise<PendingCount> {
    const [row] = await this.driver.all(
      "SELECT COUNT(*) AS n, MIN(created_at) AS oldest, COUNT(retry_at) AS retrying, MIN(retry_at) AS next_retry FROM jm_notifications WHERE outcome = 'pending'",
    );
    const ms = (v: unknown) => v === null ? null : Number(v);
    return {
      count: Number(row.n),
      oldest: ms(row.oldest),
      retrying: Number(row.retrying),
      nextRetry: ms(row.next_retry),
    };
  }

  async takeNotification(id: number, attempt: number, to: string, now: number): Promise<boolean> {
    const { changes } = await this.driver.run(
      "UPDATE jm_notifications SET node_id = ?, attempt = attempt + 1, taken_at = ? WHERE id = ? AND attempt = ? AND outcome = 'pending'",
      [to, now, id, attempt],
    );
    return changes === 1;
  }

  claimNotification(claim: NotificationClaim): Promise<ClaimOutcome | null> {
    return notify.claimNotification(this.driver, claim);
  }

  failingBefore(
    jobId: string,
    run: { id: number; finished_at: number },
    failures: readonly string[],
  ): Promise<boolean> {
    return notify.failingBefore(this.driver, jobId, run, failures);
  }

  silenceCandidates(): Promise<SilenceCandidate[]> {
    return notify.silenceCandidates(this.driver);
  }

  takeHeld(
    now: number,
    minIntervalMs: number,
    nodeId: string,
    maxPending?: number,
  ): Promise<TakenHeld> {
    return notify.takeHeld(this.driver, now, minIntervalMs, nodeId, maxPending);
  }

  async serverCautions(pools: number): Promise<string[]> {
    if (this.kind !== "mysql") return [];
    // The session's max_user_connections is the user's own limit where it has one, else the server's.
    const [row] = await this.driver.all(
      "SELECT @@GLOBAL.log_bin AS log_bin, @@SESSION.binlog_format AS binlog_format, @@SESSION.max_user_connections AS max_user_connections, CURRENT_USER() AS account",
    );
    const cautions: string[] = [];
    // Statement-based replication replays a claim's conditional write and retention's
    // `DELETE … ORDER BY … LIMIT` on a replica, where they may touch other rows.
    if (Number(row.log_bin) === 1 && String(row.binlog_format).toUpperCase() === "STATEMENT") {
      cautions.push(
        "its binary log has binlog_format STATEMENT: a replica may apply retention's ordered deletes to other rows than this server did, and the server warns at every claim; set binlog_format to ROW or MIXED (SET GLOBAL binlog_format = 'ROW', and in my.cnf)",
      );
    }
    const allowed = Number(row.max_user_connections);
    const needed = pools * this.driver.connections;
    if (allowed > 0 && allowed < needed) {
      const account = String(row.account);
      const at = account.lastIndexOf("@");
      const user = `'${account.slice(0, at)}'@'${account.slice(at + 1)}'`;
      cautions.push(
        `user ${user} may hold ${allowed} connection${
          allowed === 1 ? "" : "s"
        } at once (max_user_connections), and a service opens up to ${needed}: ${this.driver.connections} for its scheduler (db.pool_size, and 2 for claims)${
          pools > 1 ? " and as many for its HTTP API (http.listen)" : ""
        }; past the limit it keeps to the connections it has, its claims and statements waiting for one another; raise it (ALTER USER ${user} WITH MAX_USER_CONNECTIONS ${needed}) or lower db.pool_size`,
      );
    }
    return cautions;
  }

  async ping(): Promise<void> {
    await this.driver.all("SELECT 1");
  }

  /** The data version this connection read last; null before the first read. */
  private dataVersion: unknown = null;

  async writtenElsewhere(): Promise<boolean> {
    const sql = this.driver.profile.dataVersionSql;
    if (sql === null) return true;
    const version = Object.values((await this.driver.all(sql))[0])[0];
    const changed = version !== this.dataVersion;
    this.dataVersion = version;
    return changed;
  }

  async close(): Promise<void> {
    await this.driver.close();
  }
}

/**
 * Statements that write `updates` as if one after the other: a run's
 * updates merged (a later value wins), then the runs whose updates set the
 * same columns written together, `rowsPerUpdate` rows per statement
 * (`col = CASE id WHEN ? THEN ? … END`). A burst's 500 ends were 500 round
 * trips on MySQL (58 ms), now 5 (8 ms).
 */
function updateRunsSql(
  updates: readonly { id: number; update: RunUpdate }[],
  rowsPerUpdate: number,
  node?: string,
): UpdateStatement[] {
  const merged = new Map<number, [string, Param][]>();
  for (const { id, update } of updates) {
    const entries = new Map(merged.get(id));
    for (const [column, value] of Object.entries(update)) {
      if (value !== undefined) entries.set(column, runValue(column, value));
    }
    merged.set(id, [...entries]);
  }
  const byColumns = new Map<string, { id: number; values: Param[] }[]>();
  for (const [id, entries] of merged) {
    if (entries.length === 0) continue;
    entries.sort(([a], [b]) => a < b ? -1 : 1);
    // Starts apart: their statements are conditional on the row not having ended.
    const start = entries.some(([column, value]) => column === "status" && value === "running");
    const key = `${start ? "start:" : ""}${entries.map(([column]) => column).join(",")}`;
    const group = byColumns.get(key) ?? [];
    group.push({ id, values: entries.map(([, value]) => value) });
    byColumns.set(key, group);
  }
  const statements: UpdateStatement[] = [];
  for (const [key, group] of byColumns) {
    const start = key.startsWith("start:");
    const columns = key.replace(/^start:/, "").split(",");
    for (const chunk of chunks(group, rowsPerUpdate, (row) => textOf(row.values))) {
      const [sql, params] = caseUpdateSql(columns, chunk, node, start ? START_GUARD : END_GUARD);
      statements.push({
        sql,
        params,
        ids: chunk.map((row) => row.id),
        columns,
        rows: chunk,
        start,
      });
    }
  }
  return statements;
}

/** One statement of `updateRunsSql`: the rows it writes, their columns, whether they are starts. */
interface UpdateStatement {
  sql: string;
  params: Param[];
  ids: number[];
  columns: string[];
  rows: { id: number; values: Param[] }[];
  start: boolean;
}

/**
 * A run's start is written only over a row still `running` or `queued`:
 * never over one ended (its end written first, or marked lost meanwhile).
 */
const START_GUARD: [string, Param[]] = [" AND status IN ('running', 'queued')", []];
/**
 * Any other write of a run is not written over a row marked `lost`, or
 * ended over `lost` since (lost_ends.ts): `updateRuns` writes that one
 * apart (`overLostSql`), and tells which.
 */
const END_GUARD: [string, Param[]] = [
  " AND status <> 'lost' AND (note IS NULL OR note NOT LIKE ?)",
  [`${OVER_LOST}%`],
];

/**
 * The write of `row` (its `columns`) over a row marked lost (`current`,
 * lost_ends.ts), null when none: a start is not written (the row says the
 * run ended); on a row still `lost`, only an end: its status, exit code,
 * output and end time as it ended, its note the lost note then its own
 * (a cancel's record keeps its own note: the run was to end, and the node
 * that marked it lost, which reads its cancel, retried nothing); on a row
 * ended over `lost` already, any write, its note still starting with the
 * lost note.
 */
function overLostSql(
  columns: string[],
  row: { id: number; values: Param[] },
  current: { status: RunStatus; note: string | null },
  start: boolean,
  node?: string,
): [string, Param[]] | null {
  if (start) return null;
  const values = new Map(columns.map((column, i) => [column, row.values[i]]));
  const status = values.get("status");
  if (current.status === "lost" && (typeof status !== "string" || status === "lost")) return null;
  if (status !== "cancelled" && (values.has("status") || values.has("note"))) {
    const note = values.get("note");
    values.set(
      "note",
      runValue("note", overLostNote(current.note, typeof note === "string" ? note : null)),
    );
  }
  const [sql, params] = caseUpdateSql(
    [...values.keys()],
    [{ id: row.id, values: [...values.values()] }],
    node,
    [
      " AND (status = 'lost' OR note LIKE ?)",
      [`${OVER_LOST}%`],
    ],
  );
  return [sql, params];
}

/**
 * The UPDATE of `rows`, each setting `columns`: one `CASE id WHEN …` for
 * each column; for a single row a plain UPDATE, whose text is the same for
 * every run setting those columns (SQLite prepares it once). With `node`,
 * only rows of that node; `guard`, a further condition and its parameters.
 */
function caseUpdateSql(
  columns: string[],
  rows: { id: number; values: Param[] }[],
  node: string | undefined,
  [guard, guardParams]: [string, Param[]],
): [string, Param[]] {
  const ofNode = node === undefined ? "" : " AND node_id = ?";
  const nodeParam = node === undefined ? [] : [node];
  if (rows.length === 1) {
    return [
      `UPDATE jm_runs SET ${
        columns.map((column) => `\`${column}\` = ?`).join(", ")
      } WHERE id = ?${ofNode}${guard}`,
      [...rows[0].values, rows[0].id, ...nodeParam, ...guardParams],
    ];
  }
  const params: Param[] = [];
  const sets = columns.map((column, i) => {
    for (const row of rows) params.push(row.id, row.values[i]);
    return `\`${column}\` = CASE id ${"WHEN ? THEN ? ".repeat(rows.length)}END`;
  });
  params.push(...rows.map((row) => row.id), ...nodeParam, ...guardParams);
  return [
    `UPDATE jm_runs SET ${sets.join(", ")} WHERE id IN (${
      rows.map(() => "?").join(", ")
    })${ofNode}${guard}`,
    params,
  ];
}

/** The UPDATE of one run's given columns (null when none is given). */
function updateRunSql(
  id: number,
  update: RunUpdate,
  onlyIf?: RunStatus,
  node?: string,
): [string, Param[]] | null {
  const entries = Object.entries(update).filter(([, v]) => v !== undefined);
  if (entries.length === 0) return null;
  const params = [...entries.map(([k, v]) => runValue(k, v)), id];
  let sql = `UPDATE jm_runs SET ${entries.map(([k]) => `\`${k}\` = ?`).join(", ")} WHERE id = ?`;
  if (onlyIf !== undefined) {
    sql += " AND status = ?";
    params.push(onlyIf);
  }
  if (node !== undefined) {
    sql += " AND node_id = ?";
    params.push(node);
  }
  return [sql, params];
}
