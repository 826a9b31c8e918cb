/**
 * Whether a process (or a process group) exists, asked of the kernel with
 * kill(2) and signal 0, which sends nothing. Unlike /proc, which a mount
 * with `hidepid` (systemd's ProtectProc=invisible) makes hide other users'
 * processes, it tells a process that is gone (ESRCH) from one this
 * process may not see or signal (EPERM).
 */
import { type Node, type ProcessSpace, sameProcessSpace } from "../domain/node.ts";
import {
  bootId,
  bootTicks,
  endedState,
  pidNamespace,
  processStart,
  statFields,
} from "./processes.ts";

const ESRCH = 3;
const EPERM = 1;

const SYMBOLS = {
  kill: { parameters: ["i32", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

let libc: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] | null | undefined;

/**
 * `gone`: no process has `pid` (a negative one: no process is in group
 * -pid) in this pid namespace; `ours`: one has, and this process may
 * signal it; `other`: one has, and this process may not (another user's);
 * `unknown`: the kernel cannot be asked (not Linux with glibc, or FFI not
 * allowed).
 */
export function presence(pid: number): "gone" | "ours" | "other" | "unknown" {
  if (libc === undefined) {
    try {
      libc = Deno.build.os === "linux" ? Deno.dlopen("libc.so.6", SYMBOLS).symbols : null;
    } catch {
      libc = null;
    }
  }
  if (libc === null || pid === 0 || pid === -1) return "unknown";
  if (libc.kill(pid, 0) === 0) return "ours";
  const errno = new Deno.UnsafePointerView(libc.__errno_location()!).getInt32();
  return errno === ESRCH ? "gone" : errno === EPERM ? "other" : "unknown";
}

/** This process's boot and pid namespace: where the pids it looks up mean what they say. */
export function hereSpace(): ProcessSpace {
  return { boot_id: bootId(), pid_ns: pidNamespace() };
}

/**
 * This process as its node's row names it: its boot, pid namespace and
 * start since boot (`Node.process_start`), by which `serviceRuns` tells
 * it from a process that took its pid after it.
 */
export function hereService(): ProcessSpace & Pick<Node, "process_start"> {
  return { ...hereSpace(), process_start: processStart(Deno.pid) };
}

/**
 * The process with `pid` has ended, though kill(2) still finds it
 * (`endedState`: a zombie, or one being reaped). False where /proc does
 * not show it (gone, or hidden by `hidepid`).
 */
function ended(pid: number): boolean {
  return endedState(statFields(pid)?.[0]);
}

/**
 * Whether the service a `jm_nodes` row names is known not to run: it runs
 * in `here`'s boot and pid namespace (the row says so), and no process has
 * its pid, or the one that has it has ended (a zombie). Of another
 * namespace (a container given the host's name), another machine, or a
 * row that does not say (an older release), it is unknown: judged by its
 * heartbeat.
 */
export function serviceGone(
  node: Pick<Node, "pid" | "boot_id" | "pid_ns">,
  here: ProcessSpace = hereSpace(),
): boolean {
  if (!sameProcessSpace(node, here)) return false;
  return presence(node.pid) === "gone" || ended(node.pid);
}

/** Slack for a process's start as /proc tells it against the wall clock (ticks, rounding). */
const START_SLACK_MS = 2000;

/**
 * Whether the service a `jm_nodes` row names is known to run still: it
 * runs in `here`'s boot and pid namespace (the row says so), and the
 * process that has its pid (this user's or another's) is the service's: it
 * started at the tick since boot the row names (`process_start`); a pid
 * another program took after the service died belongs to a process started
 * at another. The row's boot id is this boot's, so the two ticks count from
 * the same instant, and no step of the wall clock moves either. A row
 * without it (a release before schema version 19) is judged by the wall
 * clock: the process started no later than the service's `started_at`,
 * which a step since its start makes wrong (forward: its own process looks
 * started after it; back: a process that took its pid looks started
 * before it). A zombie with its pid runs nothing: `no`. `unconfirmed`: a
 * process has its pid, but /proc does not say when it started (`hidepid`
 * hides another user's), so whether it is the service is not known.
 * Whether it beats is its heartbeat's to say.
 */
export function serviceRuns(
  node: Pick<Node, "pid" | "boot_id" | "pid_ns" | "started_at" | "process_start">,
  here: ProcessSpace = hereSpace(),
): "runs" | "unconfirmed" | "no" {
  if (!sameProcessSpace(node, here)) return "no";
  const found = presence(node.pid);
  if ((found !== "ours" && found !== "other") || ended(node.pid)) return "no";
  const start = processStart(node.pid);
  if (start === null) return presence(node.pid) === "gone" ? "no" : "unconfirmed";
  if (node.process_start != null) return start === node.process_start ? "runs" : "no";
  const startedAtMs = Date.now() - (bootTicks() - start) * 10;
  return startedAtMs <= node.started_at + START_SLACK_MS ? "runs" : "no";
}
