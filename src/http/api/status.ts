/**
 * `/api/v1/status` (as `jobsmanager status`, plus the database as this
 * server sees it and runs per minute for the chart) and `/api/v1/reload`.
 * While the database is away `/status` still answers, with the database
 * down and the rest as last read (`read_at`), so a dashboard can say so;
 * while it refuses writes, it says that, the rest read now; while it
 * answers this server but the service has not seen it back yet, it says
 * `recovering`, the rest read now; while it refuses this server's reads
 * (the user lacks SELECT), it says that and names the GRANT, the rest as
 * last read.
 * `database_now` is the database's clock at the answer (while it is away,
 * as this server's clock puts it), against which heartbeats are aged.
 * `/api/v1/clock` is that clock alone, cheap to ask on every page: the
 * dashboard ages every time it shows on it, not on the viewer's clock.
 * `/api/v1/health` is the line atop the dashboard's jobs page: how many
 * services are live, stale or dead, the database, the last reload; three
 * small reads whatever the number of jobs, so it may be asked every 5 s.
 */
import { Hono } from "hono";
import { reload } from "../../app/jobs.ts";
import { health, pendingJson, status } from "../../app/status.ts";
import { MAX_RECONNECT_WAIT_MS } from "../../daemon/db_health.ts";
import { serviceGone, serviceRuns } from "../../daemon/presence.ts";
import { zoneOf } from "../../domain/job.ts";
import { NODE_STATES, type NodeState } from "../../domain/node.ts";
import { DatabaseError } from "../../errors.ts";
import type { Readiness } from "../health.ts";
import { type ApiContext, type Env, json } from "./context.ts";

const HOUR_MS = 3_600_000;
/** What this server's host knows of each service's process: gone, or running while stale. */
const PRESENCE = { gone: serviceGone, runs: serviceRuns };
const MINUTE_MS = 60_000;

/**
 * The database's state as an answer read from it says it: it answered, so
 * it is not down. Where it refuses writes alone (a full disk), that. Where
 * the service counts it away still, `recovering`: the service sees it back
 * at its next probe (they back off to `MAX_RECONNECT_WAIT_MS` apart), once
 * it wrote what waited; meanwhile it holds its run records in memory, or,
 * a cluster node, its fires.
 */
function databaseState(ready: Readiness): { state: string; detail: string } {
  const { ok, detail, writes_refused, reads_refused } = ready.database;
  if (ok) return { state: "up", detail };
  if (writes_refused) return { state: "refuses writes", detail };
  if (reads_refused) return { state: "refuses reads", detail };
  return {
    state: "recovering",
    detail:
      `it answers this server's reads (what this answer says was read now), but the service has not seen it back yet: it counts it back at its next try (within ${
        MAX_RECONNECT_WAIT_MS / 1000
      } s), once it has written what waited; until then, as it says: ${detail}`,
  };
}

/**
 * The database's state where this server's read failed: `down` where it
 * could not reach it, `refuses reads` where it answered and refused (the
 * user lacks SELECT: the detail names the GRANT); null for any other
 * failure, which is the server's own.
 */
function unread(error: unknown, redact: (text: string) => string) {
  if (!(error instanceof DatabaseError)) return null;
  if (error.unreachable) return { state: "down", detail: redact(error.message) };
  if (error.readsRefused) return { state: "refuses reads", detail: redact(error.message) };
  return null;
}

/** What `/status` knows, besides the database's state, before it was ever read (`read_at` null). */
export const NEVER_READ: Readonly<Record<string, unknown>> = {
  services: [],
  pending_markers: 0,
  latest_marker: 0,
  runs_last_hour: {},
  running: { count: 0, oldest: null },
  next_fires: [],
  silent_jobs: [],
  pending_notifications: { count: 0, oldest: null, retrying: 0, next_retry: null },
  runs_per_minute: [],
  read_at: null,
};

export function statusRoutes(api: ApiContext, readiness: () => Promise<Readiness>): Hono<Env> {
  const routes = new Hono<Env>();
  const { store } = api;

  /** The last status read from the database: what is known while it is away. */
  let last: Record<string, unknown> = NEVER_READ;
  /**
   * The database's clock minus this server's, as last read (null: never
   * read): the page ages heartbeats by the database's clock, on which each
   * service's is written, not by its own or the viewer's.
   */
  let databaseOffset: number | null = null;
  const databaseNow = () => databaseOffset === null ? null : new Date(Date.now() + databaseOffset);

  /** The last health read from the database (null: never): what is known while it is away. */
  let lastHealth: Record<string, unknown> | null = null;

  routes.get("/health", async (c) => {
    const now = Date.now();
    const readyNow = readiness();
    let h;
    try {
      h = await health(store, { now, heartbeatMs: api.heartbeatMs, presence: PRESENCE });
    } catch (error) {
      const database = unread(error, api.redact);
      if (database === null) throw error;
      await readyNow;
      return json(c, {
        ...(lastHealth ??
          { services: null, last_reload: null, pending_markers: null, read_at: null }),
        database,
        database_now: databaseNow(),
      });
    }
    const ready = await readyNow;
    databaseOffset = h.databaseNow - now;
    const counts = Object.fromEntries(NODE_STATES.map((state) => [state, 0])) as Record<
      NodeState,
      number
    >;
    for (const node of h.services) counts[node.state]++;
    // The newest reload of any service: what a change made last reached.
    const reloaded = h.services.filter((n) => n.last_reload_at !== null)
      .sort((a, b) => b.last_reload_at! - a.last_reload_at!)[0];
    lastHealth = {
      services: counts,
      last_reload: reloaded === undefined ? null : {
        at: new Date(reloaded.last_reload_at!),
        node: reloaded.id,
        ms: reloaded.last_reload_ms,
      },
      pending_markers: h.pendingMarkers,
      read_at: new Date(now),
    };
    return json(c, {
      ...lastHealth,
      database: databaseState(ready),
      database_now: databaseNow(),
    });
  });

  routes.get("/clock", async (c) => json(c, { database_now: new Date(await store.databaseNow()) }));

  routes.get("/status", async (c) => {
    const now = Date.now();
    const first = Math.floor((now - HOUR_MS) / MINUTE_MS + 1) * MINUTE_MS;
    const readyNow = readiness();
    let s, perMinute, running;
    try {
      [s, perMinute, running] = await Promise.all([
        status(store, {
          now,
          heartbeatMs: api.heartbeatMs,
          defaultZone: api.defaultZone,
          presence: PRESENCE,
        }),
        store.countRunsByMinute(first),
        store.runningRuns(),
      ]);
    } catch (error) {
      const database = unread(error, api.redact);
      if (database === null) throw error;
      // A 503 here would hide the one thing known for sure: the database is down, or refuses.
      await readyNow;
      return json(c, {
        ...last,
        database,
        database_now: databaseNow(),
      });
    }
    const ready = await readyNow;
    if (s.databaseNow !== undefined) databaseOffset = s.databaseNow - now;
    const counts = new Map(perMinute.map((m) => [m.minute, m.counts]));
    last = {
      services: s.services,
      pending_markers: s.pendingMarkers,
      latest_marker: s.latestMarker,
      runs_last_hour: s.runsLastHour,
      // Now, whenever they started: a run stuck for hours is in no hour's counts.
      running: {
        count: running.length,
        oldest: running.length === 0
          ? null
          : { id: running[0].id, job_id: running[0].job_id, started_at: running[0].started_at },
      },
      next_fires: s.nextFires.map(({ job, at }) => ({
        job: job.id,
        at: at.toISOString(),
        timezone: zoneOf(job, api.defaultZone),
      })),
      silent_jobs: s.silentJobs.map((j) => ({
        job: j.job_id,
        since: new Date(j.since).toISOString(),
        alert_after: j.alert_after,
      })),
      pending_notifications: pendingJson(s.pendingNotifications),
      runs_per_minute: Array.from({ length: 60 }, (_, i) => {
        const minute = first + i * MINUTE_MS;
        return { minute: new Date(minute), counts: counts.get(minute) ?? {} };
      }),
      read_at: new Date(now),
    };
    return json(c, {
      ...last,
      database: databaseState(ready),
      database_now: databaseNow(),
    });
  });

  routes.post("/reload", async (c) => json(c, { marker_id: await reload(store) }, 202));

  return routes;
}
