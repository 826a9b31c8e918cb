/** `jobsmanager logs`: read `jm_syslog`, optionally following new rows. */
import { Command } from "commander";
import { UsageError } from "../errors.ts";
import { validateId } from "../domain/job.ts";
import {
  LOG_LEVELS,
  type LogFilter,
  type LogLevel,
  type LogRow,
  parseLogLevel,
} from "../domain/log_row.ts";
import { formatUtc, parseDuration } from "../domain/time.ts";
import { type ContextOf, writeOut } from "./context.ts";
import { parseLimit } from "./runs.ts";

const FOLLOW_POLL_MS = 1000;

function line(row: LogRow, json: boolean): string {
  if (json) return JSON.stringify(row);
  const context = Object.keys(row.context).length === 0 ? "" : `  ${JSON.stringify(row.context)}`;
  return `${formatUtc(new Date(row.created_at))}  ${
    row.level.toUpperCase().padEnd(7)
  }  ${row.logger_name}  ${row.message}${context}`;
}

function parseLevel(raw: string): LogLevel {
  const level = parseLogLevel(raw);
  if (level === null) {
    throw new UsageError(`level: '${raw}' is not a log level (one of ${LOG_LEVELS.join(", ")})`);
  }
  return level;
}

export function logsCommand(contextOf: ContextOf): Command {
  return new Command("logs").description("read the service's log from the database (jm_syslog)")
    .option("--level <level>", `this level and above (${LOG_LEVELS.join(", ")})`)
    .option("--job <id>", "only lines about this job")
    .option("--run <run-id>", "only lines about this run")
    .option("--since <duration>", "only the last 90s, 15m, 2h, 7d, …")
    .option("--limit <n>", "at most this many lines (the newest)", "100")
    .option("-f, --follow", "keep printing new lines until Ctrl-C")
    .action(async (opts, cmd: Command) => {
      const ctx = contextOf(cmd);
      if (opts.run !== undefined && !/^\d+$/.test(opts.run)) {
        throw new UsageError(`run: '${opts.run}' is not a run number`);
      }
      const filter: Omit<LogFilter, "limit"> = {
        minLevel: opts.level === undefined ? undefined : parseLevel(opts.level),
        job_id: opts.job === undefined ? undefined : validateId(opts.job),
        run_id: opts.run === undefined ? undefined : Number(opts.run),
        since: opts.since === undefined
          ? undefined
          : Date.now() - parseDuration(opts.since, "since"),
      };
      const limit = parseLimit(opts.limit);
      await ctx.withStore(async (store) => {
        const newest = await store.listLogs({ ...filter, limit });
        const rows = newest.reverse();
        for (const row of rows) writeOut(line(row, ctx.json));
        if (!opts.follow) return;
        let last = rows.at(-1)?.id ?? (await store.listLogs({ limit: 1 }))[0]?.id ?? 0;
        const stop = new AbortController();
        const onInterrupt = () => stop.abort();
        Deno.addSignalListener("SIGINT", onInterrupt);
        try {
          while (!stop.signal.aborted) {
            for (const row of await store.listLogs({ ...filter, afterId: last, limit: 1000 })) {
              writeOut(line(row, ctx.json));
              last = row.id!;
            }
            await new Promise((resolve) => {
              const timer = setTimeout(resolve, FOLLOW_POLL_MS);
              stop.signal.addEventListener("abort", () => {
                clearTimeout(timer);
                resolve(undefined);
              }, { once: true });
            });
          }
        } finally {
          Deno.removeSignalListener("SIGINT", onInterrupt);
        }
      });
    });
}
