/**
 * Runs one command: `/bin/sh -c COMMAND` in a session and process group of
 * its own, stdin from /dev/null (or a notification hook's JSON), output
 * captured head-and-tail. A service's runs start natively
 * (native_spawn.ts): glibc's posix_spawn makes the session between its
 * vfork and the shell's exec, so the group exists before the command runs,
 * at no cost beyond a plain spawn's. Elsewhere (no glibc ≥ 2.29, a hook's
 * stdin, `job run --here`), the group comes from util-linux's `setsid`,
 * which the child execs before the shell: a third of a short run's CPU.
 * Deno's `detached` would make it too, but makes Deno fork the whole
 * service (page tables of hundreds of MiB) for each run, where a plain
 * spawn is a vfork: at 150 MiB of heap, 40 runs/s instead of 420. Only
 * where `setsid` is missing is `detached` used. A `standalone` run (`job
 * run --here`: no guard watches it) runs under util-linux's `setpriv
 * --pdeathsig KILL` too, so the kernel kills the shell if this process
 * dies first; the service's runs have the guard instead (run_guard.ts),
 * which kills their whole groups, and spare that exec.
 * On timeout the whole group gets SIGTERM, then SIGKILL after the grace;
 * when the shell exits, whatever it left behind is ended the same way:
 * what stayed in its group, and what left the group (setsid, a double
 * fork) but carries the run's marker (processes.ts). What left the group
 * is named in the run's note, with its pids, so no orphan outlives its run
 * unseen.
 */
import type { RunUpdate } from "../domain/run.ts";
import { HeadTailCapture, MarkedCapture } from "./capture.ts";
import {
  type ChildStatus,
  commandStatus,
  type NativeChild,
  nativeSpawner,
  withProcessLimitHint,
} from "./native_spawn.ts";
import { closeInheritedOnExec, signalReset } from "./inheritance.ts";
import {
  type Account,
  accountExpired,
  CWD_REFUSED_EXIT,
  cwdRefusedNote,
  envForAnotherUser,
  inCwd,
  inHome,
  lookUpAccount,
  refusalMark,
  type RunAs,
  runAsPlan,
  type ServiceIdentity,
  thisService,
} from "./run_as.ts";
import {
  bootTicks,
  type Ended,
  endedState,
  endEscapedLater,
  endRun,
  MARKER_VARIABLE,
  named,
  newMarker,
  type RunProcess,
  signalGroup,
  signalRun,
  statFields,
} from "./processes.ts";

export interface RunSpec {
  command: string;
  /** The environment of the child, over `baseEnv`. */
  env: Record<string, string>;
  /**
   * Inherited variables `env` goes over (a lane's base: the service's
   * environment), merged once, at the spawn: the two copies a lane made
   * of them per run were 8.5 % of what a service at 100 runs a second
   * allocated.
   */
  baseEnv?: Record<string, string>;
  cwd?: string;
  /**
   * The job's `user`, with its id for the note of a run that cannot run
   * as them (run_as.ts); none: the service's own user. `account`: as found
   * off the thread that starts runs (a lane's AccountLookups); undefined,
   * the spawn looks it up, holding its thread while NSS answers.
   */
  user?: { job: string; name: string; account?: Account | null };
  /** 0 = no timeout. */
  timeoutMs: number;
  killGraceMs: number;
  /** Bytes kept of stdout and of stderr each. */
  outputCap: number;
  /** Strings replaced by `***` in the output kept (the database password). */
  secrets?: readonly string[];
  /** Written to the command's stdin, then closed (a notification hook's JSON); none = /dev/null. */
  stdin?: string;
  /**
   * Each chunk of output as it comes, besides what is kept (`job run --here`
   * shows it live). The chunk is only valid during the call.
   */
  onOutput?: (stream: "stdout" | "stderr", chunk: Uint8Array) => void;
  /**
   * The only run of this process (`job run --here`): no guard watches it,
   * so the kernel kills its shell if this process dies (`setpriv
   * --pdeathsig`); and no other run ends with it, so what left its group
   * is looked for at once, and named in `done`'s note.
   */
  standalone?: boolean;
  /**
   * Its JM_RUN_MARKER, when the caller recorded it before the start (the
   * service, with the claim); else a new one.
   */
  marker?: string;
}

export type Outcome = "success" | "failed" | "timeout" | "killed" | "interrupted" | "error";

export interface RunResult {
  status: Outcome;
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  startedAt: number;
  finishedAt: number;
  /** Bytes the command wrote to stdout and stderr, kept or not. */
  outputBytes: number;
  /** Why it ended as it did, when that needs saying (spawn errors, kills). */
  note: string | null;
}

export interface RunHandle extends Started {
  readonly done: Promise<RunResult>;
  /**
   * Processes that had left the run's group, with their output elsewhere,
   * are looked for shortly after its end, with those of the runs that end
   * meanwhile (one pass over /proc for all): ended as leftovers are, and
   * named here, for the run's note. Null when there were none, or when
   * `done`'s note already names them.
   */
  readonly escaped: Promise<string | null>;
  /**
   * End the run now: TERM the group, KILL after the grace. `why` ends the
   * note's "killed: " (by default, the service was shutting down).
   */
  interrupt(why?: string): void;
}

/** A run's process as it started. */
export interface Started {
  /** When the child process started (ms). */
  readonly startedAt: number;
  /** The shell's pid, which is its process group's id; null when it could not start. */
  readonly pid: number | null;
  /** The run's marker (JM_RUN_MARKER in its environment); null when nothing started. */
  readonly marker: string | null;
}

/**
 * A run handed to a runner that starts it in its own time (another
 * thread, run_pool.ts): the service hears when it started, or that it
 * came too late to.
 */
export interface Launch {
  /** The process started; `Late` when it would have started after `startBy`, and did not. */
  readonly started: Promise<Started | Late>;
  /** The run's end; never settles for a run that did not start. */
  readonly done: Promise<RunResult>;
  /** As RunHandle's. */
  readonly escaped: Promise<string | null>;
  /** As RunHandle's; a run not started yet never starts, and ends `interrupted`. */
  interrupt(): void;
}

/**
 * A run the runner got to after its `startBy`, which did not start:
 * `heldBy` says what held it there when it was not the runs started
 * before it (the lookup of its user's account); null when it was.
 */
export interface Late {
  readonly late: true;
  readonly heldBy: string | null;
}

/**
 * What a service's runs may ask: no live output, never standalone; `env`
 * holds the run's own variables, which the runner sets over the
 * environment every run starts from (given to it once, not with each run).
 */
export type LaunchSpec = Omit<RunSpec, "onOutput" | "standalone">;

export interface LaunchOptions {
  /** The service's clock: the times reported are on it. */
  now: () => number;
  /** The latest time (on `now`) the process may start: its fire's grace; Infinity = any time. */
  startBy: number;
  /**
   * The run's shell, armed ahead with this spec (JM_RUN_ID aside, which
   * the release gives it): released, not started anew.
   */
  armed?: Armed;
}

/** Starts a service's runs: a RunPool's `launch`, or a test's fake runner. */
export type StartRun = (spec: LaunchSpec, o: LaunchOptions) => Launch;

/**
 * A run's shell started ahead of its fire (see ArmedShell), before the
 * fire is claimed: given to StartRun with its run, or disarmed (the claim
 * went to another node, the job changed, the fire was skipped).
 */
export interface Armed {
  /** It will not run: its shell exits. Once released or disarmed, nothing. */
  disarm(): void;
}

/** Arms a run's shell: a RunPool's `arm`, or a test's fake runner. */
export type ArmRun = (spec: LaunchSpec) => Armed;

/** The result of a run whose process never ran to its end where it could be watched, at `at`. */
export function unwatched(status: Outcome, at: number, note: string): RunResult {
  return {
    status,
    exitCode: null,
    signal: null,
    stdout: "",
    stderr: "",
    startedAt: at,
    finishedAt: at,
    outputBytes: 0,
    note,
  };
}

/**
 * The run record's columns for a finished run. `claimNote` (why the run
 * exists: coalesced, forced, --here) is kept, joined with the runner's.
 */
export function finishedRecord(result: RunResult, claimNote: string | null): RunUpdate {
  return {
    status: result.status,
    started_at: result.startedAt,
    finished_at: result.finishedAt,
    exit_code: result.exitCode,
    signal: result.signal,
    stdout: result.stdout,
    stderr: result.stderr,
    note: [claimNote, result.note].filter((n) => n !== null).join("; ") || null,
  };
}

/**
 * The environment of one run: inherited + the job's own + who and when.
 * A run that started while the database was away has no id yet (its row
 * is written when the database is back): its JM_RUN_ID is empty, and
 * JM_JOB_ID with JM_SCHEDULED_AT name its row.
 */
export function runEnv(
  base: Record<string, string>,
  job: { id: string; env: Record<string, string> },
  runId: number,
  scheduledAt: number,
): Record<string, string> {
  return {
    ...base,
    ...job.env,
    JM_JOB_ID: job.id,
    JM_RUN_ID: runId > 0 ? String(runId) : "",
    JM_SCHEDULED_AT: new Date(scheduledAt).toISOString(),
  };
}

/** How long output may stay open after the group's SIGKILL. */
const OUTPUT_LINGER_MS = 1000;
/**
 * How long, after the shell's exit, its output may take to close before
 * something outside its group is taken to hold it open.
 */
const OUTPUT_SETTLE_MS = 50;

/**
 * The runs' timeouts (and waits for their output to close), in one timer
 * for all: a run costs an entry in a set, not a timer of its own
 * (hundreds start each second). A timeout fires within `TICK_MS` after
 * its due time.
 */
class Timeouts {
  private readonly slots = new Map<number, Set<() => void>>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private next = 0;

  add(ms: number, fire: () => void): [number, () => void] {
    // Monotonic: a clock set back must not put a timeout out of reach.
    const slot = Math.ceil((performance.now() + ms) / TICK_MS);
    let due = this.slots.get(slot);
    if (due === undefined) this.slots.set(slot, due = new Set());
    due.add(fire);
    if (this.timer === undefined) {
      this.next = Math.floor(performance.now() / TICK_MS);
      this.timer = setInterval(() => this.tick(), TICK_MS);
    }
    return [slot, fire];
  }

  remove([slot, fire]: [number, () => void]): void {
    const due = this.slots.get(slot);
    due?.delete(fire);
    if (due?.size === 0) this.slots.delete(slot);
    if (this.slots.size === 0) this.stop();
  }

  private tick(): void {
    // Slots up to now, including those a stalled loop skipped.
    const now = Math.floor(performance.now() / TICK_MS);
    for (; this.next <= now; this.next++) {
      const due = this.slots.get(this.next);
      if (due === undefined) continue;
      this.slots.delete(this.next);
      for (const fire of due) fire();
    }
    if (this.slots.size === 0) this.stop();
  }

  private stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

const TICK_MS = 100;
const timeouts = new Timeouts();

/** Whether `promise` settles within about `ms` (on the timeouts' timer). */
function settles(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const entry = timeouts.add(ms, () => resolve(false));
    const settled = () => {
      timeouts.remove(entry);
      resolve(true);
    };
    promise.then(settled, settled);
  });
}

/**
 * Escaped processes a run's note names; the rest are counted. A command
 * that leaves thousands would otherwise make a note longer than its column
 * holds (and each is in the log when it is ended).
 */
const ESCAPED_NAMED = 20;

/**
 * The note of a run whose processes left its group: which, with their
 * pids, and how they were ended.
 */
function escapedNote(
  ended: Ended,
  graceMs: number,
  secrets: readonly string[] | undefined,
): string | null {
  const { escaped } = ended;
  if (escaped.length === 0) return null;
  const first = escaped.slice(0, ESCAPED_NAMED).map((p) => named(p, secrets)).join(", ");
  const list = escaped.length > ESCAPED_NAMED
    ? `${first} and ${escaped.length - ESCAPED_NAMED} more`
    : first;
  const count = escaped.length === 1 ? "1 process" : `${escaped.length} processes`;
  const pids = escaped.length === 1 ? "pid" : "pids";
  return `${count} had left the run's process group and still ran after it: ${pids} ${list}; ended with ${
    ended.killed ? `SIGKILL after ${graceMs / 1000} s of SIGTERM` : "SIGTERM"
  }`;
}

const tools = new Map<string, string | null>();

/** A util-linux tool (`setsid`, `setpriv`) where installed (it is on Debian and most Linux systems). */
function tool(name: string): string | null {
  if (!tools.has(name)) {
    tools.set(
      name,
      [`/usr/bin/${name}`, `/bin/${name}`].find((path) => {
        try {
          return Deno.statSync(path).isFile;
        } catch {
          return false;
        }
      }) ?? null,
    );
  }
  return tools.get(name)!;
}

let dash: boolean | undefined;

/** /bin/sh is dash (Debian's and Ubuntu's), which has no locale of its own; looked up at the first run. */
function shIsDash(): boolean {
  if (dash === undefined) {
    try {
      dash = /\/dash$/.test(Deno.realPathSync("/bin/sh"));
    } catch {
      dash = false;
    }
  }
  return dash;
}

/**
 * Longest command (UTF-16 units, up to 3 bytes each) that takes the C
 * locale's prefix: far inside Linux's 128 KiB for one argument.
 */
const C_LOCALE_MAX_COMMAND = 32_768;

/**
 * The program, arguments and environment that run `command` in a group of
 * its own, with every signal at its default (inheritance.ts), and whether
 * Deno must make that group. util-linux's tools (and GNU env) set
 * their locale first thing: in a UTF-8 locale without a locale archive
 * (Debian's default) that reads a dozen files, a fifth of setsid's CPU,
 * before the shell's exec. Where the run's environment leaves LC_ALL unset
 * and the shell is dash, they get LC_ALL=C (built in, nothing read) and the
 * shell unsets it before anything else, so the command sees the
 * environment it was given. Not for bash as sh: it parses the command's
 * first line before the unset, and `$'\u…'` there would come out in ASCII.
 */
function shell(
  command: string,
  standalone: boolean,
  env: Record<string, string>,
  asUser: readonly string[],
): [string, string[], Record<string, string>, boolean] {
  const setsid = tool("setsid");
  const setpriv = standalone ? tool("setpriv") : null;
  const reset = signalReset();
  const cLocale = (setsid !== null || setpriv !== null || reset.length > 0) && shIsDash() &&
    env.LC_ALL === undefined && command.length <= C_LOCALE_MAX_COMMAND;
  const script = cLocale ? `unset LC_ALL; ${command}` : command;
  const sh = [...reset, "/bin/sh", "-c", script];
  const grouped = setsid === null ? sh : [setsid, "--", ...sh];
  // The parent-death signal survives the execs of setsid and the shell.
  const watched = setpriv === null ? grouped : [setpriv, "--pdeathsig", "KILL", "--", ...grouped];
  // The user's switch first: a change of uid clears the parent-death signal set before it.
  const argv = [...asUser, ...watched];
  return [argv[0], argv.slice(1), cLocale ? { ...env, LC_ALL: "C" } : env, setsid === null];
}

/**
 * Whether a run's shell `pid` has ended though its end is not heard yet:
 * a zombie or dead (`endedState`), or gone from a /proc that shows this process (`Deno.Command`
 * reaps its children off this thread, before the status reaches it).
 */
function endedUnheard(pid: number): boolean {
  const fields = statFields(pid);
  return fields === null ? statFields(Deno.pid) !== null : endedState(fields[0]);
}

/** Process `pid` leads its process group (where there is no /proc, it is taken to). */
function leadsItsGroup(pid: number): boolean {
  const fields = statFields(pid);
  return fields === null || Number(fields[2]) === pid;
}

/**
 * Bytes read from a pipe at a time: one buffer per stream, reused for
 * every read; small for the many runs that print little, doubled each time
 * a read fills it, up to a pipe's capacity, for those that print a lot.
 */
const READ_BUFFER = 4096;
const READ_BUFFER_MAX = 65_536;

/** Read a stream into a capture until it ends or `stop` aborts. */
async function drain(
  stream: ReadableStream<Uint8Array>,
  into: HeadTailCapture,
  stop: AbortSignal,
  onChunk?: (chunk: Uint8Array) => void,
): Promise<void> {
  // A reader of our own buffer: the default one allocates 64 KiB for each read.
  const reader = stream.getReader({ mode: "byob" });
  const cancel = () => reader.cancel().catch(() => {});
  stop.addEventListener("abort", cancel, { once: true });
  let buffer = new Uint8Array(READ_BUFFER);
  try {
    for (;;) {
      const { done, value } = await reader.read(buffer);
      if (done || value === undefined) return;
      into.push(value);
      onChunk?.(value);
      const full = value.length === value.buffer.byteLength;
      buffer = full && value.length < READ_BUFFER_MAX
        ? new Uint8Array(2 * value.length)
        : new Uint8Array(value.buffer);
    }
  } catch {
    // Cancelled: the caller stopped waiting for the end of the output.
  } finally {
    stop.removeEventListener("abort", cancel);
  }
}

/** A run's child process, started natively (native_spawn.ts) or with `Deno.Command`. */
type RunChild = NativeChild;

/** A `Deno.Command` child as a RunChild. */
function commandChild(child: Deno.ChildProcess, stdin: boolean): RunChild {
  let reading = false;
  return {
    pid: child.pid,
    status: commandStatus(child),
    readOutput: (stdout, stderr, stop, onOutput) => {
      reading = true;
      return Promise.all([
        drain(child.stdout, stdout, stop, onOutput?.bind(null, "stdout")),
        drain(child.stderr, stderr, stop, onOutput?.bind(null, "stderr")),
      ]).then(() => {});
    },
    kill: (signal) => child.kill(signal),
    // A command that exits without reading it all ends the write (a broken pipe): no matter.
    feed: (bytes) => ReadableStream.from([bytes]).pipeTo(child.stdin).catch(() => {}),
    drop: () => {
      if (stdin) child.stdin.close().catch(() => {});
      if (reading) return;
      child.stdout.cancel().catch(() => {});
      child.stderr.cancel().catch(() => {});
    },
  };
}

/** A child process of a run's shell, or why it could not start. */
type Spawned =
  /**
   * `grouped`: it led its group from the start (else setsid makes it
   * just after); `since`: boot ticks (processes.ts `bootTicks`) before it
   * started; `mark`: what its stderr begins with when its user's shell
   * could not enter its cwd (run_as.ts inCwd), null for a run without both;
   * `account`: the account of its user, as judged; null for a run without one.
   */
  | {
    child: RunChild;
    grouped: boolean;
    since: number;
    mark: string | null;
    account: Account | null;
  }
  | { error: string };

/**
 * How long this thread's recent spawns held it, in ms: a moving average
 * over a few dozen. Before it has any, a slow machine's: a burst just
 * after the start is then armed early enough wherever it runs.
 */
let spawnMs = 6;

/** How long a spawn holds the thread that makes it, in ms. */
export function spawnCost(): number {
  return spawnMs;
}

/** This service's identity, found at its first run with a user: it does not change. */
let service: ServiceIdentity | undefined;

/**
 * Spawn a run's shell running `script`. Its stdin is /dev/null, or a pipe
 * for `feed`: `text` (a hook's JSON: any length), or `line` (an armed
 * shell's run id). A service's runs start natively where they can; a
 * standalone run needs setpriv's exec, and a text may not fit a pipe at
 * once: those start with `Deno.Command`. `at`: when the run would start,
 * for its user's account to be judged then (an expiry comes at midnight).
 */
function spawnShell(
  spec: RunSpec,
  script: string,
  marker: string,
  stdin: "null" | "line" | "text",
  at: number,
): Spawned {
  let as: RunAs | null = null;
  let account: Account | null = null;
  if (spec.user !== undefined) {
    try {
      account = spec.user.account === undefined ? lookUpAccount(spec.user.name) : spec.user.account;
      service ??= thisService(tool("setpriv"));
      const plan = runAsPlan(spec.user.job, spec.user.name, account, service, at);
      if ("error" in plan) return plan;
      as = plan;
    } catch (error) {
      return {
        error: `could not look up the account of user '${spec.user.name}': ${
          (error as Error).message
        }`,
      };
    }
  }
  // Another user is given no more of the service's environment than cron gives: its secrets stay its own.
  const base = as !== null && as.prefix.length > 0
    ? envForAnotherUser(spec.baseEnv ?? {})
    : spec.baseEnv;
  // The user's HOME, LOGNAME and USER under the job's own env, which may set them, as a crontab may.
  const env = { ...base, ...as?.env, ...spec.env, [MARKER_VARIABLE]: marker };
  // A user's shell enters the cwd (or the home) itself: the spawn's chdir would be the service's.
  let body = script;
  let mark: string | null = null;
  if (spec.user !== undefined && as !== null) {
    if (spec.cwd === undefined) body = inHome(script);
    else {
      mark = refusalMark();
      body = inCwd(spec.user.job, spec.user.name, spec.cwd, script, mark);
    }
  }
  // The spawn enters the cwd as the service all the same: one that is not there is told as for
  // any run (an error, "no such"), not as the user's want of permission; the command runs only
  // once the user's shell has entered it again.
  const cwd = spec.cwd;
  const asUser = as?.prefix ?? [];
  const since = bootTicks();
  const t0 = performance.now();
  const spawned = (child: RunChild, grouped: boolean): Spawned => {
    const took = performance.now() - t0;
    spawnMs += (took - spawnMs) / 32;
    return { child, grouped, since, mark, account };
  };
  const native = spec.standalone || stdin === "text" ? null : nativeSpawner();
  try {
    if (native !== null) {
      const argv = [...asUser, "/bin/sh", "-c", body];
      const child = native.spawn({
        program: argv[0],
        args: argv.slice(1),
        env,
        cwd,
        stdin: stdin === "null" ? "null" : "piped",
      });
      return spawned(child, true);
    }
    const [program, args, shellEnv, detached] = shell(
      body,
      spec.standalone ?? false,
      env,
      asUser,
    );
    closeInheritedOnExec();
    const child = new Deno.Command(program, {
      args,
      detached,
      env: shellEnv,
      clearEnv: true,
      cwd,
      stdin: stdin === "null" ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    return spawned(commandChild(child, stdin !== "null"), detached);
  } catch (error) {
    // Deno.Command's fork says EAGAIN as libc does, and no more.
    return {
      error: `could not start the command: ${withProcessLimitHint((error as Error).message)}`,
    };
  }
}

/** A run that never started: `error`, saying why. */
function notStarted(note: string, now: () => number): RunHandle {
  const startedAt = now();
  return {
    startedAt,
    pid: null,
    marker: null,
    interrupt: () => {},
    escaped: Promise.resolve(null),
    done: Promise.resolve(unwatched("error", startedAt, note)),
  };
}

/** Start a run. Never throws: a command that cannot start resolves as `error`. */
export function startRun(spec: RunSpec, now: () => number = Date.now): RunHandle {
  const marker = spec.marker ?? newMarker();
  const spawned = spawnShell(
    spec,
    spec.command,
    marker,
    spec.stdin === undefined ? "null" : "text",
    now(),
  );
  if ("error" in spawned) return notStarted(spawned.error, now);
  const { child } = spawned;
  const feeding = spec.stdin === undefined
    ? Promise.resolve()
    : child.feed(new TextEncoder().encode(spec.stdin));
  // The child exists from here: this is when the run started.
  return watchRun(spawned, spec, marker, now(), feeding, now);
}

/**
 * A run's shell started ahead of its fire, waiting on its stdin: the
 * costly part of a start (the fork, setsid's and the shell's exec) is paid
 * before the instant, and the start itself is a write to a pipe: a
 * hundred runs due at one instant start within a few milliseconds, not
 * one after another. The shell reads the run's id (JM_RUN_ID), points its
 * stdin at /dev/null and runs the command as `startRun` would; when its
 * stdin closes unread (disarmed, or this process died) it exits, having
 * run nothing.
 */
export interface ArmedShell {
  /** The shell's process, which leads the run's group. */
  readonly pid: number;
  /** The run's marker (its JM_RUN_MARKER), which its processes inherit. */
  readonly marker: string;
  /**
   * Let the shell run the command now, as run `runId` (its JM_RUN_ID):
   * one write to its pipe and nothing more, so that the runs of an instant
   * all go before any is watched (the children they let go compete for
   * the CPU with the thread). False when the shell is gone, its cwd
   * names another `directory` now than when it was armed (see armRun), or
   * the account of its user has expired since (a fire at midnight).
   */
  go(runId: string, directory?: string | null): boolean;
  /**
   * Watch the run `go` started (started now, if not yet, in `directory`,
   * as `go`); its timeout, output cap and secrets count from then. The
   * command, environment and cwd are those it was armed with. Where the
   * waiting shell was gone, its cwd names another directory now, or its
   * user's account has expired since, the run starts as `startRun` starts
   * it (which refuses an expired account's).
   */
  release(spec: RunSpec, now?: () => number, directory?: string | null): RunHandle;
  /** It will not run: its shell exits. */
  disarm(): void;
}

/** Exit status of a waiting shell whose stdin closed before a release. */
const DISARMED_EXIT = 125;

/**
 * Arm a run's shell (see ArmedShell); null when it cannot start: the run
 * then starts as usual. `directory`: which directory its cwd named before
 * (directory_check.ts), none without a cwd; a deploy that switches a
 * symbolic link meanwhile is seen at the release, which then starts anew.
 */
export function armRun(spec: RunSpec, directory: string | null = null): ArmedShell | null {
  const marker = spec.marker ?? newMarker();
  // On the command's first line: its line numbers (errors, $LINENO) are a
  // plain shell's, and a syntax error on that line ends the shell at once,
  // so that the release starts the run anew, which reports it as ever.
  const script =
    `IFS= read -r JM_RUN_ID || exit ${DISARMED_EXIT}; exec </dev/null; export JM_RUN_ID; ${spec.command}`;
  const spawned = spawnShell(spec, script, marker, "line", Date.now());
  if ("error" in spawned) return null;
  const { child, account } = spawned;
  let gone = false;
  child.status.then(() => gone = true);
  const drop = () => child.drop();
  let used = false;
  const use = () => {
    if (used) throw new Error("an armed run's shell was released or disarmed already");
    used = true;
  };
  let went: { at: number; feeding: Promise<void> } | null = null;
  const go = (runId: string, now: () => number, inDirectory: string | null) => {
    // An account judged before midnight may have expired since: started anew, its run is refused.
    const expired = account !== null && accountExpired(account, now()) !== null;
    if (went === null && !gone && inDirectory === directory && !expired) {
      const line = new TextEncoder().encode(`${runId}\n`);
      // The shell may be gone by the write: its end is then the run's, read as any other.
      went = { at: now(), feeding: child.feed(line) };
    }
    return went !== null;
  };
  return {
    pid: child.pid,
    marker,
    go: (runId, at = null) => go(runId, Date.now, at),
    release: (run, now = Date.now, at = null) => {
      use();
      if (!go(run.env.JM_RUN_ID ?? "", now, at)) {
        drop();
        // Started anew as the same user, by the account found for the arm.
        const user = run.user?.name === spec.user?.name ? spec.user : run.user;
        return startRun({ ...run, user, marker }, now);
      }
      return watchRun(spawned, run, marker, went!.at, went!.feeding, now);
    },
    disarm: () => {
      use();
      drop();
    },
  };
}

/**
 * The note of a run as a user whose shell could not enter its cwd: its
 * stderr began with the shell's mark (run_as.ts inCwd); else null.
 */
function refusedCwd(
  spec: RunSpec,
  status: ChildStatus,
  stderr: HeadTailCapture,
): string | null {
  if (
    spec.user === undefined || spec.cwd === undefined || status.code !== CWD_REFUSED_EXIT ||
    !(stderr instanceof MarkedCapture && stderr.marked)
  ) {
    return null;
  }
  return cwdRefusedNote(spec.user.job, spec.user.name, spec.cwd);
}

/**
 * Watch a run's started shell to its end: its output, its timeout, what
 * it leaves behind. `feeding` settles once its stdin is written.
 */
function watchRun(
  { child, grouped, since, mark }: Extract<Spawned, { child: RunChild }>,
  spec: RunSpec,
  marker: string,
  startedAt: number,
  feeding: Promise<void>,
  now: () => number,
): RunHandle {
  const pgid = child.pid;
  // The groups its escaped processes lead, and its processes, learned by the timeout's signals,
  // kept for its end.
  const run = {
    pgid,
    marker,
    ownGroup: true,
    since,
    groups: new Set<number>(),
    seen: new Map<number, RunProcess>(),
  };
  const stdout = new HeadTailCapture(spec.outputCap);
  const live = spec.onOutput;
  const stderr = mark === null ? new HeadTailCapture(spec.outputCap) : new MarkedCapture(
    spec.outputCap,
    new TextEncoder().encode(mark),
    live && ((chunk) => live("stderr", chunk)),
  );
  // A marked stderr is shown as its capture keeps it, without the mark.
  const onOutput = live === undefined || mark === null
    ? live
    : (stream: "stdout" | "stderr", chunk: Uint8Array) => {
      if (stream === "stdout") live(stream, chunk);
    };
  let endedBy: "timeout" | "interrupted" | null = null;
  let interruptedWhy = "the service was shutting down";
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  // What left the group that a timeout's or an interrupt's signals reached:
  // `endRun`, started once the shell has ended, may find them gone already,
  // ended by that SIGTERM, or by the kill timer's SIGKILL (`escapedKilled`).
  const reached = new Map<number, RunProcess>();
  let signalled: Promise<void> = Promise.resolve();
  let escapedKilled = false;
  const outside = (found: RunProcess[]) => {
    const escaped = found.filter((p) => p.pgid !== pgid);
    for (const p of escaped) reached.set(p.pid, p);
    return escaped.length > 0;
  };

  let exited = false;
  const terminate = (reason: "timeout" | "interrupted") => {
    // Once the shell has ended, the run ended by itself: what it left is
    // ended as for any run, and the run keeps its own exit. (An interrupt
    // at shutdown just after it recorded it `interrupted`, and armed a
    // SIGKILL for a group that was gone.)
    if (endedBy !== null || exited || endedUnheard(pgid)) return;
    endedBy = reason;
    // Just after the spawn, setsid may not have made the run's group yet:
    // the child, about to exec the shell, is then all there is of the run.
    if (!grouped && !leadsItsGroup(pgid)) {
      try {
        child.kill("SIGTERM");
      } catch {
        // It has just ended.
      }
    }
    signalled = signalRun(run, "SIGTERM").then(outside, () => false).then(() => {});
    killTimer = setTimeout(() => {
      signalled = signalled.then(() => signalRun(run, "SIGKILL")).then(
        (hit) => {
          if (outside(hit)) escapedKilled = true;
        },
        () => {},
      );
    }, spec.killGraceMs);
  };
  const timeout = spec.timeoutMs > 0
    ? timeouts.add(spec.timeoutMs, () => terminate("timeout"))
    : undefined;

  const notes = (...parts: (string | null)[]) => parts.filter((n) => n !== null).join("; ") || null;
  const result = (status: ChildStatus, escaped: string | null, unread: string | null) => {
    const base = {
      exitCode: status.signal === null ? status.code : null,
      signal: status.signal,
      stdout: stdout.text(spec.secrets),
      stderr: stderr.text(spec.secrets),
      startedAt,
      finishedAt: now(),
      outputBytes: stdout.bytes + stderr.bytes,
    };
    if (endedBy === "timeout") {
      return {
        ...base,
        status: "timeout" as const,
        note: notes(`killed after the timeout of ${spec.timeoutMs / 1000} s`, escaped, unread),
      };
    }
    if (endedBy === "interrupted") {
      return {
        ...base,
        status: "interrupted" as const,
        note: notes(`killed: ${interruptedWhy}`, escaped, unread),
      };
    }
    if (status.signal !== null) {
      return {
        ...base,
        status: "killed" as const,
        note: notes(`ended by ${status.signal}, not sent by jobsmanager`, escaped, unread),
      };
    }
    return {
      ...base,
      status: status.code === 0 ? "success" as const : "failed" as const,
      note: notes(refusedCwd(spec, status, stderr), escaped, unread),
    };
  };

  const late = Promise.withResolvers<string | null>();
  const done = (async (): Promise<RunResult> => {
    const stopReading = new AbortController();
    let drained = false;
    const output = child.readOutput(stdout, stderr, stopReading.signal, onOutput)
      .then(() => drained = true);
    const status = await child.status;
    exited = true;
    if (timeout !== undefined) timeouts.remove(timeout);
    await feeding;
    // Leftovers in the group (`cmd &`) would run on, and may hold the pipes open: end them.
    const groupLeft = signalGroup(pgid, "SIGTERM");
    if (
      !spec.standalone && endedBy === null && !groupLeft &&
      (drained || await settles(output, OUTPUT_SETTLE_MS))
    ) {
      // The common end: nothing in the group, the output closed. What left
      // the group with its output elsewhere is looked for a little later,
      // with the runs that end meanwhile, in one pass over /proc.
      endEscapedLater(run, spec.killGraceMs).then(
        (ended) => late.resolve(escapedNote(ended, spec.killGraceMs, spec.secrets)),
        () => late.resolve(null),
      );
      return result(status, null, null);
    }
    late.resolve(null);
    const leftovers = endRun(run, spec.killGraceMs, { groupSignalled: groupLeft });
    // A process no one can find or end may keep the pipes open for ever:
    // stop reading a little after the SIGKILL.
    const giveUp = setTimeout(() => stopReading.abort(), spec.killGraceMs + OUTPUT_LINGER_MS);
    await output;
    clearTimeout(giveUp);
    const ended = await leftovers;
    clearTimeout(killTimer);
    await signalled;
    const early = [...reached.values()].filter((p) => !ended.escaped.some((e) => e.pid === p.pid));
    const escaped = escapedNote(
      { ...ended, escaped: [...early, ...ended.escaped], killed: ended.killed || escapedKilled },
      spec.killGraceMs,
      spec.secrets,
    );
    const unread = stopReading.signal.aborted
      ? "stopped reading its output: a process outside its process group still held it open"
      : null;
    return result(status, escaped, unread);
  })();

  return {
    startedAt,
    pid: pgid,
    marker,
    done,
    escaped: late.promise,
    interrupt: (why) => {
      if (endedBy === null && !exited && why !== undefined) interruptedWhy = why;
      terminate("interrupted");
    },
  };
}
