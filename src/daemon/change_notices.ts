/**
 * What `serve` does with a MySQL database: it watches the notice
 * directory for the notices the CLI and the API leave after each change
 * (store/change_notice.ts), so that a change made on this machine applies
 * at once and the service need not poll often for the others (see the
 * daemon's `watchedLocally`). When no notice directory can be watched it
 * polls every reload_interval, as without notices.
 */
import { noticeDirectories, noticeFolder, RUN_NOTICE_DIR } from "../store/change_notice.ts";
import { describeTarget, type MysqlTarget } from "../store/target.ts";
import type { Daemon } from "./boot.ts";
import { DirectoryWatch, IN } from "./directory_watch.ts";
import { log } from "./log.ts";

const serviceLog = log("service");

/** Notices are made (or renamed) into the directory. */
const NOTICES = IN.CREATE | IN.MOVED_TO;
/** The path no longer names the directory watched. */
const GONE = IN.DELETE_SELF | IN.MOVE_SELF | IN.IGNORED;

/**
 * Make `dir` unless it is there already, world-writable and sticky as /tmp
 * is: the service and the CLI may run as different users. Throws when it
 * is not a directory of its own.
 */
function prepare(dir: string): void {
  try {
    Deno.mkdirSync(dir);
    // Not through mkdir's mode, which the umask narrows.
    Deno.chmodSync(dir, 0o1777);
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
  }
  if (!Deno.lstatSync(dir).isDirectory) {
    throw new Error(`${dir} is not a directory (a symbolic link is not followed)`);
  }
}

/**
 * Watch the folder of `target` in the notice directory `setting`
 * (jobsmanager.notice_dir) names for notices of changes, telling `daemon`
 * of each. A folder deleted or moved (a /tmp cleaner) is made and watched
 * again.
 */
export async function watchChangeNotices(
  target: MysqlTarget,
  setting: string,
  daemon: Pick<Daemon, "changed" | "watchedLocally">,
): Promise<{ stop(): void }> {
  const folder = await noticeFolder(target);
  const database = describeTarget(target);
  let watch: DirectoryWatch | null = null;
  let stopped = false;

  /** The directory now watched; else why none could be. */
  const start = (): { dir: string } | { problems: string } => {
    const problems: string[] = [];
    for (const base of noticeDirectories(setting)) {
      const dir = `${base}/${folder}`;
      try {
        // Only the systemd unit makes /run/jobsmanager: without it, the service's is elsewhere.
        if (setting !== "" || base !== RUN_NOTICE_DIR) prepare(base);
        prepare(dir);
        let moved = false;
        const started: DirectoryWatch = DirectoryWatch.start(
          dir,
          NOTICES | IN.DELETE_SELF | IN.MOVE_SELF,
          (events) => {
            let notice = false;
            for (const { mask } of events) {
              // Events were lost: a notice may be among them.
              if (mask & (NOTICES | IN.Q_OVERFLOW)) notice = true;
              if (mask & GONE) moved = true;
            }
            if (notice) daemon.changed();
            // A moved directory is still watched where it went: end that.
            if (moved) started.close();
          },
        );
        started.ended.then((error) => {
          if (stopped || (error === null && !moved)) return;
          daemon.watchedLocally(false);
          const again = start();
          if ("dir" in again) {
            serviceLog.info("watching {dir} again for notices of changes to {database}", {
              dir: again.dir,
              database,
            });
          } else {
            serviceLog.warn(
              "stopped watching {dir} for notices of changes to {database} ({error}; {problems}): the service polls every reload_interval instead",
              { dir, database, error: error?.message ?? "it was moved", problems: again.problems },
            );
          }
        });
        watch = started;
        daemon.watchedLocally(true);
        return { dir };
      } catch (error) {
        problems.push((error as Error).message);
      }
    }
    return { problems: problems.join("; ") };
  };

  const first = start();
  if ("dir" in first) {
    serviceLog.info(
      "watching {dir} for notices of changes to {database}: a change made on this machine (CLI, API) applies at once; others' are polled for every 5 s (or reload_interval, when longer) while no other service on the database is live",
      { dir: first.dir, database },
    );
  } else {
    serviceLog.warn(
      "cannot watch a directory for notices of changes to {database} ({problems}): the service polls every reload_interval instead; set jobsmanager.notice_dir to a directory it may create or read",
      { database, problems: first.problems },
    );
  }
  return {
    stop() {
      stopped = true;
      watch?.close();
    },
  };
}
