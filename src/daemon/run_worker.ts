/**
 * A thread that starts a service's runs for run_pool.ts: each `start` is
 * spawned with runner.ts, unless its grace is over by the time this
 * thread gets to it; the run's start, its end and what left its group are
 * posted back. Times are this process's wall clock (Date.now).
 */
import { Outbox } from "./outbox.ts";
import { type LaunchSpec, type RunHandle, type RunResult, startRun, unwatched } from "./runner.ts";

export type ToRunWorker =
  /** The environment every run starts from; its own variables go over it. */
  | { type: "base"; env: Record<string, string> }
  /** `startBy`: the latest Date.now() at which the process may start. */
  | { type: "start"; id: number; spec: LaunchSpec; startBy: number }
  | { type: "interrupt"; id: number };

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

port.onmessage = ({ data }) => {
  for (const message of data) {
    if (message.type === "base") base = message.env;
    else if (message.type === "interrupt") interrupt(message.id);
    else queue.push(message);
  }
  if (!starting) startQueued();
};

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
  while (queue.length > 0) {
    for (const run of queue.splice(0, STARTS_PER_TURN)) start(run);
    await new Promise((turn) => setTimeout(turn, 0));
  }
  starting = false;
}

function start({ id, spec, startBy }: Extract<ToRunWorker, { type: "start" }>): void {
  const now = Date.now();
  // Interrupted (a stop, a cancel) before it was due to start: that is what it was, late or not.
  if (interruptedEarly.delete(id)) {
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
    outbox.push({ type: "late", id, at: now });
    return;
  }
  const handle = startRun({ ...spec, env: { ...base, ...spec.env } });
  runs.set(id, handle);
  const { startedAt, pid, marker } = handle;
  outbox.push({ type: "started", id, startedAt, pid, marker });
  handle.done.then((result) => {
    runs.delete(id);
    outbox.push({ type: "done", id, result });
  });
  handle.escaped.then((note) => outbox.push({ type: "escaped", id, note }));
}
