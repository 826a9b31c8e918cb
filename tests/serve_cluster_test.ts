/**
 * Several `jobsmanager serve` on one MariaDB database (issue 10): node ids,
 * every fire run once, the jobs shared, a killed node's runs lost and its
 * jobs taken over, an outage held without double fires. Each command
 * appends its fire to a file, so a fire that ran twice shows even where
 * jm_runs' unique key would hide it.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { freshDatabase, mysqlTest, type TestDatabase, waitFor } from "./helpers.ts";
import {
  jm,
  killLeftovers,
  runs,
  runsDetail,
  Serve,
  type ServeSettings,
  sql,
  uniqueSeconds,
  writeConfig,
} from "./serve_helpers.ts";
import { proxyFor } from "./tcp_proxy.ts";
import { assignJobs } from "../src/domain/share.ts";

const HEARTBEAT_S = 1;
/** The bound: fires of a dead node start elsewhere within 3 heartbeats + 2 s. */
const FAILOVER_MS = 3 * HEARTBEAT_S * 1000 + 2000;

interface NodeRow {
  id: string;
  pid: number;
  stopped_at: number | null;
  jobs_owned: number | null;
}

async function nodes(db: TestDatabase): Promise<NodeRow[]> {
  return (await sql(db, "SELECT id, pid, stopped_at, jobs_owned FROM jm_nodes ORDER BY id")).map(
    (r) => ({
      id: String(r.id),
      pid: Number(r.pid),
      stopped_at: r.stopped_at === null ? null : Number(r.stopped_at),
      jobs_owned: r.jobs_owned === null ? null : Number(r.jobs_owned),
    }),
  );
}

/** Start `count` services with no node id configured, and wait until each sees all. */
async function cluster(
  db: TestDatabase,
  count: number,
  url = db.url,
  settings: ServeSettings = {},
): Promise<Serve[]> {
  const config = await writeConfig(db, { heartbeat_interval: HEARTBEAT_S, ...settings });
  const services = Array.from(
    { length: count },
    () => new Serve({ ...db, url } as TestDatabase, config),
  );
  await waitFor(async () => {
    for (const s of services) if (!s.running) throw new Error(`serve exited:\n${s.stderr}`);
    const live = (await nodes(db)).filter((n) => n.stopped_at === null);
    return live.length === count &&
      services.every((s) => s.stderr.includes(`"message":"${count} live nodes`));
  }, {
    timeoutMs: 20_000,
    what: `${count} services live, each seeing the others`,
    detail: async () => JSON.stringify(await nodes(db)) + services.map((s) => s.stderr).join("\n"),
  }).catch(async (error) => {
    await stopAll(services);
    throw error;
  });
  return services;
}

/** The ids of {@link everySecondJobs}. */
function everySecondIds(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `j${String(i).padStart(2, "0")}`);
}

/** Add `count` jobs firing every second that append `JOB INSTANT NODE-PID` to `file`. */
async function everySecondJobs(db: TestDatabase, count: number, file: string): Promise<void> {
  const jobs = everySecondIds(count).map((id) => ({
    id,
    second: "*",
    command: `echo "$JM_JOB_ID $JM_SCHEDULED_AT" >> ${file}`,
  }));
  await Deno.writeTextFile(`${db.dir}/jobs.json`, JSON.stringify({ jobs }));
  await jm(db, "apply", `${db.dir}/jobs.json`);
}

/** The fires each command wrote, and those written more than once. */
async function fired(file: string): Promise<{ total: number; twice: string[] }> {
  const lines = (await Deno.readTextFile(file).catch(() => "")).split("\n").filter(Boolean);
  const seen = new Map<string, number>();
  for (const line of lines) seen.set(line, (seen.get(line) ?? 0) + 1);
  return { total: lines.length, twice: [...seen].filter(([, n]) => n > 1).map(([l]) => l) };
}

async function stopAll(services: Serve[]): Promise<void> {
  for (const s of services) if (s.running) await s.terminate();
}

mysqlTest(
  "cluster: two services with no configuration on one host both live in status",
  async () => {
    await using db = await freshDatabase("mysql");
    await jm(db, "db", "migrate");
    const services = await cluster(db, 2);
    try {
      const ids = (await nodes(db)).map((n) => n.id);
      const host = Deno.hostname();
      assertEquals(ids, [host, `${host}:2`]);
      const status = await jm(db, "status");
      for (const id of ids) assertMatch(status.stdout, new RegExp(`^${id}\\s+live\\b`, "m"));
      // A service given the id a live one holds refuses to start, naming the fix.
      const third = new Serve(db, `${db.dir}/config.json5`, { JM_NODE_ID: host });
      const exit = await third.exit(20_000, "a third service with a taken node id to refuse");
      assertEquals(exit.code !== 0, true, third.stderr);
      assertMatch(third.stderr, /node id .* is in use by a live service .*JM_NODE_ID/);
    } finally {
      await stopAll(services);
    }
  },
);

mysqlTest(
  "cluster: three services run 50 every-second jobs once each, spread 25-42 %",
  async () => {
    await using db = await freshDatabase("mysql");
    const file = `${db.dir}/fired.txt`;
    await everySecondJobs(db, 50, file);
    const services = await cluster(db, 3);
    // Until all three see each other, the first started fires every job
    // alone (for longer on a busy machine): the spread is that of the fires after.
    const together = Date.now() + 2000;
    try {
      await waitFor(async () => (await fired(file)).total >= 1000, {
        timeoutMs: 90_000,
        what: "1,000 fires",
        detail: async () => `${(await fired(file)).total} fires`,
      });
    } finally {
      await stopAll(services);
    }
    const { twice } = await fired(file);
    assertEquals(twice, [], "fires whose command ran more than once");
    const all = (await runs(db)).filter((r) =>
      r.status === "success" && r.scheduled_at >= together
    );
    assert(all.length >= 500, `${all.length} runs after the three saw each other`);
    const byNode = new Map<string, number>();
    for (const r of all) byNode.set(r.node_id!, (byNode.get(r.node_id!) ?? 0) + 1);
    assertEquals(byNode.size, 3, JSON.stringify([...byNode]));
    for (const [node, n] of byNode) {
      const share = n / all.length;
      assert(share >= 0.25 && share <= 0.42, `${node} ran ${n} of ${all.length} runs`);
    }
  },
);

mysqlTest(
  "cluster: kill -9 of a node: its run becomes lost, its job fires from another",
  async () => {
    await using db = await freshDatabase("mysql");
    const tag = uniqueSeconds(0).slice(2);
    await jm(db, "job", "add", "long", "--second", "*", "--command", `sleep 3000.${tag}`);
    const services = await cluster(db, 2);
    try {
      // Started (its group known): a fire claimed `running` may yet be missed, its start too
      // late on a busy machine.
      const first = await waitFor(
        async () => (await runs(db, "long")).find((r) => r.status === "running" && r.pgid !== null),
        { timeoutMs: 10_000, what: "a running run of long", detail: runsDetail(db, "long") },
      );
      const owner = (await nodes(db)).find((n) => n.id === first.node_id)!;
      const victim = services.find((s) => s.pid === owner.pid)!;
      const killedAt = Date.now();
      victim.signal("SIGKILL");
      const lost = await waitFor(
        async () => (await runs(db, "long")).find((r) => r.id === first.id && r.status === "lost"),
        {
          timeoutMs: 15_000,
          what: `run ${first.id} to become lost`,
          detail: runsDetail(db, "long"),
        },
      );
      assertMatch(lost.note!, new RegExp(`node ${owner.id} .*declared dead at`));
      const next = await waitFor(
        async () =>
          (await runs(db, "long")).find((r) =>
            r.status === "running" && r.node_id !== owner.id && r.started_at !== null
          ),
        { timeoutMs: 15_000, what: "long running on the survivor", detail: runsDetail(db, "long") },
      );
      assert(
        next.started_at! - killedAt <= FAILOVER_MS,
        `started ${next.started_at! - killedAt} ms after the kill (bound ${FAILOVER_MS} ms)`,
      );
    } finally {
      await stopAll(services);
      await killLeftovers(`sleep 3000\\.${tag}`);
    }
  },
);

mysqlTest(
  "cluster: a node stopping hands its jobs over while it ends its run, which holds max_instances",
  async () => {
    await using db = await freshDatabase("mysql");
    const tag = uniqueSeconds(0).slice(2);
    const file = `${db.dir}/fired.txt`;
    await everySecondJobs(db, 10, file);
    // Time enough to end its run: the test ends it.
    const services = await cluster(db, 2, db.url, { shutdown_timeout: 120 });
    try {
      // The first node fired every job alone until it saw the second: each fires on its owner first.
      const ids = (await nodes(db)).map((n) => n.id);
      const owners = assignJobs([...everySecondIds(10), "long"], ids);
      await waitFor(async () => {
        const recent = (await runs(db)).filter((r) => r.scheduled_at >= Date.now() - 2500);
        return recent.length >= 10 && recent.every((r) => r.node_id === owners.get(r.job_id));
      }, { timeoutMs: 20_000, what: "every job to fire on its owner", detail: runsDetail(db) });
      // Its first run runs till the test ends it; those after end at once.
      await jm(
        db,
        "job",
        "add",
        "long",
        "--second",
        "*",
        "--command",
        `mkdir ${db.dir}/long.first 2>/dev/null && exec sleep 3000.${tag}; true`,
      );
      // Started (its group known): a fire claimed `running` may yet be missed, its start too
      // late on a busy machine.
      const first = await waitFor(
        async () => (await runs(db, "long")).find((r) => r.status === "running" && r.pgid !== null),
        { timeoutMs: 10_000, what: "a running run of long", detail: runsDetail(db, "long") },
      );
      assertEquals(first.node_id, owners.get("long"), "long runs on its owner");
      const owner = (await nodes(db)).find((n) => n.id === first.node_id)!;
      const leaving = services.find((s) => s.pid === owner.pid)!;
      const taking = services.find((s) => s !== leaving)!;
      const signalledAt = Date.now();
      leaving.signal("SIGTERM");
      await waitFor(
        async () =>
          new RegExp(`^${owner.id}\\s+leaving\\b`, "m").test((await jm(db, "status")).stdout),
        { timeoutMs: 10_000, what: `status to show ${owner.id} leaving` },
      );
      // Its other jobs fire on the other node while it still ends its run.
      const ownedBefore = new Set(everySecondIds(10).filter((id) => owners.get(id) === owner.id));
      assert(ownedBefore.size > 0, `${owner.id} owns none of the every-second jobs`);
      const handedOver = await waitFor(
        async () =>
          (await runs(db)).find((r) =>
            ownedBefore.has(r.job_id) && r.node_id !== owner.id && r.scheduled_at > signalledAt &&
            r.status === "success"
          ),
        { timeoutMs: 15_000, what: `a job of ${owner.id} run elsewhere`, detail: runsDetail(db) },
      );
      const skipped = await waitFor(
        async () =>
          (await runs(db, "long")).find((r) =>
            r.status === "skipped" && r.node_id !== owner.id && r.scheduled_at > signalledAt
          ),
        {
          timeoutMs: 15_000,
          what: "a fire of long skipped elsewhere",
          detail: runsDetail(db, "long"),
        },
      );
      assertEquals(
        skipped.note,
        `max_instances (1) runs were still running (1 of them on node ${owner.id})`,
      );
      assert(leaving.running, `${owner.id} ended before its run:\n${leaving.stderr}`);
      assertEquals(
        (await runs(db, "long")).find((r) => r.id === first.id)?.status,
        "running",
        `run ${first.id} of long, when run ${handedOver.id} of ${handedOver.job_id} ran elsewhere`,
      );
      // Its id is still its own: a service given it refuses to start.
      const third = new Serve(db, `${db.dir}/config.json5`, { JM_NODE_ID: owner.id });
      const refused = await third.exit(20_000, "a service with the stopping node's id to refuse")
        .catch((error) => {
          third.signal("SIGKILL");
          throw new Error(`${error.message}; it logged:\n${third.stderr}`);
        });
      assert(refused.code !== 0, third.stderr);
      assertMatch(
        third.stderr,
        /is in use by a service that is stopping and still ending its runs \(pid \d+ on .*\): start this one once it has stopped/,
      );
      // Its run ends: it stops, and no one declared it dead.
      await killLeftovers(`sleep 3000\\.${tag}`);
      const exit = await leaving.exit(30_000, `${owner.id} to stop once its run ended`);
      assertEquals(exit.code, 0, leaving.stderr);
      const row = (await sql(
        db,
        `SELECT stopped_at, declared_dead_at FROM jm_nodes WHERE id = '${owner.id}'`,
      ))[0];
      assert(row.stopped_at !== null && row.declared_dead_at === null, JSON.stringify(row));
      assert(taking.running, taking.stderr);
    } finally {
      await stopAll(services);
      await killLeftovers(`sleep 3000\\.${tag}`);
    }
    assertEquals((await fired(file)).twice, [], "fires whose command ran more than once");
  },
);

mysqlTest("cluster: a database outage with two nodes: no fire runs twice", async () => {
  await using db = await freshDatabase("mysql");
  await using proxy = proxyFor(db);
  const url = new URL(db.url);
  url.port = String(proxy.port);
  const file = `${db.dir}/fired.txt`;
  await everySecondJobs(db, 10, file);
  const services = await cluster(db, 2, url.toString());
  try {
    await waitFor(async () => (await fired(file)).total >= 20, {
      timeoutMs: 20_000,
      what: "fires before the outage",
    });
    proxy.cut();
    await waitFor(
      () => services.every((s) => s.stderr.includes("the database is unreachable")),
      { timeoutMs: 20_000, what: "both services to see the outage" },
    );
    const during = (await fired(file)).total;
    proxy.restore();
    await waitFor(
      () => services.every((s) => s.stderr.includes("the database is back")),
      { timeoutMs: 40_000, what: "both services to see the database back" },
    );
    await waitFor(async () => (await fired(file)).total >= during + 20, {
      timeoutMs: 20_000,
      what: "fires after the outage",
    });
  } finally {
    await stopAll(services);
  }
  const { twice } = await fired(file);
  assertEquals(twice, [], await twiceDetail(db, twice, services));
});

/** What the rows and the services' logs say of `twice` ("JOB ISO" lines), for a failure's message. */
async function twiceDetail(db: TestDatabase, twice: string[], services: Serve[]): Promise<string> {
  const parts = ["fires whose command ran more than once"];
  for (const line of twice) {
    const [job, at] = line.split(" ");
    const rows = await sql(
      db,
      `SELECT id, node_id, status, \`trigger\`, started_at, finished_at, note FROM jm_runs WHERE job_id = '${job}' AND scheduled_at = ${
        Date.parse(at)
      }`,
    );
    parts.push(`${line}: ${JSON.stringify(rows)}`);
  }
  for (const [i, s] of services.entries()) parts.push(`service ${i + 1}:\n${s.stderr}`);
  return parts.join("\n");
}
