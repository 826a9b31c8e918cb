/**
 * The SQLite driver's own duties: a locked file at open is waited for, like
 * a locked file at any statement, not reported as "database is locked".
 */
import { DatabaseSync } from "node:sqlite";
import { SqliteDriver } from "../src/store/sqlite.ts";
import { assertEquals } from "./assert.ts";

Deno.test("sqlite: opening a file another connection holds locked waits for the lock", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-sqlite-" });
  const path = `${dir}/jobs.db`;
  const holder = new DatabaseSync(path);
  try {
    // A new file is not in WAL mode yet: switching it needs the lock held here.
    holder.exec("CREATE TABLE t (x INTEGER)");
    holder.exec("BEGIN EXCLUSIVE");
    holder.exec("INSERT INTO t VALUES (1)");
    const driver = SqliteDriver.open(path);
    try {
      const rows = driver.all("PRAGMA journal_mode");
      holder.exec("COMMIT");
      assertEquals((await rows).map((r) => ({ ...r })), [{ journal_mode: "wal" }]);
      assertEquals((await driver.all("SELECT x FROM t")).map((r) => ({ ...r })), [{ x: 1 }]);
    } finally {
      await driver.close();
    }
  } finally {
    holder.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sqlite: a new database file and its WAL are readable by their owner only", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-sqlite-" });
  const path = `${dir}/jobs.db`;
  const driver = SqliteDriver.open(path);
  try {
    await driver.run("CREATE TABLE t (x INTEGER)");
    await driver.run("INSERT INTO t VALUES (1)");
    const modes = ["", "-wal", "-shm"].map((suffix) =>
      `${suffix || "db"} ${(Deno.statSync(path + suffix).mode! & 0o777).toString(8)}`
    );
    assertEquals(modes, ["db 600", "-wal 600", "-shm 600"]);
  } finally {
    await driver.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sqlite: an existing database file keeps the mode its owner gave it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-sqlite-" });
  const path = `${dir}/jobs.db`;
  new DatabaseSync(path).close();
  Deno.chmodSync(path, 0o640);
  const driver = SqliteDriver.open(path);
  try {
    await driver.run("CREATE TABLE t (x INTEGER)");
    assertEquals((Deno.statSync(path).mode! & 0o777).toString(8), "640");
  } finally {
    await driver.close();
    await Deno.remove(dir, { recursive: true });
  }
});
