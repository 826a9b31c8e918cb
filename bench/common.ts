/** What the benchmark sections share: fresh databases, seeding, the CLI and `serve` as processes. */
import mysql from "mysql2/promise";
import { DatabaseSync } from "node:sqlite";
import { defaultSettings } from "../src/config/config.ts";
import { buildJob, type Job } from "../src/domain/job.ts";
import { openStore } from "../src/store/open.ts";
import { resolveTarget } from "../src/config/database.ts";
import type { DatabaseTarget, MysqlTarget } from "../src/store/target.ts";
import { noticeDirectories, noticeFolder } from "../src/store/change_notice.ts";

const MAIN = new URL("../src/main.ts", import.meta.url).pathname;
/** The V8 flags the program ships with (deno.json's tasks, baked into the binary by `build`). */
const V8_FLAGS = (JSON.parse(
  await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
).tasks.build as string).match(/--v8-flags=\S+/)?.[0];
if (V8_FLAGS === undefined) throw new Error("deno.json's build task sets no --v8-flags");
/**
 * `deno` arguments that run `script` with the V8 flags the program ships
 * with, before its arguments, from the cache only, as the binary runs.
 * `script` must be cached first (`cached`): a cache filled from the lock
 * file alone lacks packages' registry metadata, and `deno run` then asked
 * the registry for it again at every dynamic import of mysql2 (seen: two
 * packages, about 35 ms more per MySQL CLI command), which the binary never
 * does.
 */
export const runAsShipped = (
  script: string,
): string[] => ["run", "-A", "--quiet", "--cached-only", V8_FLAGS, script];
/** The V8 flags the program ships with, one by one. */
export const SHIPPED_V8_FLAGS: readonly string[] = V8_FLAGS.slice("--v8-flags=".length).split(",");
/** `deno` arguments that run the program with these V8 flags instead of its own. */
export const runMainWith = (flags: readonly string[]): string[] => [
  "run",
  "-A",
  "--quiet",
  "--cached-only",
  `--v8-flags=${flags.join(",")}`,
  MAIN,
];

/** Fetch what `scripts` import, for runAsShipped. */
export async function cached(...scripts: string[]): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), { args: ["cache", "--quiet", ...scripts] })
    .output();
  if (!out.success) {
    throw new Error(`deno cache ${scripts.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}
/** `deno` arguments that run the program as it ships, before its own arguments. */
export const RUN_MAIN = runAsShipped(MAIN);
// The modules the binary embeds: the program and its workers (deno.json's build task).
await cached(
  MAIN,
  ...["../src/http/worker.ts", "../src/daemon/run_worker.ts"].map((p) =>
    new URL(p, import.meta.url).pathname
  ),
);
export const SERVER = Deno.env.get("JM_BENCH_DATABASE_URL") ??
  Deno.env.get("JM_TEST_DATABASE_URL") ?? "";
export type Backend = "sqlite" | "mysql";

export interface Db {
  url: string;
  dir: string;
  target: DatabaseTarget;
  drop(): Promise<void>;
}

export async function freshDb(backend: "sqlite" | "mysql"): Promise<Db> {
  if (backend === "sqlite") {
    const dir = await Deno.makeTempDir({ prefix: "jm-bench-" });
    const url = `sqlite:${dir}/jobs.db`;
    return { url, dir, target: target(url), drop: () => Deno.remove(dir, { recursive: true }) };
  }
  const name = `jm_bench_${crypto.randomUUID().slice(0, 8)}`;
  // The database first: a server that refuses it left the directory made before behind, empty.
  const admin = await mysql.createConnection(SERVER);
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const dir = await Deno.makeTempDir({ prefix: "jm-bench-" });
  const u = new URL(SERVER);
  u.pathname = `/${name}`;
  const made = target(u.toString());
  return {
    url: u.toString(),
    dir,
    target: made,
    drop: async () => {
      const c = await mysql.createConnection(SERVER);
      await c.query(`DROP DATABASE ${name}`);
      await c.end();
      if (made.kind === "mysql") await removeNoticeFolders(made);
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/**
 * The folders a `serve` on the database made for its change notices, in
 * the default notice directories (/tmp/jobsmanager-notices here): a
 * service leaves its folder when it stops, and each benchmark's database
 * left an empty one behind.
 */
async function removeNoticeFolders(db: MysqlTarget): Promise<void> {
  const folder = await noticeFolder(db);
  for (const dir of noticeDirectories("")) {
    await Deno.remove(`${dir}/${folder}`).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
  }
}

export function target(url: string): DatabaseTarget {
  return resolveTarget({ ...defaultSettings(), "db.url": url });
}

/**
 * `n` jobs; unless `schedule` says otherwise, daily at 1,440 different
 * minutes, so schedules are as varied as a real catalogue's, not one
 * pattern compiled once.
 */
export function makeJobs(n: number, schedule: Partial<Job>, command = "true"): Job[] {
  const now = Date.now();
  return Array.from({ length: n }, (_, i) => ({
    ...buildJob(
      `bench.${String(i).padStart(5, "0")}`,
      { command, cron: `${i % 60} ${Math.floor(i / 60) % 24} * * *` },
      null,
      now,
    ),
    ...schedule,
  }));
}

/** Insert jobs in bulk (a bench seed, not the product path) plus one marker. */
/** The six fields of a job that fires every second. */
export const EVERY_SECOND = {
  second: "*",
  minute: "*",
  hour: "*",
  day: "*",
  month: "*",
  day_of_week: "*",
};

export async function seed(db: Db, jobs: Job[]): Promise<void> {
  const store = openStore(db.target);
  await store.migrate();
  await store.close();
  const cols = Object.keys(jobs[0]);
  const row = (j: Job) =>
    cols.map((c) =>
      c === "env" ? JSON.stringify(j.env) : (j as unknown as Record<string, unknown>)[c]
    );
  const sql = (k: number) =>
    `INSERT INTO jm_jobs (${cols.map((c) => `\`${c}\``).join(",")}) VALUES ${
      Array(k).fill(`(${cols.map(() => "?").join(",")})`).join(",")
    }`;
  const marker =
    "INSERT INTO jm_update_info (jobs_before_update, jobs_after_update) VALUES ('[]', '[]')";
  for (let i = 0; i < jobs.length; i += 500) {
    const batch = jobs.slice(i, i + 500);
    const params = batch.flatMap(row).map((v) =>
      typeof v === "boolean" ? (v ? 1 : 0) : v
    ) as (string | number | null)[];
    if (db.target.kind === "sqlite") {
      const conn = new DatabaseSync(db.target.path);
      conn.prepare(sql(batch.length)).run(...params);
      conn.close();
    } else {
      const conn = await mysql.createConnection(db.url);
      await conn.query(sql(batch.length), params);
      await conn.end();
    }
  }
  await query(db, marker);
}

export async function query(db: Db, sql: string): Promise<Record<string, unknown>[]> {
  if (db.target.kind === "sqlite") {
    const conn = new DatabaseSync(db.target.path);
    try {
      return /^\s*select/i.test(sql)
        ? conn.prepare(sql).all() as Record<string, unknown>[]
        : (conn.exec(sql), []);
    } finally {
      conn.close();
    }
  }
  const conn = await mysql.createConnection(db.url);
  try {
    const [rows] = await conn.query(sql);
    return Array.isArray(rows) ? rows as Record<string, unknown>[] : [];
  } finally {
    await conn.end();
  }
}

export async function cli(db: Db, cliArgs: string[]): Promise<number> {
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...RUN_MAIN, "--database", db.url, ...cliArgs],
    cwd: db.dir,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`jobsmanager ${cliArgs.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return performance.now() - t0;
}

export function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}
export const median = (v: number[]) => quantile(v, 0.5);
export const ms = (v: number) => `${v.toFixed(1)} ms`;

export function printTable(title: string, head: string[], rows: (string | number)[][]): void {
  console.log(`\n### ${title}\n`);
  console.log(`| ${head.join(" | ")} |`);
  console.log(`| ${head.map(() => "---").join(" | ")} |`);
  for (const r of rows) console.log(`| ${r.join(" | ")} |`);
}

export interface Serve {
  child: Deno.ChildProcess;
  logFile: string;
  stop(): Promise<void>;
}

/** `jobsmanager serve` on `url` with the config file at `configPath`, run in `cwd`, `env` added. */
export function serveCommand(
  url: string,
  configPath: string,
  cwd: string,
  stderr: "null" | "piped",
  env: Record<string, string> = {},
  run: readonly string[] = RUN_MAIN,
): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: [...run, "--database", url, "--config", configPath, "serve"],
    cwd,
    env,
    stdin: "null",
    stdout: "null",
    stderr,
  });
}

/** `serve` on `db` with `config` in its `jobsmanager` section and `sections` (e.g. `http`) beside it. */
export async function serve(
  db: Db,
  config: Record<string, unknown>,
  sections: Record<string, unknown> = {},
  /** `deno` arguments that run the program (`runMainWith`); as it ships by default. */
  run: readonly string[] = RUN_MAIN,
): Promise<Serve> {
  const logFile = `${db.dir}/log/jobsmanager.log`;
  await Deno.writeTextFile(
    `${db.dir}/bench.json`,
    JSON.stringify({
      log: { path: `${db.dir}/log`, level: "info" },
      jobsmanager: { timezone: "UTC", ...config },
      ...sections,
    }),
  );
  const child = serveCommand(db.url, `${db.dir}/bench.json`, db.dir, "null", {}, run).spawn();
  try {
    await until(
      async () => (await readLog(logFile)).some((l) => String(l.message).startsWith("loaded ")),
      60_000,
    );
  } catch (error) {
    // Not left running on a database the caller drops next.
    child.kill("SIGTERM");
    await child.status;
    throw error;
  }
  return {
    child,
    logFile,
    stop: async () => {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

export async function readLog(file: string): Promise<Record<string, unknown>[]> {
  try {
    return (await Deno.readTextFile(file)).split("\n").filter((l) => l !== "").map((l) =>
      JSON.parse(l)
    );
  } catch {
    return [];
  }
}

export async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!await check()) {
    if (Date.now() > deadline) throw new Error("bench: timed out waiting");
    await new Promise((r) => setTimeout(r, 50));
  }
}
