/**
 * The firing lags (ms) of 100 every-second jobs over `seconds` s, with
 * `floodPerSecond` log records a second: run as its own process by the
 * flood section, under the V8 flags the program ships with (the service's
 * collector behaves otherwise: in a process with V8's defaults, the
 * flood's garbage made scavenges of 10-29 ms the service never has).
 * `by` "server": the records are not logged by the service but written
 * into its jm_syslog by the MySQL server itself (a stored procedure, as
 * the sink writes them: 500 rows a statement), so that what the
 * database's own work costs the firing on a shared machine is measured
 * apart from what the service's logging costs.
 * `by` "blocks": the service logs the flood in every other block of
 * BLOCK_MS only, and the lags of the fires after a quiet second and after
 * a flooded one come apart (a fire after a second of both is left out):
 * both kinds then see the same machine, whose own stalls on a shared VM
 * last 10-20 s and made one run's p99 two or three times another's.
 * Prints the lags as one JSON line: an array; for "blocks", the quiet
 * lags and the flooded ones, `{ quiet, flood }`.
 */
import { getLogger } from "@logtape/logtape";
import { buildJob } from "../src/domain/job.ts";
import { closeLogging, setupLogging } from "../src/daemon/log.ts";
import { systemClock } from "../src/daemon/clock.ts";
import { boot } from "../src/daemon/boot.ts";
import { defaultSettings, inheritedEnv } from "../src/config/config.ts";
import { openStore } from "../src/store/open.ts";
import { VERSION } from "../src/version.ts";
import mysql from "mysql2/promise";
import { type Backend, type Db, freshDb } from "./common.ts";

export type FloodBy = "service" | "server" | "blocks";

/** The flood's blocks, on and off in turn (`by` "blocks"). */
export const BLOCK_MS = 4000;

/** Each run's fire time and its lag (ms); `flooded(t)`: whether the flood was on at `t`. */
interface Lags {
  fires: { at: number; lag: number }[];
  flooded: (t: number) => boolean;
}

async function lagWith(
  backend: Backend,
  floodPerSecond: number,
  seconds: number,
  by: FloodBy,
): Promise<Lags> {
  if (by === "server" && backend !== "mysql") {
    throw new Error("bench: a server flood needs MariaDB (its sequence engine)");
  }
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
      node: {
        id: "bench",
        host: "bench",
        pid: Deno.pid,
        version: VERSION,
        started_at: Date.now(),
        boot_id: null,
        pid_ns: null,
      },
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
    const from = Math.ceil(Date.now() / 1000) * 1000 + 1000;
    // In blocks, the flood is off in the first (the start's own fires are quiet ones).
    const flooded = (t: number) =>
      floodPerSecond > 0 && by !== "server" &&
      (by !== "blocks" || Math.floor((t - from) / BLOCK_MS) % 2 === 1);
    const timer = floodPerSecond === 0 || by === "server" ? undefined : setInterval(() => {
      if (!flooded(Date.now())) return;
      for (let i = 0; i < floodPerSecond / 100; i++) flood.info("flood record {n}", { n: n++ });
    }, 10);
    const until = from + seconds * 1000 + 300;
    // A failure is kept, not left unhandled: the service is stopped and the database dropped first.
    const serverFlood = floodPerSecond > 0 && by === "server"
      ? floodByServer(db, floodPerSecond, until).then(() => null, (error: unknown) => error)
      : null;
    await new Promise((r) => setTimeout(r, until - Date.now()));
    clearInterval(timer);
    const floodFailed = await serverFlood;
    daemon.stop();
    await running;
    if (floodFailed !== null) throw floodFailed;
    const runs = await store.listRuns({ since: from, limit: 1_000_000 });
    const fires = runs.filter((r) =>
      r.scheduled_at < from + seconds * 1000 && r.started_at !== null
    )
      .map((r) => ({ at: r.scheduled_at, lag: r.started_at! - r.scheduled_at }));
    return { fires, flooded };
  } finally {
    await closeLogging();
    await store.close();
    await db.drop();
  }
}

/** Rows of the flood, the sink's 500 a statement, written into jm_syslog by the server until `until` (ms). */
async function floodByServer(db: Db, perSecond: number, until: number): Promise<void> {
  const conn = await mysql.createConnection(db.url);
  try {
    const batch = 500;
    // seq_1_to_N is MariaDB's sequence engine; each statement waits for its turn on the rate.
    await conn.query(`CREATE PROCEDURE jm_bench_flood(IN until_ms BIGINT)
BEGIN
  DECLARE started DOUBLE DEFAULT UNIX_TIMESTAMP(NOW(3)) * 1000;
  DECLARE k BIGINT DEFAULT 0;
  WHILE UNIX_TIMESTAMP(NOW(3)) * 1000 < until_ms DO
    INSERT INTO jm_syslog (created_at, level, logger_name, message, context)
      SELECT ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000), 'info', 'jobsmanager.bench',
        CONCAT('flood record ', k * ${batch} + seq), CONCAT('{"n":', k * ${batch} + seq, '}')
      FROM seq_1_to_${batch};
    SET k = k + 1;
    DO SLEEP(GREATEST(0, (started + k * ${
      1000 * batch / perSecond
    } - UNIX_TIMESTAMP(NOW(3)) * 1000) / 1000));
  END WHILE;
END`);
    await conn.query("CALL jm_bench_flood(?)", [until]);
  } finally {
    await conn.end();
  }
}

if (import.meta.main) {
  const [backend, perSecond, seconds, by] = Deno.args;
  const { fires, flooded } = await lagWith(
    backend as Backend,
    Number(perSecond),
    Number(seconds),
    (by ?? "service") as FloodBy,
  );
  if (by === "blocks") {
    // What a fire's second before it was: quiet, flooded, or both (left out).
    const kind = (at: number) =>
      flooded(at - 999) === flooded(at) ? (flooded(at) ? "flood" : "quiet") : null;
    const of = (k: string) => fires.filter((f) => kind(f.at) === k).map((f) => f.lag);
    console.log(JSON.stringify({ quiet: of("quiet"), flood: of("flood") }));
  } else console.log(JSON.stringify(fires.map((f) => f.lag)));
}
