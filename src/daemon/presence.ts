/**
 * Whether a process (or a process group) exists, asked of the kernel with
 * kill(2) and signal 0, which sends nothing. Unlike /proc, which a mount
 * with `hidepid` (systemd's ProtectProc=invisible) makes hide other users'
 * processes, it tells a process that is gone (ESRCH) from one this
 * process may not see or signal (EPERM).
 */
import { type Node, type ProcessSpace, sameProcessSpace } from "../domain/node.ts";
import { bootId, pidNamespace } from "./processes.ts";

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
 * Whether the service a `jm_nodes` row names is known not to run: it runs
 * in `here`'s boot and pid namespace (the row says so), and no process has
 * its pid. Of another namespace (a container given the host's name),
 * another machine, or a row that does not say (an older release), it is
 * unknown: judged by its heartbeat.
 */
export function serviceGone(
  node: Pick<Node, "pid" | "boot_id" | "pid_ns">,
  here: ProcessSpace = hereSpace(),
): boolean {
  return sameProcessSpace(node, here) && presence(node.pid) === "gone";
}

/**
 * Whether the service a `jm_nodes` row names is known to run still: it
 * runs in `here`'s boot and pid namespace, and a process has its pid (this
 * user's or another's). Whether that process beats is its heartbeat's to
 * say; a pid another program took after the service died reads so too.
 */
export function serviceRuns(
  node: Pick<Node, "pid" | "boot_id" | "pid_ns">,
  here: ProcessSpace = hereSpace(),
): boolean {
  if (!sameProcessSpace(node, here)) return false;
  const found = presence(node.pid);
  return found === "ours" || found === "other";
}
