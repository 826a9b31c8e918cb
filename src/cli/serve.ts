/**
 * `jobsmanager serve`: the long-running service, for systemd. The daemon
 * itself is built by `boot`; this command locks a SQLite file (and stops
 * the service when its path stops naming that file) or watches for the
 * change notices of a MySQL database, sets up logging and turns signals
 * into calls: SIGTERM/SIGINT stop it gracefully, SIGHUP reloads at once.
 */
import { RuntimeError } from "../errors.ts";
import type { ServedHttp } from "../http/serve_http.ts";
import { secretsOf } from "../store/target.ts";
import { masked, MIN_MASKED_LENGTH } from "../domain/secrets.ts";
import { inheritedEnv, secretValues, unmaskedSecrets } from "../config/config.ts";
import { VERSION } from "../version.ts";
import { addSecret } from "./context.ts";
import { removeIfNoTables, SqliteDriver } from "../store/sqlite.ts";
import { SqlStore } from "../store/sql_store.ts";
import { command } from "./command.ts";

export function serveCommand() {
  return command({
    brief: "run the scheduler service (foreground, for systemd)",
    action: async (ctx) => {
      // Loaded here, not with the CLI: every other command starts without them.
      const [
        { boot },
        { systemClock },
        { closeLogging, log, logFileChoice, serveLogging, setupLogging },
        { SqliteFileLock, watchDatabaseFile },
        { watchChangeNotices },
        { checkStopTimeout },
        { systemdNotifier },
        { hereService },
      ] = await Promise.all([
        import("../daemon/boot.ts"),
        import("../daemon/clock.ts"),
        import("../daemon/log.ts"),
        import("../daemon/sqlite_file.ts"),
        import("../daemon/change_notices.ts"),
        import("../daemon/systemd_stop.ts"),
        import("../daemon/sd_notify.ts"),
        import("../daemon/presence.ts"),
      ]);
      const settings = ctx.config.settings;
      // The HTTP side (prom-client among it: megabytes held for good) only when it listens.
      const httpModules = settings["http.listen"] === "" ? null : await Promise.all([
        import("../http/metrics.ts"),
        import("../http/serve_http.ts"),
      ]);
      const lock = ctx.target.kind === "sqlite"
        ? await SqliteFileLock.acquire(ctx.target.path)
        : null;
      // Made before the daemon, which tells it of every run from the start.
      const metrics = httpModules && new httpModules[0].Metrics();
      // Kept out of every run's output; the API's tokens join it once read, before the first fire.
      const secrets = [...secretsOf(ctx.target), ...secretValues(settings)];
      // Its own, so that it can let go of the file once the path names another (sqlite_file.ts).
      const driver = lock && SqliteDriver.open(lock.path);
      const daemon = boot({
        settings,
        // Its own writes (a claim at each fire) are no news to it: no notices.
        store: driver ? new SqlStore(driver) : ctx.openStore({ notices: null }),
        clock: systemClock,
        node: {
          // Empty: the daemon picks the host name, or host:2 … while live services hold it.
          id: settings["jobsmanager.node_id"],
          host: Deno.hostname(),
          pid: Deno.pid,
          version: VERSION,
          started_at: Date.now(),
          // Where its pid means something: a service of another pid namespace with this host's
          // name (a container) is judged by its heartbeat, not by a pid this one cannot look up.
          // And when its process started since boot, which tells it from one that took its pid.
          ...hereService(),
        },
        env: inheritedEnv(),
        secrets,
        observer: metrics ?? undefined,
        soleService: lock !== null,
        madeDatabase: lock?.created,
      });
      // Listen from the start: an early SIGHUP (systemctl reload) must not
      // kill the process, and an early SIGTERM stops it once it has started.
      // Under a Type=notify unit: systemd hears when the jobs are loaded, and the watchdog's pings.
      const systemd = systemdNotifier();
      daemon.ready.then(() =>
        systemd?.ready(
          `${daemon.vitals.jobsLoaded} jobs loaded; node ${daemon.nodeId}, pid ${Deno.pid}`,
        )
      );
      const stop = () => {
        systemd?.stopping();
        daemon.stop();
      };
      const reload = () => daemon.reload();
      Deno.addSignalListener("SIGTERM", stop);
      Deno.addSignalListener("SIGINT", stop);
      Deno.addSignalListener("SIGHUP", reload);
      let http: ServedHttp | null = null;
      let watch: ReturnType<typeof watchDatabaseFile> | null = null;
      let notices: { stop(): void } | null = null;
      let failed = false;
      try {
        await setupLogging(serveLogging(settings, daemon.logSink, () => daemon.nodeId));
        // The unit's JM_LOG_PATH overrides the config's log.path: say which file, and why.
        logFileChoice(settings, ctx.config.sources);
        const dbPassword = ctx.target.kind === "mysql" ? ctx.target.password : "";
        const unmasked = unmaskedSecrets(settings);
        if (dbPassword !== "" && !masked(dbPassword)) unmasked.unshift("the database password");
        for (const what of unmasked) {
          log("service").warn(
            "{what} is shorter than {min} characters, too short to be masked: a run's output or a log line holding it shows it as it is; make it at least {min} characters long",
            { what, min: MIN_MASKED_LENGTH },
          );
        }
        if (lock?.givenTo) {
          log("service").info(
            "the new database {database} is owned by {owner}, the owner of its directory, so that a service run as {owner} can open it",
            { database: `sqlite:${lock.path}`, owner: lock.givenTo },
          );
        }
        // Not awaited: systemctl may take a moment, and the start need not wait for a warning.
        checkStopTimeout(settings);
        // After the logging: it says whether the watch works.
        watch = lock && driver &&
          watchDatabaseFile(lock, daemon, driver, settings["jobsmanager.reload_interval"] * 1000);
        notices = ctx.target.kind === "mysql"
          ? await watchChangeNotices(ctx.target, settings["jobsmanager.notice_dir"], daemon)
          : null;
        if (httpModules && metrics) {
          http = await httpModules[1].startServeHttp({
            settings,
            target: ctx.target,
            metrics,
            vitals: () => daemon.vitals,
            // Listening before the daemon migrates: the API says the service is starting till then.
            migrated: daemon.migrated,
            secrets: secrets.filter((s) => s !== ""),
            onTokens: (tokens) => {
              for (const token of tokens) {
                addSecret(token);
                if (!secrets.includes(token)) secrets.push(token);
              }
            },
          });
        }
        await daemon.run();
      } catch (error) {
        failed = true;
        throw error;
      } finally {
        watch?.stop();
        notices?.stop();
        systemd?.close();
        // Within the stop's deadline: the daemon may have used it all (a database that hangs).
        await http?.close(daemon.stopDeadline?.left);
        Deno.removeSignalListener("SIGTERM", stop);
        Deno.removeSignalListener("SIGINT", stop);
        Deno.removeSignalListener("SIGHUP", reload);
        await closeLogging();
        // A file it made and wrote no table to (a full disk, its HTTP port taken): left, the next
        // start would take it for a database it did not create, and not say that it made a new,
        // empty one. Removed while the lock is held, and only while the path names the file locked.
        if (failed && lock?.created && lock.moved() === null) removeIfNoTables(lock.path);
        lock?.close();
      }
      // Exit non-zero, so that systemd (Restart=on-failure) starts the
      // service again, on the file the path names now.
      if (watch?.lost) throw new RuntimeError(`stopped: ${watch.lost}`);
    },
  });
}
