/**
 * At start, before its first fire, the service ends what runs of a
 * previous service on this node left running (it was killed with its
 * guard, or crashed): the run's group, only while a process in it still
 * carries the run's marker (the id may have been reused), and whatever
 * carries the marker outside it. In-process, on every backend, with real
 * processes standing in for the leftovers.
 */
import { assert, assertEquals } from "./assert.ts";
import { BACKENDS, detachedSleep as leftover, freshDatabase } from "./helpers.ts";
import { DaemonHarness, NODE_ID, T0 } from "./daemon_harness.ts";

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: the start ends a crashed run's processes, and only those`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    const marker = crypto.randomUUID();
    const orphan = leftover({ JM_RUN_MARKER: marker });
    // Its group id is in a row too, but it does not carry that row's marker.
    const stranger = leftover({});
    try {
      await h.sql(
        "INSERT INTO jm_runs (job_id, scheduled_at, status, `trigger`, node_id, pgid, marker) VALUES ('a', ?, 'running', 'schedule', ?, ?, ?), ('b', ?, 'running', 'schedule', ?, ?, ?)",
        [
          T0 - 1000,
          NODE_ID,
          orphan.pid,
          marker,
          T0 - 1000,
          NODE_ID,
          stranger.pid,
          crypto.randomUUID(),
        ],
      );
      await h.start();
      assertEquals((await orphan.status).signal, "SIGTERM");
      const runs = await h.runs();
      assertEquals(runs.map((r) => [r.job_id, r.status]), [["a", "lost"], ["b", "lost"]]);
      const ended = h.lines.filter((l) => /left running by a previous service: ended/.test(l));
      assertEquals(ended.length, 1, h.lines.join("\n"));
      assert(
        ended[0].includes(`job a run ${runs[0].id}`) &&
          ended[0].includes(`ended its processes ${orphan.pid} (`),
        ended[0],
      );
      // The stranger lives on.
      Deno.kill(stranger.pid, "SIGCONT");
    } finally {
      for (const child of [orphan, stranger]) {
        try {
          child.kill("SIGKILL");
        } catch {
          // Already ended.
        }
        await child.status;
      }
    }
  });

  Deno.test(`daemon[${backend}]: the runs a killed service left end at its last heartbeat, not at the restart`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("a", { cron: "0 12 15 6 *" });
    // The row a service killed with SIGKILL left: its last beat 30 s before the restart (its own
    // clock), long enough ago by the database's for the restart to take the row over.
    const beat = T0 - 30_000;
    await h.store.saveNode({
      id: NODE_ID,
      host: "test",
      pid: 4242,
      version: "0.1.0",
      started_at: T0 - 3_600_000,
      heartbeat_at: beat,
      applied_marker: null,
      jobs_loaded: 1,
      last_reload_at: null,
      last_reload_ms: null,
      stopped_at: null,
      timezone: "UTC",
      db_heartbeat_at: (await h.store.databaseNow()) - 600_000,
      heartbeat_ms: 5000,
    });
    const left = { job_id: "a", trigger: "schedule" as const, node_id: NODE_ID };
    await h.store.claimRuns([
      { ...left, scheduled_at: T0 - 60_000, status: "running", started_at: T0 - 60_000 },
      // Started after the last beat: it ran at least until its start.
      { ...left, scheduled_at: T0 - 10_000, status: "running", started_at: T0 - 10_000 },
      { ...left, scheduled_at: T0 - 40_000, status: "queued" },
    ]);
    await h.clock.set(T0 + 5000);
    await h.start();
    const rows = await h.runs("a");
    assertEquals(
      rows.map((r) => [r.scheduled_at - T0, r.status, r.finished_at! - T0]),
      [[-60_000, "lost", -30_000], [-10_000, "lost", -10_000], [-40_000, "lost", -30_000]],
    );
    assertEquals(
      rows[0].note,
      `its service ended without recording how it ended (killed or crashed); recorded as ended at its last heartbeat (${
        new Date(beat).toISOString()
      }), or at its start when later`,
    );
  });

  Deno.test(`daemon[${backend}]: a run's marker is recorded with its claim, before its process starts`, async () => {
    // A service killed between the start and the next write leaves a run its successor can end.
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("a", { schedule: { second: "5" } });
    await h.start();
    h.runner.holdStarts = true;
    const fire = T0 + 5000;
    await h.clock.set(fire);
    await h.until(() => Promise.resolve(h.runner.heldStarts === 1 || null), "the run handed out");
    const claimed = await h.run("a", fire, "running");
    assert(claimed.marker !== null, `no marker in the claimed row: ${JSON.stringify(claimed)}`);
    // A `job run` request: claimed by an update of its queued row.
    await h.sql(
      "INSERT INTO jm_runs (job_id, scheduled_at, status, `trigger`, forced) VALUES ('a', ?, 'queued', 'manual', 1)",
      [fire + 100],
    );
    await h.clock.pass(1000);
    // The request's row says running a moment before its start reaches the runner.
    const manual = await h.until(
      async () =>
        h.runner.heldStarts === 2
          ? (await h.runs("a")).find((r) => r.trigger === "manual" && r.status === "running")
          : undefined,
      "the request claimed and handed to the runner",
    );
    assert(manual.marker !== null, `no marker in the claimed request: ${JSON.stringify(manual)}`);
    h.runner.releaseStarts();
    const started = await h.until(
      () => Promise.resolve(h.runner.of("a").length === 2 ? h.runner.of("a") : null),
      "both runs started",
    );
    assertEquals(
      started.map((r) => r.spec.marker).sort(),
      [claimed.marker, manual.marker].sort(),
      "the processes carry the markers recorded",
    );
  });
}
