/**
 * The HTTP worker yields the CPU to the scheduler: on Linux each thread has
 * its own nice value, so the worker thread lowers its own priority. Under
 * API load on a busy machine the scheduler's thread then gets the CPU
 * first, and fires stay on time; the API answers a little later instead.
 */

/** The nice value of the HTTP worker thread (0 = the scheduler's, 19 = the lowest). */
export const HTTP_NICE = 10;

const SYS_GETTID: Record<string, bigint> = { x86_64: 186n, aarch64: 178n };
const PRIO_PROCESS = 0;

/**
 * Lower the calling thread's priority to HTTP_NICE. Returns why it could
 * not (not Linux, no glibc to call, not permitted), or null when done.
 */
export function lowerThreadPriority(): string | null {
  const gettid = SYS_GETTID[Deno.build.arch];
  if (Deno.build.os !== "linux" || gettid === undefined) {
    return `not on ${Deno.build.os}/${Deno.build.arch}`;
  }
  let libc;
  try {
    libc = Deno.dlopen("libc.so.6", {
      syscall: { parameters: ["i64"], result: "i64" },
      setpriority: { parameters: ["i32", "u32", "i32"], result: "i32" },
    });
  } catch (error) {
    return `libc.so.6 cannot be loaded (${(error as Error).message})`;
  }
  try {
    const tid = Number(libc.symbols.syscall(gettid));
    return libc.symbols.setpriority(PRIO_PROCESS, tid, HTTP_NICE) === 0
      ? null
      : "setpriority was refused";
  } finally {
    libc.close();
  }
}
