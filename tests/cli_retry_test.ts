/**
 * Retries and follow-up jobs through the real CLI, on every backend (issue
 * 13): the options, their errors, a cycle refused naming the chain with
 * nothing written, a job without a schedule in list, next and show, and
 * attempts shown with the run they retry.
 */
import { assertEquals, assertStringIncludes } from "./assert.ts";
import {
  BACKENDS,
  cli,
  type CliResult,
  freshDatabase,
  rawQuery,
  type TestDatabase,
} from "./helpers.ts";

function jm(db: TestDatabase, ...args: string[]): Promise<CliResult> {
  return cli(["--database", db.url, ...args], { cwd: db.dir, env: { COLUMNS: "400" } });
}

async function ok(db: TestDatabase, ...args: string[]): Promise<string> {
  const r = await jm(db, ...args);
  assertEquals(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

async function markers(db: TestDatabase): Promise<number> {
  const [row] = await rawQuery(db, "SELECT COUNT(*) AS n FROM jm_update_info");
  return Number(row.n);
}

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: --after chains; a cycle is refused naming it, nothing written`, async () => {
    await using db = await freshDatabase(backend);
    await ok(db, "job", "add", "a", "--command", "false", "--cron", "0 3 * * *", "--retries", "2");
    const added = await ok(db, "job", "add", "b", "--command", "echo b", "--after", "a");
    assertStringIncludes(added, "added job 'b' (reload marker 2)\nnext fire (");
    assertStringIncludes(added, "):\n  after 'a' ends: success\n");
    await ok(db, "job", "add", "c", "--command", "echo c", "--after", "b:always");
    assertEquals(await jm(db, "job", "update", "a", "--after", "c"), {
      code: 2,
      stdout: "",
      stderr:
        "jobsmanager: after: 'a' following 'c' would close a cycle: a → b → c → a (a job's end would start itself again); drop one link with --after ''\n",
    });
    assertEquals(await jm(db, "job", "add", "d", "--command", "x", "--after", "d"), {
      code: 2,
      stdout: "",
      stderr: "jobsmanager: after: job 'd' cannot follow itself (d → d)\n",
    });
    assertEquals(await markers(db), 3, "a refused write writes no marker");

    const list = await ok(db, "job", "list");
    assertStringIncludes(list, "after 'a' ends: success");
    assertStringIncludes(list, "after 'b' ends: always");
    const next = await ok(db, "job", "next", "b");
    assertStringIncludes(next, "):\n  after 'a' ends: success\n");
    const show = await ok(db, "job", "show", "b");
    assertStringIncludes(show, "schedule            none of its own\n");
    assertStringIncludes(show, "after               a:success\n");

    // Dropping the link of a job without a schedule would leave it nothing to run by.
    assertEquals(await jm(db, "job", "update", "b", "--after", ""), {
      code: 2,
      stdout: "",
      stderr:
        "jobsmanager: schedule: missing, and the job follows no other (give --cron … or --after JOB)\n",
    });
    await ok(db, "job", "update", "c", "--cron", "@daily");
    assertStringIncludes(await ok(db, "job", "list"), "0 0 0 * * *; and after 'b' ends: always");
    await ok(db, "job", "update", "c", "--no-schedule");
    assertStringIncludes(await ok(db, "job", "show", "c"), "schedule            none of its own\n");
  });

  Deno.test(`cli[${backend}]: job add or update --retry-on on a job without retries warns on stderr`, async () => {
    await using db = await freshDatabase(backend);
    await ok(db, "job", "add", "r", "--command", "false", "--cron", "0 3 * * *");
    const warning =
      "jobsmanager: warning: job 'r' has retries 0, so --retry-on does nothing until --retries is above 0\n";
    const updated = await jm(db, "job", "update", "r", "--retry-on", "failed");
    assertEquals([updated.code, updated.stderr], [0, warning]);
    assertStringIncludes(updated.stdout, "updated job 'r' (reload marker 2)");
    // Stored all the same, as job add stores it.
    assertEquals(JSON.parse(await ok(db, "job", "show", "r", "--json")).retry_on, "failed");
    // Given again unchanged: said when it was set, not each time after, as a user is.
    const again = await jm(db, "job", "update", "r", "--retry-on", "failed");
    assertEquals([again.code, again.stderr], [0, ""]);
    // With retries, or given them in the same command: no warning.
    const given = await jm(db, "job", "update", "r", "--retries", "2", "--retry-on", "timeout");
    assertEquals([given.code, given.stderr], [0, ""]);
    const kept = await jm(db, "job", "update", "r", "--retry-on", "failed,timeout");
    assertEquals([kept.code, kept.stderr], [0, ""]);
    // job add says the same.
    const added = await jm(
      db,
      "job",
      "add",
      "s",
      "--command",
      "false",
      "--cron",
      "0 3 * * *",
      "--retry-on",
      "timeout",
    );
    assertEquals([added.code, added.stderr], [0, warning.replace("'r'", "'s'")]);
    const addedWith = await jm(
      db,
      "job",
      "add",
      "t",
      "--command",
      "false",
      "--cron",
      "0 3 * * *",
      "--retries",
      "1",
      "--retry-on",
      "timeout",
    );
    assertEquals([addedWith.code, addedWith.stderr], [0, ""]);
  });

  Deno.test(`cli[${backend}]: links the service does not follow are shown so: a cycle written in SQL, a job removed`, async () => {
    await using db = await freshDatabase(backend);
    await ok(db, "job", "add", "c3", "--command", "echo 3", "--cron", "0 3 * * *");
    await ok(db, "job", "add", "c4", "--command", "echo 4", "--after", "c3:always");
    await rawQuery(
      db,
      "UPDATE jm_jobs SET after_job = 'c4', after_outcome = 'success' WHERE id = 'c3'",
    );
    const cycle =
      "after: its follow-up link closes a cycle, c3 → c4 → c3, and the service ignores it; drop one link with --after ''";
    assertStringIncludes(await ok(db, "job", "list"), `INVALID: ${cycle}`);
    const listed = JSON.parse(await ok(db, "job", "list", "--json"));
    assertEquals(
      listed.map((j: { id: string; invalid: string | null }) => [j.id, j.invalid]),
      [
        ["c3", cycle],
        ["c4", cycle.replace("c3 → c4 → c3", "c4 → c3 → c4")],
      ],
    );
    // Its own schedule still fires: the fires follow.
    const shown = await ok(db, "job", "show", "c3");
    assertStringIncludes(shown, `INVALID             ${cycle}\n`);

    await rawQuery(db, "UPDATE jm_jobs SET after_job = NULL, after_outcome = NULL WHERE id = 'c3'");
    const removed = await ok(db, "job", "remove", "c3");
    assertStringIncludes(
      removed,
      "removed job 'c3' (reload marker 3)\nc4 follows c3: it will run only by hand or on its own schedule until relinked: jobsmanager job update --after … c4\n",
    );
    assertStringIncludes(
      await ok(db, "job", "show", "c4"),
      "after               c3:always (job 'c3' does not exist: 'c4' runs only by hand or on its own schedule until relinked with --after)\n",
    );
    assertStringIncludes(await ok(db, "job", "list"), "after 'c3' ends: always (no job 'c3')");
    assertEquals(JSON.parse(await ok(db, "job", "list", "--json"))[0].after_missing, true);
    assertEquals(JSON.parse(await ok(db, "job", "remove", "c4", "--json")).followers, []);
  });

  Deno.test(`cli[${backend}]: runs cancel of a pending retry leaves it to a service, saying what follows`, async () => {
    await using db = await freshDatabase(backend);
    await ok(db, "job", "add", "a", "--command", "false", "--cron", "0 3 * * *", "--retries", "2");
    await rawQuery(
      db,
      "INSERT INTO jm_runs (job_id, scheduled_at, status, `trigger`, attempt) VALUES ('a', 1000, 'failed', 'schedule', 1), ('a', 2000, 'queued', 'retry', 2)",
    );
    const [retry] = await rawQuery(db, "SELECT id FROM jm_runs WHERE `trigger` = 'retry'");
    assertStringIncludes(
      await ok(db, "runs", "cancel", String(retry.id)),
      `asked the services to cancel retry run ${retry.id} of 'a' (queued, not started): the first to see it (the next to start, when none is live) records it cancelled; the attempts then end in failure, and the job's failure follow-ups start\n`,
    );
    const [row] = await rawQuery(
      db,
      "SELECT status, cancel_requested_by FROM jm_runs WHERE id = ?",
      [retry.id],
    );
    assertEquals(row.status, "queued");
    assertEquals(row.cancel_requested_by !== null, true);
  });

  Deno.test(`cli[${backend}]: retry options, their errors, and attempts shown with their run`, async () => {
    await using db = await freshDatabase(backend);
    await ok(db, "db", "migrate");
    const base = ["job", "add", "x", "--command", "y", "--cron", "@daily"];
    const refused: [string[], string][] = [
      [["--retries", "101"], 'retries: "101" is not valid (allowed: a whole number from 0 to 100)'],
      [
        ["--retry-on", "failed,sometimes"],
        'retry_on: "failed,sometimes" names "sometimes" (allowed: a comma-separated list of failed, timeout, error, lost, killed)',
      ],
      [
        ["--retry-delay", "60", "--retry-max-delay", "30"],
        "retry_max_delay: 30 s is shorter than retry_delay (60 s); give --retry-max-delay at least 60",
      ],
      [
        ["--after", "ghost"],
        "after: job 'ghost' does not exist, so 'x' could never follow it (add it first, or see `jobsmanager job list`)",
      ],
    ];
    for (const [args, message] of refused) {
      assertEquals(await jm(db, ...base, ...args), {
        code: 2,
        stdout: "",
        stderr: `jobsmanager: ${message}\n`,
      }, args.join(" "));
    }
    await ok(
      db,
      "job",
      "add",
      "flaky",
      "--command",
      "false",
      "--cron",
      "@daily",
      "--retries",
      "2",
      "--retry-delay",
      "30",
      "--retry-on",
      "failed, timeout",
      "--retry-overlap",
    );
    await ok(db, "job", "add", "then", "--command", "true", "--after", "flaky:failure");
    const json = JSON.parse(await ok(db, "--json", "job", "show", "flaky"));
    assertEquals(
      [json.retries, json.retry_delay, json.retry_max_delay, json.retry_on, json.retry_overlap],
      [2, 30, 3600, "failed,timeout", true],
    );
    const show = await ok(db, "job", "show", "flaky");
    assertStringIncludes(
      show,
      "retries             2 (first after 30 s, doubling, at most 3600 s; on failed, timeout; kept when the next fire comes)\n",
    );

    const insert =
      "INSERT INTO jm_runs (job_id, scheduled_at, status, `trigger`, attempt, first_run_id, parent_run_id) VALUES (?, ?, ?, ?, ?, ?, ?)";
    await rawQuery(db, insert, ["flaky", 1000, "failed", "schedule", 1, null, null]);
    await rawQuery(db, insert, ["flaky", 31_000, "failed", "retry", 2, 1, null]);
    await rawQuery(db, insert, ["flaky", 92_000, "failed", "retry", 3, 1, null]);
    await rawQuery(db, insert, ["then", 93_000, "success", "after", 1, null, 3]);
    const runs = (await ok(db, "job", "show", "flaky")).split("last runs:\n")[1];
    assertStringIncludes(runs, "retry 3/3 of run 1");
    assertStringIncludes(runs, "retry 2/3 of run 1");
    const listed = await ok(db, "runs");
    assertStringIncludes(listed, "after run 3");
    assertStringIncludes(listed, "retry 3/3 of run 1");
    assertStringIncludes(await ok(db, "runs", "show", "2"), "\ntrigger      retry 2/3 of run 1\n");
  });
}
