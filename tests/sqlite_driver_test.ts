/**
 * The SQLite driver's own duties: a locked file at open is waited for, like
 * a locked file at any statement, not reported as "database is locked";
 * errors come out as DatabaseErrors naming SQLite's own cause.
 */
import { DatabaseSync } from "node:sqlite";
import { SqliteDriver } from "../src/store/sqlite.ts";
import { DatabaseError } from "../src/errors.ts";
import { assert, assertEquals, assertMatch } from "./assert.ts";

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

Deno.test("sqlite: a statement that waits out another process's write lock got no answer: no connection failed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-sqlite-" });
  const path = `${dir}/jobs.db`;
  const driver = SqliteDriver.open(path);
  const holder = new DatabaseSync(path);
  try {
    await driver.run("CREATE TABLE t (x INTEGER)");
    holder.exec("BEGIN IMMEDIATE");
    // Retried for 10 s (real time), then given up.
    const error = await driver.run("INSERT INTO t VALUES (1)").then(() => null, (e) => e);
    assert(error instanceof DatabaseError, `not a DatabaseError: ${error}`);
    assertMatch(error.message, /^sqlite:\S+ stayed locked by another process for 10 s/);
    // What /readyz words as "a claim got no answer in time", not "unreachable".
    assertEquals([error.unreachable, error.unanswered], [true, true]);
  } finally {
    if (holder.isTransaction) holder.exec("ROLLBACK");
    holder.close();
    await driver.close();
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

Deno.test("sqlite: a transaction SQLite rolled back itself fails with its own error, a refusal", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-sqlite-" });
  const path = `${dir}/jobs.db`;
  const driver = SqliteDriver.open(path);
  try {
    await driver.run("CREATE TABLE t (x TEXT)");
    // A full disk, on this connection: SQLite rolls the transaction back itself.
    await driver.run("PRAGMA max_page_count = 10");
    const error = await driver.transaction(async (tx) => {
      for (let i = 0; i < 100; i++) await tx.run("INSERT INTO t VALUES (?)", ["x".repeat(4000)]);
    }).then(() => null, (e) => e);
    assert(error instanceof DatabaseError, `not a DatabaseError: ${error}`);
    // The filesystem has room: what stops the file growing is not space (here, max_page_count).
    assertMatch(
      error.message,
      /^cannot write the SQLite database (\S+): it cannot grow, though the filesystem holding (\S+) has room \(SQLite: "database or disk is full"\); check the file size limit \(ulimit -f\) and the disk quota of user \S+, or point db.url \(--database\) at a writable place$/,
    );
    assertEquals([error.message.split(" ")[5], error.unreachable], [`${path}:`, false]);
    const missing = await driver.all("SELECT * FROM nowhere").then(() => null, (e) => e);
    assert(missing instanceof DatabaseError, `not a DatabaseError: ${missing}`);
    assertEquals([missing.message, missing.unreachable], ["no such table: nowhere", false]);
  } finally {
    await driver.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sqlite: rows are plain objects of their columns, whatever the names", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-sqlite-" });
  const driver = SqliteDriver.open(`${dir}/jobs.db`);
  try {
    const [row] = await driver.all(`SELECT 1 AS a, 'x' AS "b c", NULL AS "it's"`);
    assertEquals(row, { a: 1, "b c": "x", "it's": null });
    // A column named __proto__ is a column, not the row's prototype.
    const [odd] = await driver.all(`SELECT 1 AS "__proto__", 2 AS b`);
    assertEquals(Object.getPrototypeOf(odd), Object.prototype);
    assertEquals(Object.getOwnPropertyDescriptor(odd, "__proto__")?.value, 1);
    assertEquals(odd.b, 2);
  } finally {
    await driver.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sqlite: a WAL grown behind a long read is cut back once the read ends", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-sqlite-" });
  const path = `${dir}/jobs.db`;
  const driver = SqliteDriver.open(path);
  const reader = new DatabaseSync(path);
  try {
    await driver.run("CREATE TABLE t (x BLOB)");
    // A backup's read, held while the service writes: nothing can be checkpointed meanwhile.
    reader.exec("BEGIN");
    reader.prepare("SELECT COUNT(*) FROM t").get();
    for (let i = 0; i < 80; i++) await driver.run("INSERT INTO t VALUES (randomblob(1048576))");
    const grown = (await Deno.stat(`${path}-wal`)).size;
    assert(grown > 64 * 1024 * 1024, `the WAL grew to ${grown} bytes`);
    reader.exec("COMMIT");
    // The next checkpoint (SQLite's own, every 1,000 pages) restarts the WAL, cut to 64 MiB.
    for (let i = 0; i < 8; i++) await driver.run("INSERT INTO t VALUES (randomblob(1048576))");
    const size = (await Deno.stat(`${path}-wal`)).size;
    assert(size <= 64 * 1024 * 1024, `the WAL kept ${size} bytes (it grew to ${grown})`);
  } finally {
    reader.close();
    await driver.close();
    await Deno.remove(dir, { recursive: true });
  }
});
