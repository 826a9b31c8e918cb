/**
 * Starting a run's shell with glibc's `posix_spawn` (through Deno's FFI),
 * in a session of its own: POSIX_SPAWN_SETSID makes the session and group
 * between the vfork and the exec, where Deno's spawn can only make it with
 * a full fork of the service (`detached`) or with util-linux's `setsid`
 * exec'd first (a third of a short run's CPU). Its output is read from
 * pipes, and its end heard from a pidfd, all through one epoll set per
 * thread, waited on by one call in Deno's blocking thread pool: no
 * resource, promise or stream per run, one read buffer for all.
 *
 * Where this cannot work (not glibc ≥ 2.29, no pidfd_open before Linux
 * 5.3, FFI refused), `nativeSpawner()` is null and runner.ts spawns with
 * `Deno.Command`; where it cannot for now (no descriptor free), it is
 * tried again a while later.
 */
import { userInfo } from "node:os";
import type { HeadTailCapture } from "./capture.ts";

const SYMBOLS = {
  posix_spawn: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  posix_spawnattr_init: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_setflags: { parameters: ["buffer", "i16"], result: "i32" },
  posix_spawnattr_setsigdefault: { parameters: ["buffer", "buffer"], result: "i32" },
  posix_spawnattr_setsigmask: { parameters: ["buffer", "buffer"], result: "i32" },
  posix_spawn_file_actions_init: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_destroy: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_adddup2: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  posix_spawn_file_actions_addopen: {
    parameters: ["buffer", "i32", "buffer", "i32", "u32"],
    result: "i32",
  },
  posix_spawn_file_actions_addchdir_np: { parameters: ["buffer", "buffer"], result: "i32" },
  sigemptyset: { parameters: ["buffer"], result: "i32" },
  sigfillset: { parameters: ["buffer"], result: "i32" },
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32", nonblocking: true },
  syscall: { parameters: ["i64", "i64", "i64"], result: "i64" },
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  strerror: { parameters: ["i32"], result: "pointer" },
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The libc calls a spawner makes (a test gives one some that fail: daemon_spawn_test.ts). */
export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** glibc's; throws where it is not there, too old (addchdir_np: 2.29), or FFI is not allowed. */
export function loadLibc(): Libc {
  return Deno.dlopen("libc.so.6", SYMBOLS).symbols;
}

// Linux's, on x86-64 and arm64 alike.
const O_RDONLY = 0;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const F_SETFL = 4;
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const POSIX_SPAWN_SETSID = 0x80;
/** The same number on x86-64 and arm64. */
export const SYS_PIDFD_OPEN = 434n;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLLIN = 0x001;
/** From posix_spawn (and fork): no process could be made, for the user's or the cgroup's limit. */
const EAGAIN = 11;
const EINTR = 4;
/** Too many files open: this process's limit (RLIMIT_NOFILE), the system's. */
const EMFILE = 24;
const ENFILE = 23;
/** How long the native spawn waits to be tried again after a start refused for want of descriptors. */
const RETRY_AFTER_MS = 1000;
const WNOHANG = 1;
/** `struct epoll_event` is packed on x86-64 only. */
const EVENT_SIZE = Deno.build.arch === "x86_64" ? 12 : 16;
const EVENT_DATA = Deno.build.arch === "x86_64" ? 4 : 8;
/** Events taken from one wait. */
const EVENTS_PER_WAIT = 256;
/** Bytes read from a pipe at one readiness before the others are served (level-triggered: the rest comes next). */
const READS_PER_EVENT = 4;
const READ_BUFFER = 65_536;

/** Linux's signal numbers, for a child's end (the real-time ones: `signalName`). */
const SIGNALS: readonly (Deno.Signal | undefined)[] = [
  undefined,
  "SIGHUP",
  "SIGINT",
  "SIGQUIT",
  "SIGILL",
  "SIGTRAP",
  "SIGABRT",
  "SIGBUS",
  "SIGFPE",
  "SIGKILL",
  "SIGUSR1",
  "SIGSEGV",
  "SIGUSR2",
  "SIGPIPE",
  "SIGALRM",
  "SIGTERM",
  "SIGSTKFLT",
  "SIGCHLD",
  "SIGCONT",
  "SIGSTOP",
  "SIGTSTP",
  "SIGTTIN",
  "SIGTTOU",
  "SIGURG",
  "SIGXCPU",
  "SIGXFSZ",
  "SIGVTALRM",
  "SIGPROF",
  "SIGWINCH",
  "SIGIO",
  "SIGPWR",
  "SIGSYS",
];

/** Linux's real-time signals: glibc keeps 32 and 33 for itself, so SIGRTMIN is 34. */
const SIGRTMIN = 34;
const SIGRTMAX = 64;

/**
 * The name of signal `n`, as Linux's `kill -l` gives it (SIGTERM,
 * SIGRTMIN, SIGRTMIN+1 … SIGRTMIN+15, SIGRTMAX-14 … SIGRTMAX), which Deno
 * cannot name past 31; "SIG32" for one `kill -l` has no name for.
 */
export function signalName(n: number): string {
  const named = SIGNALS[n];
  if (named !== undefined) return named;
  if (n < SIGRTMIN || n > SIGRTMAX) return `SIG${n}`;
  if (n === SIGRTMIN) return "SIGRTMIN";
  if (n === SIGRTMAX) return "SIGRTMAX";
  // Named from the nearer end, as `kill -l` does: 49 is SIGRTMIN+15, 50 SIGRTMAX-14.
  return n - SIGRTMIN <= (SIGRTMAX - SIGRTMIN) / 2
    ? `SIGRTMIN+${n - SIGRTMIN}`
    : `SIGRTMAX-${SIGRTMAX - n}`;
}

/**
 * `child.status`, a signal Deno cannot name (a real-time one) named as any
 * other: Deno rejects it with "Invalid signal: 34" once the child is reaped,
 * the number kept in the message alone.
 */
export function commandStatus(child: Deno.ChildProcess): Promise<ChildStatus> {
  return child.status.catch((error: unknown) => {
    const number = /^Invalid signal: (\d+)$/.exec((error as Error | null)?.message ?? "")?.[1];
    if (number === undefined) throw error;
    const signal = Number(number);
    return { success: false, code: 128 + signal, signal: signalName(signal) };
  });
}

/**
 * How a child ended, as `Deno.CommandStatus` says it, but with any
 * signal named (`signalName`): Deno's names stop at 31.
 */
export interface ChildStatus {
  success: boolean;
  /** Its exit code; 128 + the signal's number when a signal ended it. */
  code: number;
  signal: string | null;
}

/** What a run's child is started with. */
export interface SpawnOptions {
  program: string;
  args: readonly string[];
  env: Record<string, string>;
  cwd?: string;
  /** A pipe to write to (`feed`), or /dev/null. */
  stdin: "piped" | "null";
}

/** A child started by `NativeSpawner.spawn`, leading a session and process group of its own. */
export interface NativeChild {
  readonly pid: number;
  readonly status: Promise<ChildStatus>;
  /**
   * Read stdout and stderr into `stdout` and `stderr` until both close
   * or `stop` aborts (then they are closed unread). Once only.
   */
  readOutput(
    stdout: HeadTailCapture,
    stderr: HeadTailCapture,
    stop: AbortSignal,
    onOutput?: (stream: "stdout" | "stderr", chunk: Uint8Array) => void,
  ): Promise<void>;
  /**
   * Write `bytes` to stdin, then close it. What does not fit the pipe now
   * is not written (a line always fits an empty pipe), nor anything once
   * the child is gone: its end says what came of it.
   */
  feed(bytes: Uint8Array): Promise<void>;
  /** Close stdin unwritten and the output unread (the child is not wanted). */
  drop(): void;
  /** Send `signal` to the child alone, unless it has been reaped (its pid may be another's by then). */
  kill(signal: Deno.Signal): void;
}

export interface NativeSpawner {
  /** Start a child; throws an Error saying why it could not. */
  spawn(o: SpawnOptions): NativeChild;
}

let spawner: NativeSpawner | null | undefined;
/** Why this thread's spawner is null. */
let unavailable = "";
/** When a spawner refused for now (no descriptor free) is tried again; null: never. */
let retryAt: number | null = null;

/** This thread's spawner; null where the native spawn cannot work here, or not for now. */
export function nativeSpawner(): NativeSpawner | null {
  if (spawner === null && retryAt !== null && Date.now() >= retryAt) spawner = undefined;
  if (spawner === undefined) spawner = openSpawner();
  return spawner;
}

/**
 * Why the native spawn cannot work here, and whether only for now (it is
 * tried again); null where it can.
 */
export function nativeSpawnMissing(): { why: string; forNow: boolean } | null {
  return nativeSpawner() === null ? { why: unavailable, forNow: retryAt !== null } : null;
}

/**
 * This thread ends on a bug: its children's stdin and output are closed
 * (no pipe stays open for a reader that is gone), their groups killed
 * (SIGKILL: a shell released just before the bug, whose start the pool
 * never heard of, is not left running unwatched), and they are reaped as
 * they end; settles once all are. The epoll set stays open until then:
 * `closeNativeSpawn` closes it.
 */
export function abandonNativeSpawn(): Promise<void> {
  return spawner instanceof Spawner ? spawner.abandon() : Promise.resolve();
}

/**
 * This thread ends (its lane closed): its children are abandoned, then
 * its epoll set closed once the wait on it has returned. Spawning again
 * opens a new one.
 */
export async function closeNativeSpawn(): Promise<void> {
  if (!(spawner instanceof Spawner)) return;
  const closing = spawner;
  spawner = undefined;
  await closing.close();
}

/**
 * Spawn with `Deno.Command` in this thread from now on, as where the
 * native spawn cannot work (runner_command_test.ts).
 */
export function forgoNativeSpawn(): void {
  spawner = null;
  unavailable = "forgone";
  retryAt = null;
}

/** Raised where a descriptor could not be made: `errno`, for the caller to tell "for now" from "never". */
class SystemError extends Error {
  constructor(message: string, readonly errno: number) {
    super(message);
  }
}

function errnoOf(libc: Libc): number {
  return new Deno.UnsafePointerView(libc.__errno_location()!).getInt32();
}

function describeErrno(libc: Libc, errno: number): string {
  const text = libc.strerror(errno);
  return `${
    text === null ? `error ${errno}` : Deno.UnsafePointerView.getCString(text)
  } (os error ${errno})${
    errno === EMFILE || errno === ENFILE
      ? `: ${
        errno === EMFILE
          ? "the service has as many files open as it may"
          : "the system has as many files open as it may"
      }; raise ${
        errno === EMFILE
          ? "its limit (LimitNOFILE= in the systemd unit, ulimit -n)"
          : "fs.file-max (sysctl)"
      }`
      : ""
  }`;
}

/**
 * What to add to a spawn's EAGAIN (`Resource temporarily unavailable`):
 * the kernel refuses a process beyond the user's RLIMIT_NPROC (its
 * threads counted) or its cgroup's pids.max, and says no more.
 */
export function processLimitHint(user = serviceUser()): string {
  return `: no process could be made: the service's user (${user}) runs as many processes and threads as it may (ulimit -u, LimitNPROC= in the systemd unit), or its cgroup as many tasks as pids.max allows (TasksMax= in the systemd unit); another job may hold them (ps -u ${user}; systemctl status jobsmanager shows Tasks:): end those, or raise the limit`;
}

/** `message`, an error of a spawn (Deno.Command's too), with `processLimitHint` where it is EAGAIN's. */
export function withProcessLimitHint(message: string): string {
  return message.endsWith(`(os error ${EAGAIN})`) ? `${message}${processLimitHint()}` : message;
}

function serviceUser(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid ${Deno.uid()}`;
  }
}

function openSpawner(): NativeSpawner | null {
  retryAt = null;
  if (Deno.build.os !== "linux") {
    unavailable = `not Linux but ${Deno.build.os}`;
    return null;
  }
  let libc: Libc;
  try {
    libc = loadLibc();
  } catch (error) {
    // Not glibc, too old a glibc (addchdir_np: 2.29), or FFI not allowed.
    unavailable = `glibc 2.29 or later is needed: ${(error as Error).message}`;
    return null;
  }
  try {
    const self = Number(libc.syscall(SYS_PIDFD_OPEN, BigInt(Deno.pid), 0n));
    if (self < 0) {
      const errno = errnoOf(libc);
      throw new SystemError(
        `pidfd_open failed: ${describeErrno(libc, errno)}${
          errno === EMFILE || errno === ENFILE
            ? ""
            : "; Linux 5.3 or later is needed, without a filter refusing it"
        }`,
        errno,
      );
    }
    libc.close(self);
    return new Spawner(libc, closeFrom());
  } catch (error) {
    if (!(error instanceof SystemError)) throw error;
    unavailable = error.message;
    if (error.errno === EMFILE || error.errno === ENFILE) {
      retryAt = Date.now() + RETRY_AFTER_MS;
      unavailable += `; tried again every ${RETRY_AFTER_MS / 1000} s`;
    }
    return null;
  }
}

/**
 * glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34 and later),
 * or null where it is missing: then only what is close-on-exec is closed.
 */
function closeFrom(): CloseFrom | null {
  try {
    return Deno.dlopen("libc.so.6", CLOSE_FROM).symbols.posix_spawn_file_actions_addclosefrom_np;
  } catch {
    return null;
  }
}

const CLOSE_FROM = {
  posix_spawn_file_actions_addclosefrom_np: { parameters: ["buffer", "i32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

type CloseFrom = Deno.DynamicLibrary<
  typeof CLOSE_FROM
>["symbols"]["posix_spawn_file_actions_addclosefrom_np"];

const encoder = new TextEncoder();

/** `text`, which a C string can hold. */
function checked(text: string): string {
  if (text.includes("\0")) throw new Error("an argument or environment variable holds a NUL byte");
  return text;
}

function cString(text: string): Uint8Array {
  return encoder.encode(`${checked(text)}\0`);
}

/**
 * Bytes from which V8 keeps a typed array's memory outside its heap (64,
 * by default), where the collector never moves it: the pointers a C array
 * holds to it stay true.
 */
const OFF_HEAP_BYTES = 128;

/**
 * `strings` as a C array (`char *[]`, NULL-ended) at the start of the
 * block, pointing to the C strings after it.
 */
function cArray(strings: readonly string[]): Uint8Array {
  const text = encoder.encode(`${strings.map(checked).join("\0")}\0`);
  const table = 8 * (strings.length + 1);
  const block = new Uint8Array(Math.max(OFF_HEAP_BYTES, table + text.length));
  block.set(text, table);
  const base = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(block)));
  const pointers = new BigUint64Array(block.buffer, 0, strings.length + 1);
  for (let i = 0, at = table; i < strings.length; i++, at = block.indexOf(0, at) + 1) {
    pointers[i] = base + BigInt(at);
  }
  return block;
}

/** The native spawn over `libc`: `nativeSpawner()`'s, once it found that it works here. */
export class Spawner implements NativeSpawner {
  private readonly attr = new Uint8Array(1024);
  private readonly devNull = cString("/dev/null");
  private readonly poller: Poller;
  private readonly buffer = new Uint8Array(READ_BUFFER);
  /** The children not reaped yet. */
  private readonly children = new Set<Child>();

  constructor(private readonly libc: Libc, private readonly closeFrom: CloseFrom | null) {
    libc.posix_spawnattr_init(this.attr);
    // No signal blocked, every one at its default: not SIGPIPE ignored, as
    // Deno has it, nor what whoever started the service ignored (`nohup`,
    // a shell's `&` ignores SIGINT and SIGQUIT).
    const none = new Uint8Array(128);
    libc.sigemptyset(none);
    const all = new Uint8Array(128);
    libc.sigfillset(all);
    libc.posix_spawnattr_setsigmask(this.attr, none);
    libc.posix_spawnattr_setsigdefault(this.attr, all);
    libc.posix_spawnattr_setflags(
      this.attr,
      POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK,
    );
    this.poller = new Poller(libc);
  }

  spawn(o: SpawnOptions): NativeChild {
    const libc = this.libc;
    const program = cString(o.program);
    const argv = cArray([o.program, ...o.args]);
    const envp = cArray(
      Object.entries(o.env).map(([name, value]) => {
        if (name === "" || name.includes("=")) {
          throw new Error(`the environment variable name ${JSON.stringify(name)} is not valid`);
        }
        return `${name}=${value}`;
      }),
    );
    const cwd = o.cwd === undefined ? null : cString(o.cwd);
    const fds = new Int32Array(6);
    const opened: number[] = [];
    const closeAll = () => opened.forEach((fd) => libc.close(fd));
    // Each pipe's end here does not block; the child's end does, as a plain spawn's.
    for (const [at, ours] of o.stdin === "piped" ? [[0, 1], [2, 2], [4, 4]] : [[2, 2], [4, 4]]) {
      if (libc.pipe2(new Uint8Array(fds.buffer, at * 4, 8), O_CLOEXEC) !== 0) {
        const why = this.error(this.errno());
        closeAll();
        throw new Error(`could not make a pipe: ${why}`);
      }
      opened.push(fds[at], fds[at + 1]);
      libc.fcntl(fds[ours], F_SETFL, O_NONBLOCK);
    }
    const actions = new Uint8Array(1024);
    libc.posix_spawn_file_actions_init(actions);
    if (o.stdin === "piped") libc.posix_spawn_file_actions_adddup2(actions, fds[0], 0);
    else libc.posix_spawn_file_actions_addopen(actions, 0, this.devNull, O_RDONLY, 0);
    libc.posix_spawn_file_actions_adddup2(actions, fds[3], 1);
    libc.posix_spawn_file_actions_adddup2(actions, fds[5], 2);
    if (cwd !== null) libc.posix_spawn_file_actions_addchdir_np(actions, cwd);
    // Descriptors the service inherited without close-on-exec (a deploy
    // script's lock, an ssh session's pipe) would stay open as long as any
    // job runs, and be the job's to use.
    this.closeFrom?.(actions, 3);
    const pid = new Int32Array(1);
    const failed = libc.posix_spawn(
      new Uint8Array(pid.buffer),
      program,
      actions,
      this.attr,
      argv,
      envp,
    );
    libc.posix_spawn_file_actions_destroy(actions);
    // The child's ends, which it holds now (or never will).
    for (const at of o.stdin === "piped" ? [0, 3, 5] : [3, 5]) libc.close(fds[at]);
    if (failed !== 0) {
      for (const at of o.stdin === "piped" ? [1, 2, 4] : [2, 4]) libc.close(fds[at]);
      const where = o.cwd === undefined ? "" : ` in ${o.cwd}`;
      throw new Error(withProcessLimitHint(`${o.program}${where}: ${this.error(failed)}`));
    }
    const pidfd = Number(libc.syscall(SYS_PIDFD_OPEN, BigInt(pid[0]), 0n));
    const child = new Child(
      libc,
      this.poller,
      this.buffer,
      pid[0],
      pidfd,
      o.stdin === "piped" ? fds[1] : -1,
      fds[2],
      fds[4],
    );
    this.children.add(child);
    child.status.then(() => this.children.delete(child));
    return child;
  }

  /** See `abandonNativeSpawn`. */
  abandon(): Promise<void> {
    this.dropChildren();
    for (const child of this.children) child.killGroup();
    return Promise.all([...this.children].map((child) => child.status)).then(() => {});
  }

  /** See `closeNativeSpawn`: children not reaped yet are not heard of any more. */
  async close(): Promise<void> {
    this.dropChildren();
    await this.poller.close();
  }

  private dropChildren(): void {
    for (const child of this.children) child.abandon();
  }

  private errno(): number {
    return errnoOf(this.libc);
  }

  private error(errno: number): string {
    return describeErrno(this.libc, errno);
  }
}

class Child implements NativeChild {
  readonly status: Promise<ChildStatus>;
  private reading = false;
  /** Set while its output is read: stops reading it. */
  private stopReading: (() => void) | null = null;
  private reaped = false;

  constructor(
    private readonly libc: Libc,
    private readonly poller: Poller,
    private readonly buffer: Uint8Array,
    readonly pid: number,
    pidfd: number,
    private stdin: number,
    private stdout: number,
    private stderr: number,
  ) {
    const ended = Promise.withResolvers<ChildStatus>();
    this.status = ended.promise;
    const reap = () => {
      const status = new Int32Array(1);
      const got = libc.waitpid(pid, new Uint8Array(status.buffer), WNOHANG);
      if (got === 0) return;
      this.reaped = true;
      poller.remove(pidfd);
      libc.close(pidfd);
      ended.resolve(decode(got === pid ? status[0] : null));
    };
    if (pidfd < 0) {
      // No pidfd (out of descriptors): its end is looked for now and then.
      const poll = setInterval(reap, 50);
      ended.promise.then(() => clearInterval(poll));
    } else {
      poller.add(pidfd, reap);
    }
  }

  readOutput(
    stdout: HeadTailCapture,
    stderr: HeadTailCapture,
    stop: AbortSignal,
    onOutput?: (stream: "stdout" | "stderr", chunk: Uint8Array) => void,
  ): Promise<void> {
    if (this.reading) throw new Error("a child's output is read once");
    this.reading = true;
    const closed = Promise.withResolvers<void>();
    let open = 2;
    const streams = [
      { name: "stdout" as const, fd: this.stdout, into: stdout },
      { name: "stderr" as const, fd: this.stderr, into: stderr },
    ];
    const close = (stream: (typeof streams)[number]) => {
      if (stream.fd < 0) return;
      this.poller.remove(stream.fd);
      this.libc.close(stream.fd);
      stream.fd = -1;
      if (--open === 0) {
        stop.removeEventListener("abort", abort);
        this.stdout = this.stderr = -1;
        closed.resolve();
      }
    };
    const abort = () => streams.forEach(close);
    stop.addEventListener("abort", abort, { once: true });
    this.stopReading = abort;
    for (const stream of streams) {
      this.poller.add(stream.fd, () => {
        for (let n = 0; n < READS_PER_EVENT; n++) {
          const got = Number(this.libc.read(stream.fd, this.buffer, BigInt(this.buffer.length)));
          if (got > 0) {
            const chunk = this.buffer.subarray(0, got);
            try {
              stream.into.push(chunk);
              onOutput?.(stream.name, chunk);
            } catch {
              // As a stream's reader would: what cannot be kept ends the reading.
              close(stream);
              return;
            }
            continue;
          }
          if (got < 0) {
            const errno = new Deno.UnsafePointerView(this.libc.__errno_location()!).getInt32();
            if (errno === EAGAIN) return;
            if (errno === EINTR) continue;
          }
          // Its end, or an error reading it: nothing more comes.
          close(stream);
          return;
        }
      });
    }
    return closed.promise;
  }

  feed(bytes: Uint8Array): Promise<void> {
    if (this.stdin >= 0) {
      this.libc.write(this.stdin, bytes, BigInt(bytes.length));
      this.libc.close(this.stdin);
      this.stdin = -1;
    }
    return Promise.resolve();
  }

  kill(signal: Deno.Signal): void {
    if (!this.reaped) Deno.kill(this.pid, signal);
  }

  drop(): void {
    // Output being read is closed by its reader.
    const unread = this.reading ? [this.stdin] : [this.stdin, this.stdout, this.stderr];
    for (const fd of unread) if (fd >= 0) this.libc.close(fd);
    this.stdin = -1;
    if (!this.reading) this.stdout = this.stderr = -1;
  }

  /** SIGKILL its group (it leads it from the start), unless it has been reaped. */
  killGroup(): void {
    if (this.reaped) return;
    try {
      Deno.kill(-this.pid, "SIGKILL");
    } catch {
      // Its group is gone: nothing is left to end.
    }
  }

  /** Not wanted any more, its output read or not (`abandonNativeSpawn`): only its end is heard. */
  abandon(): void {
    this.drop();
    this.stopReading?.();
  }
}

function decode(status: number | null): ChildStatus {
  // Reaped elsewhere: how it ended is not known.
  if (status === null) return { success: false, code: 255, signal: null };
  const signal = status & 0x7f;
  if (signal === 0) {
    const code = (status >> 8) & 0xff;
    return { success: code === 0, code, signal: null };
  }
  return { success: false, code: 128 + signal, signal: signalName(signal) };
}

/**
 * One epoll set, and the call that waits on it while anything is in it:
 * a pending call keeps the process alive, as a child's status would.
 */
class Poller {
  private readonly epoll: number;
  /** Written to wake the wait when the set is emptied from outside it. */
  private readonly wake: number;
  private readonly handlers = new Map<number, () => void>();
  private readonly events = new Uint8Array(EVENT_SIZE * EVENTS_PER_WAIT);
  private readonly view = new DataView(this.events.buffer);
  private waiting = false;
  private handling = false;
  /** Settles when the wait in progress has returned and no other is made. */
  private idle = Promise.resolve();

  constructor(private readonly libc: Libc) {
    this.epoll = libc.epoll_create1(O_CLOEXEC);
    const epollErrno = errnoOf(libc);
    this.wake = this.epoll < 0 ? -1 : libc.eventfd(0, O_CLOEXEC | O_NONBLOCK);
    if (this.wake < 0) {
      const errno = this.epoll < 0 ? epollErrno : errnoOf(libc);
      if (this.epoll >= 0) libc.close(this.epoll);
      throw new SystemError(`could not make an epoll set: ${describeErrno(libc, errno)}`, errno);
    }
    this.control(EPOLL_CTL_ADD, this.wake);
  }

  add(fd: number, ready: () => void): void {
    this.control(EPOLL_CTL_ADD, fd);
    this.handlers.set(fd, ready);
    if (!this.waiting) this.wait();
  }

  /** Close every descriptor in the set, unheard. */
  abandon(): void {
    for (const fd of [...this.handlers.keys()]) {
      this.remove(fd);
      this.libc.close(fd);
    }
  }

  remove(fd: number): void {
    if (!this.handlers.delete(fd)) return;
    this.control(EPOLL_CTL_DEL, fd);
    if (this.handlers.size === 0 && this.waiting && !this.handling) {
      this.libc.write(this.wake, new BigUint64Array([1n]), 8n);
    }
  }

  private control(op: number, fd: number): void {
    const event = new Uint8Array(EVENT_SIZE);
    const view = new DataView(event.buffer);
    view.setUint32(0, EPOLLIN, true);
    view.setUint32(EVENT_DATA, fd, true);
    this.libc.epoll_ctl(this.epoll, op, fd, event);
  }

  /** Close the set, empty (`abandon`), once the wait in progress has returned. */
  async close(): Promise<void> {
    this.abandon();
    await this.idle;
    this.libc.close(this.epoll);
    this.libc.close(this.wake);
  }

  private wait(): void {
    this.waiting = true;
    this.idle = this.loop();
  }

  private async loop(): Promise<void> {
    try {
      while (this.handlers.size > 0) {
        const count = await this.libc.epoll_wait(this.epoll, this.events, EVENTS_PER_WAIT, -1);
        this.handling = true;
        for (let i = 0; i < count; i++) {
          const fd = this.view.getUint32(i * EVENT_SIZE + EVENT_DATA, true);
          if (fd === this.wake) {
            this.libc.read(this.wake, new BigUint64Array(1), 8n);
            continue;
          }
          try {
            this.handlers.get(fd)?.();
          } catch (error) {
            // A bug: reported as an uncaught error, which fails a worker thread
            // (run_worker.ts) and, in the scheduler's thread, ends the service.
            reportError(error);
          }
        }
        this.handling = false;
      }
    } finally {
      this.handling = false;
      this.waiting = false;
    }
  }
}
