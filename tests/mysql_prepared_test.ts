/**
 * On MySQL the reads of jobs (`mapValues`) run as prepared statements:
 * their rows come in the binary protocol, which mysql2 reads faster than a
 * query's text. They must come as a query gives them, and a statement
 * whose prepare gets no answer must fail in time like any other.
 */
import { assert, assertEquals } from "./assert.ts";
import { freshDatabase, mysqlTest } from "./helpers.ts";
import { proxyFor } from "./tcp_proxy.ts";
import { MysqlDriver } from "../src/store/mysql.ts";
import { DatabaseError } from "../src/errors.ts";

mysqlTest("mysql: values read by a prepared statement are those a query reads", async () => {
  await using db = await freshDatabase("mysql");
  if (db.target.kind !== "mysql") throw new Error("a MySQL test got another backend");
  const driver = new MysqlDriver(db.target);
  try {
    await driver.run(
      `CREATE TABLE kinds (id VARCHAR(20) PRIMARY KEY, i INT, big BIGINT, flag TINYINT(1),
        txt TEXT, dec_ DECIMAL(20,3), js JSON, dt DATETIME(3), bin VARBINARY(8)) CHARSET utf8mb4`,
    );
    await driver.run(
      "INSERT INTO kinds VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?), ('b', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
      [
        "a",
        -7,
        "9007199254740993",
        1,
        "caf\u00e9 \u{1F600}",
        "12.500",
        '{"k": "v"}',
        "2026-12-04 19:00:00.123",
        "\x01\x02",
      ],
    );
    const sql =
      "SELECT id, i, big, flag, txt, dec_, js, dt, bin FROM kinds WHERE id >= ? ORDER BY id LIMIT ?";
    const queried = (await driver.all(sql, ["a", 5])).map((row) => Object.values(row));
    const prepared = await driver.mapValues(sql, ["a", 5], (values) => values);
    assertEquals(prepared, queried);
    assertEquals(prepared.length, 2);
    assertEquals(prepared[0].slice(0, 5), ["a", -7, "9007199254740993", 1, "caf\u00e9 \u{1F600}"]);
  } finally {
    await driver.close();
  }
});

mysqlTest(
  "mysql: a read whose statement gets no answer as it is prepared fails within the statement timeout; the next works",
  async () => {
    await using db = await freshDatabase("mysql");
    if (db.target.kind !== "mysql") throw new Error("a MySQL test got another backend");
    await using proxy = proxyFor(db);
    const timeoutMs = 1000;
    const driver = new MysqlDriver(
      { ...db.target, host: "127.0.0.1", port: proxy.port, poolSize: 1 },
      undefined,
      true,
      timeoutMs,
    );
    try {
      await driver.run("CREATE TABLE things (name VARCHAR(20) PRIMARY KEY)");
      await driver.run("INSERT INTO things (name) VALUES ('a')");
      const read = () => driver.mapValues("SELECT name FROM things", [], (values) => values[0]);
      // Never prepared on this connection: the prepare is the first thing sent.
      proxy.blackhole();
      const hung = read().then(() => "answered", (error: unknown) => error);
      // mysql2 times the execution only: a prepare left unbounded would hang for good.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const outcome = await Promise.race([
        hung,
        new Promise((resolve) =>
          timer = setTimeout(() => resolve("no outcome after 20 s"), 20_000)
        ),
      ]);
      clearTimeout(timer);
      assert(
        outcome instanceof DatabaseError && /no answer/.test(outcome.message),
        `the read ended: ${outcome}`,
      );
      proxy.restore();
      // Its connection was let go: the pool of one opens another.
      assertEquals(await read(), ["a"]);
    } finally {
      await driver.close();
    }
  },
);
