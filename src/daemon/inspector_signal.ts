/**
 * Deno (since 2.9.2) opens its inspector on 127.0.0.1:9229 when the
 * process gets SIGUSR1, as Node does: a debugger anyone on this host can
 * connect to, no token asked, and run code in as the service's user (root,
 * to run jobs as others). A stray `kill -USR1` (a logrotate `postrotate`
 * written for another daemon, a `pkill -USR1 -f job`) would hand the host
 * over. Every command (the service, `logs --follow`, …) ignores SIGUSR1 instead: Deno installs its handler half
 * a second after the start, so the signal is set ignored once that handler
 * is seen (or after IGNORE_WAIT_MS, where none comes). Between Deno's
 * handler and the next look the signal would open the inspector, so looks
 * are CLOSE_LOOK_MS apart around the time it comes. Runs start with
 * every signal at its default all the same (native_spawn.ts,
 * inheritance.ts `signalReset`).
 */

const SYMBOLS = {
  signal: { parameters: ["i32", "pointer"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

const SIGUSR1 = 10;
const SIG_IGN = 1n;
/** How often to look whether Deno's handler is in place yet, far from when it comes. */
const LOOK_MS = 100;
/** How often while it may come: the longest it is in place unseen, the event loop free. */
const CLOSE_LOOK_MS = 2;
/** When Deno's may come, ms after the runtime's start: at 500 ms, later in a busy start. */
const CLOSE_FROM_MS = 400;
const CLOSE_UNTIL_MS = 1_500;
/** Deno's comes at 500 ms; a build without it leaves the signal ignored from the first look. */
const IGNORE_WAIT_MS = 10_000;

/** The wait before the next look, `ageMs` after the runtime's start. */
export function nextLookIn(ageMs: number): number {
  if (ageMs < CLOSE_FROM_MS) return Math.min(LOOK_MS, CLOSE_FROM_MS - ageMs);
  return ageMs < CLOSE_UNTIL_MS ? CLOSE_LOOK_MS : LOOK_MS;
}

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
    // performance.now() counts from the runtime's start, as Deno's delay does.
    Deno.unrefTimer(setTimeout(look, nextLookIn(performance.now())));
  };
  look();
}
