/** `jobsmanager runs` and `runs show`: what happened to each fire. */
import { Command } from "commander";
import { NotFoundError, UsageError } from "../errors.ts";
import { validateId } from "../domain/job.ts";
import { type Run, RUN_STATUSES, type RunStatus } from "../domain/run.ts";
import { formatUtc, parseDuration } from "../domain/time.ts";
import type { ContextOf } from "./context.ts";
import { table } from "./output.ts";

function duration(run: Run): string {
  if (run.started_at === null || run.finished_at === null) return "-";
  const ms = run.finished_at - run.started_at;
  return ms < 10_000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function runsTable(runs: Run[]): string {
  if (runs.length === 0) return "no runs";
  return table(
    ["RUN", "JOB", "SCHEDULED (UTC)", "STATUS", "EXIT", "DURATION", "TRIGGER", "NOTE"],
    runs.map((r) => [
      String(r.id),
      r.job_id,
      formatUtc(new Date(r.scheduled_at)),
      r.status,
      r.exit_code !== null ? String(r.exit_code) : r.signal ?? "-",
      duration(r),
      r.trigger,
      r.note ?? "",
    ]),
  );
}

export function runDetails(run: Run): string {
  const time = (ms: number | null) => ms === null ? "-" : `${formatUtc(new Date(ms))} (${ms})`;
  const lines = [
    `run          ${run.id}`,
    `job          ${run.job_id}`,
    `status       ${run.status}`,
    `trigger      ${run.trigger}`,
    `scheduled    ${time(run.scheduled_at)}`,
    `started      ${time(run.started_at)}`,
    `finished     ${time(run.finished_at)}`,
    `duration     ${duration(run)}`,
    `exit code    ${run.exit_code ?? "-"}`,
    `signal       ${run.signal ?? "-"}`,
    `node         ${run.node_id ?? "-"}`,
    `note         ${run.note ?? "-"}`,
    "--- stdout ---",
    run.stdout ?? "",
    "--- stderr ---",
    run.stderr ?? "",
  ];
  return lines.join("\n");
}

export function parseStatus(raw: string): RunStatus {
  if (!(RUN_STATUSES as readonly string[]).includes(raw)) {
    throw new UsageError(
      `status: '${raw}' is not a run status (one of ${RUN_STATUSES.join(", ")})`,
    );
  }
  return raw as RunStatus;
}

export function parseLimit(raw: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > 100_000) {
    throw new UsageError(`limit: '${raw}' is not valid (allowed: a whole number from 1 to 100000)`);
  }
  return Number(raw);
}

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
        since: opts.since === undefined
          ? undefined
          : Date.now() - parseDuration(opts.since, "since"),
        limit: parseLimit(opts.limit),
      };
      const found = await ctx.withStore((store) => store.listRuns(filter));
      ctx.print(() => runsTable(found), found);
    });
  runs.command("show").argument("<run-id>").description("one run, with its output")
    .action(async (raw: string, _opts, cmd: Command) => {
      const ctx = contextOf(cmd);
      if (!/^\d+$/.test(raw)) throw new UsageError(`run id: '${raw}' is not a run number`);
      const run = await ctx.withStore((store) => store.getRun(Number(raw)));
      if (!run) throw new NotFoundError(`run ${raw} does not exist (see \`jobsmanager runs\`)`);
      ctx.print(() => runDetails(run), run);
    });
  return runs;
}
