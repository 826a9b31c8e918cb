/**
 * The MySQL pool closes connections left idle (one that died unseen, a NAT
 * or proxy having forgotten it, is not kept), without mysql2's timer every
 * second, and opens new ones as they are needed; a connection the server
 * closed after an error is not given back to it.
 */
import { assertEquals, assertMatch, assertRejects } from "./assert.ts";
import {
  freshDatabase,
  mysqlConnection,
  mysqlTest,
  type TestDatabase,
  waitFor,
} from "./helpers.ts";
import { MysqlDriver } from "../src/store/mysql.ts";
import { SqlStore } from "../src/store/sql_store.ts";
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

/** A user of `db` allowed `limit` connections at once, dropped after `fn`. */
async function withLimitedUser(
  db: TestDatabase,
  limit: number,
  fn: (user: string) => Promise<void>,
): Promise<void> {
  if (db.target.kind !== "mysql") throw new Error("a MySQL test got another backend");
  const user = `jm_lim_${crypto.randomUUID().slice(0, 8)}`;
  const admin = await mysqlConnection(db);
  try {
    await admin.query(`CREATE USER '${user}'@'%' WITH MAX_USER_CONNECTIONS ${limit}`);
    await admin.query(`GRANT ALL ON \`${db.target.database}\`.* TO '${user}'@'%'`);
    await fn(user);
  } finally {
    await admin.query(`DROP USER IF EXISTS '${user}'@'%'`);
    await admin.end();
  }
}

mysqlTest(
  "mysql: a user allowed one connection: statements wait for the one the pool has, batches run on it",
  async () => {
    await using db = await freshDatabase("mysql");
    if (db.target.kind !== "mysql") throw new Error("a MySQL test got another backend");
    const target = db.target;
    await withLimitedUser(db, 1, async (user) => {
      const driver = new MysqlDriver({ ...target, user, password: "", poolSize: 4 });
      try {
        // A batch first: its own connection takes the one slot, the pool has none.
        await driver.batch([{ sql: "SELECT 1 AS one", params: [] }]);
        // The pool is refused once, naming what the service needs; the idle batch
        // connection goes for good, and the pool gets the slot from then on.
        const refused = await driver.all("SELECT 1").then(() => null, (e: Error) => e.message);
        assertMatch(
          refused ?? "answered",
          /refused user 'jm_lim_\w+' a connection: it may hold 1 at once \(max_user_connections\), and each side of a service \(the scheduler, the HTTP API\) opens up to 6 \(db\.pool_size 4, and 2 for claims\); raise it \(ALTER USER 'jm_lim_\w+'@'<its host>' WITH MAX_USER_CONNECTIONS 12\), or lower db\.pool_size; meanwhile the service keeps to the connections it has$/,
        );
        await waitFor(() => driver.all("SELECT 1").then(() => true, () => null), {
          timeoutMs: 10_000,
          what: "the pool to get the slot the batch connection held",
        });
        // Eight at once, and batches among them: each waits for the one connection, none fails.
        const results = await Promise.allSettled([
          ...Array.from({ length: 8 }, (_, i) => driver.all("SELECT SLEEP(0.02), ? AS i", [i])),
          driver.batch([{ sql: "SELECT 2 AS two", params: [] }]),
        ]);
        assertEquals(
          results.filter((r) => r.status === "rejected").map((r) =>
            String((r as PromiseRejectedResult).reason)
          ),
          [],
        );
      } finally {
        await driver.close();
      }
    });
  },
);

mysqlTest(
  "mysql: a user allowed fewer connections than a service opens is a caution at the start, with what to change",
  async () => {
    await using db = await freshDatabase("mysql");
    if (db.target.kind !== "mysql") throw new Error("a MySQL test got another backend");
    const target = db.target;
    await withLimitedUser(db, 3, async (user) => {
      const store = new SqlStore(new MysqlDriver({ ...target, user, password: "", poolSize: 4 }));
      try {
        assertEquals(await store.serverCautions(2), [
          `user '${user}'@'%' may hold 3 connections at once (max_user_connections), and a service opens up to 12: 6 for its scheduler (db.pool_size, and 2 for claims) and as many for its HTTP API (http.listen); past the limit it keeps to the connections it has, its claims and statements waiting for one another; raise it (ALTER USER '${user}'@'%' WITH MAX_USER_CONNECTIONS 12) or lower db.pool_size`,
        ]);
        // Without HTTP, its scheduler's pool alone.
        assertEquals(await store.serverCautions(1), [
          `user '${user}'@'%' may hold 3 connections at once (max_user_connections), and a service opens up to 6: 6 for its scheduler (db.pool_size, and 2 for claims); past the limit it keeps to the connections it has, its claims and statements waiting for one another; raise it (ALTER USER '${user}'@'%' WITH MAX_USER_CONNECTIONS 6) or lower db.pool_size`,
        ]);
      } finally {
        await store.close();
      }
    });
    const root = new SqlStore(new MysqlDriver(target));
    try {
      assertEquals(await root.serverCautions(2), [], "a user without a limit");
    } finally {
      await root.close();
    }
  },
);
