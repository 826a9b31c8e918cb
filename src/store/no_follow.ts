/**
 * Files and directories made without being led elsewhere by a symbolic
 * link, and given their owner and mode through the descriptor: libc
 * through FFI, as Deno has no O_NOFOLLOW, fchown or fchmod.
 *
 * A path is looked at once, when it is opened: a chown or chmod by path
 * after a create follows a link the directory's owner swapped in between,
 * so root running as the CLI or the service would give away, or open to
 * all, a file of that user's choosing (/etc/shadow). Through the
 * descriptor, what was made is what is changed.
 */

const SYMBOLS = {
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  mkdir: { parameters: ["buffer", "u32"], result: "i32" },
  fchown: { parameters: ["i32", "u32", "u32"], result: "i32" },
  fchmod: { parameters: ["i32", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

const O_WRONLY = 0o1;
const O_CREAT = 0o100;
const O_EXCL = 0o200;
const O_CLOEXEC = 0o2000000;
/** Their values differ between Linux's architectures (asm-generic vs x86). */
const O_DIRECTORY = Deno.build.arch === "aarch64" ? 0o40000 : 0o200000;
const O_NOFOLLOW = Deno.build.arch === "aarch64" ? 0o100000 : 0o400000;

const ENOENT = 2;
const EACCES = 13;
const EPERM = 1;
const EEXIST = 17;
const ENOTDIR = 20;
const ELOOP = 40;

let libc: Libc | null | undefined;

function loaded(): Libc | null {
  if (libc === undefined) {
    try {
      libc = Deno.build.os === "linux" ? Deno.dlopen("libc.so.6", SYMBOLS).symbols : null;
    } catch {
      // Not glibc, or FFI not allowed.
      libc = null;
    }
  }
  return libc;
}

function cString(path: string): Uint8Array {
  if (path.includes("\0")) throw new Error(`${JSON.stringify(path)} holds a NUL byte`);
  return new TextEncoder().encode(`${path}\0`);
}

function errno(c: Libc): number {
  return new Deno.UnsafePointerView(c.__errno_location()!).getInt32();
}

/** Device and inode: what a path names, to compare with what it names later. */
export type Identity = string;

export function identityOf(info: Deno.FileInfo): Identity {
  return `${info.dev}:${info.ino}`;
}

/** The file an open descriptor of this process refers to, whatever its path names now. */
function described(fd: number): Deno.FileInfo {
  return Deno.statSync(`/proc/self/fd/${fd}`);
}

/** libc's error as Deno says its own (`Read-only file system (os error 30): open '…'`), of its kind. */
function failed(c: Libc, call: string, path: string): Error {
  const code = errno(c);
  const text = c.strerror(code);
  const message = `${
    text === null ? "error" : new Deno.UnsafePointerView(text).getCString()
  } (os error ${code}): ${call} '${path}'`;
  const Kind = {
    [ENOENT]: Deno.errors.NotFound,
    [EACCES]: Deno.errors.PermissionDenied,
    [EPERM]: Deno.errors.PermissionDenied,
    [EEXIST]: Deno.errors.AlreadyExists,
    [ENOTDIR]: Deno.errors.NotADirectory,
    [ELOOP]: Deno.errors.FilesystemLoop,
  }[code] ?? Error;
  return new Kind(message);
}

/**
 * Create the regular file `path`, which must not exist (nor be a link,
 * even one to nothing), with exactly `mode` (the umask aside), owned by
 * `owner` when given (root only); returns its identity, and whether it
 * was given to `owner` (a refused chown leaves it this process's). Throws
 * Deno.errors.AlreadyExists when something is there. Where libc cannot be
 * called, Deno's own exclusive create (which follows no link either) and
 * no change of owner.
 */
export function createFile(
  path: string,
  mode: number,
  owner: { uid: number; gid: number } | null,
): { identity: Identity; given: boolean } {
  const c = loaded();
  if (c === null) {
    const file = Deno.openSync(path, { createNew: true, write: true, mode });
    try {
      return { identity: identityOf(file.statSync()), given: false };
    } finally {
      file.close();
    }
  }
  const fd = c.open(cString(path), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) throw failed(c, "open", path);
  try {
    if (c.fchmod(fd, mode) !== 0) throw failed(c, "fchmod", path);
    const given = owner !== null && c.fchown(fd, owner.uid, owner.gid) === 0;
    return { identity: identityOf(described(fd)), given };
  } finally {
    c.close(fd);
  }
}

/**
 * Make the directory `path` with exactly `mode` (0o1777: the umask would
 * narrow mkdir's): the mode is set through a descriptor opened with
 * O_DIRECTORY | O_NOFOLLOW, so a link swapped in for the new directory
 * makes this fail rather than change what it names, and only a directory
 * of this process's user is changed. Throws Deno.errors.AlreadyExists when
 * something is there.
 */
export function makeDirectory(path: string, mode: number): void {
  const c = loaded();
  if (c === null) {
    // No way to change a mode but by path: the umask's narrowing stays (the CLI may then not write notices).
    Deno.mkdirSync(path, { mode });
    return;
  }
  const name = cString(path);
  if (c.mkdir(name, mode) !== 0) throw failed(c, "mkdir", path);
  const fd = c.open(name, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
  if (fd < 0) throw failed(c, "open", path);
  try {
    const info = described(fd);
    if (info.uid !== Deno.uid()) {
      throw new Error(`${path} was replaced by another user's directory as it was made`);
    }
    if (c.fchmod(fd, mode) !== 0) throw failed(c, "fchmod", path);
  } finally {
    c.close(fd);
  }
}
