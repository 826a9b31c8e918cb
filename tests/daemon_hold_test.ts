/**
 * A node that holds its fires through an outage (cluster.on_database_outage
 * hold), in-process with a fake clock, when the claim of a fire fails on
 * its way back: the database wrote the fire's row, but the answer was
 * lost. Once the database is back the fire is decided again; it runs on
 * the row its first claim wrote, or that row ends `missed`: never a row
 * left `running` with nothing behind it.
 */
import { assertEquals, assertMatch } from "./assert.ts";
import { type Backend, BACKENDS, freshDatabase, type TestDatabase } from "./helpers.ts";
import { DaemonHarness, describeRun, T0, uncounted, until } from "./daemon_harness.ts";
import { Metrics } from "../src/http/metrics.ts";
import type { Store } from "../src/store/store.ts";
import type { JobOptions } from "../src/domain/job.ts";
import type { Settings } from "../src/config/config.ts";
import { appendStdin, jsonLines, tempDir } from "./notify_fixtures.ts";

const at = (s: number) => T0 + s * 1000;
const HELD = /^the database did not answer; holding 1 fires/;
const BACK = /^the database is back after/;

/** Stores on `db` whose next claim, once `lose.next` is set, is written but answered by an error. */
function losingAnswers(db: TestDatabase, lose: { next: boolean }): () => Store {
  return () => {
    const store = db.open();
    const claimRuns = store.claimRuns.bind(store);
    store.claimRuns = async (runs) => {
      const ids = await claimRuns(runs);
      if (!lose.next) return ids;
      lose.next = false;
      throw new Error("read ECONNRESET: the connection was lost");
    };
    return store;
  };
}

/** A harness holding through outages, its job `tick` due every second, its claim at 1 s lost. */
async function lostAtOne(
  backend: Backend,
  graceSeconds: number,
  metrics?: Metrics,
): Promise<DaemonHarness> {
  const db = await freshDatabase(backend);
  const lose = { next: false };
  const h = await DaemonHarness.create(db, {
    observer: metrics,
    settings: {
      "cluster.on_database_outage": "hold",
      "jobsmanager.misfire_grace_time": graceSeconds,
    },
    store: losingAnswers(db, lose),
    // The test moves the clock while a claim is on its way: that is no outage.
    claimTimeoutMs: 600_000,
  });
  await h.job("tick", { schedule: { second: "*" } });
  h.runner.endAll();
  await h.start();
  lose.next = true;
  await h.clock.set(at(1));
  await h.until(() => h.line(HELD), "the fire at 1 s to be held");
  return h;
}

/** Wait until `/metrics` counts each final row of `tick` once. */
function everyRowCounted(h: DaemonHarness, metrics: Metrics): Promise<true> {
  const wrong = () => uncounted(h, metrics, ["tick"]);
  return until(async () => await wrong() === "" || null, "every final row counted", wrong);
}

/** Claims a `gated` harness's store was asked for, has on their way, and has answered. */
interface Claims {
  asked: number;
  inFlight: number;
  answered: number;
}

/**
 * Move the clock to `at`, past the probe (1 s after the outage began),
 * wait until it finds the database back, then a second on: the held
 * fires are decided again by then. With `claims` (a harness that gives up
 * on a claim after a second of its clock), the second waits for the claim
 * of the held fires to be answered: a real database under load may take
 * longer, and a clock moved meanwhile would make that an outage of its own.
 */
async function backAt(h: DaemonHarness, at: number, claims?: Claims): Promise<void> {
  const before = claims?.answered ?? 0;
  await h.clock.set(at);
  await h.until(() => h.line(BACK), "the database to be back");
  if (claims) {
    await h.until(
      () => claims.answered > before && claims.inFlight === 0,
      "the held fires' claim to be answered",
    );
  }
  await h.clock.set(at + 1000);
}

for (const backend of BACKENDS) {
  Deno.test(`daemon hold[${backend}]: a held fire whose claim's answer was lost runs on the row that claim wrote`, async () => {
    await using h = await lostAtOne(backend, 3600);
    const [written] = await h.runs("tick");
    assertEquals(
      [written.scheduled_at, written.status],
      [at(1), "running"],
      "the lost claim's row",
    );
    assertEquals(h.runner.of("tick").map(String), [], "nothing runs while the fire is held");

    await backAt(h, at(2));
    const ran = await h.run("tick", at(1), "success");
    assertEquals(ran.id, written.id, "the run is recorded on the row the lost claim wrote");
    assertEquals(h.runner.of("tick").filter((r) => r.scheduledAt === at(1)).length, 1);
    // The fire at 2 s, decided with it, finds it running: skipped by max_instances.
    const rows = await h.until(async () => {
      const rows = await h.runs("tick");
      return rows.every((r) => r.status !== "running" && r.status !== "queued") ? rows : null;
    }, "every fire to end");
    assertEquals(
      new Set(rows.map((r) => r.scheduled_at)).size,
      rows.length,
      "a fire recorded twice",
    );
  });

  Deno.test(`daemon hold[${backend}]: a held fire whose claim's answer was lost, back past its grace, ends missed, counted`, async () => {
    const metrics = new Metrics();
    await using h = await lostAtOne(backend, 1, metrics);
    const [written] = await h.runs("tick");
    await backAt(h, at(4));
    const row = await h.until(async () => {
      const now = (await h.runs("tick")).find((r) => r.id === written.id)!;
      return now.status === "running" ? null : now;
    }, "the lost claim's row to end");
    assertEquals(row.status, "missed", describeRun(row));
    assertMatch(row.note!, /^held: the database went away as this fire was claimed/);
    assertEquals(h.runner.of("tick").filter((r) => r.scheduledAt === at(1)).map(String), []);
    // Logged once the update is written: the row may be read back before.
    await h.until(
      () => h.line(/^1 fires held after their claims' answers were lost did not run after all/),
      "the ended lost claim to be logged",
    );
    await everyRowCounted(h, metrics);
  });
}

/**
 * Move the clock to `at` and wait for the claim of its fires to be asked:
 * its time limit runs from the clock as it was then (a clock moved on
 * before, as a busy machine let it, gave the claim a second from there).
 */
async function claimAsked(h: DaemonHarness, gate: Claims, at: number): Promise<void> {
  const before = gate.asked;
  await h.clock.set(at);
  await h.until(() => gate.asked > before, `the claim of the fires at T0+${at - T0}`);
}

/**
 * A harness holding through outages, its job `tick` due every second
 * (or as `more.job` says, with `more.settings`);
 * `gate.claims` set: the next claim waits for it (a database that stalls),
 * or with `gate.refuse`, fails unwritten (a connection cut on the way).
 */
async function gated(
  backend: Backend,
  metrics?: Metrics,
  more: { job?: Partial<JobOptions>; settings?: Partial<Settings> } = {},
): Promise<{
  h: DaemonHarness;
  gate: { claims: PromiseWithResolvers<void> | null; refuse: boolean } & Claims;
}> {
  const db = await freshDatabase(backend);
  const gate = {
    claims: null as PromiseWithResolvers<void> | null,
    refuse: false,
    asked: 0,
    inFlight: 0,
    answered: 0,
  };
  const h = await DaemonHarness.create(db, {
    settings: { "cluster.on_database_outage": "hold", ...more.settings },
    observer: metrics,
    store: () => {
      const store = db.open();
      const claimRuns = store.claimRuns.bind(store);
      store.claimRuns = async (runs) => {
        gate.asked++;
        if (gate.refuse) {
          gate.refuse = false;
          throw new Error("write EPIPE: the connection was cut");
        }
        await gate.claims?.promise;
        gate.inFlight++;
        try {
          return await claimRuns(runs);
        } finally {
          gate.inFlight--;
          gate.answered++;
        }
      };
      return store;
    },
  });
  await h.job("tick", { schedule: { second: "*" }, ...more.job });
  h.runner.endAll();
  await h.start();
  return { h, gate };
}

for (const backend of BACKENDS) {
  Deno.test(`daemon hold[${backend}]: a held run whose claim lands after all is recorded missed, never started, and counted`, async () => {
    const metrics = new Metrics();
    const { h: harness, gate } = await gated(backend, metrics);
    await using h = harness;
    gate.claims = Promise.withResolvers();
    await claimAsked(h, gate, at(1));
    // The claim gives up after a second (claimTimeoutMs), and the node holds.
    await h.clock.set(at(1) + 1000);
    await h.until(() => h.line(HELD), "the fire at 1 s to be held");
    gate.claims.resolve();
    // What it writes of the late claim waits, with the other records, until the database is back.
    await backAt(h, at(3), gate);
    const row = await h.until(async () => {
      const row = (await h.runs("tick")).find((r) => r.scheduled_at === at(1));
      return row?.status === "missed" ? row : null;
    }, "the late claim's row to end missed");
    assertEquals(
      [row.started_at, row.note],
      [
        null,
        "held: its claim reached the database too late to start it (cluster.on_database_outage)",
      ],
      describeRun(row),
    );
    assertEquals(h.runner.of("tick").filter((r) => r.scheduledAt === at(1)).map(String), []);
    await everyRowCounted(h, metrics);
  });

  // Seen in CI as an on_failure that never came: a missed fire of a daily job decided again at the
  // same instant found the row its late claim wrote, and took it for another node's.
  Deno.test(`daemon hold[${backend}]: held, rows whose claim lands after all are told on_failure once each: a missed fire and a run that did not start`, async () => {
    await using dir = await tempDir();
    const file = `${dir.path}/failure.jsonl`;
    const metrics = new Metrics();
    const { h: harness, gate } = await gated(backend, metrics, {
      job: { schedule: { second: "1,3" }, on_failure: appendStdin(file) },
      settings: { "notify.min_interval": 0 },
    });
    await using h = harness;
    gate.claims = Promise.withResolvers();
    // At 3 s: the fire at 1 s is past its grace (a missed row), the one at 3 s due: one claim.
    await claimAsked(h, gate, at(3));
    await h.clock.set(at(3) + 1000);
    await h.until(() => h.line(/^the database did not answer; holding 2 fires/), "the held fires");
    gate.claims.resolve();
    await backAt(h, at(5), gate);
    const rows = await h.until(async () => {
      const rows = await h.runs("tick");
      return rows.length === 2 && rows.every((r) => r.status === "missed") ? rows : null;
    }, "both fires' rows to end missed");
    const told = await h.until(async () => {
      const lines = await jsonLines(file);
      return lines.length >= 2 ? lines : null;
    }, "on_failure of both rows");
    assertEquals(
      told.map((p) => [p.run_id, p.status]).sort(),
      rows.map((r) => [r.id, "missed"]).sort(),
      rows.map(describeRun).join("\n"),
    );
    await everyRowCounted(h, metrics);
    assertEquals((await jsonLines(file)).length, 2, "a row told twice");
  });

  Deno.test(`daemon hold[${backend}]: held, the missed fires of a range are all decided again, from the first`, async () => {
    const { h: harness, gate } = await gated(backend);
    await using h = harness;
    // A pause: fires 1-4 s are past their grace at 6 s, and go in one missed row.
    gate.refuse = true;
    await h.clock.set(at(6));
    await h.until(
      () => h.line(/^the database did not answer; holding \d+ fires/),
      "the held fires",
    );
    await backAt(h, at(7), gate);
    const missed = await h.until(async () => {
      const rows = (await h.runs("tick")).filter((r) => r.status === "missed");
      return rows.length > 0 ? rows : null;
    }, "the missed fires to be recorded");
    assertMatch(missed[0].note!, new RegExp(`^\\d+ fires from ${new Date(at(1)).toISOString()} `));
  });
}
