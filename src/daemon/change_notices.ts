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
import { makeDirectory } from "../store/no_follow.ts";
import { userName } from "../store/sqlite_owner.ts";
import { presence } from "./presence.ts";
import { processStart } from "./processes.ts";

const serviceLog = log("service");

/** Notices are made (or renamed) into the directory. */
const NOTICES = IN.CREATE | IN.MOVED_TO;
/** The path no longer names the directory watched. */
const GONE = IN.DELETE_SELF | IN.MOVE_SELF | IN.IGNORED;

/**
 * Make `dir` (when `make`) unless it is there, world-writable and sticky
 * as /tmp is: the service and the CLI may run as different users. The
 * mode is set through the new directory's descriptor (store/no_follow.ts),
 * never by path: a link swapped in between mkdir and a chmod by path had
 * the service make any file 1777. Then `dir` must be one no other user can
 * swap entries in or out of: throws, saying what to do, when it is a link,
 * not a directory, owned by a user other than root and this service's, or
 * writable by others and not sticky. A service refused polls instead.
 */
function prepare(dir: string, make: boolean): void {
  if (make) {
    try {
      makeDirectory(dir, 0o1777);
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    }
  }
  const info = Deno.lstatSync(dir);
  if (info.isSymlink) {
    throw new Error(
      `${dir} is a symbolic link, which is not followed: remove it (the service makes a directory there)`,
    );
  }
  if (!info.isDirectory) {
    throw new Error(`${dir} is not a directory: remove it`);
  }
  const me = Deno.uid();
  if (info.uid !== 0 && info.uid !== me) {
    throw new Error(
      `${dir} is owned by ${userName(info.uid)}, not by ${
        me === 0 ? "root" : `root or ${userName(me)} (this service's user)`
      }, who could swap what it holds: remove it (rm -r ${dir}; the service makes it again)`,
    );
  }
  if ((info.mode! & 0o022) !== 0 && (info.mode! & 0o1000) === 0) {
    throw new Error(
      `${dir} is writable by others but not sticky (mode ${
        (info.mode! & 0o7777).toString(8).padStart(4, "0")
      }), so they could swap what it holds: chmod +t ${dir}`,
    );
  }
}

/**
 * What a service names the file it keeps in its folder while it watches
 * it, its pid, its process's start (boot ticks) and a random name after
 * it (`.service-PID-START-UUID`): the folder is removed once none is left.
 * The pid and start name its owner, so a marker a killed service left
 * (`kill -9` runs no `leave`) is known for one and removed.
 */
const MARKER = ".service-";
const OWNED_MARKER = /^\.service-(\d+)-(\d+)-/;
/** Tries at making the folder and a marker in it: a service stopping may remove it between. */
const ENTER_TRIES = 3;

/**
 * `dir`, made unless it is there (see `prepare`), and this service's
 * marker made in it: the path of the marker. Made again when a service
 * that stopped removed it between its making and the marker's.
 */
function enter(dir: string): string {
  const owner = `${Deno.pid}-${processStart(Deno.pid) ?? 0}`;
  for (let tries = 1;; tries++) {
    prepare(dir, true);
    removeOrphans(dir);
    const marker = `${dir}/${MARKER}${owner}-${crypto.randomUUID()}`;
    try {
      Deno.openSync(marker, { createNew: true, write: true, mode: 0o600 }).close();
      return marker;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound) || tries === ENTER_TRIES) throw error;
    }
  }
}

/**
 * Remove the markers in `dir` whose service is gone: no process has its
 * pid, or the one that has it started at another time (the pid was taken
 * since). One whose start /proc hides (`hidepid`, another user's) is left,
 * as are markers that name no owner (a release before they did).
 */
function removeOrphans(dir: string): void {
  let names: string[];
  try {
    names = [...Deno.readDirSync(dir)].map((entry) => entry.name);
  } catch {
    return; // Removed under it (a cleaner): no marker is left in it.
  }
  for (const name of names) {
    const owner = name.match(OWNED_MARKER);
    if (owner === null) continue;
    const pid = Number(owner[1]);
    const start = processStart(pid);
    if (start === null ? presence(pid) !== "gone" : start === Number(owner[2])) continue;
    try {
      Deno.removeSync(`${dir}/${name}`);
    } catch {
      // Removed by another service at once, or another user's in a sticky directory: left.
    }
  }
}

/**
 * Remove this service's `marker`, then `dir` unless something else is in
 * it: another live service's marker (it watches the folder on), a notice
 * being made. The rmdir decides, atomically: the last service to leave removes it.
 */
function leave(dir: string, marker: string): void {
  try {
    Deno.removeSync(marker);
    removeOrphans(dir);
    Deno.removeSync(dir);
  } catch {
    // Gone (moved, cleaned), or not empty: left to those still in it.
  }
}

/**
 * Watch the folder of `target` in the notice directory `setting`
 * (jobsmanager.notice_dir) names for notices of changes, telling `daemon`
 * of each. A folder deleted or moved (a /tmp cleaner) is made and watched
 * again. `stop` removes the folder unless another service on the
 * database watches it (see `leave`).
 */
export async function watchChangeNotices(
  target: MysqlTarget,
  setting: string,
  daemon: Pick<Daemon, "changed" | "watchedLocally">,
): Promise<{ stop(): void }> {
  const folder = await noticeFolder(target);
  const database = describeTarget(target);
  let watch: DirectoryWatch | null = null;
  /** The folder watched, and this service's marker in it. */
  let entered: { dir: string; marker: string } | null = null;
  let stopped = false;

  const letGo = () => {
    if (entered === null) return;
    leave(entered.dir, entered.marker);
    entered = null;
  };

  /** The directory now watched; else why none could be. */
  const start = (): { dir: string } | { problems: string } => {
    const problems: string[] = [];
    for (const base of noticeDirectories(setting)) {
      const dir = `${base}/${folder}`;
      let marker: string | null = null;
      try {
        // Only the systemd unit makes /run/jobsmanager: without it, the service's is elsewhere.
        prepare(base, setting !== "" || base !== RUN_NOTICE_DIR);
        marker = enter(dir);
        let moved = false;
        const started: DirectoryWatch = DirectoryWatch.start(
          dir,
          NOTICES | IN.DELETE_SELF | IN.MOVE_SELF,
          (events) => {
            let notice = false;
            for (const { mask, name } of events) {
              // Events were lost: a notice may be among them.
              if (mask & IN.Q_OVERFLOW) notice = true;
              // Another service's marker is no change.
              if (mask & NOTICES && !name.startsWith(MARKER)) notice = true;
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
          letGo();
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
        entered = { dir, marker };
        daemon.watchedLocally(true);
        return { dir };
      } catch (error) {
        if (marker !== null) leave(dir, marker);
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
      letGo();
    },
  };
}
