/**
 * A change the service was told of applies to the fire right after it, in
 * a daemon told of every write (`serve`: SQLite's file watched, MySQL's
 * change notices), in-process with a fake clock, on every backend. Polls
 * for reported writes stay 0.5 s apart, so a `job disable` reported 0.1-0.4
 * s before a fire, just after a poll, is polled for only after it: the
 * instant's fires wait for it (its changes applied first), as after a
 * pause, but no longer than FIRE_WAIT_MS when the database does not answer.
 * A fire with nothing reported costs no query; on SQLite, a write of the
 * service's own (no other connection committed) costs one look at the
 * data version and no poll.
 */
import { assertEquals } from "./assert.ts";
import { type Backend, BACKENDS, freshDatabase } from "./helpers.ts";
import { DaemonHarness, storeWith, T0 } from "./daemon_harness.ts";
import type { Store } from "../src/store/store.ts";

const at = (s: number) => T0 + s * 1000;
/** How long a fire waits for a reported change (service.ts CHANGES_BEFORE_FIRE_MS). */
const FIRE_WAIT_MS = 100;

/**
 * A store that counts the service's polls (pollState) and looks
 * (writtenElsewhere, and how many were answered), whose polls wait while `stall` is set, as on a
 * database that stopped answering.
 */
function watchedStore(db: Parameters<typeof storeWith>[0]) {
  const calls = { polls: 0, looks: 0, answered: 0, stall: null as Promise<void> | null };
  const open = storeWith(db, {
    pollState: (target: Store) => async (...args) => {
      calls.polls++;
      await calls.stall;
      return await target.pollState(...args);
    },
    writtenElsewhere: (target: Store) => async () => {
      calls.looks++;
      const elsewhere = await target.writtenElsewhere();
      calls.answered++;
      return elsewhere;
    },
  });
  return { open, calls };
}

/**
 * A watched service with `tick` (echo v1) and `steady`, both firing at 2 s
 * past each minute; a write reported at `reportAt` - 100 ms (another job
 * added), polled for 50 ms after: the next poll for a write comes 0.5 s
 * after that one, at `reportAt` + 450 ms.
 */
async function polledJustBefore(backend: Backend, reportAt: number) {
  const db = await freshDatabase(backend);
  const store = watchedStore(db);
  const h = await DaemonHarness.create(db, { store: store.open });
  await h.job("tick", { schedule: { second: "2" }, command: "echo v1" });
  await h.job("steady", { schedule: { second: "2" } });
  const daemon = await h.start();
  daemon.watched(true);
  // The poll planned at the start, reload_interval after the first; the next is 5 s later.
  await h.clock.set(T0 + 500);
  await h.until(() => store.calls.polls === 2, `the poll at 0.5 s (${store.calls.polls} so far)`);
  await h.clock.set(reportAt - 100);
  const other = await h.job("other", { cron: "0 12 15 6 *" });
  daemon.changed();
  await h.clock.set(reportAt - 50);
  await h.until(
    async () => (await h.markers()).find((m) => m.id === other)?.updated,
    `marker ${other} to be applied by the poll at T0+${reportAt - 50 - T0}`,
  );
  await h.until(() => !daemon.state.polling, "the poll to end");
  return { h, daemon, store };
}

/**
 * Write `change` at `reportAt` and report it; once it is looked for (50 ms
 * later: its poll is planned 0.5 s after the last, after the fire at 2 s),
 * move to 2 s.
 */
async function changedBeforeFire(
  h: DaemonHarness,
  daemon: { changed(): void },
  store: ReturnType<typeof watchedStore>,
  reportAt: number,
  change: () => Promise<number>,
): Promise<number> {
  await h.clock.set(reportAt);
  const marker = await change();
  const { polls, answered } = store.calls;
  daemon.changed();
  await h.clock.set(reportAt + 50);
  await h.until(() => store.calls.answered > answered, "the look 50 ms after the report");
  assertEquals(store.calls.polls, polls, "a poll came within 0.5 s of the last");
  await h.clock.set(at(2));
  return marker;
}

/**
 * A harness polled just before `reportAt` (`polledJustBefore`), where
 * `change` is written and reported at `reportAt` (`changedBeforeFire`);
 * its marker.
 */
async function changedJustBefore(
  backend: Backend,
  reportAt: number,
  change: (h: DaemonHarness) => Promise<number>,
): Promise<{ h: DaemonHarness; marker: number }> {
  const { h, daemon, store } = await polledJustBefore(backend, reportAt);
  try {
    return { h, marker: await changedBeforeFire(h, daemon, store, reportAt, () => change(h)) };
  } catch (error) {
    await h[Symbol.asyncDispose]();
    throw error;
  }
}

const ahead = [100, 250, 400];

for (const backend of BACKENDS) {
  for (const ms of ahead) {
    Deno.test(`daemon[${backend}]: a job disabled, reported ${ms} ms before its fire and after a poll, does not fire`, async () => {
      const { h: watched, marker } = await changedJustBefore(
        backend,
        at(2) - ms,
        (h) => h.job("tick", { enabled: false }),
      );
      await using h = watched;
      // steady fires at 2 s in the same dispatch as tick would have.
      await h.started("steady", at(2));
      await h.run("steady", at(2), "running");
      assertEquals(
        (await h.runs("tick")).map((r) => `${r.status} @${(r.scheduled_at - T0) / 1000}`),
        [],
        `tick, disabled ${ms} ms before its fire at 2 s (marker ${marker}), fired there:\n${await h
          .describe()}`,
      );
      assertEquals(h.runner.of("tick").map((r) => r.scheduledAt), []);
    });

    Deno.test(`daemon[${backend}]: a job's command changed, reported ${ms} ms before its fire and after a poll, fires the new command`, async () => {
      const { h: watched } = await changedJustBefore(
        backend,
        at(2) - ms,
        (h) => h.job("tick", { command: "echo v2" }),
      );
      await using h = watched;
      const run = await h.started("tick", at(2));
      assertEquals(
        run.spec.command,
        "echo v2",
        `the fire at 2 s ran the command as it was before the change reported ${ms} ms earlier`,
      );
    });
  }

  for (const ms of ahead) {
    Deno.test(`daemon[${backend}]: a job's schedule changed, reported ${ms} ms before a fire both schedules have, fires there`, async () => {
      const { h: watched } = await changedJustBefore(
        backend,
        at(2) - ms,
        (h) => h.job("tick", { schedule: { second: "2,30" } }),
      );
      await using h = watched;
      // The change is applied before the instant's fires are taken: the due fire stays due.
      (await h.started("tick", at(2))).finish();
      await h.run("tick", at(2), "success");
      // And the new schedule goes on.
      await h.clock.set(at(30));
      await h.started("tick", at(30));
    });
  }

  Deno.test(`daemon[${backend}]: a job removed, reported 200 ms before its fire and after a poll, does not fire`, async () => {
    const { h: watched } = await changedJustBefore(
      backend,
      at(2) - 200,
      (h) => h.removeJob("tick"),
    );
    await using h = watched;
    await h.run("steady", at(2), "running");
    assertEquals(h.runner.of("tick").map((r) => r.scheduledAt), [], await h.describe());
  });

  Deno.test(`daemon[${backend}]: a database that does not answer holds an instant's fires ${FIRE_WAIT_MS} ms at most for a reported change; they run as the jobs were`, async () => {
    const { h: watched, daemon, store } = await polledJustBefore(backend, at(2) - 300);
    await using h = watched;
    const answer = Promise.withResolvers<void>();
    store.calls.stall = answer.promise;
    try {
      await changedBeforeFire(
        h,
        daemon,
        store,
        at(2) - 300,
        () => h.job("tick", { command: "echo v2" }),
      );
      await h.until(
        () => h.clock.wakeUps.includes(at(2) + FIRE_WAIT_MS),
        `the loop to wait for the change till T0+${2000 + FIRE_WAIT_MS} (wake-ups: ${
          h.clock.wakeUps.map((t) => t - T0)
        })`,
      );
      assertEquals(h.runner.runs.length, 0, "a fire at 2 s went before its wait ended");
      await h.clock.set(at(2) + FIRE_WAIT_MS - 1);
      assertEquals(h.runner.runs.length, 0, "a fire at 2 s went before its wait ended");
      await h.clock.set(at(2) + FIRE_WAIT_MS);
      const run = await h.started("tick", at(2));
      assertEquals(run.spec.command, "echo v1", "the change applied though the database hung");
      await h.started("steady", at(2));
    } finally {
      store.calls.stall = null;
      answer.resolve();
    }
  });

  Deno.test(`daemon[${backend}]: under a change every 100 ms, each fire runs on time, with the last command written before it`, async () => {
    const db = await freshDatabase(backend);
    await using h = await DaemonHarness.create(db);
    await h.job("tick", { schedule: { second: "*" }, command: "echo 0" });
    const daemon = await h.start();
    daemon.watched(true);
    let written = 0;
    for (const s of [1, 2, 3]) {
      // Written and reported 0.95, 0.85, … 0.05 s before the fire: never a quiet half second.
      for (let ahead = 950; ahead > 0; ahead -= 100) {
        await h.clock.set(at(s) - ahead);
        await h.job("tick", { command: `echo ${++written}` });
        daemon.changed();
      }
      // The clock stays at the instant: a fire waiting for a quiet moment would never start.
      await h.clock.set(at(s));
      const run = await h.started("tick", at(s));
      assertEquals(run.spec.command, `echo ${written}`, `the fire at ${s} s`);
      run.finish();
    }
  });

  Deno.test(`daemon[${backend}]: with nothing reported since the last poll, a fire costs no poll and no look`, async () => {
    const { h: watched, store } = await polledJustBefore(backend, at(1) + 500);
    await using h = watched;
    const { polls, looks } = store.calls;
    await h.clock.set(at(2));
    for (const job of ["tick", "steady"]) await h.started(job, at(2));
    assertEquals(
      { polls: store.calls.polls, looks: store.calls.looks },
      { polls, looks },
      "the fire at 2 s polled or looked",
    );
  });
}

Deno.test("daemon[sqlite]: a write of the service's own reported just before a fire costs a look at the data version, no poll", async () => {
  const { h: watched, daemon, store } = await polledJustBefore("sqlite", at(1) + 500);
  await using h = watched;
  // The service's own writes (the runs' records) are reported as any write on SQLite; this
  // one 20 ms before the fire, not looked for yet.
  await h.clock.set(at(2) - 20);
  daemon.changed();
  const { polls, looks } = store.calls;
  await h.clock.set(at(2));
  for (const job of ["tick", "steady"]) await h.started(job, at(2));
  assertEquals(
    { polls: store.calls.polls, looks: store.calls.looks },
    { polls, looks: looks + 1 },
    "the fire at 2 s polled for the service's own write, or did not look for it",
  );
});
