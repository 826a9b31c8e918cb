/**
 * `/api/v1/status` (as `jobsmanager status`, plus the database as this
 * server sees it and runs per minute for the chart) and `/api/v1/reload`.
 */
import { Hono } from "hono";
import { reload } from "../../app/jobs.ts";
import { status } from "../../app/status.ts";
import { zoneOf } from "../../domain/job.ts";
import type { Readiness } from "../health.ts";
import { type ApiContext, json } from "./context.ts";

const HOUR_MS = 3_600_000;
const MINUTE_MS = 60_000;

export function statusRoutes(api: ApiContext, readiness: () => Promise<Readiness>): Hono {
  const routes = new Hono();
  const { store } = api;

  routes.get("/status", async (c) => {
    const now = Date.now();
    const first = Math.floor((now - HOUR_MS) / MINUTE_MS + 1) * MINUTE_MS;
    const [s, perMinute, ready] = await Promise.all([
      status(store, { now, heartbeatMs: api.heartbeatMs, defaultZone: api.defaultZone }),
      store.countRunsByMinute(first),
      readiness(),
    ]);
    const counts = new Map(perMinute.map((m) => [m.minute, m.counts]));
    return json(c, {
      services: s.services,
      pending_markers: s.pendingMarkers,
      latest_marker: s.latestMarker,
      runs_last_hour: s.runsLastHour,
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
      database: { state: ready.database.ok ? "up" : "down", detail: ready.database.detail },
      runs_per_minute: Array.from({ length: 60 }, (_, i) => {
        const minute = first + i * MINUTE_MS;
        return { minute: new Date(minute), counts: counts.get(minute) ?? {} };
      }),
    });
  });

  routes.post("/reload", async (c) => json(c, { marker_id: await reload(store) }, 202));

  return routes;
}
