/**
 * While the database refuses writes (a full disk) it still answers reads:
 * `/api/v1/status` and `/api/v1/health` say it refuses writes, with the
 * rest read now, not that it is down (which made the dashboard mark every
 * service "last known"). What /readyz says while it refuses reads, run
 * records waiting in memory, is pinned here too.
 */
import { assert, assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase, serviceRow } from "./helpers.ts";
import { HEALTHY_VITALS, startApi } from "./http_harness.ts";
import { readinessOf } from "../src/http/health.ts";
import type { DaemonVitals } from "../src/daemon/boot.ts";

const REFUSED = "cannot write the database: the table 'jm_runs' is full";

for (const backend of BACKENDS) {
  Deno.test(`api (${backend}): while the database refuses writes, /status and /health say so, the rest read now`, async () => {
    await using db = await freshDatabase(backend);
    // As a service's vitals say it: online, its writes refused.
    const vitals: DaemonVitals = {
      ...HEALTHY_VITALS,
      jobsLoaded: 0,
      appliedMarker: 0,
      databaseWritesRefused: REFUSED,
      runRecordsWaiting: 2,
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

Deno.test("readyz: while the database refuses reads, its detail says how many run records wait in memory, as when it refuses writes", () => {
  const denied = "cannot read the database: SELECT command denied to user 'jm'@'localhost'";
  const vitals = (runRecordsWaiting: number): DaemonVitals => ({
    ...HEALTHY_VITALS,
    databaseReadsRefused: denied,
    runRecordsWaiting,
  });
  const said =
    `the database refuses reads: ${denied}; until it may read again, this service sees no job changes, cancels or \`job run\` requests`;
  // On MySQL an UPDATE with a WHERE needs SELECT: the run records wait as they do for a full disk.
  assertEquals(readinessOf(vitals(3)).database, {
    ok: false,
    reads_refused: true,
    detail:
      `${said}; 3 run records wait in memory, written once it may read again (a restart meanwhile loses them)`,
  });
  assertEquals(
    readinessOf(vitals(1)).database.detail,
    `${said}; 1 run record waits in memory, written once it may read again (a restart meanwhile loses them)`,
  );
  // None waiting: nothing said of them.
  assertEquals(readinessOf(vitals(0)).database.detail, said);
});

Deno.test("readyz: while the database refuses writes, its detail says 1 run record waits, not 1 run records wait", () => {
  const full = "cannot write the SQLite database /var/lib/jobsmanager/jobs.db: the disk is full";
  const detail = (runRecordsWaiting: number) =>
    readinessOf({ ...HEALTHY_VITALS, databaseWritesRefused: full, runRecordsWaiting })
      .database.detail;
  const said = (records: string) =>
    `the database refuses writes: ${full}; jobs keep firing, and ${records} in memory, written once it takes writes again (a restart meanwhile loses them)`;
  assertEquals(detail(1), said("1 run record waits"));
  assertEquals(detail(2), said("2 run records wait"));
  assertEquals(detail(0), said("0 run records wait"));
});
