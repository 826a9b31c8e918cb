/**
 * Once the database answers again after an outage, the service counts it
 * away until its next try (backing off up to 30 s) has written what
 * waited. Meanwhile `/api/v1/status` and `/api/v1/health` read it fine:
 * they say it is `recovering`, the rest read now, not that it is down
 * (which made the dashboard mark every service "last known").
 */
import { assert, assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase } from "./helpers.ts";
import { startApi } from "./http_harness.ts";
import { cuttable, DaemonHarness, NODE_ID, T0 } from "./daemon_harness.ts";
import { readinessOf } from "../src/http/health.ts";

const at = (s: number) => T0 + s * 1000;

for (const backend of BACKENDS) {
  Deno.test(`api (${backend}): the database back but not yet seen back by the service: /status and /health say it recovers, the rest read now; then up`, async () => {
    const db = await freshDatabase(backend);
    const link = { down: false };
    await using h = await DaemonHarness.create(db, { store: cuttable(db, link) });
    await h.job("tick", { schedule: { second: "1" } });
    h.runner.endAll();
    await h.start();
    await using api = await startApi(db, {}, undefined, Deno.uid(), {
      readiness: () => Promise.resolve(readinessOf(h.daemon.vitals)),
    });
    link.down = true;
    await h.clock.set(at(1));
    await h.until(() => h.line(/^the database is unreachable/), "the outage to be seen");
    link.down = false;
    // The service's next try waits on its clock, which stands still: it counts the database away.
    const read = async () => {
      const status = (await api.call("GET", "/api/v1/status")).body as Record<string, unknown>;
      const health = (await api.call("GET", "/api/v1/health")).body as Record<string, unknown>;
      return [["status", status], ["health", health]] as const;
    };
    for (const [what, answer] of await read()) {
      const database = answer.database as { state: string; detail: string };
      assertEquals(database.state, "recovering", `${what}: ${JSON.stringify(database)}`);
      assertEquals(
        database.detail,
        "it answers this server's reads (what this answer says was read now), but the service has not seen it back yet: it counts it back at its next try (within 30 s), once it has written what waited; until then, as it says: unreachable; jobs keep firing from the timetable in memory",
        what,
      );
      assert(answer.read_at !== null, `${what} was not read now`);
    }
    const [[, status]] = await read();
    assertEquals((status.services as { id: string }[]).map((n) => n.id), [NODE_ID]);
    await h.databaseBack();
    for (const [what, answer] of await read()) {
      assertEquals(answer.database, { state: "up", detail: "reachable" }, what);
    }
  });
}
