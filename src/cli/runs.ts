/** `jobsmanager runs`, `runs show` and `runs cancel`: what happened to each fire, and stopping one. */
import { Command } from "commander";
import { validateId } from "../domain/job.ts";
import { RUN_STATUSES } from "../domain/run.ts";
import { attemptsOf, cancelRun, showRun } from "../app/runs.ts";
import { type ContextOf, outputWidth } from "./context.ts";
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
      const { found, attempts } = await ctx.withStore(async (store) => {
        const found = await store.listRuns(filter);
        return { found, attempts: await attemptsOf(store, found) };
      });
      ctx.print(() => runsTable(found, outputWidth(), (id) => attempts.get(id)), found);
    });
  runs.command("show").argument("<run-id>").description("one run, with its output")
    .action(async (raw: string, _opts, cmd: Command) => {
      const ctx = contextOf(cmd);
      const id = parseRunId(raw, "run id");
      const { run, attempts } = await ctx.withStore(async (store) => {
        const run = await showRun(store, id);
        return { run, attempts: await attemptsOf(store, [run]) };
      });
      ctx.print(() => runDetails(run, { output: true, attempts: attempts.get(run.job_id) }), run);
    });
  runs.command("cancel").argument("<run-id>")
    .description("drop a queued run, or ask the service running it to end it")
    .action(async (raw: string, _opts, cmd: Command) => {
      const ctx = contextOf(cmd);
      const id = parseRunId(raw, "run id");
      const { outcome, run } = await ctx.withStore((store) =>
        cancelRun(store, id, { by: whoAsks(), now: Date.now() })
      );
      ctx.print(
        () =>
          outcome === "dropped"
            ? `cancelled run ${id} of '${run.job_id}': it was queued and will not run`
            : `asked the service to end run ${id} of '${run.job_id}' (${run.status} on ${
              run.node_id ?? "a service"
            }); it records the run cancelled when it has ended it`,
        { outcome, run },
      );
    });
  return runs;
}

/** `user@host`, as a cancelled run records who asked. */
function whoAsks(): string {
  const user = Deno.env.get("USER") || Deno.env.get("LOGNAME") || `uid ${Deno.uid()}`;
  return `${user}@${Deno.hostname()}`;
}
