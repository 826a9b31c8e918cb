/**
 * A run that `job run --here` runs in a CLI process rather than in a
 * service: its node (`cli@HOST`), and the process that holds it, named in
 * its marker, so that whoever can see that host's processes (a service
 * there, `runs cancel` there) can tell once that process is gone (killed,
 * or its machine restarted) and end the run it left `running`.
 */

const HERE_PREFIX = "cli@";

/** What every `job run --here` run's note starts with. */
export const HERE_NOTE = "run in the CLI with --here";

/** The node of a run `job run --here` runs in a terminal on `host`, not in a service. */
export function hereNode(host: string): string {
  return `${HERE_PREFIX}${host}`;
}

/** The host of a `job run --here` run's node; null for a service's node (or none). */
export function hereHost(nodeId: string | null): string | null {
  return nodeId?.startsWith(HERE_PREFIX) ? nodeId.slice(HERE_PREFIX.length) : null;
}

/**
 * The CLI process that holds a run. A pid alone may name another process
 * later: its start (1/100 s since boot, /proc/PID/stat) and the boot tell
 * them apart, and its pid namespace says who can look it up by that pid.
 */
export interface Holder {
  /** The first BOOT_TAG characters of /proc/sys/kernel/random/boot_id. */
  boot: string;
  /** The inode number of its pid namespace (/proc/self/ns/pid). */
  pidNamespace: number;
  pid: number;
  start: number;
}

/** How much of the boot id a marker keeps: a reboot that keeps it too is one in 4 billion. */
export const BOOT_TAG = 8;
/** A marker's longest (the `jm_runs.marker` column). */
const MARKER_MAX = 36;
const SEPARATOR = ".";

/**
 * The marker of the one run `holder` runs: its identity, in base 36 to fit
 * the column; null when it would not fit.
 */
export function hereMarker(holder: Holder): string | null {
  const marker = [
    "cli",
    holder.boot,
    ...[holder.pidNamespace, holder.pid, holder.start].map((n) => n.toString(36)),
  ].join(SEPARATOR);
  return marker.length <= MARKER_MAX ? marker : null;
}

/** The holder a marker names; null for a service's run's marker (or one written by hand). */
export function holderOf(marker: string | null): Holder | null {
  const parts = marker?.split(SEPARATOR) ?? [];
  if (parts.length !== 5 || parts[0] !== "cli" || parts[1].length !== BOOT_TAG) return null;
  const numbers = parts.slice(2);
  if (!numbers.every((n) => /^[0-9a-z]+$/.test(n))) return null;
  const [pidNamespace, pid, start] = numbers.map((n) => parseInt(n, 36));
  return { boot: parts[1], pidNamespace, pid, start };
}

/**
 * How the CLI process that held a run went: it ended (killed, or it
 * crashed), or the machine restarted.
 */
export type HolderEnd = "ended" | "restarted";

/** The note of a run whose CLI process went away without recording its end. */
export function goneNote(holder: Holder, host: string, how: HolderEnd, ended: string[]): string {
  const what = `the CLI process that ran it (pid ${holder.pid} on ${host})`;
  return `${HERE_NOTE}; ${
    how === "restarted"
      ? `${host} restarted under ${what}`
      : `${what} ended (killed, or it crashed)`
  } without recording how the run ended${
    ended.length === 0 ? "" : `; ended what it left running: ${ended.join(", ")}`
  }`;
}
