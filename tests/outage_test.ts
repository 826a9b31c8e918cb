/**
 * `serve` through a database outage, end to end on MySQL: the service
 * talks to MariaDB through a loopback proxy (tcp_proxy.ts) that the test
 * cuts (connections closed, new ones refused) or blackholes (queries
 * hang). The service must keep firing from its timetable and logging to
 * its file, then write the buffered run records and log rows once the
 * database is back, and resume reload polling by itself.
 */
import { assert, assertEquals } from "./assert.ts";
import { freshDatabase, mysqlTest, type TestDatabase, waitFor } from "./helpers.ts";
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
} from "./serve_helpers.ts";
import { TcpProxy } from "./tcp_proxy.ts";

/** An outage lasts until this many fires have run during it. */
const OUTAGE_FIRES = 4;

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

const iso = (at: number) => new Date(at).toISOString();

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
    timeoutMs: 10_000,
    what: "a first successful run of tick",
    detail: runsDetail(db),
  });
  return serve;
}

/**
 * Keep the database away until OUTAGE_FIRES fires have run since `from`,
 * serve staying up; return the instants of the fires that ran during the
 * outage, checked to be whole consecutive seconds.
 */
async function outage(db: TestDatabase, serve: Serve, from: number): Promise<number[]> {
  const during = await waitFor(async () => {
    if (!serve.running) throw new Error(`serve exited during the outage:\n${serve.stderr}`);
    const ran = (await fires(db)).filter((at) => at > from);
    return ran.length >= OUTAGE_FIRES ? ran : undefined;
  }, {
    timeoutMs: OUTAGE_FIRES * 1000 + 10_000,
    what: `${OUTAGE_FIRES} fires during the outage (from ${iso(from)})`,
    detail: async () => `fires: ${(await fires(db)).map(iso)}`,
  });
  for (const [i, at] of during.entries()) {
    if (i > 0) {
      assertEquals(at - during[i - 1], 1000, `fires ${during.map(iso)} are not every second`);
    }
  }
  return during;
}

/**
 * Wait until the run of every instant (one per fire, by jm_runs' unique
 * key) has ended `success`; return them.
 */
async function recorded(db: TestDatabase, instants: number[], timeoutMs: number) {
  return await waitFor(async () => {
    const rows = new Map((await runs(db, "tick")).map((r) => [r.scheduled_at, r]));
    const each = instants.map((at) => rows.get(at));
    return each.every((r) => r?.status === "success") ? each as RunRow[] : undefined;
  }, {
    timeoutMs,
    what: `a successful run for each fire of the outage (${instants.length})`,
    detail: runsDetail(db, "tick"),
  });
}

/** Runner lines about starting a run of tick, logged between `from` and `to`. */
function startedBetween(lines: FileLine[], from: number, to: number): FileLine[] {
  return lines.filter((l) =>
    l.logger === "jobsmanager.runner" && /started/.test(l.message) && within(l, from, to)
  );
}

mysqlTest(
  "outage[mysql]: connections cut and refused; serve keeps firing, catches up after",
  async () => {
    await using db = await freshDatabase("mysql");
    await using proxy = proxyFor(db);
    await using serve = await startThroughProxy(db, proxy);

    const cutAt = Date.now();
    proxy.cut();
    const during = await outage(db, serve, cutAt);
    const restoredAt = Date.now();
    proxy.restore();

    // The recorder retries with a growing pause: wait for its next attempt.
    const back = (l: FileLine) => /database is back/.test(l.message);
    await waitFor(async () => (await logFile(db)).some(back), {
      timeoutMs: 30_000,
      what: "the log file to say the database is back",
      detail: async () => (await readLines(`${db.dir}/log/jobsmanager.log`)).join("\n"),
    });
    const rows = await recorded(db, during, 15_000);
    for (const r of rows) {
      assert(r.id > 0, `run ${r.id}: a provisional id reached the database`);
      assertEquals(r.exit_code, 0);
      assertEquals(r.stdout, "", `run ${r.id}`);
    }

    // The runner logged each fire of the outage as it started; those rows
    // arrive once the sink can write.
    const runnerRows = () =>
      sql(
        db,
        "SELECT message, context FROM jm_syslog WHERE logger_name = 'jobsmanager.runner' AND message LIKE '%started%' AND created_at > ? AND created_at < ?",
        [cutAt, restoredAt],
      );
    const queued = await waitFor(async () => {
      const rows = await runnerRows();
      return rows.length >= during.length ? rows : undefined;
    }, {
      timeoutMs: 15_000,
      what: `the runner's started lines of the ${during.length} outage fires in jm_syslog`,
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
    const started = startedBetween(lines, cutAt, restoredAt);
    assert(started.length >= during.length, `runner started lines: ${started.length}`);

    // Reload polling resumes by itself: a job added directly on the server runs.
    await jm(db, "job", "add", "after", "--second", "*", "--command", "true");
    await waitFor(async () => (await runs(db, "after")).some((r) => r.status === "success"), {
      timeoutMs: 15_000,
      what: "the job added after the outage to run",
      detail: runsDetail(db),
    });

    const { status } = await serve.terminate();
    assertEquals(status.code, 0, serve.stderr);
  },
);

mysqlTest(
  "outage[mysql]: queries hang; fires still start during the outage and are recorded after",
  async () => {
    await using db = await freshDatabase("mysql");
    await using proxy = proxyFor(db);
    // The first fire of the outage waits a second for its claim and so
    // overlaps the next one: let both run rather than skip the second.
    await using serve = await startThroughProxy(db, proxy, "--max-instances", "2");

    const holeAt = Date.now();
    proxy.blackhole();
    // Each of these fires ran its command while every query hung.
    const during = await outage(db, serve, holeAt);
    proxy.restore();

    const rows = await recorded(db, during, 20_000);
    await waitFor(
      async () =>
        (await sql(db, "SELECT id FROM jm_syslog WHERE message LIKE '%database is back%'"))
          .length === 1,
      { timeoutMs: 15_000, what: "jm_syslog to say the database is back" },
    );
    for (const r of rows) {
      assert(r.started_at! >= r.scheduled_at, `run ${r.id} started early:\n${describeRuns(rows)}`);
    }
    // The file sink flushes every few seconds: wait for the line, then count.
    const unreachable = (l: FileLine) => /unreachable/.test(l.message);
    await waitFor(async () => (await logFile(db)).some(unreachable), {
      timeoutMs: 15_000,
      what: "the log file to say the database is unreachable",
    });
    assertEquals((await logFile(db)).filter(unreachable).length, 1);

    const { status } = await serve.terminate();
    assertEquals(status.code, 0, serve.stderr);
  },
);

mysqlTest(
  "outage[mysql]: lines logged during an outage can be found by the run's real id",
  async () => {
    await using db = await freshDatabase("mysql");
    await using proxy = proxyFor(db);
    await using serve = await startThroughProxy(db, proxy);
    const cutAt = Date.now();
    proxy.cut();
    const during = await waitFor(async () => {
      const ran = (await fires(db)).filter((at) => at > cutAt);
      return ran.length >= 2 ? ran : undefined;
    }, {
      timeoutMs: 15_000,
      what: "two fires during the outage",
      detail: async () => `fires: ${(await fires(db)).map(iso)}`,
    });
    proxy.restore();
    const rows = await recorded(db, during, 20_000);
    for (const r of rows) {
      const lines = await waitFor(async () => {
        const { stdout } = await jm(db, "--json", "logs", "--run", String(r.id));
        const found = stdout.split("\n").filter((l) => l !== "");
        return found.length >= 2 ? found : undefined;
      }, { timeoutMs: 15_000, what: `the started and ended lines of run ${r.id}` });
      assert(lines.every((l) => JSON.parse(l).context.job === "tick"), lines.join("\n"));
    }
    assertEquals((await serve.terminate()).status.code, 0, serve.stderr);
  },
);

mysqlTest(
  "outage[mysql]: SIGTERM while queries hang still stops serve in bounded time",
  async () => {
    await using db = await freshDatabase("mysql");
    await using proxy = proxyFor(db);
    await using serve = await startThroughProxy(db, proxy);
    proxy.blackhole();
    // Let the service notice: a claim times out, recovery and heartbeats hang.
    const holeAt = Date.now();
    await waitFor(async () => (await fires(db)).some((at) => at > holeAt + 1000), {
      timeoutMs: 15_000,
      what: "a fire during the blackhole",
      detail: async () => `fires: ${(await fires(db)).map(iso)}`,
    });
    // shutdown_timeout 1 s + the log flush's 3 s + slack; systemd would SIGKILL later.
    const exit = await serve.terminate(10_000).catch((error) => error as Error);
    proxy.restore();
    if (exit instanceof Error) {
      throw new Error(`${exit.message}\nstderr:\n${serve.stderr}`);
    }
    assert(serve.stderr.includes("stopped"), serve.stderr);
  },
);

Deno.test("tcp proxy: forwards, holds bytes while blackholed, refuses while cut", async () => {
  const echo = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const handlers: Promise<void>[] = [];
  const received = { bytes: 0 };
  const serving = (async () => {
    for await (const conn of echo) handlers.push(echoBack(conn, received));
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
  await waitFor(() => proxy.heldChunks === 1, {
    timeoutMs: 10_000,
    what: "the proxy to hold the chunk",
    detail: () => `held chunks: ${proxy.heldChunks}`,
  });
  assertEquals(received.bytes, "ping".length, "a byte passed the blackhole");
  proxy.restore();
  assertEquals(await held, "held");
  assertEquals(proxy.heldChunks, 0);

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

async function echoBack(conn: Deno.Conn, received: { bytes: number }): Promise<void> {
  const buffer = new Uint8Array(1024);
  try {
    for (let n; (n = await conn.read(buffer)) !== null;) {
      received.bytes += n;
      await conn.write(buffer.subarray(0, n));
    }
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
