/**
 * A service of a release before schema version 17 that goes on running
 * through a rolling upgrade ignores a job's `user` (schema version 16): a
 * job that has one runs there as that service's own user, root typically.
 * Its row of `jm_nodes` names no schema version. While such a service is
 * live, no write gives a job a user: every entry point writes jobs through
 * a store `guardUsers` wraps, so the check is made here once.
 */
import { ConflictError } from "../errors.ts";
import type { Job } from "../domain/job.ts";
import { heartbeatAge, type Node, ofOlderSchema } from "../domain/node.ts";
import type { JobStore, JobWrites, NodeStore } from "../store/store.ts";
import { liveServicesAndNow } from "./status.ts";

/** How the caller judges a node live (`liveServices`): its clock and heartbeat interval. */
export interface Liveness {
  now: number;
  heartbeatMs: number;
}

/** Jobs a refusal names, at most; the rest are counted. */
const NAMED_JOBS = 3;

/**
 * The live nodes (as `liveServices` judges them) of a release before
 * schema version 17, each with how old its last heartbeat is (ms).
 */
async function olderLiveNodes(
  nodes: NodeStore,
  liveness: Liveness,
): Promise<{ node: Node; heartbeatAgeMs: number }[]> {
  const { live, databaseNow } = await liveServicesAndNow(nodes, liveness);
  return live.filter(ofOlderSchema).map((node) => ({
    node,
    heartbeatAgeMs: heartbeatAge(node, liveness.now, liveness.heartbeatMs, databaseNow).age,
  }));
}

/**
 * Whether a write that turns `before` into `after` newly has a service run
 * a command as the job's user: it gives the job a user it did not have, or
 * enables a job that has one. A job that was enabled with the same user
 * already ran as it on the older node (a change of its command, say): the
 * write puts nothing at risk that was not.
 */
function givesUser(before: Job | null, after: Job | null): boolean {
  if (after === null || after.user === null) return false;
  if (before === null || before.user !== after.user) return true;
  return after.enabled && !before.enabled;
}

/** The jobs of `put` that a write over `current` newly gives a user (`givesUser`). */
function usersGiven(current: readonly Job[], put: readonly Job[]): Job[] {
  const stored = new Map(current.map((j) => [j.id, j]));
  return put.filter((job) => givesUser(stored.get(job.id) ?? null, job));
}

/** The refusal of `jobs`, each newly given its user, while `older` nodes are live; `undone`: what was not done. */
function olderNodesError(
  jobs: Job[],
  older: { node: Node; heartbeatAgeMs: number }[],
  undone = "nothing written",
): ConflictError {
  const one = older.length === 1;
  const named = jobs.slice(0, NAMED_JOBS).map((j) => `'${j.id}' as '${j.user}'`);
  const more = jobs.length > NAMED_JOBS ? ` and ${jobs.length - NAMED_JOBS} more` : "";
  const what = jobs.length === 1
    ? `job '${jobs[0].id}' would run as '${jobs[0].user}'`
    : `${jobs.length} jobs would run as another user (${named.join(", ")}${more})`;
  const nodes = older.map(({ node, heartbeatAgeMs }) =>
    `${node.id} (host ${node.host}, pid ${node.pid}, last heartbeat ${
      Math.round(heartbeatAgeMs / 1000)
    } s ago)`
  ).join(", ");
  return new ConflictError(
    `${what}, but node${one ? "" : "s"} ${nodes} ${
      one ? "runs" : "run"
    } an older release of jobsmanager (its row in jm_nodes names no schema_version), which ignores a job's user and runs the job as its own user, root typically; ${undone}. Upgrade or stop ${
      one ? "that service" : "those services"
    }, then try again`,
  );
}

/**
 * Refuse (ConflictError, nothing queued) a run of `job` asked for by hand
 * while a node of an older release is live, when the job has a user: any
 * node takes such a request, the older one as its own user.
 */
export async function guardRunAsUser(
  nodes: NodeStore,
  job: Job,
  liveness: Liveness,
): Promise<void> {
  if (job.user === null) return;
  const older = await olderLiveNodes(nodes, liveness);
  if (older.length > 0) throw olderNodesError([job], older, "nothing queued");
}

/**
 * `store`, its job writes refused (ConflictError, nothing written) when
 * they give a job a user (`givesUser`) while a node of an older release is
 * live, judged by `liveness()` at each write. The nodes are read before
 * the write's transaction: an older service cannot start on this schema,
 * so only one that was paused can come back meanwhile, which the services
 * then say (daemon/cluster.ts `warnOfOlder`).
 */
export function guardUsers<S extends JobStore & NodeStore>(
  store: S,
  liveness: () => Liveness,
): S {
  const changeJob: JobStore["changeJob"] = async (id, mutate) => {
    const older = await olderLiveNodes(store, liveness());
    if (older.length === 0) return await store.changeJob(id, mutate);
    return await store.changeJob(id, (current) => {
      const job = mutate(current);
      if (givesUser(current, job)) throw olderNodesError([job!], older);
      return job;
    });
  };
  const changeJobs: JobStore["changeJobs"] = async (mutate) => {
    const older = await olderLiveNodes(store, liveness());
    if (older.length === 0) return await store.changeJobs(mutate);
    return await store.changeJobs((current): JobWrites => {
      const writes = mutate(current);
      const given = usersGiven(current, writes.put);
      if (given.length > 0) throw olderNodesError(given, older);
      return writes;
    });
  };
  return new Proxy(store, {
    get(target, key) {
      if (key === "changeJob") return changeJob;
      if (key === "changeJobs") return changeJobs;
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/**
 * The check `guardUsers` makes of a write, for a plan that writes nothing
 * (a dry run): it throws the refusal the write would get (ConflictError),
 * `undone` saying that nothing was written and the write would be refused.
 */
export function usersGivenCheck(
  nodes: NodeStore,
  liveness: () => Liveness,
  undone: string,
): (current: readonly Job[], put: readonly Job[]) => Promise<void> {
  return async (current, put) => {
    const given = usersGiven(current, put);
    if (given.length === 0) return;
    const older = await olderLiveNodes(nodes, liveness());
    if (older.length > 0) throw olderNodesError(given, older, undone);
  };
}
