/**
 * Benchmarks (not tests): `deno task bench [SECTION…] [--backend sqlite|mysql] [--seconds N]`.
 * Sections: catalogue, firing, latency, reload, idle, throughput (default: all).
 * MySQL runs when JM_BENCH_DATABASE_URL (or JM_TEST_DATABASE_URL) names a server;
 * each section uses a fresh database. Prints one markdown table per section.
 */
import mysql from "mysql2/promise";
import { DatabaseSync } from "node:sqlite";
import { defaultSettings } from "../src/config.ts";
import { buildJob, type Job } from "../src/job.ts";
import { openStore } from "../src/store/open.ts";
import { type DatabaseTarget, resolveTarget } from "../src/store/target.ts";
import { compileSchedule } from "../src/schedule.ts";

const MAIN = new URL("../src/main.ts", import.meta.url).pathname;
const SERVER = Deno.env.get("JM_BENCH_DATABASE_URL") ?? Deno.env.get("JM_TEST_DATABASE_URL") ?? "";

const args = [...Deno.args];
const flag = (name: string) => {
  const i = args.indexOf(name);
  return i < 0 ? undefined : args.splice(i, 2)[1];
};
const onlyBackend = flag("--backend");
const SECONDS = Number(flag("--seconds") ?? 60);
const sections = args.length > 0
  ? args
  : ["catalogue", "firing", "latency", "reload", "idle", "throughput"];
const backends = (["sqlite", "mysql"] as const).filter((b) =>
  (onlyBackend === undefined || onlyBackend === b) && (b === "sqlite" || SERVER !== "")
);

interface Db {
  url: string;
  dir: string;
  target: DatabaseTarget;
  drop(): Promise<void>;
}

async function freshDb(backend: "sqlite" | "mysql"): Promise<Db> {
  const dir = await Deno.makeTempDir({ prefix: "jm-bench-" });
  if (backend === "sqlite") {
    const url = `sqlite:${dir}/jobs.db`;
    return { url, dir, target: target(url), drop: () => Deno.remove(dir, { recursive: true }) };
  }
  const name = `jm_bench_${crypto.randomUUID().slice(0, 8)}`;
  const admin = await mysql.createConnection(SERVER);
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(SERVER);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    dir,
    target: target(u.toString()),
    drop: async () => {
      const c = await mysql.createConnection(SERVER);
      await c.query(`DROP DATABASE ${name}`);
      await c.end();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

function target(url: string): DatabaseTarget {
  return resolveTarget({ ...defaultSettings(), "db.url": url });
}

/**
 * `n` jobs; unless `schedule` says otherwise, daily at 1,440 different
 * minutes, so schedules are as varied as a real catalogue's, not one
 * pattern compiled once.
 */
function makeJobs(n: number, schedule: Partial<Job>, command = "true"): Job[] {
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
async function seed(db: Db, jobs: Job[]): Promise<void> {
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

async function query(db: Db, sql: string): Promise<Record<string, unknown>[]> {
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

async function cli(db: Db, cliArgs: string[]): Promise<number> {
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, "--database", db.url, ...cliArgs],
    cwd: db.dir,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`jobsmanager ${cliArgs.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return performance.now() - t0;
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}
const median = (v: number[]) => quantile(v, 0.5);
const ms = (v: number) => `${v.toFixed(1)} ms`;

function printTable(title: string, head: string[], rows: (string | number)[][]): void {
  console.log(`\n### ${title}\n`);
  console.log(`| ${head.join(" | ")} |`);
  console.log(`| ${head.map(() => "---").join(" | ")} |`);
  for (const r of rows) console.log(`| ${r.join(" | ")} |`);
}

interface Serve {
  child: Deno.ChildProcess;
  logFile: string;
  stop(): Promise<void>;
}

async function serve(db: Db, config: Record<string, unknown>): Promise<Serve> {
  const logFile = `${db.dir}/log/jobsmanager.log`;
  await Deno.writeTextFile(
    `${db.dir}/bench.json`,
    JSON.stringify({
      log: { path: `${db.dir}/log`, level: "info" },
      jobsmanager: { timezone: "UTC", ...config },
    }),
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      MAIN,
      "--database",
      db.url,
      "--config",
      `${db.dir}/bench.json`,
      "serve",
    ],
    cwd: db.dir,
    stdout: "null",
    stderr: "null",
  }).spawn();
  await until(
    async () => (await readLog(logFile)).some((l) => String(l.message).startsWith("loaded ")),
    60_000,
  );
  return {
    child,
    logFile,
    stop: async () => {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

async function readLog(file: string): Promise<Record<string, unknown>[]> {
  try {
    return (await Deno.readTextFile(file)).split("\n").filter((l) => l !== "").map((l) =>
      JSON.parse(l)
    );
  } catch {
    return [];
  }
}

async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!await check()) {
    if (Date.now() > deadline) throw new Error("bench: timed out waiting");
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function catalogue(backend: "sqlite" | "mysql"): Promise<(string | number)[][]> {
  const db = await freshDb(backend);
  try {
    await seed(db, makeJobs(10_000, {}));
    const adds: number[] = [];
    for (let i = 0; i < 7; i++) {
      adds.push(
        await cli(db, ["job", "add", `extra.${i}`, "--command", "true", "--cron", "*/5 * * * *"]),
      );
    }
    const lists: number[] = [];
    for (let i = 0; i < 5; i++) lists.push(await cli(db, ["job", "list"]));
    const noop: number[] = [];
    for (let i = 0; i < 5; i++) noop.push(await cli(db, ["--version"]));
    const loads: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const store = openStore(db.target);
      const jobs = await store.listJobs();
      const now = new Date();
      for (const j of jobs) compileSchedule(j, "UTC").nextAfter(now);
      await store.close();
      loads.push(performance.now() - t0);
    }
    // The first load compiles every schedule; later ones find them cached.
    return [[
      backend,
      ms(median(adds)),
      ms(median(lists)),
      ms(median(noop)),
      ms(loads[0]),
      ms(median(loads.slice(1))),
    ]];
  } finally {
    await db.drop();
  }
}

async function firing(backend: "sqlite" | "mysql"): Promise<(string | number)[][]> {
  const rows: (string | number)[][] = [];
  for (const n of [10, 100, 1000]) {
    const db = await freshDb(backend);
    try {
      await seed(
        db,
        makeJobs(n, {
          second: "*",
          minute: "*",
          hour: "*",
          day: "*",
          month: "*",
          day_of_week: "*",
        }),
      );
      const s = await serve(db, {});
      const from = Math.ceil(Date.now() / 1000) * 1000 + 1000;
      const to = from + SECONDS * 1000;
      await new Promise((r) => setTimeout(r, to - Date.now() + 500));
      await s.stop();
      const runs = await query(
        db,
        `SELECT scheduled_at, started_at, status FROM jm_runs WHERE scheduled_at >= ${from} AND scheduled_at < ${to}`,
      );
      const lags = runs.filter((r) => r.started_at !== null).map((r) =>
        Number(r.started_at) - Number(r.scheduled_at)
      );
      const statuses = new Map<string, number>();
      for (const r of runs) {
        statuses.set(String(r.status), (statuses.get(String(r.status)) ?? 0) + 1);
      }
      rows.push([
        backend,
        n,
        ms(quantile(lags, 0.5)),
        ms(quantile(lags, 0.99)),
        ms(Math.max(...lags)),
        n * SECONDS,
        runs.length,
        [...statuses].map(([k, v]) => `${k} ${v}`).join(", "),
      ]);
    } finally {
      await db.drop();
    }
  }
  return rows;
}

async function latency(backend: "sqlite" | "mysql"): Promise<(string | number)[][]> {
  const db = await freshDb(backend);
  try {
    await seed(db, makeJobs(1, {}));
    const s = await serve(db, { reload_interval: 2 });
    const waits: number[] = [];
    try {
      for (let i = 0; i < 5; i++) {
        await cli(db, ["job", "add", `probe.${i}`, "--command", "true", "--second", "*"]);
        const returned = Date.now();
        let first = 0;
        await until(async () => {
          const r = await query(
            db,
            `SELECT MIN(started_at) AS s FROM jm_runs WHERE job_id = 'probe.${i}'`,
          );
          first = Number(r[0]?.s ?? 0);
          return first > 0;
        }, 10_000);
        waits.push(first - returned);
        await cli(db, ["job", "disable", `probe.${i}`]);
      }
    } finally {
      await s.stop();
    }
    return [[backend, ms(median(waits)), ms(Math.max(...waits)), "2000 + 100 ms"]];
  } finally {
    await db.drop();
  }
}

async function reload(backend: "sqlite" | "mysql"): Promise<(string | number)[][]> {
  const rows: (string | number)[][] = [];
  for (const n of [1000, 10_000]) {
    const db = await freshDb(backend);
    try {
      await seed(
        db,
        makeJobs(1, {
          second: "*",
          minute: "*",
          hour: "*",
          day: "*",
          month: "*",
          day_of_week: "*",
        }),
      );
      const s = await serve(db, { reload_interval: 0.5 });
      try {
        await seed(db, makeJobs(n, {}).map((j) => ({ ...j, id: `more.${j.id}` })));
        await until(
          async () =>
            (await readLog(s.logFile)).some((l) => String(l.message).startsWith("reload applied")),
          60_000,
        );
        const line = (await readLog(s.logFile)).find((l) =>
          String(l.message).startsWith("reload applied")
        )!;
        const props = line.properties as Record<string, number>;
        await new Promise((r) => setTimeout(r, 2500));
        const lags = (await query(
          db,
          "SELECT started_at - scheduled_at AS lag FROM jm_runs WHERE started_at IS NOT NULL",
        ))
          .map((r) => Number(r.lag));
        rows.push([backend, n, ms(props.ms), props.added, ms(Math.max(...lags))]);
      } finally {
        await s.stop();
      }
    } finally {
      await db.drop();
    }
  }
  return rows;
}

function cpuTicks(pid: number): number {
  const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

async function idle(backend: "sqlite" | "mysql"): Promise<(string | number)[][]> {
  const db = await freshDb(backend);
  try {
    await seed(db, makeJobs(10_000, {}));
    const s = await serve(db, {});
    try {
      await new Promise((r) => setTimeout(r, 3000));
      const t0 = cpuTicks(s.child.pid);
      const w0 = performance.now();
      await new Promise((r) => setTimeout(r, Math.min(SECONDS, 30) * 1000));
      const cpu = (cpuTicks(s.child.pid) - t0) / 100 / ((performance.now() - w0) / 1000) * 100;
      const rss = /VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${s.child.pid}/status`))![1];
      return [[backend, "10000", `${cpu.toFixed(2)} %`, `${(Number(rss) / 1024).toFixed(0)} MiB`]];
    } finally {
      await s.stop();
    }
  } finally {
    await db.drop();
  }
}

async function spawnLoop(n: number, concurrency: number): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      await new Deno.Command("/bin/sh", {
        args: ["-c", "true"],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      })
        .output();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return n / ((performance.now() - t0) / 1000);
}

async function throughput(backend: "sqlite" | "mysql"): Promise<(string | number)[][]> {
  const db = await freshDb(backend);
  try {
    const fireAt = new Date(Math.ceil(Date.now() / 1000) * 1000 + 20_000);
    await seed(
      db,
      makeJobs(1000, {
        second: String(fireAt.getUTCSeconds()),
        minute: "*",
        hour: "*",
        day: "*",
        month: "*",
        day_of_week: "*",
      }),
    );
    const s = await serve(db, { misfire_grace_time: 60 });
    try {
      await until(async () => {
        const r = await query(
          db,
          `SELECT COUNT(*) AS n FROM jm_runs WHERE scheduled_at = ${fireAt.getTime()} AND finished_at IS NOT NULL`,
        );
        return Number(r[0].n) >= 1000;
      }, 120_000);
    } finally {
      await s.stop();
    }
    const r = await query(
      db,
      `SELECT MIN(started_at) AS a, MAX(finished_at) AS b, COUNT(*) AS n FROM jm_runs WHERE scheduled_at = ${fireAt.getTime()}`,
    );
    const rate = Number(r[0].n) / ((Number(r[0].b) - Number(r[0].a)) / 1000);
    const plain = await spawnLoop(1000, 300);
    return [[backend, rate.toFixed(0), plain.toFixed(0), (rate / plain).toFixed(2)]];
  } finally {
    await db.drop();
  }
}

const SECTIONS: Record<
  string,
  [string, string[], (b: "sqlite" | "mysql") => Promise<(string | number)[][]>]
> = {
  catalogue: [
    "Catalogue with 10,000 jobs (median wall time of the CLI process; load = listJobs + next fire of each, in-process)",
    [
      "backend",
      "job add",
      "job list",
      "--version (process floor)",
      "load 10k + next fire, cold",
      "warm",
    ],
    catalogue,
  ],
  firing: [
    `Firing lag (child started − scheduled), jobs every second for ${SECONDS} s`,
    ["backend", "jobs", "p50", "p99", "max", "expected fires", "recorded", "statuses"],
    firing,
  ],
  latency: [
    "From `job add` returning to the job's first fire (reload_interval 2 s)",
    ["backend", "median", "max", "target"],
    latency,
  ],
  reload: [
    "One reload adding N jobs (from the service's log), and the worst firing lag of an every-second job meanwhile",
    ["backend", "jobs added", "reload", "added", "max lag of the ticking job"],
    reload,
  ],
  idle: [
    "Idle service with 10,000 jobs loaded",
    ["backend", "jobs", "CPU (of one core)", "RSS"],
    idle,
  ],
  throughput: [
    "1,000 jobs firing `true` at the same second vs a plain loop spawning /bin/sh -c true (300 at once)",
    ["backend", "runs/s (service)", "runs/s (plain loop)", "ratio"],
    throughput,
  ],
};

for (const name of sections) {
  const section = SECTIONS[name];
  if (!section) {
    throw new Error(`unknown section '${name}' (one of ${Object.keys(SECTIONS).join(", ")})`);
  }
  const [title, head, fn] = section;
  const rows: (string | number)[][] = [];
  for (const b of backends) rows.push(...await fn(b));
  printTable(title, head, rows);
}
