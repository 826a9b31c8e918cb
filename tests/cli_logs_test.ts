/**
 * `logs` that finds nothing says so (issue 8, point 6): one line on stderr
 * naming the filters, so stdout stays log lines (JSON lines with --json).
 */
import { assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { BACKENDS, freshDatabase, jm, rawQuery } from "./helpers.ts";

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

const FORGED =
  "2026-12-05T11:40:00.000Z  ERROR    jobsmanager.store  the database refused a statement: FORGED";

for (const backend of BACKENDS) {
  // A hook's stderr (JM_OUTPUT_TAIL echoed) lands in a log message and a run's note.
  Deno.test(`cli[${backend}]: a job's output cannot forge a line in logs or runs show`, async () => {
    await using db = await freshDatabase(backend);
    const store = db.open();
    try {
      await store.migrate();
      await store.insertLogs([{
        created_at: Date.now(),
        level: "warning",
        logger_name: "jobsmanager.notify",
        message: `hook failed: disk ok\n${FORGED}\r\n`,
        context: { job: "x" },
      }]);
    } finally {
      await store.close();
    }
    await rawQuery(
      db,
      "INSERT INTO jm_runs (job_id, scheduled_at, status, `trigger`, note) VALUES ('x', 1, 'failed', 'schedule', ?)",
      [`hook said: disk ok\n${FORGED}`],
    );
    const logs = await jm(db, "logs", "--job", "x");
    assertEquals([logs.code, logs.stderr], [0, ""]);
    const lines = logs.stdout.trimEnd().split("\n");
    assertEquals(lines.length, 1, logs.stdout);
    assertStringIncludes(lines[0], String.raw`hook failed: disk ok\n${FORGED}\x0d\n`);
    const [{ id }] = await rawQuery(db, "SELECT id FROM jm_runs");
    const shown = await jm(db, "runs", "show", String(id));
    assertStringIncludes(
      shown.stdout,
      String.raw`note         hook said: disk ok\n${FORGED}` + "\n",
    );
  });
}

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: each line names its node, and logs --node shows one node's`, async () => {
    await using db = await freshDatabase(backend);
    const store = db.open();
    try {
      await store.migrate();
      await store.insertLogs(["web-1", "web-2", null].map((node_id) => ({
        created_at: Date.now(),
        level: "info",
        logger_name: "jobsmanager.service",
        message: `from ${node_id}`,
        context: {},
        node_id,
      })));
      assertEquals(
        (await store.listLogs({ node_id: "web-2", limit: 10 })).map((r) => [r.node_id, r.message]),
        [["web-2", "from web-2"]],
      );
    } finally {
      await store.close();
    }
    const found = await jm(db, "logs", "--node", "web-2");
    assertEquals([found.code, found.stderr], [0, ""]);
    assertMatch(found.stdout, /^\S+ +INFO +web-2 +jobsmanager\.service +from web-2\n$/);
    const all = await jm(db, "logs");
    assertMatch(all.stdout, /\n\S+ +INFO +jobsmanager\.service +from null\n$/);
    assertEquals(await jm(db, "logs", "--node", "web-3"), {
      code: 0,
      stdout: "",
      stderr: "jobsmanager: no log lines match --node web-3\n",
    });
  });
}
