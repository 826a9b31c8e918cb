/**
 * Two nodes started together, in the window where one still sees itself
 * alone (a lone node looks at jm_nodes again only at its next heartbeat)
 * and fires every job, the other's share too. Where both claimed a fire
 * and the other's claim won, the loser holds a slot for the winner's run
 * (max_instances counts it); the loser's next fire of that job is skipped
 * only while that run's row still says it runs, and the skip's note names
 * the node it runs on. On both backends: the store allows two services on
 * one SQLite file in one process.
 */
import { assertEquals, assertMatch } from "./assert.ts";
import { ClusterHarness, describeRun, storeWith, T0 } from "./daemon_harness.ts";
import { type Backend, BACKENDS, freshDatabase } from "./helpers.ts";
import { assignJobs } from "../src/domain/share.ts";
import { buildJob } from "../src/domain/job.ts";
import type { Run } from "../src/domain/run.ts";

/** The first fire of the jobs, every second from T0. */
const FIRST = T0 + 1000;

/**
 * n1 started first, alone till its next heartbeat (a minute off), then n2,
 * which sees n1 and fires its share of the jobs: one job, "slow" (every
 * second, max_instances 1), n2's by the share of two. Its fire at FIRST is
 * claimed by n2 (n1's clock stands still meanwhile), then by n1, whose
 * claim loses: n1 holds a slot for n2's run. Returns that run, running.
 */
async function lostFirstClaim(c: ClusterHarness, heldByN1: Run["id"][][]) {
  const [n1, n2] = [c.node("n1"), c.node("n2")];
  // Whichever name the share of two gives n2.
  const job = ["slow", "slow2", "slow3", "slow4"].find((id) =>
    assignJobs([id], ["n1", "n2"]).get(id) === "n2"
  )!;
  await c.store.changeJobs(() => ({
    put: [
      buildJob(job, { command: "true", schedule: { second: "*" }, max_instances: "1" }, null, T0),
    ],
    remove: [],
  }));
  n1.runner.endAll();
  await n1.start();
  await n2.start();
  c.freeze("n1");
  await c.set(FIRST);
  const run = await n2.started(job, FIRST);
  await c.thaw("n1");
  // n1 fired it too, lost the claim, and asked which runs elsewhere to hold: n2's.
  await c.until(
    () => heldByN1.some((ids) => ids.includes(run.runId!)),
    `n1 to hold a slot for n2's run ${run.runId} of ${job} (n1 held ${JSON.stringify(heldByN1)})`,
  );
  assertEquals(n1.runner.of(job), [], await c.describe());
  return { job, run, n1, n2 };
}

/** The row of `job`'s fire at `at`, once n1 has recorded it (n2 frozen). */
function firedAt(c: ClusterHarness, job: string, at: number): Promise<Run> {
  return c.until(
    async () => (await c.runs(job)).find((r) => r.scheduled_at === at && r.node_id === "n1"),
    `n1's row of ${job} fired at T0+${at - T0}`,
  );
}

interface Unanswered {
  asked: boolean;
  later: (() => void)[];
}

/**
 * Nodes n1 and n2, n1's answers of activeRunsElsewhere (run ids) kept in
 * `heldByN1`; while `unanswered.asked` is set, n1's questions about given
 * runs get no answer (a database that does not answer them in time) till
 * the test calls theirs in `unanswered.later`.
 */
async function cluster(
  backend: Backend,
  heldByN1: Run["id"][][],
  unanswered: Unanswered = { asked: false, later: [] },
): Promise<ClusterHarness> {
  const db = await freshDatabase(backend);
  return await ClusterHarness.create(db, ["n1", "n2"], (id) =>
    id === "n1"
      ? {
        store: storeWith(db, {
          activeRunsElsewhere: (store) => async (nodeId, among) => {
            if (unanswered.asked && among !== undefined) {
              await new Promise<void>((answer) => unanswered.later.push(answer));
            }
            const active = await store.activeRunsElsewhere(nodeId, among);
            heldByN1.push(active.map((r) => r.id));
            return active;
          },
        }),
      }
      : {});
}

for (const backend of BACKENDS) {
  const test = (name: string, fn: () => Promise<void>) =>
    Deno.test(`daemon cluster start[${backend}]: ${name}`, fn);

  test("the loser of a claim runs the next fire once the winner's run has ended, its poll not come yet", async () => {
    const heldByN1: number[][] = [];
    await using c = await cluster(backend, heldByN1);
    const { job, run, n1 } = await lostFirstClaim(c, heldByN1);
    run.finish();
    await c.until(
      async () => (await c.runs(job)).find((r) => r.id === run.runId && r.status === "success"),
      `n2's run ${run.runId} of ${job} recorded ended`,
    );
    // n1 alone fires the next second: n2 would claim it first as often as not.
    c.freeze("n2");
    await c.set(FIRST + 1000);
    const next = await firedAt(c, job, FIRST + 1000);
    // It ran: n1's fake runs end at once, so its row may say it ended already (CI at 03e4093).
    assertEquals(
      { ran: ["running", "success"].includes(next.status), note: next.note },
      { ran: true, note: null },
      `${describeRun(next)}\n${await c.describe()}`,
    );
    await n1.started(job, FIRST + 1000);
    await c.thaw("n2");
  });

  test("the loser of a claim skips the next fire while the winner's run runs, and says where it runs", async () => {
    const heldByN1: number[][] = [];
    await using c = await cluster(backend, heldByN1);
    const { job, run, n1 } = await lostFirstClaim(c, heldByN1);
    c.freeze("n2");
    await c.set(FIRST + 1000);
    const next = await firedAt(c, job, FIRST + 1000);
    assertEquals(next.status, "skipped", await c.describe());
    assertMatch(
      next.note ?? "",
      /^max_instances \(1\) runs were still running \(1 of them on node n2\)$/,
    );
    assertEquals(n1.runner.of(job), [], await c.describe());
    assertEquals(run.running, true);
    await c.thaw("n2");
  });

  test("a database slow to tell whether the winner's run ended holds the loser's fire a quarter second at most", async () => {
    const heldByN1: number[][] = [];
    const unanswered: Unanswered = { asked: false, later: [] };
    await using c = await cluster(backend, heldByN1, unanswered);
    const { job, run, n1 } = await lostFirstClaim(c, heldByN1);
    run.finish();
    await c.until(
      async () => (await c.runs(job)).find((r) => r.id === run.runId && r.status === "success"),
      `n2's run ${run.runId} of ${job} recorded ended`,
    );
    unanswered.asked = true;
    c.freeze("n2");
    try {
      await c.set(FIRST + 1000);
      // The fire waits for the answer till then, and not past it.
      await c.until(
        () => n1.clock.wakeUps.includes(FIRST + 1250),
        "n1 to wait for the rows of the runs on n2 till T0+2250",
      );
      await n1.clock.set(FIRST + 1250);
      const next = await firedAt(c, job, FIRST + 1000);
      // Without an answer, the run on n2 still counts, as the poll would have it.
      assertEquals(next.status, "skipped", await c.describe());
      assertMatch(next.note ?? "", /\(1 of them on node n2\)$/);
    } finally {
      // The answers come at last: a failed test's daemon gets to its stop.
      unanswered.asked = false;
      for (const answer of unanswered.later) answer();
    }
    await c.thaw("n2");
  });
}
