/**
 * One service per SQLite database file, and only while the path names it.
 *
 * `serve` holds an exclusive flock(2) on the database file itself, so every
 * path to that inode (a symlink, a hard link) sees the lock, and no other
 * file can be deleted to lift it. SQLite locks with fcntl(2), which Linux
 * keeps apart from flock, so the lock never gets in SQLite's way; but
 * closing any descriptor of the file drops the fcntl locks this process
 * holds on it, so the lock is released only after the store is closed.
 *
 * The lock also keeps the file's identity (device and inode): when the
 * path is deleted or made to name another file, the service would go on
 * writing to a file no one can open again; `moved()` says so. And when
 * the `-wal` or `-shm` beside it is, the service would go on with files
 * no other process shares (store/sqlite_sidecars.ts): `sideFilesChanged()`.
 *
 * And `serve` watches the database's directory for writes (inotify), so
 * that a `job add` reaches an idle service at once without polling.
 */
import { RuntimeError } from "../errors.ts";
import type { Daemon } from "./boot.ts";
import { log } from "./log.ts";
import { WATCHED_POLL_MS } from "./poll_timing.ts";
import { DirectoryWatch, IN } from "./directory_watch.ts";
import { createDatabaseFile, notOurs } from "../store/sqlite_owner.ts";
import { databaseFile, stillNamed } from "../store/sqlite_path.ts";
import { identityOf } from "../store/no_follow.ts";
import { SideFiles } from "../store/sqlite_sidecars.ts";

const serviceLog = log("service");

export class SqliteFileLock {
  private constructor(
    readonly path: string,
    private readonly file: Deno.FsFile,
    private readonly identity: string,
    /** This lock made the file: the service is the first to open it. */
    readonly created: boolean,
    /** Made by root in a directory of this user's, and given to it (see sqlite_owner.ts). */
    readonly givenTo: string | null,
    /** Its `-wal` and `-shm`, named after the file itself (links resolved), as SQLite names them. */
    private readonly sideFiles: SideFiles,
  ) {}

  /** Lock the database file at `path` (created 0600 when missing); throws when another service holds it. */
  static async acquire(path: string): Promise<SqliteFileLock> {
    // No link followed but a trusted one, nor a file swapped in (store/sqlite_path.ts).
    const linked = databaseFile(path);
    // Created here, before SQLite opens it, readable by its owner only.
    const made = createDatabaseFile(linked);
    let file: Deno.FsFile;
    try {
      file = await Deno.open(linked, { read: true });
    } catch (error) {
      // The directory is fine: the file's owner is the problem (made by a root CLI).
      const owner = error instanceof Deno.errors.PermissionDenied ? notOurs(path) : null;
      if (owner !== null) {
        throw new RuntimeError(
          `cannot open the SQLite database sqlite:${path} to lock it: ${owner.what}; ${owner.fix}`,
        );
      }
      // Not there: why it could not be made says more (a read-only filesystem) than that it is not.
      const why = error instanceof Deno.errors.NotFound && "notCreated" in made
        ? made.notCreated
        : error;
      throw new RuntimeError(
        `cannot open the SQLite database sqlite:${path} to lock it: ${
          (why as Error).message
        }; check that the directory exists and is writable, or pass --database sqlite:PATH`,
      );
    }
    try {
      // What was opened is what the path names, not a link swapped in (a read opens no harm).
      stillNamed(linked, identityOf(await file.stat()), path);
      if ("identity" in made) stillNamed(linked, made.identity, path);
    } catch (error) {
      file.close();
      throw error;
    }
    if (!await file.tryLock(true)) {
      file.close();
      throw new RuntimeError(
        `another jobsmanager serve already runs on sqlite:${path} (it holds a lock on the database file, whichever path or link it opened it by); SQLite allows one service per database file. Stop the other one, or use MySQL/MariaDB to run several`,
      );
    }
    return new SqliteFileLock(
      path,
      file,
      identityOf(await file.stat()),
      "identity" in made,
      "identity" in made ? made.givenTo : null,
      new SideFiles(realPathOr(linked)),
    );
  }

  /**
   * Null while the path still names the locked file (or cannot be looked
   * at just now); otherwise what happened to it, for an error line.
   */
  moved(): string | null {
    try {
      // Sync: a stat takes microseconds; the async one hands it to another thread, twice a second.
      const now = identityOf(Deno.statSync(this.path));
      if (now === this.identity) return null;
      return `sqlite:${this.path} now names another file (device:inode ${now}, not ${this.identity}): the file this service has open was replaced`;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) return null;
      return `sqlite:${this.path} no longer exists: the file this service has open was deleted`;
    }
  }

  /**
   * Null while the `-wal` and `-shm` this process has open beside the file
   * (none before the store first reads it) are what their names name;
   * otherwise which was deleted or replaced, for an error line.
   */
  sideFilesChanged(): string | null {
    return this.sideFiles.changed();
  }

  /** Release the lock; only once the store's connection is closed (see above). */
  close(): void {
    this.file.close();
  }
}

/** What a {@link DatabaseWatch} reports. */
export interface DatabaseWatchEvents {
  /** The database or its WAL was written, by any process (the CLI, the API, the service). */
  written(): void;
  /** A file in the database's directory, or the directory, was created, renamed or deleted: maybe the database. */
  moved(): void;
}

/** Not IN.ATTRIB: SQLite run as root chowns its WAL on opening, which a `job list` does. */
const MOVES = IN.CREATE | IN.DELETE | IN.MOVED_FROM | IN.MOVED_TO | IN.DELETE_SELF | IN.MOVE_SELF;

/**
 * Writes to a SQLite database as they happen, through inotify on the
 * database's directory (a write to the WAL is what a `job add` does).
 * Reads make no events, so an idle service wakes for nothing. `ended`
 * resolves when the watch stops reporting: its error, or null after
 * `close()`.
 */
export class DatabaseWatch {
  private constructor(private readonly watch: DirectoryWatch) {}

  get ended(): Promise<Error | null> {
    return this.watch.ended;
  }

  /**
   * Watch the directory of the database at `linked` (of the file it names,
   * through symbolic links); throws, saying why, when it cannot be watched
   * (no libc to call, no inotify watches left).
   */
  static start(linked: string, on: DatabaseWatchEvents): DatabaseWatch {
    // SQLite follows a symbolic link: its WAL lies beside the file itself.
    const path = Deno.realPathSync(linked);
    const slash = path.lastIndexOf("/");
    const dir = slash === -1 ? "." : path.slice(0, slash) || "/";
    const name = basename(path);
    const written = new Set([name, `${name}-wal`, `${name}-journal`]);
    return new DatabaseWatch(DirectoryWatch.start(dir, IN.MODIFY | MOVES, (events) => {
      let wrote = false;
      let moved = false;
      for (const { mask, name } of events) {
        // Events were lost: anything may have happened.
        if (mask & IN.Q_OVERFLOW) wrote = moved = true;
        if (mask & IN.MODIFY && written.has(name)) wrote = true;
        if (mask & (MOVES | IN.IGNORED)) moved = true;
      }
      if (wrote) on.written();
      if (moved) on.moved();
    }));
  }

  /** Stop reporting; `ended` then resolves null. */
  close(): void {
    this.watch.close();
  }
}

/** `path` with its links resolved; itself when it cannot be (deleted as it was opened). */
function realPathOr(path: string): string {
  try {
    return Deno.realPathSync(path);
  } catch {
    return path;
  }
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/**
 * What `serve` does with a SQLite database: it watches the file for
 * writes, so that changes apply at once and the service need not poll
 * for them (falling back to polling every `reloadIntervalMs` when the
 * directory cannot be watched), and it stops the service, at error level,
 * when the path no longer names the locked file: what the service would
 * write would go to a file no one can open again. At once, before the
 * stop, the store lets go of the old file (`abandon`): nothing more is
 * written through it, and its `-wal` and `-shm` are not left beside the
 * file the path names now, which SQLite would take for that file's.
 * It stops too when the file's `-wal` or `-shm` is deleted or replaced:
 * no other process would share them, the CLI's writes were lost or
 * failed. The store then checkpoints what its WAL holds into the file,
 * through the WAL it has open, and leaves the files beside it to SQLite.
 */
export function watchDatabaseFile(
  lock: SqliteFileLock,
  daemon: Pick<Daemon, "changed" | "watched" | "databaseLost">,
  store: { abandon(why: string, sideFiles: "remove" | "keep"): Promise<string[]> },
  reloadIntervalMs: number,
): { readonly lost: string | null; stop(): void } {
  let lost: string | null = null;
  const check = () => {
    if (lost !== null) return;
    const moved = lock.moved();
    lost = moved ?? lock.sideFilesChanged();
    if (lost === null) return;
    serviceLog.error(
      moved !== null
        ? "{problem}; the service stops rather than write where no one reads: start it again to use the file the path names now"
        : "{problem}; the service stops, first writing what its WAL holds into the database: start it again, and never delete or replace the -wal or -shm file of a database in use",
      { problem: lost },
    );
    const why = `${lost}: ${
      moved !== null ? "nothing more is written to it" : "the service writes nothing more"
    }`;
    store.abandon(why, moved !== null ? "remove" : "keep").then((problems) => {
      for (const problem of problems) {
        serviceLog.error("letting go of the file it had open: {problem}", { problem });
      }
    }, (error) => {
      serviceLog.error("letting go of the file it had open: {problem}", {
        problem: (error as Error).message,
      });
    });
    daemon.databaseLost(why);
  };
  let timer = setInterval(check, reloadIntervalMs);
  let watch: DatabaseWatch | null = null;
  try {
    watch = DatabaseWatch.start(lock.path, { written: () => daemon.changed(), moved: check });
  } catch (error) {
    serviceLog.warn(
      "cannot watch the directory of {database} for writes ({error}): the service polls it every reload_interval instead; raise fs.inotify.max_user_watches if that is what ran out",
      { database: `sqlite:${lock.path}`, error: (error as Error).message },
    );
  }
  if (watch) {
    // The watch tells of a rename or deletion at once; the timer is a safety net.
    clearInterval(timer);
    timer = setInterval(check, WATCHED_POLL_MS);
    daemon.watched(true);
    serviceLog.info(
      "watching {database} for writes: changes apply at once, and the service polls every {seconds} s besides",
      {
        database: `sqlite:${lock.path}`,
        seconds: Math.max(WATCHED_POLL_MS, reloadIntervalMs) / 1000,
      },
    );
    watch.ended.then((error) => {
      if (error === null) return;
      daemon.watched(false);
      clearInterval(timer);
      timer = setInterval(check, reloadIntervalMs);
      serviceLog.warn(
        "stopped watching {database} for writes ({error}): the service polls it every reload_interval instead",
        { database: `sqlite:${lock.path}`, error: error.message },
      );
    });
  }
  return {
    get lost() {
      return lost;
    },
    stop() {
      clearInterval(timer);
      watch?.close();
    },
  };
}
