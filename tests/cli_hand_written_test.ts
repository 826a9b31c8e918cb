/**
 * What rows written by hand, or by a hostile job, do to the CLI, on every
 * backend: a job whose id no command would accept (written in SQL) can
 * still be shown, disabled and removed; an id neither valid nor stored is
 * refused as invalid.
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
  return cli(["--database", db.url, ...args], { cwd: db.dir });
}

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
