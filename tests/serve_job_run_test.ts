/**
 * `jobsmanager job run` against a running (or absent) `serve`, on every
 * backend: a request queued (`--queue`) without a service waits until one
 * starts; `--wait` returns the job's exit code and prints its output; the
 * max_instances gate applies unless `--force`.
 */
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { BACKENDS, cli, freshDatabase, type TestDatabase, waitFor } from "./helpers.ts";
import {
  jm,
  killLeftovers,
  pgrep,
  ready,
  type RunRow,
  runs,
  runsDetail,
  sql,
  startServe,
  uniqueSeconds,
} from "./serve_helpers.ts";

/** Never fires during a test. */
const YEARLY = "0 0 1 1 *";

async function requestRun(db: TestDatabase, ...args: string[]): Promise<RunRow> {
  const out = JSON.parse((await jm(db, "--json", "job", "run", ...args)).stdout);
  return out as RunRow;
}

async function runBecomes(
  db: TestDatabase,
  id: number,
  ok: (r: RunRow) => boolean,
  what: string,
): Promise<RunRow> {
  return await waitFor(async () => {
    const r = (await runs(db)).find((r) => r.id === id);
    return r && ok(r) ? r : undefined;
  }, { timeoutMs: 15_000, what: `run ${id} ${what}`, detail: runsDetail(db) });
}

for (const backend of BACKENDS) {
  Deno.test(`serve[${backend}]: job run queues, --wait reports, --force bypasses max_instances`, async () => {
    await using db = await freshDatabase(backend);
    const secs = uniqueSeconds(30);
    const pattern = `^sleep ${secs.replaceAll(".", "\\.")}$`;
    await jm(
      db,
      "job",
      "add",
      "three",
      "--cron",
      YEARLY,
      "--command",
      'echo "out $JM_JOB_ID"; exit 3',
    );
    await jm(db, "job", "add", "fine", "--cron", YEARLY, "--command", "echo fine");
    await jm(db, "job", "add", "long", "--cron", YEARLY, "--command", `sleep ${secs}`);
    try {
      // No service: a request given --queue waits as a queued manual row.
      const queued = await requestRun(db, "three", "--queue");
      assertEquals([queued.status, queued.trigger, queued.node_id], ["queued", "manual", null]);
      assertEquals((await runs(db)).map((r) => [r.id, r.status]), [[queued.id, "queued"]]);

      await using serve = await startServe(db);
      await ready(db, serve);
      // The service takes the waiting request.
      const taken = await runBecomes(db, queued.id, (r) => r.status === "failed", "to be run");
      assertEquals([taken.exit_code, taken.stdout], [3, "out three\n"]);
      assert(taken.node_id !== null, "the service did not claim the request");

      // --wait: the job's exit code and its output.
      const failed = await cli(["--database", db.url, "job", "run", "three", "--wait"], {
        cwd: db.dir,
      });
      assertEquals(failed.code, 3, failed.stderr);
      assertStringIncludes(failed.stdout, "out three");
      assertStringIncludes(failed.stdout, "failed");
      const fine = await cli(["--database", db.url, "job", "run", "fine", "--wait"], {
        cwd: db.dir,
      });
      assertEquals(fine.code, 0, fine.stderr);
      assertStringIncludes(fine.stdout, "fine\n");

      // max_instances 1: a second request is skipped while the first runs; --force is not.
      const first = await requestRun(db, "long");
      await runBecomes(db, first.id, (r) => r.status === "running", "to start");
      const gated = await requestRun(db, "long");
      const skipped = await runBecomes(db, gated.id, (r) => r.status !== "queued", "to be taken");
      assertEquals([skipped.status, skipped.note], [
        "skipped",
        'max_instances (1) runs were still running; to run it anyway, ask with `jobsmanager job run --force long` (the API\'s "force": true), or run it in your own process with `jobsmanager job run --here long`',
      ]);
      const forced = await requestRun(db, "long", "--force");
      await runBecomes(db, forced.id, (r) => r.status === "running", "to start");
      const both = (await runs(db, "long")).filter((r) => r.status === "running");
      assertEquals(both.map((r) => r.id), [first.id, forced.id], "two runs at once");
      await waitFor(async () => (await pgrep(pattern)).length === 2, {
        timeoutMs: 10_000,
        what: "two sleeps to run",
        detail: async () => `sleeps: ${await pgrep(pattern)}`,
      });

      assertEquals((await serve.terminate()).status.code, 0, serve.stderr);
      const ended = (await runs(db, "long")).filter((r) => r.id !== gated.id);
      assertEquals(ended.map((r) => r.status), ["interrupted", "interrupted"]);
    } finally {
      await killLeftovers(pattern);
    }
  });
}

/** Make jm_runs refuse to record a run of `job` as ended (as a database refusing it would). */
async function refuseEnds(db: TestDatabase, backend: string, job: string): Promise<void> {
  await sql(
    db,
    backend === "mysql"
      ? `CREATE TRIGGER refuse_ends BEFORE UPDATE ON jm_runs FOR EACH ROW BEGIN IF NEW.job_id = '${job}' AND NEW.status <> 'running' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'ends refused'; END IF; END`
      : `CREATE TRIGGER refuse_ends BEFORE UPDATE ON jm_runs WHEN NEW.job_id = '${job}' AND NEW.status <> 'running' BEGIN SELECT RAISE(ABORT, 'ends refused'); END`,
  );
}

for (const backend of BACKENDS) {
  Deno.test(`serve[${backend}]: job run --wait ends when the service that ran the run stopped without recording its end`, async () => {
    await using db = await freshDatabase(backend);
    await jm(db, "job", "add", "quick", "--cron", YEARLY, "--command", "echo quick");
    await refuseEnds(db, backend, "quick");
    await using serve = await startServe(db);
    await ready(db, serve);
    const waiting = cli(
      ["--database", db.url, "job", "run", "quick", "--wait", "--timeout", "30"],
      { cwd: db.dir },
    );
    await waitFor(() => /the database refused its record/.test(serve.stderr), {
      timeoutMs: 15_000,
      what: "the run's end to be refused",
      detail: () => serve.stderr,
    });
    await serve.terminate();
    const waited = await waiting;
    assertEquals(waited.code, 1, waited.stderr);
    assertStringIncludes(
      waited.stderr,
      "is recorded running, but service",
    );
    assertStringIncludes(waited.stderr, "has stopped without recording its end");
  });
}

for (const backend of BACKENDS) {
  Deno.test(`serve[${backend}]: job run --wait ends when the lone service running the run is killed`, async () => {
    await using db = await freshDatabase(backend);
    const secs = uniqueSeconds(120);
    const pattern = `^sleep ${secs.replaceAll(".", "\\.")}$`;
    await jm(db, "job", "add", "longone", "--cron", YEARLY, "--command", `sleep ${secs}`);
    try {
      await using serve = await startServe(db);
      await ready(db, serve);
      // Longer than any wait below: a wait that does not see the service gone ends as a timeout.
      const waiting = cli(
        ["--database", db.url, "job", "run", "longone", "--wait", "--timeout", "90"],
        { cwd: db.dir },
      );
      const run = await waitFor(
        async () => (await runs(db, "longone")).find((r) => r.status === "running"),
        { timeoutMs: 15_000, what: "the run to start", detail: runsDetail(db) },
      );
      await serve.stop("SIGKILL", 10_000);
      const waited = await waiting;
      assertEquals(waited.code, 1, waited.stderr);
      assertStringIncludes(
        waited.stderr,
        `run ${run.id} is recorded running, but service ${run.node_id} that ran it is gone (its process`,
      );
      assertStringIncludes(waited.stderr, "it is recorded lost when `jobsmanager serve` starts");
    } finally {
      await killLeftovers(pattern);
    }
  });
}

for (const backend of BACKENDS) {
  Deno.test(`serve[${backend}]: job run --wait says once that the service running the run went silent, and waits on`, async () => {
    await using db = await freshDatabase(backend);
    const secs = uniqueSeconds(120);
    const pattern = `^sleep ${secs.replaceAll(".", "\\.")}$`;
    await jm(db, "job", "add", "longone", "--cron", YEARLY, "--command", `sleep ${secs}`);
    await using serve = await startServe(db, { heartbeat_interval: 1 });
    try {
      await ready(db, serve);
      const waiting = cli(
        ["--database", db.url, "job", "run", "longone", "--wait", "--timeout", "20"],
        { cwd: db.dir },
      );
      await waitFor(
        async () => (await runs(db, "longone")).find((r) => r.status === "running"),
        { timeoutMs: 15_000, what: "the run to start", detail: runsDetail(db) },
      );
      // Paused: its heartbeat stops, its process is still there.
      serve.signal("SIGSTOP");
      const waited = await waiting;
      serve.signal("SIGCONT");
      assertEquals(waited.code, 1, waited.stderr);
      const said = waited.stderr.split("\n").filter((line) => /sent no heartbeat/.test(line));
      assertEquals(said.length, 1, waited.stderr);
      assertStringIncludes(said[0], "still waiting, as it may be paused or cut from the database");
      assertStringIncludes(waited.stderr, "did not end within 20 s and is left running");
      assertEquals((await serve.terminate(30_000)).status.code, 0, serve.stderr);
    } finally {
      serve.signal("SIGCONT");
      await killLeftovers(pattern);
    }
  });
}
