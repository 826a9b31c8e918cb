/**
 * /metrics and /readyz on a daemon built in-process (fake clock, fake
 * runs, real store), through the HTTP side `serve` starts: the text parsed
 * by a Prometheus text-format parser, the values moving as runs happen.
 */
import parsePrometheus from "parse-prometheus-text-format";
import { NODE_STATES } from "../src/domain/node.ts";
import { hereSpace } from "../src/daemon/presence.ts";
import { assert, assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase, mysqlTest, serviceRow } from "./helpers.ts";
import { proxyFor } from "./tcp_proxy.ts";
import { resolveTarget } from "../src/config/database.ts";
import { DaemonHarness, NODE_ID, T0, throughProxy, until } from "./daemon_harness.ts";
import { ADMIN, READER, TOKENS } from "./http_harness.ts";
import { Metrics, nodeMetrics } from "../src/http/metrics.ts";
import { status } from "../src/app/status.ts";
import { startServeHttp } from "../src/http/serve_http.ts";
import type { HttpServer } from "../src/http/server.ts";

interface Family {
  name: string;
  type: string;
  metrics: { value?: string; labels?: Record<string, string>; buckets?: Record<string, string> }[];
}

async function scrape(server: HttpServer, token = READER): Promise<Family[]> {
  const res = await fetch(`${server.url}/metrics`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  assertEquals(res.status, 200);
  assert(res.headers.get("content-type")!.startsWith("text/plain; version=0.0.4"));
  return parsePrometheus(await res.text()) as Family[];
}

/** The value of one series, or null when the family or the series is absent. */
function value(
  families: Family[],
  name: string,
  labels: Record<string, string> = {},
): number | null {
  const family = families.find((f) => f.name === name);
  const series = family?.metrics.find((m) =>
    Object.entries(labels).every(([k, v]) => m.labels?.[k] === v)
  );
  if (!series) return null;
  return Number(series.value ?? series.buckets?.["+Inf"]);
}

for (const backend of BACKENDS) {
  Deno.test(`metrics (${backend}): runs, skips, fire lag and gauges move as the daemon works`, async () => {
    const db = await freshDatabase(backend);
    const metrics = new Metrics();
    await using h = await DaemonHarness.create(db, { observer: metrics });
    await h.job("tick", { schedule: { second: "*" }, max_instances: "1" });
    const daemon = await h.start();
    const server = await startServeHttp({
      settings: { ...h.settings, "http.listen": "127.0.0.1:0", "http.tokens": TOKENS },
      target: db.target,
      metrics,
      vitals: () => daemon.vitals,
      migrated: daemon.migrated,
      secrets: [],
      onTokens: () => {},
    });
    try {
      // Read within NODES_READ_MS (1 s): the first scrape opens the pool, longer when busy.
      const before = await until(
        async () => {
          const now = await scrape(server);
          return value(now, "jobsmanager_nodes_known") === 1 ? now : null;
        },
        "jobsmanager_nodes_known 1",
        async () =>
          JSON.stringify(
            (await scrape(server)).filter((f) => f.name.startsWith("jobsmanager_nodes")),
          ),
      );
      assertEquals(value(before, "jobsmanager_jobs_loaded"), 1);
      assertEquals(value(before, "jobsmanager_runs_total", { job: "tick" }), null);
      assertEquals(value(before, "jobsmanager_database_up"), 1);
      // Live, or stale once its heartbeats (on the fake clock) are old by the
      // database's: a loaded machine may take seconds to get here.
      const node = NODE_STATES.filter((state) => value(before, "jobsmanager_nodes", { state }));
      assert(["live", "stale"].includes(node.join()), `the node counted once, as ${node}`);
      assert(value(before, "jobsmanager_process_resident_memory_bytes")! > 0, "process metrics");
      const ready = await fetch(`${server.url}/readyz`);
      assertEquals([ready.status, (await ready.json()).status], [200, "ready"]);

      await h.clock.set(T0 + 1000);
      const first = await h.started("tick", T0 + 1000);
      await h.until(
        async () => value(await scrape(server), "jobsmanager_runs_running") === 1,
        "one run in flight on /metrics",
      );
      // Still running at the next fire: max_instances 1 skips it.
      await h.clock.set(T0 + 2000);
      await h.run("tick", T0 + 2000, "skipped");
      first.finish();
      await h.run("tick", T0 + 1000, "success");
      // The skip is counted once its claim is answered: its row may be read back first.
      const after = await until(
        async () => {
          const now = await scrape(server);
          return value(now, "jobsmanager_runs_total", { job: "tick", status: "skipped" }) === null
            ? null
            : now;
        },
        "the skipped fire counted on /metrics",
        async () =>
          JSON.stringify(
            (await scrape(server)).find((f) => f.name === "jobsmanager_runs_total")?.metrics,
          ),
      );
      assertEquals(value(after, "jobsmanager_runs_total", { job: "tick", status: "success" }), 1);
      assertEquals(value(after, "jobsmanager_runs_total", { job: "tick", status: "skipped" }), 1);
      // The parser drops a histogram's labels: with one job, its one series is tick's.
      assertEquals(value(after, "jobsmanager_fire_lag_seconds"), 1, "one lag observed");
      assertEquals(value(after, "jobsmanager_runs_running"), 0);
      assertEquals(value(after, "jobsmanager_runs_queued"), 0);

      const refused = await fetch(`${server.url}/metrics`);
      assertEquals(refused.status, 401, "a scrape needs a token when tokens are set");
      await refused.body?.cancel();
      await h.stop();
      const stopping = await fetch(`${server.url}/readyz`, {
        headers: { Authorization: `Bearer ${ADMIN}` },
      });
      const body = await stopping.json();
      assertEquals([stopping.status, body.status, body.timetable.ok], [503, "not ready", false]);
    } finally {
      await server.close();
    }
  });
}

for (const backend of BACKENDS) {
  Deno.test(`metrics (${backend}): a job removed from the table loses its series at the next reload; a disabled one keeps them`, async () => {
    const db = await freshDatabase(backend);
    const metrics = new Metrics();
    await using h = await DaemonHarness.create(db, { observer: metrics });
    const jobs = ["gone", "kept", "paused"];
    for (const id of jobs) await h.job(id, { schedule: { second: "*" } });
    await h.start();
    await h.clock.set(T0 + 1000);
    for (const id of jobs) (await h.started(id, T0 + 1000)).finish();
    for (const id of jobs) await h.run(id, T0 + 1000, "success");
    /** The jobs with a series, counter or histogram. */
    const series = async () =>
      [...new Set([...(await metrics.text()).matchAll(/job="([^"]+)"/g)].map((m) => m[1]))].sort();
    assertEquals(await series(), jobs);
    await h.removeJob("gone");
    await h.job("paused", { enabled: false });
    // The next poll reads the table.
    await h.clock.set(T0 + 2000);
    await h.until(
      async () => !(await series()).includes("gone") || null,
      "gone's series to go",
    );
    assertEquals(await series(), ["kept", "paused"]);
  });
}

/** A scrape longer than this would eat most of Prometheus' 10 s scrape timeout. */
const SCRAPE_BOUND_MS = 5000;

mysqlTest(
  "metrics (mysql): a database that drops packets leaves jobsmanager_nodes out, the scrape answers at once",
  async () => {
    const db = await freshDatabase("mysql");
    await using h = await DaemonHarness.create(db, { observer: new Metrics() });
    await using proxy = proxyFor(db);
    const metrics = new Metrics();
    const daemon = await h.start();
    const url = new URL(db.url);
    url.port = String(proxy.port);
    // Longer than Prometheus' scrape timeout, as an operator may set it.
    const settings = { ...h.settings, "db.url": url.toString(), "db.connect_timeout": 30 };
    const server = await startServeHttp({
      settings: { ...settings, "http.listen": "127.0.0.1:0", "http.tokens": TOKENS },
      target: resolveTarget(settings),
      metrics,
      vitals: () => daemon.vitals,
      migrated: daemon.migrated,
      secrets: [],
      onTokens: () => {},
    });
    try {
      // Read within NODES_READ_MS (1 s): the first scrape opens the pool, longer when busy.
      await until(
        async () => value(await scrape(server), "jobsmanager_nodes_known") === 1,
        "jobsmanager_nodes_known 1 before the outage",
        async () =>
          JSON.stringify(
            (await scrape(server)).filter((f) => f.name.startsWith("jobsmanager_nodes")),
          ),
      );
      proxy.blackhole();
      for (const n of [1, 2]) {
        const asked = Date.now();
        const during = await scrape(server);
        const took = Date.now() - asked;
        assert(took < SCRAPE_BOUND_MS, `scrape ${n} during the outage took ${took} ms`);
        assertEquals(value(during, "jobsmanager_nodes_known"), 0, `scrape ${n}`);
        assertEquals(value(during, "jobsmanager_nodes", { state: "live" }), null, `scrape ${n}`);
        assertEquals(
          value(during, "jobsmanager_jobs_loaded"),
          0,
          "the daemon's metrics are served",
        );
      }
      proxy.restore();
      await h.until(
        async () => value(await scrape(server), "jobsmanager_nodes_known") === 1,
        "jobsmanager_nodes_known 1 once the database answers again",
      );
    } finally {
      await server.close();
    }
  },
);

for (const backend of BACKENDS) {
  Deno.test(`metrics (${backend}): the runs a killed service left, marked lost at the restart, are counted`, async () => {
    const db = await freshDatabase(backend);
    const metrics = new Metrics();
    await using h = await DaemonHarness.create(db, { observer: metrics });
    await h.job("a", { schedule: { minute: "0" } });
    await h.sql(
      "INSERT INTO jm_runs (job_id, scheduled_at, status, `trigger`, node_id) VALUES ('a', ?, 'running', 'schedule', ?), ('a', ?, 'running', 'schedule', ?)",
      [T0 - 2000, NODE_ID, T0 - 1000, NODE_ID],
    );
    await h.start();
    await until(
      async () =>
        (await metrics.text()).includes('jobsmanager_runs_total{job="a",status="lost"} 2'),
      "two lost runs of a counted",
      () => metrics.text(),
    );
  });
}

for (const backend of BACKENDS) {
  Deno.test(`metrics (${backend}): the runs a cleanly stopped service left, interrupted at the restart, are counted`, async () => {
    const db = await freshDatabase(backend);
    const metrics = new Metrics();
    await using h = await DaemonHarness.create(db, { observer: metrics });
    await h.job("a", { schedule: { minute: "0" } });
    // Its stop could not record how its run ended (the database was away).
    await h.store.saveNode({
      ...serviceRow(NODE_ID),
      stopped_at: T0 - 1000,
      db_heartbeat_at: (await h.store.databaseNow()) - 600_000,
    });
    await h.sql(
      "INSERT INTO jm_runs (job_id, scheduled_at, status, `trigger`, node_id) VALUES ('a', ?, 'running', 'schedule', ?)",
      [T0 - 2000, NODE_ID],
    );
    await h.start();
    await h.run("a", T0 - 2000, "interrupted");
    await until(
      async () =>
        (await metrics.text()).includes('jobsmanager_runs_total{job="a",status="interrupted"} 1'),
      "the interrupted run counted",
      () => metrics.text(),
    );
  });
}

for (const backend of BACKENDS) {
  Deno.test(`metrics (${backend}): a missed row counts one run and every fire it stands for`, async () => {
    const db = await freshDatabase(backend);
    const metrics = new Metrics();
    await using h = await DaemonHarness.create(db, { observer: metrics });
    await h.job("strict", { schedule: { second: "*" } });
    await h.start();
    await h.clock.set(T0 + 1000);
    (await h.started("strict", T0 + 1000)).finish();
    // The event loop was stalled from T0+1 s to T0+4.5 s: the fires at 2 s and 3 s are one row.
    await h.clock.set(T0 + 4500);
    await h.run("strict", T0 + 3000, "missed");
    // Counted once the claim has answered, which may come just after the row is seen.
    const families = await until(
      async () => {
        const now = parsePrometheus(await metrics.text()) as Family[];
        return value(now, "jobsmanager_runs_total", { job: "strict", status: "missed" })
          ? now
          : null;
      },
      "the missed row counted",
      () => metrics.text(),
    );
    assertEquals(value(families, "jobsmanager_runs_total", { job: "strict", status: "missed" }), 1);
    assertEquals(value(families, "jobsmanager_fires_missed_total", { job: "strict" }), 2);
  });
}

mysqlTest(
  "metrics (mysql): an outage is a current length back to 0 when it ends, and a total that only grows",
  async () => {
    const db = await freshDatabase("mysql");
    await using proxy = proxyFor(db);
    const metrics = new Metrics();
    await using h = await DaemonHarness.create(db, {
      observer: metrics,
      store: throughProxy(db, proxy),
    });
    await h.job("tick", { schedule: { second: "*" } });
    const daemon = await h.start();
    metrics.watch(() => daemon.vitals);
    const read = async () => parsePrometheus(await metrics.text()) as Family[];
    const outage = async () => {
      const now = await read();
      return [
        value(now, "jobsmanager_database_up"),
        value(now, "jobsmanager_database_outage_current_seconds"),
        value(now, "jobsmanager_database_outage_seconds_total"),
      ];
    };
    const before = await read();
    assertEquals(await outage(), [1, 0, 0]);
    assertEquals(
      before.find((f) => f.name === "jobsmanager_database_outage_seconds_total")?.type,
      "COUNTER",
    );
    assertEquals(
      before.find((f) => f.name === "jobsmanager_log_records_dropped_total")?.type,
      "COUNTER",
    );
    // No reload yet: no series, rather than a 0 that reads as 1970.
    assertEquals(value(before, "jobsmanager_last_reload_timestamp_seconds"), null);

    await h.clock.set(T0 + 1000);
    (await h.started("tick", T0 + 1000)).finish();
    proxy.cut();
    await h.clock.set(T0 + 2000);
    (await h.started("tick", T0 + 2000)).finish();
    await h.until(async () => (await outage())[0] === 0, "jobsmanager_database_up 0");
    const [, began] = await outage();
    await h.clock.set(T0 + 3000);
    (await h.started("tick", T0 + 3000)).finish();
    // The probe at 3 s fails; the next comes at 5 s.
    await h.until(() => h.line(/^still unreachable .*next attempt in 2 s$/), "a failed probe");
    const [, current, total] = await outage();
    assertEquals([current, total], [began! + 1, began! + 1], "one second more of the one outage");
    await h.clock.set(T0 + 4000);
    (await h.started("tick", T0 + 4000)).finish();
    proxy.restore();
    // The probe at 5 s (they back off from 1 s) finds it back.
    await h.clock.set(T0 + 5000);
    await h.until(async () => (await outage())[0] === 1, "jobsmanager_database_up 1 again");
    (await h.started("tick", T0 + 5000)).finish();
    const [, after, summed] = await outage();
    assertEquals(after, 0, "no outage now");
    assert(summed! >= began! + 1, `the total keeps the outage: ${summed} s`);
  },
);

for (const backend of BACKENDS) {
  Deno.test(`metrics (${backend}): a manual run is counted, but not as a fire's lag`, async () => {
    const db = await freshDatabase(backend);
    const metrics = new Metrics();
    await using h = await DaemonHarness.create(db, { observer: metrics });
    await h.job("report", {
      schedule: { second: "0", minute: "0", hour: "0", day: "1", month: "1" },
    });
    h.runner.endAll();
    await h.start();
    await h.store.claimRuns([
      { job_id: "report", scheduled_at: h.clock.now(), status: "queued", trigger: "manual" },
    ]);
    // The next poll takes it, a second after it was asked.
    await h.clock.set(h.clock.now() + 1000);
    const families = await until(
      async () => {
        const now = parsePrometheus(await metrics.text()) as Family[];
        return value(now, "jobsmanager_runs_total", { job: "report", status: "success" })
          ? now
          : null;
      },
      "the manual run counted",
      () => metrics.text(),
    );
    assertEquals(value(families, "jobsmanager_fire_lag_seconds"), null, await metrics.text());
  });
}

for (const backend of BACKENDS) {
  Deno.test(`metrics (${backend}): a service of this host whose pid is gone counts dead, as status says`, async () => {
    await using db = await freshDatabase(backend);
    const child = new Deno.Command("true").spawn();
    await child.status;
    const store = db.open();
    try {
      await store.migrate();
      await store.saveNode({
        ...serviceRow("killed"),
        host: Deno.hostname(),
        pid: child.pid,
        ...hereSpace(),
        db_heartbeat_at: await store.databaseNow() - 1000,
        heartbeat_ms: 2000,
      });
      // Beating: one in another pid namespace, where this host's pids mean nothing.
      await store.saveNode({
        ...serviceRow("elsewhere"),
        host: Deno.hostname(),
        pid: child.pid,
        boot_id: hereSpace().boot_id,
        pid_ns: hereSpace().pid_ns! + 1,
        db_heartbeat_at: await store.databaseNow(),
        heartbeat_ms: 2000,
      });
      // Judged, not bounded: a busy machine may take past the scrape's 1 s to read jm_nodes.
      const text = await nodeMetrics(store, 2000, 30_000).metrics();
      const families = parsePrometheus(text) as Family[];
      assertEquals(
        NODE_STATES.map((state) => value(families, "jobsmanager_nodes", { state })),
        [1, 0, 1, 0, 0],
        text,
      );
    } finally {
      await store.close();
    }
  });
}

for (const backend of BACKENDS) {
  Deno.test(`metrics (${backend}): a job silent past its alert_after is counted, as status lists it`, async () => {
    const db = await freshDatabase(backend);
    const metrics = new Metrics();
    await using h = await DaemonHarness.create(db, { observer: metrics });
    await h.job("heartbeat", {
      schedule: { second: "30", minute: "0", hour: "0" },
      alert_after: "3s",
    });
    const daemon = await h.start();
    metrics.watch(() => daemon.vitals);
    const silent = async () =>
      value(parsePrometheus(await metrics.text()) as Family[], "jobsmanager_jobs_silent");
    assertEquals(await silent(), null, "not looked at yet");
    // The silence is looked for every few seconds: move on until it is counted.
    await h.until(async () => {
      if (await silent() === 1) return true;
      if (h.clock.now() < T0 + 25_000) await h.clock.advance(1000);
      return false;
    }, "jobsmanager_jobs_silent 1");
    const listed = await status(h.store, {
      now: h.clock.now(),
      heartbeatMs: 5000,
      defaultZone: "UTC",
    });
    assertEquals(listed.silentJobs.map((j) => j.job_id), ["heartbeat"]);
  });
}

Deno.test("metrics: a total that went back (the clock stepped back through an outage) neither fails the scrape nor lowers its counter", async () => {
  await using h = await DaemonHarness.create(await freshDatabase("sqlite"));
  await h.start();
  let outageMs = 5000;
  const metrics = new Metrics();
  metrics.watch(() => ({ ...h.daemon.vitals, outageMs }));
  const said = async () =>
    (await metrics.text()).match(/^jobsmanager_database_outage_seconds_total (\S+)$/m)?.[1];
  assertEquals(await said(), "5");
  outageMs = -15_000;
  assertEquals(await said(), "5");
  outageMs = 7000;
  assertEquals(await said(), "7");
});
