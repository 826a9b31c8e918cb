/**
 * How the daemon stops and starts, in-process with a fake clock, on every
 * backend: running jobs get shutdown_timeout, then are interrupted and
 * recorded so; queued fires are interrupted at once; one deadline
 * (shutdown_timeout + kill_grace + 5 s) bounds the whole stop even when
 * the database does not answer; a stop before the start stops right after
 * it; runs a crash left running are marked lost at start.
 */
import { assert, assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase, MYSQL_URL } from "./helpers.ts";
import { EXIT_RESERVE_MS, stopBudgetMs } from "../src/daemon/boot.ts";
import { settle } from "./fake_clock.ts";
import { DaemonHarness, NODE_ID, T0, throughProxy } from "./daemon_harness.ts";
import { proxyFor } from "./tcp_proxy.ts";

const at = (s: number) => T0 + s * 1000;
/** The defaults: shutdown_timeout 25 s, kill_grace 5 s. */
const SHUTDOWN_MS = 25_000;
const KILL_GRACE_MS = 5000;

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: a stop interrupts a long run after shutdown_timeout`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("long", { schedule: { second: "*" } });
    await h.start();
    await h.clock.set(at(1));
    const run = await h.started("long", at(1));
    await h.clock.set(at(1) + 500);
    const stoppedAt = await h.stop();
    assert(h.line(/^stopping: 1 runs running, waiting up to 25 s for them$/), h.lines.join("\n"));
    await h.clock.set(stoppedAt + SHUTDOWN_MS - 1);
    assert(!run.interrupted, "interrupted before shutdown_timeout");
    await h.clock.set(stoppedAt + SHUTDOWN_MS);
    await h.until(() => h.ended, "run() to end once the run was interrupted");
    const row = await h.run("long", at(1), "interrupted");
    assertEquals([row.finished_at, row.note], [
      stoppedAt + SHUTDOWN_MS,
      "killed: the service was shutting down",
    ]);
    // No fire after the stop, though the clock passed many of its instants.
    assertEquals((await h.runs()).map((r) => r.scheduled_at), [at(1)]);
    const [node] = (await h.store.nodesAndNow()).nodes;
    assertEquals([node.id, node.stopped_at], [NODE_ID, stoppedAt + SHUTDOWN_MS]);
    assert(h.line(/^stopped$/), h.lines.join("\n"));
  });

  Deno.test(`daemon[${backend}]: a stop lets a short run finish and ends without waiting more`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("short", { schedule: { second: "*" } });
    await h.start();
    await h.clock.set(at(1));
    const run = await h.started("short", at(1));
    await h.stop();
    await h.clock.set(at(1) + 800);
    run.finish({ stdout: "done\n" });
    await h.until(() => h.ended, "run() to end once the run finished");
    assertEquals(h.clock.now(), at(1) + 800);
    const row = await h.run("short", at(1), "success");
    assertEquals([row.stdout, row.finished_at], ["done\n", at(1) + 800]);
  });

  Deno.test(`daemon[${backend}]: a run that outlives its kill is recorded interrupted; queued fires at once`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "jobsmanager.max_workers": 1 },
    });
    await h.job("a", { schedule: { second: "*" } });
    await h.job("b", { schedule: { second: "*" } });
    await h.start();
    await h.clock.set(at(1));
    const stubborn = await h.started("a", at(1));
    stubborn.ignoresInterrupt = true;
    await h.run("b", at(1), "queued");
    const stoppedAt = await h.stop();
    const queued = await h.run("b", at(1), "interrupted");
    assertEquals(queued.note, "the service stopped before a worker was free");
    await h.clock.set(stoppedAt + SHUTDOWN_MS);
    await h.until(() => stubborn.interrupted, "the run to be interrupted");
    // kill_grace for the SIGKILL, a second for its output: then it is recorded without it.
    await h.clock.set(stoppedAt + SHUTDOWN_MS + KILL_GRACE_MS + 1000);
    const row = await h.run("a", at(1), "interrupted");
    assertEquals(
      row.note,
      "killed: the service was shutting down; its output was not read to the end",
    );
    await h.until(() => h.ended, "run() to end");
    assert(h.clock.now() <= stoppedAt + stopBudgetMs(h.settings));
  });

  Deno.test(`daemon[${backend}]: a stop before the start stops right after it`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("tick", { schedule: { second: "*" } });
    await h.start({ early: (daemon) => daemon.stop(), wait: false });
    await h.until(() => h.ended, "run() to end");
    assert(h.line(/^loaded 1 enabled jobs of 1/), h.lines.join("\n"));
    assert(h.line(/^stopped$/), h.lines.join("\n"));
    assertEquals(await h.runs(), []);
  });

  Deno.test(`daemon[${backend}]: runs a crash left running or queued are marked lost at start`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("tick", { cron: "0 12 15 6 *" });
    const left = { job_id: "tick", trigger: "schedule" as const, node_id: NODE_ID };
    await h.store.claimRuns([
      { ...left, scheduled_at: T0 - 2000, status: "running", started_at: T0 - 2000 },
      { ...left, scheduled_at: T0 - 1000, status: "queued" },
      { ...left, scheduled_at: T0 - 3000, status: "running", node_id: "another-node" },
    ]);
    await h.start();
    const rows = await h.runs();
    assertEquals(rows.map((r) => [r.scheduled_at - T0, r.status, r.note]), [
      [-2000, "lost", "its service ended without recording how it ended (killed or crashed)"],
      [-1000, "lost", "its service ended without recording how it ended (killed or crashed)"],
      [-3000, "running", null],
    ]);
    assert(h.line(/^2 runs left running by a previous service were marked lost$/));
  });
}

Deno.test({
  name: "daemon[mysql]: with the database not answering, a stop ends at its deadline",
  ignore: MYSQL_URL === "",
  async fn() {
    const db = await freshDatabase("mysql");
    await using proxy = proxyFor(db);
    await using h = await DaemonHarness.create(db, { store: throughProxy(db, proxy) });
    await h.job("long", { schedule: { second: "*" } });
    await h.start();
    await h.clock.set(at(1));
    const run = await h.started("long", at(1));
    await h.run("long", at(1), "running");
    // Every query now hangs: the run's record, the last heartbeat, the log rows, the pool's end.
    proxy.blackhole();
    await h.clock.set(at(2) - 1);
    const stoppedAt = await h.stop();
    assertEquals(stopBudgetMs(h.settings), SHUTDOWN_MS + KILL_GRACE_MS + 5000);
    // The daemon's own last step ends before the budget: the process exits within it.
    const deadline = stoppedAt + stopBudgetMs(h.settings) - EXIT_RESERVE_MS;
    await h.clock.set(stoppedAt + SHUTDOWN_MS);
    await h.until(() => run.interrupted, "the run to be interrupted");
    await h.clock.set(deadline - 1);
    await settle();
    assert(!h.ended, "run() ended before its deadline: something did not wait for the database");
    await h.clock.set(deadline);
    await h.until(() => h.ended, "run() to end at the deadline");
    // Let the held queries through, so nothing is left open.
    proxy.restore();
    await h.until(() => proxy.openConnections === 0, "the pool's connections to close");
  },
});

Deno.test({
  name: "daemon[mysql]: a stop while the start hangs on the database ends at its deadline",
  ignore: MYSQL_URL === "",
  async fn() {
    const db = await freshDatabase("mysql");
    await using proxy = proxyFor(db);
    await using h = await DaemonHarness.create(db, { store: throughProxy(db, proxy) });
    proxy.blackhole();
    await h.start({ wait: false });
    const stoppedAt = await h.stop();
    await h.clock.set(stoppedAt + stopBudgetMs(h.settings));
    await h.until(() => h.ended, "run() to end at the deadline");
    assertEquals(h.line(/^loaded/), undefined, "the start went on after the stop");
    proxy.restore();
    await h.until(() => proxy.openConnections === 0, "the pool's connections to close");
  },
});
