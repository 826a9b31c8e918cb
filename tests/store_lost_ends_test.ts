/**
 * The store contract of updateRuns over rows marked `lost` (store.ts,
 * lost_ends.ts): a node declared dead while it ran, back, records a run's
 * end as it ended, its note starting with the lost note, and is told the
 * row was marked lost (so that it follows nothing there: the declaring
 * node did); a start never goes over a row that ended.
 */
import { assert, assertEquals } from "./assert.ts";
import { contract, fire, node } from "./store_contract.ts";
import { markedLost, OVER_LOST } from "../src/store/lost_ends.ts";
import type { Store } from "../src/store/store.ts";
import type { RunUpdate } from "../src/domain/run.ts";
import { rawQuery, type TestDatabase } from "./helpers.ts";

/** `store.updateRuns` as node `nodeId`: the rows it said were gone, and those found marked lost. */
async function written(
  store: Store,
  updates: { id: number; update: RunUpdate }[],
  nodeId = "n1",
): Promise<{ gone: number[]; lost: number[] }> {
  const lost: number[] = [];
  const gone = await store.updateRuns(updates, nodeId, (ids) => lost.push(...ids));
  return { gone, lost: lost.sort((a, b) => a - b) };
}

/** Runs of node n1, running; n1 declared dead by n2 with `marked` of them running (lost). */
async function declared(
  { store, db }: { store: Store; db: TestDatabase },
  count: number,
  marked: number,
): Promise<number[]> {
  await store.saveNode(node("n1", { db_heartbeat_at: 1000, heartbeat_ms: 1000 }));
  const rows = Array.from({ length: count }, (_, i) => fire(`j${i}`, 1000, { node_id: "n1" }));
  const ids = (await store.claimRuns(rows)).map((id) => id!);
  for (const id of ids.slice(marked)) {
    await store.updateRun(id, { status: "success", finished_at: 1100, exit_code: 0 });
  }
  const [beat] = await rawQuery(db, "SELECT db_heartbeat_at FROM jm_nodes WHERE id = 'n1'");
  const dead = await store.declareDead("n1", Number(beat.db_heartbeat_at), "n2");
  assertEquals(dead?.runIds.sort((a, b) => a - b), ids.slice(0, marked));
  return ids;
}

const END = {
  status: "failed",
  finished_at: 2000,
  exit_code: 1,
  stdout: "out",
  note: null,
} as const;

contract(
  "updateRuns",
  "an end over a row marked lost is written as the run ended, its note starting with the lost note, and is said",
  async ({ store, db }) => {
    // Two lost and one ended, in one statement (one column set) where the backend batches.
    const ids = await declared({ store, db }, 3, 2);
    const lostNote = (await store.getRun(ids[0]))!.note!;
    assertEquals(await written(store, ids.map((id) => ({ id, update: END }))), {
      gone: [],
      lost: [ids[0], ids[1]],
    });
    for (const id of ids.slice(0, 2)) {
      const run = (await store.getRun(id))!;
      assertEquals([run.status, run.finished_at, run.exit_code, run.stdout], [
        "failed",
        2000,
        1,
        "out",
      ]);
      assertEquals(run.note?.startsWith(`${OVER_LOST}${lostNote})`), true, run.note ?? "");
      assert(markedLost(run), run.note ?? "");
    }
    assertEquals((await store.getRun(ids[2]))!.status, "failed");
    assertEquals((await store.getRun(ids[2]))!.note, null);
    // Sent again (its answer lost), and a later note (what escaped the group): still marked lost.
    assertEquals(await written(store, [{ id: ids[0], update: END }]), { gone: [], lost: [ids[0]] });
    assertEquals(
      await written(store, [{ id: ids[0], update: { note: "escaped: 1 process" } }]),
      { gone: [], lost: [ids[0]] },
    );
    const run = (await store.getRun(ids[0]))!;
    assertEquals(run.status, "failed");
    assertEquals(run.note?.startsWith(`${OVER_LOST}${lostNote})`), true, run.note ?? "");
    assertEquals(run.note?.endsWith("; escaped: 1 process"), true, run.note ?? "");
    assertEquals(run.note?.split(OVER_LOST).length, 2, run.note ?? "");
  },
);

contract(
  "updateRuns",
  "a row marked lost gets no start, and a cancel keeps its own note",
  async ({ store, db }) => {
    const ids = await declared({ store, db }, 2, 2);
    const start = { status: "running", started_at: 1500, pgid: 7, marker: "m" } as const;
    assertEquals(await written(store, [{ id: ids[0], update: start }]), {
      gone: [],
      lost: [ids[0]],
    });
    assertEquals((await store.getRun(ids[0]))!.status, "lost");
    const cancelled = { status: "cancelled", finished_at: 2000, note: "cancelled by ops" } as const;
    assertEquals(await written(store, [{ id: ids[1], update: cancelled }]), {
      gone: [],
      lost: [ids[1]],
    });
    const run = (await store.getRun(ids[1]))!;
    assertEquals([run.status, run.note], ["cancelled", "cancelled by ops"]);
  },
);

contract(
  "updateRuns",
  "a start goes over no row that ended; an end written again over its own end is no lost row",
  async ({ store }) => {
    const [id] = (await store.claimRuns([fire("j", 1000, { node_id: "n1" })])).map((i) => i!);
    const end = { status: "success", finished_at: 2000, exit_code: 0, note: null } as const;
    assertEquals(await written(store, [{ id, update: end }]), { gone: [], lost: [] });
    assertEquals(await written(store, [{ id, update: end }]), { gone: [], lost: [] });
    const start = { status: "running", started_at: 1500 } as const;
    assertEquals(await written(store, [{ id, update: start }]), { gone: [], lost: [] });
    const run = (await store.getRun(id))!;
    assertEquals([run.status, run.started_at], ["success", null]);
  },
);

contract(
  "declareDead",
  "sent again after its answer was lost, it still names a run its node ended over lost since",
  async ({ store, db }) => {
    const ids = await declared({ store, db }, 2, 2);
    assertEquals(await written(store, [{ id: ids[0], update: END }]), { gone: [], lost: [ids[0]] });
    const [beat] = await rawQuery(db, "SELECT db_heartbeat_at FROM jm_nodes WHERE id = 'n1'");
    const again = await store.declareDead("n1", Number(beat.db_heartbeat_at), "n2");
    assertEquals(again?.runIds.sort((a, b) => a - b), ids);
  },
);
