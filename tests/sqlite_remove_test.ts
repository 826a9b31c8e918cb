/**
 * removeIfNoTables (store/sqlite.ts): a new SQLite file that a failed
 * command or start left goes, but only while it holds no table and its WAL
 * nothing; anything else stays.
 */
import { DatabaseSync } from "node:sqlite";
import { assertEquals } from "./assert.ts";
import { removeIfNoTables } from "../src/store/sqlite.ts";

async function inTempDir(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "jm-remove-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A SQLite file as opening a new database in WAL mode leaves it, and `sql` run on it. */
function database(path: string, sql = ""): void {
  const db = new DatabaseSync(path);
  db.exec("PRAGMA journal_mode = WAL");
  if (sql !== "") db.exec(sql);
  db.close();
}

const exists = (path: string) => {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
};

Deno.test("removeIfNoTables: an empty file and a header page alone go", () =>
  inTempDir((dir) => {
    Deno.writeFileSync(`${dir}/empty.db`, new Uint8Array());
    database(`${dir}/header.db`);
    assertEquals(Deno.statSync(`${dir}/header.db`).size, 4096, "the header page alone");
    for (const name of ["empty.db", "header.db"]) {
      removeIfNoTables(`${dir}/${name}`);
      assertEquals(exists(`${dir}/${name}`), false, name);
    }
  }));

Deno.test("removeIfNoTables: a table, a WAL with something in it, or a file that is not SQLite's stays", () =>
  inTempDir((dir) => {
    database(`${dir}/table.db`, "CREATE TABLE t (x)");
    database(`${dir}/wal.db`);
    Deno.writeFileSync(`${dir}/wal.db-wal`, new Uint8Array(32));
    Deno.writeTextFileSync(`${dir}/text.db`, "not a database");
    for (const name of ["table.db", "wal.db", "text.db"]) {
      removeIfNoTables(`${dir}/${name}`);
      assertEquals(exists(`${dir}/${name}`), true, name);
    }
  }));
