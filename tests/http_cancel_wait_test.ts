/**
 * `POST /api/v1/runs/{id}/cancel?wait=S`, as `runs cancel --wait --timeout
 * S`, on every backend: 200 once the service has answered (the run ended),
 * 202 with the run as it stands when it has not. The test plays the
 * service: it records a run cancelled once the request is there, as a
 * service does once it has ended it.
 */
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { DatabaseSync } from "node:sqlite";
import { BACKENDS, freshDatabase, serviceRow, type TestDatabase, waitFor } from "./helpers.ts";
import { proxyFor } from "./tcp_proxy.ts";
import { throughProxy } from "./daemon_harness.ts";
import type { Store } from "../src/store/store.ts";
import { type Answer, type Api, startApi } from "./http_harness.ts";
import { Starts } from "../src/http/starts.ts";
import type { Run } from "../src/domain/run.ts";
import type { ServeDeps } from "../src/http/server.ts";

interface Cancelled {
  outcome: string;
  run: Run;
  waited?: string | null;
}

async function withApi(
  backend: (typeof BACKENDS)[number],
  extra: Partial<ServeDeps>,
  fn: (api: Api) => Promise<void>,
) {
  await using db = await freshDatabase(backend);
  await using api = await startApi(db, {}, undefined, undefined, extra);
  const added = await api.call("POST", "/api/v1/jobs", {
    body: { id: "slow", command: "sleep 100", cron: "@daily" },
  });
  assertEquals(added.status, 201, JSON.stringify(added.body));
  await fn(api);
}

/** A run `running` on service `node` (live unless its row says otherwise). */
async function runningOn(api: Api, node: string): Promise<number> {
  const [id] = await api.store.claimRuns([{
    job_id: "slow",
    scheduled_at: Date.now() + Math.floor(Math.random() * 1_000_000),
    started_at: Date.now(),
    status: "running",
    trigger: "schedule",
    node_id: node,
  }]);
  return id!;
}

/** Once run `id`'s cancel is asked for, record it cancelled, as the service running it does. */
async function answer(api: Api, id: number): Promise<void> {
  const asked = await waitFor(async () => {
    const run = await api.store.getRun(id);
    return run?.cancel_requested_at !== null ? run : null;
  }, { timeoutMs: 15_000, what: `run ${id}'s cancel to be asked for` });
  assert(
    await api.store.updateRun(id, {
      status: "cancelled",
      finished_at: Date.now(),
      note: `cancelled by ${asked!.cancel_requested_by}`,
    }, "running"),
    `run ${id} was running`,
  );
}

const body = (answer: Answer) => answer.body as Cancelled;

/** A service's row that stays live for 30 minutes of a test, however busy the machine. */
function liveFor30Minutes(id: string) {
  return { ...serviceRow(id), db_heartbeat_at: Date.now(), heartbeat_ms: 600_000 };
}

for (const backend of BACKENDS) {
  Deno.test(`api (${backend}): cancel with wait answers 200 once the service has ended the run, 202 with the run as it stands at the timeout`, () =>
    withApi(backend, {}, async (api) => {
      await api.store.saveNode(liveFor30Minutes("n1"));
      const answered = await runningOn(api, "n1");
      const waiting = api.call("POST", `/api/v1/runs/${answered}/cancel?wait=60`);
      await answer(api, answered);
      const done = await waiting;
      assertEquals(
        [done.status, body(done).outcome, body(done).waited, body(done).run.status],
        [200, "requested", "ended", "cancelled"],
        JSON.stringify(done.body),
      );
      assertEquals(body(done).run.note, "cancelled by admin token@127.0.0.1");

      // No answer within the wait: the request stands, the run as it is.
      const unanswered = await runningOn(api, "n1");
      const late = await api.call("POST", `/api/v1/runs/${unanswered}/cancel?wait=1`);
      assertEquals(
        [late.status, body(late).outcome, body(late).waited, body(late).run.status],
        [202, "requested", "timeout", "running"],
        JSON.stringify(late.body),
      );
      assertEquals(body(late).run.cancel_requested_by, "admin token@127.0.0.1");

      // Nothing to wait for: a request no service took is dropped, ended at once.
      const queued = (await api.call("POST", "/api/v1/jobs/slow/run", { body: { queue: true } }))
        .body as Run;
      const dropped = await api.call("POST", `/api/v1/runs/${queued.id}/cancel?wait=60`);
      assertEquals(
        [dropped.status, body(dropped).outcome, body(dropped).waited, body(dropped).run.status],
        [200, "dropped", null, "cancelled"],
      );
      // Without wait, as before: 202 at once, nothing said of a wait.
      const asked = await api.call("POST", `/api/v1/runs/${unanswered}/cancel`);
      assertEquals([asked.status, "waited" in body(asked)], [202, false]);
      for (const wait of ["301", "-1", "soon"]) {
        const refused = await api.call("POST", `/api/v1/runs/${unanswered}/cancel?wait=${wait}`);
        assertEquals(refused.status, 400, JSON.stringify(refused.body));
        assertStringIncludes((refused.body as { error: string }).error, "wait");
      }
    }));

  Deno.test(`api (${backend}): cancel with wait of a run on a service that has stopped answers 202 saying so, not at the timeout`, () =>
    withApi(backend, {}, async (api) => {
      await api.store.saveNode({ ...serviceRow("gone"), stopped_at: Date.now() - 1000 });
      const id = await runningOn(api, "gone");
      const answered = await api.call("POST", `/api/v1/runs/${id}/cancel?wait=300`);
      assertEquals(
        [answered.status, body(answered).waited, body(answered).run.status],
        [202, "stopped", "running"],
        JSON.stringify(answered.body),
      );
    }));

  Deno.test(`api (${backend}): cancel with wait of a run whose service is not live answers 202 at once, the request recorded`, () =>
    withApi(backend, {}, async (api) => {
      // A lone service killed with SIGKILL (no other node declares it dead), and a node with no row.
      await api.store.saveNode(serviceRow("killed", { agoMs: 3_600_000 }));
      for (const node of ["killed", "unknown"]) {
        const id = await runningOn(api, node);
        // Without the check, this waited out its 300 s.
        let timer: ReturnType<typeof setTimeout> | undefined;
        const answered = await Promise.race([
          api.call("POST", `/api/v1/runs/${id}/cancel?wait=300`),
          new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), 60_000)),
        ]).finally(() => clearTimeout(timer));
        assert(answered !== null, `${node}: no answer within 60 s of a 300 s wait`);
        assertEquals(
          [
            answered.status,
            body(answered).outcome,
            body(answered).waited,
            body(answered).run.status,
          ],
          [202, "requested", "not_live", "running"],
          JSON.stringify(answered.body),
        );
        assertEquals((await api.store.getRun(id))?.cancel_requested_by, "admin token@127.0.0.1");
      }
    }));

  Deno.test(`api (${backend}): cancels that wait leave the door to other requests, and count among the live streams`, () =>
    withApi(backend, { starts: new Starts(), maxStreams: 5 }, async (api) => {
      await api.store.saveNode(liveFor30Minutes("n1"));
      // As many waits as the door lets in at once (starts.ts MAX_HANDLED), and one more.
      const ids = await Promise.all([1, 2, 3, 4, 5].map(() => runningOn(api, "n1")));
      const waits = ids.map((id) => api.call("POST", `/api/v1/runs/${id}/cancel?wait=120`));
      await waitFor(async () => {
        const runs = await Promise.all(ids.map((id) => api.store.getRun(id)));
        return runs.every((r) => r?.cancel_requested_at !== null) || null;
      }, { timeoutMs: 15_000, what: "every cancel to be asked for" });
      // Answered while they wait, not after them.
      const listed = await Promise.race([
        api.call("GET", "/api/v1/runs?limit=10"),
        new Promise<null>((resolve) => setTimeout(() => resolve(null), 20_000)),
      ]);
      assertEquals(listed?.status, 200, "a list answered while five cancels wait");
      // The live streams are all taken: one more wait is refused before it asks anything.
      const more = await runningOn(api, "n1");
      const refused = await api.call("POST", `/api/v1/runs/${more}/cancel?wait=5`);
      assertEquals(refused.status, 503, JSON.stringify(refused.body));
      assertEquals((await api.store.getRun(more))?.cancel_requested_at, null);
      for (const id of ids) await answer(api, id);
      for (const done of await Promise.all(waits)) {
        assertEquals([done.status, body(done).waited], [200, "ended"]);
      }
    }));
}

/**
 * A database that hangs for the server's store while the test's own
 * connection still answers: SQLite with its write lock held by another
 * connection; MariaDB with the server's store behind a proxy that holds
 * every byte (`blackhole`).
 */
function hangable(db: TestDatabase) {
  if (db.target.kind === "sqlite") {
    const holder = new DatabaseSync(db.target.path);
    return {
      served: (store: Store) => store,
      hang: () => holder.exec("BEGIN IMMEDIATE"),
      release: () => {
        if (holder.isTransaction) holder.exec("ROLLBACK");
      },
      // deno-lint-ignore require-await
      async [Symbol.asyncDispose]() {
        if (holder.isTransaction) holder.exec("ROLLBACK");
        holder.close();
      },
    };
  }
  const proxy = proxyFor(db);
  const proxied = throughProxy(db, proxy)();
  return {
    served: () => proxied,
    hang: () => proxy.blackhole(),
    release: () => proxy.restore(),
    async [Symbol.asyncDispose]() {
      proxy.restore();
      await proxied.close();
      await proxy[Symbol.asyncDispose]();
    },
  };
}

for (const backend of BACKENDS) {
  Deno.test(`api (${backend}): cancel with wait on a database that hangs answers 503 at the wait and its margin, the cancel not confirmed written`, async () => {
    await using db = await freshDatabase(backend);
    await using hung = hangable(db);
    await using api = await startApi(db, {}, hung.served);
    const added = await api.call("POST", "/api/v1/jobs", {
      body: { id: "slow", command: "sleep 100", cron: "@daily" },
    });
    assertEquals(added.status, 201, JSON.stringify(added.body));
    await api.store.saveNode(liveFor30Minutes("n1"));
    const id = await runningOn(api, "n1");
    hung.hang();
    // Without the bound, the answer came at the driver's timeout (10 s), with its error.
    const answered = await api.call("POST", `/api/v1/runs/${id}/cancel?wait=1`);
    assertEquals([answered.status, answered.body], [503, {
      error:
        `the database did not answer within 3 s (the wait and 2 s to write the request), so the cancel of run ${id} is not confirmed written: it may still be once the database answers; see the run with \`jobsmanager runs show ${id}\`, and cancel it again if it has no cancel request`,
    }]);
    // The write given up goes on: it lands once the database answers.
    hung.release();
    await waitFor(async () => (await api.store.getRun(id))?.cancel_requested_at !== null || null, {
      timeoutMs: 30_000,
      what: `run ${id}'s cancel request to land`,
    });
  });
}
