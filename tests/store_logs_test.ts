/** The store contract of LogStore (store.ts): insertLogs, listLogs, pruneOlderThan. */
import { assert, assertEquals } from "./assert.ts";
import type { LogFilter } from "../src/domain/log_row.ts";
import { FINAL_STATUSES } from "../src/domain/run.ts";
import type { Store } from "../src/store/store.ts";
import { rawQuery } from "./helpers.ts";
import { contract, countRows, fire, logRow } from "./store_contract.ts";

async function messages(store: Store, filter: LogFilter): Promise<string[]> {
  return (await store.listLogs(filter)).map((r) => r.message);
}

contract(
  "insertLogs",
  "rows read back as written, ids rising in the order given",
  async ({ store }) => {
    const rows = [
      {
        ...logRow(1, "info", { job: "a", run: 7, nested: { n: [1, "two"] } }),
        message: "ünïcode ✓",
        node_id: "web-2",
      },
      { ...logRow(2, "error"), node_id: null },
    ];
    await store.insertLogs(rows);
    const stored = await store.listLogs({ afterId: 0, limit: 10 });
    assert(stored[0].id! < stored[1].id!, `ids rise: ${stored.map((r) => r.id)}`);
    assertEquals(stored.map(({ id: _, ...row }) => row), rows);
  },
);

contract("insertLogs", "an empty batch writes nothing", async ({ db, store }) => {
  await store.insertLogs([]);
  assertEquals(await countRows(db, "jm_syslog"), 0);
});

contract(
  "insertLogs",
  "a batch larger than one statement is stored whole, in order",
  async ({ store }) => {
    await store.insertLogs(Array.from({ length: 1234 }, (_, i) => logRow(i, "info", { i })));
    const stored = await store.listLogs({ afterId: 0, limit: 5000 });
    assertEquals(stored.map((r) => r.context.i), Array.from({ length: 1234 }, (_, i) => i));
  },
);

contract("listLogs", "nothing when there is no row", async ({ store }) => {
  assertEquals(await store.listLogs({ limit: 10 }), []);
});

contract("listLogs", "newest first, at most limit", async ({ store }) => {
  await store.insertLogs([logRow(1, "info"), logRow(2, "info"), logRow(3, "info")]);
  assertEquals(await messages(store, { limit: 10 }), ["message 3", "message 2", "message 1"]);
  assertEquals(await messages(store, { limit: 2 }), ["message 3", "message 2"]);
});

contract("listLogs", "minLevel keeps that level and the more severe ones", async ({ store }) => {
  await store.insertLogs([
    logRow(1, "debug"),
    logRow(2, "info"),
    logRow(3, "warning"),
    logRow(4, "error"),
    logRow(5, "fatal"),
  ]);
  assertEquals(await messages(store, { minLevel: "debug", limit: 10 }), [
    "message 5",
    "message 4",
    "message 3",
    "message 2",
    "message 1",
  ]);
  assertEquals(await messages(store, { minLevel: "warning", limit: 10 }), [
    "message 5",
    "message 4",
    "message 3",
  ]);
  assertEquals(await messages(store, { minLevel: "fatal", limit: 10 }), ["message 5"]);
});

contract("listLogs", "job and run filters match the context exactly", async ({ store }) => {
  await store.insertLogs([
    logRow(1, "info", { job: "a", run: 7 }),
    logRow(2, "info", { job: "ab", run: 70 }),
    logRow(3, "info", { job: "a", run: 8 }),
    logRow(4, "info", {}),
  ]);
  assertEquals(await messages(store, { job_id: "a", limit: 10 }), ["message 3", "message 1"]);
  assertEquals(await messages(store, { run_id: 7, limit: 10 }), ["message 1"]);
  assertEquals(await messages(store, { job_id: "b", limit: 10 }), []);
});

contract(
  "insertLogs",
  "a line naming a job or run longer than an id, or not text, is written with the others",
  async ({ store }) => {
    // The indexed job_id and run_id are generated from the context: a value wider than their
    // columns failed the row on MySQL (strict mode), and with it the sink's whole batch.
    await store.insertLogs([
      logRow(1, "warning", { job: "x".repeat(300), run: "(not recorded yet)".repeat(3) }),
      logRow(2, "info", { job: { id: "a" }, run: [7] }),
      logRow(3, "info", { job: "a", run: 7 }),
    ]);
    assertEquals(await messages(store, { limit: 10 }), ["message 3", "message 2", "message 1"]);
    assertEquals(await messages(store, { job_id: "a", limit: 10 }), ["message 3"]);
    assertEquals(await messages(store, { run_id: 7, limit: 10 }), ["message 3"]);
  },
);

contract("listLogs", "since keeps rows created at or after it", async ({ store }) => {
  await store.insertLogs([logRow(1, "info"), logRow(2, "info"), logRow(3, "info")]);
  assertEquals(await messages(store, { since: 2000, limit: 10 }), ["message 3", "message 2"]);
});

contract(
  "listLogs",
  "afterId gives the rows after it, oldest first, at most limit",
  async ({ store }) => {
    await store.insertLogs([1, 2, 3, 4].map((n) => logRow(n, "info")));
    const [, , second] = await store.listLogs({ limit: 10 });
    assertEquals(await messages(store, { afterId: second.id!, limit: 10 }), [
      "message 3",
      "message 4",
    ]);
    assertEquals(await messages(store, { afterId: second.id!, limit: 1 }), ["message 3"]);
  },
);

contract("listLogs", "filters combine", async ({ store }) => {
  await store.insertLogs([
    logRow(1, "error", { job: "a" }),
    logRow(2, "info", { job: "a" }),
    logRow(3, "error", { job: "b" }),
    logRow(4, "error", { job: "a" }),
  ]);
  assertEquals(
    await messages(store, { job_id: "a", minLevel: "error", since: 1000, limit: 10 }),
    ["message 4", "message 1"],
  );
});

contract(
  "listLogs",
  "a row written by hand without context reads back with an empty one",
  async ({ db, store }) => {
    await rawQuery(
      db,
      "INSERT INTO jm_syslog (created_at, level, logger_name, message) VALUES (1000, 'info', 'hand', 'by hand')",
    );
    const [row] = await store.listLogs({ limit: 10 });
    assertEquals([row.message, row.context], ["by hand", {}]);
  },
);

contract(
  "pruneOlderThan",
  "jm_syslog: at most limit rows created before the instant, oldest first",
  async ({ store }) => {
    await store.insertLogs([1, 2, 3, 4].map((n) => logRow(n, "info")));
    assertEquals(await store.pruneOlderThan("jm_syslog", 3000, 1), 1);
    assertEquals(await messages(store, { limit: 10 }), ["message 4", "message 3", "message 2"]);
    assertEquals(await store.pruneOlderThan("jm_syslog", 3000, 100), 1);
    assertEquals(await store.pruneOlderThan("jm_syslog", 3000, 100), 0);
    assertEquals(await messages(store, { limit: 10 }), ["message 4", "message 3"]);
  },
);

contract(
  "pruneOlderThan",
  "jm_runs: only ended runs scheduled before the instant",
  async ({ store }) => {
    await store.claimRuns([
      ...FINAL_STATUSES.map((status) => fire(`ended-${status}`, 1000, { status })),
      fire("running", 1000),
      fire("queued", 1000, { status: "queued" }),
      fire("recent", 2000, { status: "success" }),
    ]);
    assertEquals(await store.pruneOlderThan("jm_runs", 2000, 100), FINAL_STATUSES.length);
    assertEquals(
      (await store.listRuns({ limit: 100 })).map((r) => r.job_id).sort(),
      ["queued", "recent", "running"],
    );
  },
);

contract("pruneOlderThan", "jm_runs: at most limit, oldest first", async ({ store }) => {
  await store.claimRuns([1000, 2000, 3000].map((at) => fire("a", at, { status: "success" })));
  assertEquals(await store.pruneOlderThan("jm_runs", 5000, 2), 2);
  assertEquals((await store.listRuns({ limit: 10 })).map((r) => r.scheduled_at), [3000]);
});
