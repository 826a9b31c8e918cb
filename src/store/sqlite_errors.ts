/**
 * SQLite's errors as an operator can act on them. SQLite says what failed
 * ("attempt to write a readonly database", "unable to open database file",
 * "database or disk is full"; on a full disk often only "disk I/O error":
 * its -shm file could not grow), never which file, why, or what to do.
 * Once an error has happened, the file, its -wal and -shm files and their
 * directory are tried for writing (a probe file beside them) to say that.
 * No Node module (statfs): it would load Deno's Node layer at every start.
 */
import { DatabaseError } from "../errors.ts";
import { accessFailure } from "./access.ts";
import { notOurs, userName } from "./sqlite_owner.ts";
import { liveService, shmLost, walEmpty } from "./sqlite_sidecars.ts";

const READ_ONLY = /attempt to write a readonly database/;
const CANNOT_OPEN = /unable to open database file/;
const FULL = /database or disk is full/;
const IO_ERROR = /disk I\/O error/;
/** A value over SQLite's length limit (SQLITE_TOOBIG). */
const TOO_BIG = /string or blob too big/;
/** The file's pages are not SQLite's as it wrote them (SQLITE_CORRUPT). */
const DAMAGED = /database disk image is malformed/;
/** The file is not a SQLite database at all, or its first page is gone (SQLITE_NOTADB). */
const NOT_A_DATABASE = /file is not a database/;

/** What a probe file beside the database writes: less room than this is a full disk. */
const PROBE_BYTES = 1024 * 1024;

const WHERE_ELSE = "or point db.url (--database) at a writable place";

/**
 * A node:sqlite error on the database at `path` as a DatabaseError. A full
 * disk and a read-only file, directory or filesystem are named with the
 * fix; they are refusals (not unreachable): the database answers, and
 * whoever retries a write must wait for the operator. Other errors keep
 * SQLite's text, given to `otherwise`, and count as unreachable when they
 * may pass by waiting (an I/O error, a file that cannot be opened just
 * now). Errors that are not SQLite's pass through as they are.
 */
export function explainSqliteError(
  error: unknown,
  path: string,
  otherwise: (said: string) => string = (said) => said,
): unknown {
  const e = error as { code?: string; message?: string };
  if (error instanceof DatabaseError || e?.code !== "ERR_SQLITE_ERROR") return error;
  const said = e.message ?? String(error);
  const file = path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
  if (DAMAGED.test(said)) {
    return new DatabaseError(damaged(file, said), { cause: error, unreachable: false });
  }
  if (NOT_A_DATABASE.test(said)) {
    return new DatabaseError(notADatabase(file, said), { cause: error, unreachable: false });
  }
  const lost = IO_ERROR.test(said) ? sideFileLost(file, said) : null;
  // No use trying again: the service must let go of the files first.
  if (lost !== null) return new DatabaseError(lost, { cause: error, unreachable: false });
  const trouble = diagnose(said, file);
  if (trouble !== null) {
    return new DatabaseError(trouble, { cause: error, unreachable: false, writesRefused: true });
  }
  return new DatabaseError(otherwise(said), {
    cause: error,
    unreachable: IO_ERROR.test(said) || CANNOT_OPEN.test(said),
    unstorable: TOO_BIG.test(said),
  });
}

/**
 * Why a disk I/O error came, when it came of the `-wal` or `-shm` of the
 * database at `file` being deleted or replaced under its live service
 * (sqlite_sidecars.ts): that process goes on with the ones it has open,
 * which no other can read; null when no such service is seen.
 */
function sideFileLost(file: string, said: string): string | null {
  let real: string;
  try {
    real = Deno.realPathSync(file);
  } catch {
    return null;
  }
  const service = liveService(real);
  if (service === null || service === "self") return null;
  const cannot = `cannot use the SQLite database ${file} (SQLite: "${said}"):`;
  const under = `under the live service on it (pid ${service.pid})`;
  const fix =
    "restart the service (systemctl restart jobsmanager; a service of this version stops by itself once it notices, writing what its WAL holds into the database), then run this again; never delete the -wal or -shm file of a database in use";
  if (service.shm !== "shared") return `${cannot} ${shmLost(real, service)}; ${fix}`;
  if (!walEmpty(real)) return null;
  return `${cannot} its -wal file ${real}-wal was deleted or emptied ${under}, which goes on with the one it has open, holding the writes not yet checkpointed into the database, where no other process can read them; ${fix}`;
}

/**
 * A damaged database: what to check and how to get it back. A copy made
 * over the file while a service had it open (`cp`) is what does it most.
 */
function damaged(file: string, said: string): string {
  return `the SQLite database ${file} is damaged (SQLite: "${said}"; a copy made over it while a service had it open does this): stop the services that use it, check it (sqlite3 ${file} "PRAGMA integrity_check"), then restore a backup as the README says (Backing up), or save what it still holds: sqlite3 ${file} .recover | sqlite3 ${file}.recovered, and put that in its place`;
}

/** A file that is not a SQLite database: a wrong path, most likely; never to be replaced. */
function notADatabase(file: string, said: string): string {
  return `${file} is not a SQLite database (SQLite: "${said}"): check db.url (--database, JM_DATABASE_URL) names the database's file; if it is the database, its first page is damaged: restore a backup as the README says (Backing up)`;
}

function diagnose(said: string, file: string): string | null {
  const dir = file.slice(0, file.lastIndexOf("/")) || "/";
  const cannot = `cannot write the SQLite database ${file}:`;
  const sqlite = `(SQLite: "${said}")`;
  const maybeFull = FULL.test(said) || IO_ERROR.test(said) || CANNOT_OPEN.test(said);
  if (!maybeFull && !READ_ONLY.test(said)) return null;
  // First: a read-only filesystem may also say it has no space free.
  const found = unwritable(file, dir);
  if (found !== null) return `${cannot} ${found.what} ${sqlite}; ${found.fix}, ${WHERE_ELSE}`;
  if (maybeFull) {
    const code = failure(() => probe(`${file}-jobsmanager-probe-${Deno.pid}`));
    if (code === "ENOSPC") {
      return `${cannot} the filesystem holding ${dir} is full ${sqlite}; free space on it, ${WHERE_ELSE}`;
    }
    if (code === "EDQUOT") {
      return `${cannot} user ${user()} has used up its disk quota on the filesystem holding ${dir} ${sqlite}; free space or raise the quota, ${WHERE_ELSE}`;
    }
    if (FULL.test(said) && code === null) {
      return `${cannot} it cannot grow, though the filesystem holding ${dir} has room ${sqlite}; check the file size limit (ulimit -f) and the disk quota of user ${user()}, ${WHERE_ELSE}`;
    }
  }
  if (!READ_ONLY.test(said)) return null;
  return `${cannot} SQLite opened it read-only ${sqlite}; make it, its -wal and -shm files and ${dir} writable by user ${user()}, ${WHERE_ELSE}`;
}

interface Trouble {
  what: string;
  fix: string;
}

/**
 * What keeps this process from writing the database's files, with the fix;
 * null when nothing does, or where it cannot be asked. The files are not
 * opened to find out (see access.ts: that would drop SQLite's locks).
 */
function unwritable(file: string, dir: string): Trouble | null {
  let missing = false;
  for (const name of [file, `${file}-wal`, `${file}-shm`]) {
    const code = accessFailure(name);
    if (code === undefined) return null;
    if (code === "ENOENT") missing = true;
    if (code === "EROFS") return readOnlyFilesystem(dir);
    if (code === "EPERM") {
      return {
        what: `${name} is marked immutable`,
        fix: `clear that with chattr -i ${name}`,
      };
    }
    if (code === "EACCES") {
      const owner = notOurs(name);
      if (owner !== null) return owner;
      return {
        what: `${name} is read-only to user ${user()}`,
        fix: "make it writable by that user (chown or chmod u+w)",
      };
    }
  }
  // SQLite creates the -wal and -shm files beside the database: a file to try it with.
  if (!missing) return null;
  const probe = `${file}-jobsmanager-probe-${Deno.pid}`;
  const code = failure(() => {
    Deno.openSync(probe, { createNew: true, write: true }).close();
    Deno.removeSync(probe);
  });
  if (code === "EROFS") return readOnlyFilesystem(dir);
  if (code === "EACCES" || code === "EPERM") {
    return {
      what:
        `its directory ${dir} is not writable by user ${user()}, and SQLite must create the database's -wal and -shm files there`,
      fix: `make ${dir} writable by that user`,
    };
  }
  return null;
}

function readOnlyFilesystem(dir: string): Trouble {
  return {
    what: `the filesystem holding ${dir} is mounted read-only`,
    fix: "remount it read-write (mount -o remount,rw)",
  };
}

/** The error code `fn` fails with, or null. */
function failure(fn: () => void): string | null {
  try {
    fn();
    return null;
  } catch (error) {
    return (error as { code?: string }).code ?? "unknown";
  }
}

/** Write PROBE_BYTES to a new file at `path`, then remove it; throws what the filesystem says. */
function probe(path: string): void {
  const file = Deno.openSync(path, { createNew: true, write: true });
  try {
    const chunk = new Uint8Array(64 * 1024);
    // A short write on a filesystem nearly full: the next one says ENOSPC.
    for (let left = PROBE_BYTES; left > 0;) left -= file.writeSync(chunk.subarray(0, left));
    file.syncSync();
  } finally {
    file.close();
    Deno.removeSync(path);
  }
}

/** This process's user by name, from /etc/passwd; its uid when it has none there (a container). */
function user(): string {
  return userName(Deno.uid());
}
