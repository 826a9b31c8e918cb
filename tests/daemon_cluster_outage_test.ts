/**
 * The first node back from a database outage the whole cluster went
 * through: every other heartbeat is old, since no node could write one.
 * The others were live when it went away, and may be reconnecting as it
 * did: they keep their share till they had time to, rather than this node
 * taking every job for a moment and saying they are no longer live. That
 * grace is given once for a node's silence: a node whose every look at the
 * nodes is slow (each counts as a return) does not renew it, or a dead
 * node would keep its share, unfired, for as long as the looks stay slow.
 */
import { assertEquals, assertMatch } from "./assert.ts";
import { ClusterHarness, type HarnessOptions, storeWith, T0 } from "./daemon_harness.ts";
import { BACKENDS, freshDatabase, type TestDatabase } from "./helpers.ts";
import { buildJob } from "../src/domain/job.ts";
import type { Store } from "../src/store/store.ts";

/** Nodes honour the assignment they had before a change for 2 × 60 s + 1 s: past it. */
const SETTLED_MS = 130_000;
const JOBS = Array.from({ length: 10 }, (_, i) => `j${i}`);
const UNREACHABLE = /^the database is unreachable/;
const BACK = /^the database is back after/;
const DECLARED = /^node n2 sent no heartbeat for \d+ s \(database clock\) and is declared dead/;

/** How slow a node's looks at the nodes are (see `sluggish`), and how many it made. */
interface Slowness {
  /** How long each look takes from now on, on the database's clock and this machine's alike. */
  stepMs: number;
  /** How far those clocks went beyond the real ones in the slow looks so far. */
  shift: number;
  looks: number;
}

/** A store on `db` that cannot reach the database while `link.down`, and counts its looks at the nodes. */
function cuttable(db: TestDatabase, link: { down: boolean; looks: number }): () => Store {
  return () => {
    const store = db.open();
    const away =
      <A extends unknown[], R>(method: (...args: A) => Promise<R>) =>
      async (...args: A): Promise<R> => {
        if (link.down) throw new Error("connect ECONNREFUSED 127.0.0.1:3306");
        return await method.apply(store, args);
      };
    store.ping = away(store.ping);
    store.databaseNow = away(store.databaseNow);
    store.saveNode = away(store.saveNode);
    const nodesAndNow = away(store.nodesAndNow);
    store.nodesAndNow = async () => {
      const found = await nodesAndNow();
      link.looks++;
      return found;
    };
    return store;
  };
}

/**
 * A node whose looks at the nodes each take `slow.stepMs`: its machine's
 * clocks (wall and monotonic) and the database's go on that much during
 * each, as they would while a sluggish database answers, and no real time
 * is spent waiting. Its scheduler's clock is the test's, as for any node.
 */
function sluggish(db: TestDatabase, slow: Slowness): HarnessOptions {
  return {
    wallClock: () => Date.now() + slow.shift,
    monotonic: () => performance.now() + slow.shift,
    store: storeWith(db, {
      nodesAndNow: (target) => async () => {
        // The machine's clock is read before the look and after it: the look is seen to take stepMs.
        slow.shift += slow.stepMs;
        const found = await target.nodesAndNow();
        slow.looks++;
        return { ...found, databaseNow: found.databaseNow + slow.shift };
      },
      databaseNow: (target) => async () => await target.databaseNow() + slow.shift,
    }),
  };
}

/**
 * n1 (given `n1`) and n2 sharing JOBS, every second, settled: each fired
 * its share at `from`.
 */
async function settledPair(
  db: TestDatabase,
  n1: HarnessOptions,
): Promise<{ c: ClusterHarness; from: number }> {
  const c = await ClusterHarness.create(db, ["n1", "n2"], (id) => id === "n1" ? n1 : {});
  try {
    for (const node of c.nodes) node.runner.endAll();
    await c.start();
    await c.store.changeJobs(() => ({
      put: JOBS.map((id) => buildJob(id, { command: "true", schedule: { second: "*" } }, null, T0)),
      remove: [],
    }));
    await c.load(JOBS.length);
    const from = c.now() + SETTLED_MS;
    await c.set(from);
    await c.until(
      async () => (await c.runs()).filter((r) => r.scheduled_at === from).length === JOBS.length,
      "every job's fire at the settled second",
    );
    return { c, from };
  } catch (error) {
    await c[Symbol.asyncDispose]();
    throw error;
  }
}

for (const backend of BACKENDS) {
  Deno.test(`daemon cluster[${backend}]: the first node back after an outage of the whole cluster leaves the others their share while they may be reconnecting`, async () => {
    const db = await freshDatabase(backend);
    const link = { down: false, looks: 0 };
    const { c: cluster, from } = await settledPair(db, { store: cuttable(db, link) });
    await using c = cluster;
    const n1 = c.node("n1");
    const owned = async () =>
      new Map((await c.store.nodesAndNow()).nodes.map((n) => [n.id, n.jobs_owned]));
    const shares = await owned();

    // The database goes away for both; n2, frozen, stands for a node still reconnecting.
    c.freeze("n2");
    link.down = true;
    await c.set(from + 1000);
    await c.until(() => n1.line(UNREACHABLE), "n1 to find the database away");
    // A long outage: both last heartbeats are older than 3 intervals when it ends.
    await c.age("n1");
    await c.age("n2");
    link.down = false;
    await c.until(async () => {
      if (n1.line(BACK)) return true;
      await c.set(c.now() + 1000);
      return false;
    }, "n1 to find the database back");
    const looks = link.looks;
    await c.until(async () => {
      if (link.looks >= looks + 3) return true;
      await c.set(c.now() + 1000);
      return false;
    }, "n1 to look at the nodes twice since it is back");
    assertEquals(n1.line(/^1 live nodes/), undefined, await c.describe());
    assertMatch(
      n1.line(/^node n2 has sent no heartbeat since before/)!,
      /^node n2 has sent no heartbeat since before this node came back \(an outage, or a stall, silences every node\): it keeps its share of the jobs for \d+ s more, time to reconnect as this node did; still silent then, it is declared dead and its jobs move$/,
    );
    assertEquals((await owned()).get("n1"), shares.get("n1"), "n1 fires its share only");

    // n2 reconnects and beats: nothing moved, nothing to move back.
    await c.thaw("n2");
    const n2Beat = await c.store.databaseNow();
    await c.until(async () => {
      const row = (await c.store.nodesAndNow()).nodes.find((n) => n.id === "n2")!;
      if (row.db_heartbeat_at! >= n2Beat) return true;
      await c.set(c.now() + 1000);
      return false;
    }, "n2 to beat again");
    const after = link.looks;
    await c.until(async () => {
      if (link.looks >= after + 2) return true;
      await c.set(c.now() + 1000);
      return false;
    }, "n1 to look at the nodes since n2 beat");
    assertEquals(
      n1.lines.filter((l) =>
        /: \d+ live nodes|no longer live|was declared dead|and is declared dead/.test(l)
      )
        .slice(1),
      [],
      "n1 saw 2 live nodes throughout",
    );
  });
}

for (const backend of BACKENDS) {
  Deno.test(`daemon cluster[${backend}]: a node whose every look at the nodes is slower than two heartbeats gives a dead node one grace, not one at each look: its jobs move to the live node once it is over`, async () => {
    const db = await freshDatabase(backend);
    const slow: Slowness = { stepMs: 0, shift: 0, looks: 0 };
    const { c: cluster } = await settledPair(db, sluggish(db, slow));
    await using c = cluster;
    const n1 = c.node("n1");
    const heartbeatMs = n1.settings["jobsmanager.heartbeat_interval"] * 1000;

    // From now on each look of n1 takes two heartbeats and a second: each counts as a return.
    slow.stepMs = 2 * heartbeatMs + 1000;
    // n2 dies (killed: it never beats again), its last heartbeat old by n1's next look. Its
    // grace, 3 heartbeats and 30 s from that look, is over by the third: 8 are plenty.
    c.freeze("n2");
    await c.age("n2");
    const looks = slow.looks;
    await c.until(async () => {
      if (n1.line(DECLARED) || slow.looks >= looks + 8) return true;
      await c.set(c.now() + 1000);
      return false;
    }, "n1 to declare n2 dead, or to look at the nodes 8 times");
    const keeps = n1.lines.filter((l) => l.includes("node n2 has sent no heartbeat since before"));
    assertMatch(
      n1.line(DECLARED) ??
        `n2 not declared dead after ${
          slow.looks - looks
        } looks, each ${slow.stepMs} ms long; n1 said:\n${keeps.join("\n")}\n${await c.describe()}`,
      /^node n2 sent no heartbeat for \d+ s \(database clock\) and is declared dead: \d+ of its runs marked lost; its jobs move to the live nodes$/,
    );
    assertMatch(
      keeps.join("\n"),
      /^cluster: node n2 has sent no heartbeat since before this node came back \(an outage, or a stall, silences every node\): it keeps its share of the jobs for 210 s more, time to reconnect as this node did; still silent then, it is declared dead and its jobs move$/,
      "n2's grace, 3 heartbeats and 30 s, said once",
    );

    // n2's jobs fire on n1.
    await c.until(() => n1.line(/^1 live nodes: n1$/), "n1 to see itself the only live node");
    const at = c.now() + 1000;
    await c.set(at);
    const fired = await c.until(async () => {
      const rows = (await c.runs()).filter((r) => r.scheduled_at === at);
      return rows.length === JOBS.length ? rows : null;
    }, `every job's fire at T0+${at - T0}`);
    assertEquals(
      fired.filter((r) => r.node_id !== "n1").map((r) => [r.job_id, r.node_id, r.status]),
      [],
      "every job fired on n1",
    );
  });
}
