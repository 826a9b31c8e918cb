/** `jobsmanager logs`: read `jm_syslog`, optionally following new rows. */
import { validateId } from "../domain/job.ts";
import { LOG_LEVELS } from "../domain/log_row.ts";
import { followFrom, type LogQuery, logsAfter, recentLogs } from "../app/logs.ts";
import { writeErr, writeOut } from "./context.ts";
import { command, switched, valued } from "./command.ts";
import { logLine } from "./output.ts";
import { parseCount, parseLevel, parseRunId, parseSince } from "../domain/input.ts";

const FOLLOW_POLL_MS = 1000;
/** The most lines one `logs` prints before following. */
const MAX_LINES = 100_000;

export function logsCommand() {
  return command({
    brief: "read the service's log from the database (jm_syslog)",
    options: {
      level: valued(`this level and above (${LOG_LEVELS.join(", ")})`, "level"),
      job: valued("only lines about this job", "id"),
      run: valued("only lines about this run", "run-id"),
      since: valued("only the last 90s, 15m, 2h, 7d, …", "duration"),
      limit: valued("at most this many lines (the newest)", "n", "100"),
      follow: switched("keep printing new lines until Ctrl-C"),
    },
    aliases: { f: "follow" },
    action: async (ctx, opts) => {
      const runId = opts.run === undefined ? undefined : parseRunId(opts.run, "--run");
      const query: LogQuery = {
        minLevel: opts.level === undefined ? undefined : parseLevel(opts.level, "--level"),
        job_id: opts.job === undefined ? undefined : validateId(opts.job, "--job"),
        run_id: runId,
        since: opts.since === undefined ? undefined : parseSince(opts.since, Date.now(), "--since"),
      };
      const limit = parseCount(opts.limit, "--limit", MAX_LINES);
      await ctx.withStore(async (store) => {
        const rows = await recentLogs(store, query, limit);
        for (const row of rows) writeOut(logLine(row, ctx.json));
        // Said on stderr, so stdout stays log lines (JSON lines with --json).
        if (rows.length === 0) writeErr(`jobsmanager: ${nothingToShow(opts)}`);
        if (!opts.follow) return;
        let last = await followFrom(store, rows);
        const stop = new AbortController();
        const onInterrupt = () => stop.abort();
        Deno.addSignalListener("SIGINT", onInterrupt);
        try {
          while (!stop.signal.aborted) {
            for (const row of await logsAfter(store, query, last)) {
              writeOut(logLine(row, ctx.json));
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
    },
  });
}

/** Why `logs` printed nothing: no line matches the filters given, named as typed. */
function nothingToShow(opts: Record<string, string | undefined>): string {
  const filters = (["level", "job", "run", "since"] as const)
    .filter((name) => opts[name] !== undefined)
    .map((name) => `--${name} ${opts[name]}`);
  return filters.length === 0
    ? "no log lines in jm_syslog yet"
    : `no log lines match ${filters.join(" ")}`;
}
