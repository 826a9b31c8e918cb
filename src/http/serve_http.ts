/**
 * The HTTP side of `jobsmanager serve`, started in a worker thread
 * (worker.ts) so that API load never holds up the scheduler: this side
 * answers the worker's questions (the daemon's vitals, the metrics), logs
 * its records, and stops it.
 */
import { getLogger } from "@logtape/logtape";
import type { Settings } from "../config/config.ts";
import type { DaemonVitals } from "../daemon/boot.ts";
import { settlesWithin, systemClock } from "../daemon/clock.ts";
import { log } from "../daemon/log.ts";
import { errorMessage, RuntimeError, ValidationError } from "../errors.ts";
import type { DatabaseTarget } from "../store/target.ts";
import type { Metrics } from "./metrics.ts";
import type { HttpServer } from "./server.ts";
import { Starts } from "./starts.ts";
import type { FromWorker, ToWorker } from "./worker.ts";

/** How long the worker gets to finish requests in flight at a stop, at most. */
const CLOSE_WAIT_MS = 2000;

export interface ServeHttpOptions {
  settings: Settings;
  target: DatabaseTarget;
  /** Given to the daemon as its run observer before it started. */
  metrics: Metrics;
  vitals: () => DaemonVitals;
  /**
   * The daemon's first migration of the schema (`Daemon.migrated`): till it
   * resolves the API answers 503, the service starting, and `/healthz` says so.
   */
  migrated: Promise<void>;
  /** Strings no answer or log line may show (the database password). */
  secrets: string[];
  /** Receives the token values before anything could echo them. */
  onTokens: (values: string[]) => void;
}

const METHODS = {
  trace: "trace",
  debug: "debug",
  info: "info",
  warning: "warn",
  error: "error",
  fatal: "fatal",
} as const;

/** A failed HTTP side is started again after this, doubling up to RESTART_MAX_MS while it fails. */
const RESTART_MS = 1000;
const RESTART_MAX_MS = 30_000;

const httpLog = log("http");

/** One worker thread of the HTTP side: `listening` settles once it listens or fails to. */
interface Side {
  worker: Worker;
  send(message: ToWorker): void;
  listening: Promise<string>;
  closed: Promise<void>;
}

/** The HTTP side as `serve` holds it. */
export interface ServedHttp extends HttpServer {
  /**
   * Stop accepting; requests in flight get CLOSE_WAIT_MS, or `withinMs`
   * if less (what the stop's deadline leaves: a request held by a locked
   * table must not hold the exit past it), then the worker is ended.
   */
  close(withinMs?: number): Promise<void>;
}

export async function startServeHttp(o: ServeHttpOptions): Promise<ServedHttp> {
  o.metrics.watch(o.vitals);
  const starts = new Starts();
  o.metrics.announceStarts(starts);
  // Read by every side started, a side started again after a failure too.
  const schema = { migrating: true };
  let stopping = false;
  let restartMs = RESTART_MS;
  let restart: ReturnType<typeof setTimeout> | undefined;
  /**
   * The HTTP side died after it started (a bug, or no descriptor left to
   * accept a connection with: too many clients): the scheduler goes on,
   * and the side is started again, and said so, rather than gone unheard.
   */
  const failed = (why: string) => {
    if (stopping) return;
    side.worker.terminate();
    httpLog.error("the HTTP side failed ({why}); starting it again in {seconds} s", {
      why,
      seconds: restartMs / 1000,
    });
    restart = setTimeout(() => {
      side = launch(o, starts, schema, failed);
      side.listening.then(
        (url) => {
          restartMs = RESTART_MS;
          httpLog.info("the HTTP side is back on {url}", { url });
        },
        (error) => failed((error as Error).message),
      );
    }, restartMs);
    restartMs = Math.min(RESTART_MAX_MS, restartMs * 2);
  };
  let side = launch(o, starts, schema, failed);
  o.migrated.then(() => {
    schema.migrating = false;
    if (!stopping) side.send({ type: "migrated" });
  });
  let url: string;
  try {
    url = await side.listening;
  } catch (error) {
    stopping = true;
    side.worker.terminate();
    throw error;
  }
  return {
    url,
    async close(withinMs = CLOSE_WAIT_MS) {
      stopping = true;
      clearTimeout(restart);
      side.send({ type: "close" });
      await settlesWithin(systemClock, side.closed, Math.min(CLOSE_WAIT_MS, withinMs));
      side.worker.terminate();
    },
  };
}

/** Start the HTTP side's worker; `failed` hears of its death once it listened. */
function launch(
  o: ServeHttpOptions,
  starts: Starts,
  schema: { migrating: boolean },
  failed: (why: string) => void,
): Side {
  const worker = new Worker(new URL("./worker.ts", import.meta.url).href, { type: "module" });
  const send = (message: ToWorker) => worker.postMessage(message);
  const listening = Promise.withResolvers<string>();
  const closed = Promise.withResolvers<void>();
  let listened = false;
  worker.onmessage = async ({ data }: MessageEvent<FromWorker>) => {
    switch (data.type) {
      case "ask":
        // A failure here must not end the service (an unhandled rejection would): it is the
        // request's, answered 500.
        try {
          send({
            type: "answer",
            id: data.id,
            value: data.what === "vitals" ? o.vitals() : await o.metrics.text(),
          });
        } catch (error) {
          httpLog.error("could not answer the HTTP side's {what}: {error}", {
            what: data.what,
            error: errorMessage(error),
          });
          send({ type: "answer", id: data.id, value: null, error: errorMessage(error) });
        }
        break;
      case "tokens":
        o.onTokens(data.values);
        break;
      case "log":
        getLogger(data.category)[METHODS[data.level]](data.message, data.properties);
        break;
      case "listening":
        listened = true;
        listening.resolve(data.url);
        break;
      case "failed":
        listening.reject(
          data.name === "ValidationError"
            ? new ValidationError(data.field ?? "http", data.message)
            : new RuntimeError(data.message),
        );
        break;
      case "closed":
        closed.resolve();
    }
  };
  worker.onerror = (event) => {
    event.preventDefault();
    if (listened) failed(event.message);
    else listening.reject(new RuntimeError(`the HTTP side failed: ${event.message}`));
  };
  send({
    type: "start",
    settings: o.settings,
    target: o.target,
    secrets: o.secrets,
    starts: starts.memory,
    migrating: schema.migrating,
  });
  return { worker, send, listening: listening.promise, closed: closed.promise };
}
