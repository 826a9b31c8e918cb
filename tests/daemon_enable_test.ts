/**
 * A job disabled and enabled again is owed its fires since the enable, not
 * those of the stretch it was disabled, on every backend: not by a service
 * that starts before its next fire (a restart), not by a node that takes it
 * over from one that stopped (a cluster's handover). A fire due after the
 * enable, during an outage, still runs late within its grace.
 */
import { assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase } from "./helpers.ts";
import { ClusterHarness, DaemonHarness, describeRun, T0 } from "./daemon_harness.ts";
import { assignJobs } from "../src/domain/share.ts";
import { buildJob, type JobOptions } from "../src/domain/job.ts";
import type { Run } from "../src/domain/run.ts";
import type { Store } from "../src/store/store.ts";

/** The job of these tests: every 10 s, an hour's grace, coalesce off (the default). */
const BK: JobOptions = { schedule: { second: "*/10" }, misfire_grace_time: "3600" };

/** Enable or disable `id` at `now`, as `job enable` / `job disable` do. */
async function setEnabled(store: Store, id: string, enabled: boolean, now: number) {
  await store.changeJob(id, (job) => ({ ...buildJob(id, { enabled }, job, now), updated_at: now }));
}

/** The scheduled fires in `runs` from `from` on, in seconds from it, and their statuses. */
function fires(runs: Run[], from: number): string[] {
  return runs.filter((r) => r.trigger === "schedule" && r.scheduled_at >= from)
    .map((r) => `${(r.scheduled_at - from) / 1000} ${r.status}`);
}

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: a service restarted after a job was disabled and enabled again decides none of the disabled stretch's fires; a fire since the enable runs late`, async () => {
    // The second life owns the database: it is dropped however the test ends.
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    // The first life of the service: it fires the job at T0+10 s; the job is disabled at
    // T0+12 s and enabled again at T0+42 s; the service stops at T0+45 s.
    const first = await DaemonHarness.create(h.db);
    first.owner = false;
    try {
      first.runner.endAll();
      await first.job("bk", { command: "true", ...BK });
      await first.start();
      await first.clock.set(T0 + 10_000);
      await first.run("bk", T0 + 10_000, "success");
      await setEnabled(first.store, "bk", false, T0 + 12_000);
      await first.clock.set(T0 + 13_000);
      await first.until(() => first.daemon.state.jobsLoaded === 0, "the disable to be applied");
      for (const s of [20, 30, 40]) await first.clock.set(T0 + s * 1000);
      await setEnabled(first.store, "bk", true, T0 + 42_000);
      await first.clock.set(T0 + 43_000);
      await first.until(() => first.daemon.state.jobsLoaded === 1, "the enable to be applied");
      await first.clock.set(T0 + 45_000);
      await first.stop();
      await first.until(() => first.ended, "the first life to end");
    } finally {
      await first[Symbol.asyncDispose]();
    }
    // The next life starts at T0+55 s: the fire at T0+50 s, due after the enable, runs late;
    // those of the disabled stretch (20, 30 and 40 s) are not owed.
    h.runner.endAll();
    await h.clock.set(T0 + 55_000);
    await h.start();
    const late = await h.run("bk", T0 + 50_000, "success");
    assertEquals(late.started_at, T0 + 55_000, describeRun(late));
    await h.clock.set(T0 + 60_000);
    await h.run("bk", T0 + 60_000, "success");
    assertEquals(fires(await h.runs("bk"), T0), ["10 success", "50 success", "60 success"]);
  });

  Deno.test(`daemon cluster[${backend}]: a node taking over a job disabled and enabled again runs none of the disabled stretch's fires`, async () => {
    await using c = await ClusterHarness.create(await freshDatabase(backend), ["n1", "n2"]);
    for (const node of c.nodes) node.runner.endAll();
    await c.start();
    await c.store.changeJob("bk", () => buildJob("bk", { command: "true", ...BK }, null, c.now()));
    await c.load(1);
    const owner = assignJobs(["bk"], ["n1", "n2"]).get("bk")!;
    const [leaving, taking] = [c.node(owner), c.node(owner === "n1" ? "n2" : "n1")];
    // Its owner fires it (past the shares' settling, on a multiple of 10 s), then it is disabled.
    const from = Math.ceil((c.now() + 130_000) / 10_000) * 10_000;
    await c.set(from);
    await c.until(
      async () => (await c.runs("bk")).find((r) => r.scheduled_at === from && r.finished_at),
      `the fire at T0+${from - T0} to run`,
    );
    await setEnabled(c.store, "bk", false, c.now());
    await c.load(0);
    for (const s of [10, 20, 30]) await c.set(from + s * 1000);
    // Enabled again before its next fire, then its owner stops: the other node takes it over.
    await setEnabled(c.store, "bk", true, c.now() + 1000);
    await c.load(1);
    await leaving.stop();
    await c.until(() => leaving.ended, `${leaving.nodeId} to end`);
    await c.set(from + 40_000);
    await c.until(
      async () =>
        (await c.runs("bk")).find((r) =>
          r.scheduled_at === from + 40_000 && r.node_id === taking.nodeId && r.finished_at
        ),
      `${taking.nodeId} to run the fire at T0+${from + 40_000 - T0}`,
    );
    assertEquals(fires(await c.runs("bk"), from), ["0 success", "40 success"]);
  });
}
