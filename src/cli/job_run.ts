/**
 * `jobsmanager job run ID`: ask the running service to run a job now (a
 * `queued` manual row it takes on its next poll), optionally waiting for
 * the outcome; or, with `--here`, run it in this process to try a command.
 * With --wait or --here the exit code mimics a shell: the job's own exit
 * code, 124 for a timeout, 1 for anything else that is not success.
 */
import { RuntimeError, UsageError } from "../errors.ts";
import { secretsOf } from "../store/target.ts";
import { inheritedEnv, secretValues } from "../config/config.ts";
import { validateId } from "../domain/job.ts";
import { FINAL_STATUSES, type Run } from "../domain/run.ts";
import {
  type Awaited,
  awaitEnd,
  type AwaitOptions,
  hereNode,
  requestRun,
  startHereRun,
} from "../app/runs.ts";
import { hereMarker } from "../domain/here_run.ts";
import type { JobStore, NodeStore, RunStore } from "../store/store.ts";
import { type CommandContext, writeErr } from "./context.ts";
import { command, switched, valued } from "./command.ts";
import { runDetails } from "./output.ts";
import { WATCHED_POLL_MS } from "../daemon/poll_timing.ts";
import type { Account } from "../daemon/run_as.ts";
import { printable } from "../domain/printable.ts";
import { parseCount } from "../domain/input.ts";
import { CLI_NAMES } from "./input_names.ts";

/** The longest `--wait --timeout`: a year, in seconds. */
export const MAX_WAIT_S = 31_536_000;

/** The exit code a shell would give for this outcome. */
function exitCodeFor(run: Run): number {
  if (run.status === "success") return 0;
  if (run.status === "timeout") return 124;
  if (run.status === "failed" && run.exit_code !== null && run.exit_code > 0) return run.exit_code;
  return 1;
}

/** Write a chunk of the job's output to our own stream, whole. */
function relay(stream: "stdout" | "stderr", chunk: Uint8Array): void {
  const to = stream === "stdout" ? Deno.stdout : Deno.stderr;
  for (let offset = 0; offset < chunk.length;) offset += to.writeSync(chunk.subarray(offset));
}

/**
 * What of the job's output reaches each of our streams: to a terminal,
 * escaped as `runs show` prints it (a job's escape sequences would
 * retitle, clear or rewrite it); to a file or a pipe, its bytes as they
 * are. A character split between two chunks is decoded whole.
 */
function terminalSafe(): (stream: "stdout" | "stderr", chunk?: Uint8Array) => Uint8Array {
  const escaped = { stdout: Deno.stdout.isTerminal(), stderr: Deno.stderr.isTerminal() };
  const decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };
  const encoder = new TextEncoder();
  // No chunk: the end, where a character left unfinished is said as U+FFFD.
  return (stream, chunk) => {
    if (!escaped[stream]) return chunk ?? new Uint8Array();
    const text = chunk === undefined
      ? decoders[stream].decode()
      : decoders[stream].decode(chunk, { stream: true });
    return encoder.encode(printable(text));
  };
}

/** Run job `id` in this process; with `live`, its output is shown as it comes. */
async function runHere(
  ctx: CommandContext,
  store: JobStore & RunStore,
  id: string,
  live: boolean,
): Promise<Run> {
  const s = ctx.config.settings;
  // Each stream whose last line the job left unended, and the stream written last: the report
  // (on stdout) then starts on a line of its own, there or, where both streams share one
  // terminal, after whichever came last.
  const lineOpen = { stdout: false, stderr: false };
  let last: "stdout" | "stderr" | null = null;
  // Its terminal closed (SIGHUP): what the command writes is no longer shown there.
  let hungUp = false;
  // Streams whose reader went (`| head`) or whose disk is full: the run's output is still read
  // and recorded, so the command neither blocks on a full pipe nor is killed at its timeout.
  const lost = new Set<"stdout" | "stderr">();
  const safe = terminalSafe();
  const show = (stream: "stdout" | "stderr", chunk?: Uint8Array) => {
    if (hungUp || lost.has(stream)) return;
    try {
      relay(stream, safe(stream, chunk));
    } catch (error) {
      lost.add(stream);
      if (stream === "stdout" && !lost.has("stderr")) {
        try {
          relay(
            "stderr",
            new TextEncoder().encode(
              `\njobsmanager: stdout cannot be written (${
                error instanceof Error ? error.message : error
              }): the run's output is no longer shown, and is still recorded (jobsmanager runs show ${run.id})\n`,
            ),
          );
        } catch {
          lost.add("stderr");
        }
      }
      return;
    }
    if (chunk === undefined || chunk.length === 0) return;
    lineOpen[stream] = chunk[chunk.length - 1] !== 0x0a;
    last = stream;
  };
  const { finishedRecord, runEnv, startRun, unwatched } = await import("../daemon/runner.ts");
  const { DirectoryChecks, hungNote } = await import("../daemon/directory_check.ts");
  const { AccountLookups, lookupNote } = await import("../daemon/run_as.ts");
  const { thisProcess } = await import("../daemon/here_runs.ts");
  // The marker names this process: if it dies before it records the run's end (SIGKILL, a
  // reboot), whoever can see this host's processes ends the run it left `running`.
  const holder = thisProcess();
  const marker = (holder === null ? null : hereMarker(holder)) ?? crypto.randomUUID();
  const { job, run } = await startHereRun(store, id, {
    node: hereNode(Deno.hostname()),
    now: Date.now(),
    marker,
  });
  const notStarted = async (note: string) => {
    await store.updateRun(run.id, finishedRecord(unwatched("error", Date.now(), note), run.note));
    return (await store.getRun(run.id))!;
  };
  // A cwd on a hung mount would hold this process in the spawn (the child's chdir holds the
  // vfork's parent), where not even Ctrl-C ends it, and a name service away in the lookup of
  // the job's user: each is looked at first, for a while at most.
  const found = job.user === null ? undefined : await new AccountLookups().find(job.user);
  const lookup = found === undefined ? null : lookupNote(found, job.id, job.user!, undefined, true);
  if (lookup !== null) return await notStarted(lookup);
  const account = found as Account | null | undefined;
  if (job.cwd !== null && "hung" in await new DirectoryChecks().check(job.cwd)) {
    return await notStarted(hungNote(job.cwd, undefined, true));
  }
  const handle = startRun({
    marker,
    command: job.command,
    // Apart, as a service's runs: a user's HOME, LOGNAME and USER go over the caller's, under the job's env.
    env: runEnv({}, job, run.id, run.scheduled_at),
    baseEnv: inheritedEnv(),
    cwd: job.cwd ?? undefined,
    user: job.user === null ? undefined : { job: job.id, name: job.user, account },
    timeoutMs: job.timeout * 1000,
    killGraceMs: s["jobsmanager.kill_grace"] * 1000,
    outputCap: s["jobsmanager.output_cap"],
    secrets: [...secretsOf(ctx.target), ...secretValues(s)],
    onOutput: live ? show : undefined,
    standalone: true,
  });
  // The command has a process group of its own, so Ctrl-C (or a closed
  // terminal) would not reach it: end it, and record it interrupted,
  // rather than leave it behind, running for good.
  const signals = {
    SIGINT: "jobsmanager job run --here was interrupted (SIGINT: Ctrl-C)",
    SIGTERM: "jobsmanager job run --here was told to stop (SIGTERM)",
    SIGHUP: "the terminal of jobsmanager job run --here closed (SIGHUP)",
  } as const;
  const listeners = Object.entries(signals).map(([signal, why]) => {
    const listener = () => {
      if (signal === "SIGHUP") hungUp = true;
      handle.interrupt(why);
    };
    Deno.addSignalListener(signal as Deno.Signal, listener);
    return [signal as Deno.Signal, listener] as const;
  });
  let result;
  try {
    // Its group, for whoever ends what is left of it should this process die first.
    if (handle.pid !== null) await store.updateRun(run.id, { pgid: handle.pid }, "running");
    result = await handle.done;
  } finally {
    for (const [signal, listener] of listeners) Deno.removeSignalListener(signal, listener);
  }
  // Recorded first: with its terminal gone, writing to it may fail.
  await store.updateRun(run.id, finishedRecord(result, run.note));
  if (live) {
    show("stdout");
    show("stderr");
  }
  if (!hungUp && lost.size === 0) {
    const newline = new Uint8Array([0x0a]);
    if (Deno.stdout.isTerminal() && Deno.stderr.isTerminal()) {
      if (last !== null && lineOpen[last]) relay(last, newline);
    } else {
      // Apart (one to a file or a pipe): each stream's own last line.
      if (lineOpen.stdout) relay("stdout", newline);
      if (lineOpen.stderr) relay("stderr", newline);
    }
  }
  return (await store.getRun(run.id))!;
}

/**
 * Poll run `id` until it ends (app/runs.ts `awaitEnd`); after `timeoutS`
 * seconds (null: never) give up, leaving the run as it is. A run still
 * recorded running on a service that has stopped or was declared dead will
 * not be ended by it: its end was not recorded (the database refused it,
 * or the service died), so waiting ends there too.
 */
export async function waitFor(
  stores: RunStore & NodeStore,
  id: number,
  { reloadIntervalMs, heartbeatMs }: { reloadIntervalMs: number; heartbeatMs: number },
  timeoutS: number | null,
): Promise<Run> {
  // A service killed on this host is known gone at once, as `status` says it dead.
  const { serviceGone } = await import("../daemon/presence.ts");
  const waited = await awaitEnd(stores, id, {
    ...waitOptions(id, { reloadIntervalMs, heartbeatMs }, timeoutS),
    gone: (node) => serviceGone(node),
  });
  if (waited.outcome === "ended") return waited.run;
  throw unanswered(id, waited, timeoutS);
}

/** How `--wait --timeout` waits for run `id`, as `awaitEnd` takes it. */
export function waitOptions(
  id: number,
  { reloadIntervalMs, heartbeatMs }: { reloadIntervalMs: number; heartbeatMs: number },
  timeoutS: number | null,
): AwaitOptions {
  return {
    heartbeatMs,
    timeoutMs: timeoutS === null ? null : timeoutS * 1000,
    // A lone service told of writes polls only every 5 s (or reload_interval, when longer) for one
    // it was not told of (this CLI on another machine): no hint before two of its polls have passed.
    stillQueued: {
      afterMs: 2 * Math.max(WATCHED_POLL_MS, reloadIntervalMs) + 1000,
      say: () =>
        writeErr(
          `jobsmanager: run ${id} is still queued; is \`jobsmanager serve\` running on this database?`,
        ),
    },
    holderStale: (node) =>
      writeErr(
        `jobsmanager: service ${node.id}, which runs run ${id}, has sent no heartbeat for three of its intervals (host ${node.host}, pid ${node.pid}): still waiting, as it may be paused or cut from the database; see \`jobsmanager status\``,
      ),
  };
}

/** The error a wait for run `id` that did not see it end ends with. */
export function unanswered(
  id: number,
  waited: Exclude<Awaited, { outcome: "ended" }>,
  timeoutS: number | null,
): RuntimeError {
  if (waited.outcome === "timeout") {
    return new RuntimeError(
      `run ${id} did not end within ${timeoutS} s and is left ${
        waited.run?.status ?? "as it was"
      }: see it with \`jobsmanager runs show ${id}\`, or cancel it with \`jobsmanager runs cancel ${id}\``,
    );
  }
  if (waited.outcome === "not_live") {
    // As `job run` refuses a request no live service would take.
    const { run, node, gone } = waited;
    return new RuntimeError(
      `service ${run.node_id}, which holds run ${id} (${run.status}), is not live (${
        node === null
          ? "it has no row in jm_nodes"
          : `its ${gone ? "process is gone" : "heartbeat has stopped"}: see \`jobsmanager status\``
      }), so nothing would end the run now: the cancel request is recorded, and that service answers it when it starts again on its node; see the run with \`jobsmanager runs show ${id}\``,
    );
  }
  if (waited.outcome === "gone") {
    const { run, node } = waited;
    return new RuntimeError(
      `run ${id} is recorded running, but service ${run.node_id} that ran it is gone (its process ${node.pid} on this host is not running) without recording its end: nothing will end the run now; it is recorded lost when \`jobsmanager serve\` starts again on this database (or another service declares that one dead); see it with \`jobsmanager runs show ${id}\``,
    );
  }
  const { outcome: state, run } = waited;
  return new RuntimeError(
    `run ${id} is recorded running, but service ${run.node_id} that ran it has ${
      state === "stopped" ? "stopped" : "been declared dead"
    } without recording its end (see its log): the run is recorded ${
      state === "stopped" ? "interrupted or lost when that service starts again" : "lost"
    }; see it with \`jobsmanager runs show ${id}\``,
  );
}

export function jobRunCommand() {
  return command({
    brief: "run a job now, through the running service",
    args: [{ name: "id", brief: "the job" }],
    options: {
      wait: switched(
        "wait for the run to end and print its outcome and output; exit code: the job's own, 124 for a timeout, 1 for any other end that is not success (a retry that follows is a run of its own, not waited for)",
      ),
      timeout: valued("with --wait: stop waiting after this long (the run goes on)", "seconds"),
      force: switched("run even if max_instances runs are running"),
      queue: switched("queue it even with no live service on this database (for the next one)"),
      here: switched("run it in this process instead (to try a command)"),
    },
    action: async (ctx, opts, id: string) => {
      validateId(id);
      if (opts.timeout !== undefined && !opts.wait) {
        throw new UsageError("--timeout: it limits --wait; give --wait too", "--timeout");
      }
      if (opts.queue && opts.here) {
        throw new UsageError(
          "queue: --queue leaves the run for a service, --here runs it now; give one",
        );
      }
      const timeoutS = opts.timeout === undefined
        ? null
        : parseCount(opts.timeout, "--timeout", MAX_WAIT_S);
      const s = ctx.config.settings;
      const reloadIntervalMs = s["jobsmanager.reload_interval"] * 1000;
      const run = await ctx.withStore(async (store) => {
        if (opts.here) return await runHere(ctx, store, id, !ctx.json);
        const queued = await requestRun(store, id, {
          force: opts.force === true,
          queue: opts.queue === true,
          now: Date.now(),
          heartbeatMs: s["jobsmanager.heartbeat_interval"] * 1000,
          names: CLI_NAMES,
        });
        return opts.wait
          ? await waitFor(store, queued.id, {
            reloadIntervalMs,
            heartbeatMs: s["jobsmanager.heartbeat_interval"] * 1000,
          }, timeoutS)
          : queued;
      });
      const finished = FINAL_STATUSES.includes(run.status);
      ctx.print(
        () =>
          finished
            ? runDetails(run, { output: !opts.here })
            : `queued run ${run.id} of '${id}'; see it with \`jobsmanager runs show ${run.id}\``,
        run,
      );
      if (finished && exitCodeFor(run) !== 0) Deno.exitCode = exitCodeFor(run);
    },
  });
}
