/**
 * The store contract of NodeStore (store.ts): saveNode, nodesAndNow,
 * databaseNow, claimNode, declareDead.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { contract, fire, liveNode, node } from "./store_contract.ts";
import type { Node } from "../src/domain/node.ts";

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
    leaving_at: 1_700_000_005_500,
    boot_id: "0f4b3c1e-8a2d-4f6b-9c7e-5d1a2b3c4d5e",
    pid_ns: 4026531836,
  });
  await store.saveNode(full);
  assertEquals((await store.nodesAndNow()).nodes, [full]);
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
    leaving_at: 5500,
    share_basis: '{"v":1,"jobs":2,"digest":"00000001000000ff","over":["a"]}',
    boot_id: "0f4b3c1e-8a2d-4f6b-9c7e-5d1a2b3c4d5e",
    pid_ns: 4026531836,
  }));
  // A restart under the same id is not leaving, and shares from no basis yet; one where /proc
  // does not say leaves no boot or pid namespace of the one before.
  const restarted = node("a", { pid: 11, started_at: 7000, heartbeat_at: 7000 });
  await store.saveNode(restarted);
  assertEquals((await store.nodesAndNow()).nodes, [restarted]);
});

contract(
  "saveNode",
  "a node that reports no zone reads back with timezone null",
  async ({ store }) => {
    await store.saveNode(node("a", { timezone: null }));
    assertEquals((await store.nodesAndNow()).nodes.map((n) => n.timezone), [null]);
  },
);

contract("nodesAndNow", "nothing when no service ever ran", async ({ store }) => {
  assertEquals((await store.nodesAndNow()).nodes, []);
});

contract(
  "nodesAndNow",
  "the database's clock comes with the nodes, and without any",
  async ({ store }) => {
    const between = async () => {
      const before = await store.databaseNow();
      const { databaseNow } = await store.nodesAndNow();
      const after = await store.databaseNow();
      assert(
        before <= databaseNow && databaseNow <= after,
        `${before} <= ${databaseNow} <= ${after} (the database's clock, read around it)`,
      );
    };
    await between();
    await store.saveNode(node("a", { heartbeat_at: 1000 }));
    await store.saveNode(node("b", { heartbeat_at: 2000 }));
    await between();
  },
);

contract("nodesAndNow", "every node, most recent heartbeat first", async ({ store }) => {
  await store.saveNode(node("old", { heartbeat_at: 1000 }));
  await store.saveNode(node("new", { heartbeat_at: 3000 }));
  await store.saveNode(node("mid", { heartbeat_at: 2000 }));
  assertEquals((await store.nodesAndNow()).nodes.map((n) => n.id), ["new", "mid", "old"]);
});

contract(
  "saveNode",
  "a node's heartbeat leaves a declaration of its death the node has not read, and clears the one it read",
  async ({ store }) => {
    const declaration = async () => {
      const [row] = (await store.nodesAndNow()).nodes;
      return [row.db_heartbeat_at, row.declared_dead_at, row.declared_dead_by];
    };
    await store.saveNode(node("slow", { db_heartbeat_at: 5000 }), null);
    const declared = await store.declareDead("slow", 5000, "live");
    const at = declared!.at;
    // Its look failed (or came before the declaration): it read none, whatever its clock says.
    await store.saveNode(node("slow", { db_heartbeat_at: at + 1 }), null);
    assertEquals(await declaration(), [at + 1, at, "live"], "a heartbeat whose look found none");
    await store.saveNode(node("slow", { db_heartbeat_at: at + 2 }), at - 1);
    assertEquals(await declaration(), [at + 2, at, "live"], "one whose look found an older one");
    // Its look found this one: it takes its row back.
    await store.saveNode(node("slow", { db_heartbeat_at: at + 3 }), at);
    assertEquals(await declaration(), [at + 3, null, null], "one whose look found it");
    await store.saveNode(node("slow", { db_heartbeat_at: at + 4 }), at);
    assertEquals(await declaration(), [at + 4, null, null], "a row declared no more stays clean");
    // Not a heartbeat (a row written by hand, a test's): every column as given.
    await store.saveNode(node("slow", { declared_dead_at: 7, declared_dead_by: "x" }));
    assertEquals((await declaration()).slice(1), [7, "x"]);
    await store.saveNode(node("slow"));
    assertEquals((await declaration()).slice(1), [null, null]);
  },
);

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
    assertEquals(await store.declareDead("gone", 5000, "other"), null, "declared by another");
    // Sent again by the declaring node (the first answer lost): the same declaration.
    const again = await store.declareDead("gone", 5000, "live");
    assertEquals(
      [again?.at, again?.lost, again?.runIds.sort((x, y) => x - y)],
      [declared?.at, 2, [running!, queued!]],
    );
  },
);

contract(
  "databaseNow",
  "ms since the epoch by the database's clock, never going back",
  async ({ store }) => {
    const first = await store.databaseNow();
    const second = await store.databaseNow();
    assert(Number.isInteger(first), `an integer: ${first}`);
    // The database runs on this machine: its clock is this one's, give or take a minute.
    assert(Math.abs(first - Date.now()) < 60_000, `${first} is near ${Date.now()} (ms, UTC)`);
    assert(second >= first, `${second} is not before ${first}`);
  },
);

contract(
  "claimNode",
  "an id nobody holds: written with the database's clock, null returned, nobody asked",
  async ({ store }) => {
    const before = await store.databaseNow();
    const asked: string[] = [];
    const holder = await store.claimNode(node("a", { heartbeat_ms: 1000 }), (existing) => {
      asked.push(existing.id);
      return false;
    });
    const after = await store.databaseNow();
    assertEquals(holder, null);
    assertEquals(asked, []);
    const [row] = (await store.nodesAndNow()).nodes;
    assertEquals({ ...row, db_heartbeat_at: null }, node("a", { heartbeat_ms: 1000 }));
    assert(
      row.db_heartbeat_at! >= before && row.db_heartbeat_at! <= after,
      `db_heartbeat_at ${row.db_heartbeat_at} within [${before}, ${after}]`,
    );
  },
);

contract(
  "claimNode",
  "an id held: mayReplace is asked with the row and the database's clock; false keeps the row",
  async ({ store }) => {
    const held = node("a", { pid: 1, db_heartbeat_at: 5000, heartbeat_ms: 1000 });
    await store.saveNode(held);
    const asked: [Node, number][] = [];
    const holder = await store.claimNode(node("a", { pid: 2 }), (existing, now) => {
      asked.push([existing, now]);
      return false;
    });
    assertEquals(holder, held);
    assertEquals(asked.map(([n]) => n), [held]);
    assert(Math.abs(asked[0][1] - Date.now()) < 60_000, `the database's clock: ${asked[0][1]}`);
    assertEquals((await store.nodesAndNow()).nodes, [held]);
  },
);

contract(
  "claimNode",
  "an id held: true replaces the row and clears its dead mark",
  async ({ store }) => {
    await store.saveNode(
      node("a", { pid: 1, declared_dead_at: 5000, declared_dead_by: "b", heartbeat_ms: 1000 }),
    );
    assertEquals(
      await store.claimNode(node("a", { pid: 2, heartbeat_ms: 1000 }), () => true),
      null,
    );
    const [row] = (await store.nodesAndNow()).nodes;
    assertEquals([row.pid, row.declared_dead_at, row.declared_dead_by], [2, null, null]);
    assert(row.db_heartbeat_at !== null, "the heartbeat is the database's clock");
  },
);

contract(
  "declareDead",
  "marks the node dead by whom and its running and queued runs lost, naming it and when",
  async ({ store }) => {
    const a = await liveNode(store, "a");
    await liveNode(store, "b");
    const [running, queued, done, other] = await store.claimRuns([
      fire("j1", 1000, { node_id: "a" }),
      fire("j2", 1000, { node_id: "a", status: "queued" }),
      fire("j3", 1000, { node_id: "a", status: "success" }),
      fire("j4", 1000, { node_id: "b" }),
    ]);
    const declared = await store.declareDead("a", a.db_heartbeat_at!, "b");
    assert(declared !== null, "declared");
    assertEquals(declared.lost, 2);
    assert(declared.at >= a.db_heartbeat_at!, `declared at ${declared.at}, after the last beat`);
    const row = (await store.nodesAndNow()).nodes.find((n) => n.id === "a")!;
    assertEquals([row.declared_dead_at, row.declared_dead_by], [declared.at, "b"]);
    for (const id of [running, queued]) {
      const run = (await store.getRun(id!))!;
      assertEquals(
        [run.status, run.finished_at],
        ["lost", a.heartbeat_at],
        "ended at its last beat",
      );
      assertMatch(
        run.note!,
        new RegExp(
          `node a stopped sending heartbeats \\(last at ${
            new Date(a.db_heartbeat_at!).toISOString()
          }\\) and was declared dead at ${new Date(declared.at).toISOString()} by node b`,
        ),
      );
    }
    assertEquals((await store.getRun(done!))!.status, "success");
    assertEquals((await store.getRun(other!))!.status, "running");
  },
);

contract(
  "declareDead",
  "its lost runs end at its last heartbeat (its own clock), or at their start (or fire) when later",
  async ({ store }) => {
    await store.claimNode(node("a", { heartbeat_ms: 60_000, heartbeat_at: 5000 }), () => true);
    const a = (await store.nodesAndNow()).nodes.find((n) => n.id === "a")!;
    const ids = await store.claimRuns([
      fire("before", 1000, { node_id: "a", started_at: 1000 }),
      fire("after", 7000, { node_id: "a", started_at: 7500 }),
      fire("queued", 6000, { node_id: "a", status: "queued" }),
    ]);
    assert(await store.declareDead("a", a.db_heartbeat_at!, "b"), "declared");
    const runs = await Promise.all(ids.map((id) => store.getRun(id!)));
    assertEquals(runs.map((r) => [r?.job_id, r?.status, r?.finished_at]), [
      ["before", "lost", 5000],
      ["after", "lost", 7500],
      ["queued", "lost", 6000],
    ]);
  },
);

contract("declareDead", "only once: the second node to try gets null", async ({ store }) => {
  const a = await liveNode(store, "a");
  await store.claimRuns([fire("j1", 1000, { node_id: "a" })]);
  assert(await store.declareDead("a", a.db_heartbeat_at!, "b") !== null, "the first declares");
  assertEquals(await store.declareDead("a", a.db_heartbeat_at!, "c"), null);
  assertEquals((await store.nodesAndNow()).nodes[0].declared_dead_by, "b");
});

contract(
  "declareDead",
  "a node that beat since it was seen, or stopped cleanly, is not declared",
  async ({ store }) => {
    const a = await liveNode(store, "a");
    await store.saveNode({ ...a, db_heartbeat_at: a.db_heartbeat_at! + 1 });
    await store.saveNode(
      node("s", { stopped_at: 5000, db_heartbeat_at: 4000, heartbeat_ms: 1000 }),
    );
    const [run] = await store.claimRuns([fire("j1", 1000, { node_id: "a" })]);
    assertEquals(await store.declareDead("a", a.db_heartbeat_at!, "b"), null);
    assertEquals(await store.declareDead("s", 4000, "b"), null);
    assertEquals((await store.getRun(run!))!.status, "running");
    assert(
      (await store.nodesAndNow()).nodes.every((n) => n.declared_dead_at === null),
      "nobody dead",
    );
  },
);
