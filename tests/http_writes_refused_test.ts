/**
 * While the database refuses writes (a full disk) it still answers reads:
 * `/api/v1/status` and `/api/v1/health` say it refuses writes, with the
 * rest read now, not that it is down (which made the dashboard mark every
 * service "last known").
 */
import { assert, assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase, serviceRow } from "./helpers.ts";
import { startApi } from "./http_harness.ts";
import { readinessOf } from "../src/http/health.ts";
import type { DaemonVitals } from "../src/daemon/boot.ts";

const REFUSED = "cannot write the database: the table 'jm_runs' is full";

for (const backend of BACKENDS) {
  Deno.test(`api (${backend}): while the database refuses writes, /status and /health say so, the rest read now`, async () => {
    await using db = await freshDatabase(backend);
    // As a service's vitals say it: online, its writes refused.
    const vitals: DaemonVitals = {
      jobsLoaded: 0,
      running: 0,
      queued: 0,
      appliedMarker: 0,
      lastReload: null,
      polling: false,
      firing: true,
      databaseOnline: true,
      databaseAway: null,
      databaseWritesRefused: REFUSED,
      databaseReadsRefused: null,
      runRecordsWaiting: 2,
      holdingReason: null,
      outageMs: 0,
      currentOutageMs: 0,
      logRecordsDropped: 0,
      takesShare: true,
      silentJobs: 0,
      runGuardRunning: true,
    };
    await using api = await startApi(db, {}, undefined, Deno.uid(), {
      readiness: () => Promise.resolve(readinessOf(vitals)),
    });
    await api.store.saveNode(serviceRow("alpha"));
    const status = (await api.call("GET", "/api/v1/status")).body as Record<string, unknown>;
    const health = (await api.call("GET", "/api/v1/health")).body as Record<string, unknown>;
    for (const [what, answer] of [["status", status], ["health", health]] as const) {
      const database = answer.database as { state: string; detail: string };
      assertEquals(database.state, "refuses writes", `${what}: ${JSON.stringify(database)}`);
      assert(database.detail.includes(REFUSED), `${what}: ${database.detail}`);
      assert(answer.read_at !== null, `${what} was not read now`);
    }
    assertEquals((status.services as { id: string }[]).map((n) => n.id), ["alpha"]);
  });
}
