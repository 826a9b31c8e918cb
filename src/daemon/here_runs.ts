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
import { bootId, bootTicks, endRun, pidNamespace, processStart } from "./processes.ts";

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
 * How `holder` went: the machine booted since, or no process has its pid
 * and start (it ended); null while it lives, or when this process cannot
 * tell (no /proc, or another pid namespace: a container, where its pid
 * names another process).
 */
export function holderEnd(holder: Holder): HolderEnd | null {
  const boot = bootTag();
  if (boot === null) return null;
  if (boot !== holder.boot) return "restarted";
  if (pidNamespace() !== holder.pidNamespace) return null;
  return processStart(holder.pid) === holder.start ? null : "ended";
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
 * SIGKILL after the grace), then its row `interrupted`, saying why. False,
 * changing nothing, while that process lives, when this process cannot
 * tell, or when the run ended meanwhile.
 */
export async function endIfHolderGone(runs: RunStore, run: Run, o: HereRunEnd): Promise<boolean> {
  if (run.status !== "running" || hereHost(run.node_id) !== o.host) return false;
  const holder = holderOf(run.marker);
  const how = holder === null ? null : holderEnd(holder);
  if (holder === null || how === null) return false;
  const { found } = await endRun(
    { pgid: run.pgid, marker: run.marker!, ownGroup: false },
    o.killGraceMs,
  );
  // After a restart, the run ended by this boot at the latest (never before its start).
  const now = o.now();
  const finished = how === "restarted"
    ? Math.min(now, Math.max(run.started_at ?? run.scheduled_at, now - bootTicks() * 10))
    : now;
  return await runs.updateRun(run.id, {
    status: "interrupted",
    finished_at: finished,
    note: goneNote(holder, o.host, how, found.map((p) => `${p.pid} (${p.command})`)),
  }, "running");
}

/** At most this many such runs are looked at in one pass. */
const PASS_LIMIT = 1000;

/** End every `job run --here` run of this host whose CLI process is gone; how many were. */
export async function endGoneHereRuns(runs: RunStore, o: HereRunEnd): Promise<number> {
  const left = await runs.listRuns({
    node_id: hereNode(o.host),
    status: "running",
    limit: PASS_LIMIT,
    output: false,
  });
  let ended = 0;
  for (const run of left) if (await endIfHolderGone(runs, run, o)) ended++;
  return ended;
}
