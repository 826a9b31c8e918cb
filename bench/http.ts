/**
 * The HTTP side under load: 200 concurrent API requests (loopback, for a
 * bounded time) while 100 every-second jobs fire, against the same
 * service without requests. The load comes from this process; `serve` is
 * a process of its own, as in production.
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

/** `CONCURRENCY` loops of requests until `endAt`, each waiting for its answer. */
async function load(url: string, endAt: number): Promise<Load> {
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

/** Fire lag of 100 every-second jobs for `seconds`, with and without the API under load. */
export async function apiLoad(backend: Backend, seconds: number): Promise<(string | number)[][]> {
  const rows: (string | number)[][] = [];
  for (const withLoad of [false, true]) {
    const db = await freshDb(backend);
    try {
      await seed(db, makeJobs(100, { second: "*", minute: "*", hour: "*" }));
      const s = await serve(db, {}, {
        http: { listen: "127.0.0.1:0", tokens: [{ token: TOKEN, role: "read" }] },
      });
      let result: Load | null = null;
      const from = Math.ceil(Date.now() / 1000) * 1000 + 1000;
      const to = from + seconds * 1000;
      try {
        const url = await listeningUrl(s.logFile);
        await new Promise((r) => setTimeout(r, from - Date.now()));
        if (withLoad) result = await load(url, to);
        await new Promise((r) => setTimeout(r, Math.max(0, to - Date.now() + 500)));
      } finally {
        await s.stop();
      }
      const runs = await query(
        db,
        `SELECT started_at - scheduled_at AS lag, status FROM jm_runs WHERE scheduled_at >= ${from} AND scheduled_at < ${to}`,
      );
      const lags = runs.filter((r) => r.lag !== null).map((r) => Number(r.lag));
      rows.push([
        backend,
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
  return rows;
}
