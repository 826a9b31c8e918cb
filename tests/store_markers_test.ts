/**
 * The store contract of MarkerStore (store.ts): insertMarker, latestMarkerId,
 * oldestPendingMarkerId, listMarkers, markApplied, pendingMarkers,
 * recordApplied, settleMarkers, pruneMarkers; and writtenElsewhere.
 */
import { assert, assertEquals } from "./assert.ts";
import {
  type Case,
  contract,
  countRows,
  fire,
  job,
  liveNode,
  manualRequest,
  node,
} from "./store_contract.ts";
import type { Store } from "../src/store/store.ts";
import { markerRows, markerTimesNullable, rawQuery } from "./helpers.ts";

contract(
  "insertMarker",
  "a pending marker with the snapshots given, ids rising",
  async ({ db, store }) => {
    const a = job("alpha");
    const first = await store.insertMarker([a], []);
    const second = await store.insertMarker([], [a]);
    assert(second > first, `ids rise: ${first} then ${second}`);
    assertEquals(
      (await markerRows(db)).map((
        m,
      ) => [m.id, m.updated, m.update_time, m.jobs_before_update, m.jobs_after_update]),
      [[first, false, null, [a], []], [second, false, null, [], [a]]],
    );
    const markers = await store.listMarkers(0, 10);
    assertEquals(markers.map((m) => [m.id, m.updated, m.update_time]), [
      [first, false, null],
      [second, false, null],
    ]);
    assert(markers.every((m) => m.insert_time !== ""), "insert_time is set");
  },
);

contract("insertMarker", "no job is written", async ({ db, store }) => {
  await store.insertMarker([], [job("alpha")]);
  assertEquals(await countRows(db, "jm_jobs"), 0);
});

contract("latestMarkerId", "0 when there is no marker", async ({ store }) => {
  assertEquals(await store.latestMarkerId(), 0);
});

contract("latestMarkerId", "the highest id, applied or not", async ({ store }) => {
  await store.insertMarker([], []);
  const last = await store.insertMarker([], []);
  assertEquals(await store.latestMarkerId(), last);
  await store.markApplied([last]);
  assertEquals(await store.latestMarkerId(), last);
});

contract("oldestPendingMarkerId", "null when there is no marker", async ({ store }) => {
  assertEquals(await store.oldestPendingMarkerId(), null);
});

contract("oldestPendingMarkerId", "null when every marker is applied", async ({ store }) => {
  const ids = [await store.insertMarker([], []), await store.insertMarker([], [])];
  await store.markApplied(ids);
  assertEquals(await store.oldestPendingMarkerId(), null);
});

contract(
  "oldestPendingMarkerId",
  "the lowest id not applied, past applied ones",
  async ({ store }) => {
    const [m1, m2, m3, m4] = [
      await store.insertMarker([], []),
      await store.insertMarker([], []),
      await store.insertMarker([], []),
      await store.insertMarker([], []),
    ];
    assertEquals(await store.oldestPendingMarkerId(), m1);
    await store.markApplied([m1, m3]);
    assertEquals(await store.oldestPendingMarkerId(), m2);
    await store.markApplied([m2]);
    assertEquals(await store.oldestPendingMarkerId(), m4);
  },
);

contract(
  "listMarkers",
  "markers after the given id, oldest first, at most limit",
  async ({ store }) => {
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await store.insertMarker([], []));
    assertEquals((await store.listMarkers(0, 100)).map((m) => m.id), ids);
    assertEquals((await store.listMarkers(ids[1], 2)).map((m) => m.id), [ids[2], ids[3]]);
    assertEquals((await store.listMarkers(ids[4], 100)).map((m) => m.id), []);
  },
);

contract(
  "listMarkers",
  "a marker written by hand with snapshots that are not JSON is listed (they are never read)",
  async ({ db, store }) => {
    await rawQuery(
      db,
      "INSERT INTO jm_update_info (jobs_before_update, jobs_after_update) VALUES ('reload please', '{')",
    );
    assertEquals((await store.listMarkers(0, 10)).map((m) => [m.id, m.updated]), [[1, false]]);
  },
);

contract("listMarkers", "applied markers are listed too, marked applied", async ({ store }) => {
  const first = await store.insertMarker([], []);
  const second = await store.insertMarker([], []);
  await store.markApplied([first]);
  const markers = await store.listMarkers(0, 10);
  assertEquals(markers.map((m) => [m.id, m.updated]), [[first, true], [second, false]]);
  assert(markers[0].update_time !== null, "an applied marker has its update_time");
});

contract(
  "markApplied",
  "exactly the given markers; those inserted meanwhile stay pending",
  async ({ store }) => {
    const first = await store.insertMarker([], []);
    const second = await store.insertMarker([], []);
    // A service read first and second; a third arrives before it marks them.
    const third = await store.insertMarker([], []);
    assertEquals(await store.markApplied([first, second]), 2);
    assertEquals(
      (await store.listMarkers(0, 10)).map((m) => [m.id, m.updated]),
      [[first, true], [second, true], [third, false]],
    );
  },
);

contract("markApplied", "counts only markers it changed", async ({ store }) => {
  const first = await store.insertMarker([], []);
  const second = await store.insertMarker([], []);
  assertEquals(await store.markApplied([first]), 1);
  assertEquals(await store.markApplied([first]), 0, "already applied");
  assertEquals(await store.markApplied([first, second, second + 100]), 1, "one of three");
  assertEquals(await store.pendingMarkers(), 0);
});

contract("markApplied", "an empty list changes nothing", async ({ store }) => {
  await store.insertMarker([], []);
  assertEquals(await store.markApplied([]), 0);
  assertEquals(await store.pendingMarkers(), 1);
});

contract("pendingMarkers", "0 when there is no marker", async ({ store }) => {
  assertEquals(await store.pendingMarkers(), 0);
});

contract("pendingMarkers", "counts the markers not applied yet", async ({ store }) => {
  const ids = [];
  for (let i = 0; i < 4; i++) ids.push(await store.insertMarker([], []));
  await store.changeJob("alpha", () => job("alpha"));
  assertEquals(await store.pendingMarkers(), 5);
  await store.markApplied([ids[0], ids[2]]);
  assertEquals(await store.pendingMarkers(), 3);
});

contract(
  "writtenElsewhere",
  "SQLite: after another connection's commit, not after its own; MySQL: always",
  async ({ backend, db, store }) => {
    const other = db.open();
    try {
      const answers = [await store.writtenElsewhere()];
      await store.insertMarker([], []);
      answers.push(await store.writtenElsewhere());
      await other.insertMarker([], []);
      answers.push(await store.writtenElsewhere(), await store.writtenElsewhere());
      assertEquals(
        answers,
        backend === "sqlite" ? [true, false, true, false] : [true, true, true, true],
        "first call, after its own write, after another's, asked again",
      );
    } finally {
      await other.close();
    }
  },
);

contract("pollState", "markers: the newest, and the oldest pending", async ({ store }) => {
  assertEquals(await store.pollState("me"), {
    latestMarker: 0,
    oldestPendingMarker: null,
    markerInserted: null,
    manualRuns: false,
    cancelRequests: false,
    hereRuns: false,
    nextDueRun: null,
  });
  const first = await store.insertMarker([], []);
  const second = await store.insertMarker([], []);
  let state = await store.pollState("me");
  assertEquals([state.latestMarker, state.oldestPendingMarker], [second, first]);
  await store.markApplied([first]);
  state = await store.pollState("me");
  assertEquals([state.latestMarker, state.oldestPendingMarker], [second, second]);
  await store.markApplied([second]);
  state = await store.pollState("me");
  assertEquals([state.latestMarker, state.oldestPendingMarker], [second, null]);
  // When a marker was inserted: what tells a marker of that id inserted again.
  const [listed] = await store.listMarkers(first - 1, 1);
  assertEquals((await store.pollState("me", first)).markerInserted, listed.insert_time);
  assertEquals((await store.pollState("me", second + 1)).markerInserted, null);
});

contract(
  "pollState",
  "a marker with no insert_time is there: its time reads as listMarkers gives it, not as a marker gone",
  async ({ db, store }) => {
    await markerTimesNullable(db);
    const id = await store.insertMarker([], []);
    await rawQuery(db, "UPDATE jm_update_info SET insert_time = NULL");
    const [listed] = await store.listMarkers(0, 10);
    assertEquals(listed.insert_time, "");
    assertEquals((await store.pollState("me", id)).markerInserted, "");
    assertEquals((await store.pollState("me", id + 1)).markerInserted, null);
  },
);

contract(
  "pollState",
  "runs: a request no service took; a cancel asked of this node's running or queued run",
  async ({ store }) => {
    const asked = { cancel_requested_at: 5000, cancel_requested_by: "ops@host" };
    const flags = async (node: string) => {
      const { manualRuns, cancelRequests } = await store.pollState(node);
      return { manualRuns, cancelRequests };
    };
    // What queuedManualRuns and cancelRequests leave out.
    await store.claimRuns([
      fire("a", 1000, { status: "queued" }),
      { ...manualRequest("a", 2000), node_id: "n1" },
      { ...manualRequest("c", 4000), status: "success" },
      fire("d", 1000, { status: "running", node_id: "other", started_at: 1000, ...asked }),
      fire("f", 1000, { status: "success", node_id: "me", finished_at: 2000, ...asked }),
      fire("g", 1000, { status: "running", node_id: "me", started_at: 1000 }),
    ]);
    assertEquals(await flags("me"), { manualRuns: false, cancelRequests: false });
    await store.claimRuns([manualRequest("b", 1000)]);
    assertEquals(await flags("me"), { manualRuns: true, cancelRequests: false });
    await store.claimRuns([fire("h", 1000, { status: "queued", node_id: "me", ...asked })]);
    assertEquals(await flags("me"), { manualRuns: true, cancelRequests: true });
    assertEquals(await flags("other"), { manualRuns: true, cancelRequests: true });
    assertEquals(await flags("third"), { manualRuns: true, cancelRequests: false });
  },
);

/** Which markers are applied (`updated = 1`), by id. */
async function updated(store: Store): Promise<Record<number, boolean>> {
  return Object.fromEntries((await store.listMarkers(0, 100)).map((m) => [m.id, m.updated]));
}

contract("recordApplied", "one row per marker and node, however often", async ({ db, store }) => {
  const m1 = await store.insertMarker([], []);
  const m2 = await store.insertMarker([], []);
  await store.recordApplied("a", [m1, m2]);
  await store.recordApplied("a", [m1]);
  await store.recordApplied("b", [m1]);
  await store.recordApplied("b", []);
  assertEquals(await countRows(db, "jm_marker_nodes"), 3);
  assertEquals(await countRows(db, "jm_marker_nodes", "node_id = 'b'"), 1);
});

contract(
  "settleMarkers",
  "a marker is applied once every live node applied it; the others stay pending",
  async ({ db, store }) => {
    await liveNode(store, "a");
    await liveNode(store, "b");
    const m1 = await store.insertMarker([], []);
    const m2 = await store.insertMarker([], []);
    await store.recordApplied("a", [m1, m2]);
    await store.recordApplied("b", [m1]);
    assertEquals(await store.settleMarkers(), 1);
    assertEquals(await updated(store), { [m1]: true, [m2]: false });
    // Who applied a settled marker is forgotten; the pending one's are kept.
    assertEquals(await countRows(db, "jm_marker_nodes", `marker_id = ${m1}`), 0);
    assertEquals(await countRows(db, "jm_marker_nodes", `marker_id = ${m2}`), 1);
    await store.recordApplied("b", [m2]);
    assertEquals(await store.settleMarkers(), 1);
    assertEquals(await updated(store), { [m1]: true, [m2]: true });
    assertEquals(await store.settleMarkers(), 0);
  },
);

/**
 * Empty jm_update_info as an operator does, its ids starting over: MySQL's
 * TRUNCATE; on SQLite, the table dropped and made again by migrate.
 */
async function emptyMarkers({ backend, db, store }: Case): Promise<void> {
  if (backend === "mysql") {
    await rawQuery(db, "TRUNCATE TABLE jm_update_info");
    return;
  }
  await rawQuery(db, "DROP TABLE jm_update_info");
  await store.migrate();
}

contract(
  "settleMarkers",
  "a marker inserted with the id of one emptied away does not inherit who applied that one",
  async (c) => {
    const { store } = c;
    await liveNode(store, "a");
    await liveNode(store, "b");
    const old = await store.insertMarker([], []);
    await store.recordApplied("b", [old]);
    await emptyMarkers(c);
    const fresh = await store.insertMarker([], []);
    assertEquals(fresh, old, "the ids started over");
    await store.recordApplied("a", [fresh]);
    assertEquals(await store.settleMarkers(), 0, "b has not applied the new marker");
    await store.recordApplied("b", [fresh]);
    assertEquals(await store.settleMarkers(), 1);
  },
);

contract(
  "settleMarkers",
  "a marker inserted by hand with a gone one's id: who applied that one is forgotten at the next settle, and a late apply of it is not recorded",
  async (c) => {
    const { db, store } = c;
    await liveNode(store, "a");
    await liveNode(store, "b");
    const old = await store.insertMarker([], []);
    await store.recordApplied("b", [old]);
    await emptyMarkers(c);
    // Any node's next settle (each settles after the reload that sees the table emptied).
    assertEquals(await store.settleMarkers(), 0);
    assertEquals(await countRows(db, "jm_marker_nodes"), 0);
    // b applied the old marker as it went, and says so only now.
    await store.recordApplied("b", [old]);
    assertEquals(await countRows(db, "jm_marker_nodes"), 0);
    // As the original JobsManager, or a DBA, inserts one.
    await rawQuery(
      db,
      "INSERT INTO jm_update_info (updated, jobs_before_update, jobs_after_update) VALUES (0, '[]', '[]')",
    );
    assertEquals(await store.latestMarkerId(), old, "the ids started over");
    await store.recordApplied("a", [old]);
    assertEquals(await store.settleMarkers(), 0, "b has not applied the new marker");
    await store.recordApplied("b", [old]);
    assertEquals(await store.settleMarkers(), 1);
  },
);

contract("settleMarkers", "a marker no node applied stays pending", async ({ store }) => {
  const m = await store.insertMarker([], []);
  assertEquals(await store.settleMarkers(), 0);
  await liveNode(store, "a");
  assertEquals(await store.settleMarkers(), 0);
  assertEquals(await updated(store), { [m]: false });
});

contract(
  "settleMarkers",
  "nodes that are gone do not hold a marker back: declared dead, late by 3 beats, stopping, stopped",
  async ({ store }) => {
    await liveNode(store, "a");
    const dead = await liveNode(store, "dead");
    const m = await store.insertMarker([], []);
    await store.recordApplied("a", [m]);
    const late = await liveNode(store, "late");
    const stopped = await liveNode(store, "stopped");
    const leaving = await liveNode(store, "leaving");
    assertEquals(await store.settleMarkers(), 0, "four live nodes have not applied it");
    // Stopping: it beats on while it ends its runs, but fires no more.
    await store.saveNode({ ...leaving, leaving_at: leaving.heartbeat_at });
    await store.declareDead("dead", dead.db_heartbeat_at!, "a");
    // Its last beat more than 3 intervals ago by the database's clock, not declared yet.
    await store.saveNode({ ...late, db_heartbeat_at: late.db_heartbeat_at! - 4 * 60_000 });
    await store.saveNode({ ...stopped, stopped_at: stopped.heartbeat_at });
    assertEquals(await store.settleMarkers(), 1);
    assertEquals(await updated(store), { [m]: true });
  },
);

contract(
  "pollState",
  "runs: when the first retry or follow-up run no service took is due",
  async ({ store }) => {
    const next = async () => (await store.pollState("me")).nextDueRun;
    await store.claimRuns([
      fire("a", 1000, { status: "queued", trigger: "retry", node_id: "taken" }),
      fire("b", 1000, { status: "success", trigger: "after" }),
      manualRequest("c", 1000),
    ]);
    assertEquals(await next(), null);
    await store.claimRuns([fire("d", 3000, { status: "queued", trigger: "retry" })]);
    assertEquals(await next(), 3000);
    await store.claimRuns([fire("e", 2000, { status: "queued", trigger: "after" })]);
    assertEquals(await next(), 2000);
  },
);

contract(
  "settleMarkers",
  "by the nodes live now: one that joined later holds a marker until it applied it too",
  async ({ store }) => {
    await liveNode(store, "a");
    const m = await store.insertMarker([], []);
    await store.recordApplied("a", [m]);
    // b starts after the marker: it applies the pending markers as it loads the jobs.
    await liveNode(store, "b");
    assertEquals(await store.settleMarkers(), 0);
    await store.recordApplied("b", [m]);
    assertEquals(await store.settleMarkers(), 1);
    assertEquals(await updated(store), { [m]: true });
  },
);

contract(
  "settleMarkers",
  "rows of services older than the cluster (no database heartbeat) hold nothing back",
  async ({ store }) => {
    await liveNode(store, "a");
    await store.saveNode(node("old", { heartbeat_at: Date.now() }));
    const m = await store.insertMarker([], []);
    await store.recordApplied("a", [m]);
    assertEquals(await store.settleMarkers(), 1);
  },
);

contract(
  "pollState",
  "runs: a job run --here running (node cli@HOST), not one that ended",
  async ({ store }) => {
    const [id] = await store.claimRuns([
      fire("a", 1000, {
        status: "running",
        trigger: "manual",
        node_id: "cli@box",
        started_at: 1000,
      }),
    ]);
    assertEquals((await store.pollState("me")).hereRuns, true);
    assertEquals((await store.activeRunsElsewhere("me")).map((r) => [r.id, r.node_id]), [
      [id!, "cli@box"],
    ]);
    await store.updateRun(id!, { status: "success", finished_at: 2000 });
    assertEquals((await store.pollState("me")).hereRuns, false);
    assertEquals(await store.activeRunsElsewhere("me", [id!]), []);
  },
);

/** A marker time long past retention, as jm_update_info holds it (UTC). */
const LONG_AGO = "2020-01-01 00:00:00.000";
/** After LONG_AGO, before any marker inserted now. */
const CUTOFF = Date.UTC(2021, 0, 1);

/** Make markers `ids` inserted LONG_AGO. */
async function insertedLongAgo(db: Case["db"], ids: number[]): Promise<void> {
  await rawQuery(db, `UPDATE jm_update_info SET insert_time = ? WHERE id IN (${ids.join(", ")})`, [
    LONG_AGO,
  ]);
}

contract(
  "pruneMarkers",
  "applied markers inserted before the instant go, oldest first, at most limit, with who applied them; pending ones, recent ones and the newest stay; ids rise on",
  async ({ db, store }) => {
    const ids: number[] = [];
    for (let i = 0; i < 6; i++) ids.push(await store.insertMarker([], [job(`j${i}`)]));
    const [m1, m2, m3, pending, recent, newest] = ids;
    await store.markApplied([m1, m2, m3, recent, newest]);
    await insertedLongAgo(db, [m1, m2, m3, pending, newest]);
    // A node that applied them and stopped before they settled.
    await store.recordApplied("gone", [m2, pending]);
    assertEquals(await store.pruneMarkers(CUTOFF, 2), 2);
    assertEquals((await store.listMarkers(0, 100)).map((m) => m.id), [
      m3,
      pending,
      recent,
      newest,
    ]);
    assertEquals(await store.pruneMarkers(CUTOFF, 100), 1, "m3 goes; the newest stays");
    assertEquals(await store.pruneMarkers(CUTOFF, 100), 0);
    assertEquals(await updated(store), { [pending]: false, [recent]: true, [newest]: true });
    assertEquals(
      (await rawQuery(db, "SELECT marker_id FROM jm_marker_nodes")).map((r) => Number(r.marker_id)),
      [pending],
    );
    // The newest stays, so no id comes again (MySQL's AUTO_INCREMENT restarts from the
    // highest id there when the server restarts): the next change's marker is past them all.
    assertEquals(await store.latestMarkerId(), newest);
    const { markerId } = await store.changeJob("after", () => job("after"));
    assert(markerId! > Math.max(...ids), `the next marker's id ${markerId} passes ${ids}`);
  },
);

contract(
  "pruneMarkers",
  "the marker a running service last applied stays (its poll asks when it was inserted); a stopped one's does not",
  async ({ db, store }) => {
    const ids: number[] = [];
    for (let i = 0; i < 4; i++) ids.push(await store.insertMarker([], []));
    const [behind, stoppedAt, , newest] = ids;
    await store.markApplied(ids);
    await insertedLongAgo(db, ids);
    const running = await liveNode(store, "running");
    await store.saveNode({ ...running, applied_marker: behind });
    const stopped = await liveNode(store, "stopped");
    await store.saveNode({ ...stopped, applied_marker: stoppedAt, stopped_at: Date.now() });
    assertEquals(await store.pruneMarkers(CUTOFF, 100), 2);
    assertEquals((await store.listMarkers(0, 100)).map((m) => m.id), [behind, newest]);
    assert(
      (await store.pollState("running", behind)).markerInserted !== null,
      "the running service's last marker is there",
    );
  },
);

contract(
  "pruneMarkers",
  "applied markers inserted since the instant stay",
  async ({ db, store }) => {
    const ids = [await store.insertMarker([], []), await store.insertMarker([], [])];
    await store.markApplied(ids);
    assertEquals(await store.pruneMarkers(CUTOFF, 100), 0);
    await insertedLongAgo(db, [ids[0]]);
    assertEquals(await store.pruneMarkers(CUTOFF, 100), 1);
    assertEquals((await store.listMarkers(0, 100)).map((m) => m.id), [ids[1]]);
  },
);

contract(
  "pruneMarkers",
  "recent markers at the lowest ids (a clock ahead, a time written by hand) hold back none of the old ones after them",
  async ({ db, store }) => {
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) ids.push(await store.insertMarker([], []));
    const [recent1, recent2, old1, old2, newest] = ids;
    await store.markApplied(ids);
    await insertedLongAgo(db, [old1, old2, newest]);
    // A batch of 2: the two recent ones fill it, if it is read without their time.
    assertEquals(await store.pruneMarkers(CUTOFF, 2), 2);
    assertEquals((await store.listMarkers(0, 100)).map((m) => m.id), [recent1, recent2, newest]);
  },
);

contract(
  "pruneMarkers",
  "a marker with no insert_time (a table made by hand may allow it) goes by its update_time, or with neither time, as any other",
  async ({ db, store }) => {
    await markerTimesNullable(db);
    const ids: number[] = [];
    for (let i = 0; i < 6; i++) ids.push(await store.insertMarker([], []));
    const [noTime, appliedRecently, appliedLongAgo, pending, inUse, newest] = ids;
    await store.markApplied([noTime, appliedRecently, appliedLongAgo, inUse, newest]);
    await rawQuery(db, "UPDATE jm_update_info SET insert_time = NULL");
    await rawQuery(db, `UPDATE jm_update_info SET update_time = NULL WHERE id = ${noTime}`);
    await rawQuery(db, `UPDATE jm_update_info SET update_time = ? WHERE id = ${appliedLongAgo}`, [
      LONG_AGO,
    ]);
    const running = await liveNode(store, "running");
    await store.saveNode({ ...running, applied_marker: inUse });
    // The batch spans the recent one, which the delete passes over.
    assertEquals(await store.pruneMarkers(CUTOFF, 2), 2);
    assertEquals((await store.listMarkers(0, 100)).map((m) => m.id), [
      appliedRecently,
      pending,
      inUse,
      newest,
    ]);
    assertEquals(await store.pruneMarkers(CUTOFF, 100), 0);
  },
);
