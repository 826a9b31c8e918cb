/**
 * The fixture of the store contract suite (`tests/store_*_test.ts`): every
 * case is registered once per backend and gets a database of its own, so
 * one failure never cascades into the next case.
 */
import { buildJob, type Job } from "../src/domain/job.ts";
import type { LogRow } from "../src/domain/log_row.ts";
import type { Node } from "../src/domain/node.ts";
import type { NewRun } from "../src/domain/run.ts";
import type { Store } from "../src/store/store.ts";
import {
  type Backend,
  BACKENDS,
  freshDatabase,
  migrateFresh,
  rawQuery,
  type TestDatabase,
} from "./helpers.ts";

export interface Case {
  backend: Backend;
  db: TestDatabase;
  /** Open and migrated; closed after the case. */
  store: Store;
}

/**
 * One case of `method`'s contract on every backend, on a fresh, migrated
 * store. The test is named `store[backend] method: name`, so a failure says
 * which backend and which method broke.
 */
export function contract(
  method: string,
  name: string,
  fn: (c: Case) => void | Promise<void>,
): void {
  onEveryBackend(method, name, async (db, backend) => {
    const store = db.open();
    try {
      await migrateFresh(db, store);
      await fn({ backend, db, store });
    } finally {
      await store.close();
    }
  });
}

/**
 * Like `contract`, on a fresh database with no store opened and nothing
 * migrated; `backends` narrows it (among those configured) to what only
 * some backends can show.
 */
export function onEveryBackend(
  method: string,
  name: string,
  fn: (db: TestDatabase, backend: Backend) => Promise<void>,
  backends: Backend[] = BACKENDS,
): void {
  for (const backend of BACKENDS.filter((b) => backends.includes(b))) {
    Deno.test(`store[${backend}] ${method}: ${name}`, async () => {
      await using db = await freshDatabase(backend);
      await fn(db, backend);
    });
  }
}

/** Rows of `table` (matching `where`), read with SQL around the store. */
export async function countRows(db: TestDatabase, table: string, where = "1 = 1"): Promise<number> {
  const [row] = await rawQuery(db, `SELECT COUNT(*) AS n FROM ${table} WHERE ${where}`);
  return Number(row.n);
}

/** A valid job, every optional field at its default unless given. */
export function job(id: string, extra: Partial<Job> = {}): Job {
  return {
    ...buildJob(id, { command: `echo ${id}`, cron: "*/5 * * * *" }, null, 1_700_000_000_000),
    ...extra,
  };
}

/** A scheduled fire of `job_id` at `scheduled_at`, running. */
export function fire(job_id: string, scheduled_at: number, extra: Partial<NewRun> = {}): NewRun {
  return { job_id, scheduled_at, status: "running", trigger: "schedule", ...extra };
}

/** A `job run` request no service has taken yet. */
export function manualRequest(job_id: string, scheduled_at: number): NewRun {
  return { job_id, scheduled_at, status: "queued", trigger: "manual" };
}

export function node(id: string, extra: Partial<Node> = {}): Node {
  return {
    id,
    host: `host-${id}`,
    pid: 10,
    version: "0.1.0",
    started_at: 1000,
    heartbeat_at: 1000,
    applied_marker: null,
    jobs_loaded: 0,
    last_reload_at: null,
    last_reload_ms: null,
    stopped_at: null,
    timezone: null,
    db_heartbeat_at: null,
    heartbeat_ms: null,
    skew_ms: null,
    jobs_owned: null,
    declared_dead_at: null,
    declared_dead_by: null,
    leaving_at: null,
    share_basis: null,
    boot_id: null,
    pid_ns: null,
    schema_version: null,
    process_start: null,
    ...extra,
  };
}

/**
 * Node `id` registered now by the database's clock, with a heartbeat of a
 * minute: live for the length of any test.
 */
export async function liveNode(store: Store, id: string): Promise<Node> {
  await store.claimNode(node(id, { heartbeat_ms: 60_000 }), () => true);
  return (await store.nodesAndNow()).nodes.find((n) => n.id === id)!;
}

/** Log row `n`, created at n seconds. */
export function logRow(n: number, level: string, context: Record<string, unknown> = {}): LogRow {
  return {
    created_at: 1000 * n,
    level,
    logger_name: "jobsmanager.test",
    message: `message ${n}`,
    context,
  };
}
