/**
 * Database health on its own, with a fake clock and real stores whose
 * driver fails: a closed SQLite store, and MariaDB behind a proxy that the
 * test cuts and restores. Offline once, logged once; probes back off from
 * 1 s to 30 s; back once the ping and the recovery work succeed.
 */
import { assert, assertEquals } from "./assert.ts";
import { DbHealth } from "../src/daemon/db_health.ts";
import { DatabaseError } from "../src/errors.ts";
import { captureLogs, freshDatabase, MYSQL_URL } from "./helpers.ts";
import { FakeClock } from "./fake_clock.ts";
import { T0, throughProxy, until } from "./daemon_harness.ts";
import { proxyFor } from "./tcp_proxy.ts";

const UNREACHABLE = /^the database is unreachable/;
const STILL = /^still unreachable \(.*\); next attempt in (\d+) s$/;
const BACK = /^the database is back after (\d+) s$/;

const count = (messages: string[], pattern: RegExp) =>
  messages.filter((m) => pattern.test(m)).length;

Deno.test("health: a refused statement is logged, and the database stays online", async () => {
  await using log = await captureLogs("debug");
  await using db = await freshDatabase("sqlite");
  const store = db.open();
  const health = new DbHealth(store, new FakeClock(T0));
  health.failed(new DatabaseError("sqlite: no such table: jm_runs", { unreachable: false }));
  assert(health.online);
  assertEquals(log.messages(), [
    "the database refused a statement: sqlite: no such table: jm_runs",
  ]);
  health.close();
  await store.close();
});

Deno.test("health: offline once, logged once; probes back off from 1 s to 30 s", async () => {
  await using log = await captureLogs("debug");
  await using db = await freshDatabase("sqlite");
  const store = db.open();
  await store.close();
  const clock = new FakeClock(T0);
  const health = new DbHealth(store, clock);
  // Consumers report the failures they see: a closed store's real error.
  const error = await store.ping().then(() => null, (e) => e);
  assert(error !== null, "a closed store answered");
  for (let i = 0; i < 3; i++) health.failed(error);
  assert(!health.online);
  assertEquals(count(log.messages(), UNREACHABLE), 1);
  const waits: number[] = [];
  for (let attempt = 1; attempt <= 7; attempt++) {
    await clock.advance(waits.at(-1) ?? 1000);
    await until(
      () => count(log.messages(), STILL) === attempt,
      `failed probe ${attempt}`,
      () => log.messages().join("\n"),
    );
    waits.push(
      Number(log.messages().filter((m) => STILL.test(m))[attempt - 1].match(STILL)![1]) * 1000,
    );
  }
  assertEquals(waits, [2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
  assertEquals(count(log.messages(), UNREACHABLE), 1);
  health.close();
  assertEquals(clock.wakeUps, [], "a closed health still probes");
});

Deno.test({
  name: "health[mysql]: back once the ping and the recovery work succeed, logged once",
  ignore: MYSQL_URL === "",
  async fn() {
    await using log = await captureLogs("debug");
    await using db = await freshDatabase("mysql");
    await using proxy = proxyFor(db);
    const store = throughProxy(db, proxy)();
    const clock = new FakeClock(T0);
    const health = new DbHealth(store, clock);
    let recoveries = 0;
    let recoveryFails = true;
    health.onRecovery(() => {
      recoveries++;
      return recoveryFails
        ? store.ping().then(() => Promise.reject(new Error("reset")))
        : store.ping();
    });
    await store.ping();
    proxy.cut();
    health.failed(await store.ping().then(() => null, (e) => e));
    assert(!health.online);
    proxy.restore();
    // The ping answers, but the recovery work fails: still offline, probing on.
    await clock.advance(1000);
    await until(() => recoveries === 1, "the first recovery", () => log.messages().join("\n"));
    await until(
      () => count(log.messages(), STILL) === 1,
      "a failed probe",
      () => log.messages().join("\n"),
    );
    assert(!health.online);
    recoveryFails = false;
    await clock.advance(2000);
    await until(() => health.online, "the database to be back", () => log.messages().join("\n"));
    assertEquals(recoveries, 2);
    const messages = log.messages();
    assertEquals(
      [count(messages, UNREACHABLE), count(messages, BACK)],
      [1, 1],
      messages.join("\n"),
    );
    assertEquals(messages.find((m) => BACK.test(m)), "the database is back after 3 s");
    health.close();
    await store.close();
  },
});

Deno.test("health: an outage through which the clock is stepped back lasts no less than nothing", async () => {
  await using db = await freshDatabase("sqlite");
  const store = db.open();
  await store.close();
  const clock = new FakeClock(T0);
  const health = new DbHealth(store, clock);
  health.failed(new DatabaseError("sqlite: closed"));
  await clock.advance(5000);
  assertEquals([health.currentOutageMs, health.outageMs], [5000, 5000]);
  // NTP, back with the network, steps the clock 20 s back.
  await clock.stepBack(20_000);
  assertEquals([health.currentOutageMs, health.outageMs], [0, 0]);
  health.close();
});
