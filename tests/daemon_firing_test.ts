/**
 * The daemon in-process with a fake clock, on every backend: each fire
 * starts at its instant, is claimed once in jm_runs and ends with the
 * run's outcome; real processes get the run's environment.
 */
import { assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase } from "./helpers.ts";
import { DaemonHarness, NODE_ID, storeWith, T0 } from "./daemon_harness.ts";

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: a job every second starts at each instant, once`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("tick", { schedule: { second: "*" } });
    await h.start();
    for (let s = 1; s <= 3; s++) {
      const at = T0 + s * 1000;
      await h.clock.set(at);
      const run = await h.started("tick", at);
      assertEquals(run.startedAt, at, "started at its instant");
      const row = await h.run("tick", at, "running");
      assertEquals([row.started_at, row.node_id, row.note], [at, NODE_ID, null]);
      assertEquals(run.spec.env.JM_RUN_ID, String(row.id));
      assertEquals(run.spec.env.JM_SCHEDULED_AT, new Date(at).toISOString());
      run.finish({ stdout: `tick ${s}\n` });
      const done = await h.run("tick", at, "success");
      assertEquals([done.stdout, done.exit_code, done.finished_at], [`tick ${s}\n`, 0, at]);
    }
    assertEquals((await h.runs()).map((r) => r.scheduled_at - T0), [1000, 2000, 3000]);
    assertEquals(h.runner.runs.length, 3);
  });

  Deno.test(`daemon[${backend}]: a clock stepped back fires at its seconds again, never a fire twice`, async () => {
    const db = await freshDatabase(backend);
    // Claims answered: a fire decided again is claimed in vain, and the test waits for the answer.
    let claimed = 0;
    await using h = await DaemonHarness.create(db, {
      store: storeWith(db, {
        claimRuns: (target) => async (...args) => {
          const ids = await target.claimRuns(...args);
          claimed++;
          return ids;
        },
      }),
    });
    await h.job("tick", { schedule: { second: "*" } });
    await h.start();
    const at = (s: number) => T0 + s * 1000;
    const claimedAgain = async (when: number) => {
      const before = claimed;
      await h.clock.set(when);
      await h.until(() => claimed > before, `the fire at T0+${when - T0} to be claimed again`);
    };
    const second = async (when: number) => {
      await h.clock.set(when);
      (await h.started("tick", when)).finish();
      await h.run("tick", when, "success");
    };
    await second(at(1));
    await second(at(2));
    // Two seconds back: the fires at 1 and 2 s are decided again, and their claims find them run.
    await h.clock.advance(500);
    await h.clock.stepBack(2000);
    await claimedAgain(at(1));
    await claimedAgain(at(2));
    await second(at(3));
    assertEquals(h.runner.of("tick").map((r) => r.scheduledAt - T0), [1000, 2000, 3000]);
    assertEquals((await h.runs("tick")).map((r) => r.scheduled_at - T0), [1000, 2000, 3000]);
    // Ten minutes back (a clock that ran ahead, corrected): it fires at the clock's seconds.
    await h.clock.advance(500);
    await h.clock.stepBack(600_000);
    await second(at(4) - 600_000);
    await second(at(5) - 600_000);
    assertEquals(h.count(/the system clock went back/), 2, "each step back is logged");
    assertEquals(
      h.line(/the system clock went back (599.5|600) s/) !== undefined,
      true,
      h.lines.join("\n"),
    );
  });

  Deno.test(`daemon[${backend}]: real processes run with the run's environment`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), { realRuns: true });
    await h.job("tick", {
      schedule: { second: "*" },
      command: 'echo "tick $JM_JOB_ID $JM_RUN_ID $JM_SCHEDULED_AT"; exit 3',
    });
    await h.start();
    await h.clock.set(T0 + 1000);
    const run = await h.run("tick", T0 + 1000, "failed");
    assertEquals(run.stdout, `tick tick ${run.id} ${new Date(T0 + 1000).toISOString()}\n`);
    assertEquals([run.exit_code, run.started_at], [3, T0 + 1000]);
  });
}
