/**
 * Runs one command: `/bin/sh -c COMMAND` in a process group of its own
 * (Deno's `detached` calls setsid() in the child before exec, so the group
 * exists before the command runs), stdin from /dev/null, output captured
 * head-and-tail.
 * On timeout the whole group gets SIGTERM, then SIGKILL after the grace;
 * when the shell exits, whatever it left behind in its group is ended the
 * same way, so no orphan outlives its run.
 */
import type { RunUpdate } from "../domain/run.ts";
import { HeadTailCapture } from "./capture.ts";

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
  readonly pid: number | null;
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

/** The environment of one run: inherited + the job's own + who and when. */
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
    JM_RUN_ID: String(runId),
    JM_SCHEDULED_AT: new Date(scheduledAt).toISOString(),
  };
}

/** How long output may stay open after the group's SIGKILL. */
const OUTPUT_LINGER_MS = 1000;

/** Signal the run's whole process group. */
function killGroup(pgid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(-pgid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
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
  try {
    child = new Deno.Command("/bin/sh", {
      args: ["-c", spec.command],
      detached: true,
      env: spec.env,
      clearEnv: true,
      cwd: spec.cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    const note = `could not start the command: ${(error as Error).message}`;
    const startedAt = now();
    return {
      startedAt,
      pid: null,
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
  const pgid = child.pid;
  const stdout = new HeadTailCapture(spec.outputCap);
  const stderr = new HeadTailCapture(spec.outputCap);
  let endedBy: "timeout" | "interrupted" | null = null;
  let killTimer: ReturnType<typeof setTimeout> | undefined;

  const terminate = (reason: "timeout" | "interrupted") => {
    if (endedBy !== null) return;
    endedBy = reason;
    killGroup(pgid, "SIGTERM");
    killTimer = setTimeout(() => killGroup(pgid, "SIGKILL"), spec.killGraceMs);
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
    // Leftovers of the group (`cmd &`) would hold the pipes open: end them.
    killGroup(pgid, "SIGTERM");
    const leftovers = setTimeout(() => killGroup(pgid, "SIGKILL"), spec.killGraceMs);
    // A process that left the group (setsid, a daemon) may keep the pipes
    // open for ever: stop reading a little after the SIGKILL.
    const giveUp = setTimeout(() => stopReading.abort(), spec.killGraceMs + OUTPUT_LINGER_MS);
    await output;
    clearTimeout(giveUp);
    clearTimeout(leftovers);
    clearTimeout(killTimer);
    const escaped = stopReading.signal.aborted
      ? "stopped reading its output: a process that left its process group still held it open"
      : null;
    const finishedAt = now();
    const base = {
      exitCode: status.signal === null ? status.code : null,
      signal: status.signal,
      stdout: stdout.text(),
      stderr: stderr.text(),
      startedAt,
      finishedAt,
      outputBytes: stdout.bytes + stderr.bytes,
    };
    if (endedBy === "timeout") {
      return {
        ...base,
        status: "timeout",
        note: `killed after the timeout of ${spec.timeoutMs / 1000} s`,
      };
    }
    if (endedBy === "interrupted") {
      return { ...base, status: "interrupted", note: "killed: the service was shutting down" };
    }
    if (status.signal !== null) {
      return {
        ...base,
        status: "killed",
        note: `ended by ${status.signal}, not sent by jobsmanager`,
      };
    }
    return { ...base, status: status.code === 0 ? "success" : "failed", note: escaped };
  })();

  return { startedAt, pid: pgid, done, interrupt: () => terminate("interrupted") };
}
