/**
 * Logging benchmarks, in-process: the database sink's write rate, and the
 * firing lag of 100 every-second jobs with and without a log flood.
 */
import { getLogger, type LogRecord } from "@logtape/logtape";
import { buildJob } from "../src/domain/job.ts";
import { closeLogging, setupLogging } from "../src/daemon/log.ts";
import { systemClock } from "../src/daemon/clock.ts";
import { DatabaseLogSink } from "../src/daemon/log_sink.ts";
import { inheritedEnv } from "../src/daemon/runner.ts";
import { boot } from "../src/daemon/boot.ts";
import { defaultSettings } from "../src/config/config.ts";
import { openStore } from "../src/store/open.ts";
import { VERSION } from "../src/version.ts";
import { type Backend, freshDb, ms, quantile } from "./common.ts";

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

async function lagWith(
  backend: Backend,
  floodPerSecond: number,
  seconds: number,
): Promise<number[]> {
  const db = await freshDb(backend);
  const store = openStore(db.target);
  try {
    await store.migrate();
    for (let i = 0; i < 100; i++) {
      const id = `tick.${i}`;
      await store.changeJob(
        id,
        () => buildJob(id, { command: "true", schedule: { second: "*" } }, null, Date.now()),
      );
    }
    const daemon = boot({
      settings: {
        ...defaultSettings(),
        "jobsmanager.timezone": "UTC",
        "jobsmanager.shutdown_timeout": 5,
        "jobsmanager.kill_grace": 1,
      },
      store: openStore(db.target),
      clock: systemClock,
      node: { id: "bench", host: "bench", pid: Deno.pid, version: VERSION, started_at: Date.now() },
      env: inheritedEnv(),
    });
    await setupLogging({
      consoleLevel: "fatal",
      fileLevel: "info",
      file: `${db.dir}/log/jobsmanager.log`,
      maxSizeBytes: 1 << 30,
      backups: 1,
      database: { sink: daemon.logSink, level: "info" },
    });
    const running = daemon.run();
    const flood = getLogger(["jobsmanager", "bench"]);
    let n = 0;
    const timer = floodPerSecond === 0 ? undefined : setInterval(() => {
      for (let i = 0; i < floodPerSecond / 100; i++) flood.info("flood record {n}", { n: n++ });
    }, 10);
    const from = Math.ceil(Date.now() / 1000) * 1000 + 1000;
    await new Promise((r) => setTimeout(r, from + seconds * 1000 - Date.now() + 300));
    clearInterval(timer);
    daemon.stop();
    await running;
    const runs = await store.listRuns({ since: from, limit: 1_000_000 });
    return runs.filter((r) => r.scheduled_at < from + seconds * 1000 && r.started_at !== null)
      .map((r) => r.started_at! - r.scheduled_at);
  } finally {
    await closeLogging();
    await store.close();
    await db.drop();
  }
}

/** p50/p99 firing lag of 100 every-second jobs, quiet and under a 10,000 records/s flood. */
export async function floodLag(backend: Backend, seconds: number): Promise<(string | number)[][]> {
  const rows: (string | number)[][] = [];
  for (const perSecond of [0, 10_000]) {
    const lags = await lagWith(backend, perSecond, seconds);
    rows.push([
      backend,
      perSecond === 0 ? "none" : `${perSecond} records/s`,
      lags.length,
      ms(quantile(lags, 0.5)),
      ms(quantile(lags, 0.99)),
    ]);
  }
  return rows;
}
