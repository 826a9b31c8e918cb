/**
 * A job's backlog of notifications, every backend, in-process on a fake
 * clock with real hook commands: a removed job's notifications waiting to
 * be sent are dropped, not run after it is gone.
 */
import { assertEquals, assertMatch } from "./assert.ts";
import { BACKENDS, freshDatabase, rawQuery } from "./helpers.ts";
import { DaemonHarness, T0 } from "./daemon_harness.ts";
import { tempDir, touched } from "./notify_fixtures.ts";

for (const backend of BACKENDS) {
  Deno.test(`notify backlog[${backend}]: a removed job's notifications waiting to be sent are dropped, and the log says how many`, async () => {
    await using dir = await tempDir();
    const d = dir.path;
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "notify.min_interval": 0, "notify.max_concurrent": 1 },
    });
    await h.job("noisy", {
      schedule: { second: "1,2,3,4", minute: "0", hour: "0" },
      // Each hook waits for the test: its job's next ones queue behind it.
      on_failure:
        `cat > /dev/null; touch '${d}/started.'$$; while ! test -e '${d}/go'; do sleep 0.05; done`,
    });
    // Its hook goes after whatever waits for the one turn: a witness that the dropped ones do not.
    await h.job("witness", {
      schedule: { second: "59", minute: "0", hour: "0" },
      on_failure: `cat > /dev/null; touch '${d}/witness'`,
    });
    await h.start();
    for (const s of [1, 2, 3, 4]) {
      await h.clock.set(T0 + s * 1000);
      (await h.started("noisy", T0 + s * 1000)).finish({ status: "failed", exitCode: 1 });
      await h.until(async () => {
        const [row] = await rawQuery(h.db, "SELECT COUNT(*) AS n FROM jm_notifications");
        return Number(row.n) === s;
      }, `failure ${s} claimed`);
    }
    await h.until(async () => await touched(`${d}/started`) === 1, "the first hook running");
    await h.removeJob("noisy");
    const line = await h.until(async () => {
      const found = h.line(/^job noisy was removed/);
      if (!found) await h.clock.advance(1000);
      return found;
    }, "the removal seen by the notifier");
    assertMatch(
      line,
      /^job noisy was removed: 4 of its notifications waiting to be sent \(pending or held back\) dropped$/,
    );
    const pending = await rawQuery(
      h.db,
      "SELECT COUNT(*) AS n FROM jm_notifications WHERE outcome = 'pending'",
    );
    assertEquals(Number(pending[0].n), 0);
    await Deno.writeTextFile(`${d}/go`, "");
    await h.until(
      () => h.line(/^job noisy: failure hook command ran/),
      "the hook under way to end",
    );
    await h.clock.set(T0 + 59_000);
    (await h.started("witness", T0 + 59_000)).finish({ status: "failed", exitCode: 1 });
    await h.until(() => h.line(/^job witness: failure hook command ran/), "the witness's hook");
    assertEquals(await touched(`${d}/started`), 1);
    assertEquals(h.count(/^job noisy: failure hook command ran/), 1);
  });
}
