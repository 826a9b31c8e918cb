/**
 * `POST /api/v1/runs/{id}/cancel?wait=S` whose database fails during the
 * wait, the request written (atk225, finding 3): 202, the request said
 * requested and the wait `database_lost` with what the database said, not
 * the 503 of a write that failed. MariaDB: the server's store behind a
 * proxy that is cut; SQLite, which no network cuts: the server's reads of
 * runs fail, as a disk I/O error would have them, from the moment its write
 * went through (the read back after the write included).
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { BACKENDS, freshDatabase, serviceRow, type TestDatabase } from "./helpers.ts";
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
 * `store`, telling `written` once a write to a run went through and the
 * server has its answer; with `lose`, its reads of runs fail from then on,
 * as a database lost just then.
 */
function afterWrite(store: Store, written: () => void, lose: boolean): Store {
  let lost = false;
  return new Proxy(store, {
    get(target, key) {
      if (key === "getRun" && lost) {
        return () => Promise.reject(new DatabaseError("disk I/O error"));
      }
      if (key === "updateRun") {
        return async (...args: Parameters<Store["updateRun"]>) => {
          const done = await target.updateRun(...args);
          if (done) {
            lost = lose;
            written();
          }
          return done;
        };
      }
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

const lostAfterWrite = (store: Store) => afterWrite(store, () => {}, true);

/**
 * The server's store, and `cut()`, after which the server's database is
 * gone: MariaDB's connections closed and refused; SQLite's reads of runs
 * failing, already from the cancel's write on.
 */
function cuttable(db: TestDatabase) {
  // The cut comes once the server has the answer to its write: before, it is a write unconfirmed.
  const { promise: written, resolve } = Promise.withResolvers<void>();
  if (db.target.kind === "sqlite") {
    return {
      served: (store: Store) => afterWrite(store, resolve, true),
      written,
      cut: () => {},
      said: /^disk I\/O error$/,
      async [Symbol.asyncDispose]() {},
    };
  }
  const proxy = proxyFor(db);
  const proxied = throughProxy(db, proxy)();
  return {
    served: () => afterWrite(proxied, resolve, false),
    written,
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
    await Promise.race([
      lost.written,
      waiting.then((answer) => {
        throw new Error(
          `answered before its write: ${answer.status} ${JSON.stringify(answer.body)}`,
        );
      }),
    ]);
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

for (const backend of BACKENDS) {
  Deno.test(`api (${backend}): a cancel whose read back fails once its request is written answers 202 requested, the run as written`, async () => {
    await using db = await freshDatabase(backend);
    await using api = await startApi(db, {}, lostAfterWrite);
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
    // Without the fix: 503 "disk I/O error", the request written all the same.
    const answered = await api.call("POST", `/api/v1/runs/${id}/cancel`);
    const body = answered.body as { outcome: string; run: Run };
    assertEquals([answered.status, body.outcome], [202, "requested"], JSON.stringify(body));
    assertEquals(
      [body.run.status, body.run.cancel_requested_by],
      ["running", "admin token@127.0.0.1"],
    );
    assertEquals((await api.store.getRun(id!))?.cancel_requested_by, "admin token@127.0.0.1");
  });
}
