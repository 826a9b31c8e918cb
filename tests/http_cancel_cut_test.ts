/**
 * `POST /api/v1/runs/{id}/cancel?wait=S` whose database fails during the
 * wait, the request written (atk225, finding 3): 202, the request said
 * requested and the wait `database_lost` with what the database said, not
 * the 503 of a write that failed. MariaDB: the server's store behind a
 * proxy that is cut; SQLite, which no network cuts: the server's reads of
 * runs fail as a disk I/O error would have them.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { BACKENDS, freshDatabase, serviceRow, type TestDatabase, waitFor } from "./helpers.ts";
import { proxyFor } from "./tcp_proxy.ts";
import { throughProxy } from "./daemon_harness.ts";
import type { Store } from "../src/store/store.ts";
import { DatabaseError } from "../src/errors.ts";
import { startApi } from "./http_harness.ts";
import type { Run } from "../src/domain/run.ts";

/** A service's row that stays live for 30 minutes of a test, however busy the machine. */
function liveFor30Minutes(id: string) {
  return { ...serviceRow(id), db_heartbeat_at: Date.now(), heartbeat_ms: 600_000 };
}

/**
 * The server's store, and `cut()`, after which the server's database is
 * gone: MariaDB's connections closed and refused; SQLite's reads of runs
 * failing.
 */
function cuttable(db: TestDatabase) {
  if (db.target.kind === "sqlite") {
    let cut = false;
    return {
      served: (store: Store) =>
        new Proxy(store, {
          get(target, key) {
            if (key === "getRun" && cut) {
              return () => Promise.reject(new DatabaseError("disk I/O error"));
            }
            const value = Reflect.get(target, key, target);
            return typeof value === "function" ? value.bind(target) : value;
          },
        }),
      cut: () => {
        cut = true;
      },
      said: /^disk I\/O error$/,
      async [Symbol.asyncDispose]() {},
    };
  }
  const proxy = proxyFor(db);
  const proxied = throughProxy(db, proxy)();
  return {
    served: () => proxied,
    cut: () => proxy.cut(),
    said: /MySQL at 127\.0\.0\.1:\d+/,
    async [Symbol.asyncDispose]() {
      proxy.restore();
      await proxied.close();
      await proxy[Symbol.asyncDispose]();
    },
  };
}

for (const backend of BACKENDS) {
  Deno.test(`api (${backend}): cancel with wait whose database fails during the wait answers 202, the request written and the wait cut short by the database`, async () => {
    await using db = await freshDatabase(backend);
    await using lost = cuttable(db);
    await using api = await startApi(db, {}, lost.served);
    const added = await api.call("POST", "/api/v1/jobs", {
      body: { id: "slow", command: "sleep 100", cron: "@daily" },
    });
    assertEquals(added.status, 201, JSON.stringify(added.body));
    await api.store.saveNode(liveFor30Minutes("n1"));
    const [id] = await api.store.claimRuns([{
      job_id: "slow",
      scheduled_at: Date.now(),
      started_at: Date.now(),
      status: "running",
      trigger: "schedule",
      node_id: "n1",
    }]);
    const waiting = api.call("POST", `/api/v1/runs/${id}/cancel?wait=120`);
    await waitFor(async () => (await api.store.getRun(id!))?.cancel_requested_at !== null || null, {
      timeoutMs: 15_000,
      what: `run ${id}'s cancel request to be written`,
    });
    lost.cut();
    // Without the fix: 503 with the database's error, as if the cancel had failed.
    const answered = await waiting;
    const body = answered.body as { outcome: string; run: Run; waited: string; detail: string };
    assertEquals(
      [answered.status, body.outcome, body.waited],
      [202, "requested", "database_lost"],
      JSON.stringify(answered.body),
    );
    // The run as the request left it.
    assertEquals(body.run.status, "running");
    assert(body.run.cancel_requested_at !== null, JSON.stringify(body.run));
    assertMatch(body.detail, lost.said);
    const row = await api.store.getRun(id!);
    assertEquals([row?.status, row?.cancel_requested_by], ["running", "admin token@127.0.0.1"]);
  });
}
