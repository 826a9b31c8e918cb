/**
 * A cluster node whose clock is stepped between two of its sweeps (each
 * measures it against the database's): it fires nothing by the stepped
 * clock. Without the guard, a node stepped 2 minutes ahead recorded the
 * next 2 minutes of its jobs' fires as missed, and those rows, due later
 * for the others, kept them from firing.
 */
import { assertEquals, assertMatch } from "./assert.ts";
import { ClusterHarness, storeWith, T0, until } from "./daemon_harness.ts";
import { type Backend, BACKENDS, freshDatabase } from "./helpers.ts";
import { buildJob } from "../src/domain/job.ts";

/** Nodes honour the assignment they had before a change for 2 × 60 s + 1 s: past it. */
const SETTLED_MS = 130_000;
const JOBS = Array.from({ length: 10 }, (_, i) => `j${i}`);

/** n2's clocks as `settledPair` gives them, and how it reads the database's. */
interface PairClocks {
  wallOff: number;
  monotonicOff: number;
  held: PromiseWithResolvers<void> | null;
  /** How long each reading of the database's clock takes (a slow database), as its own wall clock tells. */
  slowMs: number;
  /** Readings of the database's clock so far. */
  readings: number;
  /** Readings begun so far (waiting while `held` is set, once begun). */
  begun: number;
}

const pairClocks = (): PairClocks => ({
  wallOff: 0,
  monotonicOff: 0,
  held: null,
  slowMs: 0,
  readings: 0,
  begun: 0,
});

/**
 * Move n2's clock on a second at a time, every 100 ms at most (a look under
 * way as it moved may need another), until `probe` answers; a minute at most.
 */
function stepUntil<T>(
  c: ClusterHarness,
  probe: () => T,
  what: string,
): Promise<NonNullable<T>> {
  const n2 = c.node("n2");
  let moved = 0;
  return until(
    async () => {
      const found = probe();
      if (!found && Date.now() - moved > 100) {
        moved = Date.now();
        await n2.clock.set(n2.clock.now() + 1000);
      }
      return found || undefined;
    },
    what,
    () => c.describe(),
    60_000,
  ) as Promise<NonNullable<T>>;
}

/**
 * Two nodes sharing 10 every-second jobs, settled; n2's wall and
 * monotonic clocks as `clocks` gives them, and its looks at the nodes
 * (each measures its clock) waiting while `clocks.held` is set: whichever
 * of its timers the clock wakes first, its fires are decided before a look
 * could fence it.
 */
async function settledPair(backend: Backend, clocks: PairClocks) {
  const db = await freshDatabase(backend);
  // A reading of the database's clock `slowMs` long: the reading of this machine's clock after
  // it is that much later (once: the database's clock went on meanwhile too).
  let lag = 0;
  const slowly = async <T>(read: () => Promise<T>): Promise<T> => {
    clocks.begun++;
    await clocks.held?.promise;
    const found = await read();
    lag = clocks.slowMs;
    clocks.readings++;
    return found;
  };
  const c = await ClusterHarness.create(db, ["n1", "n2"], (id) =>
    id === "n2"
      ? {
        wallClock: () => {
          const late = lag;
          lag = 0;
          return Date.now() + clocks.wallOff + late;
        },
        monotonic: () => performance.now() + clocks.monotonicOff,
        store: storeWith(db, {
          nodesAndNow: (target) => () => slowly(() => target.nodesAndNow()),
          databaseNow: (target) => () => slowly(() => target.databaseNow()),
        }),
      }
      : {});
  for (const node of c.nodes) node.runner.endAll();
  await c.start();
  await c.store.changeJobs(() => ({
    put: JOBS.map((id) => buildJob(id, { command: "true", schedule: { second: "*" } }, null, T0)),
    remove: [],
  }));
  await c.load(JOBS.length);
  const from = c.now() + SETTLED_MS;
  const fired = (at: number) =>
    c.until(async () => {
      const rows = (await c.runs()).filter((r) => r.scheduled_at === at);
      return rows.length >= JOBS.length ? rows : null;
    }, `the ${JOBS.length} fires at T0+${at - T0} recorded`);
  await c.set(from);
  await fired(from);
  const n2Owned = (await c.store.nodesAndNow()).nodes.find((n) => n.id === "n2")!.jobs_owned;
  assertEquals(n2Owned! > 0, true, await c.describe());
  return { c, from, fired, n2: c.node("n2"), n2Owned: n2Owned! };
}

for (const backend of BACKENDS) {
  Deno.test(`daemon cluster[${backend}]: a node whose clock is stepped ahead between two measures fires nothing by it, and records nothing missed; the others fire its share`, async () => {
    const clocks = pairClocks();
    const { c: cluster, from, fired, n2 } = await settledPair(backend, clocks);
    await using c = cluster;
    const n2Before = n2.runner.runs.length;

    // n2's clock is stepped 2 minutes ahead, its sweep (a second away) not come yet: its
    // timetable finds 2 minutes of fires due at once.
    const held = clocks.held = Promise.withResolvers<void>();
    clocks.wallOff = 120_000;
    c.freeze("n2");
    try {
      await n2.clock.set(from + 120_000);
      await c.until(() => n2.line(/clock moved/), "n2 to find its clock stepped");
    } finally {
      held.resolve();
    }
    assertMatch(
      n2.line(/clock moved/)!,
      /^this node's clock moved 1(19|20)\d{3} ms since it was last measured against the database's; it fires nothing until it is measured again$/,
    );
    // Measured at once, out of turn: its heartbeat says it is off, so the others take its share.
    await c.until(
      async () =>
        (await c.store.nodesAndNow()).nodes.find((n) => n.id === "n2" && n.skew_ms! > 100_000),
      "n2's heartbeat with its clock 2 minutes off",
    );
    for (let s = 1; s <= 3; s++) {
      await c.set(from + s * 1000);
      await fired(from + s * 1000);
    }
    const rows = (await c.runs()).filter((r) => r.scheduled_at > from);
    assertEquals(
      rows.filter((r) => r.node_id === "n2").map((r) => [r.job_id, r.scheduled_at - T0, r.status]),
      [],
      "n2 recorded nothing by its stepped clock",
    );
    assertEquals(n2.runner.runs.length, n2Before, "n2 started nothing by its stepped clock");
    assertEquals(
      rows.filter((r) => r.scheduled_at <= from + 3000 && r.status !== "missed").length,
      3 * JOBS.length,
      await c.describe(),
    );
  });

  Deno.test(`daemon cluster[${backend}]: a node whose machine slept (its monotonic clock stood still, its wall clock went on) is no stepped clock: it fires its share`, async () => {
    const clocks = pairClocks();
    const { c: cluster, from, fired, n2, n2Owned } = await settledPair(backend, clocks);
    await using c = cluster;
    const held = clocks.held = Promise.withResolvers<void>();
    // 10 s of sleep: the monotonic clock is 10 s behind where the wall and boot clocks say.
    clocks.monotonicOff = -10_000;
    let rows;
    try {
      await c.set(from + 1000);
      rows = await fired(from + 1000);
    } finally {
      held.resolve();
    }
    assertEquals(n2.line(/clock moved/), undefined, await c.describe());
    assertEquals(
      rows.filter((r) => r.node_id === "n2" && r.status !== "missed").length,
      n2Owned,
      await c.describe(),
    );
  });
}

/**
 * A settled pair whose n2's clock is stepped 2 minutes ahead while every
 * reading of the database's clock takes it 3 s (none measures it), once n2
 * has said why it still fires nothing; n2 frozen, its clock moved apart.
 */
async function steppedWhileSlow(backend: Backend) {
  const clocks = pairClocks();
  const pair = await settledPair(backend, clocks);
  const { c, from, n2 } = pair;
  const n2Before = n2.runner.runs.length;
  clocks.slowMs = 3000;
  const held = clocks.held = Promise.withResolvers<void>();
  clocks.wallOff += 120_000;
  c.freeze("n2");
  try {
    await n2.clock.set(from + 120_000);
    await c.until(() => n2.line(/clock moved/), "n2 to find its clock stepped");
  } finally {
    held.resolve();
  }
  const holding = await c.until(
    () => n2.line(/^this node still fires nothing/),
    "n2 to say why it still fires nothing",
  );
  return { ...pair, clocks, holding, n2Before };
}

for (const backend of BACKENDS) {
  Deno.test(`daemon cluster[${backend}]: a node stepped off while the database is too slow to measure its clock says it holds its fires and why, tries again at each look, and its heartbeat gives its share to the others`, async () => {
    const { c: cluster, from, fired, n2, clocks, holding, n2Before } = await steppedWhileSlow(
      backend,
    );
    await using c = cluster;
    assertMatch(
      holding,
      /^this node still fires nothing: its clock moved 1(19|20)\d{3} ms since it was last measured against the database's, and the database answered too slowly to measure it again \(in \d+ ms; a reading slower than 2000 ms cannot tell a clock off by more\); it tries again at each look at the nodes, and fires again once measured in step$/,
    );
    // Its heartbeat says its clock is off as the step moved it: the others take its share.
    await c.until(
      async () =>
        (await c.store.nodesAndNow()).nodes.find((n) => n.id === "n2" && n.skew_ms! > 100_000),
      "n2's heartbeat with its clock 2 minutes off",
    );
    for (let s = 1; s <= 3; s++) {
      const readings = clocks.readings;
      await c.set(from + s * 1000);
      await fired(from + s * 1000);
      // A second on n2's clock (and another, if its look was under way as the clock moved).
      let moved = 0;
      await c.until(async () => {
        if (clocks.readings > readings) return true;
        if (Date.now() - moved > 100) {
          moved = Date.now();
          await n2.clock.set(n2.clock.now() + 1000);
        }
        return false;
      }, "n2 to try its clock again");
    }
    assertEquals(n2.runner.runs.length, n2Before, "n2 started nothing by its stepped clock");
    assertEquals(n2.count(/^this node still fires nothing/), 1, "said once");
    const rows = (await c.runs()).filter((r) => r.scheduled_at > from);
    assertEquals(rows.filter((r) => r.node_id === "n2").length, 0, await c.describe());

    // The database answers in time again: measured, its clock is 2 minutes off, said as ever.
    clocks.slowMs = 0;
    await n2.clock.set(n2.clock.now() + 1000);
    await c.until(() => n2.line(/^this node's clock is \d+ ms off/), "n2 to be measured");
  });
}

for (const backend of BACKENDS) {
  Deno.test(`daemon cluster[${backend}]: a node that still fired nothing, its clock step undone before a measure could be taken, says it takes its share again once measured`, async () => {
    const { c: cluster, n2, clocks } = await steppedWhileSlow(backend);
    await using c = cluster;
    // The step is undone (NTP), and the database answers in time again.
    clocks.wallOff -= 120_000;
    clocks.slowMs = 0;
    // Its next look measures it (another second, if its look was under way as the clock moved).
    // A reading taken while the database was slow may still be under way (3 s).
    const back = await stepUntil(
      c,
      () => n2.line(/^this node's clock is measured again/),
      "n2 to be measured again",
    );
    assertEquals(
      back,
      "this node's clock is measured again, within 2000 ms of the database's: it takes its share of the jobs again",
    );
    await c.until(
      async () =>
        (await c.store.nodesAndNow()).nodes.find((n) =>
          n.id === "n2" && Math.abs(n.skew_ms!) < 2000
        ),
      "n2's heartbeat with its clock in step",
    );
  });
}

for (const backend of BACKENDS) {
  Deno.test(`daemon cluster[${backend}]: a reading of the database's clock across a step back of this node's tells nothing: the next one measures it`, async () => {
    const { c: cluster, n2, clocks } = await steppedWhileSlow(backend);
    await using c = cluster;
    // A reading under way is answered slow, as those before it: on a busy machine it may end
    // later, measuring in time the clock 2 minutes off, as it still is then. None is, once held.
    const held = await until(
      () => {
        if (clocks.readings !== clocks.begun) return null;
        clocks.slowMs = 0;
        return clocks.held = Promise.withResolvers<void>();
      },
      "n2's reading of the database's clock under way to be answered",
      async () => `${clocks.readings} of ${clocks.begun} readings answered\n${await c.describe()}`,
    );
    // A look begins on the stepped clock and waits for the database...
    const begun = clocks.begun;
    await stepUntil(c, () => clocks.begun > begun, "n2 to begin a reading");
    // ... while NTP steps the clock back in step: the reading ends 2 minutes before it began.
    clocks.wallOff -= 120_000;
    clocks.held = null;
    held.resolve();
    const back = await stepUntil(
      c,
      () => n2.line(/^this node's clock is (measured again|back within|-?\d+ ms off)/),
      "n2 to be measured again",
    );
    assertEquals(
      back,
      "this node's clock is measured again, within 2000 ms of the database's: it takes its share of the jobs again",
    );
  });
}
