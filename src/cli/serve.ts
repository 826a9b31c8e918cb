/**
 * `jobsmanager serve`: the long-running service, for systemd. The daemon
 * itself is built by `boot`; this command locks a SQLite file, sets up
 * logging and turns signals into calls: SIGTERM/SIGINT stop it gracefully,
 * SIGHUP reloads at once.
 */
import { Command } from "commander";
import { RuntimeError } from "../errors.ts";
import { boot } from "../daemon/boot.ts";
import { systemClock } from "../daemon/clock.ts";
import { closeLogging, serveLogging, setupLogging } from "../daemon/log.ts";
import { inheritedEnv } from "../daemon/runner.ts";
import { Metrics } from "../http/metrics.ts";
import { startServeHttp } from "../http/serve_http.ts";
import type { HttpServer } from "../http/server.ts";
import { type DatabaseTarget, secretsOf } from "../store/target.ts";
import { VERSION } from "../version.ts";
import { addSecret, type ContextOf } from "./context.ts";

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

export function serveCommand(contextOf: ContextOf): Command {
  return new Command("serve").description("run the scheduler service (foreground, for systemd)")
    .action(async (_opts, cmd: Command) => {
      const ctx = contextOf(cmd);
      const settings = ctx.config.settings;
      const lock = await lockSqlite(ctx.target);
      // Made before the daemon, which tells it of every run from the start.
      const metrics = settings["http.listen"] === "" ? null : new Metrics();
      const daemon = boot({
        settings,
        store: ctx.openStore(),
        clock: systemClock,
        node: {
          // Empty: the daemon picks the host name, or host:2 … while live services hold it.
          id: settings["jobsmanager.node_id"],
          host: Deno.hostname(),
          pid: Deno.pid,
          version: VERSION,
          started_at: Date.now(),
        },
        env: inheritedEnv(),
        observer: metrics ?? undefined,
      });
      // Listen from the start: an early SIGHUP (systemctl reload) must not
      // kill the process, and an early SIGTERM stops it once it has started.
      const stop = () => daemon.stop();
      const reload = () => daemon.reload();
      Deno.addSignalListener("SIGTERM", stop);
      Deno.addSignalListener("SIGINT", stop);
      Deno.addSignalListener("SIGHUP", reload);
      let http: HttpServer | null = null;
      try {
        await setupLogging(serveLogging(settings, daemon.logSink));
        if (metrics) {
          http = await startServeHttp({
            settings,
            target: ctx.target,
            metrics,
            vitals: () => daemon.vitals,
            secrets: [...secretsOf(ctx.target), settings["db.password"]].filter((s) => s !== ""),
            onTokens: (tokens) => tokens.forEach(addSecret),
          });
        }
        await daemon.run();
      } finally {
        await http?.close();
        Deno.removeSignalListener("SIGTERM", stop);
        Deno.removeSignalListener("SIGINT", stop);
        Deno.removeSignalListener("SIGHUP", reload);
        await closeLogging();
        lock?.close();
      }
    });
}
