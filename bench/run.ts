/**
 * Benchmarks (not tests): `deno task bench [SECTION…] [--backend sqlite|mysql] [--seconds N]`.
 * Sections: catalogue, firing, latency, reload, idle, throughput, sink, flood, api (default: all).
 * MySQL runs when JM_BENCH_DATABASE_URL (or JM_TEST_DATABASE_URL) names a server;
 * each section uses a fresh database. Prints one markdown table per section.
 */
import { compileSchedule } from "../src/cron/croner.ts";
import { openStore } from "../src/store/open.ts";
import {
  type Backend,
  cli,
  freshDb,
  makeJobs,
  median,
  ms,
  printTable,
  quantile,
  query,
  readLog,
  seed,
  serve,
  SERVER,
  until,
} from "./common.ts";
import { apiLoad } from "./http.ts";
import { floodLag, sinkThroughput } from "./logging.ts";

const args = [...Deno.args];
const flag = (name: string) => {
  const i = args.indexOf(name);
  return i < 0 ? undefined : args.splice(i, 2)[1];
};
const onlyBackend = flag("--backend");
const SECONDS = Number(flag("--seconds") ?? 60);
const sections = args.length > 0
  ? args
  : ["catalogue", "firing", "latency", "reload", "idle", "throughput", "sink", "flood", "api"];
const backends = (["sqlite", "mysql"] as const).filter((b) =>
  (onlyBackend === undefined || onlyBackend === b) && (b === "sqlite" || SERVER !== "")
);

async function catalogue(backend: Backend): Promise<(string | number)[][]> {
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

async function firing(backend: Backend): Promise<(string | number)[][]> {
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

/**
 * From `job add` returning to the service applying it (its reload's log
 * line) and to the job's first fire. The probe fires every second, so its
 * first fire also waits for the next whole second after the reload: each
 * add comes at a random point of a second, as an operator's would.
 */
async function latency(backend: Backend): Promise<(string | number)[][]> {
  const rows: (string | number)[][] = [];
  for (const busy of [0, 100]) {
    const db = await freshDb(backend);
    try {
      const every = { second: "*", minute: "*", hour: "*", day: "*", month: "*", day_of_week: "*" };
      await seed(db, busy === 0 ? makeJobs(1, {}) : makeJobs(busy, every));
      const s = await serve(db, {});
      const applied: number[] = [];
      const fired: number[] = [];
      try {
        for (let i = 0; i < 9; i++) {
          await new Promise((r) => setTimeout(r, Math.random() * 1000));
          await cli(db, ["job", "add", `probe.${i}`, "--command", "true", "--second", "*"]);
          const returned = Date.now();
          const marker = Number(
            (await query(db, "SELECT MAX(id) AS id FROM jm_update_info"))[0].id,
          );
          let first = 0;
          await until(async () => {
            const r = await query(
              db,
              `SELECT MIN(started_at) AS s FROM jm_runs WHERE job_id = 'probe.${i}'`,
            );
            first = Number(r[0]?.s ?? 0);
            return first > 0;
          }, 30_000);
          let at = 0;
          await until(async () => {
            const line = (await readLog(s.logFile)).find((l) => {
              const p = l.properties as Record<string, number>;
              return String(l.message).startsWith("reload applied") && p.first <= marker &&
                marker <= p.last;
            });
            at = line ? Date.parse(String(line["@timestamp"])) : 0;
            return at > 0;
          }, 30_000);
          applied.push(at - returned);
          fired.push(first - returned);
          await cli(db, ["job", "disable", `probe.${i}`]);
        }
      } finally {
        await s.stop();
      }
      rows.push([
        backend,
        busy,
        ms(median(applied)),
        ms(Math.max(...applied)),
        ms(median(fired)),
        ms(Math.max(...fired)),
      ]);
    } finally {
      await db.drop();
    }
  }
  return rows;
}

async function reload(backend: Backend): Promise<(string | number)[][]> {
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
        // CPU, unlike wall time, barely depends on what else the machine runs.
        const ticks = cpuTicks(s.child.pid);
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
        const cpuMs = (cpuTicks(s.child.pid) - ticks) * 10;
        await new Promise((r) => setTimeout(r, 2500));
        const lags = (await query(
          db,
          "SELECT started_at - scheduled_at AS lag FROM jm_runs WHERE started_at IS NOT NULL",
        ))
          .map((r) => Number(r.lag));
        rows.push([backend, n, ms(props.ms), ms(cpuMs), props.added, ms(Math.max(...lags))]);
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

async function idle(backend: Backend): Promise<(string | number)[][]> {
  const db = await freshDb(backend);
  try {
    // Loaded but not firing: their 1,440 times of day fall in a month six months away.
    const month = String((new Date().getUTCMonth() + 6) % 12 + 1);
    await seed(db, makeJobs(10_000, { month }));
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

async function throughput(backend: Backend): Promise<(string | number)[][]> {
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
  [string, string[], (b: Backend) => Promise<(string | number)[][]>]
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
    "From `job add` returning to the service applying it and to the job's first fire (an every-second job; default reload_interval; target: applied ≤ 500 ms median, the fire then at the next whole second)",
    ["backend", "busy every-second jobs", "applied median", "max", "first fire median", "max"],
    latency,
  ],
  reload: [
    "One reload adding N jobs (from the service's log), and the worst firing lag of an every-second job meanwhile",
    [
      "backend",
      "jobs added",
      "reload",
      "service CPU, seed to reload (a fire each second included)",
      "added",
      "max lag of the ticking job",
    ],
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
  sink: [
    "Database log sink: 100,000 records written in its batches of 500",
    ["backend", "records", "rate"],
    sinkThroughput,
  ],
  flood: [
    `Firing lag of 100 every-second jobs for ${SECONDS} s, quiet and under a log flood (all sinks at info)`,
    ["backend", "flood", "fires", "p50", "p99"],
    (b) => floodLag(b, SECONDS),
  ],
  api: [
    `Firing lag of 100 every-second jobs for ${SECONDS} s, without and with 200 concurrent API requests (loopback)`,
    ["backend", "API load", "fires", "lag p50", "lag p99", "requests/s", "request p99", "failed"],
    (b) => apiLoad(b, SECONDS),
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
