/** The store contract of NodeStore (store.ts): saveNode, listNodes. */
import { assertEquals } from "./assert.ts";
import { contract, fire, node } from "./store_contract.ts";

contract("saveNode", "a new node reads back every field as written", async ({ store }) => {
  const full = node("a", {
    host: "host.example.org",
    pid: 4242,
    version: "1.2.3",
    started_at: 1_700_000_000_000,
    heartbeat_at: 1_700_000_005_000,
    applied_marker: 17,
    jobs_loaded: 12,
    last_reload_at: 1_700_000_004_000,
    last_reload_ms: 35,
    stopped_at: 1_700_000_006_000,
    timezone: "America/New_York",
  });
  await store.saveNode(full);
  assertEquals(await store.listNodes(), [full]);
});

contract("saveNode", "saving the same id again replaces every column", async ({ store }) => {
  await store.saveNode(node("a", {
    heartbeat_at: 5000,
    applied_marker: 3,
    jobs_loaded: 7,
    last_reload_at: 4000,
    last_reload_ms: 12,
    stopped_at: 6000,
    timezone: "UTC",
  }));
  const restarted = node("a", { pid: 11, started_at: 7000, heartbeat_at: 7000 });
  await store.saveNode(restarted);
  assertEquals(await store.listNodes(), [restarted]);
});

contract(
  "saveNode",
  "a node that reports no zone reads back with timezone null",
  async ({ store }) => {
    await store.saveNode(node("a", { timezone: null }));
    assertEquals((await store.listNodes()).map((n) => n.timezone), [null]);
  },
);

contract("listNodes", "nothing when no service ever ran", async ({ store }) => {
  assertEquals(await store.listNodes(), []);
});

contract("listNodes", "every node, most recent heartbeat first", async ({ store }) => {
  await store.saveNode(node("old", { heartbeat_at: 1000 }));
  await store.saveNode(node("new", { heartbeat_at: 3000 }));
  await store.saveNode(node("mid", { heartbeat_at: 2000 }));
  assertEquals((await store.listNodes()).map((n) => n.id), ["new", "mid", "old"]);
});

contract(
  "declareDead",
  "returns the ids of the runs it marked lost, for the declaring node to retry",
  async ({ store }) => {
    await store.saveNode(node("gone", { db_heartbeat_at: 5000 }));
    const [running, , queued] = await store.claimRuns([
      fire("a", 1000, { node_id: "gone" }),
      fire("b", 1000, { node_id: "live" }),
      fire("c", 1000, { node_id: "gone", status: "queued" }),
      fire("d", 2000, { node_id: "gone", status: "success" }),
    ]);
    const declared = await store.declareDead("gone", 5000, "live");
    assertEquals(
      [declared?.lost, declared?.runIds.sort((x, y) => x - y)],
      [2, [running!, queued!]],
    );
    assertEquals((await store.getRun(running!))?.status, "lost");
    assertEquals(await store.declareDead("gone", 5000, "live"), null);
  },
);
