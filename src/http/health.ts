/**
 * `/healthz`: the process answers (a liveness probe). `/readyz`: the node
 * can do its work: timetable loaded, database reachable, taking writes and reads,
 * and the run guard running (a readiness probe). With the database away but the timetable loaded, the node is
 * `degraded`: it keeps firing from memory (or, a cluster node, holds its
 * fires), but the API cannot answer, so it says 503 and a load balancer
 * takes it out without restarting it.
 */
import { Hono } from "hono";
import type { DaemonVitals } from "../daemon/boot.ts";
import type { DatabaseAway } from "../daemon/db_health.ts";
import { MAX_SKEW_MS } from "../domain/node.ts";

export interface Check {
  ok: boolean;
  /** For people: "reachable", "unreachable for 12 s", "42 jobs loaded", … */
  detail: string;
}

/**
 * The database check; `writes_refused`: it answers, but refuses writes (a
 * full disk); `reads_refused`: it answers, but refuses reads (the user
 * lacks SELECT): each said apart, as it is not down.
 */
export type DatabaseCheck = Check & { writes_refused?: true; reads_refused?: true };

export interface Readiness {
  database: DatabaseCheck;
  timetable: Check;
  run_guard: Check;
}

export type ReadyState = "ready" | "degraded" | "not ready";

export function readyState(r: Readiness): ReadyState {
  if (r.database.ok && r.timetable.ok && r.run_guard.ok) return "ready";
  return r.timetable.ok ? "degraded" : "not ready";
}

/** What is known of why the database is away, for `database.detail`. */
const AWAY: Record<DatabaseAway, string> = {
  unreachable: "unreachable",
  unanswered: "a claim got no answer in time (a lock wait, overload, or the network)",
  answers: "the database answers, but a claim got no answer in time (a lock wait, or overload)",
};

/** How many run records wait, as a clause: "1 run record waits", "2 run records wait". */
function recordsWait(count: number): string {
  return count === 1 ? "1 run record waits" : `${count} run records wait`;
}

/** The database check: away, refusing writes or reads, or reachable. */
function databaseCheck(v: DaemonVitals): DatabaseCheck {
  if (!v.databaseOnline) {
    return {
      ok: false,
      detail: `${AWAY[v.databaseAway ?? "unreachable"]}; ${
        v.holdingReason === null
          ? "jobs keep firing from the timetable in memory"
          : `this node holds its fires until it is back (${v.holdingReason})`
      }`,
    };
  }
  if (v.databaseWritesRefused !== null) {
    // It answers, so the rest looks fine: only this says why nothing is recorded.
    return {
      ok: false,
      writes_refused: true,
      detail: `the database refuses writes: ${v.databaseWritesRefused}; jobs keep firing, and ${
        recordsWait(v.runRecordsWaiting)
      } in memory, written once it takes writes again (a restart meanwhile loses them)`,
    };
  }
  if (v.databaseReadsRefused !== null) {
    // Its timetable is as last read: no job changed, no cancel, no `job run` reaches it. On
    // MySQL an UPDATE with a WHERE needs SELECT: run records wait in memory, as writes refused.
    const waiting = v.runRecordsWaiting === 0
      ? ""
      : `; ${
        recordsWait(v.runRecordsWaiting)
      } in memory, written once it may read again (a restart meanwhile loses them)`;
    return {
      ok: false,
      reads_refused: true,
      detail:
        `the database refuses reads: ${v.databaseReadsRefused}; until it may read again, this service sees no job changes, cancels or \`job run\` requests${waiting}`,
    };
  }
  return { ok: true, detail: "reachable" };
}

/** Ready: the timetable is loaded and firing, and the database answers, takes writes and reads. */
export function readinessOf(v: DaemonVitals): Readiness {
  return {
    database: databaseCheck(v),
    timetable: v.firing
      ? {
        ok: true,
        detail: v.takesShare
          ? `${v.jobsLoaded} jobs loaded`
          : `${v.jobsLoaded} jobs loaded; this node fires none of them: its clock is more than ${
            MAX_SKEW_MS / 1000
          } s off the database's while another live node's is in step (fix its time sync, NTP)`,
      }
      : { ok: false, detail: "not loaded: the service is starting or stopping" },
    run_guard: v.runGuardRunning ? { ok: true, detail: "running" } : {
      ok: false,
      detail:
        "not running (it could not start, or exited; the log says why): runs go on, but would outlive this service if it died; it is started again until it runs",
    },
  };
}

/**
 * What the API and `/healthz` say until the service has migrated the
 * schema at its start: that begins with reaching the database (a server
 * that does not answer, a SQLite file another process holds locked).
 */
export const MIGRATING =
  "the service is starting: it is connecting to the database and migrating its schema";

/**
 * `migrating`: true while the service migrates the schema at its start.
 * The process is alive meanwhile (a liveness probe must not restart it in
 * the middle of a migration), so `/healthz` answers 200, saying `starting`.
 */
export function healthRoutes(
  readiness: () => Promise<Readiness>,
  migrating: () => boolean,
): Hono {
  const routes = new Hono();
  routes.get(
    "/healthz",
    (c) => c.json(migrating() ? { status: "starting", detail: MIGRATING } : { status: "ok" }),
  );
  routes.get("/readyz", async (c) => {
    const r = await readiness();
    // Not reached yet is not "reachable": the service may still be waiting for it.
    if (migrating()) r.database = { ok: false, detail: MIGRATING };
    const state = readyState(r);
    return c.json({ status: state, ...r }, state === "ready" ? 200 : 503);
  });
  return routes;
}
