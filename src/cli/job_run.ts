/**
 * `jobsmanager job run ID`: ask the running service to run a job now (a
 * `queued` manual row it takes on its next poll), optionally waiting for
 * the outcome; or, with `--here`, run it in this process to try a command.
 * With --wait or --here the exit code mimics a shell: the job's own exit
 * code, 124 for a timeout, 1 for anything else that is not success.
 */
import { Command } from "commander";
import { NotFoundError, RuntimeError } from "../errors.ts";
import { type Job, validateId } from "../domain/job.ts";
import { FINAL_STATUSES, type Run } from "../domain/run.ts";
import { finishedRecord, inheritedEnv, runEnv, startRun } from "../daemon/runner.ts";
import type { Store } from "../store/store.ts";
import { type CommandContext, type ContextOf, writeErr } from "./context.ts";
import { runDetails } from "./runs.ts";

const WAIT_POLL_MS = 200;
const HERE_NOTE = "run in the CLI with --here";
/** What `runs show` says of a forced run; the daemon reads `forced`, not this. */
const FORCED_NOTE = "forced: max_instances not checked";

/** The exit code a shell would give for this outcome. */
function exitCodeFor(run: Run): number {
  if (run.status === "success") return 0;
  if (run.status === "timeout") return 124;
  if (run.status === "failed" && run.exit_code !== null && run.exit_code > 0) return run.exit_code;
  return 1;
}

async function runHere(ctx: CommandContext, store: Store, job: Job): Promise<Run> {
  const s = ctx.config.settings;
  const requested = Date.now();
  const [id] = await store.claimRuns([{
    job_id: job.id,
    scheduled_at: requested,
    status: "running",
    trigger: "manual",
    node_id: `cli@${Deno.hostname()}`,
    started_at: requested,
    note: HERE_NOTE,
  }]);
  if (id === null) throw new RuntimeError(`could not record a run of '${job.id}'; try again`);
  const handle = startRun({
    command: job.command,
    env: runEnv(inheritedEnv(), job, id, requested),
    cwd: job.cwd ?? undefined,
    timeoutMs: job.timeout * 1000,
    killGraceMs: s["jobsmanager.kill_grace"] * 1000,
    outputCap: s["jobsmanager.output_cap"],
  });
  // The command has a process group of its own, so Ctrl-C would not reach
  // it: end it, and record it interrupted, rather than leave it behind.
  const interrupt = () => handle.interrupt();
  Deno.addSignalListener("SIGINT", interrupt);
  Deno.addSignalListener("SIGTERM", interrupt);
  let result;
  try {
    result = await handle.done;
  } finally {
    Deno.removeSignalListener("SIGINT", interrupt);
    Deno.removeSignalListener("SIGTERM", interrupt);
  }
  await store.updateRun(id, finishedRecord(result, HERE_NOTE));
  return (await store.getRun(id))!;
}

async function waitFor(store: Store, id: number, reloadIntervalMs: number): Promise<Run> {
  const hintAt = Date.now() + 2 * reloadIntervalMs + 1000;
  let hinted = false;
  for (;;) {
    const run = await store.getRun(id);
    if (!run) throw new RuntimeError(`run ${id} disappeared while waiting for it`);
    if (FINAL_STATUSES.includes(run.status)) return run;
    if (!hinted && run.status === "queued" && Date.now() > hintAt) {
      hinted = true;
      writeErr(
        `jobsmanager: run ${id} is still queued; is \`jobsmanager serve\` running on this database?`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, WAIT_POLL_MS));
  }
}

export function jobRunCommand(contextOf: ContextOf): Command {
  return new Command("run").argument("<id>").description(
    "run a job now, through the running service",
  )
    .option("--wait", "wait for the run to end and print its outcome and output")
    .option("--force", "run even if max_instances runs are running")
    .option("--here", "run it in this process instead (to try a command)")
    .action(async (id: string, opts, cmd: Command) => {
      const ctx = contextOf(cmd);
      validateId(id);
      const reloadIntervalMs = ctx.config.settings["jobsmanager.reload_interval"] * 1000;
      const run = await ctx.withStore(async (store) => {
        const job = await store.getJob(id);
        if (!job) {
          throw new NotFoundError(`job '${id}' does not exist (see \`jobsmanager job list\`)`);
        }
        if (opts.here) return await runHere(ctx, store, job);
        const [runId] = await store.claimRuns([{
          job_id: id,
          scheduled_at: Date.now(),
          status: "queued",
          trigger: "manual",
          note: opts.force ? FORCED_NOTE : null,
          forced: opts.force === true,
        }]);
        if (runId === null) {
          throw new RuntimeError(
            `job '${id}' was asked to run this very millisecond already; try again`,
          );
        }
        return opts.wait
          ? await waitFor(store, runId, reloadIntervalMs)
          : (await store.getRun(runId))!;
      });
      const finished = FINAL_STATUSES.includes(run.status);
      ctx.print(
        () =>
          finished
            ? runDetails(run)
            : `queued run ${run.id} of '${id}'; see it with \`jobsmanager runs show ${run.id}\``,
        run,
      );
      if (finished && exitCodeFor(run) !== 0) Deno.exitCode = exitCodeFor(run);
    });
}
