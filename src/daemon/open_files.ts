/**
 * Room under this process's open-file limit: a burst arms no more shells
 * than their descriptors fit beside what is open, where a shell too many
 * would fail its run ("Too many open files"). Deno raises the soft limit
 * to the hard one at start, and the shipped unit sets 65,536; a hard limit
 * of 1,024 leaves room for a few hundred.
 */

/** Descriptors kept free for everything else: the database, the log files, the HTTP side. */
const RESERVED = 64;

/** The soft limit, read once: it does not change while the service runs. */
let limit: number | undefined;

/**
 * Descriptors this process may still open, less RESERVED; Infinity where
 * /proc does not say (not Linux).
 */
export function openFileRoom(): number {
  try {
    limit ??= softLimit(Deno.readTextFileSync("/proc/self/limits"));
    let open = 0;
    for (const _ of Deno.readDirSync("/proc/self/fd")) open++;
    return Math.max(0, limit - open - RESERVED);
  } catch {
    return Infinity;
  }
}

/** The soft "Max open files" of a /proc/PID/limits text ("unlimited": Infinity). */
export function softLimit(limits: string): number {
  const line = limits.split("\n").find((l) => l.startsWith("Max open files"));
  const soft = line?.slice("Max open files".length).trim().split(/\s+/)[0];
  if (soft === undefined) throw new Error("no Max open files line");
  return soft === "unlimited" ? Infinity : Number(soft);
}
