/**
 * What rows written by hand, or by a hostile job, do to the CLI, on every
 * backend: a job whose id no command would accept (written in SQL) can
 * still be shown, disabled and removed; an id neither valid nor stored is
 * refused as invalid.
 */
import { assertEquals, assertStringIncludes } from "./assert.ts";
import {
  BACKENDS,
  freshDatabase,
  jm,
  rawQuery,
  saveNodes,
  serviceRow,
  type TestDatabase,
} from "./helpers.ts";

async function ok(db: TestDatabase, ...args: string[]): Promise<string> {
  const r = await jm(db, ...args);
  assertEquals([r.code, r.stderr], [0, ""], args.join(" "));
  return r.stdout;
}

const BAD_ID = "by hand!";

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: a job whose id was written by hand can be shown, disabled, removed`, async () => {
    await using db = await freshDatabase(backend);
    const store = db.open();
    await store.migrate().finally(() => store.close());
    await rawQuery(db, "INSERT INTO jm_jobs (id, command, `second`) VALUES (?, 'true', '0')", [
      BAD_ID,
    ]);
    const shown = await ok(db, "job", "show", BAD_ID);
    assertStringIncludes(shown, `id                  ${BAD_ID}\n`);
    assertStringIncludes(shown, "INVALID             id: ");
    // --json says why too, where a script reads it: no next fire, and the reason.
    const [listed] = JSON.parse(await ok(db, "--json", "job", "list"));
    const shownJson = JSON.parse(await ok(db, "--json", "job", "show", BAD_ID));
    for (const json of [listed, shownJson]) {
      assertEquals(json.id, BAD_ID);
      assertStringIncludes(String(json.invalid), "id: ");
    }
    assertEquals([listed.next, shownJson.next], [null, []]);
    assertStringIncludes(await ok(db, "job", "disable", BAD_ID), `disabled job '${BAD_ID}'`);
    const [row] = await rawQuery(db, "SELECT enabled FROM jm_jobs WHERE id = ?", [BAD_ID]);
    assertEquals(Number(row.enabled), 0);
    assertStringIncludes(await ok(db, "job", "enable", BAD_ID), `enabled job '${BAD_ID}'`);
    assertStringIncludes(await ok(db, "job", "remove", BAD_ID), `removed job '${BAD_ID}'`);
    assertEquals(await rawQuery(db, "SELECT id FROM jm_jobs"), []);
    // Not stored (any more): refused as invalid, exit 2.
    const refused = await jm(db, "job", "remove", BAD_ID);
    assertEquals(refused.code, 2, refused.stderr);
    assertStringIncludes(refused.stderr, `jobsmanager: id: `);
  });
}

/** Raw terminal controls: ESC (clear screen, retitle), BEL, CR, a C1 CSI, a bidi override. */
const HOSTILE = "\x1b[2J\x1b]0;owned\x07\r\u009b31m\u202e";
const SHOWN = String.raw`\x1b[2J\x1b]0;owned\x07\x0d\x9b31m\u{202e}`;

/** No control character but newline and tab reaches the terminal. */
function assertPrintable(text: string, what: string): void {
  // deno-lint-ignore no-control-regex
  const raw = text.match(/[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]/);
  assertEquals(raw, null, `${what} prints ${JSON.stringify(raw?.[0])}:\n${JSON.stringify(text)}`);
}

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: control characters in jobs, runs and logs are printed escaped`, async () => {
    await using db = await freshDatabase(backend);
    const store = db.open();
    await store.migrate().finally(() => store.close());
    const id = `evil${HOSTILE}`;
    await rawQuery(
      db,
      "INSERT INTO jm_jobs (id, command, `second`, description, env) VALUES (?, ?, '0', ?, ?)",
      [id, `echo ${HOSTILE}`, `about ${HOSTILE}`, JSON.stringify({ X: HOSTILE })],
    );
    await rawQuery(
      db,
      "INSERT INTO jm_runs (job_id, scheduled_at, status, `trigger`, stdout, stderr, note) VALUES (?, 1, 'success', 'schedule', ?, ?, ?)",
      [id, `out ${HOSTILE}\nline 2\n`, `err ${HOSTILE}`, `note ${HOSTILE}`],
    );
    await rawQuery(
      db,
      "INSERT INTO jm_syslog (created_at, level, logger_name, message, context) VALUES (1, 'info', 'jobsmanager.runner', ?, ?)",
      [`said ${HOSTILE}`, JSON.stringify({ job: id })],
    );
    const [{ id: runId }] = await rawQuery(db, "SELECT id FROM jm_runs");
    for (
      const [args, shows] of [
        // A table cell is one line: the CR is a space there.
        [["job", "list"], [String.raw`echo \x1b[2J\x1b]0;owned\x07 \x9b31m\u{202e}`]],
        // An env value is quoted as the shell would, then escaped.
        [["job", "show", id], [`echo ${SHOWN}`, `about ${SHOWN}`, `X='${SHOWN}'`]],
        [["runs"], [String.raw`note \x1b[2J\x1b]0;owned\x07 \x9b31m\u{202e}`]],
        [["runs", "show", String(runId)], [`out ${SHOWN}\nline 2\n`, `err ${SHOWN}`]],
        [["logs"], [`said ${SHOWN}`]],
        [["--json", "job", "list"], []],
        [["--json", "runs", "show", String(runId)], []],
      ] as [string[], string[]][]
    ) {
      const out = await ok(db, ...args);
      assertPrintable(out, args.join(" "));
      for (const text of shows) assertStringIncludes(out, text, args.join(" "));
    }
    // --json escapes them too, and reads back the same.
    const [job] = JSON.parse(await ok(db, "--json", "job", "list"));
    assertEquals([job.id, job.command], [id, `echo ${HOSTILE}`]);
  });
}

/** Short enough for a run's 16-character columns: retitle, clear the screen. */
const SHORT = "\x1b]0;x\x07\x1b[2J";
const SHORT_SHOWN = String.raw`\x1b]0;x\x07\x1b[2J`;

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: control characters in a zone, a schedule, retry_on and a run's status, signal and trigger are printed escaped`, async () => {
    await using db = await freshDatabase(backend);
    const store = db.open();
    await store.migrate().finally(() => store.close());
    await rawQuery(
      db,
      "INSERT INTO jm_jobs (id, command, `second`, `hour`, day_of_week, timezone, retries, retry_on) VALUES ('zoned', 'true', '0', ?, ?, ?, 1, ?)",
      [`1${HOSTILE}`, `mon${HOSTILE}`, `Eu${HOSTILE}`, `failed${HOSTILE}`],
    );
    await rawQuery(
      db,
      "INSERT INTO jm_runs (job_id, scheduled_at, status, `signal`, `trigger`) VALUES ('zoned', 1, ?, ?, ?)",
      [`s${SHORT}`, `g${SHORT}`, `t${SHORT}`],
    );
    const [{ id: runId }] = await rawQuery(db, "SELECT id FROM jm_runs");
    for (
      const [args, shows] of [
        [["job", "list"], [`Eu${SHOWN}`, `1${SHOWN}`]],
        [["job", "show", "zoned"], [
          `timezone            Eu${SHOWN}\n`,
          `0 * 1${SHOWN} * * mon${SHOWN}`,
          `on failed${SHOWN}`,
        ]],
        [["runs"], [`s${SHORT_SHOWN}`, `g${SHORT_SHOWN}`]],
        [["runs", "show", String(runId)], [
          `status       s${SHORT_SHOWN}\n`,
          `trigger      t${SHORT_SHOWN}\n`,
          `signal       g${SHORT_SHOWN}\n`,
        ]],
      ] as [string[], string[]][]
    ) {
      const out = await ok(db, ...args);
      assertPrintable(out, args.join(" "));
      for (const text of shows) assertStringIncludes(out, text, args.join(" "));
    }
  });
}

// MySQL refuses text in its numeric columns; SQLite keeps it as written.
Deno.test("cli[sqlite]: text in a numeric column is named as written; one in created_at is shown, not thrown on", async () => {
  await using db = await freshDatabase("sqlite");
  assertEquals((await jm(db, "job", "add", "t", "--command", "true", "--cron", "@daily")).code, 0);
  await rawQuery(db, "UPDATE jm_jobs SET timeout = 'abc', created_at = 'x' WHERE id = 't'");
  const invalid = `timeout: "abc" is not valid (allowed: a whole number from 0 to 31536000)`;
  const shown = await ok(db, "job", "show", "t");
  assertStringIncludes(shown, `created             "x" (not a time)\n`);
  assertStringIncludes(shown, `INVALID             ${invalid} (the service skips it)\n`);
  const [listed] = JSON.parse(await ok(db, "--json", "job", "list"));
  assertEquals([listed.created_at, listed.timeout, listed.invalid], ["x", "abc", invalid]);
  const exported = await jm(db, "export");
  assertEquals([exported.code, exported.stdout], [1, ""]);
  assertStringIncludes(exported.stderr, `\njob 't': ${invalid}\n`);
});

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: status prints a service row written by hand escaped, each on its line`, async () => {
    await using db = await freshDatabase(backend);
    await saveNodes(db, { ...serviceRow(`web${HOSTILE}\nweb-9  live`), version: `0.1${HOSTILE}` });
    const out = (await jm(db, "status")).stdout;
    assertPrintable(out, "status");
    assertStringIncludes(out, String.raw`web${SHOWN}\nweb-9  live`);
    assertStringIncludes(out, String.raw`0.1${SHOWN}`);
  });
}
