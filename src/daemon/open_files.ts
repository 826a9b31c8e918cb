/**
 * Room under this process's open-file limit: a burst arms no more shells
 * than their descriptors fit beside what is open, where a shell too many
 * would fail its run ("Too many open files"). Deno raises the soft limit
 * to the hard one at start, and the shipped unit sets 65,536; a hard limit
 * of 1,024 leaves room for a few hundred.
 */

/**
 * Descriptors kept free beyond those open when the room is counted, for
 * what opens now and then: a log file's rotation, a hook's pipes, a
 * runner thread's epoll set, a read of /proc.
 */
const SPARE_FILES = 16;

/**
 * What `openFileRoom` sets aside beyond what is open: SPARE_FILES, the
 * database connections the pools may open yet (one descriptor each; none
 * on SQLite, whose file is open from the start), and the HTTP side's
 * clients (one each, up to http.max_connections, where it listens).
 */
export function filesSetAside(databaseConnections: number, httpClients: number): number {
  return SPARE_FILES + databaseConnections + httpClients;
}

/** The soft limit, read once: it does not change while the service runs. */
let limit: number | undefined;

/**
 * Descriptors this process may still open, less `reserved` (for the
 * database's connections, the log files, the HTTP side): Infinity where
 * /proc does not say (not Linux); 0 where it cannot be counted for want
 * of a descriptor.
 */
export function openFileRoom(reserved: number): number {
  try {
    limit ??= softLimit(Deno.readTextFileSync("/proc/self/limits"));
    let open = 0;
    for (const _ of Deno.readDirSync("/proc/self/fd")) open++;
    return room(limit, open, reserved);
  } catch (error) {
    const noProc = error instanceof Deno.errors.NotFound ||
      error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable;
    return noProc ? Infinity : 0;
  }
}

/** What `limit` leaves beside `open` descriptors and `reserved` more. */
export function room(limit: number, open: number, reserved: number): number {
  return Math.max(0, limit - open - reserved);
}

/** The soft "Max open files" of a /proc/PID/limits text ("unlimited": Infinity). */
export function softLimit(limits: string): number {
  const line = limits.split("\n").find((l) => l.startsWith("Max open files"));
  const soft = line?.slice("Max open files".length).trim().split(/\s+/)[0];
  if (soft === "unlimited") return Infinity;
  const value = Number(soft);
  if (!Number.isInteger(value)) throw new Error(`no soft limit in "${line}"`);
  return value;
}
