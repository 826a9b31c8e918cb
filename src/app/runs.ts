/**
 * Runs asked for by hand (`job run`), cancelled by hand (`runs cancel`),
 * and the questions asked of runs. A request is a `queued` manual row the
 * service takes on its next poll; a run in the asking process (`--here`)
 * is recorded `running` at once.
 */
import { DatabaseError, NotFoundError, RuntimeError } from "../errors.ts";
import { type Job, jobProblem } from "../domain/job.ts";
import { FINAL_STATUSES, type Run } from "../domain/run.ts";
import { type Node, nodeState } from "../domain/node.ts";
import { HERE_NOTE, hereHost, holderOf } from "../domain/here_run.ts";
import type { JobStore, NodeStore, RunStore } from "../store/store.ts";
import { jobNotFound } from "./jobs.ts";
import { liveServices } from "./status.ts";
import { guardRunAsUser } from "./older_nodes.ts";
import type { InputNames } from "./input_names.ts";
import { listedBy, type OptionNames } from "../domain/option_names.ts";

/** What `runs show` says of a forced run; the service reads `forced`, not this. */
const FORCED_NOTE = "forced: max_instances not checked";

/**
 * Queue a manual run of job `id` for a running service; with `force` it
 * starts even when max_instances runs are running. Without a live service
 * on this database the request would wait, unseen, until one starts: it is
 * refused unless `queue` says that is meant, saying what to give in
 * `names`. A job the service would not run (invalid, as `job list` says:
 * a row broken by hand) is refused with what is wrong. Returns the queued
 * row.
 */
export async function requestRun(
  stores: JobStore & RunStore & NodeStore,
  id: string,
  options: {
    force: boolean;
    queue: boolean;
    now: number;
    heartbeatMs: number;
    names: InputNames;
  },
): Promise<Run> {
  const job = await stores.getJob(id);
  if (!job) throw jobNotFound(id, options.names);
  // As `job list` says it, and as the service would refuse to run it.
  const problem = jobProblem(job, options.names);
  if (problem !== null) {
    throw new RuntimeError(`job '${id}' is invalid, so it cannot run: ${problem}`);
  }
  await guardRunAsUser(stores, job, options);
  if (!options.queue && (await liveServices(stores, options)).length === 0) {
    const here = options.names.runHere(id);
    throw new RuntimeError(
      `no live service uses this database, so nothing would run job '${id}': ${
        here === null ? "" : `run it in this process with ${here}, or `
      }pass ${options.names.queue} to leave it for the next service that starts`,
    );
  }
  const [runId] = await stores.claimRuns([{
    job_id: id,
    job_updated_at: job.updated_at,
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

export { hereNode } from "../domain/here_run.ts";

/**
 * Record a manual run of job `id` that `node` (not a service) starts now
 * itself, with `marker` (which names the process that runs it: see
 * domain/here_run.ts); the caller runs the job and records how it ended,
 * keeping the run's note.
 */
export async function startHereRun(
  stores: JobStore & RunStore,
  id: string,
  options: { node: string; now: number; marker?: string },
): Promise<{ job: Job; run: Run }> {
  const job = await stores.getJob(id);
  if (!job) throw jobNotFound(id);
  const [runId] = await stores.claimRuns([{
    job_id: id,
    job_updated_at: job.updated_at,
    scheduled_at: options.now,
    status: "running",
    trigger: "manual",
    node_id: options.node,
    started_at: options.now,
    note: HERE_NOTE,
    marker: options.marker ?? null,
  }]);
  if (runId === null) throw new RuntimeError(`could not record a run of '${id}'; try again`);
  return { job, run: (await stores.getRun(runId))! };
}

/** Run `id`; one that does not exist is an error pointing to where `names` list the runs. */
export async function showRun(runs: RunStore, id: number, names?: OptionNames): Promise<Run> {
  const run = await runs.getRun(id);
  const see = listedBy(names, "runs");
  if (!run) {
    throw new NotFoundError(`run ${id} does not exist${see === null ? "" : ` (see ${see})`}`);
  }
  return run;
}

/**
 * How many attempts (retries + 1) the jobs of the retries among `runs`
 * allow, by job id: what `attempt 2/3 of run 17` is shown with. A job
 * removed since is left out.
 */
export async function attemptsOf(jobs: JobStore, runs: Run[]): Promise<Map<string, number>> {
  const ids = [...new Set(runs.filter((r) => r.trigger === "retry").map((r) => r.job_id))];
  const found = await Promise.all(ids.map((id) => jobs.getJob(id)));
  return new Map(found.flatMap((job) => job ? [[job.id, job.retries + 1]] : []));
}

/**
 * What `cancelRun` did: dropped a request no service had taken, asked the
 * service to end the run, or ended a `job run --here` run whose CLI process
 * is gone.
 */
export type CancelOutcome = "dropped" | "requested" | "ended";

/** Who cancels, when, and what of a run in a terminal (see `cancelRun`). */
export interface CancelOptions {
  by: string;
  now: number;
  endIfGone?: (run: Run) => Promise<true | string>;
  force?: boolean;
  /** Where a run that does not exist is said to be listed (the CLI's `runs` unless given). */
  names?: OptionNames;
}

/** A status write can lose a race with the service at most this often before giving up. */
const CANCEL_ATTEMPTS = 3;

/**
 * Cancel run `id` on behalf of `by` (`user@host`). A `job run` request or
 * follow-up run no service has taken is `cancelled` at once, with a note
 * naming who asked and when; a run a service holds (running, or queued for
 * a worker) gets the request recorded (`cancel_requested_at`,
 * `cancel_requested_by`) for that service to end it, and so does a retry no
 * service took: the first service to see it records it cancelled and ends
 * the attempts (their failure follow-ups start). A run that has ended is an error naming its status.
 * A run in a terminal (`job run --here`) is ended there, with Ctrl-C: it is an
 * error, unless `endIfGone`, which sees the processes of its host, finds the
 * CLI process that ran it gone and ends it (`interrupted`), else says why
 * not; or unless `force`: the person asking says that process is gone, and
 * the run is recorded `interrupted` unchecked, saying so.
 */
export async function cancelRun(
  runs: RunStore,
  id: number,
  options: CancelOptions,
): Promise<{ outcome: CancelOutcome; run: Run }> {
  const request = { cancel_requested_at: options.now, cancel_requested_by: options.by };
  // The run read again once `written` went through it; as written over `run` when that read
  // fails (the database lost just then): what was written is not undone by the read's failure.
  const reread = async (run: Run, written: Partial<Run>): Promise<Run> => {
    try {
      return await showRun(runs, id, options.names);
    } catch (error) {
      if (!(error instanceof DatabaseError)) throw error;
      return { ...run, ...written };
    }
  };
  for (let attempt = 0; attempt < CANCEL_ATTEMPTS; attempt++) {
    const run = await showRun(runs, id, options.names);
    // A retry waits for a service to cancel it: the attempts end there, and its failure follow-ups start.
    if (run.status === "queued" && run.node_id === null && run.trigger !== "retry") {
      const cancelled = {
        ...request,
        status: "cancelled" as const,
        finished_at: options.now,
        note: `cancelled by ${options.by} at ${new Date(options.now).toISOString()}`,
      };
      if (await runs.updateRun(id, cancelled, "queued")) {
        return { outcome: "dropped", run: await reread(run, cancelled) };
      }
    } else if (run.status === "running" && hereHost(run.node_id) !== null) {
      const host = hereHost(run.node_id);
      const pid = holderOf(run.marker)?.pid;
      const where = `\`jobsmanager job run --here\`${
        pid === undefined ? "" : `, pid ${pid}`
      } on ${host}`;
      if (options.force) {
        const interrupted = {
          status: "interrupted" as const,
          finished_at: options.now,
          note: `recorded interrupted by ${options.by} at ${
            new Date(options.now).toISOString()
          } with runs cancel --force: the CLI process that ran it (${where}) was not checked, and nothing it left running was ended`,
        };
        if (await runs.updateRun(id, interrupted, "running")) {
          return { outcome: "ended", run: await reread(run, interrupted) };
        }
        continue;
      }
      const why = await options.endIfGone?.(run) ??
        `end it there with Ctrl-C; once that process is gone (killed, or ${host} restarted), \`jobsmanager runs cancel ${id}\` on ${host}, or a service there, records the run interrupted`;
      if (why === true) return { outcome: "ended", run: await showRun(runs, id, options.names) };
      if ((await showRun(runs, id, options.names)).status !== "running") continue;
      throw new RuntimeError(
        `run ${id} runs in a terminal (${where}), not in a service, and was not ended: ${why}`,
      );
    } else if (run.status === "queued" || run.status === "running") {
      if (await runs.updateRun(id, request, run.status)) {
        return { outcome: "requested", run: await reread(run, request) };
      }
      // MySQL counts a row written with the values it had as unchanged: the same request,
      // asked at the same instant by the same asker (a client's concurrent waits), is there.
      const now = await showRun(runs, id, options.names);
      if (
        now.status === run.status && now.cancel_requested_at === options.now &&
        now.cancel_requested_by === options.by
      ) return { outcome: "requested", run: now };
    } else {
      throw new RuntimeError(
        `run ${id} has already ended (${run.status}); there is nothing to cancel`,
      );
    }
    // A service took or ended the run meanwhile: look again.
  }
  throw new RuntimeError(`run ${id} kept changing while it was being cancelled; try again`);
}

/** How often a wait for a run's end reads it. */
const WAIT_POLL_MS = 200;
/** How often a wait for a run's end asks whether the service running it is still there. */
const NODE_CHECK_MS = 5000;

/**
 * How a wait for a run's end came out: `ended` (the run is final);
 * `timeout` (it was not, `run` as last read, null when none was read in
 * time, a database that hangs included; or the wait was aborted);
 * `stopped` or `dead`: it is recorded running on a service that has
 * stopped or was declared dead without recording its end, which no wait
 * will see (it is recorded interrupted or lost when that service starts
 * again, lost when it was declared dead); `gone` (without `holderLive`):
 * it is recorded running on a service whose process is known gone
 * (`AwaitOptions.gone`), which no wait will see end either (it is recorded
 * lost when a service starts again on that node, or another declares it
 * dead); `not_live` (with `holderLive`
 * only): the service holding it (running or queued) is not live
 * otherwise: stale by its heartbeat, its process known to be `gone`, or
 * without a row in jm_nodes (`node` null); it answers nothing until it
 * starts again on its node.
 */
export type Awaited =
  | { outcome: "ended"; run: Run }
  | { outcome: "timeout"; run: Run | null }
  | { outcome: "stopped" | "dead"; run: Run }
  | { outcome: "gone"; run: Run; node: Node }
  | { outcome: "not_live"; run: Run; node: Node | null; gone: boolean };

export interface AwaitOptions {
  /** `jobsmanager.heartbeat_interval` in ms: when the service running it counts as gone. */
  heartbeatMs: number;
  /** Stop waiting after this long (null: never). */
  timeoutMs: number | null;
  /** Said once when the run is still queued `afterMs` after the wait began. */
  stillQueued?: { afterMs: number; say: () => void };
  /** The wait ends (as a timeout) when this is aborted: a server closing. */
  signal?: AbortSignal;
  /** Between two reads; WAIT_POLL_MS unless told. */
  pollMs?: number;
  /**
   * Wait only while the service holding the run (its `node_id`) is live:
   * asked at once, then as often as `stopped` and `dead` are, whether the
   * run is running or queued there; else `not_live`. A service killed
   * alone is never declared dead (there is no other node to do it): only
   * its heartbeat tells, and nothing answers until it starts again.
   */
  holderLive?: boolean;
  /**
   * Whether a node's process is known to be gone, where this process can
   * tell (`status` says such a node dead at once): with `holderLive`, its
   * heartbeat need not go stale first; without, a run recorded running
   * there ends the wait (`gone`): a service killed alone is never declared
   * dead, and nothing else would end it.
   */
  gone?: (node: Node) => boolean;
  /**
   * Said once when the service running the run has sent no heartbeat for
   * three of its intervals and is not known gone (another machine's, or
   * paused): the wait goes on, as that service may come back.
   */
  holderStale?: (node: Node) => void;
}

/**
 * Read run `id` until it ends, within `timeoutMs`; see `Awaited`. A run
 * gone from jm_runs meanwhile is an error.
 */
export async function awaitEnd(
  stores: RunStore & NodeStore,
  id: number,
  options: AwaitOptions,
): Promise<Awaited> {
  const started = Date.now();
  const deadline = options.timeoutMs === null ? Infinity : started + options.timeoutMs;
  const timeUp = new AbortController();
  const timer = deadline === Infinity
    ? undefined
    : setTimeout(() => timeUp.abort(), Math.max(0, deadline - started));
  const ended = options.signal === undefined
    ? timeUp.signal
    : AbortSignal.any([timeUp.signal, options.signal]);
  const TIMED_OUT = Symbol("timed out");
  // The timeout bounds the wait, a database that stopped answering included.
  const inTime = async <T>(asked: Promise<T>): Promise<T | typeof TIMED_OUT> => {
    if (ended.aborted) return TIMED_OUT;
    const { promise, resolve } = Promise.withResolvers<typeof TIMED_OUT>();
    const stop = () => resolve(TIMED_OUT);
    ended.addEventListener("abort", stop, { once: true });
    try {
      return await Promise.race([asked, promise]);
    } finally {
      ended.removeEventListener("abort", stop);
    }
  };
  let seen: Run | null = null;
  let hinted = options.stillQueued === undefined;
  const holderLive = options.holderLive === true;
  let nodeCheckAt = holderLive ? started : started + NODE_CHECK_MS;
  let staleSaid = false;
  try {
    for (;;) {
      const run = await inTime(stores.getRun(id));
      if (run === TIMED_OUT) return { outcome: "timeout", run: seen };
      if (!run) throw new RuntimeError(`run ${id} disappeared while waiting for it`);
      if (FINAL_STATUSES.includes(run.status)) return { outcome: "ended", run };
      seen = run;
      const held = run.node_id !== null && (run.status === "running" || holderLive);
      if (held && Date.now() >= nodeCheckAt) {
        nodeCheckAt = Date.now() + NODE_CHECK_MS;
        const read = await inTime(stores.nodesAndNow());
        if (read === TIMED_OUT) return { outcome: "timeout", run };
        const node = read.nodes.find((n) => n.id === run.node_id) ?? null;
        const state = node && nodeState(node, Date.now(), options.heartbeatMs, read.databaseNow);
        if (run.status === "running" && (state === "stopped" || state === "dead")) {
          return { outcome: state, run };
        }
        if (holderLive) {
          const away = state !== "live" && state !== "leaving";
          const gone = !away && options.gone?.(node!) === true;
          if (away || gone) return { outcome: "not_live", run, node, gone };
        } else if (node !== null && run.status === "running") {
          if (options.gone?.(node) === true) return { outcome: "gone", run, node };
          if (state === "stale" && !staleSaid) {
            staleSaid = true;
            options.holderStale?.(node);
          }
        }
      }
      if (ended.aborted) return { outcome: "timeout", run };
      if (
        !hinted && run.status === "queued" && Date.now() > started + options.stillQueued!.afterMs
      ) {
        hinted = true;
        options.stillQueued!.say();
      }
      await new Promise<void>((resolve) => {
        const next = () => {
          clearTimeout(pause);
          ended.removeEventListener("abort", next);
          resolve();
        };
        const pause = setTimeout(next, options.pollMs ?? WAIT_POLL_MS);
        ended.addEventListener("abort", next, { once: true });
      });
    }
  } finally {
    clearTimeout(timer);
  }
}

/**
 * How long past its wait a cancel with a wait may take to write its
 * request: a wait of 0 s still gets its write, and a database a little slow
 * to answer is not taken for one that hangs.
 */
export const CANCEL_WRITE_MARGIN_MS = 2000;

/**
 * What a cancel with a wait of `waitMs` answers when its request was not
 * written within the wait and its margin (`CANCEL_WRITE_MARGIN_MS`): the
 * database hangs (a lock, the network). The write may still land once it
 * answers; a database that did not answer is `unavailable`, as the driver's
 * own timeout would say, only sooner.
 */
export function cancelUnconfirmed(id: number, waitMs: number): DatabaseError {
  return new DatabaseError(
    `the database did not answer within ${
      (waitMs + CANCEL_WRITE_MARGIN_MS) / 1000
    } s (the wait and ${
      CANCEL_WRITE_MARGIN_MS / 1000
    } s to write the request), so the cancel of run ${id} is not confirmed written: it may still be once the database answers; see the run with \`jobsmanager runs show ${id}\`, and cancel it again if it has no cancel request`,
    { unanswered: true },
  );
}

/**
 * A wait for a service's answer to a cancel cut short by the database: a
 * read of the run or of the services failed (a lost connection, a read
 * refused) after the request was written. The request stands; the service
 * answers it once it reads it (it may have already), which no one here
 * could see. `error` is the database's.
 */
export interface WaitCutShort {
  outcome: "database_lost";
  run: null;
  error: DatabaseError;
}

/**
 * `cancelRun`, then, for a run a service holds (`requested` of a run on a
 * node), a wait for that service's answer (`awaitEnd`): it records the run
 * cancelled once it has ended it, or, not running it, says so in the same
 * way. While that service is not live, nothing answers: the wait ends at
 * once (`not_live`), the request recorded for it to answer when it starts
 * again. `waited` is how the wait came out (its run null where none was read
 * in time: `run` is then the run as cancelled); null when there was
 * nothing to wait for (the run ended already here, or is a retry no
 * service took). A database that fails during the wait, the request
 * written, cuts the wait short (`WaitCutShort`), not the cancel: the
 * request is not a failure for want of its answer.
 *
 * With a timeout, the whole cancel, counted from `startedAt` (the request's
 * start; now unless told), is bounded by it: the wait ends at `startedAt` +
 * the timeout, and a request not written by then and its margin
 * (`CANCEL_WRITE_MARGIN_MS`: a database that hangs) is given up,
 * `cancelUnconfirmed`, rather than held to the driver's own timeout.
 */
export async function cancelAndAwait(
  stores: RunStore & NodeStore,
  id: number,
  options: CancelOptions & { wait: AwaitOptions; startedAt?: number },
): Promise<{ outcome: CancelOutcome; run: Run; waited: Awaited | WaitCutShort | null }> {
  const startedAt = options.startedAt ?? Date.now();
  const { timeoutMs } = options.wait;
  const asking = cancelRun(stores, id, options);
  const asked = timeoutMs === null ? await asking : await byDeadline(
    asking,
    startedAt + timeoutMs + CANCEL_WRITE_MARGIN_MS,
    () => cancelUnconfirmed(id, timeoutMs),
  );
  if (asked.outcome !== "requested" || asked.run.node_id === null) {
    return { ...asked, waited: null };
  }
  let answer: Awaited | WaitCutShort;
  try {
    // Only while the service holding the run is live: else it answers when it starts again.
    answer = await awaitEnd(stores, id, {
      ...options.wait,
      timeoutMs: timeoutMs === null ? null : Math.max(0, startedAt + timeoutMs - Date.now()),
      holderLive: true,
    });
  } catch (error) {
    if (!(error instanceof DatabaseError)) throw error;
    answer = { outcome: "database_lost", run: null, error };
  }
  return { outcome: asked.outcome, run: answer.run ?? asked.run, waited: answer };
}

/**
 * `work`, or, when it has not settled by `deadline` (ms since the epoch),
 * the error `late` makes; `work` goes on unheard (its failure included).
 */
export async function byDeadline<T>(
  work: Promise<T>,
  deadline: number,
  late: () => Error,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(late()), Math.max(0, deadline - Date.now()));
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
    work.catch(() => undefined);
  }
}
