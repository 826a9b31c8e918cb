/**
 * The firing lags (ms) of 100 every-second jobs over `seconds` s, with
 * `floodPerSecond` log records a second: run as its own process by the
 * flood section, under the V8 flags the program ships with (the service's
 * collector behaves otherwise: in a process with V8's defaults, the
 * flood's garbage made scavenges of 10-29 ms the service never has).
 * Prints the lags as one JSON line.
 */
import { getLogger } from "@logtape/logtape";
import { buildJob } from "../src/domain/job.ts";
import { closeLogging, setupLogging } from "../src/daemon/log.ts";
import { systemClock } from "../src/daemon/clock.ts";
import { inheritedEnv } from "../src/daemon/runner.ts";
import { boot } from "../src/daemon/boot.ts";
import { defaultSettings, PRIVATE_ENV } from "../src/config/config.ts";
import { openStore } from "../src/store/open.ts";
import { VERSION } from "../src/version.ts";
import { type Backend, freshDb } from "./common.ts";

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
      env: inheritedEnv(PRIVATE_ENV),
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

if (import.meta.main) {
  const [backend, perSecond, seconds] = Deno.args;
  const lags = await lagWith(backend as Backend, Number(perSecond), Number(seconds));
  console.log(JSON.stringify(lags));
}
