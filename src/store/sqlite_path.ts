/**
 * The file a SQLite database path names, reached without being led
 * elsewhere by a symbolic link someone else controls.
 *
 * Root (a `sudo jobsmanager job add`, or a service run as root) opens the
 * database in a directory another user may own (`/var/lib/jobsmanager`,
 * the service's). Had SQLite followed a link that user planted at the
 * path, root would create the file it names (anywhere, mode 0644) or
 * open it. So a link is followed only when whoever could change it is
 * trusted anyway: the link and its directory belong to root or to this
 * process's user, and no one else may replace entries in the directory.
 * The file itself is created without following a link (sqlite_owner.ts),
 * the path is checked to name that same file just before and just after
 * SQLite opens it, and SQLite is told not to create it (`mode=rw`): a
 * link swapped in at that moment can at worst make SQLite open an
 * existing file, which the descriptor it opened shows (/proc/self/fd), and
 * which this then closes before any statement runs. SQLite itself follows
 * no link to the -wal and -shm files (O_NOFOLLOW).
 */
import { DatabaseSync } from "node:sqlite";
import { DatabaseError } from "../errors.ts";
import { type Identity, identityOf } from "./no_follow.ts";
import { userName } from "./sqlite_owner.ts";

/** Links followed in a row before giving up, as the kernel does (MAXSYMLINKS). */
const MAX_LINKS = 40;

function directoryOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "." : path.slice(0, slash) || "/";
}

function trusted(uid: number | null): boolean {
  return uid === 0 || uid === Deno.uid();
}

/**
 * The path of the database file `path` names: `path` itself, or the file
 * its links name when each link and its directory are trusted (above).
 * Throws DatabaseError, naming the link and the fix, when one is not.
 */
export function databaseFile(path: string): string {
  let at = path;
  for (let links = 0;; links++) {
    let info: Deno.FileInfo;
    try {
      info = Deno.lstatSync(at);
    } catch {
      // Missing (to be created) or unreadable: creating or opening it says which.
      return at;
    }
    if (!info.isSymlink) return at;
    let target: string;
    try {
      target = Deno.readLinkSync(at);
    } catch {
      // No longer a link: someone is swapping it (see stillNamed).
      throw new DatabaseError(
        `refusing to open the SQLite database sqlite:${path}: ${at} changed as it was read; whoever may write in ${
          directoryOf(at)
        } may be trying to have this process open another file: check who may write there, and try again`,
        { unreachable: false },
      );
    }
    const dir = directoryOf(at);
    const next = target.startsWith("/") ? target : `${dir}/${target}`;
    if (links >= MAX_LINKS) {
      throw new DatabaseError(
        `cannot open the SQLite database sqlite:${path}: more than ${MAX_LINKS} symbolic links in a row; pass the file itself with --database sqlite:PATH`,
        { unreachable: false },
      );
    }
    const folder = Deno.statSync(dir);
    // Writable by a group of root's or this user's own (umask 002, a group per user) is
    // no one else's; by others, unless sticky (/tmp: only the link's owner, or the
    // directory's, may replace it).
    const groupOthers = folder.gid !== 0 && folder.gid !== Deno.gid();
    const othersWrite = (folder.mode! & (groupOthers ? 0o022 : 0o002)) !== 0 &&
      (folder.mode! & 0o1000) === 0;
    if (!trusted(info.uid) || !trusted(folder.uid) || othersWrite) {
      const me = Deno.uid() === 0
        ? "root"
        : `root or ${userName(Deno.uid())} (this process's user)`;
      throw new DatabaseError(
        `refusing to open the SQLite database sqlite:${path}: ${at} is a symbolic link (to ${target}) owned by ${
          userName(info.uid)
        }, in ${dir}, owned by ${userName(folder.uid)}, mode ${
          (folder.mode! & 0o7777).toString(8).padStart(4, "0")
        }; a link to the database is followed only when the link and its directory belong to ${me} and no one else may write in that directory, as whoever can change the link chooses which file is created or opened. Pass the file itself (--database sqlite:${next}), or fix the owner and mode of the link and its directory`,
        { unreachable: false },
      );
    }
    at = next;
  }
}

/**
 * Throws DatabaseError unless `file` is still not a link, and, when
 * `expected` is given, names that same file; and unless none of its -wal,
 * -shm and -journal files is a link: SQLite opens those with O_NOFOLLOW,
 * and would fail with no more than "unable to open database file".
 * Returns the identity of what `file` names (null when there is nothing
 * there).
 */
export function stillNamed(file: string, expected: Identity | null, path: string): Identity | null {
  const refuse = (what: string) =>
    new DatabaseError(
      `refusing to open the SQLite database sqlite:${path}: ${what}; whoever may write in ${
        directoryOf(file)
      } may be trying to have this process open another file: check who may write there, remove the link, and try again`,
      { unreachable: false },
    );
  for (const suffix of ["-wal", "-shm", "-journal"]) {
    let info: Deno.FileInfo | null = null;
    try {
      info = Deno.lstatSync(`${file}${suffix}`);
    } catch {
      // Not there: SQLite makes it.
    }
    if (info?.isSymlink) {
      throw refuse(`${file}${suffix} is a symbolic link, which SQLite does not follow`);
    }
  }
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(file);
  } catch {
    return null;
  }
  if (info.isSymlink) {
    throw refuse(`${file} was made a symbolic link as it was opened`);
  }
  const now = identityOf(info);
  if (expected !== null && now !== expected) {
    throw refuse(`${file} was replaced by another file as it was opened`);
  }
  return now;
}

/**
 * `file` as a SQLite URI that opens it read-write but never creates it
 * (`mode=rw`): the file was created, if at all, by `createDatabaseFile`.
 */
function readWriteUri(file: string): string {
  return `${uriOf(file)}?mode=rw`;
}

/** `file` as a SQLite URI, without parameters. */
function uriOf(file: string): string {
  // %, ? and # mean something in a URI; a leading // would be read as a host.
  const escaped = file.replace(/%/g, "%25").replace(/\?/g, "%3f").replace(/#/g, "%23")
    .replace(/^\/+/, "/");
  return `file:${escaped}`;
}

/**
 * Open the database file `file` (which `path` named) read-only, as a file
 * on a read-only filesystem: `mode=ro`, and `immutable=1` when no `-wal`
 * lies beside it (SQLite then needs no `-shm`, which it could not make).
 * No link swapped in makes it open another file for writing: it writes none.
 */
export function openDatabaseReadOnly(file: string, path: string): DatabaseSync {
  stillNamed(file, null, path);
  let walled = true;
  try {
    Deno.lstatSync(`${file}-wal`);
  } catch (error) {
    walled = !(error instanceof Deno.errors.NotFound);
  }
  const uri = `${uriOf(file)}?mode=ro${walled ? "" : "&immutable=1"}`;
  try {
    return new DatabaseSync(uri);
  } catch (error) {
    const e = error as { message?: string };
    if (typeof e?.message === "string") e.message = e.message.replaceAll(uri, file);
    throw error;
  }
}

/**
 * The regular files this process has open, by descriptor (Linux's
 * /proc/self/fd); null where that cannot be read.
 */
function openFiles(): Map<string, Identity> | null {
  const files = new Map<string, Identity>();
  try {
    for (const { name } of Deno.readDirSync("/proc/self/fd")) {
      try {
        const info = Deno.statSync(`/proc/self/fd/${name}`);
        if (info.isFile) files.set(name, identityOf(info));
      } catch {
        // Closed meanwhile (the listing's own descriptor, another thread's).
      }
    }
  } catch {
    return null;
  }
  return files;
}

/**
 * Open the database file `file` (which `path` named) with SQLite, checking
 * before and after that the path names the file `created` made (or, when
 * it existed, the same file throughout), and that the descriptor SQLite
 * opened is of that file: a link swapped in and out again as SQLite opened
 * the path would have it open another. SQLite's errors say `file`, not the
 * URI it was given.
 */
export function openDatabase(file: string, created: Identity | null, path: string): DatabaseSync {
  const before = stillNamed(file, created, path);
  const uri = readWriteUri(file);
  const held = openFiles();
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(uri);
  } catch (error) {
    const e = error as { message?: string };
    if (typeof e?.message === "string") e.message = e.message.replaceAll(uri, file);
    throw error;
  }
  try {
    const after = stillNamed(file, before, path);
    const now = openFiles();
    if (held === null || now === null || after === null) return db;
    // Held already (another connection of this process): SQLite may reuse that descriptor,
    // and what else is new is another thread's. Else SQLite's own is among the new ones.
    if ([...held.values()].includes(after)) return db;
    // Another thread may have opened a file meanwhile; SQLite may have reused a descriptor of its own.
    const opened = [...now].filter(([fd, identity]) => held.get(fd) !== identity);
    if (opened.length > 0 && !opened.some(([, identity]) => identity === after)) {
      throw new DatabaseError(
        `refusing to open the SQLite database sqlite:${path}: SQLite opened another file than ${file} names (a link swapped in and out as it opened it); whoever may write in ${
          directoryOf(file)
        } may be trying to have this process open another file: check who may write there, and try again`,
        { unreachable: false },
      );
    }
  } catch (error) {
    db.close();
    throw error;
  }
  return db;
}
