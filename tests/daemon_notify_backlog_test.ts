/**
 * A job's backlog of notifications, every backend, in-process on a fake
 * clock with real hook commands: a removed job's notifications waiting to
 * be sent are dropped, not run after it is gone; a job's pending ones are
 * bounded, the rest counted into the next that goes out.
 */
import { assertEquals, assertMatch } from "./assert.ts";
import { BACKENDS, freshDatabase, rawQuery } from "./helpers.ts";
import { DaemonHarness, T0 } from "./daemon_harness.ts";
import { appendStdin, jsonLines, tempDir, touched } from "./notify_fixtures.ts";

/** Fail job `id`'s fires at T0 + each of `seconds`, each claimed before the next; their run ids. */
async function failAt(h: DaemonHarness, id: string, seconds: number[]): Promise<number[]> {
  const ids: number[] = [];
  for (const [i, s] of seconds.entries()) {
    await h.clock.set(T0 + s * 1000);
    (await h.started(id, T0 + s * 1000)).finish({ status: "failed", exitCode: 1 });
    ids.push((await h.run(id, T0 + s * 1000, "failed")).id);
    await h.until(async () => {
      const [row] = await rawQuery(h.db, "SELECT COUNT(*) AS n FROM jm_notifications");
      return Number(row.n) === i + 1;
    }, `failure ${i + 1} claimed`);
  }
  return ids;
}

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

for (const backend of BACKENDS) {
  Deno.test(`notify backlog[${backend}]: at most 10 of a job's failures wait to be sent; the rest are counted into the next`, async () => {
    await using dir = await tempDir();
    const d = dir.path;
    const file = `${d}/failure.jsonl`;
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "notify.min_interval": 0 },
    });
    const seconds = Array.from({ length: 15 }, (_, i) => i + 1);
    await h.job("noisy", {
      schedule: { second: seconds.join(","), minute: "0", hour: "0" },
      on_failure: `while ! test -e '${d}/go'; do sleep 0.05; done; ${appendStdin(file)}`,
    });
    await h.start();
    const ids = await failAt(h, "noisy", seconds);
    const count = async (outcome: string) =>
      Number(
        (await rawQuery(
          h.db,
          "SELECT COUNT(*) AS n FROM jm_notifications WHERE outcome = ?",
          [outcome],
        ))[0].n,
      );
    assertEquals([await count("pending"), await count("held")], [10, 5]);
    assertMatch(
      h.line(/^job noisy: failure notification held back: /) ?? "",
      /^job noisy: failure notification held back: 10 of the job's wait to be sent already/,
    );
    await Deno.writeTextFile(`${d}/go`, "");
    const got = await h.stepUntil(
      async () => {
        const lines = await jsonLines(file);
        return lines.length >= 11 ? lines : null;
      },
      "the 10 waiting, then the last held back with the count of the others",
      { to: T0 + 300_000 },
    );
    assertEquals(got.slice(0, 10).map((p) => p.run_id), ids.slice(0, 10));
    assertEquals([got[10].run_id, got[10].held_back?.count], [ids[14], 4]);
    // Sent, then recorded sent.
    await h.until(async () => await count("pending") === 0, "no notification left pending");
  });
}
