/**
 * `logs` that finds nothing says so (issue 8, point 6): one line on stderr
 * naming the filters, so stdout stays log lines (JSON lines with --json).
 */
import { assertEquals, assertMatch } from "./assert.ts";
import { BACKENDS, freshDatabase, jm } from "./helpers.ts";

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: logs with nothing to show says so, naming the filter`, async () => {
    await using db = await freshDatabase(backend);
    const store = db.open();
    try {
      await store.migrate();
      assertEquals(await jm(db, "logs"), {
        code: 0,
        stdout: "",
        stderr: "jobsmanager: no log lines in jm_syslog yet\n",
      });
      await store.insertLogs([{
        created_at: Date.now(),
        level: "info",
        logger_name: "jobsmanager.runner",
        message: "run ended",
        context: { job: "a", run: 1 },
      }]);
    } finally {
      await store.close();
    }
    assertEquals(await jm(db, "logs", "--job", "b"), {
      code: 0,
      stdout: "",
      stderr: "jobsmanager: no log lines match --job b\n",
    });
    assertEquals(
      await jm(db, "--json", "logs", "--job", "a", "--level", "error", "--since", "1h"),
      {
        code: 0,
        stdout: "",
        stderr: "jobsmanager: no log lines match --level error --job a --since 1h\n",
      },
    );
    const found = await jm(db, "logs", "--job", "a");
    assertEquals([found.code, found.stderr], [0, ""]);
    assertMatch(
      found.stdout,
      /^\S+ +INFO +jobsmanager\.runner +run ended +\{"job":"a","run":1\}\n$/,
    );
  });
}
