/**
 * What `serve` writes on stderr: `<N>`-prefixed lines for journald (so
 * `journalctl -p warning` filters), coloured lines on a terminal, JSON
 * lines anywhere else.
 */
import type { LogRecord } from "@logtape/logtape";
import { consoleFormatter, consoleStyle } from "../src/daemon/log.ts";
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
