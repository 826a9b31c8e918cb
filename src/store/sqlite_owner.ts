/**
 * Who owns the SQLite database's file, for the errors that come of it, and
 * the file a root CLI creates given to the owner of its directory.
 *
 * The README's install runs `sudo jobsmanager job add …` before the service
 * (user `jobsmanager`) ever ran: the file root made was root's, 0600, and
 * the service could not open it, restarting forever under systemd.
 */
import { createFile, type Identity } from "./no_follow.ts";

/** A user by name, from /etc/passwd; `uid N` when it has none there (a container). */
export function userName(uid: number | null): string {
  try {
    const line = Deno.readTextFileSync("/etc/passwd").split("\n")
      .find((entry) => entry.split(":")[2] === String(uid));
    if (line) return line.split(":")[0];
  } catch {
    // No /etc/passwd to read.
  }
  return `uid ${uid}`;
}

/** The owner of a file root has just created, when it is not root: given by `createDatabaseFile`. */
export function givenOwner(path: string): string | null {
  if (Deno.uid() !== 0) return null;
  try {
    const uid = Deno.statSync(path).uid;
    return uid === null || uid === 0 ? null : userName(uid);
  } catch {
    return null;
  }
}

/**
 * Why this process may not open `path`, when the file's owner and mode say
 * so, with the fix: `… is owned by root (uid 0), mode 0600, and this
 * process runs as user jobsmanager (uid 998); give it to that user: chown
 * jobsmanager: …`. Null when the file is not there or its mode lets `uid`
 * (this process's) in.
 */
export function notOurs(
  path: string,
  uid: number | null = Deno.uid(),
): { what: string; fix: string } | null {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch {
    return null;
  }
  if (info.uid === null || info.mode === null || uid === null || uid === 0) return null;
  const mode = info.mode & 0o777;
  const ours = info.uid === uid;
  // Read and write are both needed: the owner's bits for us, else the others' (groups aside).
  if (ours ? (mode & 0o600) === 0o600 : (mode & 0o066) !== 0) return null;
  const me = userName(uid);
  const owner = `${userName(info.uid)} (uid ${info.uid})`;
  const fix = ours
    ? `chmod u+rw ${path}`
    : `chown ${me.startsWith("uid ") ? uid : me}: ${path} ${path}-wal ${path}-shm`;
  return {
    what: `${path} is owned by ${owner}, mode ${
      mode.toString(8).padStart(4, "0")
    }, and this process runs as user ${me} (uid ${uid})`,
    fix: `give it to this user: ${fix} (the -wal and -shm files may not exist yet)`,
  };
}

/**
 * The owner root gives a database file it creates at `path`: its
 * directory's owner and group (the service's, `/var/lib/jobsmanager`),
 * so the service can open it; root can open it either way, and SQLite
 * run as root gives the -wal and -shm files the owner of the database
 * file. Null when this process is not root, or the directory is root's.
 */
function directoryOwner(path: string): { uid: number; gid: number } | null {
  if (Deno.uid() !== 0) return null;
  try {
    const slash = path.lastIndexOf("/");
    const dir = Deno.statSync(slash < 0 ? "." : path.slice(0, slash) || "/");
    if (dir.uid === null || dir.gid === null || dir.uid === 0) return null;
    return { uid: dir.uid, gid: dir.gid };
  } catch {
    // Not ours to insist on: the file stays root's, as before.
    return null;
  }
}

/**
 * Create a missing database file at `path` (no link followed: see
 * sqlite_path.ts), readable by its owner only, 0600, and given to its
 * directory's owner (above) through the open descriptor: by path, a link
 * the directory's owner swapped in after the create would have root chown
 * the file it names. Returns the file's identity and new owner's name;
 * else why it was not created (something is there, or the directory
 * refuses), for when opening it fails too.
 */
export function createDatabaseFile(
  path: string,
): { identity: Identity; givenTo: string | null } | { notCreated: Error } {
  const owner = directoryOwner(path);
  try {
    const { identity, given } = createFile(path, 0o600, owner);
    return { identity, givenTo: given ? userName(owner!.uid) : null };
  } catch (error) {
    return { notCreated: error as Error };
  }
}
