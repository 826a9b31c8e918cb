/**
 * What a previous service under this node id left behind when it died
 * (killed, crashed, its guard with it): the processes of its runs still
 * `running`, ended before the first fire, and their rows, marked
 * `interrupted` after a clean stop or `lost` after a death.
 */
import type { Node } from "../domain/node.ts";
import type { RunStore } from "../store/store.ts";
import { log } from "./log.ts";
import { endRun, named } from "./processes.ts";

/** Runs a crashed service may have left running whose processes the start looks for. */
const ORPHANS_ENDED = 10_000;

const schedulerLog = log("scheduler");

/**
 * End what the runs a previous service on this node left `running` still
 * have going (it was killed, or crashed, and its guard with it): their
 * process groups, where a process in one still carries the run's
 * marker (a group id may have been reused since), and what carries the
 * marker outside; SIGTERM, SIGKILL after kill_grace. Before the first
 * fire, so that no job runs twice at once.
 */
export async function endOrphanProcesses(
  store: Pick<RunStore, "listRuns">,
  nodeId: string,
  killGraceMs: number,
): Promise<void> {
  const left = await store.listRuns({
    node_id: nodeId,
    status: "running",
    limit: ORPHANS_ENDED,
  });
  await Promise.all(left.map(async (run) => {
    if (run.marker === null) return;
    const { found, killed } = await endRun(
      { pgid: run.pgid, marker: run.marker, ownGroup: false },
      killGraceMs,
    );
    if (found.length === 0) return;
    schedulerLog.warn(
      "job {job} run {run}, left running by a previous service: ended its processes {pids} with {signal}",
      {
        job: run.job_id,
        run: run.id,
        pids: found.map((p) => named(p)).join(", "),
        signal: killed ? "SIGKILL after SIGTERM" : "SIGTERM",
      },
    );
  }));
}

/**
 * Mark the runs the previous service left `running` as ended at `now`. A
 * service that stopped cleanly recorded how its runs ended; one that left
 * runs behind died (killed, crashed), as a node another declares dead
 * does: its runs are lost, and retried, notified and followed as those are.
 * `previous`: its node row, if any (its last heartbeat is when its runs
 * ended, as far as anyone can tell).
 */
export async function markOrphans(
  store: Pick<RunStore, "endOrphans">,
  nodeId: string,
  now: number,
  previous: Pick<Node, "heartbeat_at" | "stopped_at"> | null,
): Promise<{ orphans: number[]; outcome: "interrupted" | "lost" }> {
  const outcome = previous?.stopped_at != null ? "interrupted" : "lost";
  const orphans = await store.endOrphans(nodeId, now, previous?.heartbeat_at ?? null, outcome);
  if (orphans.length > 0) {
    schedulerLog.warn("{count} runs left running by a previous service were marked {outcome}", {
      count: orphans.length,
      outcome,
    });
  }
  return { orphans, outcome };
}
