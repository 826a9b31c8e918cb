/**
 * Housekeeping's retention on its own, with a fake store and the fake
 * clock: when each table is pruned, with which cutoff, in batches of what
 * size, and that nothing is pruned while the database is away. What the
 * deletes keep is the store contract's (store_logs_test.ts,
 * store_markers_test.ts); a real service pruning is in observe_test.ts.
 */
import { assertEquals } from "./assert.ts";
import { FakeClock, settle } from "./fake_clock.ts";
import { DbHealth } from "../src/daemon/db_health.ts";
import { Housekeeping, type HousekeepingOptions } from "../src/daemon/housekeeping.ts";
import { captureLogs } from "./helpers.ts";

const T0 = 1_800_000_000_000;
const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
/** The first pruning, after the start. */
const FIRST_MS = 5_000;
const BATCH = 1000;
/** Reload markers a batch: each may hold 2 MiB of snapshots. */
const MARKER_BATCH = 100;
const PAUSE_MS = 50;
const PROBE_MS = 60_000;

type Table = "jm_syslog" | "jm_runs" | "jm_notifications" | "jm_update_info";

/** The pruning calls of a service, as `table before limit`, over tables holding `rows` to delete. */
class FakeStore implements Pick<HousekeepingOptions["store"], "pruneOlderThan" | "pruneMarkers"> {
  down = false;
  readonly calls: string[] = [];
  readonly rows: Partial<Record<Table, number>> = {};

  ping(): Promise<void> {
    return this.down
      ? Promise.reject(new Error("connect ECONNREFUSED 127.0.0.1:3306"))
      : Promise.resolve();
  }

  pruneOlderThan(
    table: "jm_syslog" | "jm_runs" | "jm_notifications",
    before: number,
    limit: number,
  ): Promise<number> {
    return this.prune(table, before, limit);
  }

  pruneMarkers(before: number, limit: number): Promise<number> {
    return this.prune("jm_update_info", before, limit);
  }

  private prune(table: Table, before: number, limit: number): Promise<number> {
    if (this.down) return this.ping().then(() => 0);
    this.calls.push(`${table} ${before} ${limit}`);
    const deleted = Math.min(limit, this.rows[table] ?? 0);
    this.rows[table] = (this.rows[table] ?? 0) - deleted;
    return Promise.resolve(deleted);
  }
}

function setup(days: { log?: number; run?: number; change?: number } = {}) {
  const store = new FakeStore();
  const clock = new FakeClock(T0);
  // Probes every minute, whatever the attempt.
  const health = new DbHealth(store, clock, () => PROBE_MS);
  const housekeeping = new Housekeeping({
    store,
    clock,
    health,
    keepLogDays: days.log ?? 30,
    keepRunDays: days.run ?? 90,
    keepChangeDays: days.change ?? 90,
  });
  return {
    store,
    clock,
    health,
    housekeeping,
    /** The calls on `table` since the last look, each `before limit`. */
    callsOn(table: Table): string[] {
      const mine = store.calls.filter((c) => c.startsWith(`${table} `));
      store.calls.length = 0;
      return mine.map((c) => c.slice(table.length + 1));
    },
    async [Symbol.asyncDispose]() {
      health.close();
      await housekeeping.stop(1000);
    },
  };
}

/** Move the fake clock on by `ms`, stopping at each wake-up on the way, so each batch and its pause run. */
async function advance(clock: FakeClock, ms: number): Promise<void> {
  const end = clock.now() + ms;
  do {
    await clock.set(Math.min(end, clock.wakeUps[0] ?? end));
    await settle();
  } while (clock.now() < end);
}

Deno.test("housekeeping: applied reload markers past changes.keep_days go at the first pruning, 100 a batch with a pause between, then hourly", async () => {
  await using logs = await captureLogs("info");
  await using h = setup({ change: 7 });
  h.store.rows.jm_update_info = 250;
  h.housekeeping.start();
  await advance(h.clock, FIRST_MS - PAUSE_MS);
  assertEquals(h.callsOn("jm_update_info"), [], "nothing before the first pruning");
  await advance(h.clock, PAUSE_MS);
  const first = T0 + FIRST_MS - 7 * DAY_MS;
  // One batch; the next waits for its pause.
  assertEquals(h.callsOn("jm_update_info"), [`${first} ${MARKER_BATCH}`]);
  await advance(h.clock, 2 * PAUSE_MS);
  assertEquals(h.callsOn("jm_update_info"), [
    `${first} ${MARKER_BATCH}`,
    `${first} ${MARKER_BATCH}`,
  ]);
  assertEquals(h.store.rows.jm_update_info, 0);
  assertEquals(
    logs.messages().filter((m) => m.includes("jm_update_info")),
    ["deleted 250 rows older than 7 days from jm_update_info"],
  );
  // The next turn an hour after this one ended, after its two pauses.
  await advance(h.clock, HOUR_MS);
  assertEquals(h.callsOn("jm_update_info"), [`${first + 2 * PAUSE_MS + HOUR_MS} ${MARKER_BATCH}`]);
});

Deno.test("housekeeping: changes.keep_days 0 keeps every reload marker, and the other tables are pruned as before", async () => {
  await using h = setup({ change: 0 });
  h.store.rows.jm_update_info = 10;
  h.housekeeping.start();
  await advance(h.clock, FIRST_MS);
  assertEquals(h.store.calls, [
    `jm_syslog ${T0 + FIRST_MS - 30 * DAY_MS} ${BATCH}`,
    `jm_runs ${T0 + FIRST_MS - 90 * DAY_MS} ${BATCH}`,
    `jm_notifications ${T0 + FIRST_MS - 90 * DAY_MS} ${BATCH}`,
  ]);
  assertEquals(h.store.rows.jm_update_info, 10);
});

Deno.test("housekeeping: while the database is away no marker is pruned; a batch that failed ends the turn, and the next hour after it is back goes on", async () => {
  await using _logs = await captureLogs("fatal");
  await using h = setup({ change: 1 });
  h.store.rows.jm_update_info = 300;
  h.housekeeping.start();
  await advance(h.clock, FIRST_MS);
  assertEquals(h.callsOn("jm_update_info").length, 1);
  // Gone during the pause: the next batch fails and the database counts as away.
  h.store.down = true;
  await advance(h.clock, PAUSE_MS);
  assertEquals(h.health.online, false);
  // The next turn finds it away: skipped, not tried.
  await advance(h.clock, HOUR_MS);
  assertEquals(h.callsOn("jm_update_info"), []);
  h.store.down = false;
  await advance(h.clock, PROBE_MS);
  assertEquals(h.health.online, true);
  assertEquals(h.callsOn("jm_update_info"), [], "pruning waits for its hour");
  await advance(h.clock, HOUR_MS);
  // Its turns go on an hour apart from the one whose batch failed.
  const before = T0 + FIRST_MS + PAUSE_MS + 2 * HOUR_MS - DAY_MS;
  assertEquals(h.callsOn("jm_update_info"), Array(3).fill(`${before} ${MARKER_BATCH}`));
  assertEquals(h.store.rows.jm_update_info, 0);
});
