/**
 * What the notification tests share: hook commands that keep what they got
 * in files, and readers of those files and of `jm_notifications`.
 */
import { rawQuery, type TestDatabase } from "./helpers.ts";
export { readIfThere } from "./helpers.ts";
import { type DaemonHarness, NODE_ID, T0 } from "./daemon_harness.ts";
import type { NotifyPayload } from "../src/daemon/notify_message.ts";
import type { Store } from "../src/store/store.ts";

/** A temporary directory, removed with the test. */
export async function tempDir(): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir({ prefix: "jm_notify_" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

/**
 * A hook command keeping its stdin as one more entry of `file`: a file of
 * its own, `FILE.NANOSECONDS.PID`, written whole then renamed, so hooks
 * that run at once never mix their writes.
 */
export function appendStdin(file: string): string {
  return `cat > '${file}.tmp.'$$ && mv '${file}.tmp.'$$ '${file}.'$(date +%s%N).$$`;
}

/**
 * The entries hooks kept in `file` once there are `count`, `h`'s fake
 * clock moved a second at a time up to T0 + 60 s (`stepUntil`): what is
 * sent within a minute of fake time, its hooks (real processes) given the
 * real time they take.
 */
export async function hookedWithinAMinute(
  h: DaemonHarness,
  file: string,
  count: number,
  what: string,
): Promise<NotifyPayload[]> {
  return await h.stepUntil(
    async () => {
      const got = await jsonLines(file);
      return got.length >= count ? got : null;
    },
    what,
    { to: T0 + 60_000 },
  );
}

/** The entries hooks kept in `file`, oldest first. */
export async function jsonLines(file: string): Promise<NotifyPayload[]> {
  const dir = file.slice(0, file.lastIndexOf("/"));
  const base = file.slice(file.lastIndexOf("/") + 1);
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.name.startsWith(`${base}.`) && /^\d+\.\d+$/.test(entry.name.slice(base.length + 1))) {
      names.push(entry.name);
    }
  }
  names.sort();
  return await Promise.all(
    names.map(async (name) => JSON.parse(await Deno.readTextFile(`${dir}/${name}`))),
  );
}

/** The failure notification of run `ref` of `jobId`, as node `nodeId` claims it. */
export function failurePayload(jobId: string, ref: number, nodeId: string): NotifyPayload {
  return {
    event: "failure",
    job_id: jobId,
    description: null,
    status: "failed",
    run_id: ref,
    exit_code: 1,
    signal: null,
    scheduled_at: null,
    started_at: null,
    finished_at: null,
    duration_ms: null,
    node_id: nodeId,
    trigger: "schedule",
    note: null,
    output_tail: "",
    attempt: null,
    full_output: null,
    summary: `run ${ref} failed`,
    held_back: null,
    given_up: null,
  };
}

/** The outcome of each notification claimed, by ref. */
export async function outcomes(h: DaemonHarness): Promise<Record<number, string>> {
  const rows = await rawQuery(h.db, "SELECT ref, outcome FROM jm_notifications ORDER BY ref");
  return Object.fromEntries(rows.map((r) => [Number(r.ref), String(r.outcome)]));
}

/** The files a hook made by `touch '${prefix}.'$$` has left: one per start. */
export async function touched(prefix: string): Promise<number> {
  const dir = prefix.slice(0, prefix.lastIndexOf("/"));
  const base = `${prefix.slice(prefix.lastIndexOf("/") + 1)}.`;
  let count = 0;
  for await (const entry of Deno.readDir(dir)) if (entry.name.startsWith(base)) count++;
  return count;
}

/** What node `node` left pending: the failure notification of run `ref` of `job`, claimed at `at`. */
export async function leftPending(
  store: Pick<Store, "claimNotification">,
  o: { job: string; ref: number; at: number; node: string },
): Promise<void> {
  await store.claimNotification({
    job_id: o.job,
    event: "failure",
    ref: o.ref,
    status: "failed",
    at: o.at,
    node_id: o.node,
    minIntervalMs: null,
    payload: JSON.stringify(failurePayload(o.job, o.ref, o.node)),
  });
}

/**
 * What a stop left of job "flaky" on this node: a run that failed
 * (recorded, the reason of a recovery) and its failure notification,
 * still pending.
 */
export async function failureLeftPending(db: TestDatabase): Promise<void> {
  const seed = db.open();
  try {
    await seed.migrate();
    await leftPending(seed, { job: "flaky", ref: 1, at: T0 - 10_000, node: NODE_ID });
  } finally {
    await seed.close();
  }
  await rawQuery(
    db,
    "INSERT INTO jm_runs (job_id, scheduled_at, started_at, finished_at, status, exit_code, node_id, `trigger`) VALUES ('flaky', ?, ?, ?, 'failed', 1, ?, 'schedule')",
    [T0 - 20_000, T0 - 20_000, T0 - 10_000, NODE_ID],
  );
}
