/**
 * The MySQL pool closes connections left idle (one that died unseen, a NAT
 * or proxy having forgotten it, is not kept), without mysql2's timer every
 * second, and opens new ones as they are needed.
 */
import { assertEquals } from "./assert.ts";
import { freshDatabase, mysqlConnection, mysqlTest, waitFor } from "./helpers.ts";
import { MysqlDriver } from "../src/store/mysql.ts";

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
