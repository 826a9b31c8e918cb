/**
 * `/healthz`: the process answers. `/readyz`: the service can do its work
 * (timetable loaded, database reachable); a load balancer or Kubernetes
 * probe takes a node out while it is not.
 */
import { Hono } from "hono";

export interface Readiness {
  /** True when the node should get traffic. */
  ready: boolean;
  /** What the probe saw, for people: timetable, database, … */
  checks: Record<string, string>;
}

export function healthRoutes(readiness: () => Readiness | Promise<Readiness>): Hono {
  const routes = new Hono();
  routes.get("/healthz", (c) => c.json({ status: "ok" }));
  routes.get("/readyz", async (c) => {
    const state = await readiness();
    return c.json(
      { status: state.ready ? "ready" : "not ready", ...state.checks },
      state.ready ? 200 : 503,
    );
  });
  return routes;
}
