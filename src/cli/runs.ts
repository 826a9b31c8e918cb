/** `jobsmanager runs` and `runs show`: what happened to each fire. */
import { Command } from "commander";
import { validateId } from "../domain/job.ts";
import { RUN_STATUSES } from "../domain/run.ts";
import { showRun } from "../app/runs.ts";
import type { ContextOf } from "./context.ts";
import { runDetails, runsTable } from "./output.ts";
import { parseCount, parseRunId, parseSince, parseStatus } from "../domain/input.ts";

/** The most runs one `runs` lists. */
const MAX_RUNS = 100_000;

export function runsCommand(contextOf: ContextOf): Command {
  const runs = new Command("runs").description("list runs, newest first")
    .option("--job <id>", "only this job's runs")
    .option("--status <status>", `only runs with this status (${RUN_STATUSES.join(", ")})`)
    .option("--since <duration>", "only runs scheduled in the last 90s, 15m, 2h, 7d, …")
    .option("--limit <n>", "at most this many", "50")
    .action(async (opts, cmd: Command) => {
      const ctx = contextOf(cmd);
      const filter = {
        job_id: opts.job === undefined ? undefined : validateId(opts.job),
        status: opts.status === undefined ? undefined : parseStatus(opts.status),
        since: opts.since === undefined ? undefined : parseSince(opts.since, Date.now()),
        limit: parseCount(opts.limit, "limit", MAX_RUNS),
      };
      const found = await ctx.withStore((store) => store.listRuns(filter));
      ctx.print(() => runsTable(found), found);
    });
  runs.command("show").argument("<run-id>").description("one run, with its output")
    .action(async (raw: string, _opts, cmd: Command) => {
      const ctx = contextOf(cmd);
      const id = parseRunId(raw, "run id");
      const run = await ctx.withStore((store) => showRun(store, id));
      ctx.print(() => runDetails(run), run);
    });
  return runs;
}
