/**
 * The HTTP side of `serve`, inside a worker thread: request handling (JSON,
 * queries on a database connection of its own, which for SQLite are
 * synchronous) never holds up the scheduler's event loop, so API load does
 * not delay fires. What only the daemon knows, its vitals and its metrics,
 * the worker asks the main thread for (serve_http.ts answers); its log
 * records go to the main thread's logging.
 */
import { configure, type LogRecord } from "@logtape/logtape";
import type { Settings } from "../config/config.ts";
import type { DaemonVitals } from "../daemon/boot.ts";
import { systemTimezone } from "../domain/time.ts";
import { openStore } from "../store/open.ts";
import { type DatabaseTarget } from "../store/target.ts";
import { redactor } from "../domain/secrets.ts";
import { ValidationError } from "../errors.ts";
import { readinessOf } from "./health.ts";
import { HTTP_NICE, lowerThreadPriority } from "./priority.ts";
import { log } from "../daemon/log.ts";
import { nodeMetrics } from "./metrics.ts";
import { type HttpListener, startHttpServer } from "./server.ts";
import { Starts } from "./starts.ts";

/** Messages the main thread sends. */
export type ToWorker =
  | {
    type: "start";
    settings: Settings;
    target: DatabaseTarget;
    secrets: string[];
    /** The scheduler's starts (starts.ts). */
    starts: SharedArrayBuffer;
    /** The service is migrating the schema: the API answers 503 until `migrated`. */
    migrating: boolean;
  }
  | { type: "migrated" }
  | { type: "answer"; id: number; value: unknown; error?: string }
  | { type: "close" };

/** Messages the worker sends. */
export type FromWorker =
  | { type: "listening"; url: string }
  | { type: "failed"; name: string; message: string; field?: string }
  | { type: "tokens"; values: string[] }
  | { type: "ask"; id: number; what: "vitals" | "metrics" }
  | {
    type: "log";
    category: string[];
    level: LogRecord["level"];
    message: string;
    properties: Record<string, unknown>;
  }
  | { type: "closed" };

/** The content type of Prometheus' text format, as prom-client writes it. */
export const PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8";

// deno-lint-ignore no-explicit-any
const port = self as any as {
  postMessage(message: FromWorker): void;
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  close(): void;
};

const pending = new Map<number, PromiseWithResolvers<unknown>>();
let nextId = 0;
/** Till the service has migrated the schema, whose tables the API reads. */
let migrating = true;

/** Ask the main thread; a failure there (its message) rejects, and the request answers 500. */
function ask<T>(what: "vitals" | "metrics"): Promise<T> {
  const id = nextId++;
  const asked = Promise.withResolvers<unknown>();
  pending.set(id, asked);
  port.postMessage({ type: "ask", id, what });
  return asked.promise as Promise<T>;
}

async function start(
  settings: Settings,
  target: DatabaseTarget,
  secrets: string[],
  starts: SharedArrayBuffer,
) {
  await configure({
    sinks: {
      main: (record: LogRecord) =>
        port.postMessage({
          type: "log",
          category: [...record.category],
          level: record.level,
          message: String(record.rawMessage),
          properties: record.properties,
        }),
    },
    loggers: [
      { category: ["jobsmanager"], lowestLevel: "debug", sinks: ["main"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
  });
  const notLowered = lowerThreadPriority();
  if (notLowered === null) {
    log("http").debug("the HTTP worker runs at nice {nice}: fires go first when the CPU is busy", {
      nice: HTTP_NICE,
    });
  } else {
    log("http").info("the HTTP worker keeps the scheduler's CPU priority: {why}", {
      why: notLowered,
    });
  }
  const known = [...secrets];
  let scrub = redactor(known);
  const redact = (text: string) => scrub(text);
  // Its writes leave change notices: the service (this process's too) applies them at once.
  const store = openStore(target, { notices: settings["jobsmanager.notice_dir"] });
  const heartbeatMs = settings["jobsmanager.heartbeat_interval"] * 1000;
  const nodes = nodeMetrics(store, heartbeatMs);
  let server: HttpListener;
  try {
    server = await startHttpServer(settings, {
      store,
      defaultZone: settings["jobsmanager.timezone"] || systemTimezone(),
      heartbeatMs,
      metrics: {
        contentType: PROMETHEUS_TEXT,
        // Two expositions of distinct families read as one.
        text: async () => (await ask<string>("metrics")) + await nodes.metrics(),
      },
      readiness: async () => readinessOf(await ask<DaemonVitals>("vitals")),
      redact,
      starts: new Starts(starts),
      migrating: () => migrating,
      uid: Deno.uid(),
    }, (values) => {
      known.push(...values);
      scrub = redactor(known);
      port.postMessage({ type: "tokens", values });
    });
  } catch (error) {
    await store.close();
    throw error;
  }
  port.postMessage({ type: "listening", url: server.url });
  // A listener that takes no more connections ends this worker: serve_http.ts starts another.
  server.deaf.then((why) =>
    setTimeout(() => {
      throw new Error(why);
    })
  );
  return { server, store };
}

let running: Promise<{ server: HttpListener; store: { close(): Promise<void> } }> | null = null;

port.onmessage = async ({ data }) => {
  if (data.type === "answer") {
    const asked = pending.get(data.id);
    pending.delete(data.id);
    if (data.error === undefined) asked?.resolve(data.value);
    else asked?.reject(new Error(data.error));
  } else if (data.type === "migrated") {
    migrating = false;
  } else if (data.type === "start") {
    migrating = data.migrating;
    running = start(data.settings, data.target, data.secrets, data.starts);
    running.catch((error) =>
      port.postMessage({
        type: "failed",
        name: (error as Error).name,
        message: (error as Error).message,
        field: error instanceof ValidationError ? error.field : undefined,
      })
    );
  } else if (data.type === "close") {
    const started = await running?.catch(() => null);
    if (started) {
      await started.server.close();
      await started.store.close();
    }
    port.postMessage({ type: "closed" });
  }
};
