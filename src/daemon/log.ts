/**
 * Logging for `serve`, on LogTape: stderr (see ConsoleStyle: journald,
 * terminal or JSON lines for log shippers) and a rotating file
 * of JSON lines (log_file.ts). Logger names say where a line comes from
 * (`jobsmanager.scheduler`, `jobsmanager.runner`, …); job and run ids go
 * into the properties, not only the text.
 */
import {
  configure,
  dispose,
  getAnsiColorFormatter,
  getLogger,
  getTextFormatter,
  jsonLinesFormatter,
  type Logger,
  type LogRecord,
  type Sink,
  type TextFormatter,
  withFilter,
} from "@logtape/logtape";
import type { Settings } from "../config/config.ts";
import { LOG_LEVELS, type LogLevel } from "../domain/log_row.ts";
import { logFileSink } from "./log_file.ts";
import { RuntimeError } from "../errors.ts";

export interface LogOptions {
  consoleLevel: LogLevel;
  fileLevel: LogLevel;
  /** The log file; null = no file. */
  file: string | null;
  maxSizeBytes: number;
  backups: number;
  /**
   * This service's node id, once known: each file line (and JSON line on
   * stderr) carries it as the property `node`, as jm_syslog rows do in
   * `node_id`, so the lines of two services on one host tell apart.
   */
  node?: () => string | null;
  /** The jm_syslog sink and its level, once there is a store. */
  database?: { sink: Sink; level: LogLevel };
}

/** The logger the database sink reports on itself through (never to itself). */
export const SINK_CATEGORY = ["jobsmanager", "logsink"];

/**
 * How long an info line may wait in memory for the log file (warnings and
 * errors go at once, log_file.ts): what a `kill -9` loses. Five writes a
 * second rather than one moved the firing lag of 100 runs a second by less
 * than its spread between rounds (bench flood); a flood fills the buffer
 * sooner anyway.
 */
const FILE_FLUSH_MS = 200;

/** Writes all of `bytes` somewhere (stderr), resolving with how many went in one call. */
export type WriteSome = (bytes: Uint8Array) => Promise<number>;

/** What the stderr sink may hold for a write that does not return (a pipe no one reads). */
export interface StderrBounds {
  /** Bytes handed to writes not yet done, beyond which a turn's lines are dropped, and counted. */
  maxWaitingBytes: number;
  /** How long disposing waits for the writes still going. */
  disposeWaitMs: number;
}

const STDERR_BOUNDS: StderrBounds = { maxWaitingBytes: 1 << 20, disposeWaitMs: 2000 };

/**
 * The stderr sink: the lines logged in one turn of the event loop (a
 * burst's hundreds of runs) go out in one write, in order, after the
 * write before them. A line per write through a WritableStream (LogTape's
 * stream sink) took a sixth of the scheduler thread at 1,000 fires a
 * second. A write that fails (stderr closed) costs its lines only, which
 * the file and the database still have: nothing is thrown at the caller,
 * and no rejection goes unhandled. A stderr no one reads (a pipe to a
 * stuck shipper) holds at most `maxWaitingBytes`: later lines are dropped,
 * and the first line that goes out after says how many. Disposing waits
 * for what was logged, `disposeWaitMs` at most: a stop is not held by it.
 */
export function batchedSink(
  formatter: TextFormatter,
  write: WriteSome = (bytes) => Deno.stderr.write(bytes),
  bounds: StderrBounds = STDERR_BOUNDS,
): Sink & AsyncDisposable {
  const encoder = new TextEncoder();
  let waiting = "";
  let writing: Promise<void> = Promise.resolve();
  let inWrites = 0;
  let dropped = 0;
  const writeAll = async (bytes: Uint8Array) => {
    for (let offset = 0; offset < bytes.length;) {
      offset += await write(bytes.subarray(offset));
    }
  };
  const flush = () => {
    let text = waiting;
    waiting = "";
    if (inWrites > bounds.maxWaitingBytes) {
      dropped += text.split("\n").length - 1;
      return;
    }
    if (dropped > 0) {
      // A burst outruns a file as a stuck reader does: neither is named as the cause.
      const said = `${dropped} log lines were not written to stderr: more than ${
        bounds.maxWaitingBytes >= 1 << 20
          ? `${bounds.maxWaitingBytes / (1 << 20)} MiB`
          : `${bounds.maxWaitingBytes} bytes`
      } of lines waited for it (a reader that does not keep up, or a burst of lines); jm_syslog, and the log file where one is set, have them`;
      text = formatter({
        category: ["jobsmanager", "service"],
        level: "warning",
        message: [said],
        rawMessage: said,
        properties: { dropped },
        timestamp: Date.now(),
      }) + text;
      dropped = 0;
    }
    const bytes = encoder.encode(text);
    inWrites += bytes.length;
    writing = writing.then(() => writeAll(bytes)).catch(() => {}).finally(() =>
      inWrites -= bytes.length
    );
  };
  const sink = (record: LogRecord) => {
    if (waiting === "") queueMicrotask(flush);
    waiting += formatter(record);
  };
  return Object.assign(sink, {
    async [Symbol.asyncDispose]() {
      if (waiting !== "") flush();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const given = new Promise<void>((resolve) =>
        timer = setTimeout(resolve, bounds.disposeWaitMs)
      );
      await Promise.race([writing, given]);
      clearTimeout(timer);
    },
  });
}

/**
 * How stderr lines are written: for journald (systemd's `JOURNAL_STREAM`
 * names stderr), readable lines with the `<N>` priority prefix it reads, so
 * `journalctl -p warning` filters; on a terminal, readable lines with
 * coloured levels (plain with `NO_COLOR`); anywhere else, JSON lines.
 */
export type ConsoleStyle = "journal" | "color" | "text" | "json";

/** The style for this process's stderr. */
export function consoleStyle(
  env: { JOURNAL_STREAM?: string; NO_COLOR?: string },
  stderr: { terminal: boolean; device: string | null },
): ConsoleStyle {
  // systemd sets JOURNAL_STREAM to stderr's device:inode; a child whose
  // stderr was redirected inherits the variable but not the stream.
  if (env.JOURNAL_STREAM !== undefined && env.JOURNAL_STREAM === stderr.device) return "journal";
  if (stderr.terminal) return env.NO_COLOR ? "text" : "color";
  return "json";
}

/** stderr's `device:inode`, as systemd writes it in JOURNAL_STREAM; null where it cannot be read. */
function stderrDevice(): string | null {
  try {
    const stat = Deno.statSync("/proc/self/fd/2");
    return `${stat.dev}:${stat.ino}`;
  } catch {
    return null;
  }
}

/** syslog priorities (sd-daemon(3)) by level: journald reads them from a `<N>` prefix. */
const JOURNAL_PRIORITY: Record<LogRecord["level"], number> = {
  trace: 7,
  debug: 7,
  info: 6,
  warning: 4,
  error: 3,
  fatal: 2,
};

/** `formatter`, the record given the property `node` while `node()` names one. */
function namingNode(
  formatter: TextFormatter,
  node: (() => string | null) | undefined,
): TextFormatter {
  if (node === undefined) return formatter;
  return (record) => {
    const id = node();
    return formatter(
      id === null ? record : { ...record, properties: { ...record.properties, node: id } },
    );
  };
}

export function consoleFormatter(style: ConsoleStyle): TextFormatter {
  switch (style) {
    case "journal":
      // journald stamps the time itself.
      return getTextFormatter({
        timestamp: "none",
        category: ".",
        value: "bare",
        format: ({ category, message, record }) =>
          `<${JOURNAL_PRIORITY[record.level]}>${category}: ${message}`,
      });
    case "color":
      return getAnsiColorFormatter({ timestamp: "date-time-tz", category: "." });
    case "text":
      return getTextFormatter({ timestamp: "date-time-tz", category: "." });
    case "json":
      return jsonLinesFormatter;
  }
}

/** The log file's sink; an error that names log.path and log.file when it cannot be opened. */
function openLogFile(file: string, options: Parameters<typeof logFileSink>[1]) {
  try {
    return logFileSink(file, options);
  } catch (error) {
    throw new RuntimeError(
      `cannot open the log file ${file} (log.path and log.file; $JM_LOG_PATH sets log.path): ${
        (error as Error).message
      }; make its directory writable by this user, or set log.path to another (empty: no log file)`,
      { cause: error },
    );
  }
}

/** Configure the sinks; call `closeLogging` before exit to flush them. */
export async function setupLogging(options: LogOptions): Promise<void> {
  const style = consoleStyle(
    { JOURNAL_STREAM: Deno.env.get("JOURNAL_STREAM"), NO_COLOR: Deno.env.get("NO_COLOR") },
    { terminal: Deno.stderr.isTerminal(), device: stderrDevice() },
  );
  const sinks: Record<string, Sink> = {
    console: withFilter(
      batchedSink(
        // journald and a terminal show one service's lines; JSON lines go to a shipper with others'.
        style === "json"
          ? namingNode(consoleFormatter(style), options.node)
          : consoleFormatter(style),
      ),
      options.consoleLevel,
    ),
  };
  const levels = [options.consoleLevel];
  if (options.file !== null) {
    sinks.file = withFilter(
      openLogFile(options.file, {
        formatter: namingNode(jsonLinesFormatter, options.node),
        maxSize: options.maxSizeBytes,
        backups: options.backups,
        flushMs: FILE_FLUSH_MS,
      }),
      options.fileLevel,
    );
    levels.push(options.fileLevel);
  }
  if (options.database) {
    sinks.database = withFilter(options.database.sink, options.database.level);
    levels.push(options.database.level);
  }
  const lowest = LOG_LEVELS.find((level) => levels.includes(level)) ?? "info";
  const local = Object.keys(sinks).filter((name) => name !== "database");
  await configure({
    reset: true,
    sinks,
    loggers: [
      { category: ["jobsmanager"], lowestLevel: lowest, sinks: Object.keys(sinks) },
      { category: SINK_CATEGORY, lowestLevel: "info", sinks: local, parentSinks: "override" },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["console"] },
    ],
  });
}

export async function closeLogging(): Promise<void> {
  await dispose();
}

/** A logger under `jobsmanager`, e.g. `log("scheduler")`. */
export function log(name: string): Logger {
  return getLogger(["jobsmanager", name]);
}

/**
 * Log which log file `serve` writes and where that came from, as the
 * shipped unit's `Environment=JM_LOG_PATH=…` silently overrides the
 * config's `log.path`.
 */
export function logFileChoice(
  s: Settings,
  sources: Partial<Record<"log.path" | "log.file", string>>,
): void {
  const from = (key: "log.path" | "log.file") => `${key} from ${sources[key] ?? "the default"}`;
  if (s["log.path"] === "") {
    log("service").info("no log file: log.path is empty ({source})", { source: from("log.path") });
    return;
  }
  const file = `${s["log.path"]}/${s["log.file"]}`;
  // Told as plain text: a path quoted as JSON inside the line read worse. Braces are doubled,
  // as LogTape reads `{name}` as a placeholder.
  const text = `log file ${file} (${from("log.path")}; ${from("log.file")})`;
  log("service").info(text.replaceAll("{", "{{").replaceAll("}", "}}"), { file });
}

/** The logging of `serve` as the settings say, with `database` as the jm_syslog sink. */
export function serveLogging(
  s: Settings,
  database: Sink,
  node?: () => string | null,
): LogOptions {
  const level = (sinkLevel: LogLevel | "") => sinkLevel || s["log.level"];
  return {
    consoleLevel: level(s["log.console_level"]),
    fileLevel: level(s["log.file_level"]),
    file: s["log.path"] === "" ? null : `${s["log.path"]}/${s["log.file"]}`,
    maxSizeBytes: s["log.rotate.max_size"] * 1024 * 1024,
    backups: s["log.rotate.backup_count"],
    database: { sink: database, level: level(s["log.db_level"]) },
    node,
  };
}
