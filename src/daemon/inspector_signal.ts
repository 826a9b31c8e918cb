/**
 * Deno (since 2.9.2) opens its inspector on 127.0.0.1:9229 when the
 * process gets SIGUSR1, as Node does: a debugger anyone on this host can
 * connect to, no token asked, and run code in as the service's user (root,
 * to run jobs as others). A stray `kill -USR1` (a logrotate `postrotate`
 * written for another daemon, a `pkill -USR1 -f job`) would hand the host
 * over. Every command (the service, `logs --follow`, …) ignores SIGUSR1 instead: Deno installs its handler half
 * a second after the start, so the signal is set ignored once that handler
 * is seen (or after IGNORE_WAIT_MS, where none comes). Runs start with
 * every signal at its default all the same (native_spawn.ts,
 * inheritance.ts `signalReset`).
 */

const SYMBOLS = {
  signal: { parameters: ["i32", "pointer"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

const SIGUSR1 = 10;
const SIG_IGN = 1n;
/** How often to look whether Deno's handler is in place yet. */
const LOOK_MS = 100;
/** Deno's comes at 500 ms; a build without it leaves the signal ignored from the first look. */
const IGNORE_WAIT_MS = 10_000;

/**
 * Ignore SIGUSR1 for good, over Deno's inspector handler once it is
 * installed; nothing where FFI cannot (not Linux).
 */
export function ignoreInspectorSignal(): void {
  if (Deno.build.os !== "linux") return;
  let libc: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    libc = Deno.dlopen("libc.so.6", SYMBOLS);
  } catch {
    return;
  }
  const ignored = Deno.UnsafePointer.create(SIG_IGN);
  const until = Date.now() + IGNORE_WAIT_MS;
  const look = () => {
    // The handler before: none (SIG_DFL) or ours (SIG_IGN) till Deno's comes.
    const before = BigInt(Deno.UnsafePointer.value(libc.symbols.signal(SIGUSR1, ignored)));
    if ((before !== 0n && before !== SIG_IGN) || Date.now() >= until) {
      libc.close();
      return;
    }
    Deno.unrefTimer(setTimeout(look, LOOK_MS));
  };
  look();
}
