/**
 * Concurrency limits of `jobsmanager serve`, on every backend:
 * max_instances skips fires while runs are running (and lets exactly that
 * many overlap); max_workers bounds runs across jobs, queueing fires and
 * recording those that waited past their grace as missed.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { BACKENDS, freshDatabase, waitFor } from "./helpers.ts";
import {
  jm,
  maxConcurrent,
  type RunRow,
  runs,
  runsDetail,
  started,
  startServe,
} from "./serve_helpers.ts";

/**
 * Every skipped fire was decided while enough runs of its job were in
 * progress. All times are the service's own clock: a run counts from its
 * fire (its process may start after a slow claim) until it is recorded ended.
 */
function assertSkipsJustified(rows: RunRow[], maxInstances: number): void {
  const ran = rows.filter(started);
  for (const skip of rows.filter((r) => r.status === "skipped")) {
    assertEquals(skip.note, `max_instances (${maxInstances}) runs were still running`);
    const at = skip.finished_at!;
    const busy = ran.filter((r) =>
      r.scheduled_at <= at && (r.finished_at === null || r.finished_at >= at)
    );
    assert(
      busy.length >= maxInstances,
      `fire ${skip.scheduled_at} was skipped at ${at} with only ${busy.length} runs in progress`,
    );
  }
}

for (const backend of BACKENDS) {
  Deno.test(`serve[${backend}]: max_instances 1 skips fires while a run runs`, async () => {
    await using db = await freshDatabase(backend);
    await jm(db, "job", "add", "slow", "--second", "*", "--command", "sleep 1.5");
    await using serve = await startServe(db);
    const detail = runsDetail(db, "slow");
    await waitFor(async () => {
      const rows = await runs(db, "slow");
      return rows.filter((r) => r.status === "success").length >= 2 &&
        rows.some((r) => r.status === "skipped");
    }, { timeoutMs: 20_000, what: "2 finished runs and a skipped fire", detail });
    assertEquals((await serve.terminate()).status.code, 0, serve.stderr);
    const rows = await runs(db, "slow");
    assertEquals(maxConcurrent(rows), 1, `runs overlapped:\n${await detail()}`);
    assertSkipsJustified(rows, 1);
  });

  Deno.test(`serve[${backend}]: max_instances 2 lets two runs overlap, not three`, async () => {
    await using db = await freshDatabase(backend);
    await jm(
      db,
      "job",
      "add",
      "slow",
      "--second",
      "*",
      "--max-instances",
      "2",
      "--command",
      "sleep 2.5",
    );
    await using serve = await startServe(db);
    const detail = runsDetail(db, "slow");
    await waitFor(async () => {
      const rows = await runs(db, "slow");
      return maxConcurrent(rows) >= 2 && rows.some((r) => r.status === "skipped");
    }, { timeoutMs: 20_000, what: "two runs at once and a skipped fire", detail });
    const { status } = await serve.terminate();
    assertEquals(status.code, 0, serve.stderr);
    const rows = await runs(db, "slow");
    assertEquals(maxConcurrent(rows), 2, `runs at once:\n${await detail()}`);
    assertSkipsJustified(rows, 2);
  });

  Deno.test(`serve[${backend}]: max_workers 1 never runs two at once`, async () => {
    await using db = await freshDatabase(backend);
    // With one worker and two 1.5 s jobs due each second, `a` (first by id)
    // takes the worker and `b` queues. `b`, with a 5 s grace, starts late
    // when `a` ends; `a`'s fire queued behind `b` waits past its 1 s grace
    // and is recorded missed. Queued fires count as instances, so the fires
    // in between are skipped.
    await jm(db, "job", "add", "a", "--second", "*", "--command", "sleep 1.5");
    await jm(
      db,
      "job",
      "add",
      "b",
      "--second",
      "*",
      "--misfire-grace-time",
      "5",
      "--command",
      "sleep 1.5",
    );
    await using serve = await startServe(db, { max_workers: 1 });
    const detail = runsDetail(db);
    const workerNote = /^waited \d+ ms for a free worker \(max_workers 1\)$/;
    await waitFor(async () => {
      const rows = await runs(db);
      return rows.some((r) => r.status === "missed" && workerNote.test(r.note ?? "")) &&
        rows.some((r) => r.status === "success" && r.started_at! - r.scheduled_at >= 1000);
    }, {
      timeoutMs: 20_000,
      what: "a fire missed waiting for a worker and a queued fire run late",
      detail,
    });
    assertEquals((await serve.terminate()).status.code, 0, serve.stderr);
    const rows = await runs(db);
    assertEquals(maxConcurrent(rows), 1, `runs overlapped:\n${await detail()}`);
    // Missed only after waiting past its grace (both times by the service's clock).
    for (const r of rows.filter((r) => r.status === "missed")) {
      assertMatch(r.note ?? "", workerNote);
      const waited = r.finished_at! - r.scheduled_at;
      assert(waited > (r.job_id === "b" ? 5000 : 1000), `run ${r.id} missed after ${waited} ms`);
    }
  });
}
