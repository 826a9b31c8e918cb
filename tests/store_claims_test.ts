/**
 * The store contract of the two writes that coordinate services (store.ts,
 * RunStore): claimRuns and its unique key, updateRun and its condition.
 */
import { assert, assertEquals, assertRejects } from "./assert.ts";
import { type NewRun, NOTE_MAX, type Run, type RunStatus } from "../src/domain/run.ts";
import type { Store } from "../src/store/store.ts";
import { contract, countRows, fire, manualRequest } from "./store_contract.ts";
import type { Driver, Executor } from "../src/store/driver.ts";
import { MysqlDriver } from "../src/store/mysql.ts";
import { SqliteDriver } from "../src/store/sqlite.ts";
import { SqlStore } from "../src/store/sql_store.ts";
import { DatabaseError, isUnreachable } from "../src/errors.ts";
import { rawQuery, type TestDatabase } from "./helpers.ts";
import { buildJob } from "../src/domain/job.ts";
import { EnvMasks } from "../src/http/api/env_masks.ts";

/**
 * A store on `db` whose transactions and batches fail at their first
 * statement that starts with `failing` (the database itself answering
 * every other): a connection lost between the statements of a claim.
 */
function rawDriver(db: TestDatabase): Driver {
  const target = db.target;
  return target.kind === "sqlite" ? SqliteDriver.open(target.path) : new MysqlDriver(target);
}

/** A driver passing every call to `real`, for a test to change some. */
function forwarding(real: Driver): Driver {
  return {
    profile: real.profile,
    description: real.description,
    created: real.created,
    connections: real.connections,
    all: (sql, params) => real.all(sql, params),
    map: (sql, params, fn) => real.map(sql, params, fn),
    mapValues: (sql, params, fn) => real.mapValues(sql, params, fn),
    run: (sql, params) => real.run(sql, params),
    transaction: (fn) => real.transaction(fn),
    batch: (statements) => real.batch(statements),
    withMigrationLock: (fn) => real.withMigrationLock(fn),
    close: () => real.close(),
  };
}

function storeFailingAt(db: TestDatabase, failing: string): SqlStore {
  const real = rawDriver(db);
  const lost = (sql: string) => {
    if (sql.startsWith(failing)) throw new Error("read ECONNRESET: the connection was lost");
  };
  const wrap = (tx: Executor): Executor => ({
    all: (sql, params) => (lost(sql), tx.all(sql, params)),
    map: (sql, params, fn) => (lost(sql), tx.map(sql, params, fn)),
    mapValues: (sql, params, fn) => (lost(sql), tx.mapValues(sql, params, fn)),
    run: (sql, params) => (lost(sql), tx.run(sql, params)),
  });
  const driver: Driver = {
    ...forwarding(real),
    transaction: (fn) => real.transaction((tx) => fn(wrap(tx))),
    batch: async (statements) => {
      const at = statements.findIndex(({ sql }) => sql.startsWith(failing));
      if (at < 0) return await real.batch(statements);
      // The statements before it run, and the server rolls them back, as it
      // does a transaction whose connection is gone.
      const fails = { sql: "SELECT no_such_column FROM jm_runs", params: [] };
      await real.batch([...statements.slice(0, at), fails]).catch(() => undefined);
      lost(statements[at].sql);
      return [];
    },
  };
  return new SqlStore(driver);
}

/**
 * Two stores on `db` claim the same 300 fires at once, each as `claim`
 * says (`n`: which store): each fire has one winner, then `check` looks
 * at the ids each got.
 */
async function eachFireOneWinner(
  db: TestDatabase,
  claim: (store: Store, n: number, fires: NewRun[]) => Promise<(number | null)[]>,
  check: (claims: (number | null)[][], store: Store) => Promise<void> = async () => {},
): Promise<void> {
  const stores = [db.open(), db.open()];
  try {
    const fires = Array.from({ length: 300 }, (_, i) => fire(`j${i % 7}`, 1000 * (1 + i)));
    const claims = await Promise.all(stores.map((s, n) => claim(s, n, fires)));
    const [x, y] = claims;
    const twice = fires.filter((_, i) => (x[i] === null) === (y[i] === null));
    assertEquals(twice, [], "fires claimed by both stores or by neither");
    await check(claims, stores[0]);
    assertEquals(await countRows(db, "jm_runs"), 300);
  } finally {
    await Promise.all(stores.map((s) => s.close()));
  }
}

contract("claimRuns", "an empty batch claims nothing", async ({ db, store }) => {
  assertEquals(await store.claimRuns([]), []);
  assertEquals(await countRows(db, "jm_runs"), 0);
});

contract(
  "claimRuns",
  "a new fire gets an id and a row holding what was given",
  async ({ store }) => {
    const [id] = await store.claimRuns([
      fire("a", 1000, { node_id: "n1", started_at: 1005, note: "first" }),
    ]);
    assert(id !== null);
    // getRun's own case pins a whole row; this one: what was given, and NULL for the rest.
    const run = await store.getRun(id);
    assertEquals(
      [run?.job_id, run?.scheduled_at, run?.status, run?.trigger, run?.node_id, run?.note],
      ["a", 1000, "running", "schedule", "n1", "first"],
    );
    assertEquals(
      [run?.started_at, run?.finished_at, run?.exit_code, run?.signal, run?.stdout, run?.stderr],
      [1005, null, null, null, null, null],
    );
  },
);

contract(
  "claimRuns",
  "a fire claimed twice returns null the second time",
  async ({ db, store }) => {
    const [first] = await store.claimRuns([fire("a", 1000, { node_id: "n1" })]);
    assert(first !== null);
    const before = await store.getRun(first);
    assertEquals(await store.claimRuns([fire("a", 1000, { node_id: "n2", status: "skipped" })]), [
      null,
    ]);
    assertEquals(await store.getRun(first), before, "the first claim's row is left as it was");
    assertEquals(await countRows(db, "jm_runs"), 1);
  },
);

contract(
  "claimRuns",
  "in a batch, only fires claimed before come back null, in order",
  async ({ store }) => {
    const [a1000] = await store.claimRuns([fire("a", 1000)]);
    // b@1000 and a@2000 share a job id or an instant with a@1000: only the whole key counts.
    const ids = await store.claimRuns([
      fire("b", 1000),
      fire("a", 1000),
      fire("a", 2000),
      fire("b", 2000),
    ]);
    assertEquals(ids[1], null);
    const fresh = [ids[0], ids[2], ids[3]];
    assert(fresh.every((id) => id !== null && id !== a1000), `new ids: ${fresh}`);
    assertEquals(new Set(fresh).size, 3);
    const rows = await Promise.all(fresh.map((id) => store.getRun(id!)));
    assertEquals(rows.map((r) => [r?.job_id, r?.scheduled_at]), [["b", 1000], ["a", 2000], [
      "b",
      2000,
    ]]);
  },
);

contract("claimRuns", "the same fire twice in one batch is claimed once", async ({ db, store }) => {
  const ids = await store.claimRuns([fire("a", 1000), fire("b", 1000), fire("a", 1000)]);
  assert(ids[0] !== null && ids[1] !== null, `first a and b claimed: ${ids}`);
  assertEquals(ids[2], null);
  assertEquals(await countRows(db, "jm_runs"), 2);
});

contract(
  "claimRuns",
  "the same instant with another trigger is another fire",
  async ({ store }) => {
    const [scheduled] = await store.claimRuns([fire("a", 1000)]);
    const [manual] = await store.claimRuns([manualRequest("a", 1000)]);
    assert(scheduled !== null && manual !== null && manual !== scheduled);
    assertEquals((await store.getRun(manual))?.trigger, "manual");
  },
);

contract(
  "claimRuns",
  "a batch larger than one statement is claimed whole, then refused whole",
  async ({ db, store }) => {
    const fires = Array.from({ length: 1200 }, (_, i) => fire(`j${i}`, 5000));
    const ids = await store.claimRuns(fires);
    assert(ids.every((id) => id !== null), "every fire claimed");
    assertEquals(new Set(ids).size, 1200);
    const last = await store.getRun(ids[1199]!);
    assertEquals(last?.job_id, "j1199");
    assertEquals(await store.claimRuns(fires), Array(1200).fill(null));
    assertEquals(await countRows(db, "jm_runs"), 1200);
  },
);

contract(
  "claimRuns",
  "one transaction: a row that fails takes the whole batch back",
  async ({ db, store }) => {
    // The 501st row is in the second INSERT: the first must be rolled back with it.
    const fires = Array.from({ length: 501 }, (_, i) => fire(`j${i}`, 5000));
    fires[500] = { ...fires[500], status: null as unknown as RunStatus };
    await assertRejects(() => store.claimRuns(fires), Error, "status");
    assertEquals(await countRows(db, "jm_runs"), 0);
  },
);

contract(
  "claimRuns",
  "two stores claiming the same fires at once: each fire has one winner",
  ({ db }) =>
    eachFireOneWinner(
      db,
      (store, n, fires) => store.claimRuns(fires.map((f) => ({ ...f, node_id: `n${n}` }))),
    ),
);

contract(
  "claimRuns",
  "six services claiming overlapping fires instant after instant: every fire has its row and one winner",
  async ({ db }) => {
    // A cluster whose assignment just changed: each node claims its two jobs
    // and one of another node's, each fire with its marker, all at once.
    // MariaDB dropped a fresh row of such a batch now and then, with no error
    // (a multi-row INSERT … ON DUPLICATE KEY UPDATE after a wait on another
    // claim's row): a fire nobody ran and nobody recorded.
    const nodes = 6;
    const jobs = 2 * nodes;
    const instants = 1000;
    const stores = Array.from({ length: nodes }, () => db.open());
    try {
      const lost: string[] = [];
      for (let at = 1000; at <= 1000 * instants; at += 1000) {
        const batches = stores.map((_, n) =>
          [2 * n, 2 * n + 1, 2 * n + 2 + (at / 1000) % 3].map((j) =>
            fire(`j${j % jobs}`, at, { node_id: `n${n}`, marker: crypto.randomUUID() })
          )
        );
        const claims = await Promise.all(stores.map((s, n) => s.claimRuns(batches[n])));
        for (let j = 0; j < jobs; j++) {
          const winners = batches.flatMap((batch, n) =>
            batch.flatMap((f, i) => f.job_id === `j${j}` && claims[n][i] !== null ? [n] : [])
          );
          if (winners.length !== 1) lost.push(`j${j}@${at}: claimed by [${winners}]`);
        }
      }
      assertEquals(lost, [], "fires claimed by no store or by several");
      assertEquals(await countRows(db, "jm_runs"), jobs * instants);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  },
);

contract(
  "claimRuns",
  "fires with markers: only this batch's rows come back, whoever claimed the others",
  async ({ db, store }) => {
    const [earlier] = await store.claimRuns([fire("a", 1000, { marker: "m-earlier" })]);
    assert(earlier !== null);
    const ids = await store.claimRuns([
      fire("b", 1000, { marker: "m-b" }),
      fire("a", 1000, { marker: "m-a" }),
      fire("a", 2000, { marker: "m-a2" }),
      fire("b", 1000, { marker: "m-b-again" }),
    ]);
    assertEquals(ids.map((id) => id === null), [false, true, false, true], `${ids}`);
    assertEquals((await store.getRun(ids[0]!))?.marker, "m-b");
    assertEquals((await store.getRun(ids[2]!))?.marker, "m-a2");
    assertEquals(
      (await store.getRun(earlier))?.marker,
      "m-earlier",
      "the earlier claim's row as it was",
    );
    assertEquals(await countRows(db, "jm_runs"), 3);
  },
);

contract(
  "claimRuns",
  "fires with markers claimed again (an answer that never came) get their own ids back",
  async ({ db, store }) => {
    const fires = Array.from({ length: 20 }, (_, i) => fire(`j${i}`, 1000, { marker: `m${i}` }));
    const first = await store.claimRuns(fires);
    assert(first.every((id) => id !== null), `${first}`);
    assertEquals(await store.claimRuns(fires), first);
    assertEquals(await countRows(db, "jm_runs"), 20);
  },
);

contract(
  "claimRuns",
  "a fire claimed again with its marker gets its id back, alone or among unmarked fires",
  async ({ db, store }) => {
    const [alone] = await store.claimRuns([fire("a", 1000, { marker: "m-a" })]);
    assert(alone !== null);
    assertEquals(await store.claimRuns([fire("a", 1000, { marker: "m-a" })]), [alone]);
    assertEquals(await store.claimRuns([fire("a", 1000, { marker: "m-other" })]), [null]);
    // Mixed with a fire that carries no marker (a skip), the batch takes the general path.
    const mixed = [fire("b", 1000, { marker: "m-b" }), fire("c", 1000, { status: "skipped" })];
    const first = await store.claimRuns(mixed);
    assert(first.every((id) => id !== null), `${first}`);
    assertEquals(await store.claimRuns(mixed), [first[0], null]);
    assertEquals(await countRows(db, "jm_runs"), 3);
  },
);

contract(
  "claimRuns",
  "two stores claiming the same fires with markers of their own at once: each fire has one winner",
  ({ db }) =>
    eachFireOneWinner(
      db,
      // In batches of 100: the path for a service's instant.
      async (store, n, fires) =>
        (await Promise.all(
          [0, 100, 200].map((from) =>
            store.claimRuns(
              fires.slice(from, from + 100).map((f, i) => ({
                ...f,
                node_id: `n${n}`,
                marker: `n${n}-${from + i}`,
              })),
            )
          ),
        )).flat(),
      async (claims, store) => {
        for (const [n, ids] of claims.entries()) {
          for (const [i, id] of ids.entries()) {
            if (id !== null) assertEquals((await store.getRun(id))?.node_id, `n${n}`, `fire ${i}`);
          }
        }
      },
    ),
);

contract(
  "claimRuns",
  "fires with markers: one the INSERT dropped whose own claim is refused fails the claim as an answer lost, and the claim sent again gets every row",
  async ({ db, store }) => {
    const fires = [fire("a", 1000, { marker: "m-a" }), fire("b", 1000, { marker: "m-b" })];
    const driver = rawDriver(db);
    // The batch's INSERT loses its last fire without a word (MySQL bug #66301); that fire's
    // own INSERT is then refused.
    const dropping = new SqlStore({
      ...forwarding(driver),
      batch: ([insert, ...rest]) =>
        driver.batch([{
          sql: insert.sql.replace(/, \([?, ]+\)(?=[^(]*$)/, ""),
          params: insert.params.slice(0, insert.params.length / fires.length),
        }, ...rest]),
      run: () => Promise.reject(new DatabaseError("refused", { unreachable: false })),
    });
    try {
      const error = await assertRejects(() => dropping.claimRuns(fires));
      assert(isUnreachable(error), `a refusal after the others were written: ${error}`);
    } finally {
      await dropping.close();
    }
    assertEquals(await countRows(db, "jm_runs"), 1, "the batch's row stands");
    // Sent again, as the recorder does for an answer lost: its own row back, and the other.
    const again = await store.claimRuns(fires);
    assert(again.every((id) => id !== null), `${again}`);
    assertEquals(await countRows(db, "jm_runs"), 2);
  },
);

contract(
  "claimRuns",
  "fires with markers: a claim whose read-back fails leaves no row, and a later claim wins them",
  async ({ db, store }) => {
    const fires = [fire("a", 1000, { marker: "m-a" }), fire("b", 1000, { marker: "m-b" })];
    const failing = storeFailingAt(db, "SELECT id, job_id, scheduled_at");
    try {
      await assertRejects(() => failing.claimRuns(fires), Error, "ECONNRESET");
    } finally {
      await failing.close();
    }
    assertEquals(await countRows(db, "jm_runs"), 0);
    // Decided again, the fires carry new markers: they are this claim's.
    const again = await store.claimRuns(fires.map((f) => ({ ...f, marker: `${f.marker}-2` })));
    assert(again.every((id) => id !== null), `${again}`);
  },
);

contract("updateRun", "writes the columns given and leaves the others", async ({ store }) => {
  const [id] = await store.claimRuns([fire("a", 1000, { node_id: "n1", started_at: 1001 })]);
  const before = await store.getRun(id!);
  const update = {
    status: "failed",
    finished_at: 2000,
    exit_code: 3,
    signal: "SIGTERM",
    stdout: "out ✓",
    stderr: "err",
    note: "why",
  } satisfies Partial<Run>;
  assertEquals(await store.updateRun(id!, update), true);
  assertEquals(await store.getRun(id!), { ...before!, ...update });
});

contract("updateRuns", "writes every update in the order given", async ({ store }) => {
  const [a, b] = await store.claimRuns([fire("a", 1000), fire("b", 1000)]);
  await store.updateRuns([
    { id: a!, update: { pgid: 41, marker: "m-a", started_at: 1002 } },
    { id: b!, update: { status: "failed", finished_at: 1500, exit_code: 1 } },
    { id: a!, update: { status: "success", finished_at: 1600, exit_code: 0 } },
    { id: b! + 1, update: { status: "success" } },
  ]);
  const [ra, rb] = [await store.getRun(a!), await store.getRun(b!)];
  assertEquals(
    [ra!.pgid, ra!.marker, ra!.started_at, ra!.status, ra!.finished_at, ra!.exit_code],
    [41, "m-a", 1002, "success", 1600, 0],
  );
  assertEquals([rb!.status, rb!.finished_at, rb!.exit_code], ["failed", 1500, 1]);
  assertEquals(await store.getRun(b! + 1), null);
});

contract(
  "updateRuns",
  "says which runs' rows were not there, or not the node's, and not those whose values stood",
  async ({ store, db }) => {
    const rows = Array.from({ length: 5 }, (_, i) => fire(`j${i}`, 1000, { node_id: "n1" }));
    const ids = (await store.claimRuns(rows)).map((id) => id!);
    // Four ends in one statement (one column set); one row gone, one another node's.
    await store.updateRun(ids[2], { node_id: "n2" });
    const gone = ids[3];
    await rawQuery(db, "DELETE FROM jm_runs WHERE id = ?", [gone]);
    const end = { status: "success", finished_at: 1500, exit_code: 0 } as const;
    // A row whose values are already these: changed on SQLite, not counted so on MySQL.
    await store.updateRun(ids[1], end);
    assertEquals(
      await store.updateRuns([0, 1, 2, 3].map((i) => ({ id: ids[i], update: end })), "n1"),
      [ids[2], gone],
    );
    assertEquals((await store.getRun(ids[0]))!.status, "success");
    assertEquals((await store.getRun(ids[2]))!.status, "running");
    // Alone, and without a node: only the row that is gone.
    assertEquals(await store.updateRuns([{ id: gone, update: end }]), [gone]);
    assertEquals(await store.updateRuns([{ id: ids[4], update: end }]), []);
    assertEquals(await store.updateRuns([{ id: ids[2], update: end }]), []);
  },
);

contract(
  "updateRuns",
  "a burst's records, written many rows to a statement: each run gets its own",
  async ({ store }) => {
    const ids = await store.claimRuns(Array.from({ length: 250 }, (_, i) => fire(`j${i}`, 1000)));
    // Six outputs of 3 MB: more than a 16 MiB packet in one statement.
    const big = "x".repeat(3_000_000);
    const want = (i: number): Partial<Run> =>
      i % 3 === 0
        ? { pgid: 1000 + i }
        : i % 3 === 1
        ? { status: "success", finished_at: 2000 + i, exit_code: 0, stdout: `out ${i}` }
        : { status: "failed", exit_code: i, stderr: i < 18 ? big : null };
    await store.updateRuns([
      ...ids.map((id, i) => ({ id: id!, update: want(i) })),
      { id: ids[0]!, update: { status: "killed", signal: "SIGKILL" } },
    ]);
    for (const [i, id] of ids.entries()) {
      const run = await store.getRun(id!);
      const expected = { ...want(i), ...(i === 0 ? { status: "killed", signal: "SIGKILL" } : {}) };
      const got = Object.fromEntries(
        Object.keys(expected).map((k) => [k, run![k as keyof Run]]),
      );
      assertEquals(got, expected, `run ${i}`);
    }
  },
);

contract(
  "claimRuns",
  "runs written after an outage with their output: more than a 16 MiB packet in one claim",
  async ({ store }) => {
    // 300 runs with 64 kB of output each: 19 MB. A service's carry their markers; others do not.
    const out = (i: number) => `${i} `.padEnd(65_536, "x");
    for (const marked of [true, false]) {
      const at = marked ? 1000 : 2000;
      const runs = Array.from({ length: 300 }, (_, i) =>
        fire(`j${i}`, at, {
          status: "success",
          finished_at: at + 500,
          exit_code: 0,
          stdout: out(i),
          marker: marked ? `m${i}` : undefined,
        }));
      const ids = await store.claimRuns(runs);
      assertEquals(new Set(ids).size, 300, `marked: ${marked}`);
      for (const [i, id] of ids.entries()) {
        const run = await store.getRun(id!);
        assertEquals([run!.job_id, run!.scheduled_at, run!.stdout], [`j${i}`, at, out(i)]);
      }
    }
  },
);

contract("updateRun", "an unknown id changes nothing", async ({ store }) => {
  const [id] = await store.claimRuns([fire("a", 1000)]);
  assertEquals(await store.updateRun(id! + 1, { status: "success" }), false);
  assertEquals((await store.getRun(id!))?.status, "running");
});

contract("updateRun", "an empty update changes nothing", async ({ store }) => {
  const [id] = await store.claimRuns([fire("a", 1000)]);
  const before = await store.getRun(id!);
  assertEquals(await store.updateRun(id!, {}), false);
  assertEquals(await store.getRun(id!), before);
});

contract("updateRun", "onlyIf the current status: written", async ({ store }) => {
  const [id] = await store.claimRuns([manualRequest("a", 1000)]);
  assertEquals(
    await store.updateRun(id!, { status: "running", node_id: "n1", started_at: 1500 }, "queued"),
    true,
  );
  const run = await store.getRun(id!);
  assertEquals([run?.status, run?.node_id, run?.started_at], ["running", "n1", 1500]);
});

contract("updateRun", "onlyIf another status: false, and nothing changes", async ({ store }) => {
  const [id] = await store.claimRuns([manualRequest("a", 1000)]);
  await store.updateRun(id!, { status: "running", node_id: "n1" }, "queued");
  const before = await store.getRun(id!);
  assertEquals(
    await store.updateRun(id!, { status: "skipped", node_id: "n2", note: "late" }, "queued"),
    false,
  );
  assertEquals(await store.getRun(id!), before);
});

contract("updateRun", "two stores taking one request at once: exactly one acts", async ({ db }) => {
  const stores = [db.open(), db.open()];
  try {
    const [id] = await stores[0].claimRuns([manualRequest("a", 1000)]);
    const took = await Promise.all(
      stores.map((s, n) => s.updateRun(id!, { status: "running", node_id: `n${n}` }, "queued")),
    );
    assertEquals(took.filter(Boolean).length, 1, `who acted: ${took}`);
    const winner = `n${took.indexOf(true)}`;
    assertEquals((await stores[0].getRun(id!))?.node_id, winner);
  } finally {
    await Promise.all(stores.map((s) => s.close()));
  }
});

contract(
  "missLostClaims",
  "ends missed only the fire's row with its marker still queued or running",
  async ({ store }) => {
    const ids = await store.claimRuns([
      fire("a", 1000, { marker: "m1", started_at: 1000 }),
      fire("a", 2000, { marker: "m2", status: "queued" }),
      fire("b", 1000, { marker: "other" }),
      fire("c", 1000, { marker: "m4" }),
    ]);
    await store.updateRun(ids[3]!, { status: "success", finished_at: 1500 });
    const before = await Promise.all(ids.slice(2).map((id) => store.getRun(id!)));
    const ended = await store.missLostClaims(
      [
        { job_id: "a", scheduled_at: 1000, marker: "m1" },
        { job_id: "a", scheduled_at: 2000, marker: "m2" },
        // Another claim's row, one that ended, and one no claim wrote: left alone.
        { job_id: "b", scheduled_at: 1000, marker: "mine" },
        { job_id: "c", scheduled_at: 1000, marker: "m4" },
        { job_id: "d", scheduled_at: 1000, marker: "m5" },
      ],
      5000,
      "held, then decided otherwise",
    );
    assertEquals(ended.map((c) => [c.job_id, c.scheduled_at]), [["a", 1000], ["a", 2000]]);
    for (const id of ids.slice(0, 2)) {
      const run = await store.getRun(id!);
      assertEquals(
        [run?.status, run?.finished_at, run?.note],
        ["missed", 5000, "held, then decided otherwise"],
      );
    }
    assertEquals(await Promise.all(ids.slice(2).map((id) => store.getRun(id!))), before);
    assertEquals((await store.listRuns({ job_id: "d", limit: 10 })).length, 0);
  },
);

contract("runStatuses", "each existing run's status, by id, in one read", async ({ store }) => {
  const ids = await store.claimRuns(
    Array.from({ length: 600 }, (_, i) => fire(`j${i % 3}`, 1000 * (1 + i))),
  );
  await store.updateRun(ids[1]!, { status: "lost" });
  const statuses = await store.runStatuses([ids[0]!, ids[1]!, ids[599]!, 999_999]);
  assertEquals(
    [...statuses].sort(([a], [b]) => a - b),
    [[ids[0]!, "running"], [ids[1]!, "lost"], [ids[599]!, "running"]],
  );
  assertEquals((await store.runStatuses(ids.map((id) => id!))).size, 600);
  assertEquals((await store.runStatuses([])).size, 0);
});

contract(
  "runVersions",
  "each existing run's scheduled time and job version, by id, in one read",
  async ({ store }) => {
    const ids = await store.claimRuns(
      Array.from(
        { length: 600 },
        (_, i) => ({ ...fire(`j${i % 3}`, 1000 * (1 + i)), job_updated_at: i === 0 ? null : i }),
      ),
    );
    await store.updateRun(ids[1]!, { job_updated_at: 77 });
    const versions = await store.runVersions([ids[0]!, ids[1]!, ids[599]!, 999_999]);
    assertEquals(
      [...versions].sort(([a], [b]) => a - b),
      [
        [ids[0]!, { scheduled_at: fire("j0", 1000).scheduled_at, job_updated_at: null }],
        [ids[1]!, { scheduled_at: fire("j1", 2000).scheduled_at, job_updated_at: 77 }],
        [ids[599]!, { scheduled_at: fire("j2", 600_000).scheduled_at, job_updated_at: 599 }],
      ],
    );
    assertEquals((await store.runVersions(ids.map((id) => id!))).size, 600);
    assertEquals((await store.runVersions([])).size, 0);
  },
);

contract(
  "updateRun",
  "a note cut to what jm_runs.note holds leaves a read token no part of an env value the cut split",
  async ({ store }) => {
    // Letters no other text here holds, all along the note: whatever character the cut falls at, it splits one.
    const value = "QWERTYUIOPZX";
    const job = buildJob(
      "a",
      { command: "true", cron: "* * * * *", env: [`TOKEN=${value}`] },
      null,
      0,
    );
    const [id] = await store.claimRuns([fire("a", 1000)]);
    for (const tail of ["", "-", "-Q", "-QWERTYUIOP"]) {
      const long = `${value}-`.repeat(NOTE_MAX / 10) + tail;
      await store.updateRun(id!, { status: "success", note: long });
      const shown = EnvMasks.ofJobs("read", [job], 60_000).run((await store.getRun(id!))!).note!;
      const kept = shown.split("… [jobsmanager cut ")[0];
      assert(!/[QWERTYUIOPZX]/.test(kept), `a part of the value is shown: ${shown.slice(-100)}`);
    }
  },
);

contract(
  "updateRun",
  "a note longer than jm_runs.note holds is written cut, saying so",
  async ({ store }) => {
    // 100,000 characters of 2 bytes: three times MySQL's TEXT, which refused it and left the run running.
    const long = "é".repeat(100_000);
    const [a, b, c] = await store.claimRuns([
      fire("a", 1000, { note: long }),
      fire("a", 2000),
      fire("a", 3000),
    ]);
    await store.updateRun(b!, { status: "success", note: long });
    await store.updateRuns([{ id: c!, update: { status: "success", note: long } }]);
    for (const id of [a!, b!, c!]) {
      const note = (await store.getRun(id))!.note!;
      assert(note.length <= NOTE_MAX, `run ${id}: a note of ${note.length} characters`);
      assert(note.startsWith("éééé"), `run ${id}: ${note.slice(0, 40)}`);
      assert(
        /éé… \[jobsmanager cut \d+ characters of this note\]$/.test(note),
        `run ${id}: ${note.slice(-80)}`,
      );
    }
  },
);
