/**
 * Change notices: how a write made on this machine reaches the services
 * on it at once, so that they need not poll a MySQL database often. After
 * each write a service polls for (a job added, changed or removed, a
 * reload, a `job run` request, a cancel), the store of the CLI or the API
 * creates a file in the database's folder of the notice directory (named
 * by a hash of where the database is) and removes it again. `serve` makes
 * that folder and watches it (daemon/change_notices.ts), so it polls at
 * once, and wakes for no other database's notices; where no service on
 * this machine uses the database, there is no folder and nothing to do. A
 * SQLite service sees its database's file written instead, and gets no
 * notices.
 *
 * Best effort: a notice that cannot be made costs time, not the write,
 * as the service's timed poll still finds the change. A notice carries
 * nothing but its name, and is created exclusively under a name no one
 * can guess, so a link planted in the folder is never followed: a local
 * user who fakes notices makes a service poll sooner (at most twice a
 * second), one who hides them makes it poll later (at its timed poll),
 * nothing more.
 */
import type { Driver } from "./driver.ts";
import { SqlStore } from "./sql_store.ts";
import type { JobChange, JobMutation, JobsChange, JobWrites } from "./store.ts";
import type { MysqlTarget } from "./target.ts";
import type { Job } from "../domain/job.ts";
import type { NewRun, RunStatus, RunUpdate } from "../domain/run.ts";

/**
 * The runtime directory the systemd unit has made (RuntimeDirectory=),
 * which the service and the CLI both see: the unit gives the service a
 * /tmp of its own.
 */
export const RUN_NOTICE_DIR = "/run/jobsmanager";
/** Without it: made by the first service, world-writable and sticky, as /tmp is. */
export const TMP_NOTICE_DIR = "/tmp/jobsmanager-notices";

/**
 * The directories `setting` (jobsmanager.notice_dir) names, in the order a
 * service tries to watch them; the CLI leaves its notices in each that
 * exists, so that it reaches a service whichever it watches.
 */
export function noticeDirectories(setting: string): string[] {
  return setting === "" ? [RUN_NOTICE_DIR, TMP_NOTICE_DIR] : [setting];
}

/** Names of this machine, which every process here may use for a server on it. */
const LOOPBACK = new Set(["localhost", "127.0.0.1", "::1", "[::1]"]);

/**
 * The name of the folder of the database `target` names, in a notice
 * directory: a hash of host, port and database, the same in every process
 * that names the database alike (the loopback address spelled any of its
 * ways).
 */
export async function noticeFolder(target: MysqlTarget): Promise<string> {
  const host = target.host.toLowerCase();
  // A socket is this machine's server: on db.port, as a CLI that names it by address takes it.
  const local = target.socket !== undefined || LOOPBACK.has(host);
  const where = `${local ? "localhost" : host}:${target.port}/${target.database}`;
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(where));
  const hex = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
  return hex.slice(0, 32);
}

/** Leaves a notice of a write to one database, in its folder of each notice directory. */
export class ChangeNotice {
  private readonly folder: Promise<string>;

  constructor(target: MysqlTarget, private readonly directories: string[]) {
    this.folder = noticeFolder(target);
  }

  /** Never throws: see the module's comment. */
  async send(): Promise<void> {
    const folder = await this.folder;
    for (const dir of this.directories) {
      try {
        const watched = `${dir}/${folder}`;
        // No service here uses the database; and no symbolic link is followed.
        if (!Deno.lstatSync(watched).isDirectory) continue;
        const path = `${watched}/${crypto.randomUUID()}`;
        Deno.openSync(path, { createNew: true, write: true, mode: 0o600 }).close();
        Deno.removeSync(path);
      } catch {
        // Missing, not writable, full: the service's timed poll finds the write.
      }
    }
  }
}

/**
 * The SQL store of an entry point (CLI, API): after each write a service
 * polls for has committed, it leaves a change notice. Not the service's
 * own store: its claims and run records are no news to it.
 */
export class NoticingStore extends SqlStore {
  constructor(driver: Driver, private readonly notice: ChangeNotice) {
    super(driver);
  }

  override async changeJob(id: string, mutate: JobMutation): Promise<JobChange> {
    const change = await super.changeJob(id, mutate);
    if (change.markerId !== null) await this.notice.send();
    return change;
  }

  override async changeJobs(mutate: (current: Job[]) => JobWrites): Promise<JobsChange> {
    const change = await super.changeJobs(mutate);
    if (change.markerId !== null) await this.notice.send();
    return change;
  }

  override async insertMarker(before: Job[], after: Job[]): Promise<number> {
    const id = await super.insertMarker(before, after);
    await this.notice.send();
    return id;
  }

  override async claimRuns(runs: NewRun[]): Promise<(number | null)[]> {
    const ids = await super.claimRuns(runs);
    if (ids.some((id) => id !== null)) await this.notice.send();
    return ids;
  }

  override async updateRun(
    id: number,
    update: RunUpdate,
    onlyIf?: RunStatus,
    node?: string,
  ): Promise<boolean> {
    const changed = await super.updateRun(id, update, onlyIf, node);
    if (changed) await this.notice.send();
    return changed;
  }
}
