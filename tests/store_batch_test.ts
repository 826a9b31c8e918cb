/**
 * Driver.batch, on every backend: statements run as one transaction, each
 * one's rows returned; a statement that fails leaves none of the batch's
 * writes. On MySQL the batch is one round trip (an instant's claim).
 */
import { assertEquals, assertRejects } from "./assert.ts";
import { onEveryBackend } from "./store_contract.ts";
import {
  freshDatabase,
  mysqlConnection,
  mysqlTest,
  rawQuery,
  type TestDatabase,
} from "./helpers.ts";
import type { Driver } from "../src/store/driver.ts";
import { MysqlDriver } from "../src/store/mysql.ts";
import { SqliteDriver } from "../src/store/sqlite.ts";
import { proxyFor } from "./tcp_proxy.ts";

function driverOn(db: TestDatabase): Driver {
  return db.target.kind === "sqlite"
    ? SqliteDriver.open(db.target.path)
    : new MysqlDriver(db.target);
}

/** A batch whose second statement fails: rejected, naming what failed; the table is left for the caller to check. */
async function failingBatch(driver: Driver): Promise<void> {
  await assertRejects(
    () =>
      driver.batch([
        { sql: "INSERT INTO things (name) VALUES (?)", params: ["never"] },
        { sql: "SELECT missing_column FROM things", params: [] },
        { sql: "INSERT INTO things (name) VALUES (?)", params: ["after"] },
      ]),
    Error,
    "missing_column",
  );
}

async function things(db: TestDatabase): Promise<string[]> {
  return (await rawQuery(db, "SELECT name FROM things ORDER BY name")).map((r) => String(r.name));
}

onEveryBackend("batch", "runs its statements in order and returns each one's rows", async (db) => {
  const driver = driverOn(db);
  try {
    await driver.run("CREATE TABLE things (name VARCHAR(20) PRIMARY KEY)");
    const rows = await driver.batch([
      { sql: "INSERT INTO things (name) VALUES (?), (?)", params: ["a", "b"] },
      { sql: "SELECT name FROM things WHERE name > ? ORDER BY name", params: [""] },
      { sql: "INSERT INTO things (name) VALUES (?)", params: ["c"] },
      { sql: "SELECT COUNT(*) AS n FROM things", params: [] },
    ]);
    assertEquals(rows.map((r) => r.length), [0, 2, 0, 1]);
    assertEquals(rows[1].map((r) => r.name), ["a", "b"], "the rows written before in the batch");
    assertEquals(Number(rows[3][0].n), 3);
    assertEquals(await driver.batch([]), []);
  } finally {
    await driver.close();
  }
  assertEquals(await things(db), ["a", "b", "c"]);
});

onEveryBackend(
  "batch",
  "a statement that fails leaves none of the batch's writes, and the next batch runs",
  async (db) => {
    const driver = driverOn(db);
    try {
      await driver.run("CREATE TABLE things (name VARCHAR(20) PRIMARY KEY)");
      await failingBatch(driver);
      assertEquals(await things(db), [], "the INSERT before the failure was rolled back");
      // The same connection (MySQL keeps two for batches) is not left inside that transaction.
      for (const name of ["c", "d", "e"]) {
        await driver.batch([{ sql: "INSERT INTO things (name) VALUES (?)", params: [name] }]);
      }
    } finally {
      await driver.close();
    }
    assertEquals(await things(db), ["c", "d", "e"]);
  },
);

mysqlTest("mysql: a batch of statements is one round trip to the server", async () => {
  await using db = await freshDatabase("mysql");
  if (db.target.kind !== "mysql") throw new Error("a MySQL test got another backend");
  await using proxy = proxyFor(db);
  const driver = new MysqlDriver({ ...db.target, host: "127.0.0.1", port: proxy.port });
  try {
    await driver.run("CREATE TABLE things (name VARCHAR(20) PRIMARY KEY)");
    // Its connection made (the handshake takes round trips of its own).
    await driver.batch([{ sql: "SELECT 1", params: [] }]);
    const before = proxy.chunksFromClients;
    const rows = await driver.batch([
      { sql: "INSERT INTO things (name) VALUES (?), (?)", params: ["a", "b"] },
      { sql: "SELECT name FROM things ORDER BY name", params: [] },
    ]);
    assertEquals(rows[1].map((r) => r.name), ["a", "b"]);
    assertEquals(proxy.chunksFromClients - before, 1, "requests the client sent for the batch");
  } finally {
    await driver.close();
  }
});

mysqlTest("mysql: a batch that cannot get a connection of its own runs on the pool's", async () => {
  await using db = await freshDatabase("mysql");
  if (db.target.kind !== "mysql") throw new Error("a MySQL test got another backend");
  // A user allowed one connection: the pool's takes it, the batch's own is refused.
  const user = `jm_one_${crypto.randomUUID().slice(0, 8)}`;
  const admin = await mysqlConnection(db);
  try {
    await admin.query(`CREATE USER '${user}'@'%' WITH MAX_USER_CONNECTIONS 1`);
    await admin.query(`GRANT ALL ON \`${db.target.database}\`.* TO '${user}'@'%'`);
    const driver = new MysqlDriver({ ...db.target, user, password: "", poolSize: 1 });
    try {
      await driver.run("CREATE TABLE things (name VARCHAR(20) PRIMARY KEY)");
      const rows = await driver.batch([
        { sql: "INSERT INTO things (name) VALUES (?), (?)", params: ["a", "b"] },
        { sql: "SELECT name FROM things ORDER BY name", params: [] },
      ]);
      assertEquals(rows.map((r) => r.length), [0, 2]);
      await failingBatch(driver);
    } finally {
      await driver.close();
    }
    assertEquals(await things(db), ["a", "b"]);
  } finally {
    await admin.query(`DROP USER IF EXISTS '${user}'@'%'`);
    await admin.end();
  }
});

mysqlTest(
  "mysql: where several statements a query are refused, batches go one statement at a time",
  async () => {
    await using db = await freshDatabase("mysql");
    if (db.target.kind !== "mysql") throw new Error("a MySQL test got another backend");
    // Connections that do not ask for multi-statements: the server refuses the batch's query as
    // a syntax error, as a proxy that takes none would.
    const driver = new MysqlDriver(db.target, undefined, false);
    try {
      await driver.run("CREATE TABLE things (name VARCHAR(20) PRIMARY KEY)");
      for (const name of ["a", "b"]) {
        const rows = await driver.batch([
          { sql: "INSERT INTO things (name) VALUES (?)", params: [name] },
          { sql: "SELECT name FROM things ORDER BY name", params: [] },
        ]);
        assertEquals(rows[1].map((r) => r.name), name === "a" ? ["a"] : ["a", "b"]);
      }
      await failingBatch(driver);
    } finally {
      await driver.close();
    }
    assertEquals(await things(db), ["a", "b"]);
  },
);
