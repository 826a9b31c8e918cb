/**
 * The store's bookkeeping beyond jobs and runs: log rows, service nodes,
 * counts for `status`, and retention. Plain functions over a driver, used
 * by SqlStore.
 */
import { levelsFrom, type LogFilter, type LogRow } from "../domain/log_row.ts";
import { type Node, STALE_AFTER_BEATS } from "../domain/node.ts";
import { FINAL_STATUSES, lostNote, type RunStatus } from "../domain/run.ts";
import { overLostNote } from "./lost_ends.ts";
import {
  type DialectProfile,
  type Driver,
  type Executor,
  insertSql,
  type Param,
  type Row,
} from "./driver.ts";
import type { MinuteCounts } from "./store.ts";

const NODE_COLUMNS = [
  "id",
  "host",
  "pid",
  "version",
  "started_at",
  "heartbeat_at",
  "applied_marker",
  "jobs_loaded",
  "last_reload_at",
  "last_reload_ms",
  "stopped_at",
  "timezone",
  "db_heartbeat_at",
  "heartbeat_ms",
  "skew_ms",
  "jobs_owned",
  "declared_dead_at",
  "declared_dead_by",
  "leaving_at",
  "share_basis",
  "boot_id",
  "pid_ns",
  "schema_version",
  "process_start",
] as const;

const num = (v: unknown) => v === null || v === undefined ? null : Number(v);

export async function saveNode(
  driver: Driver,
  node: Node,
  declarationSeen?: number | null,
): Promise<void> {
  await writeNode(driver, driver, node, declarationSeen);
}

/**
 * Insert or update a node's row. With `declarationSeen` (its own
 * heartbeat: the declared_dead_at its last look at its row found, null for
 * none), a declaration of its death other than that one stays: a heartbeat
 * whose look failed, or came before the declaration (a stalled
 * connection), is no sign the node knows, and erased, the declaration
 * would never reach it (see store.ts `saveNode`).
 */
async function writeNode(
  executor: Executor,
  driver: Driver,
  node: Node,
  declarationSeen?: number | null,
): Promise<void> {
  const p = driver.profile;
  const keep = (column: string) =>
    `CASE WHEN declared_dead_at IS NULL OR declared_dead_at = ? THEN ${
      p.inserted(column)
    } ELSE ${column} END`;
  const guarded = declarationSeen !== undefined;
  // declared_dead_by first: MySQL's update sees the columns set before in the same statement,
  // and its CASE is to read the declaration the row had.
  const columns: string[] = NODE_COLUMNS.filter((c) => c !== "id" && c !== "declared_dead_by");
  columns.splice(columns.indexOf("declared_dead_at"), 0, "declared_dead_by");
  await executor.run(
    insertSql(
      "jm_nodes",
      NODE_COLUMNS,
      1,
      p.upsertTail(
        "id",
        columns,
        guarded
          ? {
            declared_dead_by: keep("declared_dead_by"),
            declared_dead_at: keep("declared_dead_at"),
          }
          : {},
      ),
    ),
    [
      ...NODE_COLUMNS.map((c) => node[c] ?? null),
      ...guarded ? [declarationSeen, declarationSeen] : [],
    ],
  );
}

const NODE_FIELDS = NODE_COLUMNS.map((c) => `\`${c}\``).join(", ");
const NODE_SELECT = `SELECT ${NODE_FIELDS} FROM jm_nodes`;

/**
 * All nodes and the database's clock in one query (a service asks every
 * second); with no node yet, the clock alone.
 */
export async function nodesAndNow(
  driver: Executor,
  profile: DialectProfile,
): Promise<{ nodes: Node[]; databaseNow: number }> {
  const rows = await driver.all(
    `SELECT ${NODE_FIELDS}, ${profile.nowMs} AS db_now FROM jm_nodes ORDER BY heartbeat_at DESC`,
  );
  if (rows.length === 0) return { nodes: [], databaseNow: await databaseNow(driver, profile) };
  return { nodes: rows.map(rowToNode), databaseNow: Number(rows[0].db_now) };
}

export async function databaseNow(executor: Executor, profile: DialectProfile): Promise<number> {
  const rows = await executor.all(`SELECT ${profile.nowMs} AS now`);
  return Number(rows[0].now);
}

export async function claimNode(
  driver: Driver,
  node: Node,
  mayReplace: (existing: Node, databaseNow: number) => boolean,
): Promise<Node | null> {
  return await driver.transaction(async (tx) => {
    const now = await databaseNow(tx, driver.profile);
    const rows = await tx.all(`${NODE_SELECT} WHERE id = ?${driver.profile.forUpdate}`, [
      node.id,
    ]);
    const existing = rows.length === 0 ? null : rowToNode(rows[0]);
    if (existing && !mayReplace(existing, now)) return existing;
    await writeNode(tx, driver, {
      ...node,
      db_heartbeat_at: now,
      declared_dead_at: null,
      declared_dead_by: null,
    });
    return null;
  });
}

/**
 * A run's end at the bound given (twice) as parameters, but never before it
 * started (or, never started, before it was due): an end known only as a
 * bound (its service's last heartbeat) must not make its duration negative.
 */
export const ENDED_AT_OR_AFTER_START =
  "CASE WHEN COALESCE(started_at, scheduled_at) > ? THEN COALESCE(started_at, scheduled_at) ELSE ? END";

/** `text` for a LIKE pattern with `ESCAPE '!'`: its `%`, `_` and `!` match themselves. */
function likeEscaped(text: string): string {
  return text.replace(/[!%_]/g, (c) => `!${c}`);
}

export async function declareDead(
  driver: Driver,
  id: string,
  lastBeat: number,
  by: string,
): Promise<{ at: number; lost: number; runIds: number[] } | null> {
  return await driver.transaction(async (tx) => {
    const at = await databaseNow(tx, driver.profile);
    const declared = await tx.run(
      "UPDATE jm_nodes SET declared_dead_at = ?, declared_dead_by = ? WHERE id = ? AND db_heartbeat_at = ? AND stopped_at IS NULL AND declared_dead_at IS NULL",
      [at, by, id, lastBeat],
    );
    if (declared.changes === 0) {
      // `by` declared it at this beat already: this call is sent again after the answer was lost.
      const [row] = await tx.all(
        "SELECT declared_dead_at FROM jm_nodes WHERE id = ? AND db_heartbeat_at = ? AND declared_dead_by = ? AND declared_dead_at IS NOT NULL",
        [id, lastBeat, by],
      );
      if (row === undefined) return null;
      const earlier = Number(row.declared_dead_at);
      const note = lostNote(id, lastBeat, earlier, by);
      // Or ended over `lost` by that node since, back, which left what follows them to `by`.
      const lostThen = await tx.all(
        "SELECT id FROM jm_runs WHERE node_id = ? AND ((status = 'lost' AND note = ?) OR note LIKE ? ESCAPE '!')",
        [id, note, `${likeEscaped(overLostNote(note, null))}%`],
      );
      return { at: earlier, lost: lostThen.length, runIds: lostThen.map((r) => Number(r.id)) };
    }
    const note = lostNote(id, lastBeat, at, by);
    // The ids, for the declaring node to retry them and start what follows them.
    const rows = await tx.all(
      `SELECT id FROM jm_runs WHERE node_id = ? AND status IN ('running', 'queued')${driver.profile.forUpdate}`,
      [id],
    );
    // Ended by its last heartbeat, the last sign it was alive, rather than by now: on its own
    // clock, the one its runs' starts are on (the database's may be off from it).
    const [beat] = await tx.all("SELECT heartbeat_at FROM jm_nodes WHERE id = ?", [id]);
    const endedBy = Number(beat.heartbeat_at);
    const lost = await tx.run(
      `UPDATE jm_runs SET status = 'lost', finished_at = ${ENDED_AT_OR_AFTER_START}, note = ? WHERE node_id = ? AND status IN ('running', 'queued')`,
      [endedBy, endedBy, note, id],
    );
    return { at, lost: lost.changes, runIds: rows.map((r) => Number(r.id)) };
  });
}

export async function recordApplied(driver: Driver, nodeId: string, ids: number[]) {
  if (ids.length === 0) return;
  await driver.run(
    // Only of markers there: one applied as jm_update_info was emptied would stand for
    // the marker given its id next. Applied twice (a retried write) is still applied once.
    `INSERT INTO jm_marker_nodes (marker_id, node_id) SELECT id, ? FROM jm_update_info WHERE id IN (${
      ids.map(() => "?").join(", ")
    })${driver.profile.upsertTail("marker_id, node_id", ["node_id"])}`,
    [nodeId, ...ids],
  );
}

export async function settleMarkers(driver: Driver): Promise<number> {
  const applied = (node: string) =>
    `SELECT 1 FROM jm_marker_nodes a WHERE a.marker_id = jm_update_info.id${
      node ? ` AND a.node_id = ${node}` : ""
    }`;
  const settled = await driver.run(
    `UPDATE jm_update_info SET updated = 1, update_time = ${driver.profile.nowDatetime} WHERE updated = 0 AND EXISTS (${
      applied("")
    }) AND NOT EXISTS (SELECT 1 FROM jm_nodes n WHERE n.stopped_at IS NULL AND n.leaving_at IS NULL AND n.declared_dead_at IS NULL AND n.db_heartbeat_at >= ${driver.profile.nowMs} - ${STALE_AFTER_BEATS} * n.heartbeat_ms AND NOT EXISTS (${
      applied("n.id")
    }))`,
  );
  // Who applied the markers settled, and those gone (jm_update_info emptied: a node that
  // saw it settles at its next poll), is forgotten: a marker given a gone one's id next,
  // by hand, must not find it applied by nodes that applied the other.
  await driver.run(
    "DELETE FROM jm_marker_nodes WHERE NOT EXISTS (SELECT 1 FROM jm_update_info u WHERE u.id = jm_marker_nodes.marker_id AND u.updated = 0)",
  );
  return settled.changes;
}

function rowToNode(r: Row): Node {
  return {
    id: String(r.id),
    host: String(r.host),
    pid: Number(r.pid),
    version: String(r.version),
    started_at: Number(r.started_at),
    heartbeat_at: Number(r.heartbeat_at),
    applied_marker: num(r.applied_marker),
    jobs_loaded: Number(r.jobs_loaded),
    last_reload_at: num(r.last_reload_at),
    last_reload_ms: num(r.last_reload_ms),
    stopped_at: num(r.stopped_at),
    timezone: r.timezone === null || r.timezone === undefined ? null : String(r.timezone),
    db_heartbeat_at: num(r.db_heartbeat_at),
    heartbeat_ms: num(r.heartbeat_ms),
    skew_ms: num(r.skew_ms),
    jobs_owned: num(r.jobs_owned),
    declared_dead_at: num(r.declared_dead_at),
    declared_dead_by: r.declared_dead_by == null ? null : String(r.declared_dead_by),
    leaving_at: num(r.leaving_at),
    share_basis: r.share_basis == null ? null : String(r.share_basis),
    boot_id: r.boot_id == null ? null : String(r.boot_id),
    pid_ns: num(r.pid_ns),
    schema_version: num(r.schema_version),
    process_start: num(r.process_start),
  };
}

const LOG_COLUMNS = ["created_at", "level", "logger_name", "message", "context", "node_id"];

/** Rows per INSERT statement: 5 parameters each, well under SQLite's limit. */
const LOG_CHUNK = 500;

export async function insertLogs(driver: Driver, rows: LogRow[]): Promise<void> {
  for (let i = 0; i < rows.length; i += LOG_CHUNK) {
    const chunk = rows.slice(i, i + LOG_CHUNK);
    await driver.run(
      insertSql("jm_syslog", LOG_COLUMNS, chunk.length),
      chunk.flatMap((
        r,
      ) => [
        r.created_at,
        r.level,
        r.logger_name,
        r.message,
        JSON.stringify(r.context),
        r.node_id ?? null,
      ]),
    );
  }
}

/** The statement and parameters of `listLogs`. */
export function logsQuery(filter: LogFilter): { sql: string; params: Param[] } {
  const where: string[] = [];
  const params: Param[] = [];
  if (filter.minLevel !== undefined) {
    const levels = levelsFrom(filter.minLevel);
    where.push(`level IN (${levels.map(() => "?").join(", ")})`);
    params.push(...levels);
  }
  if (filter.job_id !== undefined) {
    // Generated columns (migration 13), indexed: the context's text was read row by row.
    where.push("job_id = ?");
    params.push(filter.job_id);
  }
  if (filter.run_id !== undefined) {
    where.push("run_id = ?");
    params.push(String(filter.run_id));
  }
  if (filter.node_id !== undefined) {
    where.push("node_id = ?");
    params.push(filter.node_id);
  }
  if (filter.since !== undefined) {
    where.push("created_at >= ?");
    params.push(filter.since);
  }
  if (filter.afterId !== undefined) {
    where.push("id > ?");
    params.push(filter.afterId);
  }
  const clause = where.length === 0 ? "" : ` WHERE ${where.join(" AND ")}`;
  const order = filter.afterId !== undefined ? "ASC" : "DESC";
  return {
    sql:
      `SELECT id, created_at, level, logger_name, message, context, node_id FROM jm_syslog${clause} ORDER BY id ${order} LIMIT ?`,
    params: [...params, filter.limit],
  };
}

export async function listLogs(driver: Driver, filter: LogFilter): Promise<LogRow[]> {
  const { sql, params } = logsQuery(filter);
  return await driver.map(
    sql,
    params,
    (r: Row) => ({
      id: Number(r.id),
      created_at: Number(r.created_at),
      level: String(r.level),
      logger_name: String(r.logger_name),
      message: String(r.message),
      context: r.context === null
        ? {}
        : typeof r.context === "string"
        ? JSON.parse(r.context)
        : r.context as Record<string, unknown>,
      node_id: r.node_id === null ? null : String(r.node_id),
    }),
  );
}

export async function pendingMarkers(driver: Driver): Promise<number> {
  const rows = await driver.all("SELECT COUNT(*) AS n FROM jm_update_info WHERE updated = 0");
  return Number(rows[0]?.n ?? 0);
}

export async function countRuns(
  driver: Driver,
  since: number,
): Promise<Partial<Record<RunStatus, number>>> {
  const rows = await driver.all(
    "SELECT status, COUNT(*) AS n FROM jm_runs WHERE scheduled_at >= ? GROUP BY status",
    [since],
  );
  return Object.fromEntries(rows.map((r) => [String(r.status), Number(r.n)]));
}

export async function countRunsByMinute(driver: Driver, since: number): Promise<MinuteCounts[]> {
  // `%` on whole numbers means the same in SQLite and MySQL: no dialect needed.
  const rows = await driver.all(
    "SELECT scheduled_at - scheduled_at % 60000 AS minute, status, COUNT(*) AS n FROM jm_runs WHERE scheduled_at >= ? GROUP BY minute, status ORDER BY minute",
    [since],
  );
  const out: MinuteCounts[] = [];
  for (const r of rows) {
    const minute = Number(r.minute);
    if (out.at(-1)?.minute !== minute) out.push({ minute, counts: {} });
    out.at(-1)!.counts[String(r.status) as RunStatus] = Number(r.n);
  }
  return out;
}

/** The statement that deletes the `limit` oldest rows of `table` past retention (before, limit). */
export function pruneStatement(
  profile: DialectProfile,
  table: "jm_syslog" | "jm_runs" | "jm_notifications",
): string {
  const where = table === "jm_runs"
    ? `scheduled_at < ? AND status IN (${FINAL_STATUSES.map((s) => `'${s}'`).join(", ")})`
    // A notification still to send is kept, however old.
    : table === "jm_notifications"
    ? "created_at < ? AND outcome <> 'pending'"
    : "created_at < ?";
  return profile.deleteOldest(table, where, table === "jm_runs" ? "scheduled_at" : "created_at");
}

export async function pruneOlderThan(
  driver: Driver,
  table: "jm_syslog" | "jm_runs" | "jm_notifications",
  before: number,
  limit: number,
): Promise<number> {
  const result = await driver.run(pruneStatement(driver.profile, table), [before, limit]);
  return result.changes;
}
