/**
 * Runs that `job run --here` left `running` because its CLI process never
 * recorded their end: it was killed (SIGKILL, the OOM killer) or its
 * machine restarted. Nothing else would ever end them; whoever can see
 * that host's processes does, once the process is gone: a service on the
 * host (housekeeping), or `runs cancel` there.
 */
import {
  BOOT_TAG,
  goneNote,
  hereHost,
  hereNode,
  type Holder,
  type HolderEnd,
  holderOf,
} from "../domain/here_run.ts";
import type { Run } from "../domain/run.ts";
import type { RunStore } from "../store/store.ts";
import { bootId, bootTicks, endRun, named, pidNamespace, processStart } from "./processes.ts";
import { presence } from "./presence.ts";

/** This process, as the holder of a run it runs itself; null where /proc does not say. */
export function thisProcess(): Holder | null {
  const [boot, namespace, start] = [bootTag(), pidNamespace(), processStart(Deno.pid)];
  if (boot === null || namespace === null || start === null) return null;
  return { boot, pidNamespace: namespace, pid: Deno.pid, start };
}

function bootTag(): string | null {
  return bootId()?.slice(0, BOOT_TAG) ?? null;
}

/**
 * How the CLI process that ran `run` went (`holder`, its marker's): the
 * machine booted since, or no process has its pid and start (it ended);
 * else why this process cannot say so (it lives, or this process cannot
 * see it), as the rest of a sentence naming the run.
 */
export function holderEnd(
  run: Pick<Run, "id" | "started_at" | "scheduled_at">,
  holder: Holder,
  host: string,
  now: number,
): HolderEnd | { why: string } {
  const process = `the CLI process that runs it (pid ${holder.pid} on ${host})`;
  const elsewhere =
    `run \`jobsmanager runs cancel ${run.id}\` where that process ran, or add --force once it is gone`;
  const boot = bootTag();
  if (boot === null) {
    return { why: `this machine has no /proc to tell whether ${process} is gone; ${elsewhere}` };
  }
  if (boot !== holder.boot) {
    // Started after this boot: not a process of an earlier one, but of another machine of that name.
    const bootedAt = now - bootTicks() * 10;
    if ((run.started_at ?? run.scheduled_at) <= bootedAt) return "restarted";
    return {
      why: `${process} ran on another machine named ${host} (another boot id); ${elsewhere}`,
    };
  }
  if (pidNamespace() !== holder.pidNamespace) {
    return {
      why: `${process} ran in another pid namespace (a container) than this command; ${elsewhere}`,
    };
  }
  // kill(2) first: /proc may hide another user's process (hidepid) as if it were gone.
  const there = presence(holder.pid);
  if (there === "gone") return "ended";
  const start = processStart(holder.pid);
  // One this user may signal but /proc shows no start of: a zombie, ended.
  if (start === null && there === "ours") return "ended";
  if (start !== null && start !== holder.start) return "ended";
  if (start === holder.start) {
    return { why: `${process} still runs: end it there with Ctrl-C` };
  }
  return {
    why:
      `${process} may still run, and this user cannot see it (another user's process, or /proc hides it); run \`jobsmanager runs cancel ${run.id}\` on ${host} as its user or root, or add --force once it is gone`,
  };
}

export interface HereRunEnd {
  /** This machine's host name: only its runs can be told. */
  host: string;
  now: () => number;
  /** What the run left running gets this long after SIGTERM before SIGKILL. */
  killGraceMs: number;
}

/**
 * End `run`, a `job run --here` run of this host, if the CLI process that
 * holds it is gone: what is left of its processes (its group, while a
 * process in it carries its marker, and what carries the marker; SIGTERM,
 * SIGKILL after the grace), then its row `interrupted`, saying why: true.
 * Else, changing nothing, why not (as the rest of a sentence naming the
 * run): that process lives, this process cannot tell, or cannot end what
 * it left (another user's); or the run ended meanwhile.
 */
export async function endIfHolderGone(
  runs: RunStore,
  run: Run,
  o: HereRunEnd,
): Promise<true | string> {
  if (run.status !== "running") return `it has ended meanwhile (${run.status})`;
  if (hereHost(run.node_id) !== o.host) {
    return `it runs on ${hereHost(run.node_id)}, and this is ${o.host}: run this there`;
  }
  const holder = holderOf(run.marker);
  if (holder === null) {
    return `the CLI process that runs it is not recorded (a run of an earlier version, or of a machine without /proc); once it is gone, \`jobsmanager runs cancel ${run.id} --force\` records the run interrupted`;
  }
  const how = holderEnd(run, holder, o.host, o.now());
  if (typeof how !== "string") return how.why;
  const { found } = await endRun(
    { pgid: run.pgid, marker: run.marker!, ownGroup: false },
    o.killGraceMs,
  );
  // What the kernel has in its group that this user could neither see nor end (another user's).
  if (how === "ended" && run.pgid !== null && presence(-run.pgid) === "other") {
    return `the CLI process that ran it (pid ${holder.pid}) is gone, but processes of another user are left in its group ${run.pgid}; run \`jobsmanager runs cancel ${run.id}\` on ${o.host} as their user or root to end them`;
  }
  // After a restart, the run ended by this boot at the latest (never before its start).
  const now = o.now();
  const finished = how === "restarted"
    ? Math.min(now, Math.max(run.started_at ?? run.scheduled_at, now - bootTicks() * 10))
    : now;
  const ended = await runs.updateRun(run.id, {
    status: "interrupted",
    finished_at: finished,
    note: goneNote(holder, o.host, how, found.map((p) => named(p))),
  }, "running");
  return ended || "it has ended meanwhile";
}

/** At most this many such runs are looked at in one pass. */
const PASS_LIMIT = 1000;

/** End every `job run --here` run of this host whose CLI process is gone; those it ended. */
export async function endGoneHereRuns(runs: RunStore, o: HereRunEnd): Promise<Run[]> {
  const left = await runs.listRuns({
    node_id: hereNode(o.host),
    status: "running",
    limit: PASS_LIMIT,
    output: false,
  });
  const ended: Run[] = [];
  for (const run of left) if (await endIfHolderGone(runs, run, o) === true) ended.push(run);
  return ended;
}
