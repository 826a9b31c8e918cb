/**
 * Notifications with two `jobsmanager serve` on one MariaDB database
 * (issue 13): each failed run notifies once, and a silent job alerts once,
 * whichever service ran it or looked. The hook appends what it was told to
 * a file, so a notification sent twice shows even where the claim's unique
 * key would hide it.
 */
import { assert, assertEquals } from "./assert.ts";
import { freshDatabase, mysqlTest, waitFor } from "./helpers.ts";
import { jm, Serve, sql, TEST_SETTINGS } from "./serve_helpers.ts";

async function lines(file: string): Promise<string[]> {
  return (await Deno.readTextFile(file).catch(() => "")).split("\n").filter(Boolean);
}

mysqlTest(
  "notify: two services send one notification per failed run and one silence alert",
  async () => {
    await using db = await freshDatabase("mysql");
    const file = `${db.dir}/notified.txt`;
    const config = `${db.dir}/config.json5`;
    await Deno.writeTextFile(
      config,
      JSON.stringify({
        jobsmanager: { ...TEST_SETTINGS, heartbeat_interval: 1 },
        log: { path: `${db.dir}/log` },
        notify: {
          min_interval: 0,
          on_failure: `echo "$JM_EVENT $JM_JOB_ID $JM_RUN_ID" >> ${file}`,
        },
      }),
    );
    assertEquals(
      (await jm(db, "job", "add", "fails", "--command", "exit 1", "--second", "*")).code,
      0,
    );
    const quiet = await jm(
      db,
      "job",
      "add",
      "quiet",
      "--command",
      "true",
      "--cron",
      "0 0 1 1 *",
      "--alert-after",
      "1s",
    );
    assertEquals(quiet.code, 0, quiet.stderr);
    const services = [new Serve(db, config), new Serve(db, config)];
    const detail = async () =>
      `${(await lines(file)).join("\n")}\n${services.map((s) => s.stderr).join("\n")}`;
    try {
      const silentAt = await waitFor(async () => {
        for (const s of services) if (!s.running) throw new Error(`serve exited:\n${s.stderr}`);
        const seen = await lines(file);
        const failures = seen.filter((l) => l.startsWith("failure")).length;
        return seen.some((l) => l.startsWith("silent quiet")) && failures > 0 ? failures : null;
      }, { timeoutMs: 30_000, what: "a silence alert and failures notified", detail });
      // Both services look for silence every 5 s: let each look twice more.
      await waitFor(
        async () =>
          (await lines(file)).filter((l) => l.startsWith("failure")).length >= silentAt + 12,
        { timeoutMs: 40_000, what: "12 more failures notified", detail },
      );
    } finally {
      for (const s of services) if (s.running) await s.terminate();
    }
    const seen = await lines(file);
    assertEquals(seen.filter((l) => l.startsWith("silent")), ["silent quiet "]);
    const failures = seen.filter((l) => l.startsWith("failure"));
    assertEquals(
      new Set(failures).size,
      failures.length,
      `notified twice:\n${failures.join("\n")}`,
    );
    const claimed = new Set(
      (await sql(db, "SELECT ref FROM jm_notifications WHERE event = 'failure'")).map((r) =>
        `failure fails ${r.ref}`
      ),
    );
    for (const line of failures) assert(claimed.has(line), `${line} was not claimed`);
    const failed = new Set(
      (await sql(
        db,
        "SELECT id FROM jm_runs WHERE job_id = 'fails' AND status IN ('failed', 'missed')",
      )).map((
        r,
      ) => `failure fails ${r.id}`),
    );
    for (const line of failures) {
      assert(failed.has(line), `${line} names no run of fails that failed or was missed`);
    }
  },
);
