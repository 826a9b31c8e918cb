/**
 * A thread that starts a service's runs for run_pool.ts: each `start` is
 * spawned with runner.ts, unless its grace is over by the time this
 * thread gets to it; the run's start, its end and what left its group are
 * posted back. Times are this process's wall clock (Date.now).
 */
import { type LaunchSpec, type RunHandle, type RunResult, startRun } from "./runner.ts";

export type ToRunWorker =
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
  postMessage(message: FromRunWorker): void;
  onmessage: ((event: MessageEvent<ToRunWorker>) => void) | null;
};

const runs = new Map<number, RunHandle>();
/** Runs to start, in the order they came. */
const queue: Extract<ToRunWorker, { type: "start" }>[] = [];
let starting = false;

port.onmessage = ({ data }) => {
  if (data.type === "interrupt") {
    runs.get(data.id)?.interrupt();
    return;
  }
  queue.push(data);
  if (!starting) startQueued();
};

/**
 * Start the queued runs one at a time, letting the event loop turn
 * between two: the ends of the runs started first (a burst's are quick)
 * are heard and posted meanwhile, which frees their workers for the rest.
 */
async function startQueued(): Promise<void> {
  starting = true;
  while (queue.length > 0) {
    start(queue.shift()!);
    await new Promise((turn) => setTimeout(turn, 0));
  }
  starting = false;
}

function start({ id, spec, startBy }: Extract<ToRunWorker, { type: "start" }>): void {
  const now = Date.now();
  if (now > startBy) {
    port.postMessage({ type: "late", id, at: now });
    return;
  }
  const handle = startRun(spec);
  runs.set(id, handle);
  const { startedAt, pid, marker } = handle;
  port.postMessage({ type: "started", id, startedAt, pid, marker });
  handle.done.then((result) => {
    runs.delete(id);
    port.postMessage({ type: "done", id, result });
  });
  handle.escaped.then((note) => port.postMessage({ type: "escaped", id, note }));
}
