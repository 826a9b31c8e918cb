/**
 * Logging benchmarks: the database sink's write rate (in-process), and the
 * firing lag of 100 every-second jobs with and without a log flood (each
 * run a process with the shipped V8 flags, flood_lag.ts).
 */
import type { LogRecord } from "@logtape/logtape";
import { DatabaseLogSink } from "../src/daemon/log_sink.ts";
import { openStore } from "../src/store/open.ts";
import { BLOCK_MS, type FloodBy } from "./flood_lag.ts";
import { type Backend, cached, freshDb, median, ms, quantile, runAsShipped } from "./common.ts";

const RECORDS = 100_000;

function record(i: number): LogRecord {
  return {
    category: ["jobsmanager", "bench"],
    level: "info",
    message: ["record ", i, " of the flood"],
    rawMessage: "record {i} of the flood",
    timestamp: Date.now(),
    properties: { i, job: `bench.${i % 100}` },
  };
}

/** Records per second the sink writes, in its own batches of 500. */
export async function sinkThroughput(backend: Backend): Promise<(string | number)[][]> {
  const db = await freshDb(backend);
  const store = openStore(db.target);
  try {
    await store.migrate();
    const sink = new DatabaseLogSink({
      insert: (rows) => store.insertLogs(rows),
      report: () => {},
      maxQueue: RECORDS * 2,
    });
    for (let i = 0; i < RECORDS; i++) sink.sink(record(i));
    const t0 = performance.now();
    sink.start();
    while (sink.queued > 0) await sink.flush();
    const seconds = (performance.now() - t0) / 1000;
    await sink.close(0);
    return [[backend, RECORDS, `${(RECORDS / seconds).toFixed(0)} records/s`]];
  } finally {
    await store.close();
    await db.drop();
  }
}

/** Rounds of quiet and flood, alternated: one 20 s run's p99 moves by half between identical runs. */
export const FLOOD_ROUNDS = 3;
const FLOOD_LAG = new URL("./flood_lag.ts", import.meta.url).pathname;
await cached(FLOOD_LAG);

/** flood_lag.ts's lags, run as a process with the shipped V8 flags (see there for their shape). */
async function lagAsShipped(
  backend: Backend,
  perSecond: number,
  seconds: number,
  by: FloodBy,
): Promise<unknown> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...runAsShipped(FLOOD_LAG), backend, String(perSecond), String(seconds), by],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) throw new Error(`flood_lag.ts ${backend} ${perSecond} ${by} failed: ${text}`);
  return JSON.parse(text.slice(text.lastIndexOf("\n") + 1));
}

/**
 * p50/p99 firing lag of 100 every-second jobs, quiet and under a 10,000
 * records/s flood, in FLOOD_ROUNDS alternated rounds: the medians of the
 * rounds, each round's p99, and how far the flood moved the median p99.
 * On MySQL also the same rows written by the server alone: on a machine
 * the database shares, the part of the move that is the database's work.
 * Then the same flood in every other block of one process, twice as long,
 * and the lags after its quiet blocks against those after its flooded
 * ones: the comparison a machine's own stalls touch least.
 */
export async function floodLag(backend: Backend, seconds: number): Promise<(string | number)[][]> {
  const kinds = [
    { perSecond: 0, by: "service" as const },
    { perSecond: 10_000, by: "service" as const },
    ...(backend === "mysql" ? [{ perSecond: 10_000, by: "server" as const }] : []),
  ].map((kind) => ({ ...kind, runs: [] as number[][] }));
  const blocks = { quiet: [] as number[][], flood: [] as number[][] };
  for (let round = 0; round < FLOOD_ROUNDS; round++) {
    for (const kind of kinds) {
      kind.runs.push(
        await lagAsShipped(backend, kind.perSecond, seconds, kind.by) as number[],
      );
    }
    const run = await lagAsShipped(backend, 10_000, 2 * seconds, "blocks") as {
      quiet: number[];
      flood: number[];
    };
    blocks.quiet.push(run.quiet);
    blocks.flood.push(run.flood);
  }
  const p99 = (runs: number[][]) => median(runs.map((lags) => quantile(lags, 0.99)));
  const row = (what: string, runs: number[][], against: number[][] | null) => [
    backend,
    what,
    runs.reduce((sum, lags) => sum + lags.length, 0),
    ms(median(runs.map((lags) => quantile(lags, 0.5)))),
    ms(p99(runs)),
    runs.map((lags) => quantile(lags, 0.99).toFixed(0)).join(" / "),
    against === null ? "" : `${((p99(runs) / p99(against) - 1) * 100).toFixed(0)} %`,
  ];
  const inBlocks = `10000 records/s logged in every other ${BLOCK_MS / 1000} s of one run`;
  return [
    ...kinds.map(({ perSecond, by, runs }) =>
      row(
        perSecond === 0
          ? "none"
          : by === "service"
          ? `${perSecond} records/s logged`
          : `${perSecond} rows/s written by the server alone`,
        runs,
        perSecond === 0 ? null : kinds[0].runs,
      )
    ),
    row(`${inBlocks}: after a quiet second`, blocks.quiet, null),
    row(`${inBlocks}: after a flooded second`, blocks.flood, blocks.quiet),
  ];
}
