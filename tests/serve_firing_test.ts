/**
 * `jobsmanager serve` end to end, on every backend: fires on whole
 * seconds with the run's environment, and kills a timed-out process group
 * whole. Concurrency limits are in serve_limits_test.ts.
 */
import { assert, assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase, waitFor } from "./helpers.ts";
import {
  jm,
  killLeftovers,
  pgrep,
  ran,
  ready,
  runs,
  runsDetail,
  startServe,
  uniqueSeconds,
} from "./serve_helpers.ts";

for (const backend of BACKENDS) {
  Deno.test(`serve[${backend}]: a job every second fires on whole seconds with its env`, async () => {
    await using db = await freshDatabase(backend);
    await jm(
      db,
      "job",
      "add",
      "tick",
      "--second",
      "*",
      "--command",
      'echo "tick $JM_JOB_ID $JM_RUN_ID $JM_SCHEDULED_AT"',
    );
    await using serve = await startServe(db);
    await waitFor(
      async () => (await runs(db, "tick")).filter((r) => r.status === "success").length >= 3,
      { timeoutMs: 20_000, what: "3 successful runs of tick", detail: runsDetail(db) },
    );
    const { status } = await serve.terminate();
    assertEquals(status.code, 0, serve.stderr);

    const rows = await runs(db, "tick");
    for (const r of rows) {
      const where = `run ${r.id} (${r.scheduled_at})`;
      assertEquals(r.scheduled_at % 1000, 0, `${where}: not a whole second`);
      if (!ran(r, rows)) continue;
      assertEquals([r.status, r.trigger, r.exit_code], ["success", "schedule", 0], where);
      // Never early; a fire later than misfire_grace_time would be recorded missed.
      assert(r.started_at! >= r.scheduled_at, `${where}: started before its fire time`);
      assert(r.finished_at! >= r.started_at!, where);
      assertEquals(
        r.stdout,
        `tick tick ${r.id} ${new Date(r.scheduled_at).toISOString()}\n`,
        `${where}: output`,
      );
    }
  });

  Deno.test(`serve[${backend}]: a timeout kills the whole process group`, async () => {
    await using db = await freshDatabase(backend);
    const tag = uniqueSeconds(0).slice(2);
    const pattern = `sleep 300[12]\\.${tag}`;
    try {
      // Never fires by itself: the one run is requested, so no second one starts new sleeps.
      await jm(
        db,
        "job",
        "add",
        "group",
        "--cron",
        "0 0 1 1 *",
        "--timeout",
        "1",
        "--command",
        `sleep 3001.${tag} & sleep 3002.${tag}`,
      );
      await using serve = await startServe(db);
      await ready(db, serve);
      await jm(db, "job", "run", "group");
      const detail = runsDetail(db, "group");
      const run = await waitFor(
        async () => (await runs(db, "group")).find((r) => r.status === "running"),
        { timeoutMs: 15_000, what: "the run to start", detail },
      );
      // Both sleeps ran: the background one is what a plain kill of the shell would leave.
      await waitFor(
        async () =>
          (await pgrep(`^sleep 3001\\.${tag}`)).length === 1 &&
          (await pgrep(`^sleep 3002\\.${tag}`)).length === 1,
        {
          timeoutMs: 10_000,
          what: "both sleeps of the group to run",
          detail: async () => `sleeps: ${await pgrep(pattern)}`,
        },
      );
      const done = await waitFor(async () => {
        const r = (await runs(db, "group")).find((r) => r.id === run.id)!;
        return r.status === "running" ? undefined : r;
      }, { timeoutMs: 15_000, what: "the run to end (its sleeps would take 50 minutes)", detail });
      assertEquals(done.status, "timeout", done.note ?? "");
      const took = done.finished_at! - done.started_at!;
      assert(took >= 1000, `the run was ended after ${took} ms, before its 1 s timeout`);
      await waitFor(async () => (await pgrep(pattern)).length === 0, {
        timeoutMs: 10_000,
        what: `no process matching '${pattern}' to be left`,
        detail: async () => `left: ${await pgrep(pattern)}`,
      });
      assertEquals((await serve.terminate()).status.code, 0, serve.stderr);
      assertEquals((await runs(db, "group")).length, 1);
    } finally {
      await killLeftovers(pattern);
    }
  });
}
