/**
 * MariaDB picks a lone statement as a deadlock victim too (services that
 * start together upsert their jm_nodes rows and mark markers applied at
 * once): rolled back whole, it runs again instead of failing.
 */
import { assertEquals } from "./assert.ts";
import { freshDatabase, mysqlConnection, mysqlTest, waitFor } from "./helpers.ts";
import { MysqlDriver } from "../src/store/mysql.ts";

mysqlTest("mysql: a statement picked as a deadlock victim runs again", async () => {
  await using db = await freshDatabase("mysql");
  if (db.target.kind !== "mysql") throw new Error("a MySQL test got another backend");
  const other = await mysqlConnection(db);
  const driver = new MysqlDriver(db.target);
  try {
    await other.query("CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB");
    await other.query(
      `INSERT INTO t VALUES ${Array.from({ length: 101 }, (_, i) => `(${i + 1}, 0)`).join(", ")}`,
    );
    // The other transaction holds rows 2-101 (it weighs more, so InnoDB keeps it) …
    await other.query("START TRANSACTION");
    await other.query("UPDATE t SET v = v + 1 WHERE id >= 2");
    // … the statement takes row 1 and waits for row 2 …
    const statement = driver.run("UPDATE t SET v = v + 10 WHERE id <= 2");
    await waitFor(
      async () => {
        const [rows] = await other.query(
          "SELECT COUNT(*) AS n FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'",
        );
        return Number((rows as { n: number }[])[0].n) === 1 || null;
      },
      { timeoutMs: 10_000, what: "the statement to wait for row 2" },
    );
    // … and the other transaction then asks for row 1: a deadlock, the statement its victim.
    await other.query("UPDATE t SET v = v + 1 WHERE id = 1");
    await other.query("COMMIT");
    assertEquals((await statement).changes, 2);
    const [rows] = await other.query("SELECT id, v FROM t WHERE id <= 2 ORDER BY id");
    assertEquals(
      (rows as { id: number; v: number }[]).map((r) => [r.id, r.v]),
      [[1, 11], [2, 11]],
    );
  } finally {
    await other.end();
    await driver.close();
  }
});
