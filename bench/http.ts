/**
 * The HTTP side under load: 200 concurrent API requests (loopback, for a
 * bounded time) while 100 every-second jobs fire, against the same
 * service without requests. The load comes from this process; `serve` is
 * a process of its own, as in production.
 *
 * For reference, the same with a plain loop instead of the scheduler: a
 * Deno process that only spawns the runner's 100 commands at each second
 * (`setsid /bin/sh -c true`, output piped), no database, while `serve`
 * (its jobs disabled) answers the same requests. What the load adds to
 * that loop's lag is what CPU contention alone costs on this machine.
 */
import {
  type Backend,
  freshDb,
  makeJobs,
  ms,
  quantile,
  query,
  readLog,
  seed,
  serve,
  until,
} from "./common.ts";

const CONCURRENCY = 200;
const TOKEN = "bench-token-0123456789abcdef";
/** Requests of a dashboard and of scripts, in turn. */
const PATHS = [
  "/api/v1/jobs",
  "/api/v1/runs?limit=50",
  "/api/v1/status",
  "/api/v1/jobs/bench.00042",
  "/api/v1/logs?limit=50",
  "/healthz",
];

interface Load {
  requests: number;
  failed: number;
  latencies: number[];
}

/**
 * The clients connect this long before the fires measured: 200 connections
 * opened in the instant of a fire cost that second's starts about 100 ms
 * (p99 of one run 199 → 268 ms, the rest of the seconds unchanged), which
 * is a storm of clients arriving, not the load of a steady API.
 */
const RAMP_MS = 2000;

/**
 * `CONCURRENCY` loops of requests until `endAt`, each waiting for its
 * answer; counted from `countFrom`.
 */
async function load(url: string, countFrom: number, endAt: number): Promise<Load> {
  const out: Load = { requests: 0, failed: 0, latencies: [] };
  const worker = async (offset: number) => {
    for (let i = offset; Date.now() < endAt; i++) {
      const t0 = performance.now();
      try {
        const res = await fetch(`${url}${PATHS[i % PATHS.length]}`, {
          headers: { Authorization: `Bearer ${TOKEN}` },
        });
        await res.arrayBuffer();
        if (!res.ok) out.failed++;
      } catch {
        out.failed++;
      }
      if (Date.now() < countFrom) continue;
      out.latencies.push(performance.now() - t0);
      out.requests++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => worker(i)));
  return out;
}

async function listeningUrl(logFile: string): Promise<string> {
  let url = "";
  await until(async () => {
    const line = (await readLog(logFile)).find((l) =>
      typeof (l.properties as { url?: unknown } | undefined)?.url === "string"
    );
    url = line ? String((line.properties as { url: string }).url) : "";
    return url !== "";
  }, 60_000);
  return url;
}

/** The plain loop: at each second in [FROM, TO), 100 spawns; prints each one's lag (ms). */
const PLAIN_LOOP = `
const [from, to] = [Number(Deno.env.get("FROM")), Number(Deno.env.get("TO"))];
const lags = [];
const ends = [];
for (let t = from; t < to; t += 1000) {
  await new Promise((r) => setTimeout(r, Math.max(0, t - Date.now())));
  for (let i = 0; i < 100; i++) {
    const child = new Deno.Command("setsid", {
      args: ["/bin/sh", "-c", "true"], stdin: "null", stdout: "piped", stderr: "piped",
    }).spawn();
    lags.push(Date.now() - t);
    ends.push(child.output());
  }
}
await Promise.all(ends);
console.log(JSON.stringify(lags));
`;

function plainLoop(from: number, to: number): Promise<number[]> {
  return new Deno.Command(Deno.execPath(), {
    args: ["eval", PLAIN_LOOP],
    env: { FROM: String(from), TO: String(to) },
    stdout: "piped",
  }).output().then((out) => JSON.parse(new TextDecoder().decode(out.stdout)));
}

/**
 * Fire lag of 100 every-second jobs for `seconds`, with and without the
 * API under load, in `rounds` pairs one after the other (the p99 of one
 * 20 s run moves by 10–20 % from run to run on a 2-core machine, as much
 * as the effect measured); then the plain loop's lag, with and without
 * the load; last, the median over the rounds of the p99 with the load
 * divided by the p99 without.
 */
export async function apiLoad(
  backend: Backend,
  seconds: number,
  rounds: number,
): Promise<(string | number)[][]> {
  const rows: (string | number)[][] = [];
  const ratios: number[] = [];
  let quietP99 = 0;
  const legs = [
    ...Array.from({ length: rounds }, () => [[false, false], [false, true]]).flat(),
    [true, false],
    [true, true],
  ];
  for (const [plain, withLoad] of legs) {
    const db = await freshDb(backend);
    try {
      await seed(db, makeJobs(100, { second: "*", minute: "*", hour: "*", enabled: !plain }));
      const s = await serve(db, {}, {
        http: { listen: "127.0.0.1:0", tokens: [{ token: TOKEN, role: "read" }] },
      });
      let result: Load | null = null;
      let plainLags: number[] | null = null;
      // Time for the plain loop's process to be ready, and for the load's clients to connect.
      const from = Math.ceil(Date.now() / 1000) * 1000 + 1000 + RAMP_MS;
      const to = from + seconds * 1000;
      try {
        const url = await listeningUrl(s.logFile);
        const loop = plain ? plainLoop(from, to) : null;
        await new Promise((r) => setTimeout(r, from - RAMP_MS - Date.now()));
        if (withLoad) result = await load(url, from, to);
        await new Promise((r) => setTimeout(r, Math.max(0, to - Date.now() + 500)));
        plainLags = await loop;
      } finally {
        await s.stop();
      }
      const runs = plain ? [] : await query(
        db,
        `SELECT started_at - scheduled_at AS lag, status FROM jm_runs WHERE scheduled_at >= ${from} AND scheduled_at < ${to}`,
      );
      const lags = plainLags ?? runs.filter((r) => r.lag !== null).map((r) => Number(r.lag));
      if (!plain && !withLoad) quietP99 = quantile(lags, 0.99);
      if (!plain && withLoad) ratios.push(quantile(lags, 0.99) / quietP99);
      rows.push([
        plain ? `${backend}, plain loop` : backend,
        withLoad ? `${CONCURRENCY} concurrent` : "none",
        `${lags.length} of ${100 * seconds} (${
          runs.filter((r) => r.status === "missed").length
        } missed)`,
        ms(quantile(lags, 0.5)),
        ms(quantile(lags, 0.99)),
        result ? (result.requests / seconds).toFixed(0) : "-",
        result ? ms(quantile(result.latencies, 0.99)) : "-",
        result ? result.failed : "-",
      ]);
    } finally {
      await db.drop();
    }
  }
  const median = [...ratios].sort((a, b) => a - b)[Math.floor(ratios.length / 2)];
  rows.push([
    backend,
    `p99 with / without, median of ${rounds} rounds`,
    ratios.map((r) => r.toFixed(2)).join(", "),
    "-",
    median.toFixed(2),
    "-",
    "-",
    "-",
  ]);
  return rows;
}
