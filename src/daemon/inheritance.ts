/**
 * What a run started with `Deno.Command` (a hook's, `job run --here`'s,
 * and every run where the native spawn cannot work) must not inherit from
 * whatever started this process: its descriptors (a deploy script's lock,
 * an ssh session's pipe, held for as long as any job runs) and the
 * signals it ignored (a shell's `&` ignores SIGINT and SIGQUIT, `nohup`
 * SIGHUP). The native spawn leaves both behind in the child itself
 * (native_spawn.ts); `Deno.Command` can do neither.
 */

const SYMBOLS = {
  syscall: { parameters: ["i64", "i64", "i64", "i64"], result: "i64" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The same number on x86-64 and arm64. */
const SYS_CLOSE_RANGE = 436n;
const CLOSE_RANGE_CLOEXEC = 4n;
/**
 * Not signals to reset: SIGPIPE, and glibc's own 32 and 33 (which no
 * sigaction may set, and its posix_spawn leaves ignored).
 */
const NOT_RESET = (1n << 12n) | (3n << 31n);

let libc: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] | null | undefined;

/**
 * Mark every descriptor of this process above stderr close-on-exec, in
 * one call (Linux 5.11's close_range), before a `Deno.Command` spawn: what
 * this process opens itself is close-on-exec already, and what the spawn
 * gives the child is dup'ed onto 0-2. Nothing where FFI is refused or the
 * kernel is older: the child then inherits them.
 */
export function closeInheritedOnExec(): void {
  if (libc === undefined) {
    try {
      libc = Deno.build.os === "linux" ? Deno.dlopen("libc.so.6", SYMBOLS).symbols : null;
    } catch {
      libc = null;
    }
  }
  libc?.syscall(SYS_CLOSE_RANGE, 3n, 0xffff_ffffn, CLOSE_RANGE_CLOEXEC);
}

/**
 * The program and arguments to exec before the shell so that it starts
 * with every signal at its default, when this process ignores one besides
 * SIGPIPE (which Deno ignores and `Deno.Command` resets): GNU env's
 * `--default-signal` (coreutils 8.31). Empty when nothing is ignored (no
 * exec to pay for), and where there is no such env: the child then
 * inherits them.
 */
export function signalReset(): string[] {
  if (!ignoresSignals()) return [];
  if (resetter === undefined) {
    const env = ["/usr/bin/env", "/bin/env"].find((path) => {
      try {
        return new Deno.Command(path, {
          args: ["--default-signal", "true"],
          stdout: "null",
          stderr: "null",
        })
          .outputSync().success;
      } catch {
        return false;
      }
    });
    resetter = env === undefined ? [] : [env, "--default-signal"];
  }
  return resetter;
}

let resetter: string[] | undefined;

/** Read at each spawn (microseconds, beside the spawn's milliseconds): it may change after the start. */
function ignoresSignals(): boolean {
  try {
    const mask = /^SigIgn:\s+(\w+)/m.exec(Deno.readTextFileSync("/proc/self/status"))?.[1];
    return mask !== undefined && (BigInt(`0x${mask}`) & ~NOT_RESET) !== 0n;
  } catch {
    return false;
  }
}
