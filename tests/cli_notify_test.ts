/**
 * The notification options of `job add` / `job update` (issue 13): stored,
 * shown (URLs without their secrets), set back to the service default with
 * '', refused with a message that says what is allowed; `status` lists
 * silent jobs.
 */
import { assert, assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase, jm, rawQuery } from "./helpers.ts";

const URL_WITH_SECRETS = "https://ops:hunter2-secret@hooks.example.com/jm?token=abc-secret-token";

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: job add/update take the notification options; job show hides URL secrets`, async () => {
    await using db = await freshDatabase(backend);
    const add = await jm(
      db,
      "job",
      "add",
      "backup",
      "--command",
      "true",
      "--cron",
      "0 3 * * *",
      "--on-failure",
      "logger -t backup failed",
      "--on-failure-url",
      URL_WITH_SECRETS,
      "--on-recovery",
      "logger -t backup recovered",
      "--alert-after",
      "26h",
      "--json",
    );
    assertEquals(add.code, 0, add.stderr);
    const job = JSON.parse(add.stdout).job;
    assertEquals(
      [job.on_failure, job.on_failure_url, job.on_recovery, job.on_success, job.alert_after],
      ["logger -t backup failed", URL_WITH_SECRETS, "logger -t backup recovered", null, 93_600],
    );
    const show = await jm(db, "job", "show", "backup");
    assertEquals(show.code, 0, show.stderr);
    assert(/\non_failure +logger -t backup failed\n/.test(show.stdout), show.stdout);
    assert(
      /\non_failure_url +https:\/\/\*\*\*@hooks\.example\.com\/jm\?\*\*\*\n/.test(show.stdout),
      show.stdout,
    );
    assert(/\nalert_after +93600 s\n/.test(show.stdout), show.stdout);
    assert(!show.stdout.includes("hunter2") && !show.stdout.includes("abc-secret"), show.stdout);
    const update = await jm(
      db,
      "job",
      "update",
      "backup",
      "--on-failure-url",
      "",
      "--alert-after",
      "",
      "--json",
    );
    assertEquals(update.code, 0, update.stderr);
    const updated = JSON.parse(update.stdout).job;
    assertEquals([updated.on_failure_url, updated.alert_after, updated.on_failure], [
      null,
      null,
      "logger -t backup failed",
    ]);
    assertEquals((await jm(db, "job", "update", "backup", "--alert-after", "90s")).code, 0);
    await rawQuery(db, "UPDATE jm_jobs SET updated_at = ?", [Date.UTC(2026, 0, 2, 3, 4, 5)]);
    const status = await jm(db, "status");
    assert(
      /^silent jobs \(no success for their alert_after\):\n +JOB +NO SUCCESS SINCE +ALERT AFTER\n +backup +2026-01-02T03:04:05Z +90 s$/m
        .test(status.stdout),
      status.stdout,
    );
    const json = JSON.parse((await jm(db, "status", "--json")).stdout);
    assertEquals(json.silent_jobs, [
      { job: "backup", since: "2026-01-02T03:04:05.000Z", alert_after: 90 },
    ]);
  });

  Deno.test(`cli[${backend}]: status says how many notifications wait to be sent, and since when`, async () => {
    await using db = await freshDatabase(backend);
    assertEquals(
      (await jm(db, "job", "add", "backup", "--command", "true", "--cron", "0 3 * * *")).code,
      0,
    );
    const before = await jm(db, "status");
    assert(/^notifications waiting to be sent: none$/m.test(before.stdout), before.stdout);
    // What a service that claimed two failures and stopped before sending them left.
    const claimed = Date.UTC(2026, 0, 2, 3, 4, 5);
    for (const [ref, at] of [[1, claimed], [2, claimed + 60_000]]) {
      await rawQuery(
        db,
        "INSERT INTO jm_notifications (job_id, event, ref, status, created_at, node_id, outcome, payload) VALUES ('backup', 'failure', ?, 'failed', ?, 'gone', 'pending', '{}')",
        [ref, at],
      );
    }
    const after = await jm(db, "status");
    assert(
      /^notifications waiting to be sent: 2, the oldest claimed at 2026-01-02T03:04:05Z \(the services send them; `jobsmanager logs --level warn` says why one waits\)$/m
        .test(after.stdout),
      after.stdout,
    );
    const json = JSON.parse((await jm(db, "status", "--json")).stdout);
    assertEquals(json.pending_notifications, {
      count: 2,
      oldest: "2026-01-02T03:04:05.000Z",
      retrying: 0,
      next_retry: null,
    });
    // One found its webhook receiver down: it waits to be tried again.
    await rawQuery(db, "UPDATE jm_notifications SET retry_at = ?, tries = 1 WHERE ref = 2", [
      claimed + 120_000,
    ]);
    const retrying = await jm(db, "status");
    assert(
      /^notifications waiting to be sent: 2, the oldest claimed at 2026-01-02T03:04:05Z; 1 of them waits for their webhook receiver to answer, next try at 2026-01-02T03:06:05Z \(/m
        .test(retrying.stdout),
      retrying.stdout,
    );
    const again = JSON.parse((await jm(db, "status", "--json")).stdout);
    assertEquals(again.pending_notifications, {
      count: 2,
      oldest: "2026-01-02T03:04:05.000Z",
      retrying: 1,
      next_retry: "2026-01-02T03:06:05.000Z",
    });
  });

  Deno.test(`cli[${backend}]: bad notification options are refused, saying what is allowed`, async () => {
    await using db = await freshDatabase(backend);
    const base = ["job", "add", "x", "--command", "true", "--cron", "* * * * *"];
    assertEquals(await jm(db, ...base, "--alert-after", "soon"), {
      code: 2,
      stdout: "",
      stderr:
        "jobsmanager: alert_after: 'soon' is not a duration (expected a number and a unit: 90s, 15m, 2h, 7d, 1w)\n",
    });
    assertEquals(await jm(db, ...base, "--alert-after", "0"), {
      code: 2,
      stdout: "",
      stderr:
        'jobsmanager: alert_after: "0" is not valid (allowed: from 1 s to 31536000 s, e.g. 90s, 15m, 2h, 7d)\n',
    });
    // Past durations' own most (100 years), the bound said is still alert_after's.
    assertEquals(await jm(db, ...base, "--alert-after", "5300w"), {
      code: 2,
      stdout: "",
      stderr:
        'jobsmanager: alert_after: "5300w" is not valid (allowed: from 1 s to 31536000 s, e.g. 90s, 15m, 2h, 7d)\n',
    });
    assertEquals(await jm(db, ...base, "--on-success-url", "ftp://user:pw@host/x"), {
      code: 2,
      stdout: "",
      stderr:
        "jobsmanager: on_success_url: is not an http:// or https:// URL (the value is not shown: it may hold a secret)\n",
    });
  });
}
