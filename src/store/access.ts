/**
 * Whether this process may read and write a file, asked of the kernel
 * (access(2)) without opening it. A database file must never be opened
 * and closed beside SQLite's own connection: closing any descriptor of a
 * file drops every POSIX lock the process holds on it, SQLite's included,
 * and the next connection (a CLI command) then believes itself alone and
 * deletes the WAL the service still writes into. Seen: after a full disk,
 * whose diagnosis opened the files, a corrupt database.
 */

const R_OK = 4;
const W_OK = 2;

/** Linux's error numbers, by the names the diagnosis uses. */
const NAMES: Record<number, string> = { 1: "EPERM", 2: "ENOENT", 13: "EACCES", 30: "EROFS" };

const SYMBOLS = {
  access: { parameters: ["buffer", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

let libc: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] | null | undefined;

/**
 * Why this process may not read and write `path` (the error code's name:
 * EACCES, EPERM, EROFS, ENOENT, or `errno N` for another), or null when it
 * may; undefined where it cannot be asked (not Linux with glibc, or FFI
 * not allowed).
 */
export function accessFailure(path: string): string | null | undefined {
  if (libc === undefined) {
    try {
      libc = Deno.build.os === "linux" ? Deno.dlopen("libc.so.6", SYMBOLS).symbols : null;
    } catch {
      libc = null;
    }
  }
  if (libc === null) return undefined;
  if (libc.access(new TextEncoder().encode(`${path}\0`), R_OK | W_OK) === 0) return null;
  const errno = new Deno.UnsafePointerView(libc.__errno_location()!).getInt32();
  return NAMES[errno] ?? `errno ${errno}`;
}
