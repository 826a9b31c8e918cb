/**
 * The store contract of the connection's life (store.ts, Store): kind,
 * description, created, ping and close.
 */
import { assert, assertEquals, assertRejects } from "./assert.ts";
import { DatabaseError } from "../src/errors.ts";
import { openStore } from "../src/store/open.ts";
import { rawQuery, type TestDatabase } from "./helpers.ts";
import { contract, fire, logRow, onEveryBackend } from "./store_contract.ts";

contract("kind", "names the backend", ({ backend, store }) => {
  assertEquals(store.kind, backend);
});

onEveryBackend("description", "names the database, never the password", async (db) => {
  if (db.target.kind === "sqlite") {
    const store = db.open();
    await store.close();
    assertEquals(store.description, `sqlite:${db.target.path}`);
    return;
  }
  const { host, port, user, database } = db.target;
  // `***` where the URL held the password; one from JM_DB_PASSWORD or a file is not in the URL given.
  const descriptions = [];
  for (const passwordInUrl of [true, false]) {
    const store = openStore({ ...db.target, password: "s3cret/@pass", passwordInUrl });
    await store.close();
    descriptions.push(store.description);
  }
  assertEquals(descriptions, [
    `mysql://${user}:***@${host}:${port}/${database}`,
    `mysql://${user}@${host}:${port}/${database}`,
  ]);
});

onEveryBackend(
  "created",
  "true for the store that made the database: its SQLite file, or on MySQL its tables",
  async (db) => {
    const first = db.open();
    const opened = first.created;
    await first.migrate();
    await first.close();
    const again = db.open();
    await again.migrate();
    await again.close();
    // MySQL's database is made by hand: the first migrate makes the tables in it.
    assertEquals([opened, first.created, again.created], [db.backend === "sqlite", true, false]);
  },
);

contract("ping", "resolves while the database answers", async ({ store }) => {
  assertEquals(await store.ping(), undefined);
});

onEveryBackend("ping", "resolves before the schema exists", async (db) => {
  const store = db.open();
  try {
    await store.ping();
  } finally {
    await store.close();
  }
});

onEveryBackend("ping", "rejects once the store is closed", async (db) => {
  const store = db.open();
  await store.ping();
  await store.close();
  await assertRejects(() => store.ping());
});

onEveryBackend("ping", "rejects when the database was dropped, naming it", async (db) => {
  if (db.target.kind !== "mysql") throw new Error("a MySQL case");
  const { host, port, database } = db.target;
  await rawQuery(db, `DROP DATABASE ${database}`);
  const store = db.open();
  try {
    const error = await assertRejects(() => store.ping(), DatabaseError);
    assertEquals(
      error.message,
      `database '${database}' does not exist on MySQL at ${host}:${port}; create it with: CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4`,
    );
  } finally {
    await store.close();
  }
}, ["mysql"]);

onEveryBackend("ping", "rejects when the server refuses connections", async (db) => {
  if (db.target.kind !== "mysql") throw new Error("a MySQL case");
  // A port that was just free: nothing listens on it.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const store = openStore({ ...db.target, host: "127.0.0.1", port });
  try {
    const error = await assertRejects(() => store.ping(), DatabaseError);
    assertEquals(
      error.message,
      `cannot connect to MySQL at 127.0.0.1:${port}: connection refused; is the server running, and are db.host/db.port (or --database) right?`,
    );
  } finally {
    await store.close();
  }
}, ["mysql"]);

onEveryBackend("close", "afterwards the store refuses every call", async (db) => {
  const store = db.open();
  await store.migrate();
  await store.close();
  await assertRejects(() => store.listJobs());
  await assertRejects(() => store.claimRuns([fire("a", 1000)]));
  await assertRejects(() => store.insertLogs([logRow(1, "info")]));
  await assertRejects(() => store.ping());
});

/** What the database shows of the store's hold on it: its WAL files, or its connections. */
async function held(db: TestDatabase): Promise<string[]> {
  if (db.target.kind === "sqlite") {
    const names = [];
    for await (const entry of Deno.readDir(db.dir)) names.push(entry.name);
    return names.filter((n) => n !== "jobs.db").sort();
  }
  const rows = await rawQuery(
    db,
    "SELECT ID AS id FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()",
    [db.target.database],
  );
  return rows.map((r) => `connection ${r.id}`);
}

onEveryBackend("close", "releases the database's files and connections", async (db) => {
  const store = db.open();
  await store.migrate();
  await Promise.all([store.listJobs(), store.listRuns({ limit: 1 }), store.nodesAndNow()]);
  assert((await held(db)).length > 0, "the open store holds the database");
  await store.close();
  // A server ends a connection's thread after the client hung up.
  const deadline = Date.now() + 15_000;
  let still = await held(db);
  while (still.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    still = await held(db);
  }
  assertEquals(still, [], "still held after close");
});
