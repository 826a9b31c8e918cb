/**
 * A SQLite database in WAL mode is three files: the database, its `-wal`
 * (the writes not yet checkpointed into it) and its `-shm` (the index of
 * the WAL, which every process using the database maps and must share).
 * SQLite removes the two only as the last connection closes. Deleted or
 * replaced under a live service, the service goes on with the files it
 * has open, and the next process makes new ones: after `rm jobs.db-shm`
 * the service's writes and a CLI's overwrote each other in the WAL (the
 * CLI's `job add` said it was done, and was lost); after `rm jobs.db-wal`
 * every other process failed with "disk I/O error" and the service went
 * on with its writes in a file no one else could read.
 *
 * The service finds it out through /proc/self/fd (what it has open under
 * those names, and what the names are now); another process, through
 * /proc/locks: the live service holds the lock on the database file
 * (daemon/sqlite_file.ts) and, like every SQLite connection, a lock on
 * the `-shm` it maps. Nothing here opens those files: closing any
 * descriptor of them would drop this process's own SQLite locks (see
 * access.ts).
 */
import { type Identity, identityOf } from "./no_follow.ts";

/** The suffixes SQLite gives the files beside a database in WAL mode. */
export const SIDE_FILES = ["-wal", "-shm"] as const;

/** Where /proc/self/fd says an open file is: its path, and this when it was deleted since. */
const DELETED = " (deleted)";

/** The size of a WAL's header: a WAL shorter than this holds no write. */
const WAL_HEADER_BYTES = 32;

/**
 * The files this process has open by each of `names` (as /proc/self/fd
 * names them: a file removed or replaced since is not under its name);
 * null where that cannot be read.
 */
export function heldUnder(names: string[]): Map<string, Set<Identity>> | null {
  const held = new Map<string, Set<Identity>>();
  const open = openFiles();
  if (open === null) return null;
  for (const { link, identity } of open) {
    if (names.includes(link)) held.set(link, (held.get(link) ?? new Set()).add(identity));
  }
  return held;
}

/** Each descriptor of this process: what /proc/self/fd links it to, and the file's identity. */
function openFiles(): { link: string; identity: Identity }[] | null {
  const files: { link: string; identity: Identity }[] = [];
  try {
    for (const { name: fd } of Deno.readDirSync("/proc/self/fd")) {
      try {
        const link = Deno.readLinkSync(`/proc/self/fd/${fd}`);
        files.push({ link, identity: identityOf(Deno.statSync(`/proc/self/fd/${fd}`)) });
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
 * The `-wal` and `-shm` a service has open beside its database file
 * (`realPath`: links resolved, as SQLite names them), compared with what
 * those names are now. Each file is known by what it was when first seen
 * under its name, so that one moved away is still recognised as its own.
 */
export class SideFiles {
  private readonly known = new Map<string, Set<Identity>>();

  constructor(private readonly realPath: string) {}

  /**
   * Null while every `-wal` and `-shm` this process has open is still what
   * its name names (or none is open yet, or /proc cannot be read);
   * otherwise what happened to which, for an error line.
   */
  changed(): string | null {
    const open = openFiles();
    if (open === null) return null;
    for (const suffix of SIDE_FILES) {
      const name = `${this.realPath}${suffix}`;
      const known = this.known.get(name) ?? new Set<Identity>();
      this.known.set(name, known);
      const held = new Set<Identity>();
      for (const { link, identity } of open) {
        if (link === name) known.add(identity);
        if (link === name || link === `${name}${DELETED}` || known.has(identity)) {
          held.add(identity);
        }
      }
      if (held.size === 0) continue;
      let now: Identity | null;
      try {
        now = identityOf(Deno.statSync(name));
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) continue;
        now = null;
      }
      if ([...held].every((identity) => identity === now)) continue;
      const how = now === null
        ? "was deleted"
        : `was replaced by another file (device:inode ${now}, not ${[...held].join(", ")})`;
      return `${name} ${how} under this service: ${WHAT[suffix]}`;
    }
    return null;
  }
}

const WHAT: Record<(typeof SIDE_FILES)[number], string> = {
  "-wal":
    "the WAL, which holds the writes not yet checkpointed into the database, is this service's alone now: no other process reads those writes, and a CLI command fails with 'disk I/O error'",
  "-shm":
    "the index of the WAL, which every process using the database must share, is this service's alone now, and a CLI command's writes and the service's would overwrite each other in the WAL",
};

/** A live service on a SQLite database file, as /proc/locks shows it, and the `-shm` it maps. */
export interface LiveService {
  pid: number;
  /** The `-shm` beside the file is the service's, is missing, or is another file than the one it maps. */
  shm: "shared" | "missing" | "other";
}

/**
 * The live service of another process on the database file `file`
 * (links resolved), with whether it maps the `-shm` the name gives now;
 * "self" when this process holds the lock; null when none does, it has
 * not opened the database yet (no SQLite lock on the file), or
 * /proc/locks cannot tell (not Linux; the service in another pid
 * namespace).
 */
export function liveService(file: string): LiveService | "self" | null {
  let locks: string;
  let key: string;
  try {
    locks = Deno.readTextFileSync("/proc/locks");
    key = lockKey(Deno.statSync(file));
  } catch {
    return null;
  }
  const lines = locks.split("\n");
  // Only the lines of the file and its -shm are taken apart: a busy host has thousands.
  const on = (k: string) =>
    lines.filter((line) => line.includes(` ${k} `)).map((line) => line.trim().split(/\s+/))
      // "N: -> TYPE …" is a process waiting for the lock, not holding it.
      .filter((f) => f.length >= 8 && f[1] !== "->" && f[5] === k)
      .map((f) => ({ type: f[1], access: f[3], pid: Number(f[4]) }));
  const entries = on(key);
  const holder = entries.find((e) => e.type === "FLOCK" && e.access === "WRITE" && e.pid > 0);
  if (holder === undefined) return null;
  if (holder.pid === Deno.pid) return "self";
  const posix = (of: typeof entries) => of.some((e) => e.type === "POSIX" && e.pid === holder.pid);
  if (!posix(entries)) return null;
  let shmKey: string;
  try {
    shmKey = lockKey(Deno.statSync(`${file}-shm`));
  } catch (error) {
    return error instanceof Deno.errors.NotFound ? { pid: holder.pid, shm: "missing" } : null;
  }
  return { pid: holder.pid, shm: posix(on(shmKey)) ? "shared" : "other" };
}

/** What became of the `-shm` of the database at `file` whose `service` no longer maps it, for an error. */
export function shmLost(file: string, service: LiveService): string {
  const shm = `${file}-shm`;
  const live = `the live service on it (pid ${service.pid})`;
  return service.shm === "missing"
    ? `its -shm file ${shm} was deleted under ${live}, which goes on with the one it has open`
    : `its -shm file ${shm} is not the one ${live} has open: that was deleted or replaced under the service, which goes on with it, and another process made a new one`;
}

/** Whether the `-wal` beside `file` holds no write: missing, or shorter than a WAL's header. */
export function walEmpty(file: string): boolean {
  try {
    return Deno.statSync(`${file}-wal`).size < WAL_HEADER_BYTES;
  } catch (error) {
    return error instanceof Deno.errors.NotFound;
  }
}

/** A file as /proc/locks names it: major:minor (hexadecimal, as glibc splits st_dev) and inode. */
function lockKey(info: Deno.FileInfo): string {
  const dev = BigInt(info.dev);
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  const hex = (n: bigint) => n.toString(16).padStart(2, "0");
  return `${hex(major)}:${hex(minor)}:${info.ino}`;
}
