/**
 * The HTTP side of `jobsmanager serve`: the server on a store of its own
 * (API load never takes the scheduler's connections), `/readyz` and the
 * gauges of `/metrics` read from the running daemon.
 */
import type { Settings } from "../config/config.ts";
import type { DaemonVitals } from "../daemon/boot.ts";
import { settlesWithin, systemClock } from "../daemon/clock.ts";
import { systemTimezone } from "../domain/time.ts";
import { openStore } from "../store/open.ts";
import type { DatabaseTarget } from "../store/target.ts";
import type { Readiness } from "./health.ts";
import type { Metrics } from "./metrics.ts";
import { type HttpServer, startHttpServer } from "./server.ts";

/** Steps of the HTTP side's stop wait at most this long each: the service's stop budget holds. */
const CLOSE_WAIT_MS = 1000;

export interface ServeHttpOptions {
  settings: Settings;
  target: DatabaseTarget;
  /** Given to the daemon as its run observer before it started. */
  metrics: Metrics;
  vitals: () => DaemonVitals;
  redact: (text: string) => string;
  /** Receives the token values before anything could echo them. */
  onTokens: (values: string[]) => void;
}

/** Ready: the timetable is loaded and firing, and the database answers. */
export function readinessOf(v: DaemonVitals): Readiness {
  return {
    database: v.databaseOnline
      ? { ok: true, detail: "reachable" }
      : { ok: false, detail: "unreachable; jobs keep firing from the timetable in memory" },
    timetable: v.firing
      ? { ok: true, detail: `${v.jobsLoaded} jobs loaded` }
      : { ok: false, detail: "not loaded: the service is starting or stopping" },
  };
}

export async function startServeHttp(o: ServeHttpOptions): Promise<HttpServer> {
  const store = openStore(o.target);
  const heartbeatMs = o.settings["jobsmanager.heartbeat_interval"] * 1000;
  o.metrics.watch({ vitals: o.vitals, nodes: () => store.listNodes(), heartbeatMs });
  let server: HttpServer;
  try {
    server = await startHttpServer(o.settings, {
      store,
      defaultZone: o.settings["jobsmanager.timezone"] || systemTimezone(),
      heartbeatMs,
      metrics: o.metrics,
      readiness: () => Promise.resolve(readinessOf(o.vitals())),
      redact: o.redact,
    }, o.onTokens);
  } catch (error) {
    await store.close();
    throw error;
  }
  return {
    url: server.url,
    async close() {
      await settlesWithin(systemClock, server.close(), CLOSE_WAIT_MS);
      await settlesWithin(systemClock, store.close(), CLOSE_WAIT_MS);
    },
  };
}
