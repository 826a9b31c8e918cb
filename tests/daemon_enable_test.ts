/**
 * A job is owed the fires of its current schedule from when that schedule
 * applies (jm_jobs.enabled_at: its last enable, or its last change of fire
 * times), on every backend: not those of a stretch it was disabled, nor
 * those of a schedule it did not have yet, by a service that starts before
 * its next fire (a restart) or by a node that takes it over from one that
 * stopped (a cluster's handover). A fire due after it, during an outage,
 * still runs late within its grace. One written by a clock ahead of the
 * service's is taken as the service's now, and said.
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

/**
 * The first life of the service on `h`'s database: it adds `id` (`options`),
 * fires it at T0+`firstFire` s, lets `meanwhile` change it, and stops at
 * T0+`stopAt` s.
 */
async function firstLife(
  h: DaemonHarness,
  id: string,
  options: JobOptions,
  firstFire: number,
  stopAt: number,
  meanwhile: (first: DaemonHarness) => Promise<void>,
): Promise<void> {
  const first = await DaemonHarness.create(h.db);
  first.owner = false;
  try {
    first.runner.endAll();
    await first.job(id, { command: "true", ...options });
    await first.start();
    await first.clock.set(T0 + firstFire * 1000);
    await first.run(id, T0 + firstFire * 1000, "success");
    await meanwhile(first);
    await first.clock.set(T0 + stopAt * 1000);
    await first.stop();
    await first.until(() => first.ended, "the first life to end");
  } finally {
    await first[Symbol.asyncDispose]();
  }
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
    await firstLife(h, "bk", BK, 10, 45, async (first) => {
      await setEnabled(first.store, "bk", false, T0 + 12_000);
      await first.clock.set(T0 + 13_000);
      await first.until(() => first.daemon.state.jobsLoaded === 0, "the disable to be applied");
      for (const s of [20, 30, 40]) await first.clock.set(T0 + s * 1000);
      await setEnabled(first.store, "bk", true, T0 + 42_000);
      await first.clock.set(T0 + 43_000);
      await first.until(() => first.daemon.state.jobsLoaded === 1, "the enable to be applied");
    });
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

  Deno.test(`daemon[${backend}]: a service restarted after a job was enabled by a writer whose clock is an hour ahead fires it from its start, and says so`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    // Disabled at T0+12 s; enabled at T0+42 s by a CLI whose clock read T0+1 h 42 s.
    await firstLife(h, "bk", BK, 10, 45, async (first) => {
      await setEnabled(first.store, "bk", false, T0 + 12_000);
      await first.clock.set(T0 + 13_000);
      await first.until(() => first.daemon.state.jobsLoaded === 0, "the disable to be applied");
      await setEnabled(first.store, "bk", true, T0 + 3_642_000);
      await first.clock.set(T0 + 43_000);
      await first.until(() => first.daemon.state.jobsLoaded === 1, "the enable to be applied");
    });
    // The next life starts at T0+55 s: it goes on from then, not from T0+1 h 42 s.
    h.runner.endAll();
    await h.clock.set(T0 + 55_000);
    await h.start();
    await h.clock.set(T0 + 60_000);
    await h.run("bk", T0 + 60_000, "success");
    assertEquals(fires(await h.runs("bk"), T0), ["10 success", "60 success"]);
    const said =
      /^job bk: its schedule applies from 2030-01-01T01:00:42\.000Z \(when it was last enabled or its schedule changed\), 3587 s ahead of this service's clock/;
    assertEquals(h.count(said), 1, h.lines.join("\n"));
  });

  Deno.test(`daemon[${backend}]: a service restarted after a job's schedule changed runs none of the new schedule's fires before the change`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    // Every minute on the minute, an hour's grace, coalesce off: it fires at T0+60 s; at
    // T0+75 s it is made to fire at seconds 3, 6, 9, 12 and 50; the service stops at T0+78 s.
    const w: JobOptions = { schedule: { second: "0" }, misfire_grace_time: "3600" };
    await firstLife(h, "w", w, 60, 78, async (first) => {
      await first.clock.set(T0 + 75_000);
      const change = await first.store.changeJob("w", (job) => ({
        ...buildJob("w", { schedule: { second: "3,6,9,12,50" } }, job, T0 + 75_000),
        updated_at: T0 + 75_000,
      }));
      await first.clock.set(T0 + 76_000);
      await first.until(
        () => first.daemon.state.appliedMarker >= change.markerId!,
        "the change to be applied",
      );
    });
    // The next life starts at T0+80 s: the fires at T0+63..72 s were never the job's.
    h.runner.endAll();
    await h.clock.set(T0 + 80_000);
    await h.start();
    await h.clock.set(T0 + 110_000);
    await h.run("w", T0 + 110_000, "success");
    assertEquals(fires(await h.runs("w"), T0), ["60 success", "110 success"]);
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

for (const backend of BACKENDS) {
  Deno.test(`daemon cluster[${backend}]: a node taking over a job enabled by a writer whose clock is an hour ahead goes on from its own clock's now, and says so once`, async () => {
    await using c = await ClusterHarness.create(await freshDatabase(backend), ["n1", "n2"]);
    for (const node of c.nodes) node.runner.endAll();
    await c.start();
    // Every minute on the minute: a minute between fires for the takeover to come.
    const minutely: JobOptions = { schedule: { second: "0" }, misfire_grace_time: "3600" };
    await c.store.changeJob(
      "bk",
      () => buildJob("bk", { command: "true", ...minutely }, null, c.now()),
    );
    await c.load(1);
    const owner = assignJobs(["bk"], ["n1", "n2"]).get("bk")!;
    const [leaving, taking] = [c.node(owner), c.node(owner === "n1" ? "n2" : "n1")];
    const from = Math.ceil((c.now() + 130_000) / 60_000) * 60_000;
    const next = from + 60_000;
    await c.set(from);
    await c.until(
      async () => (await c.runs("bk")).find((r) => r.scheduled_at === from && r.finished_at),
      `the fire at T0+${from - T0} to run`,
    );
    await setEnabled(c.store, "bk", false, c.now());
    await c.load(0);
    // Enabled by a CLI whose clock is an hour ahead, then its owner stops.
    const enabledAt = c.now() + 3_600_000;
    await setEnabled(c.store, "bk", true, enabledAt);
    await c.load(1);
    await leaving.stop();
    await c.until(() => leaving.ended, `${leaving.nodeId} to end`);
    // The other takes it over as it sees the stop (the clock a second on at a time, before
    // the next fire). It said the time ahead as it applied the enable (every node does), and
    // the takeover, which meets the same write, says nothing more.
    const said = new RegExp(
      `^job bk: its schedule applies from ${
        new Date(enabledAt).toISOString().replaceAll(".", "\\.")
      } \\((when it was last written: its updated_at|when it was last enabled or its schedule changed)\\), \\d+ s ahead of this service's clock`,
    );
    assertEquals(taking.count(said), 1, taking.lines.join("\n"));
    const alone = new RegExp(`^1 live nodes: ${taking.nodeId}$`);
    let at = c.now();
    let moved = Date.now();
    await c.until(async () => {
      if (taking.line(alone)) return true;
      if (Date.now() - moved > 500 && at + 1000 < next) {
        moved = Date.now();
        await c.set(at += 1000);
      }
      return false;
    }, `${taking.nodeId} to take the job over before T0+${next - T0}`);
    await c.set(next);
    await c.until(
      async () =>
        (await c.runs("bk")).find((r) =>
          r.scheduled_at === next && r.node_id === taking.nodeId && r.finished_at
        ),
      `${taking.nodeId} to run the fire at T0+${next - T0}`,
    );
    assertEquals(fires(await c.runs("bk"), from), ["0 success", "60 success"]);
    assertEquals(taking.count(said), 1, taking.lines.join("\n"));
  });
}

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: a job enabled while the service runs by a writer whose clock is an hour ahead fires from the reload that applies it, said once per write`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    h.runner.endAll();
    await h.job("bk", { ...BK, enabled: false });
    await h.start();
    // Enabled at T0+1 s by a CLI whose clock read T0+1 h 1 s.
    await setEnabled(h.store, "bk", true, T0 + 3_601_000);
    await h.clock.set(T0 + 2000);
    await h.until(() => h.daemon.state.jobsLoaded === 1, "the enable to be applied");
    // How far ahead depends on the clock of the reload, which a write may set off at once.
    const said = (at: string) =>
      new RegExp(
        `^job bk: its schedule applies from ${
          at.replaceAll(".", "\\.")
        } \\(when it was last written: its updated_at\\), \\d+ s ahead of this service's clock: the clock of the host that wrote it was ahead\\. It goes on from now`,
      );
    const anySaid = /^job bk: its schedule applies from .* ahead of this service's clock/;
    assertEquals(h.count(said("2030-01-01T01:00:01.000Z")), 1, h.lines.join("\n"));
    // Another write's reload does not say it again; the job fires from the enable's reload.
    const marker = await h.job("other", BK);
    await h.clock.set(T0 + 3000);
    await h.until(() => h.daemon.state.appliedMarker >= marker, "the other job to be added");
    await h.clock.set(T0 + 10_000);
    await h.run("bk", T0 + 10_000, "success");
    assertEquals(h.count(anySaid), 1, h.lines.join("\n"));
    // Disabled and enabled again by right clocks: each write's updated_at stays after the
    // stored one (T0+1 h 1 s), so the enable is ahead again, and said again.
    await setEnabled(h.store, "bk", false, T0 + 11_000);
    await h.clock.set(T0 + 11_000);
    await h.until(() => h.daemon.state.jobsLoaded === 1, "the disable to be applied");
    await setEnabled(h.store, "bk", true, T0 + 12_000);
    await h.clock.set(T0 + 13_000);
    await h.until(() => h.daemon.state.jobsLoaded === 2, "the second enable to be applied");
    assertEquals(h.count(said("2030-01-01T01:00:01.002Z")), 1, h.lines.join("\n"));
    assertEquals(h.count(anySaid), 2, h.lines.join("\n"));
  });
}
