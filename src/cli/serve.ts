/**
 * `jobsmanager serve`: the long-running service, for systemd.
 * SIGTERM/SIGINT stop it gracefully; SIGHUP reloads at once.
 */
import { Command } from "commander";
import { RuntimeError } from "../errors.ts";
import { getLogger } from "@logtape/logtape";
import type { LogLevel } from "../domain/log_row.ts";
import { closeLogging, log, setupLogging, SINK_CATEGORY } from "../daemon/log.ts";
import { Housekeeping } from "../daemon/housekeeping.ts";
import { DatabaseLogSink } from "../daemon/log_sink.ts";
import type { RunRecorder } from "../daemon/recorder.ts";
import { settlesWithin, systemClock } from "../daemon/clock.ts";
import { inheritedEnv } from "../daemon/runner.ts";
import { Service } from "../daemon/service.ts";
import type { DatabaseTarget } from "../store/target.ts";
import { systemTimezone } from "../domain/time.ts";
import { VERSION } from "../version.ts";
import type { ContextOf } from "./context.ts";

/**
 * SQLite allows one service per file: hold an exclusive lock on FILE.lock
 * for the life of the process (the kernel drops it if the process dies).
 */
async function lockSqlite(target: DatabaseTarget): Promise<Deno.FsFile | null> {
  if (target.kind !== "sqlite") return null;
  const path = `${target.path}.lock`;
  const file = await Deno.open(path, { read: true, write: true, create: true });
  const locked = file.lock(true).then(() => true);
  const busy = new Promise<false>((resolve) => setTimeout(() => resolve(false), 200));
  if (!await Promise.race([locked, busy])) {
    throw new RuntimeError(
      `another jobsmanager serve already runs on sqlite:${target.path} (it holds ${path}); SQLite allows one service per database file. Stop the other one, or use MySQL/MariaDB to run several`,
    );
  }
  return file;
}

/** How long each shutdown step waits on the database (heartbeat, log rows, pool). */
const FINAL_DB_WAIT_MS = 3000;

export function serveCommand(contextOf: ContextOf): Command {
  return new Command("serve").description("run the scheduler service (foreground, for systemd)")
    .action(async (_opts, cmd: Command) => {
      const ctx = contextOf(cmd);
      const s = ctx.config.settings;
      const lock = await lockSqlite(ctx.target);
      const store = ctx.openStore();
      const level = (sinkLevel: LogLevel | "") => sinkLevel || s["log.level"];
      const sinkLog = getLogger(SINK_CATEGORY);
      // Logging starts before the service exists; the sink asks it once it does.
      let recorder: RunRecorder | undefined;
      const dbSink = new DatabaseLogSink({
        insert: (rows) => store.insertLogs(rows),
        report: (lvl, message, properties) =>
          sinkLog[lvl === "warning" ? "warn" : "info"](message, properties),
        online: () => recorder?.online ?? true,
        resolve: (context) => {
          const run = context.run;
          const real = typeof run === "number" && run < 0 ? recorder?.realId(run) : undefined;
          return typeof real === "number" ? { ...context, run: real } : context;
        },
      });
      await setupLogging({
        consoleLevel: level(s["log.console_level"]),
        fileLevel: level(s["log.file_level"]),
        file: s["log.path"] === "" ? null : `${s["log.path"]}/${s["log.file"]}`,
        maxSizeBytes: s["log.rotate.max_size"] * 1024 * 1024,
        backups: s["log.rotate.backup_count"],
        database: { sink: dbSink.sink, level: level(s["log.db_level"]) },
      });
      const serviceLog = log("service");
      // Listen from the start: an early SIGHUP (systemctl reload) must not
      // kill the process, and an early SIGTERM stops it once it has started.
      const signals: { service?: Service; stopRequested: boolean } = { stopRequested: false };
      const stop = () => signals.service ? signals.service.stop() : signals.stopRequested = true;
      const reload = () => signals.service?.requestReload();
      Deno.addSignalListener("SIGTERM", stop);
      Deno.addSignalListener("SIGINT", stop);
      Deno.addSignalListener("SIGHUP", reload);
      try {
        await store.migrate();
        dbSink.start();
        const node = {
          id: Deno.hostname(),
          host: Deno.hostname(),
          pid: Deno.pid,
          version: VERSION,
          started_at: Date.now(),
        };
        const service = new Service({
          store,
          clock: systemClock,
          nodeId: node.id,
          defaults: {
            timezone: s["jobsmanager.timezone"] || systemTimezone(),
            coalesce: s["jobsmanager.coalesce"],
            maxInstances: s["jobsmanager.max_instances"],
            misfireGraceTime: s["jobsmanager.misfire_grace_time"],
          },
          reloadIntervalMs: s["jobsmanager.reload_interval"] * 1000,
          maxWorkers: s["jobsmanager.max_workers"],
          shutdownTimeoutMs: s["jobsmanager.shutdown_timeout"] * 1000,
          killGraceMs: s["jobsmanager.kill_grace"] * 1000,
          outputCap: s["jobsmanager.output_cap"],
          baseEnv: inheritedEnv(),
        });
        recorder = service.recorder;
        serviceLog.info(
          "jobsmanager {version} starting on {store} ({database}), node {node}, pid {pid}",
          {
            version: VERSION,
            store: store.kind,
            database: store.description,
            node: node.id,
            pid: node.pid,
          },
        );
        await service.start();
        const housekeeping = new Housekeeping({
          store,
          clock: systemClock,
          node,
          heartbeatMs: s["jobsmanager.heartbeat_interval"] * 1000,
          keepLogDays: s["log.keep_days"],
          keepRunDays: s["runs.keep_days"],
          state: () => service.state,
          online: () => service.recorder.online,
          failed: (error) => service.recorder.failed(error),
        });
        housekeeping.start();
        signals.service = service;
        if (signals.stopRequested) service.stop();
        try {
          await service.run();
        } finally {
          await housekeeping.stop(FINAL_DB_WAIT_MS);
        }
      } catch (error) {
        serviceLog.fatal("cannot run: {error}", { error: (error as Error).message });
        throw error;
      } finally {
        Deno.removeSignalListener("SIGTERM", stop);
        Deno.removeSignalListener("SIGINT", stop);
        Deno.removeSignalListener("SIGHUP", reload);
        await dbSink.close(FINAL_DB_WAIT_MS);
        // A pool whose server stopped answering can wait forever to end.
        await settlesWithin(systemClock, store.close(), FINAL_DB_WAIT_MS);
        await closeLogging();
        lock?.close();
      }
    });
}
