/**
 * The jm_syslog sink on its own, with a fake insert: batching, the bounded
 * queue while the database is away, the drop count, and the flush at
 * shutdown. Counts, not timings, say whether it blocked.
 */
import { getLogger, type LogRecord } from "@logtape/logtape";
import { assert, assertEquals } from "./assert.ts";
import { DatabaseLogSink, type DatabaseSinkOptions, toLogRow } from "../src/daemon/log_sink.ts";
import type { LogRow } from "../src/domain/log_row.ts";
import { closeLogging, log, setupLogging, SINK_CATEGORY } from "../src/daemon/log.ts";
import { waitFor } from "./helpers.ts";

/** Let queued promise callbacks and timers of 0 ms run. */
function tick(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

function record(message: string, properties: Record<string, unknown> = {}): LogRecord {
  return {
    category: ["jobsmanager", "test"],
    level: "info",
    message: [message],
    rawMessage: message,
    timestamp: 1_700_000_000_000.7,
    properties,
  };
}

interface Report {
  level: string;
  message: string;
  properties: Record<string, unknown>;
}

/** A fake database: `down` makes inserts reject, `hang` makes them never answer. */
class FakeTable {
  rows: LogRow[] = [];
  batches: number[] = [];
  calls = 0;
  down = false;
  hang = false;
  reports: Report[] = [];

  options(overrides: Partial<DatabaseSinkOptions> = {}): DatabaseSinkOptions {
    return {
      insert: (rows) => {
        this.calls++;
        if (this.hang) return new Promise(() => {});
        if (this.down) return Promise.reject(new Error("connection refused"));
        this.rows.push(...rows);
        this.batches.push(rows.length);
        return Promise.resolve();
      },
      report: (level, message, properties) => this.reports.push({ level, message, properties }),
      // Tests flush by hand; a long interval keeps the timer out of the way.
      flushMs: 60_000,
      ...overrides,
    };
  }

  messages(): string[] {
    return this.rows.map((r) => r.message);
  }
}

Deno.test("log sink: a record becomes a row: text rendered, category joined, ms whole", () => {
  const row = toLogRow({
    ...record(""),
    level: "warning",
    message: ["job ", "tick", " run ", 42, " took ", { ms: 5 }, ""],
    properties: { job: "tick", run: 42 },
  });
  assertEquals(row, {
    created_at: 1_700_000_000_000,
    level: "warning",
    logger_name: "jobsmanager.test",
    message: 'job tick run 42 took {"ms":5}',
    context: { job: "tick", run: 42 },
    node_id: null,
  });
});

Deno.test("log sink: each row names the node that logged it, once it knows its id", async () => {
  const table = new FakeTable();
  let node: string | null = null;
  const sink = new DatabaseLogSink({ ...table.options(), node: () => node });
  sink.sink(record("before"));
  node = "web-2";
  sink.sink(record("after"));
  sink.start();
  await sink.flush();
  assertEquals(table.rows.map((r) => [r.message, r.node_id]), [["before", null], [
    "after",
    "web-2",
  ]]);
  await sink.close(1000);
});

Deno.test("log sink: records wait for start(), then go in batches, in order", async () => {
  const table = new FakeTable();
  const sink = new DatabaseLogSink(table.options({ batchSize: 3 }));
  for (let i = 0; i < 2; i++) sink.sink(record(`early ${i}`));
  await tick();
  assertEquals(table.calls, 0, "wrote before start()");
  sink.start();
  for (let i = 0; i < 5; i++) sink.sink(record(`late ${i}`));
  await sink.flush();
  await sink.close(1000);
  assertEquals(table.messages(), [
    "early 0",
    "early 1",
    ...Array.from({ length: 5 }, (_, i) => `late ${i}`),
  ]);
  assert(table.batches.every((n) => n <= 3), `batches: ${table.batches}`);
  assertEquals(table.reports, []);
});

Deno.test("log sink: a full batch is written without waiting for the timer", async () => {
  const table = new FakeTable();
  const sink = new DatabaseLogSink(table.options({ batchSize: 10 }));
  sink.start();
  await sink.flush();
  for (let i = 0; i < 25; i++) sink.sink(record(`r${i}`));
  // No flush() here: only full batches go before the (one minute) timer.
  await tick();
  assert(table.rows.length >= 20, `${table.rows.length} rows written`);
  await sink.close(1000);
  assertEquals(table.rows.length, 25);
});

Deno.test("log sink: the timer writes what waits, and is armed only while records wait", async () => {
  const table = new FakeTable();
  const sink = new DatabaseLogSink(table.options({ flushMs: 10 }));
  sink.start();
  sink.sink(record("one"));
  await waitFor(() => table.rows.length === 1, {
    timeoutMs: 10_000,
    what: "the timer to write the record",
    detail: () => `rows ${table.messages()}, queued ${sink.queued}`,
  });
  table.down = true;
  sink.sink(record("two"));
  // A failed write is retried by the timer until the database takes it.
  await waitFor(() => table.calls >= 3, {
    timeoutMs: 10_000,
    what: "retries",
    detail: () => `${table.calls} calls`,
  });
  table.down = false;
  await waitFor(() => sink.queued === 0, { timeoutMs: 10_000, what: "the retry to write it" });
  assertEquals(table.messages(), ["one", "two"]);
  await waitFor(() => !sink.armed, { timeoutMs: 10_000, what: "no timer while nothing waits" });
  await tick();
  assertEquals([sink.queued, sink.armed], [0, false]);
  await sink.close(1000);
});

Deno.test("log sink: while the database is away the queue stays bounded and drops the oldest", async () => {
  const table = new FakeTable();
  const maxQueue = 5000;
  const sink = new DatabaseLogSink(table.options({ maxQueue, batchSize: 500 }));
  sink.start();
  table.down = true;
  const total = 20_000;
  let most = 0;
  for (let i = 0; i < total; i++) {
    sink.sink(record(`r${i}`));
    most = Math.max(most, sink.queued);
    if (i % 1000 === 0) await sink.flush();
  }
  assert(most < maxQueue + 1000, `the queue reached ${most} records`);
  await sink.flush();
  await sink.flush();
  const warnings = table.reports.filter((r) => r.level === "warning");
  assertEquals(warnings.length, 1, JSON.stringify(table.reports));
  assertEquals(table.rows, []);

  table.down = false;
  await sink.flush();
  assertEquals(sink.queued, 0);
  const written = table.messages();
  // The newest records, contiguous, in order.
  const first = total - written.length;
  assertEquals(written, Array.from({ length: written.length }, (_, i) => `r${first + i}`));
  assert(written.length >= maxQueue && written.length < maxQueue + 1000, `${written.length}`);
  const back = table.reports.filter((r) => r.level === "info");
  assertEquals(back.length, 1, JSON.stringify(table.reports));
  assertEquals(back[0].properties.dropped, total - written.length);
  await sink.close(1000);
});

/** Log 100,000 records in one synchronous loop; how many inserts ran meanwhile. */
async function burst(table: FakeTable, sink: DatabaseLogSink) {
  sink.start();
  await sink.flush();
  const calls = table.calls;
  for (let i = 0; i < 100_000; i++) sink.sink(record(`burst ${i}`, { i }));
  return { insertsDuring: table.calls - calls };
}

Deno.test("log sink: a burst of 100,000 records is logged at once, into a bounded queue", async () => {
  const table = new FakeTable();
  const sink = new DatabaseLogSink(table.options());
  // How fast is for the benchmark (bench sink); here, what is kept.
  await burst(table, sink);
  assert(sink.queued <= 11_000, `${sink.queued} records queued`);
  await sink.close(5000);
  assertEquals(sink.queued, 0);
  assert(table.rows.length >= 10_000, `${table.rows.length} rows written`);
  assertEquals(table.rows.at(-1)!.message, "burst 99999");
});

Deno.test({
  name: "log sink: a burst calls no insert on the logging caller's stack",
  async fn() {
    const table = new FakeTable();
    const sink = new DatabaseLogSink(table.options());
    const { insertsDuring } = await burst(table, sink);
    await sink.close(5000);
    assertEquals(insertsDuring, 0, "insert was called from inside the logging call");
  },
});

Deno.test({
  name: "log sink: records dropped by a burst while the database is up are reported",
  async fn() {
    const table = new FakeTable();
    const sink = new DatabaseLogSink(table.options());
    await burst(table, sink);
    await sink.close(5000);
    const reported = table.reports.map((r) => Number(r.properties.dropped ?? 0));
    assertEquals(table.rows.length + reported.reduce((a, b) => a + b, 0), 100_000);
  },
});

Deno.test("log sink: an insert that throws instead of rejecting does not reach the caller", async () => {
  const table = new FakeTable();
  const sink = new DatabaseLogSink({
    ...table.options({ batchSize: 1 }),
    insert: () => {
      throw new Error("driver bug");
    },
  });
  sink.start();
  await sink.flush();
  sink.sink(record("one"));
  sink.sink(record("two"));
  await sink.flush();
  assertEquals(table.reports.filter((r) => r.level === "warning").length, 1);
  await sink.close(0);
});

Deno.test("log sink: close() writes what is queued, and gives up after its timeout", async () => {
  const table = new FakeTable();
  const sink = new DatabaseLogSink(table.options({ batchSize: 4 }));
  sink.start();
  await sink.flush();
  table.hang = true;
  sink.sink(record("held"));
  const writing = sink.flush();
  table.hang = false;
  // The hung batch never answers: close waits its timeout, then reports what is left.
  const started = performance.now();
  await sink.close(100);
  // Not a timing: a close that waited for the hung batch would never return.
  const waited = performance.now() - started;
  assert(waited < 10_000, `close waited ${waited} ms for a batch that never answers`);
  assertEquals(table.reports.map((r) => [r.level, r.properties.count]), [["warning", 1]]);
  void writing;

  const fresh = new FakeTable();
  const other = new DatabaseLogSink(fresh.options({ batchSize: 4 }));
  other.start();
  for (let i = 0; i < 10; i++) other.sink(record(`q${i}`));
  await other.close(1000);
  assertEquals(fresh.rows.length, 10);
  assertEquals(fresh.reports, []);
});

Deno.test("log sink: closed before it started (a start that failed), its records are counted", async () => {
  const table = new FakeTable();
  const sink = new DatabaseLogSink(table.options());
  for (let i = 0; i < 3; i++) sink.sink(record(`early ${i}`));
  await sink.close(1000);
  assertEquals(table.calls, 0);
  assertEquals(table.reports.map((r) => [r.level, r.properties.count]), [["warning", 3]]);
});

Deno.test("logging: each sink gets its own level; the sink's reports never reach the database", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-log-" });
  try {
    const database: LogRecord[] = [];
    await setupLogging({
      consoleLevel: "fatal",
      fileLevel: "debug",
      file: `${dir}/log/jobsmanager.log`,
      maxSizeBytes: 1024 * 1024,
      backups: 1,
      database: { sink: (r) => database.push(r), level: "info" },
    });
    log("scheduler").debug("a debug line");
    log("scheduler").info("job {job} fired", { job: "tick", run: 7 });
    log("runner").warn("a warning");
    getLogger(SINK_CATEGORY).warn("the sink reports on itself");
    await closeLogging();
    assertEquals(database.map((r) => [r.category.join("."), r.level, toLogRow(r).message]), [
      ["jobsmanager.scheduler", "info", "job tick fired"],
      ["jobsmanager.runner", "warning", "a warning"],
    ]);
    assertEquals(database[0].properties, { job: "tick", run: 7 });
    const file = (await Deno.readTextFile(`${dir}/log/jobsmanager.log`)).trim().split("\n")
      .map((l) => JSON.parse(l));
    assertEquals(file.map((l) => [l.logger, l.level]), [
      ["jobsmanager.scheduler", "DEBUG"],
      ["jobsmanager.scheduler", "INFO"],
      ["jobsmanager.runner", "WARN"],
      ["jobsmanager.logsink", "WARN"],
    ]);
    assertEquals(file[1].properties, { job: "tick", run: 7 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
