/**
 * Runs asked for by hand (`job run`) and the questions asked of runs.
 * A request is a `queued` manual row the service takes on its next poll;
 * a run in the asking process (`--here`) is recorded `running` at once.
 */
import { NotFoundError, RuntimeError } from "../errors.ts";
import type { Job } from "../domain/job.ts";
import type { Run } from "../domain/run.ts";
import type { JobStore, RunStore } from "../store/store.ts";
import { jobNotFound } from "./jobs.ts";

/** What `runs show` says of a forced run; the service reads `forced`, not this. */
const FORCED_NOTE = "forced: max_instances not checked";
const HERE_NOTE = "run in the CLI with --here";

/**
 * Queue a manual run of job `id` for a running service; with `force` it
 * starts even when max_instances runs are running. Returns the queued row.
 */
export async function requestRun(
  stores: JobStore & RunStore,
  id: string,
  options: { force: boolean; now: number },
): Promise<Run> {
  if (!await stores.getJob(id)) throw jobNotFound(id);
  const [runId] = await stores.claimRuns([{
    job_id: id,
    scheduled_at: options.now,
    status: "queued",
    trigger: "manual",
    note: options.force ? FORCED_NOTE : null,
    forced: options.force,
  }]);
  if (runId === null) {
    throw new RuntimeError(
      `job '${id}' was asked to run this very millisecond already; try again`,
    );
  }
  return (await stores.getRun(runId))!;
}

/**
 * Record a manual run of job `id` that `node` (not a service) starts now
 * itself; the caller runs the job and records how it ended, keeping the
 * run's note.
 */
export async function startHereRun(
  stores: JobStore & RunStore,
  id: string,
  options: { node: string; now: number },
): Promise<{ job: Job; run: Run }> {
  const job = await stores.getJob(id);
  if (!job) throw jobNotFound(id);
  const [runId] = await stores.claimRuns([{
    job_id: id,
    scheduled_at: options.now,
    status: "running",
    trigger: "manual",
    node_id: options.node,
    started_at: options.now,
    note: HERE_NOTE,
  }]);
  if (runId === null) throw new RuntimeError(`could not record a run of '${id}'; try again`);
  return { job, run: (await stores.getRun(runId))! };
}

export async function showRun(runs: RunStore, id: number): Promise<Run> {
  const run = await runs.getRun(id);
  if (!run) throw new NotFoundError(`run ${id} does not exist (see \`jobsmanager runs\`)`);
  return run;
}
