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
 * writing to a file no one can open again; `moved()` says so.
 */
import { RuntimeError } from "../errors.ts";

export class SqliteFileLock {
  private constructor(
    readonly path: string,
    private readonly file: Deno.FsFile,
    private readonly identity: string,
  ) {}

  /** Lock the database file at `path` (created 0600 when missing); throws when another service holds it. */
  static async acquire(path: string): Promise<SqliteFileLock> {
    try {
      // Created here, before SQLite opens it, readable by its owner only.
      (await Deno.open(path, { createNew: true, write: true, mode: 0o600 })).close();
    } catch {
      // It exists, or cannot be created: opening it next says which.
    }
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (error) {
      throw new RuntimeError(
        `cannot open the SQLite database sqlite:${path} to lock it: ${
          (error as Error).message
        }; check that the directory exists and is writable, or pass --database sqlite:PATH`,
      );
    }
    if (!await file.tryLock(true)) {
      file.close();
      throw new RuntimeError(
        `another jobsmanager serve already runs on sqlite:${path} (it holds a lock on the database file, whichever path or link it opened it by); SQLite allows one service per database file. Stop the other one, or use MySQL/MariaDB to run several`,
      );
    }
    return new SqliteFileLock(path, file, identityOf(await file.stat()));
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

  /** Release the lock; only once the store's connection is closed (see above). */
  close(): void {
    this.file.close();
  }
}

function identityOf(stat: Deno.FileInfo): string {
  return `${stat.dev}:${stat.ino}`;
}
