/**
 * Benchmarks (not tests): `deno task bench [SECTION…] [--backend sqlite|mysql] [--seconds N]`.
 * Sections: catalogue, firing, latency, reload, idle, throughput, sink, flood, api (default: all);
 * `cluster` (the chaos run of bench/cluster.ts, default 300 s; `--nodes 3|2` for one of its two
 * setups) only when named.
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
import { chaos } from "./cluster.ts";
import { apiLoad } from "./http.ts";
import { floodLag, sinkThroughput } from "./logging.ts";

const args = [...Deno.args];
const flag = (name: string) => {
  const i = args.indexOf(name);
  return i < 0 ? undefined : args.splice(i, 2)[1];
};
const onlyBackend = flag("--backend");
const secondsGiven = flag("--seconds");
const nodesGiven = flag("--nodes");
const SECONDS = Number(secondsGiven ?? 60);
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

async function latency(backend: Backend): Promise<(string | number)[][]> {
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

async function idle(backend: Backend): Promise<(string | number)[][]> {
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

/** The chaos run: its own MariaDB server, so it runs whatever `--backend` says. */
async function cluster(): Promise<void> {
  const seconds = Number(secondsGiven ?? 300);
  const rows: (string | number)[][] = [];
  const runs = ([[3, true], [2, false]] as const).filter(([n]) =>
    nodesGiven === undefined || n === Number(nodesGiven)
  );
  for (const [nodes, explicitIds] of runs) {
    const f = await chaos(nodes, seconds, explicitIds);
    console.error(`${f.nodes} nodes, records that are not a run:`);
    for (const note of f.notes) console.error(`  ${note}`);
    if (f.twiceSample.length > 0 || f.unaccountedSample.length > 0 || f.exits > 0) {
      console.error(`events:\n  ${f.events.join("\n  ")}`);
      console.error(`run twice (first ${f.twiceSample.length}):\n  ${f.twiceSample.join("\n  ")}`);
    }
    if (f.unaccountedSample.length > 0) {
      console.error(`unaccounted (first ${f.unaccountedSample.length}):`);
      for (const line of f.unaccountedSample) console.error(`  ${line}`);
    }
    rows.push([
      `${f.nodes} (${f.ids})`,
      f.kills,
      f.exits,
      f.expected,
      f.once,
      f.twice,
      f.unaccounted,
      f.missed,
      f.lost,
      f.interrupted,
      f.skipped,
      `${f.p99LagMs} ms`,
      `${f.maxLagMs} ms`,
    ]);
  }
  printTable(
    `Chaos: 50 every-second jobs for ${seconds} s, a random node kill -9'd every 10 s and restarted 0-6 s later, the MariaDB server restarted once; per (job, instant)`,
    [
      "nodes (ids)",
      "kills",
      "exits (restarted after 5 s)",
      "instants",
      "run once",
      "run twice",
      "unaccounted",
      "missed",
      "lost",
      "interrupted",
      "skipped",
      "lag p99",
      "lag max",
    ],
    rows,
  );
}

for (const name of sections) {
  if (name === "cluster") {
    await cluster();
    continue;
  }
  const section = SECTIONS[name];
  if (!section) {
    throw new Error(
      `unknown section '${name}' (one of ${[...Object.keys(SECTIONS), "cluster"].join(", ")})`,
    );
  }
  const [title, head, fn] = section;
  const rows: (string | number)[][] = [];
  for (const b of backends) rows.push(...await fn(b));
  printTable(title, head, rows);
}
