/**
 * A job whose working directory does not answer (a hung network mount):
 * its run is recorded as not started, saying why, and the other jobs fire
 * on. In-process, real runs through the daemon's runner, a real hung mount
 * (hung_mount.ts); and `job run --here` through the real CLI.
 */
import { assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase, jm, rawQuery } from "./helpers.ts";
import { DaemonHarness, T0 } from "./daemon_harness.ts";
import { hungMount, hungMountPossible } from "./hung_mount.ts";
import { hungNote } from "../src/daemon/directory_check.ts";

for (const backend of BACKENDS) {
  Deno.test({
    name:
      `daemon[${backend}]: a job whose cwd does not answer (a hung mount) is recorded error, saying so, and holds up no other job`,
    ignore: !hungMountPossible(),
    fn: async () => {
      // Ended after 20 s whatever holds this thread: a stat made on it (the bug) waits until then.
      await using mount = await hungMount(20_000);
      await using h = await DaemonHarness.create(await freshDatabase(backend), {
        realRuns: true,
      });
      const cwd = `${mount.path}/srv`;
      await h.job("stuck", { schedule: { second: "1" }, cwd });
      await h.job("beside", { schedule: { second: "1" } });
      await h.job("after", { schedule: { second: "2" } });
      await h.start();
      await h.clock.set(T0 + 1000);
      await h.run("beside", T0 + 1000, "success");
      await h.clock.set(T0 + 2000);
      await h.run("after", T0 + 2000, "success");
      const stuck = await h.run("stuck", T0 + 1000, "error");
      assertEquals([stuck.started_at !== null, stuck.note], [true, hungNote(cwd)]);
    },
  });
}

for (const backend of BACKENDS) {
  Deno.test({
    name:
      `cli[${backend}]: job run --here of a job whose cwd does not answer ends, recording the run error, saying so`,
    ignore: !hungMountPossible(),
    fn: async () => {
      // Ended after 60 s whatever holds the CLI: a spawn there (the bug) waits until then.
      await using mount = await hungMount(60_000);
      await using db = await freshDatabase(backend);
      const cwd = `${mount.path}/srv`;
      const added = await jm(
        db,
        "job",
        "add",
        "stuck",
        "--cron",
        "0 0 1 1 *",
        "--command",
        "true",
        "--cwd",
        cwd,
      );
      assertEquals(added.code, 0, added.stderr);
      const ran = await jm(db, "job", "run", "stuck", "--here");
      const [row] = await rawQuery(db, "SELECT status, note FROM jm_runs WHERE job_id = 'stuck'");
      assertEquals(
        { code: ran.code, status: row.status, note: row.note },
        {
          code: 1,
          status: "error",
          note: `run in the CLI with --here; ${hungNote(cwd, undefined, true)}`,
        },
        `${ran.stdout}${ran.stderr}`,
      );
    },
  });
}
