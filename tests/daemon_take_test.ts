/**
 * A service takes a queued run (a `job run` request, a due retry or
 * follow-up) by a write conditional on `queued`. When that write lands
 * but its answer is lost, the row is `running` on this node with nothing
 * behind it, and other nodes count it against the job's max_instances:
 * once the database is back the run goes back to the queue and runs once.
 */
import { assertEquals, assertMatch } from "./assert.ts";
import { BACKENDS, freshDatabase, type TestDatabase } from "./helpers.ts";
import { DaemonHarness } from "./daemon_harness.ts";
import type { Store } from "../src/store/store.ts";

/** Stores on `db` whose next take of a queued run, once `lose.next` is set, is written but answered by an error. */
function losingTakes(db: TestDatabase, lose: { next: boolean }): () => Store {
  return () => {
    const store = db.open();
    const updateRun = store.updateRun.bind(store);
    store.updateRun = async (id, update, onlyIf) => {
      const written = await updateRun(id, update, onlyIf);
      if (!lose.next || update.status !== "running" || onlyIf !== "queued") return written;
      lose.next = false;
      throw new Error("read ECONNRESET: the connection was lost");
    };
    return store;
  };
}

for (const backend of BACKENDS) {
  Deno.test(`daemon take[${backend}]: a job run request whose take's answer was lost runs once the database is back`, async () => {
    const db = await freshDatabase(backend);
    const lose = { next: false };
    await using h = await DaemonHarness.create(db, { store: losingTakes(db, lose) });
    await h.job("report", {
      schedule: { second: "0", minute: "0", hour: "0", day: "1", month: "1" },
    });
    h.runner.endAll();
    await h.start();
    lose.next = true;
    const [id] = await h.store.claimRuns([
      { job_id: "report", scheduled_at: h.clock.now(), status: "queued", trigger: "manual" },
    ]);
    // The next poll takes it; the take's answer is lost.
    await h.clock.set(h.clock.now() + 1000);
    await h.until(() => h.line(/^the database is unreachable/), "the lost answer to be noticed");
    // The probe finds the database back; the poll after puts the run back and takes it again.
    await h.clock.set(h.clock.now() + 2000);
    await h.until(() => h.line(/^the database is back after/), "the database to be back");
    await h.clock.set(h.clock.now() + 1000);
    const run = await h.until(async () => {
      const row = (await h.runs("report")).find((r) => r.id === id);
      return row?.status === "success" ? row : null;
    }, "the request to run once the database is back");
    assertEquals(run.trigger, "manual");
    assertEquals(h.runner.of("report").map((r) => r.runId), [id], "the request started once");
    assertEquals(
      h.count(
        /^run \d+ of job report: this service's take of it reached the database, but the answer was lost; it never started, and is back in the queue$/,
      ),
      1,
    );
  });
}

for (const backend of BACKENDS) {
  Deno.test(`daemon take[${backend}]: a request of a job broken by hand since is not run: its error says what to fix`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("report", {
      schedule: { second: "0", minute: "0", hour: "0", day: "1", month: "1" },
    });
    await h.start();
    // Broken since the service read it (an environment variable's name no process can be given),
    // before the request: one queued first may be taken at once, before the row is broken.
    await h.sql(`UPDATE jm_jobs SET env = '{"1A":"x"}' WHERE id = 'report'`);
    const [id] = await h.store.claimRuns([
      { job_id: "report", scheduled_at: h.clock.now(), status: "queued", trigger: "manual" },
    ]);
    await h.clock.set(h.clock.now() + 1000);
    const run = await h.until(async () => {
      const row = (await h.runs("report")).find((r) => r.id === id);
      return row?.status === "queued" ? null : row;
    }, "the request to be taken");
    assertEquals(run.status, "error");
    assertMatch(
      run.note!,
      /^not run: the job is invalid: env: .*1A.*\(fix the row, e\.g\. UPDATE jm_jobs SET env = '\{\}' WHERE id = 'report'\)$/,
    );
    assertEquals(h.runner.of("report"), [], "nothing started");
  });
}
