/**
 * What `serve` writes on stderr: `<N>`-prefixed lines for journald (so
 * `journalctl -p warning` filters), coloured lines on a terminal, JSON
 * lines anywhere else.
 */
import type { LogRecord } from "@logtape/logtape";
import { batchedSink, consoleFormatter, consoleStyle } from "../src/daemon/log.ts";
import { assertEquals } from "./assert.ts";

Deno.test("console: journald when JOURNAL_STREAM names stderr, else terminal or JSON", () => {
  const pipe = { terminal: false, device: "27:4711" };
  assertEquals(consoleStyle({ JOURNAL_STREAM: "27:4711" }, pipe), "journal");
  // Inherited from a parent whose stderr was the journal: this stderr is not.
  assertEquals(consoleStyle({ JOURNAL_STREAM: "27:9999" }, pipe), "json");
  assertEquals(consoleStyle({}, pipe), "json");
  assertEquals(consoleStyle({}, { terminal: true, device: "1:2" }), "color");
  assertEquals(consoleStyle({ NO_COLOR: "1" }, { terminal: true, device: "1:2" }), "text");
});

function record(level: LogRecord["level"], message: string): LogRecord {
  return {
    category: ["jobsmanager", "scheduler"],
    level,
    message: [message],
    rawMessage: message,
    timestamp: Date.UTC(2026, 10, 30, 12),
    properties: {},
  };
}

Deno.test("console: journald lines carry the syslog priority of their level", () => {
  const format = consoleFormatter("journal");
  const lines = (["debug", "info", "warning", "error", "fatal"] as const).map((level) =>
    format(record(level, `a ${level} line`))
  );
  assertEquals(lines, [
    "<7>jobsmanager.scheduler: a debug line\n",
    "<6>jobsmanager.scheduler: a info line\n",
    "<4>jobsmanager.scheduler: a warning line\n",
    "<3>jobsmanager.scheduler: a error line\n",
    "<2>jobsmanager.scheduler: a fatal line\n",
  ]);
});

Deno.test("console: a terminal gets coloured levels, plain text without colour", () => {
  const line = record("warning", "job x: 1 fires missed");
  assertEquals(consoleFormatter("color")(line).includes("\x1b["), true);
  assertEquals(consoleFormatter("text")(line).includes("\x1b["), false);
  assertEquals(JSON.parse(consoleFormatter("json")(line)).level, "WARN");
});

Deno.test("console: the lines of one turn go in one write, in order, after the write before them", async () => {
  const writes: string[] = [];
  let release = () => {};
  const blocked = new Promise<void>((resolve) => release = resolve);
  const decoder = new TextDecoder();
  const sink = batchedSink(({ message }) => `${message[0]}\n`, async (bytes) => {
    // The first write is slow, and takes three bytes at a time.
    if (writes.length === 0) await blocked;
    const taken = bytes.subarray(0, 3);
    writes.push(decoder.decode(taken));
    return taken.length;
  });
  sink(record("info", "a"));
  sink(record("info", "bc"));
  await Promise.resolve();
  // Logged while the first write waits: they go after it.
  sink(record("info", "d"));
  sink(record("info", "e"));
  await new Promise((resolve) => setTimeout(resolve, 0));
  assertEquals(writes, [], "nothing written while the first write waits");
  release();
  await sink[Symbol.asyncDispose]();
  assertEquals(writes, ["a\nb", "c\n", "d\ne", "\n"]);
});

Deno.test("console: a failed write costs its lines only, and throws at no one", async () => {
  const written: string[] = [];
  let fail = true;
  const sink = batchedSink(({ message }) => `${message[0]}\n`, (bytes) => {
    if (fail) return Promise.reject(new Deno.errors.BrokenPipe("stderr is closed"));
    written.push(new TextDecoder().decode(bytes));
    return Promise.resolve(bytes.length);
  });
  sink(record("error", "lost"));
  await new Promise((resolve) => setTimeout(resolve, 0));
  fail = false;
  sink(record("info", "kept"));
  await sink[Symbol.asyncDispose]();
  assertEquals(written, ["kept\n"]);
});

Deno.test("console: a stderr no one reads holds a bounded backlog; the lines dropped are counted, and a stop does not wait for it", async () => {
  const writes: string[] = [];
  let release = () => {};
  const blocked = new Promise<void>((resolve) => release = resolve);
  const decoder = new TextDecoder();
  const sink = batchedSink(({ message }) => `${message[0]}\n`, async (bytes) => {
    await blocked;
    writes.push(decoder.decode(bytes));
    return bytes.length;
  }, { maxWaitingBytes: 11, disposeWaitMs: 50 });
  const turn = () => new Promise((resolve) => setTimeout(resolve, 0));
  // The first turn's line waits; so does the second (11 bytes held, not more); the rest drop.
  sink(record("info", "first line"));
  await turn();
  sink(record("info", "second"));
  await turn();
  for (let i = 0; i < 5; i++) {
    sink(record("info", `dropped ${i}`));
    await turn();
  }
  // Stuck for good: disposing gives up (a stop must end), the writes still wait.
  await sink[Symbol.asyncDispose]();
  assertEquals(writes, []);
  release();
  await turn();
  sink(record("info", "after"));
  await turn();
  await turn();
  assertEquals(
    writes.join(""),
    "first line\nsecond\n5 log lines were not written to stderr: more than 11 bytes of lines waited for it (a reader that does not keep up, or a burst of lines); jm_syslog, and the log file where one is set, have them\nafter\n",
  );
});
