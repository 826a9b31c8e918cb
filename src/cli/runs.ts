/** `jobsmanager runs`, `runs show` and `runs cancel`: what happened to each fire, and stopping one. */
import { validateId } from "../domain/job.ts";
import { FINAL_STATUSES, RUN_STATUSES } from "../domain/run.ts";
import {
  attemptsOf,
  byDeadline,
  CANCEL_WRITE_MARGIN_MS,
  cancelAndAwait,
  type CancelOptions,
  cancelRun,
  cancelUnconfirmed,
  showRun,
} from "../app/runs.ts";
import { outputWidth } from "./context.ts";
import { command, group, switched, valued } from "./command.ts";
import { runDetails, runsTable } from "./output.ts";
import { parseCount, parseRunId, parseSince, parseStatus } from "../domain/input.ts";
import { MAX_WAIT_S, unanswered, waitOptions } from "./job_run.ts";
import { RuntimeError, UsageError } from "../errors.ts";
import type { Run } from "../domain/run.ts";
import { databaseSaid } from "./failure.ts";

/** The most runs one `runs` lists. */
const MAX_RUNS = 100_000;

const RUN_ID = { name: "run-id", brief: "the run's id, as `jobsmanager runs` lists it" };

export function runsCommand() {
  const list = command({
    brief: "list runs, newest first",
    options: {
      job: valued("only this job's runs", "id"),
      status: valued(`only runs with this status (${RUN_STATUSES.join(", ")})`, "status"),
      since: valued("only runs scheduled in the last 90s, 15m, 2h, 7d, …", "duration"),
      limit: valued("at most this many", "n", "50"),
    },
    action: async (ctx, opts) => {
      const filter = {
        job_id: opts.job === undefined ? undefined : validateId(opts.job, "--job"),
        status: opts.status === undefined ? undefined : parseStatus(opts.status, "--status"),
        since: opts.since === undefined ? undefined : parseSince(opts.since, Date.now(), "--since"),
        limit: parseCount(opts.limit, "--limit", MAX_RUNS),
      };
      const { found, attempts } = await ctx.withStore(async (store) => {
        const found = await store.listRuns(filter);
        return { found, attempts: await attemptsOf(store, found) };
      });
      ctx.print(() => runsTable(found, outputWidth(), (id) => attempts.get(id)), found);
    },
  });
  const show = command({
    brief: "one run, with its output",
    args: [RUN_ID],
    action: async (ctx, _opts, raw: string) => {
      const id = parseRunId(raw, "run id");
      const { run, attempts } = await ctx.withStore(async (store) => {
        const run = await showRun(store, id);
        return { run, attempts: await attemptsOf(store, [run]) };
      });
      ctx.print(() => runDetails(run, { output: true, attempts: attempts.get(run.job_id) }), run);
    },
  });
  const cancel = command({
    brief: "drop a queued run, or ask the service running it to end it",
    args: [RUN_ID],
    options: {
      force: switched(
        "record a `job run --here` run interrupted without checking that the CLI process that runs it is gone (ending nothing it left running): for one no check can tell",
      ),
      wait: switched(
        "for a run a service holds: wait for its answer (the run ended, or the service did not know it) and print it",
      ),
      timeout: valued("with --wait: stop waiting after this long", "seconds"),
    },
    action: async (ctx, opts, raw: string) => {
      const id = parseRunId(raw, "run id");
      if (opts.timeout !== undefined && !opts.wait) {
        throw new UsageError("--timeout: it limits --wait; give --wait too", "--timeout");
      }
      const timeoutS = opts.timeout === undefined
        ? null
        : parseCount(opts.timeout, "--timeout", MAX_WAIT_S);
      const s = ctx.config.settings;
      const startedAt = Date.now();
      const cancelling = ctx.withStore(async (store) => {
        const options: CancelOptions = {
          by: await whoAsks(),
          now: Date.now(),
          force: opts.force === true,
          endIfGone: async (run) => {
            const { endIfHolderGone } = await import("../daemon/here_runs.ts");
            return await endIfHolderGone(store, run, {
              host: Deno.hostname(),
              now: Date.now,
              killGraceMs: ctx.config.settings["jobsmanager.kill_grace"] * 1000,
            });
          },
        };
        if (!opts.wait) return await cancelRun(store, id, options);
        // A service killed on this host is known gone at once, as `status` says it dead.
        const { serviceGone } = await import("../daemon/presence.ts");
        const answer = await cancelAndAwait(store, id, {
          ...options,
          startedAt,
          wait: {
            ...waitOptions(id, {
              reloadIntervalMs: s["jobsmanager.reload_interval"] * 1000,
              heartbeatMs: s["jobsmanager.heartbeat_interval"] * 1000,
            }, timeoutS),
            gone: (node) => serviceGone(node),
          },
        });
        if (answer.waited?.outcome === "database_lost") {
          throw waitCutShort(id, answer.run, answer.waited.error);
        }
        if (answer.waited !== null && answer.waited.outcome !== "ended") {
          throw unanswered(id, answer.waited, timeoutS);
        }
        return { outcome: answer.outcome, run: answer.run };
      });
      // The wait bounds the whole command, the database's opening included: one that hangs is
      // given up at the wait and its margin, not at the driver's timeouts.
      const { outcome, run } = !opts.wait || timeoutS === null
        ? await cancelling
        : await byDeadline(
          cancelling,
          startedAt + timeoutS * 1000 + CANCEL_WRITE_MARGIN_MS,
          () => cancelUnconfirmed(id, timeoutS * 1000),
        );
      ctx.print(
        () =>
          FINAL_STATUSES.includes(run.status) && outcome === "requested"
            ? `run ${id} of '${run.job_id}' ended ${run.status}${run.note ? `: ${run.note}` : ""}`
            : outcome === "dropped"
            ? `cancelled run ${id} of '${run.job_id}': it was queued and will not run`
            : outcome === "ended"
            ? `ended run ${id} of '${run.job_id}': ${
              opts.force === true
                ? "recorded it interrupted, unchecked (--force)"
                : `the CLI process that ran it (\`job run --here\`) is gone; recorded ${run.status}`
            }`
            : run.node_id === null
            ? `asked the services to cancel retry run ${id} of '${run.job_id}' (queued, not started): the first to see it (the next to start, when none is live) records it cancelled; the attempts then end in failure, and the job's failure follow-ups start`
            : `asked the service to end run ${id} of '${run.job_id}' (${run.status} on ${run.node_id}); it records the run cancelled when it has ended it, or, if it does not run it (a row restored from a backup or left by an earlier service), records it cancelled saying so (\`runs cancel --wait\` waits for that answer)`,
        { outcome, run },
      );
    },
  });
  return group("list runs, or show or cancel one", { list, show, cancel }, {
    fallback: "list",
    description:
      "list runs, or show or cancel one\n\n`jobsmanager runs` alone is `jobsmanager runs list`: see `jobsmanager runs list --help` for its options",
  });
}

/**
 * The error of `runs cancel --wait` whose wait the database cut short
 * (`error`) once the request for `run` was written: it says first that the
 * request is recorded, the answer that did not come, and where to look
 * once the database is back. Exit 1, as a wait that timed out: no answer.
 */
function waitCutShort(id: number, run: Run, error: Error): RuntimeError {
  return new RuntimeError(
    `asked the service to end run ${id} of '${run.job_id}' (${run.status} on ${run.node_id}): the request is recorded, but the wait for its answer was cut short by the database (${
      databaseSaid(error)
    }); the service ends the run once it reads the request (it may have already): see the run with \`jobsmanager runs show ${id}\` once the database answers`,
    { cause: error },
  );
}

/**
 * `user@host`, as a cancelled run records who asked: $USER or $LOGNAME,
 * else the name of the account the process runs as (neither is set under
 * cron, a systemd unit or `docker exec`), else `uid N` for an account
 * without a name.
 */
async function whoAsks(): Promise<string> {
  const user = Deno.env.get("USER") || Deno.env.get("LOGNAME") || await accountName();
  return `${user}@${Deno.hostname()}`;
}

async function accountName(): Promise<string> {
  // Loaded here alone: the CLI starts without Node's modules (see command.ts).
  const { userInfo } = await import("node:os");
  try {
    return userInfo().username;
  } catch {
    // No passwd entry for the uid (a container's arbitrary uid).
    return `uid ${Deno.uid()}`;
  }
}
