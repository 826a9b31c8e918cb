/**
 * Logging for `serve`, on LogTape: stderr (readable lines on a terminal,
 * JSON lines otherwise, for journald and log shippers) and a rotating file
 * of JSON lines. Logger names say where a line comes from
 * (`jobsmanager.scheduler`, `jobsmanager.runner`, …); job and run ids go
 * into the properties, not only the text.
 */
import {
  configure,
  dispose,
  getLogger,
  getStreamSink,
  getTextFormatter,
  jsonLinesFormatter,
  type Logger,
  type Sink,
  withFilter,
} from "@logtape/logtape";
import { getRotatingFileSink } from "@logtape/file";
import type { LogLevel } from "./config.ts";

export interface LogOptions {
  level: LogLevel;
  /** The log file; null = no file. */
  file: string | null;
  maxSizeBytes: number;
  backups: number;
}

/** Configure the sinks; call `closeLogging` before exit to flush them. */
export async function setupLogging(options: LogOptions): Promise<void> {
  const consoleFormatter = Deno.stderr.isTerminal()
    ? getTextFormatter({ timestamp: "date-time-tz", category: "." })
    : jsonLinesFormatter;
  const sinks: Record<string, Sink> = {
    console: getStreamSink(Deno.stderr.writable, { formatter: consoleFormatter }),
  };
  if (options.file !== null) {
    const dir = options.file.replace(/\/[^/]*$/, "");
    if (dir !== options.file) await Deno.mkdir(dir, { recursive: true });
    sinks.file = withFilter(
      getRotatingFileSink(options.file, {
        formatter: jsonLinesFormatter,
        maxSize: options.maxSizeBytes,
        maxFiles: options.backups + 1,
      }),
      options.level,
    );
  }
  await configure({
    reset: true,
    sinks,
    loggers: [
      { category: ["jobsmanager"], lowestLevel: options.level, sinks: Object.keys(sinks) },
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
