/**
 * The HTTP side listens before the service has migrated the schema (a new
 * database, one being upgraded): meanwhile the API answers 503 saying the
 * service is starting, with Retry-After, and `/healthz` says `starting`,
 * rather than 500 "no such table" and "ok"; a path the API does not have
 * is 404 as ever, and the start's 503s are its state, not a warning. The
 * migration is held by the test, not raced.
 */
import { assertEquals, assertStringIncludes } from "./assert.ts";
import { BACKENDS, freshDatabase, waitFor } from "./helpers.ts";
import { DaemonHarness, storeWith } from "./daemon_harness.ts";
import { ADMIN, TOKENS } from "./http_harness.ts";
import { Metrics } from "../src/http/metrics.ts";
import { startServeHttp } from "../src/http/serve_http.ts";
import { MIGRATING } from "../src/http/health.ts";
import { renderMessage } from "../src/daemon/log_sink.ts";
import { describeTarget } from "../src/store/target.ts";

for (const backend of BACKENDS) {
  Deno.test(`http while migrating (${backend}): the API says the service is starting, then answers`, async () => {
    const db = await freshDatabase(backend);
    const begun = Promise.withResolvers<void>();
    const gate = Promise.withResolvers<void>();
    await using h = await DaemonHarness.create(db, {
      unmigrated: true,
      store: storeWith(db, {
        migrate: (store) => async (options) => {
          begun.resolve();
          await gate.promise;
          return await store.migrate(options);
        },
      }),
    });
    const daemon = await h.start({ wait: false });
    const server = await startServeHttp({
      settings: { ...h.settings, "http.listen": "127.0.0.1:0", "http.tokens": TOKENS },
      target: db.target,
      metrics: new Metrics(),
      vitals: () => daemon.vitals,
      migrated: daemon.migrated,
      secrets: [],
      onTokens: () => {},
    });
    try {
      await begun.promise;
      const get = async (path: string) => {
        const res = await fetch(`${server.url}${path}`, {
          headers: { Authorization: `Bearer ${ADMIN}` },
        });
        return {
          status: res.status,
          retry: res.headers.get("retry-after"),
          body: await res.json(),
        };
      };
      const health = await get("/healthz");
      assertEquals([health.status, health.body.status], [200, "starting"]);
      assertStringIncludes(
        health.body.detail,
        "connecting to the database and migrating its schema",
      );
      const jobs = await get("/api/v1/jobs");
      assertEquals([jobs.status, jobs.retry], [503, "5"], JSON.stringify(jobs.body));
      assertEquals(
        jobs.body.error,
        "the service is starting: it is connecting to the database and migrating its schema; try again in a few seconds",
      );
      // What reads no table answers: the dashboard learns its role, a client the API.
      assertEquals((await get("/api/v1/session")).status, 200);
      assertEquals((await get("/api/v1/openapi.json")).status, 200);
      // Only what the API has is starting: another path is none, starting or not.
      const unknown = await get("/api/v1/no-such-thing");
      assertEquals([unknown.status, unknown.body.error], [
        404,
        "no such endpoint: GET /api/v1/no-such-thing",
      ]);
      const ready = await get("/readyz");
      assertEquals([ready.status, ready.body.database], [503, { ok: false, detail: MIGRATING }]);

      gate.resolve();
      let last: unknown = null;
      await waitFor(async () => {
        last = await get("/api/v1/jobs");
        return (last as { status: number }).status === 200;
      }, {
        timeoutMs: 15_000,
        what: "GET /api/v1/jobs to answer 200 once the schema is migrated",
        detail: () => JSON.stringify(last),
      });
      assertEquals((await get("/healthz")).body, { status: "ok" });
      await h.until(() => h.line(/^loaded \d+ enabled jobs/), "the daemon to load its jobs");
      // A client asking while the service starts is no fault: the start logs no warning of it
      // (only, on MySQL, that it made the tables of the empty database: SQLite's file was there,
      // empty, and an empty file is not one that held another's tables).
      const warned = h.logs.filter((r) => r.level === "warning" || r.level === "error")
        .map((r) => `${r.level}: ${renderMessage(r)}`);
      const database = describeTarget(db.target);
      assertEquals(
        warned,
        backend === "mysql"
          ? [
            `warning: created jobsmanager's tables in the empty database ${database}; add jobs with \`jobsmanager job add --database ${database} …\``,
          ]
          : [],
      );
    } finally {
      await server.close();
    }
  });
}
