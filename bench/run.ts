/**
 * Benchmarks (not tests): `deno task bench [SECTION…] [--backend sqlite|mysql] [--seconds N]`
 * (`--rounds N`: pairs of runs without and with load in `api`, default 3; `--original DIR`: a
 * checkout of the original program, measured beside the service in `cost`, see bench/original.ts).
 * Sections: catalogue, firing, burst, cost, v8flags, latency, reload, idle, throughput, runner,
 * sink, flood, logs, api, notify (default: all); `cluster` (the chaos run of bench/cluster.ts, default 300 s;
 * `--nodes 3|2` for one of its two setups) only when named.
 * MySQL runs when JM_BENCH_DATABASE_URL (or JM_TEST_DATABASE_URL) names a server;
 * each section uses a fresh database. Prints one markdown table per section.
 */
import { compileSchedule } from "../src/cron/croner.ts";
import { openStore } from "../src/store/open.ts";
import { startRun } from "../src/daemon/runner.ts";
import { RunPool } from "../src/daemon/run_pool.ts";
import {
  type Backend,
  cli,
  EVERY_SECOND,
  freshDb,
  makeJobs,
  median,
  ms,
  printTable,
  quantile,
  query,
  readLog,
  runMainWith,
  seed,
  serve,
  SERVER,
  SHIPPED_V8_FLAGS,
  until,
} from "./common.ts";
import { chaos } from "./cluster.ts";
import { apiLoad } from "./http.ts";
import { FLOOD_ROUNDS, floodLag, sinkThroughput } from "./logging.ts";
import { LOG_LINES, logFilter } from "./log_filter.ts";
import { notifyLag } from "./notify.ts";
import { checkOriginal, startOriginal } from "./original.ts";

const args = [...Deno.args];
const flag = (name: string) => {
  const i = args.indexOf(name);
  return i < 0 ? undefined : args.splice(i, 2)[1];
};
const onlyBackend = flag("--backend");
const secondsGiven = flag("--seconds");
const nodesGiven = flag("--nodes");
const roundsGiven = flag("--rounds");
const originalGiven = flag("--original");
if (originalGiven !== undefined && SERVER === "") {
  throw new Error("bench: --original needs a MySQL server (set JM_BENCH_DATABASE_URL)");
}
/** A checkout of the original program, run beside the service by the cost section. */
const ORIGINAL = originalGiven === undefined ? undefined : await checkOriginal(originalGiven);
const SECONDS = Number(secondsGiven ?? 60);
const sections = args.length > 0 ? args : [
  "catalogue",
  "firing",
  "burst",
  "cost",
  "v8flags",
  "latency",
  "reload",
  "idle",
  "throughput",
  "runner",
  "sink",
  "flood",
  "logs",
  "api",
  "notify",
];
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

/** A job's command that prints when it really started (ms), as the job itself sees it. */
const OWN_CLOCK = "date +%s%3N";

/** Lag of each run from its scheduled instant to its own first instruction, from its output. */
function ownLags(runs: Record<string, unknown>[]): number[] {
  return runs.filter((r) => /^\d+\s*$/.test(String(r.stdout ?? "")))
    .map((r) => Number(String(r.stdout).trim()) - Number(r.scheduled_at));
}

/** CPU (ms) process `pid` used itself, and its children it has reaped (their own children included). */
function cpuSplit(pid: number | "self"): { own: number; children: number } {
  const f = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
  return {
    own: (Number(f[11]) + Number(f[12])) * 10,
    children: (Number(f[13]) + Number(f[14])) * 10,
  };
}

/**
 * The cores a process kept busy since `from` (a cpuSplit of it), over
 * `seconds`: its own and its reaped children's (the commands it ran).
 */
function coresSince(
  from: { own: number; children: number },
  pid: number | "self",
  seconds: number,
): string {
  const now = cpuSplit(pid);
  const cores = (ms: number) => (ms / 1000 / seconds).toFixed(2);
  return `${cores(now.own - from.own)} + ${cores(now.children - from.children)}`;
}

function countStatuses(runs: Record<string, unknown>[]): string {
  const statuses = new Map<string, number>();
  for (const r of runs) statuses.set(String(r.status), (statuses.get(String(r.status)) ?? 0) + 1);
  return [...statuses].map(([k, v]) => `${k} ${v}`).join(", ");
}

/**
 * The machine's limit for `n` fires at one instant: `n` shells started
 * ahead and let go at a whole second by a bare loop (one write each), as
 * the service's armed shells are, each running OWN_CLOCK; nothing claimed
 * or recorded. The lag of each one's `date`, and the time from its
 * release to its exit being heard (what the service records as a run's
 * duration), over `rounds` seconds.
 */
async function releasedTogether(
  n: number,
  rounds: number,
): Promise<{ lags: number[]; durations: number[] }> {
  const lags: number[] = [];
  const durations: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const children = Array.from({ length: n }, () =>
      new Deno.Command("/bin/sh", {
        args: ["-c", `read _; ${OWN_CLOCK}`],
        stdin: "piped",
        stdout: "piped",
        stderr: "null",
      }).spawn());
    const writers = children.map((c) => c.stdin.getWriter());
    const at = Math.ceil((Date.now() + 500) / 1000) * 1000;
    await new Promise((resolve) => setTimeout(resolve, at - Date.now() - 5));
    while (Date.now() < at) {
      // The instant, to the millisecond.
    }
    const line = new TextEncoder().encode("\n");
    const released: number[] = [];
    for (const w of writers) {
      released.push(Date.now());
      w.write(line).then(() => w.close());
    }
    const exited = children.map((c) => c.status.then(() => Date.now()));
    for (const [i, child] of children.entries()) {
      const { stdout } = await child.output();
      lags.push(Number(new TextDecoder().decode(stdout).trim()) - at);
      durations.push(await exited[i] - released[i]);
    }
  }
  return { lags, durations };
}

async function firing(backend: Backend): Promise<(string | number)[][]> {
  const rows: (string | number)[][] = [];
  for (const n of [10, 100]) {
    const { lags, durations } = await releasedTogether(n, SECONDS);
    rows.push([
      "limit: a bare loop",
      n,
      n * SECONDS,
      "",
      "shells started ahead, let go together",
      ms(quantile(lags, 0.5)),
      ms(quantile(lags, 0.99)),
      ms(Math.max(...lags)),
      `${ms(median(durations))} / ${ms(quantile(durations, 0.99))}`,
      "",
      "",
    ]);
  }
  // 1,000 a second is a matter of throughput: a bare loop given the same
  // fires, workers and grace as the service, nothing claimed or recorded.
  const loopCpu = cpuSplit("self");
  const bare = await firedByBareLoop(1000, SECONDS, 300, 1000);
  rows.push([
    "limit: a bare loop",
    1000,
    1000 * SECONDS,
    `${(100 * bare.lags.length / (1000 * SECONDS)).toFixed(1)} %`,
    `300 workers; a fire not begun within 1 s dropped: ${bare.dropped}`,
    ms(quantile(bare.lags, 0.5)),
    ms(quantile(bare.lags, 0.99)),
    ms(Math.max(...bare.lags)),
    "",
    "",
    coresSince(loopCpu, "self", bare.seconds),
  ]);
  for (const n of [10, 100, 1000]) {
    const db = await freshDb(backend);
    try {
      await seed(db, makeJobs(n, EVERY_SECOND, OWN_CLOCK));
      const s = await serve(db, {});
      const from = Math.ceil(Date.now() / 1000) * 1000 + 2000;
      const to = from + SECONDS * 1000;
      await new Promise((r) => setTimeout(r, from - Date.now()));
      const serviceCpu = cpuSplit(s.child.pid);
      await new Promise((r) => setTimeout(r, to - Date.now()));
      const cores = coresSince(serviceCpu, s.child.pid, SECONDS);
      await new Promise((r) => setTimeout(r, 2000));
      await s.stop();
      const runs = await query(
        db,
        `SELECT job_id, scheduled_at, started_at, finished_at, status, stdout FROM jm_runs WHERE scheduled_at >= ${from} AND scheduled_at < ${to}`,
      );
      const lags = ownLags(runs);
      const success = runs.filter((r) => r.status === "success");
      const durations = success.map((r) => Number(r.finished_at) - Number(r.started_at));
      // The longest time any job went without a successful run (starvation).
      const ranAt = new Map<string, number[]>();
      for (const r of success) {
        ranAt.set(String(r.job_id), [...ranAt.get(String(r.job_id)) ?? [], Number(r.scheduled_at)]);
      }
      let longestGap = ranAt.size < n ? to - from : 0;
      for (const times of ranAt.values()) {
        const sorted = [from - 1000, ...times.sort((a, b) => a - b), to];
        for (let i = 1; i < sorted.length; i++) {
          longestGap = Math.max(longestGap, sorted[i] - sorted[i - 1]);
        }
      }
      rows.push([
        backend,
        n,
        n * SECONDS,
        `${(100 * success.length / (n * SECONDS)).toFixed(1)} %`,
        countStatuses(runs),
        ms(quantile(lags, 0.5)),
        ms(quantile(lags, 0.99)),
        ms(Math.max(...lags)),
        `${ms(median(durations))} / ${ms(quantile(durations, 0.99))}`,
        `${(longestGap / 1000).toFixed(0)} s`,
        cores,
      ]);
    } finally {
      await db.drop();
    }
  }
  return rows;
}

/**
 * The machine's limit for `perSecond` fires due at each whole second for
 * `seconds`: a bare loop of `workers` that each take the oldest fire and run
 * OWN_CLOCK with `Command.output()`, dropping a fire not begun within
 * `graceMs`, as the service does with its workers and grace. The lag of
 * each run's `date` from its fire, and the fires dropped.
 */
async function firedByBareLoop(
  perSecond: number,
  seconds: number,
  workers: number,
  graceMs: number,
): Promise<{ lags: number[]; dropped: number; seconds: number }> {
  const from = Math.ceil(Date.now() / 1000) * 1000 + 1000;
  const to = from + seconds * 1000;
  const due: number[] = [];
  const lags: number[] = [];
  let dropped = 0;
  let waiting: (() => void)[] = [];
  let lastDue = 0;
  const ticker = setInterval(() => {
    const second = Math.floor(Date.now() / 1000) * 1000;
    if (second < from || second >= to || second === lastDue) return;
    lastDue = second;
    for (let i = 0; i < perSecond; i++) due.push(second);
    for (const wake of waiting) wake();
    waiting = [];
  }, 1);
  const worker = async () => {
    while (Date.now() < to + graceMs || due.length > 0) {
      const at = due.shift();
      if (at === undefined) {
        await new Promise<void>((resolve) => {
          waiting.push(resolve);
          setTimeout(resolve, 50);
        });
        continue;
      }
      if (Date.now() - at > graceMs) {
        dropped++;
        continue;
      }
      const { stdout } = await new Deno.Command("/bin/sh", {
        args: ["-c", OWN_CLOCK],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      lags.push(Number(new TextDecoder().decode(stdout).trim()) - at);
    }
  };
  const t0 = Date.now();
  await Promise.all(Array.from({ length: workers }, worker));
  clearInterval(ticker);
  return { lags, dropped, seconds: (Date.now() - t0) / 1000 };
}

/** N jobs due at one instant, shipped defaults (max_workers 300, grace 1 s). */
async function burst(backend: Backend): Promise<(string | number)[][]> {
  const rows: (string | number)[][] = [];
  // Shipped defaults, then 1,000 with 2 s of grace: how many start within 2 s.
  const cases: [number, number | null][] = [[500, null], [1000, null], [1000, 2]];
  for (const [n, grace] of cases) {
    const db = await freshDb(backend);
    try {
      const fireAt = Math.ceil(Date.now() / 1000) * 1000 + 15_000;
      const second = String(new Date(fireAt).getUTCSeconds());
      await seed(
        db,
        makeJobs(
          n,
          { ...EVERY_SECOND, second, minute: String(new Date(fireAt).getUTCMinutes()) },
          OWN_CLOCK,
        ),
      );
      const s = await serve(db, grace === null ? {} : { misfire_grace_time: grace });
      try {
        await until(async () => {
          const r = await query(
            db,
            `SELECT COUNT(*) AS n FROM jm_runs WHERE scheduled_at = ${fireAt} AND finished_at IS NOT NULL`,
          );
          return Number(r[0].n) >= n;
        }, 60_000);
      } finally {
        await s.stop();
      }
      const runs = await query(
        db,
        `SELECT scheduled_at, status, stdout FROM jm_runs WHERE scheduled_at = ${fireAt}`,
      );
      const lags = ownLags(runs);
      rows.push([
        backend,
        `${n}${grace === null ? "" : ` (grace ${grace} s)`}`,
        lags.filter((l) => l <= 1000).length,
        lags.filter((l) => l <= 2000).length,
        countStatuses(runs),
        ms(Math.max(...lags)),
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
      await seed(db, busy === 0 ? makeJobs(1, {}) : makeJobs(busy, EVERY_SECOND));
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

/** Rounds of each reload case: one reload's time varied 125-226 ms on an unchanged program. */
const RELOAD_ROUNDS = 3;

async function reload(backend: Backend): Promise<(string | number)[][]> {
  const rows: (string | number)[][] = [];
  // By SQL with an empty marker, as the README shows; then as `jobs apply` writes them: one
  // marker holding every job added.
  const cases = [[1000, "SQL"], [10_000, "SQL"], [10_000, "apply"]] as const;
  for (const [n, how] of cases) {
    const rounds: { ms: number; cpuMs: number; added: number; maxLag: number }[] = [];
    for (let round = 0; round < RELOAD_ROUNDS; round++) {
      rounds.push(await reloadOnce(backend, n, how));
    }
    const spread = (pick: (r: typeof rounds[number]) => number) => {
      const values = rounds.map(pick).sort((a, b) => a - b);
      return `${ms(median(values))} (${values.map((v) => v.toFixed(0)).join(" / ")})`;
    };
    rows.push([
      backend,
      `${n} (${how})`,
      spread((r) => r.ms),
      spread((r) => r.cpuMs),
      rounds.map((r) => r.added).join(" / "),
      spread((r) => r.maxLag),
    ]);
  }
  return rows;
}

/** One service given `n` jobs more in one reload: its time, its CPU and the ticking job's worst lag. */
async function reloadOnce(
  backend: Backend,
  n: number,
  how: "SQL" | "apply",
): Promise<{ ms: number; cpuMs: number; added: number; maxLag: number }> {
  const db = await freshDb(backend);
  try {
    await seed(db, makeJobs(1, EVERY_SECOND));
    const s = await serve(db, { reload_interval: 0.5 });
    try {
      // CPU, unlike wall time, barely depends on what else the machine runs.
      const ticks = cpuTicks(s.child.pid);
      // The ticks from here on: the first fire after the start may be a late one, by design.
      const from = Date.now();
      const more = makeJobs(n, {}).map((j) => ({ ...j, id: `more.${j.id}` }));
      if (how === "SQL") await seed(db, more);
      else {
        const store = openStore(db.target);
        try {
          await store.changeJobs(() => ({ put: more, remove: [] }));
        } finally {
          await store.close();
        }
      }
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
        `SELECT started_at - scheduled_at AS lag FROM jm_runs WHERE started_at IS NOT NULL AND scheduled_at >= ${from}`,
      ))
        .map((r) => Number(r.lag));
      return { ms: props.ms, cpuMs, added: props.added, maxLag: Math.max(...lags) };
    } finally {
      await s.stop();
    }
  } finally {
    await db.drop();
  }
}

/** Process `pid`'s own CPU, in clock ticks (10 ms). */
function cpuTicks(pid: number): number {
  return cpuSplit(pid).own / 10;
}

/**
 * The service's CPU (of one core) over `seconds` from now, and its RSS at the end.
 */
async function cpuOver(pid: number, seconds: number): Promise<{ cpu: string; rss: string }> {
  const t0 = cpuTicks(pid);
  const w0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const cpu = (cpuTicks(pid) - t0) / 100 / ((performance.now() - w0) / 1000) * 100;
  const rss = /VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))![1];
  return { cpu: `${cpu.toFixed(2)} %`, rss: `${(Number(rss) / 1024).toFixed(0)} MiB` };
}

/**
 * Idle after the load settles: V8 gives back the load's memory in a few
 * collections some 30 s after it (tens of ms, once), so the first 30 s
 * are shown apart from the steady state after them.
 */
async function idle(backend: Backend): Promise<(string | number)[][]> {
  const db = await freshDb(backend);
  try {
    // Loaded but not firing: their 1,440 times of day fall in a month six months away.
    const month = String((new Date().getUTCMonth() + 6) % 12 + 1);
    await seed(db, makeJobs(10_000, { month }));
    const s = await serve(db, {});
    try {
      await new Promise((r) => setTimeout(r, 3000));
      const first = await cpuOver(s.child.pid, 30);
      await new Promise((r) => setTimeout(r, 7000));
      const steady = await cpuOver(s.child.pid, Math.max(SECONDS, 30));
      return [[backend, "10000", first.cpu, steady.cpu, steady.rss]];
    } finally {
      await s.stop();
    }
  } finally {
    await db.drop();
  }
}

/** The original program's cost as issue 11 measured it: shown when `--original` names none. */
const ORIGINAL_COST: Record<number, string> = {
  10: "2.3 %, 89 MiB (issue 11)",
  100: "19 %, 94 MiB (issue 11)",
};

/** CPU of the service (not its jobs) and its RSS while N every-second jobs fire `true`. */
async function cost(backend: Backend): Promise<(string | number)[][]> {
  const rows: (string | number)[][] = [];
  for (const rate of [10, 100]) {
    const db = await freshDb(backend);
    try {
      await seed(db, makeJobs(rate, EVERY_SECOND));
      const s = await serve(db, {});
      let ours: Cost;
      try {
        await new Promise((r) => setTimeout(r, 5000));
        ours = await costOver(s.child.pid, rate);
      } finally {
        await s.stop();
      }
      const original = ORIGINAL === undefined ? undefined : await originalCost(rate);
      rows.push([
        backend,
        rate,
        ours.cpu,
        ours.perFire,
        ours.rss,
        original === undefined
          ? ORIGINAL_COST[rate]
          : `${original.cpu}, ${original.perFire} a fire, ${original.rss}`,
      ]);
    } finally {
      await db.drop();
    }
  }
  return rows;
}

interface Cost {
  cpu: string;
  perFire: string;
  rss: string;
}

/** A process's own CPU (of one core), CPU per fire and peak RSS over the next `--seconds` (30 at most). */
async function costOver(pid: number, rate: number): Promise<Cost> {
  const rss = () => Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))![1]);
  const t0 = cpuTicks(pid);
  const w0 = performance.now();
  let maxRss = rss();
  for (let i = 0; i < Math.min(SECONDS, 30); i++) {
    await new Promise((r) => setTimeout(r, 1000));
    maxRss = Math.max(maxRss, rss());
  }
  const seconds = (performance.now() - w0) / 1000;
  const cpuSeconds = (cpuTicks(pid) - t0) / 100;
  return {
    cpu: `${(100 * cpuSeconds / seconds).toFixed(1)} %`,
    perFire: `${(1000 * cpuSeconds / (rate * seconds)).toFixed(2)} ms`,
    rss: `${(maxRss / 1024).toFixed(0)} MiB`,
  };
}

/**
 * What the shipped `--optimize-for-size` trades: the service with its V8
 * flags and with that one left out, at 100 fires/s (CPU per fire and peak
 * RSS, the cost target's measures) and at 1,000 (the share of fires that
 * ran, the sustained target's).
 */
async function v8flags(backend: Backend): Promise<(string | number)[][]> {
  const rows: (string | number)[][] = [];
  const variants: [string, readonly string[]][] = [
    ["as shipped", SHIPPED_V8_FLAGS],
    ["without --optimize-for-size", SHIPPED_V8_FLAGS.filter((f) => f !== "--optimize-for-size")],
  ];
  for (const [name, flags] of variants) {
    const row: (string | number)[] = [backend, `${name} (${flags.join(",")})`];
    for (const rate of [100, 1000]) {
      const db = await freshDb(backend);
      try {
        await seed(db, makeJobs(rate, EVERY_SECOND));
        const s = await serve(db, {}, {}, runMainWith(flags));
        let measured: Cost;
        let from: number;
        let to: number;
        try {
          await new Promise((r) => setTimeout(r, 5000));
          from = Math.ceil(Date.now() / 1000) * 1000;
          await new Promise((r) => setTimeout(r, from - Date.now()));
          measured = await costOver(s.child.pid, rate);
          to = Math.floor(Date.now() / 1000) * 1000;
          // The last second's runs end and are recorded.
          await new Promise((r) => setTimeout(r, 2000));
        } finally {
          await s.stop();
        }
        const [{ success }] = await query(
          db,
          `SELECT COUNT(*) AS success FROM jm_runs WHERE status = 'success' AND scheduled_at >= ${from} AND scheduled_at < ${to}`,
        );
        const share = `${(100 * Number(success) / (rate * (to - from) / 1000)).toFixed(1)} %`;
        row.push(...(rate === 100 ? [measured.perFire, measured.rss] : [share, measured.cpu]));
        if (rate === 1000) row.push(measured.rss);
      } finally {
        await db.drop();
      }
    }
    rows.push(row);
  }
  return rows;
}

/** The original program's cost at `rate`, measured once a run (it keeps its jobs in MySQL only). */
const originalCosts = new Map<number, Cost>();
async function originalCost(rate: number): Promise<Cost> {
  const known = originalCosts.get(rate);
  if (known) return known;
  const db = await freshDb("mysql");
  try {
    const original = await startOriginal(ORIGINAL!, db, rate);
    try {
      await new Promise((r) => setTimeout(r, 5000));
      const measured = await costOver(original.pid, rate);
      originalCosts.set(rate, measured);
      return measured;
    } finally {
      await original.stop();
    }
  } finally {
    await db.drop();
  }
}

/** `n` calls of `one`, `concurrency` at a time; returns calls per second. */
async function loop(n: number, concurrency: number, one: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      await one();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return n / ((performance.now() - t0) / 1000);
}

/** `/bin/sh -c true` run to its end the plainest way, output discarded. */
const plainTrue = () =>
  new Deno.Command("/bin/sh", {
    args: ["-c", "true"],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  })
    .output();

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
    const plain = await loop(1000, 300, plainTrue);
    return [[backend, rate.toFixed(0), plain.toFixed(0), (rate / plain).toFixed(2)]];
  } finally {
    await db.drop();
  }
}

/**
 * The runner alone (no store, no service): 2,000 runs of `/bin/sh -c true`,
 * 300 at once, against a plain `Command.output()` loop (output piped and
 * collected, in a group of its own: what the runner must do, without its
 * bounds) at the same concurrency in the same process; then how long a
 * ~1 ms command is recorded as running (finished_at − started_at), alone
 * and in a burst of 100 (100 jobs due at the same second). The process
 * holds 150 MiB, as the service does under load: what a spawn costs
 * depends on it.
 */
async function runner(): Promise<(string | number)[][]> {
  const ballast = Array.from({ length: 150 }, () => new Uint8Array(1 << 20).fill(1));
  const runSpec = (command: string) => ({
    command,
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
    timeoutMs: 60_000,
    killGraceMs: 2000,
    outputCap: 65_536,
  });
  const plain = () =>
    new Deno.Command("/bin/sh", {
      args: ["-c", "true"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      detached: true,
    }).output();
  const ours = async () => {
    const result = await startRun(runSpec("true")).done;
    if (result.status !== "success") throw new Error(`bench: a run ended ${result.status}`);
  };
  // What the service uses: the runner in its threads.
  const pool = new RunPool();
  const pooled = async () => {
    const result = await pool.launch(runSpec("true"), { now: Date.now, startBy: Infinity }).done;
    if (result.status !== "success") throw new Error(`bench: a run ended ${result.status}`);
  };
  // Warm them up, then alternate, so that none gets the quieter moment alone.
  await loop(200, 50, plain);
  await loop(200, 50, ours);
  await loop(200, 50, pooled);
  // CPU (this process and its children, all reaped by then) per run: what
  // contention from other processes changes least.
  const cpuMs = () => {
    const { own, children } = cpuSplit("self");
    return own + children;
  };
  const measure = async (one: () => Promise<unknown>) => {
    const cpu0 = cpuMs();
    const rate = await loop(2000, 300, one);
    return { rate, cpu: (cpuMs() - cpu0) / 2000 };
  };
  const plainRuns: { rate: number; cpu: number }[] = [];
  const ourRuns: { rate: number; cpu: number }[] = [];
  const pooledRuns: { rate: number; cpu: number }[] = [];
  for (let i = 0; i < 3; i++) {
    plainRuns.push(await measure(plain));
    ourRuns.push(await measure(ours));
    pooledRuns.push(await measure(pooled));
  }
  const recorded = async (burst: number, rounds: number) => {
    const durations: number[] = [];
    for (let i = 0; i < rounds; i++) {
      await loop(burst, burst, async () => {
        const result = await pool.launch(runSpec("sleep 0.001"), {
          now: Date.now,
          startBy: Infinity,
        }).done;
        durations.push(result.finishedAt - result.startedAt);
      });
    }
    return durations;
  };
  const alone = await recorded(1, 200);
  const burst = await recorded(100, 5);
  // The floor: the same command through `Command.output()`, timed around the call.
  const floor = async (burst: number, rounds: number) => {
    const durations: number[] = [];
    for (let i = 0; i < rounds; i++) {
      await loop(burst, burst, async () => {
        const t0 = performance.now();
        await new Deno.Command("/bin/sh", { args: ["-c", "sleep 0.001"], stdin: "null" }).output();
        durations.push(performance.now() - t0);
      });
    }
    return durations;
  };
  pool.close();
  const floorAlone = await floor(1, 200);
  const floorBurst = await floor(100, 5);
  const rate = (v: { rate: number }[]) => median(v.map((r) => r.rate));
  const cpu = (v: { cpu: number }[]) => median(v.map((r) => r.cpu));
  const row = [
    rate(ourRuns).toFixed(0),
    rate(pooledRuns).toFixed(0),
    rate(plainRuns).toFixed(0),
    median(ourRuns.map((r, i) => r.rate / plainRuns[i].rate)).toFixed(2),
    median(pooledRuns.map((r, i) => r.rate / plainRuns[i].rate)).toFixed(2),
    `${cpu(ourRuns).toFixed(2)} / ${cpu(pooledRuns).toFixed(2)} / ${cpu(plainRuns).toFixed(2)} ms`,
    `${ms(median(alone))} / ${ms(quantile(alone, 0.99))}`,
    `${ms(median(floorAlone))} / ${ms(quantile(floorAlone, 0.99))}`,
    `${ms(median(burst))} / ${ms(quantile(burst, 0.99))}`,
    `${ms(median(floorBurst))} / ${ms(quantile(floorBurst, 0.99))}`,
  ];
  ballast.length = 0;
  return [row];
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
    `Jobs every second for ${SECONDS} s, shipped defaults: lag = the job's own \`date\` − its fire time`,
    [
      "backend",
      "jobs",
      "expected fires",
      "success",
      "statuses",
      "lag p50",
      "lag p99",
      "lag max",
      "recorded duration p50 / p99",
      "longest a job went without a run",
      `cores busy, of ${navigator.hardwareConcurrency}: the process + the commands it ran`,
    ],
    firing,
  ],
  burst: [
    "N jobs due at one instant, shipped defaults (max_workers 300, grace 1 s); lag = the job's own `date` − the instant",
    ["backend", "jobs", "started within 1 s", "within 2 s", "statuses", "lag of the last start"],
    burst,
  ],
  latency: [
    "From `job add` returning to the service applying it and to the job's first fire (an every-second job; default reload_interval; target: applied ≤ 500 ms median, the fire then at the next whole second)",
    ["backend", "busy every-second jobs", "applied median", "max", "first fire median", "max"],
    latency,
  ],
  reload: [
    `One reload adding N jobs (from the service's log), and the worst firing lag of an every-second job meanwhile: the median of ${RELOAD_ROUNDS} rounds (each round's value)`,
    [
      "backend",
      "jobs added",
      "reload",
      "service CPU, seed to reload (a fire each second included)",
      "added",
      "max lag of the ticking job, from the seed on",
    ],
    reload,
  ],
  idle: [
    `Idle service with 10,000 jobs loaded: CPU (of one core) from 3 s after the load, then from 40 s on, over ${
      Math.max(SECONDS, 30)
    } s`,
    ["backend", "jobs", "CPU, 3-33 s after the load", "CPU, steady", "RSS"],
    idle,
  ],
  cost: [
    "The service's own CPU (of one core) and peak RSS while N jobs fire `true` every second",
    [
      "backend",
      "fires/s",
      "CPU",
      "CPU per fire",
      "RSS (peak)",
      "original program (this run with --original DIR; else issue 11's figures)",
    ],
    cost,
  ],
  v8flags: [
    `The shipped V8 flags against the same without --optimize-for-size: N jobs firing \`true\` every second, measured over ${
      Math.min(SECONDS, 30)
    } s (CPU of one core; peak RSS)`,
    [
      "backend",
      "V8 flags",
      "100/s: CPU per fire",
      "100/s: RSS",
      "1,000/s: success",
      "1,000/s: CPU",
      "1,000/s: RSS",
    ],
    v8flags,
  ],
  throughput: [
    "1,000 jobs firing `true` at the same second vs a plain loop spawning /bin/sh -c true (300 at once)",
    ["backend", "runs/s (service)", "runs/s (plain loop)", "ratio"],
    throughput,
  ],
  runner: [
    "The runner alone in a 150 MiB process: 2,000 runs of `/bin/sh -c true`, 300 at once, vs a plain `Command.output()` loop (3 rounds alternated: medians, ratio of each round's pair); recorded duration of `sleep 0.001` (runner threads)",
    [
      "runs/s (runner in this thread)",
      "runs/s (runner threads, as the service)",
      "runs/s (plain loop)",
      "ratio, this thread",
      "ratio, threads",
      "CPU per run, this thread / threads / plain (with children)",
      "recorded p50 / p99, alone",
      "Command.output() p50 / p99, alone",
      "recorded p50 / p99, 100 at once",
      "Command.output() p50 / p99, 100 at once",
    ],
    runner,
  ],
  sink: [
    "Database log sink: 100,000 records written in its batches of 500",
    ["backend", "records", "rate"],
    sinkThroughput,
  ],
  flood: [
    `Firing lag of 100 every-second jobs for ${SECONDS} s, quiet and under a log flood (the file and database sinks at info; stderr at fatal; on MySQL also the same rows written by the server alone, to tell the database's share on a shared machine; last, the flood in every other block of one run twice as long, its fires after quiet and after flooded seconds apart), ${FLOOD_ROUNDS} rounds alternated, each a process with the shipped V8 flags`,
    [
      "backend",
      "flood",
      "fires (all rounds)",
      "p50 (median of rounds)",
      "p99 (median of rounds)",
      "p99 of each round (ms)",
      "p99 moved by",
    ],
    (b) => floodLag(b, SECONDS),
  ],
  logs: [
    `A log of ${
      LOG_LINES.toLocaleString("en")
    } lines made at schema 12: \`db migrate\` to 13 (the index build), retention's batches before and after it, and \`logs\` filters after it (3 runs each, the process's start-up included)`,
    ["backend", "what", "time (median)", "runs"],
    logFilter,
  ],
  api: [
    `Firing lag of 100 every-second jobs for ${SECONDS} s, without and with 200 concurrent API requests (loopback)`,
    [
      "backend",
      "API load",
      "fires started",
      "lag p50",
      "lag p99",
      "requests/s",
      "request p99",
      "failed",
    ],
    (b) => apiLoad(b, SECONDS, Number(roundsGiven ?? 3)),
  ],
  notify: [
    `Firing lag of 100 every-second jobs that all fail, for ${SECONDS} s, by on_failure hook`,
    ["backend", "hooks", "fires", "lag p50", "lag p99", "notifications", "hooks run"],
    (b) => notifyLag(b, SECONDS),
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
  // The runner section uses no database: once, whatever the backends.
  for (const b of name === "runner" ? backends.slice(0, 1) : backends) rows.push(...await fn(b));
  printTable(title, head, rows);
}
