/**
 * Runs one command: `/bin/sh -c COMMAND` in a process group of its own
 * (Deno's `detached` calls setsid() in the child before exec, so the group
 * exists before the command runs), stdin from /dev/null (or a notification
 * hook's JSON), output captured
 * head-and-tail. Through util-linux's `setpriv --pdeathsig KILL` where it
 * is installed, so the kernel kills the shell if the service dies first.
 * On timeout the whole group gets SIGTERM, then SIGKILL after the grace;
 * when the shell exits, whatever it left behind is ended the same way:
 * what stayed in its group, and what left the group (setsid, a double
 * fork) but carries the run's marker (processes.ts). What left the group
 * is named in the run's note, with its pids, so no orphan outlives its run
 * unseen.
 */
import type { RunUpdate } from "../domain/run.ts";
import { HeadTailCapture } from "./capture.ts";
import { redactSecrets } from "../store/target.ts";
import { type Ended, endRun, MARKER_VARIABLE, signalRun } from "./processes.ts";

export interface RunSpec {
  command: string;
  /** The complete environment of the child. */
  env: Record<string, string>;
  cwd?: string;
  /** 0 = no timeout. */
  timeoutMs: number;
  killGraceMs: number;
  /** Bytes kept of stdout and of stderr each. */
  outputCap: number;
  /** Strings replaced by `***` in the output kept (the database password). */
  secrets?: readonly string[];
  /** Written to the command's stdin, then closed (a notification hook's JSON); none = /dev/null. */
  stdin?: string;
  /** Each chunk of output as it comes, besides what is kept (`job run --here` shows it live). */
  onOutput?: (stream: "stdout" | "stderr", chunk: Uint8Array) => void;
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

export interface RunHandle {
  /** When the child process started (ms). */
  readonly startedAt: number;
  /** The shell's pid, which is its process group's id. */
  readonly pid: number | null;
  /** The run's marker (JM_RUN_MARKER in its environment); null when nothing started. */
  readonly marker: string | null;
  readonly done: Promise<RunResult>;
  /** End the run now (service shutdown): TERM the group, KILL after the grace. */
  interrupt(): void;
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

/** Variables of the service that must not reach a job: they may hold the password. */
const PRIVATE_ENV = ["JM_DB_PASSWORD", "JM_DATABASE_URL"];

/** This process's environment, minus what a job must not see. */
export function inheritedEnv(): Record<string, string> {
  const env = Deno.env.toObject();
  for (const name of PRIVATE_ENV) delete env[name];
  return env;
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
 * The note of a run whose processes left its group: which, with their
 * pids, and how they were ended.
 */
function escapedNote(ended: Ended, graceMs: number): string | null {
  const { escaped } = ended;
  if (escaped.length === 0) return null;
  const list = escaped.map((p) => `${p.pid} (${p.command})`).join(", ");
  const count = escaped.length === 1 ? "1 process" : `${escaped.length} processes`;
  const pids = escaped.length === 1 ? "pid" : "pids";
  return `${count} had left the run's process group and still ran after it: ${pids} ${list}; ended with ${
    ended.killed ? `SIGKILL after ${graceMs / 1000} s of SIGTERM` : "SIGTERM"
  }`;
}

let setprivPath: string | null | undefined;

/** util-linux's setpriv, where installed (it is on Debian and most Linux systems). */
function setpriv(): string | null {
  setprivPath ??= ["/usr/bin/setpriv", "/bin/setpriv"].find((path) => {
    try {
      return Deno.statSync(path).isFile;
    } catch {
      return false;
    }
  }) ?? null;
  return setprivPath;
}

/** The program and arguments that run `command`: the shell, under setpriv if there is one. */
function shell(command: string): [string, string[]] {
  const sh = ["/bin/sh", "-c", command];
  const wrapper = setpriv();
  // The parent-death signal survives the exec of the shell.
  return wrapper === null
    ? ["/bin/sh", sh.slice(1)]
    : [wrapper, ["--pdeathsig", "KILL", "--", ...sh]];
}

/** Read a stream into a capture until it ends or `stop` aborts. */
async function drain(
  stream: ReadableStream<Uint8Array>,
  into: HeadTailCapture,
  stop: AbortSignal,
  onChunk?: (chunk: Uint8Array) => void,
): Promise<void> {
  const reader = stream.getReader();
  const cancel = () => reader.cancel().catch(() => {});
  stop.addEventListener("abort", cancel, { once: true });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      into.push(value);
      onChunk?.(value);
    }
  } catch {
    // Cancelled: the caller stopped waiting for the end of the output.
  } finally {
    stop.removeEventListener("abort", cancel);
  }
}

/** Start a run. Never throws: a command that cannot start resolves as `error`. */
export function startRun(spec: RunSpec, now: () => number = Date.now): RunHandle {
  let child: Deno.ChildProcess;
  const marker = crypto.randomUUID();
  try {
    const [program, args] = shell(spec.command);
    child = new Deno.Command(program, {
      args,
      detached: true,
      env: { ...spec.env, [MARKER_VARIABLE]: marker },
      clearEnv: true,
      cwd: spec.cwd,
      stdin: spec.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    const note = `could not start the command: ${(error as Error).message}`;
    const startedAt = now();
    return {
      startedAt,
      pid: null,
      marker: null,
      interrupt: () => {},
      done: Promise.resolve({
        status: "error",
        exitCode: null,
        signal: null,
        stdout: "",
        stderr: "",
        startedAt,
        finishedAt: now(),
        outputBytes: 0,
        note,
      }),
    };
  }
  // The child exists from here: this is when the run started.
  const startedAt = now();
  // A command that exits without reading it all ends the write (a broken pipe): no matter.
  const feeding = spec.stdin === undefined
    ? Promise.resolve()
    : ReadableStream.from([new TextEncoder().encode(spec.stdin)]).pipeTo(child.stdin).catch(
      () => {},
    );
  const pgid = child.pid;
  const run = { pgid, marker, ownGroup: true };
  const stdout = new HeadTailCapture(spec.outputCap);
  const stderr = new HeadTailCapture(spec.outputCap);
  let endedBy: "timeout" | "interrupted" | null = null;
  let killTimer: ReturnType<typeof setTimeout> | undefined;

  const terminate = (reason: "timeout" | "interrupted") => {
    if (endedBy !== null) return;
    endedBy = reason;
    signalRun(run, "SIGTERM");
    killTimer = setTimeout(() => signalRun(run, "SIGKILL"), spec.killGraceMs);
  };
  const timeoutTimer = spec.timeoutMs > 0
    ? setTimeout(() => terminate("timeout"), spec.timeoutMs)
    : undefined;

  const done = (async (): Promise<RunResult> => {
    const stopReading = new AbortController();
    const output = Promise.all([
      drain(child.stdout, stdout, stopReading.signal, spec.onOutput?.bind(null, "stdout")),
      drain(child.stderr, stderr, stopReading.signal, spec.onOutput?.bind(null, "stderr")),
    ]);
    const status = await child.status;
    clearTimeout(timeoutTimer);
    await feeding;
    // Leftovers (`cmd &`, `setsid cmd &`) would run on, and hold the pipes open: end them.
    const leftovers = endRun(run, spec.killGraceMs);
    // A process no one can find or end may keep the pipes open for ever:
    // stop reading a little after the SIGKILL.
    const giveUp = setTimeout(() => stopReading.abort(), spec.killGraceMs + OUTPUT_LINGER_MS);
    await output;
    clearTimeout(giveUp);
    const escaped = escapedNote(await leftovers, spec.killGraceMs);
    clearTimeout(killTimer);
    const unread = stopReading.signal.aborted
      ? "stopped reading its output: a process outside its process group still held it open"
      : null;
    const notes = (...parts: (string | null)[]) =>
      parts.filter((n) => n !== null).join("; ") || null;
    const finishedAt = now();
    const base = {
      exitCode: status.signal === null ? status.code : null,
      signal: status.signal,
      stdout: redactSecrets(stdout.text(), spec.secrets ?? []),
      stderr: redactSecrets(stderr.text(), spec.secrets ?? []),
      startedAt,
      finishedAt,
      outputBytes: stdout.bytes + stderr.bytes,
    };
    if (endedBy === "timeout") {
      return {
        ...base,
        status: "timeout",
        note: notes(`killed after the timeout of ${spec.timeoutMs / 1000} s`, escaped, unread),
      };
    }
    if (endedBy === "interrupted") {
      return {
        ...base,
        status: "interrupted",
        note: notes("killed: the service was shutting down", escaped, unread),
      };
    }
    if (status.signal !== null) {
      return {
        ...base,
        status: "killed",
        note: notes(`ended by ${status.signal}, not sent by jobsmanager`, escaped, unread),
      };
    }
    return {
      ...base,
      status: status.code === 0 ? "success" : "failed",
      note: notes(escaped, unread),
    };
  })();

  return { startedAt, pid: pgid, marker, done, interrupt: () => terminate("interrupted") };
}
