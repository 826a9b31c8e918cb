/**
 * A notification whose claim the database does not take at first (the
 * job's jm_notify_state row locked by another connection: a node frozen
 * with SIGSTOP in its claim), every backend, in-process on a fake clock:
 * it is tried again until written, then sent; at a stop, the claims left
 * unwritten are counted and named.
 */
import { DatabaseSync } from "node:sqlite";
import { assertEquals, assertMatch } from "./assert.ts";
import { BACKENDS, freshDatabase, rawQuery, type TestDatabase } from "./helpers.ts";
import { DaemonHarness, T0 } from "./daemon_harness.ts";
import { appendStdin, hookedWithinAMinute, outcomes, tempDir } from "./notify_fixtures.ts";
import { MysqlDriver } from "../src/store/mysql.ts";
import { SqlStore } from "../src/store/sql_store.ts";
import type { Store } from "../src/store/store.ts";

/**
 * The daemon's store: on MySQL, statements given up after 3 s (30 s as
 * served), so that a claim waiting for a row lock fails within the test.
 */
function storeOf(db: TestDatabase): () => Store {
  const target = db.target;
  return target.kind === "mysql"
    ? () => new SqlStore(new MysqlDriver(target, undefined, undefined, 3000))
    : () => db.open();
}

/**
 * Another connection's lock on job `jobId`'s notifications: SQLite, the
 * write lock of the whole file; MySQL, its jm_notify_state row FOR UPDATE,
 * in a transaction held open. `release` commits it.
 */
async function lockNotifyState(
  db: TestDatabase,
  jobId: string,
): Promise<{ release: () => Promise<void> }> {
  const target = db.target;
  if (target.kind === "sqlite") {
    const holder = new DatabaseSync(target.path);
    holder.exec("BEGIN IMMEDIATE");
    return {
      release: () => {
        if (holder.isTransaction) holder.exec("COMMIT");
        holder.close();
        return Promise.resolve();
      },
    };
  }
  const driver = new MysqlDriver(target);
  const locked = Promise.withResolvers<void>();
  const released = Promise.withResolvers<void>();
  const holding = driver.transaction(async (tx) => {
    await tx.all("SELECT job_id FROM jm_notify_state WHERE job_id = ? FOR UPDATE", [jobId]);
    locked.resolve();
    await released.promise;
  });
  holding.catch(locked.reject);
  await locked.promise;
  return {
    release: async () => {
      released.resolve();
      await holding;
      await driver.close();
    },
  };
}

/**
 * Job `fl`, its failures notified to a hook appending to `events`, its
 * notify state's row there (as after its first notification: a lock is on
 * it), the service started: its first fire, running.
 */
async function firstFire(h: DaemonHarness, db: TestDatabase, events: string) {
  await h.job("fl", {
    schedule: { second: "1", minute: "0", hour: "0" },
    on_failure: appendStdin(events),
  });
  await rawQuery(db, "INSERT INTO jm_notify_state (job_id) VALUES ('fl')");
  await h.start();
  await h.clock.set(T0 + 1000);
  return await h.started("fl", T0 + 1000);
}

for (const backend of BACKENDS) {
  Deno.test(`notify claim[${backend}]: a failure whose claim hits a lock held by another connection is sent once it is released`, async () => {
    await using dir = await tempDir();
    const events = `${dir.path}/events`;
    const db = await freshDatabase(backend);
    await using h = await DaemonHarness.create(db, { store: storeOf(db) });
    const run = await firstFire(h, db, events);
    const lock = await lockNotifyState(db, "fl");
    try {
      run.finish({ status: "failed", exitCode: 1 });
      // SQLite: the run's own record waits for the lock too, 10 s a try (sqlite.ts).
      const said = await h.until(
        () => h.line(/^job fl run \d+: notification not (claimed yet|sent)/),
        "the claim to fail on the lock",
        60_000,
      );
      assertMatch(said, /DatabaseError/);
    } finally {
      await lock.release();
    }
    const [got] = await hookedWithinAMinute(h, events, 1, "the failure's hook");
    assertEquals([got.event, got.status, got.job_id], ["failure", "failed", "fl"]);
    await h.until(
      async () => Object.values(await outcomes(h)).join() === "sent" || null,
      "the claim written and marked sent",
    );
    assertMatch(h.line(/notification claimed at try/) ?? "", /^job fl run \d+: /);
  });
}

for (const backend of BACKENDS) {
  Deno.test(`notify claim[${backend}]: a claim still not taken when the service stops is counted and named`, async () => {
    await using dir = await tempDir();
    const db = await freshDatabase(backend);
    await using h = await DaemonHarness.create(db, { store: storeOf(db) });
    const run = await firstFire(h, db, `${dir.path}/events`);
    const lock = await lockNotifyState(db, "fl");
    try {
      run.finish({ status: "failed", exitCode: 1 });
      await h.until(
        () => h.line(/^job fl run \d+: notification not claimed yet/),
        "the claim to fail on the lock",
        60_000,
      );
      await h.stop();
      await h.until(
        async () => {
          if (!h.ended) await h.clock.advance(1000);
          return h.ended;
        },
        "the service to stop",
        60_000,
      );
    } finally {
      await lock.release();
    }
    assertMatch(
      h.line(/could not be claimed before exit/) ?? "(no such line)",
      /^1 notifications could not be claimed before exit \(the database did not take their claims in jm_notifications\): job fl run \d+; they are not sent$/,
    );
    assertEquals(Object.keys(await outcomes(h)).length, 0);
  });
}
