/**
 * The MySQL pool closes connections left idle (one that died unseen, a NAT
 * or proxy having forgotten it, is not kept), without mysql2's timer every
 * second, and opens new ones as they are needed; a connection the server
 * closed after an error is not given back to it.
 */
import { assertEquals, assertRejects } from "./assert.ts";
import { freshDatabase, mysqlConnection, mysqlTest, waitFor } from "./helpers.ts";
import { MysqlDriver } from "../src/store/mysql.ts";
import { DatabaseError } from "../src/errors.ts";

mysqlTest(
  "mysql: the pool closes connections left idle, and opens new ones as needed",
  async () => {
    await using db = await freshDatabase("mysql");
    if (db.target.kind !== "mysql") throw new Error("a MySQL test got another backend");
    const other = await mysqlConnection(db);
    const driver = new MysqlDriver(db.target, 200);
    const open = async () => {
      const [rows] = await other.query(
        "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()",
        [db.target.kind === "mysql" ? db.target.database : ""],
      );
      return Number((rows as { n: number }[])[0].n);
    };
    try {
      // Three at once: three connections.
      await Promise.all([1, 2, 3].map((i) => driver.all("SELECT ? AS i", [i])));
      assertEquals(await open(), 3);
      await waitFor(async () => (await open()) === 0 || null, {
        timeoutMs: 10_000,
        what: "the idle connections to be closed",
      });
      assertEquals(await driver.all("SELECT 1 AS one"), [{ one: 1 }]);
      assertEquals(await open(), 1);
    } finally {
      await driver.close();
      await other.end();
    }
  },
);

mysqlTest(
  "mysql: after a statement over max_allowed_packet, which the server answers by closing the connection, the next statement on the pool works",
  async () => {
    await using db = await freshDatabase("mysql");
    if (db.target.kind !== "mysql") throw new Error("a MySQL test got another backend");
    // One connection a pool: the next statement gets the very one, if it was given back.
    const driver = new MysqlDriver({ ...db.target, poolSize: 1 });
    try {
      const [{ max }] = await driver.all("SELECT @@max_allowed_packet AS max");
      const big = "x".repeat(Number(max));
      const select = { sql: "SELECT LENGTH(?) AS n", params: [big] };
      const one = { sql: "SELECT 1 AS one", params: [] };
      const ways: [string, () => Promise<unknown>, () => Promise<unknown>][] = [
        ["alone", () => driver.all(select.sql, select.params), () => driver.all(one.sql)],
        [
          "in a transaction",
          () => driver.transaction((tx) => tx.all(select.sql, select.params)),
          () => driver.transaction((tx) => tx.all(one.sql)),
        ],
        [
          "prepared",
          () => driver.mapValues(select.sql, select.params, (v) => v),
          () => driver.mapValues(one.sql, [], (v) => v),
        ],
        ["in a batch", () => driver.batch([one, select]), () => driver.batch([one])],
      ];
      for (const [how, tooBig, next] of ways) {
        const error = await assertRejects(
          tooBig,
          DatabaseError,
          "max_allowed_packet",
        ) as DatabaseError;
        // Refused for what it carries, not an outage.
        assertEquals([error.unstorable, error.unreachable], [true, false], how);
        await next();
        assertEquals(await driver.all(one.sql), [{ one: 1 }], how);
      }
    } finally {
      await driver.close();
    }
  },
);

mysqlTest(
  "mysql: statements given up at their timeout are stopped on the server too, not left running there",
  async () => {
    await using db = await freshDatabase("mysql");
    if (db.target.kind !== "mysql") throw new Error("a MySQL test got another backend");
    const other = await mysqlConnection(db);
    const driver = new MysqlDriver({ ...db.target, poolSize: 2 }, undefined, undefined, 1000);
    const running = async () => {
      const [rows] = await other.query(
        "SELECT ID AS id FROM information_schema.PROCESSLIST WHERE DB = ? AND INFO LIKE 'SELECT BENCHMARK(%'",
        [db.target.kind === "mysql" ? db.target.database : ""],
      );
      return (rows as { id: number }[]).map((r) => r.id);
    };
    try {
      // Three given up at once (an overloaded server's way), on a pool of two.
      await Promise.all(
        [1, 2, 3].map((i) =>
          assertRejects(
            () => driver.all(`SELECT BENCHMARK(4000000000, MD5('${i}')) AS spent`),
            DatabaseError,
          )
        ),
      );
      // Given up after 1 s; without the KILL each would run on the server for minutes.
      await waitFor(async () => (await running()).length === 0 || null, {
        timeoutMs: 20_000,
        what: "the server to stop the statement given up",
        detail: async () => `still running: ${await running()}`,
      });
    } finally {
      // Minutes of CPU on the shared server, should the test fail.
      for (const id of await running()) await other.query(`KILL QUERY ${Number(id)}`);
      await driver.close();
      await other.end();
    }
  },
);
