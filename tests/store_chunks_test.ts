/**
 * Driver.valuesInChunks, on every backend: every row once, in key order,
 * in chunks of the size asked; a read left early or failing leaves the
 * driver answering. On MySQL a query reads 2,000 rows, whatever the chunk.
 */
import { assertEquals, assertRejects } from "./assert.ts";
import { onEveryBackend } from "./store_contract.ts";
import { freshDatabase, mysqlTest, type TestDatabase } from "./helpers.ts";
import type { ChunkedRead, Driver } from "../src/store/driver.ts";
import { MysqlDriver } from "../src/store/mysql.ts";
import { SqliteDriver } from "../src/store/sqlite.ts";
import { DatabaseError } from "../src/errors.ts";
import { proxyFor } from "./tcp_proxy.ts";

function driverOn(db: TestDatabase, poolSize?: number): Driver {
  if (db.target.kind === "sqlite") return SqliteDriver.open(db.target.path);
  return new MysqlDriver({ ...db.target, poolSize: poolSize ?? db.target.poolSize });
}

const THINGS: ChunkedRead = { select: "SELECT name, n FROM things", key: "name", keyAt: 0 };

/** A table of `count` things named t00000, t00001, … (inserted out of order). */
async function things(driver: Driver, count: number): Promise<void> {
  await driver.run("CREATE TABLE things (name VARCHAR(20) PRIMARY KEY, n INTEGER NOT NULL)");
  const names = Array.from({ length: count }, (_, i) => i).reverse();
  for (let from = 0; from < names.length; from += 500) {
    const part = names.slice(from, from + 500);
    await driver.run(
      `INSERT INTO things (name, n) VALUES ${part.map(() => "(?, ?)").join(", ")}`,
      part.flatMap((i) => [`t${String(i).padStart(5, "0")}`, i]),
    );
  }
}

/** Within `ms` of real time, or an error saying what did not come. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms / 1000} s`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

onEveryBackend(
  "valuesInChunks",
  "every row once, in key order, in chunks of the size",
  async (db) => {
    const driver = driverOn(db);
    try {
      await things(driver, 0);
      assertEquals(await Array.fromAsync(driver.valuesInChunks(THINGS, 2, (v) => v[1])), []);
      await driver.run(
        "INSERT INTO things (name, n) VALUES ('e', 5), ('b', 2), ('a', 1), ('d', 4)",
      );
      await driver.run("INSERT INTO things (name, n) VALUES ('c', 3)");
      const chunks = await Array.fromAsync(
        driver.valuesInChunks(THINGS, 2, (v) => `${v[0]}${v[1]}`),
      );
      assertEquals(chunks, [["a1", "b2"], ["c3", "d4"], ["e5"]]);
      assertEquals(await Array.fromAsync(driver.valuesInChunks(THINGS, 5, (v) => v[0])), [[
        "a",
        "b",
        "c",
        "d",
        "e",
      ]]);
    } finally {
      await driver.close();
    }
  },
);

onEveryBackend(
  "valuesInChunks",
  "a read left early or failing leaves the driver answering",
  async (db) => {
    // One connection (MySQL): the next statement must get it, or one in its place.
    const driver = driverOn(db, 1);
    try {
      await things(driver, 2000);
      for await (const chunk of driver.valuesInChunks(THINGS, 10, (v) => v[1])) {
        assertEquals(chunk, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        break;
      }
      const count = await within(
        10_000,
        "a count after a read left early",
        driver.all("SELECT COUNT(*) AS c FROM things"),
      );
      assertEquals(Number(count[0].c), 2000);
      const missing = { select: "SELECT name FROM no_such_table", key: "name", keyAt: 0 };
      await assertRejects(
        () => Array.fromAsync(driver.valuesInChunks(missing, 10, (v) => v)),
        DatabaseError,
        "no_such_table",
      );
      const after = await within(
        10_000,
        "a count after a failed read",
        driver.all("SELECT COUNT(*) AS c FROM things"),
      );
      assertEquals(Number(after[0].c), 2000);
    } finally {
      await driver.close();
    }
  },
);

mysqlTest(
  "mysql: a chunked read asks the server once for each 2,000 rows, not for each chunk",
  async () => {
    await using db = await freshDatabase("mysql");
    if (db.target.kind !== "mysql") throw new Error("a MySQL test got another backend");
    await using proxy = proxyFor(db);
    const driver = new MysqlDriver({ ...db.target, host: "127.0.0.1", port: proxy.port });
    try {
      await things(driver, 4500);
      const before = proxy.chunksFromClients;
      const chunks = await Array.fromAsync(driver.valuesInChunks(THINGS, 100, (v) => v[1]));
      // Pages of 2,000, 2,000 and 500 rows: three queries, where chunks of 100 a query were 46.
      assertEquals(proxy.chunksFromClients - before, 3);
      assertEquals(chunks.length, 45);
      assertEquals(chunks.flat(), Array.from({ length: 4500 }, (_, i) => i));
    } finally {
      await driver.close();
    }
  },
);
