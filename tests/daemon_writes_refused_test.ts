/**
 * A database that answers but refuses every write (a full disk, a full
 * table) is not called reachable: /readyz is degraded and names the cause
 * and the run records waiting, /metrics says the database is not up and
 * how many records wait; once writes are taken again, all is as before.
 * The daemon's store refuses its writes with the error its backend gives
 * for a full disk (SQLite) or a full table (MySQL), made for real.
 * In-process, fake clock, real store on every backend.
 */
import { DatabaseSync } from "node:sqlite";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import {
  BACKENDS,
  freshDatabase,
  mysqlConnection,
  mysqlTest,
  type TestDatabase,
} from "./helpers.ts";
import { DaemonHarness, storeWith, T0 } from "./daemon_harness.ts";
import { gaugeValues } from "./http_harness.ts";
import { readinessOf, readyState } from "../src/http/health.ts";
import { Metrics } from "../src/http/metrics.ts";
import { explainSqliteError } from "../src/store/sqlite_errors.ts";
import { explainMysqlError } from "../src/store/mysql.ts";
import type { Store } from "../src/store/store.ts";
import type { MysqlTarget } from "../src/store/target.ts";
import mysql from "mysql2/promise";

const at = (s: number) => T0 + s * 1000;
const WRITTEN = /^wrote \d+ run records the database had refused$/;

/** What SQLite itself throws when the file cannot grow: a database of one page at most. */
function sqliteFull(): unknown {
  const db = new DatabaseSync(":memory:");
  try {
    db.exec("PRAGMA max_page_count = 1");
    db.exec("CREATE TABLE t (x TEXT)");
    db.exec(`INSERT INTO t VALUES ('${"x".repeat(8000)}')`);
  } catch (error) {
    return error;
  } finally {
    db.close();
  }
  throw new Error("SQLite took a row larger than its one page");
}

/** What the MySQL driver throws for a table that is full: a MEMORY table over max_heap_table_size. */
async function mysqlTableFull(db: TestDatabase): Promise<unknown> {
  const conn = await mysqlConnection(db);
  try {
    await conn.query("SET SESSION max_heap_table_size = 16384");
    await conn.query("CREATE TEMPORARY TABLE jm_full (x CHAR(255)) ENGINE=MEMORY");
    for (let i = 0; i < 10_000; i++) {
      await conn.query("INSERT INTO jm_full VALUES (REPEAT('x', 255))");
    }
  } catch (error) {
    return error;
  } finally {
    await conn.end();
  }
  throw new Error("a MEMORY table of 16 KiB took 10,000 rows of 255 characters");
}

/** What MariaDB says to a user that may read jobsmanager's tables but lacks INSERT (a GRANT left out, or revoked). */
async function mysqlDenied(db: TestDatabase): Promise<unknown> {
  if (db.target.kind !== "mysql") throw new Error(`${db.backend} is not a MySQL test database`);
  const t = db.target;
  const user = `jmt_${crypto.randomUUID().slice(0, 8)}`;
  const admin = await mysqlConnection(db);
  try {
    await admin.query(`CREATE USER '${user}'@'%' IDENTIFIED BY 'pw-${user}'`);
    await admin.query(`GRANT SELECT ON \`${t.database}\`.* TO '${user}'@'%'`);
    const conn = await mysql.createConnection({
      host: t.host,
      port: t.port,
      user,
      password: `pw-${user}`,
      database: t.database,
    });
    try {
      await conn.query("INSERT INTO jm_nodes (id) VALUES ('n')");
    } catch (error) {
      return error;
    } finally {
      await conn.end();
    }
  } finally {
    await admin.query(`DROP USER '${user}'@'%'`);
    await admin.end();
  }
  throw new Error(`${user}, granted SELECT only, inserted into jm_nodes`);
}

/** The error the daemon's store gives for a refused write, as its driver explains it. */
async function refusal(db: TestDatabase): Promise<unknown> {
  if (db.target.kind === "sqlite") return explainSqliteError(sqliteFull(), db.target.path);
  if (db.target.kind === "mysql") return explainMysqlError(await mysqlTableFull(db), db.target);
  throw new Error(`no refusal made for ${db.backend}`);
}

/**
 * The writes of runs and heartbeats refuse with `error` while `gate.refusing`; reads go on.
 * `gate.claiming`: claims on their way to the database, which a fake clock moved meanwhile
 * would time out (a second: CI at ecbb8c8 counted one an outage on MariaDB).
 */
function refusingWrites(
  db: TestDatabase,
  gate: { refusing: boolean; claiming?: number },
  error: unknown,
) {
  const refused = () => gate.refusing ? Promise.reject(error) : null;
  const claim = async (s: Store, a: Parameters<Store["claimRuns"]>) => {
    gate.claiming = (gate.claiming ?? 0) + 1;
    try {
      return await s.claimRuns(...a);
    } finally {
      gate.claiming--;
    }
  };
  return storeWith(db, {
    claimRuns: (s) => (...a: Parameters<Store["claimRuns"]>) => refused() ?? claim(s, a),
    updateRun: (s) => (...a: Parameters<Store["updateRun"]>) => refused() ?? s.updateRun(...a),
    updateRuns: (s) => (...a: Parameters<Store["updateRuns"]>) => refused() ?? s.updateRuns(...a),
    saveNode: (s) => (...a: Parameters<Store["saveNode"]>) => refused() ?? s.saveNode(...a),
  });
}

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: while the database refuses writes, /readyz and /metrics say so, and how many records wait`, async () => {
    const db = await freshDatabase(backend);
    const error = await refusal(db);
    const gate = { refusing: false, claiming: 0 };
    await using h = await DaemonHarness.create(db, {
      store: refusingWrites(db, gate, error),
    });
    await h.job("tick", { schedule: { second: "*" } });
    const daemon = await h.start();
    const metrics = new Metrics();
    metrics.watch(() => daemon.vitals);
    const gauges = () =>
      gaugeValues(
        metrics,
        "jobsmanager_database_up",
        "jobsmanager_database_writes_refused",
        "jobsmanager_run_records_waiting",
      );
    await h.clock.set(at(1));
    (await h.started("tick", at(1))).finish();
    await h.run("tick", at(1), "success");
    assertEquals(readinessOf(daemon.vitals).database, { ok: true, detail: "reachable" });
    assertEquals(await gauges(), ["1", "0", "0"]);

    gate.refusing = true;
    for (let s = 2; s <= 3; s++) {
      await h.clock.set(at(s));
      (await h.started("tick", at(s))).finish();
    }
    // Both fires' records, each with its end merged in.
    const readiness = await h.until(() => {
      const r = readinessOf(daemon.vitals);
      return daemon.vitals.runRecordsWaiting === 2 && !r.database.ok ? r : undefined;
    }, "the refusal and the 2 waiting records to be said");
    assertEquals(readyState(readiness), "degraded");
    assertMatch(
      readiness.database.detail,
      /^the database refuses writes: .*; jobs keep firing, and 2 run records wait in memory, written once it takes writes again \(a restart meanwhile loses them\)$/,
    );
    // The cause, as the driver names it, with its fix.
    assertMatch(
      readiness.database.detail,
      backend === "sqlite"
        ? /refuses writes: cannot write the SQLite database \S+: it cannot grow, though the filesystem holding \S+ has room/
        : /refuses writes: .*The table '[^']*jm_full[^']*' is full/,
    );
    assertEquals(await gauges(), ["0", "1", "2"]);

    gate.refusing = false;
    // The refused records are retried after 1 s, 2 s, 4 s …
    // The clock moves only while no claim is on its way.
    const turn = async () => {
      if (gate.claiming === 0) await h.clock.advance(1000);
    };
    await h.until(async () => {
      if (!h.line(WRITTEN)) await turn();
      return h.line(WRITTEN);
    }, "the waiting run records to be written");
    for (let s = 2; s <= 3; s++) await h.run("tick", at(s), "success");
    // Cleared once a heartbeat is written too.
    await h.until(async () => {
      if (!readinessOf(daemon.vitals).database.ok) await turn();
      return readinessOf(daemon.vitals).database.ok;
    }, "the database to count as taking writes again");
    assertEquals(await gauges(), ["1", "0", "0"]);
    assert(daemon.vitals.databaseOnline, "a refusal is no outage");
  });

  Deno.test(`daemon[${backend}]: a refused heartbeat alone is said, and a heartbeat written clears it`, async () => {
    const db = await freshDatabase(backend);
    const error = await refusal(db);
    const gate = { refusing: false };
    await using h = await DaemonHarness.create(db, {
      store: refusingWrites(db, gate, error),
    });
    // No job: nothing but heartbeats writes.
    const daemon = await h.start();
    gate.refusing = true;
    await h.until(async () => {
      if (daemon.vitals.databaseWritesRefused === null) await h.clock.advance(1000);
      return daemon.vitals.databaseWritesRefused !== null;
    }, "a refused heartbeat to be said");
    assertMatch(
      readinessOf(daemon.vitals).database.detail,
      /^the database refuses writes: .*; jobs keep firing, and 0 run records wait in memory/,
    );
    gate.refusing = false;
    await h.until(async () => {
      if (daemon.vitals.databaseWritesRefused !== null) await h.clock.advance(1000);
      return daemon.vitals.databaseWritesRefused === null;
    }, `a heartbeat to be written (still: ${daemon.vitals.databaseWritesRefused})`);
    assertEquals(readinessOf(daemon.vitals).database, { ok: true, detail: "reachable" });
  });
}

mysqlTest(
  "daemon[mysql]: a user that lacks a privilege on the tables is said to refuse writes, naming the GRANT; a heartbeat written clears it",
  async () => {
    const db = await freshDatabase("mysql");
    const error = explainMysqlError(await mysqlDenied(db), db.target as MysqlTarget);
    const gate = { refusing: false };
    await using h = await DaemonHarness.create(db, { store: refusingWrites(db, gate, error) });
    const daemon = await h.start();
    gate.refusing = true;
    const readiness = await h.databaseNotOk("the refused heartbeat to be said");
    assertEquals(readyState(readiness), "degraded");
    assertMatch(
      readiness.database.detail,
      /^the database refuses writes: .*INSERT command denied to user .*; user '[^']+' needs SELECT, INSERT, UPDATE, DELETE on jobsmanager's database.*GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON /,
    );
    assert(daemon.vitals.databaseOnline, "a refusal is no outage");
    gate.refusing = false;
    await h.until(async () => {
      if (daemon.vitals.databaseWritesRefused !== null) await h.clock.advance(1000);
      return daemon.vitals.databaseWritesRefused === null;
    }, `a heartbeat to be written (still: ${daemon.vitals.databaseWritesRefused})`);
  },
);

/**
 * New runs (INSERTs into jm_runs) refuse with `error` while `gate.refusing`:
 * a full jm_runs on MySQL, where updates of its rows, heartbeats and reads go on.
 */
function refusingClaims(db: TestDatabase, gate: { refusing: boolean }, error: unknown) {
  const refused = () => gate.refusing ? Promise.reject(error) : null;
  return storeWith(db, {
    claimRuns: (s) => (...a: Parameters<Store["claimRuns"]>) => refused() ?? s.claimRuns(...a),
  });
}

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: while new runs are refused, neither a heartbeat nor a run's end written clears it; the refused records written do`, async () => {
    const db = await freshDatabase(backend);
    const error = await refusal(db);
    const gate = { refusing: false };
    await using h = await DaemonHarness.create(db, { store: refusingClaims(db, gate, error) });
    await h.job("tick", { schedule: { second: "*" } });
    // Claimed before the refusals, it ends while they last: its end is an update, written.
    await h.job("long", { schedule: { second: "1" } });
    const daemon = await h.start();
    await h.clock.set(at(1));
    (await h.started("tick", at(1))).finish();
    const long = await h.started("long", at(1));
    await h.run("tick", at(1), "success");
    gate.refusing = true;
    await h.clock.set(at(2));
    (await h.started("tick", at(2))).finish();
    await h.until(
      () => daemon.vitals.databaseWritesRefused !== null,
      "the refused run write to be said",
    );
    // Each second a fire refused, a heartbeat now and then, and at 10 s the long run's end
    // written: it stays said while the refused records wait.
    const states: string[] = [];
    for (let s = 3; s <= 40; s++) {
      await h.clock.set(at(s));
      (await h.started("tick", at(s))).finish();
      if (s === 10) {
        long.finish();
        await h.run("long", at(1), "success");
      }
      states.push(daemon.vitals.databaseWritesRefused === null ? `${s}: taken` : `${s}: refused`);
    }
    assertEquals(states.filter((state) => state.endsWith("taken")), [], states.join(", "));
    gate.refusing = false;
    await h.until(async () => {
      if (daemon.vitals.databaseWritesRefused !== null) await h.clock.advance(1000);
      return daemon.vitals.databaseWritesRefused === null;
    }, `the run writes to be taken again (still: ${daemon.vitals.databaseWritesRefused})`);
    assertEquals(daemon.vitals.runRecordsWaiting, 0);
  });
}
