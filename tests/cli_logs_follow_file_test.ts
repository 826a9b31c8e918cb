/**
 * `logs --follow` on a SQLite database whose file is replaced or deleted
 * meanwhile (a restore moved over it; `rm` and a service started again):
 * it says so on stderr and follows the file the path names now, its newest
 * lines first, as it does after a TRUNCATE. It followed the old file,
 * silently, for good.
 */
import { assertEquals, assertStringIncludes } from "./assert.ts";
import { openStore } from "../src/store/open.ts";
import { freshDatabase, type TestDatabase, waitFor } from "./helpers.ts";
import { follow, logRow, printed, printedAll } from "./logs_follow.ts";

/** The same test database, named by another path. */
function through(db: TestDatabase, path: string): TestDatabase {
  const target = { kind: "sqlite", path } as const;
  return { ...db, url: `sqlite:${path}`, target, open: () => openStore(target) };
}

async function migrated(db: TestDatabase): Promise<void> {
  const store = db.open();
  await store.migrate().finally(() => store.close());
}

Deno.test("cli[sqlite]: logs --follow follows the file moved over the one it had open, and says so", async () => {
  await using db = await freshDatabase("sqlite");
  await migrated(db);
  await logRow(db, 1, "old one");
  const other = through(db, `${db.dir}/other.db`);
  await migrated(other);
  await logRow(other, 1, "restored one");
  await logRow(other, 2, "restored two");
  await using f = follow(db);
  await printedAll(f, ["old one"], "the line already there");
  await Deno.rename(`${db.dir}/other.db`, `${db.dir}/jobs.db`);
  await printedAll(f, ["restored one", "restored two"], "the lines of the file moved over it");
  await logRow(db, 3, "new in the restored file");
  await printedAll(f, ["new in the restored file"], "a line written to it since");
  assertEquals(printed(f), ["old one", "restored one", "restored two", "new in the restored file"]);
  assertEquals(
    f.stderr,
    `jobsmanager: sqlite:${db.dir}/jobs.db now names another file (one moved over it); following that one, from its newest lines (--limit)\n`,
  );
});

Deno.test("cli[sqlite]: logs --follow says its file was deleted, and follows the one made at the path next", async () => {
  await using db = await freshDatabase("sqlite");
  await migrated(db);
  await logRow(db, 1, "old one");
  await using f = follow(db);
  await printedAll(f, ["old one"], "the line already there");
  for (const suffix of ["", "-wal", "-shm"]) {
    await Deno.remove(`${db.dir}/jobs.db${suffix}`).catch(() => {});
  }
  const deleted = `jobsmanager: sqlite:${db.dir}/jobs.db was deleted;`;
  await waitFor(() => f.stderr.includes(deleted), {
    timeoutMs: 30_000,
    what: "logs --follow to say its file was deleted",
    detail: () => `stderr:\n${f.stderr}`,
  });
  await migrated(db);
  await logRow(db, 1, "in the new file");
  await printedAll(f, ["in the new file"], "the line of the file made at the path");
  assertEquals(printed(f), ["old one", "in the new file"]);
  assertStringIncludes(
    f.stderr,
    `jobsmanager: sqlite:${db.dir}/jobs.db names a database file again; following that one, from its newest lines (--limit)\n`,
  );
});
