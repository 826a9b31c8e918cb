/**
 * The log file of `serve`, through the logging setup: created readable by
 * its owner only, as are the files it rotates into; rotated at the size,
 * keeping the backups asked for; every line written by the close.
 */
import { assert, assertEquals } from "./assert.ts";
import type { LogRecord } from "@logtape/logtape";
import { closeLogging, log, setupLogging } from "../src/daemon/log.ts";
import { logFileSink } from "../src/daemon/log_file.ts";
import { waitFor } from "./helpers.ts";

async function withLogFile(
  backups: number,
  fn: (dir: string, path: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "jm-log-" });
  try {
    const path = `${dir}/logs/jobsmanager.log`;
    await setupLogging({
      consoleLevel: "fatal",
      fileLevel: "info",
      file: path,
      maxSizeBytes: 1000,
      backups,
    });
    try {
      await fn(dir, path);
    } finally {
      await closeLogging();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const record = (message: string): LogRecord => ({
  category: ["test"],
  level: "info",
  message: [message],
  rawMessage: message,
  properties: {},
  timestamp: Date.now(),
});

const mode = async (path: string) => (await Deno.stat(path)).mode! & 0o777;

Deno.test("log file: created 0600, and so is every file it rotates into", async () => {
  await withLogFile(2, async (_dir, path) => {
    for (let i = 0; i < 60; i++) {
      log("test").info("line {i} of the log, padded to some length", { i });
    }
    await closeLogging();
    const files = [path, `${path}.1`, `${path}.2`];
    assertEquals(await Promise.all(files.map(mode)), [0o600, 0o600, 0o600]);
    // Two backups kept, none beyond; every file under the size.
    assert(!await Deno.stat(`${path}.3`).then(() => true, () => false), "a third backup");
    for (const file of files) assert((await Deno.stat(file)).size <= 1000, `${file} too big`);
    const last = (await Deno.readTextFile(path)).trim().split("\n").map((l) => JSON.parse(l));
    assertEquals(last.at(-1).properties.i, 59);
  });
});

Deno.test("log file: with no backups the file starts again, alone", async () => {
  await withLogFile(0, async (dir, path) => {
    for (let i = 0; i < 30; i++) {
      log("test").info("line {i} of the log, padded to some length", { i });
    }
    await closeLogging();
    assertEquals([...Deno.readDirSync(`${dir}/logs`)].map((e) => e.name), ["jobsmanager.log"]);
    assertEquals(await mode(path), 0o600);
  });
});

/** A log file sink writing each record's message as a line, in a new directory. */
async function bareSink(flushMs: number) {
  const dir = await Deno.makeTempDir({ prefix: "jm-log-" });
  const path = `${dir}/jobsmanager.log`;
  const sink = logFileSink(path, {
    formatter: (record) => `${record.rawMessage}\n`,
    maxSize: 1_000_000,
    backups: 1,
    flushMs,
  });
  return { dir, path, sink };
}

Deno.test("log file: each line is written within the flush interval, the service still running", async () => {
  const { dir, path, sink } = await bareSink(20);
  try {
    sink(record("first line"));
    await waitFor(async () => (await Deno.readTextFile(path)) === "first line\n", {
      timeoutMs: 10_000,
      what: "the first line in the file",
      detail: async () => JSON.stringify(await Deno.readTextFile(path)),
    });
    sink(record("second line"));
    await waitFor(async () => (await Deno.readTextFile(path)).endsWith("second line\n"), {
      timeoutMs: 10_000,
      what: "the second line in the file",
      detail: async () => JSON.stringify(await Deno.readTextFile(path)),
    });
  } finally {
    await sink[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("log file: lines logged during and after the close are written, in order, no timer left", async () => {
  const { dir, path, sink } = await bareSink(60_000);
  try {
    sink(record("before the close"));
    const closed = sink[Symbol.asyncDispose]();
    sink(record("during the close"));
    await closed;
    sink(record("after the close"));
    // The test's timer sanitizer fails it if a late line armed a flush.
    assertEquals(
      await Deno.readTextFile(path),
      "before the close\nduring the close\nafter the close\n",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
