/**
 * A node declared dead learns it even when its first look at the nodes
 * after the declaration fails (a read refused, a timeout) and the heartbeat
 * written after that look goes through: the heartbeat, its clock read after
 * the declaration, leaves a declaration its node has not read (store.ts
 * `saveNode`), so the next look finds it, and the node acts on it (its
 * runs were marked lost, its jobs moved) before it is live again. Erased, the
 * next look found a clean row, and the node never knew.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { ClusterHarness, DaemonHarness, NODE_ID, storeWith } from "./daemon_harness.ts";
import { BACKENDS, freshDatabase } from "./helpers.ts";
import { DatabaseError } from "../src/errors.ts";
import type { Node } from "../src/domain/node.ts";
import { node } from "./store_contract.ts";

const FAULTS: [string, () => Error][] = [
  // The database answers and refuses it: the service stays online.
  [
    "a read refused",
    () => new DatabaseError("SELECT command denied to user 'jm'", { unreachable: false }),
  ],
  // No answer in time: the database counts as away until a ping gets through.
  ["a read timed out", () => new DatabaseError("Query read timeout", { unanswered: true })],
];

for (const backend of BACKENDS) {
  for (const [fault, error] of FAULTS) {
    Deno.test(`daemon cluster[${backend}]: a node declared dead whose next look fails (${fault}) and whose heartbeat then goes through learns it at the look after`, async () => {
      const db = await freshDatabase(backend);
      // n2's looks and heartbeats, in order, once the fault is armed.
      const n2 = { failLooks: 0, events: [] as string[] };
      await using c = await ClusterHarness.create(db, ["n1", "n2"], (id) =>
        id !== "n2" ? {} : {
          store: storeWith(db, {
            nodesAndNow: (target) => async () => {
              if (n2.failLooks > 0) {
                n2.failLooks--;
                n2.events.push("look failed");
                throw error();
              }
              const found = await target.nodesAndNow();
              n2.events.push("look");
              return found;
            },
            saveNode: (target) => async (...args) => {
              await target.saveNode(...args);
              n2.events.push("beat");
            },
          }),
        });
      await c.start();
      const rowOf = async (id: string): Promise<Node> =>
        (await c.store.nodesAndNow()).nodes.find((n) => n.id === id)!;

      // n2 pauses; n1 declares it dead.
      c.freeze("n2");
      await c.age("n2");
      let at = c.now();
      const declared = await c.until(async () => {
        const row = await rowOf("n2");
        if (row.declared_dead_at == null) await c.set(at += 1000);
        return row.declared_dead_at;
      }, "n1 to declare n2 dead");
      // Past n2's next heartbeat: its first turn once it resumes beats.
      await c.set(at += 60_000);

      // It resumes; its look fails, and its heartbeat (the clock read then) goes through.
      n2.events.length = 0;
      n2.failLooks = 1;
      await c.thaw("n2");
      await c.until(() => n2.events.includes("beat"), "n2 to beat after its look");
      assertEquals(n2.events.slice(0, 2), ["look failed", "beat"], "n2's turn");
      const beaten = await rowOf("n2");
      assert(
        beaten.db_heartbeat_at! > declared,
        `n2's heartbeat (${beaten.db_heartbeat_at}) read after the declaration (${declared})`,
      );
      assertEquals(
        [beaten.declared_dead_at, beaten.declared_dead_by],
        [declared, "n1"],
        "the declaration n2 has not read, left by its heartbeat",
      );

      // Its next look finds it: it says so (and acts on it), and is live again.
      at = c.now();
      const said = await c.until(async () => {
        const line = c.node("n2").line(/^this node was declared dead/);
        if (line === undefined) await c.set(at += 1000);
        return line;
      }, "n2 to find it was declared dead");
      assertMatch(
        said,
        new RegExp(
          `^this node was declared dead by node n1 at ${new Date(declared).toISOString()}: `,
        ),
      );
      await c.until(async () => {
        if ((await rowOf("n2")).declared_dead_at === null) return true;
        await c.set(at += 1000);
        return false;
      }, "n2's heartbeat to clear the declaration it read");
      // n1, alone, looks again at its next heartbeat.
      await c.until(async () => {
        if (c.node("n1").count(/^2 live nodes: n1, n2$/) === 2) return true;
        await c.set(at += 1000);
        return false;
      }, "n1 to see n2 live again");
      assertEquals(c.node("n2").count(/^this node was declared dead/), 1, "said once");
    });
  }
}

for (const backend of BACKENDS) {
  Deno.test(`daemon cluster[${backend}]: a node started again under the id of one declared dead takes its row back, that death no news to it`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "jobsmanager.heartbeat_interval": 60 },
    });
    // Its previous life was declared dead by "other", live.
    const databaseNow = await h.store.databaseNow();
    await h.store.saveNode({
      ...node(NODE_ID),
      pid: 2 ** 22 + 1,
      db_heartbeat_at: databaseNow - 240_000,
      heartbeat_ms: 60_000,
      declared_dead_at: databaseNow - 60_000,
      declared_dead_by: "other",
    });
    await h.store.saveNode({
      ...node("other"),
      db_heartbeat_at: databaseNow,
      heartbeat_ms: 60_000,
    });
    await h.start();
    const own = async () => (await h.store.nodesAndNow()).nodes.find((n) => n.id === NODE_ID)!;
    // Heartbeats of this life, a look before each: the row stays its own.
    for (const step of [1, 2]) {
      const beat = (await own()).db_heartbeat_at;
      await h.clock.set(h.clock.now() + 61_000);
      await h.until(async () => (await own()).db_heartbeat_at !== beat, `heartbeat ${step}`);
      const row = await own();
      assertEquals([row.declared_dead_at, row.declared_dead_by], [null, null], "its row");
    }
    assertEquals(h.count(/^this node was declared dead/), 0, await h.describe());
  });
}
