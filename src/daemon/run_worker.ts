/**
 * A thread that starts a service's runs for run_pool.ts: each `start` is
 * spawned with runner.ts, unless its grace is over by the time this
 * thread gets to it; the run's start, its end and what left its group are
 * posted back. Times are this process's wall clock (Date.now).
 */
import { Outbox } from "./outbox.ts";
import {
  type ArmedShell,
  armRun,
  type LaunchSpec,
  type RunHandle,
  type RunResult,
  startRun,
  unwatched,
} from "./runner.ts";

export type ToRunWorker =
  /** The environment every run starts from; its own variables go over it. */
  | { type: "base"; env: Record<string, string> }
  /**
   * `startBy`: the latest Date.now() at which the process may start;
   * `armed`: the `arm` whose shell is released for it, if any.
   */
  | { type: "start"; id: number; spec: LaunchSpec; startBy: number; armed?: number }
  | { type: "interrupt"; id: number }
  /** Start a run's shell ahead of its fire (runner.ts `armRun`), after the starts queued. */
  | { type: "arm"; id: number; spec: LaunchSpec }
  | { type: "disarm"; id: number };

export type FromRunWorker =
  | { type: "started"; id: number; startedAt: number; pid: number | null; marker: string | null }
  | { type: "late"; id: number; at: number }
  | { type: "done"; id: number; result: RunResult }
  | { type: "escaped"; id: number; note: string | null };

// deno-lint-ignore no-explicit-any
const port = self as any as {
  postMessage(batch: FromRunWorker[]): void;
  onmessage: ((event: MessageEvent<ToRunWorker[]>) => void) | null;
};
const outbox = new Outbox<FromRunWorker>((batch) => port.postMessage(batch));

const runs = new Map<number, RunHandle>();
let base: Record<string, string> = {};
/** Runs to start, in the order they came. */
const queue: Extract<ToRunWorker, { type: "start" }>[] = [];
let starting = false;

/** Shells to arm, once the queued runs have started. */
const arming: Extract<ToRunWorker, { type: "arm" }>[] = [];
/** Armed shells, by their arm's id. */
const armed = new Map<number, ArmedShell>();

port.onmessage = ({ data }) => {
  // The armed runs due now go first, each a write to a pipe (see ArmedShell.go).
  const now = Date.now();
  for (const message of data) {
    if (message.type !== "start" || message.armed === undefined || now > message.startBy) continue;
    armed.get(message.armed)?.go(message.spec.env.JM_RUN_ID ?? "");
  }
  for (const message of data) {
    switch (message.type) {
      case "base":
        base = message.env;
        break;
      case "interrupt":
        interrupt(message.id);
        break;
      case "arm":
        arming.push(message);
        break;
      case "disarm":
        takeArmed(message.id)?.disarm();
        break;
      case "start": {
        // A release is a write to a pipe: it does not wait behind the spawns queued.
        const shell = message.armed === undefined ? null : takeArmed(message.armed);
        // Judged late or not as it went (above).
        if (shell) start(message, shell, now);
        else queue.push(message);
      }
    }
  }
  if (!starting) startQueued();
};

/** The armed shell of arm `id`, no longer armed; null when it is not (yet) there: then it never will be. */
function takeArmed(id: number): ArmedShell | null {
  const shell = armed.get(id);
  armed.delete(id);
  const queued = arming.findIndex((a) => a.id === id);
  if (queued >= 0) arming.splice(queued, 1);
  return shell ?? null;
}

/** Queued runs interrupted before they started: none of them starts. */
const interruptedEarly = new Set<number>();

function interrupt(id: number): void {
  const handle = runs.get(id);
  if (handle) handle.interrupt();
  else if (queue.some((run) => run.id === id)) interruptedEarly.add(id);
}

/** Runs started in one turn of the event loop. */
const STARTS_PER_TURN = 8;

/**
 * Start the queued runs a few at a time, letting the event loop turn
 * between: the ends of the runs started first (a burst's are quick) are
 * heard and posted meanwhile, which frees their workers for the rest.
 */
async function startQueued(): Promise<void> {
  starting = true;
  while (queue.length > 0 || arming.length > 0) {
    if (queue.length > 0) {
      for (const run of queue.splice(0, STARTS_PER_TURN)) start(run);
    } else {
      for (const { id, spec } of arming.splice(0, STARTS_PER_TURN)) {
        const shell = armRun({ ...spec, env: { ...base, ...spec.env } });
        if (shell) armed.set(id, shell);
      }
    }
    await new Promise((turn) => setTimeout(turn, 0));
  }
  starting = false;
}

function start(
  { id, spec, startBy }: Extract<ToRunWorker, { type: "start" }>,
  shell: ArmedShell | null = null,
  now = Date.now(),
): void {
  // Interrupted (a stop, a cancel) before it was due to start: that is what it was, late or not.
  if (interruptedEarly.delete(id)) {
    shell?.disarm();
    outbox.push({ type: "started", id, startedAt: now, pid: null, marker: null });
    outbox.push({
      type: "done",
      id,
      result: unwatched("interrupted", now, "the service stopped before it started"),
    });
    outbox.push({ type: "escaped", id, note: null });
    return;
  }
  if (now > startBy) {
    shell?.disarm();
    outbox.push({ type: "late", id, at: now });
    return;
  }
  const full = { ...spec, env: { ...base, ...spec.env } };
  const handle = shell ? shell.release(full) : startRun(full);
  runs.set(id, handle);
  const { startedAt, pid, marker } = handle;
  outbox.push({ type: "started", id, startedAt, pid, marker });
  handle.done.then((result) => {
    runs.delete(id);
    outbox.push({ type: "done", id, result });
  });
  handle.escaped.then((note) => outbox.push({ type: "escaped", id, note }));
}
