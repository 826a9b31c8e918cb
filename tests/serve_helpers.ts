/**
 * Fixtures for the end-to-end tests of `jobsmanager serve`: the real
 * service as a subprocess with a config file of its own, the CLI against
 * the same database, and the `jm_runs` rows as plain numbers.
 */
import { assert, assertEquals } from "./assert.ts";
import {
  cli,
  CliProcess,
  type CliResult,
  rawQuery,
  type TestDatabase,
  waitFor,
} from "./helpers.ts";

/** The `jobsmanager` section of a test's config file. */
export interface ServeSettings {
  reload_interval?: number;
  shutdown_timeout?: number;
  kill_grace?: number;
  misfire_grace_time?: number;
  max_workers?: number;
  max_instances?: number;
  coalesce?: boolean;
  heartbeat_interval?: number;
}

/** Fast settings for tests; each test overrides what it is about. */
export const TEST_SETTINGS = {
  reload_interval: 0.5,
  shutdown_timeout: 1,
  kill_grace: 1,
  misfire_grace_time: 1,
  max_workers: 300,
  timezone: "UTC",
};

/** Write `DIR/config.json5` for this test and return its path. */
export async function writeConfig(db: TestDatabase, settings: ServeSettings = {}): Promise<string> {
  const path = `${db.dir}/config.json5`;
  const doc = { jobsmanager: { ...TEST_SETTINGS, ...settings }, log: { path: `${db.dir}/log` } };
  await Deno.writeTextFile(path, JSON.stringify(doc, null, 2));
  return path;
}

/** One `jobsmanager serve` process on `db` with the config file at `configPath`. */
export class Serve extends CliProcess {
  constructor(db: TestDatabase, configPath: string, env: Record<string, string> = {}) {
    super(["--database", db.url, "--config", configPath, "serve"], { cwd: db.dir, env });
  }

  /** SIGTERM, then wait for exit; returns the status and how long the exit took. */
  terminate(timeoutMs = 10_000): Promise<{ status: Deno.CommandStatus; ms: number }> {
    return this.stop("SIGTERM", timeoutMs);
  }
}

/** The "stopping" line serve logs (JSON, on stderr) when a stop begins; null before. */
function stoppingLine(serve: Serve): { "@timestamp": string } | null {
  // The last piece may be a line still being written.
  for (const line of serve.stderr.split("\n").slice(0, -1)) {
    if (!line.startsWith("{")) continue;
    const entry = JSON.parse(line);
    if (/^stopping\b/.test(entry.message)) return entry;
  }
  return null;
}

/** Whether serve has begun to stop (its stderr has the "stopping" line). */
export function stoppingLogged(serve: Serve): boolean {
  return stoppingLine(serve) !== null;
}

/**
 * When serve began to stop, by its own clock: it fires nothing after this,
 * however late the signal reached it.
 */
export function stoppingAt(serve: Serve): number {
  const line = stoppingLine(serve);
  if (line === null) throw new Error(`serve logged no "stopping" line:\n${serve.stderr}`);
  return Date.parse(line["@timestamp"]);
}

/** Start `serve` on `db` with a fresh config file of these settings. */
export async function startServe(db: TestDatabase, settings: ServeSettings = {}): Promise<Serve> {
  return new Serve(db, await writeConfig(db, settings));
}

/** Run the CLI on `db` in its directory and require exit 0. */
export async function jm(db: TestDatabase, ...args: string[]): Promise<CliResult> {
  const result = await cli(["--database", db.url, ...args], { cwd: db.dir });
  assertEquals(
    result.code,
    0,
    `jobsmanager ${args.join(" ")} exited ${result.code}: ${result.stderr}${result.stdout}`,
  );
  return result;
}

/** Run a CLI write with --json and return the reload marker it inserted. */
export async function jmMarker(db: TestDatabase, ...args: string[]): Promise<number> {
  const result = await jm(db, "--json", ...args);
  const marker = JSON.parse(result.stdout).marker_id;
  if (typeof marker !== "number") throw new Error(`no marker_id in: ${result.stdout}`);
  return marker;
}

/** SQL on the test database, retried while SQLite reports it busy. */
export async function sql(
  db: TestDatabase,
  text: string,
  params: unknown[] = [],
): Promise<Record<string, unknown>[]> {
  for (let attempt = 0;; attempt++) {
    try {
      return await rawQuery(db, text, params);
    } catch (error) {
      if (attempt > 50 || !/database is (locked|busy)/.test(String(error))) throw error;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/** A `jm_runs` row, numbers as numbers on both backends. */
export interface RunRow {
  id: number;
  job_id: string;
  scheduled_at: number;
  started_at: number | null;
  finished_at: number | null;
  status: string;
  exit_code: number | null;
  signal: string | null;
  stdout: string | null;
  stderr: string | null;
  node_id: string | null;
  trigger: string;
  note: string | null;
  /** Its process group, once its process started. */
  pgid: number | null;
}

const num = (v: unknown) => v === null || v === undefined ? null : Number(v);
const str = (v: unknown) => v === null || v === undefined ? null : String(v);

/** Every run (of `jobId`), oldest first. */
export async function runs(db: TestDatabase, jobId?: string): Promise<RunRow[]> {
  const where = jobId === undefined ? "" : " WHERE job_id = ?";
  const rows = await sql(
    db,
    `SELECT id, job_id, scheduled_at, started_at, finished_at, status, exit_code, \`signal\`, stdout, stderr, node_id, \`trigger\`, note, pgid FROM jm_runs${where} ORDER BY id`,
    jobId === undefined ? [] : [jobId],
  );
  return rows.map((r) => ({
    id: Number(r.id),
    job_id: String(r.job_id),
    scheduled_at: Number(r.scheduled_at),
    started_at: num(r.started_at),
    finished_at: num(r.finished_at),
    status: String(r.status),
    exit_code: num(r.exit_code),
    signal: str(r.signal),
    stdout: str(r.stdout),
    stderr: str(r.stderr),
    node_id: str(r.node_id),
    trigger: String(r.trigger),
    note: str(r.note),
    pgid: num(r.pgid),
  }));
}

/** The runs as a small table, for failure messages. */
export function describeRuns(rows: RunRow[]): string {
  return rows.map((r) =>
    [
      r.id,
      r.job_id,
      r.scheduled_at,
      r.status,
      `start+${r.started_at === null ? "-" : r.started_at - r.scheduled_at}`,
      `dur ${r.started_at === null || r.finished_at === null ? "-" : r.finished_at - r.started_at}`,
      r.trigger,
      r.note ?? "",
    ].join(" | ")
  ).join("\n");
}

/** `detail` for waitFor: the current runs of `db`. */
export function runsDetail(db: TestDatabase, jobId?: string): () => Promise<string> {
  return async () => `runs now:\n${describeRuns(await runs(db, jobId))}`;
}

/** Statuses of a run that actually started a process. */
const STARTED = ["running", "success", "failed", "timeout", "killed", "interrupted"];

/**
 * Whether a run started a process. A `running` row is written with the
 * claim, its time as started_at, before the process exists: the process
 * has started once its group is recorded (a runner that gets to it past
 * its grace records it missed, started_at null).
 */
export function started(r: RunRow): boolean {
  return STARTED.includes(r.status) && r.started_at !== null &&
    (r.status !== "running" || r.pgid !== null);
}

/**
 * Whether a fire of an every-second job ran. On a machine too busy to end
 * an echo within the second, max_instances 1 rightly skips the next fire:
 * such a row must say so, and its job's run before it must have ended no
 * earlier than half a second before the skipped fire (it still ran when
 * the fire was decided; its end is heard, and recorded, a little later).
 * On a machine too busy to start the process within misfire_grace_time,
 * the fire is rightly missed: such a row must say how late it would have
 * started (or, queued behind its job's late fire before it, how long that
 * one still ran), later than its grace, and have started nothing.
 */
export function ran(r: RunRow, rows: RunRow[]): boolean {
  if (r.status === "missed") {
    const where = `run ${r.id} was missed (${r.note})`;
    assertEquals(r.started_at, null, where);
    const note = r.note ?? "";
    const late =
      /^(?:would have started|the fire before it still ran) (\d+) ms after .*, (?:later than|past) (?:its )?([\d.]+) s of grace/
        .exec(note);
    const pastGrace = late
      ? Number(late[1]) > Number(late[2]) * 1000
      : /came later than misfire_grace_time \([\d.]+ s\)/.test(note);
    assert(pastGrace, where);
    return false;
  }
  if (r.status !== "skipped") return true;
  const where = `run ${r.id} was skipped`;
  assertEquals(r.note, "max_instances (1) runs were still running", where);
  const before = rows.filter((o) => o.job_id === r.job_id && o.scheduled_at < r.scheduled_at)
    .findLast((o) => o.started_at !== null);
  const end = before?.finished_at ?? Infinity;
  assert(end >= r.scheduled_at - 500, `${where}, but run ${before?.id} had ended at ${end}`);
  return false;
}

/** Pids whose command line matches `pattern` (pgrep -f); [] when none. */
export async function pgrep(pattern: string): Promise<number[]> {
  const out = await new Deno.Command("pgrep", { args: ["-f", pattern], stdout: "piped" }).output();
  if (out.code === 1) return [];
  if (out.code !== 0) throw new Error(`pgrep -f '${pattern}' exited ${out.code}`);
  return new TextDecoder().decode(out.stdout).trim().split(/\s+/).map(Number);
}

/** SIGKILL, by pid, the processes this test started that match its unique `pattern`. */
export async function killLeftovers(pattern: string): Promise<void> {
  for (const pid of await pgrep(pattern)) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
}

/**
 * A `sleep` duration unique to this test (`30.4821`), so pgrep can find
 * exactly this test's processes while other tests run in parallel.
 */
export function uniqueSeconds(whole: number): string {
  return `${whole}.${100_000 + Math.floor(Math.random() * 900_000)}1`;
}

/** Reload markers: id and whether a service has applied it. */
export async function markers(db: TestDatabase): Promise<{ id: number; updated: number }[]> {
  const rows = await sql(db, "SELECT id, updated FROM jm_update_info ORDER BY id");
  return rows.map((r) => ({ id: Number(r.id), updated: Number(r.updated) }));
}

/**
 * Wait until a service started on `db` has loaded it: at start it marks
 * every pending marker applied, so this needs at least one marker.
 */
export async function ready(db: TestDatabase, serve: Serve, timeoutMs = 10_000): Promise<void> {
  await waitFor(async () => {
    if (!serve.running) throw new Error(`serve exited early:\n${serve.stderr}`);
    const all = await markers(db);
    // Its heartbeat too: `job run` refuses while no live service is in jm_nodes.
    const beating = await sql(db, "SELECT id FROM jm_nodes WHERE stopped_at IS NULL");
    return all.length > 0 && all.every((m) => m.updated === 1) && beating.length > 0;
  }, {
    timeoutMs,
    what: "serve to start, apply the pending markers and beat in jm_nodes",
    detail: () => serve.stderr,
  });
}
