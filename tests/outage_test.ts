/**
 * `serve` through a database outage, end to end on MySQL: the service
 * talks to MariaDB through a loopback proxy (tcp_proxy.ts) that the test
 * cuts (connections closed, new ones refused) or blackholes (queries
 * hang). The service must keep firing from its timetable and logging to
 * its file, then write the buffered run records and log rows once the
 * database is back, and resume reload polling by itself.
 */
import { assert, assertEquals } from "./assert.ts";
import { freshDatabase, MYSQL_URL, type TestDatabase } from "./helpers.ts";
import {
  describeRuns,
  jm,
  ready,
  type RunRow,
  runs,
  runsDetail,
  type Serve,
  sql,
  startServe,
  waitFor,
} from "./serve_helpers.ts";
import { TcpProxy } from "./tcp_proxy.ts";

const OUTAGE_MS = 4000;

/** The line of the service's log file, as LogTape's JSON lines formatter writes it. */
interface FileLine {
  "@timestamp": string;
  level: string;
  logger: string;
  message: string;
  properties: Record<string, unknown>;
}

async function readLines(path: string): Promise<string[]> {
  try {
    // A line still being written has no newline yet: leave it out.
    return (await Deno.readTextFile(path)).split("\n").slice(0, -1);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

function within(line: FileLine, from: number, to: number): boolean {
  const at = Date.parse(line["@timestamp"]);
  return at > from && at < to;
}

async function logFile(db: TestDatabase): Promise<FileLine[]> {
  return (await readLines(`${db.dir}/log/jobsmanager.log`)).map((l) => JSON.parse(l));
}

/** The fire instants the job wrote to DIR/fires.txt ($JM_SCHEDULED_AT), as ms. */
async function fires(db: TestDatabase): Promise<number[]> {
  return (await readLines(`${db.dir}/fires.txt`)).map((l) => Date.parse(l));
}

/** `db` as the service sees it: through the proxy's port. */
function throughProxy(db: TestDatabase, proxy: TcpProxy): TestDatabase {
  const url = new URL(db.url);
  url.port = String(proxy.port);
  return { ...db, url: url.toString() };
}

function proxyFor(db: TestDatabase): TcpProxy {
  if (db.target.kind !== "mysql") throw new Error("outage tests need MySQL");
  return TcpProxy.start({ hostname: db.target.host, port: db.target.port });
}

/** Every second, append the fire instant to DIR/fires.txt. */
async function addTick(db: TestDatabase, ...options: string[]): Promise<void> {
  await jm(
    db,
    "job",
    "add",
    "tick",
    ...options,
    "--second",
    "*",
    "--command",
    `echo "$JM_SCHEDULED_AT" >> '${db.dir}/fires.txt'`,
  );
}

async function startThroughProxy(
  db: TestDatabase,
  proxy: TcpProxy,
  ...tickOptions: string[]
): Promise<Serve> {
  await addTick(db, ...tickOptions);
  const serve = await startServe(throughProxy(db, proxy));
  await ready(db, serve);
  await waitFor(async () => (await runs(db, "tick")).some((r) => r.status === "success"), {
    timeoutMs: 5000,
    what: "a first successful run of tick",
    detail: runsDetail(db),
  });
  return serve;
}

/** Wait out the outage, checking that the job keeps firing throughout. */
async function outage(db: TestDatabase, serve: Serve, from: number): Promise<number> {
  let checked = from;
  while (Date.now() < from + OUTAGE_MS) {
    // Every second of the outage gets its fire, at most a second late (the claim timeout).
    const until = Math.min(Date.now(), from + OUTAGE_MS);
    await waitFor(async () => (await fires(db)).some((at) => at >= checked), {
      timeoutMs: 2500,
      what: `a fire at or after ${new Date(checked).toISOString()} during the outage`,
      detail: async () => `fires: ${(await fires(db)).map((t) => new Date(t).toISOString())}`,
    });
    assert(serve.running, `serve exited during the outage:\n${serve.stderr}`);
    checked = Math.max(checked, until);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return Date.now();
}

/** The fire instants written during [from, to], checked to be whole consecutive seconds. */
async function firesBetween(db: TestDatabase, from: number, to: number): Promise<number[]> {
  const during = (await fires(db)).filter((at) => at > from && at < to);
  assert(during.length >= OUTAGE_MS / 1000 - 1, `only ${during.length} fires in the outage`);
  for (const [i, at] of during.entries()) {
    if (i > 0) assertEquals(at - during[i - 1], 1000, `fires ${during} are not every second`);
  }
  return during;
}

function byInstant(rows: RunRow[]): Map<number, RunRow[]> {
  const map = new Map<number, RunRow[]>();
  for (const r of rows) map.set(r.scheduled_at, [...(map.get(r.scheduled_at) ?? []), r]);
  return map;
}

/** Wait until every instant has exactly one run that ended `success`; return them. */
async function recorded(db: TestDatabase, instants: number[], timeoutMs: number) {
  const detail = runsDetail(db, "tick");
  const found = await waitFor(async () => {
    const rows = byInstant(await runs(db, "tick"));
    const each = instants.map((at) => rows.get(at) ?? []);
    return each.every((r) => r.length === 1 && r[0].status === "success") ? each : undefined;
  }, {
    timeoutMs,
    what: `one successful run for each fire of the outage (${instants.length})`,
    detail,
  });
  const all = await runs(db, "tick");
  assertEquals(byInstant(all).size, all.length, `duplicate runs:\n${describeRuns(all)}`);
  return found.map((r) => r[0]);
}

Deno.test({
  name: "outage[mysql]: connections cut and refused; serve keeps firing, catches up after",
  ignore: MYSQL_URL === "",
  async fn() {
    await using db = await freshDatabase("mysql");
    await using proxy = proxyFor(db);
    await using serve = await startThroughProxy(db, proxy);

    const cutAt = Date.now();
    proxy.cut();
    const restoredAt = await outage(db, serve, cutAt);
    proxy.restore();

    const during = await firesBetween(db, cutAt, restoredAt);
    // The recorder retries after 1 s, 2 s, 4 s …: the third attempt comes after a 4 s outage.
    const back = (l: FileLine) => /database is back/.test(l.message);
    await waitFor(async () => (await logFile(db)).some(back), {
      timeoutMs: 8000,
      what: "the log file to say the database is back",
      detail: async () => (await readLines(`${db.dir}/log/jobsmanager.log`)).join("\n"),
    });
    const rows = await recorded(db, during, 5000);
    for (const r of rows) {
      assert(r.id > 0, `run ${r.id}: a provisional id reached the database`);
      assertEquals(r.exit_code, 0);
      assertEquals(r.stdout, "", `run ${r.id}`);
    }

    // The runner logged each fire of the outage; those rows arrive once the sink can write.
    const runnerRows = () =>
      sql(
        db,
        "SELECT message, context FROM jm_syslog WHERE logger_name = 'jobsmanager.runner' AND created_at > ? AND created_at < ?",
        [cutAt, restoredAt],
      );
    const queued = await waitFor(async () => {
      const rows = await runnerRows();
      return rows.length >= 2 * during.length ? rows : undefined;
    }, {
      timeoutMs: 5000,
      what: `runner lines of the ${during.length} outage fires (started and ended) in jm_syslog`,
      detail: async () => JSON.stringify(await runnerRows()),
    });
    for (const row of queued) {
      const context = typeof row.context === "string" ? JSON.parse(row.context) : row.context;
      assertEquals(context.job, "tick", JSON.stringify(row));
    }

    // The file kept logging through the outage: the outage once, and every fire.
    const lines = await logFile(db);
    const unreachable = lines.filter((l) => /unreachable/.test(l.message));
    assertEquals(unreachable.length, 1, `the outage was logged ${unreachable.length} times`);
    assertEquals(unreachable[0].logger, "jobsmanager.store");
    assert(within(unreachable[0], cutAt, restoredAt), JSON.stringify(unreachable[0]));
    assertEquals(lines.filter(back).length, 1);
    const runnerLines = lines.filter((l) =>
      l.logger === "jobsmanager.runner" && within(l, cutAt, restoredAt)
    );
    assert(runnerLines.length >= 2 * during.length, `runner lines: ${runnerLines.length}`);

    // Reload polling resumes by itself: a job added directly on the server fires soon.
    await jm(db, "job", "add", "after", "--second", "*", "--command", "true");
    const added = Date.now();
    await waitFor(async () => (await runs(db, "after")).some((r) => r.status === "success"), {
      timeoutMs: 500 + 3000,
      what: "the job added after the outage to run",
      detail: runsDetail(db),
    });
    const first = (await runs(db, "after"))[0];
    assert(first.scheduled_at - added < 2500, describeRuns([first]));

    const { status } = await serve.terminate();
    assertEquals(status.code, 0, serve.stderr);
  },
});

Deno.test({
  name: "outage[mysql]: queries hang; fires still start on time and are recorded after",
  ignore: MYSQL_URL === "",
  async fn() {
    await using db = await freshDatabase("mysql");
    await using proxy = proxyFor(db);
    // The first fire of the outage waits a second for its claim and so
    // overlaps the next one: let both run rather than skip the second.
    await using serve = await startThroughProxy(db, proxy, "--max-instances", "2");

    const holeAt = Date.now();
    proxy.blackhole();
    const restoredAt = await outage(db, serve, holeAt);
    proxy.restore();

    const during = await firesBetween(db, holeAt, restoredAt);
    const rows = await recorded(db, during, 10_000);
    await waitFor(
      async () =>
        (await sql(db, "SELECT id FROM jm_syslog WHERE message LIKE '%database is back%'"))
          .length === 1,
      { timeoutMs: 5000, what: "jm_syslog to say the database is back" },
    );
    for (const r of rows) {
      const lag = r.started_at! - r.scheduled_at;
      // A fire waits at most 1 s for its claim before it starts anyway.
      assert(lag >= 0 && lag < 1500, `run ${r.id} started ${lag} ms late:\n${describeRuns(rows)}`);
    }
    // The file sink flushes every few seconds: wait for the line, then count.
    const unreachable = (l: FileLine) => /unreachable/.test(l.message);
    await waitFor(async () => (await logFile(db)).some(unreachable), {
      timeoutMs: 7000,
      what: "the log file to say the database is unreachable",
    });
    assertEquals((await logFile(db)).filter(unreachable).length, 1);

    const { status } = await serve.terminate();
    assertEquals(status.code, 0, serve.stderr);
  },
});

Deno.test({
  name: "outage[mysql]: lines logged during an outage can be found by the run's real id",
  async fn() {
    await using db = await freshDatabase("mysql");
    await using proxy = proxyFor(db);
    await using serve = await startThroughProxy(db, proxy);
    const cutAt = Date.now();
    proxy.cut();
    await waitFor(async () => (await fires(db)).filter((at) => at > cutAt).length >= 2, {
      timeoutMs: 4000,
      what: "two fires during the outage",
    });
    const restoredAt = Date.now();
    proxy.restore();
    const during = (await fires(db)).filter((at) => at > cutAt && at < restoredAt);
    const rows = await recorded(db, during, 8000);
    for (const r of rows) {
      const lines = await waitFor(async () => {
        const { stdout } = await jm(db, "--json", "logs", "--run", String(r.id));
        const found = stdout.split("\n").filter((l) => l !== "");
        return found.length >= 2 ? found : undefined;
      }, { timeoutMs: 3000, what: `the started and ended lines of run ${r.id}` });
      assert(lines.every((l) => JSON.parse(l).context.job === "tick"));
    }
    assertEquals((await serve.terminate()).status.code, 0, serve.stderr);
  },
});

Deno.test({
  name: "outage[mysql]: SIGTERM while queries hang still stops serve in bounded time",
  async fn() {
    await using db = await freshDatabase("mysql");
    await using proxy = proxyFor(db);
    await using serve = await startThroughProxy(db, proxy);
    proxy.blackhole();
    // Let the service notice: a claim times out, recovery and heartbeats hang.
    const holeAt = Date.now();
    await waitFor(async () => (await fires(db)).some((at) => at > holeAt + 1000), {
      timeoutMs: 4000,
      what: "a fire during the blackhole",
    });
    // shutdown_timeout 1 s + the log flush's 3 s + slack; systemd would SIGKILL later.
    const exit = await serve.terminate(10_000).catch((error) => error as Error);
    proxy.restore();
    if (exit instanceof Error) {
      throw new Error(`${exit.message}\nstderr:\n${serve.stderr}`);
    }
    assert(serve.stderr.includes("stopped"), serve.stderr);
  },
});

Deno.test("tcp proxy: forwards, holds bytes while blackholed, refuses while cut", async () => {
  const echo = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const handlers: Promise<void>[] = [];
  const serving = (async () => {
    for await (const conn of echo) handlers.push(echoBack(conn));
  })().catch(() => {});
  await using proxy = TcpProxy.start({ hostname: "127.0.0.1", port: echo.addr.port });
  const roundTrip = async (conn: Deno.Conn, text: string) => {
    await conn.write(new TextEncoder().encode(text));
    const buffer = new Uint8Array(1024);
    const n = await conn.read(buffer);
    return n === null ? null : new TextDecoder().decode(buffer.subarray(0, n));
  };

  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
  assertEquals(await roundTrip(conn, "ping"), "ping");

  proxy.blackhole();
  const held = roundTrip(conn, "held");
  const late = await Promise.race([
    held,
    new Promise((resolve) => setTimeout(() => resolve("no answer"), 200)),
  ]);
  assertEquals(late, "no answer");
  proxy.restore();
  assertEquals(await held, "held");

  proxy.cut();
  assertEquals(await roundTrip(conn, "cut").catch(() => null), null);
  conn.close();
  const refused = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port }).then(
    (c) => (c.close(), false),
    () => true,
  );
  assert(refused, "a connection was accepted while cut");

  const port = proxy.port;
  proxy.restore();
  assertEquals(proxy.port, port);
  const again = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
  assertEquals(await roundTrip(again, "again"), "again");
  again.close();
  await proxy[Symbol.asyncDispose]();
  assertEquals(proxy.openConnections, 0);
  echo.close();
  await serving;
  await Promise.all(handlers);
});

async function echoBack(conn: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(1024);
  try {
    for (let n; (n = await conn.read(buffer)) !== null;) await conn.write(buffer.subarray(0, n));
  } catch {
    // Closed by the proxy.
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
}
