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
import { RuntimeError, ValidationError } from "../errors.ts";
import type { DatabaseTarget } from "../store/target.ts";
import type { Metrics } from "./metrics.ts";
import type { HttpServer } from "./server.ts";
import { Starts } from "./starts.ts";
import type { FromWorker, ToWorker } from "./worker.ts";

/** How long the worker gets to finish requests in flight at a stop: the stop budget holds. */
const CLOSE_WAIT_MS = 2000;

export interface ServeHttpOptions {
  settings: Settings;
  target: DatabaseTarget;
  /** Given to the daemon as its run observer before it started. */
  metrics: Metrics;
  vitals: () => DaemonVitals;
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

export async function startServeHttp(o: ServeHttpOptions): Promise<HttpServer> {
  o.metrics.watch(o.vitals);
  const starts = new Starts();
  o.metrics.announceStarts(starts);
  const worker = new Worker(new URL("./worker.ts", import.meta.url).href, { type: "module" });
  const send = (message: ToWorker) => worker.postMessage(message);
  const listening = Promise.withResolvers<string>();
  const closed = Promise.withResolvers<void>();
  worker.onmessage = async ({ data }: MessageEvent<FromWorker>) => {
    switch (data.type) {
      case "ask":
        send({
          type: "answer",
          id: data.id,
          value: data.what === "vitals" ? o.vitals() : await o.metrics.text(),
        });
        break;
      case "tokens":
        o.onTokens(data.values);
        break;
      case "log":
        getLogger(data.category)[METHODS[data.level]](data.message, data.properties);
        break;
      case "listening":
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
    listening.reject(new RuntimeError(`the HTTP side failed: ${event.message}`));
  };
  send({
    type: "start",
    settings: o.settings,
    target: o.target,
    secrets: o.secrets,
    starts: starts.memory,
  });
  let url: string;
  try {
    url = await listening.promise;
  } catch (error) {
    worker.terminate();
    throw error;
  }
  return {
    url,
    async close() {
      send({ type: "close" });
      await settlesWithin(systemClock, closed.promise, CLOSE_WAIT_MS);
      worker.terminate();
    },
  };
}
