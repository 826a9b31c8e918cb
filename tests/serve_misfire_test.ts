/**
 * Fires that came due while `jobsmanager serve` was down, on every
 * backend: beyond misfire_grace_time they become one `missed` summary row
 * per job, and with coalesce they become one run that notes how many fires
 * it stands for. This test is about real downtime, so the service stays
 * down until the clock has passed its last fire by DOWNTIME_MS.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { type Backend, BACKENDS, freshDatabase, waitFor } from "./helpers.ts";
import {
  describeRuns,
  jm,
  type RunRow,
  runs,
  runsDetail,
  Serve,
  started,
  writeConfig,
} from "./serve_helpers.ts";

const DOWNTIME_MS = 3000;

function lastFire(rows: RunRow[]): number {
  return Math.max(...rows.map((r) => r.scheduled_at));
}

/** Two every-second jobs, the service stopped for DOWNTIME_MS and started again. */
async function downtime(backend: Backend): Promise<void> {
  await using db = await freshDatabase(backend);
  await jm(db, "job", "add", "strict", "--second", "*", "--command", "echo strict");
  await jm(
    db,
    "job",
    "add",
    "merge",
    "--second",
    "*",
    "--coalesce",
    "--misfire-grace-time",
    "60",
    "--command",
    "echo merge",
  );
  const config = await writeConfig(db, { misfire_grace_time: 1, coalesce: false });
  const detail = runsDetail(db);
  {
    await using first = new Serve(db, config);
    await waitFor(async () => {
      const rows = await runs(db);
      return ["strict", "merge"].every((job) =>
        rows.filter((r) => r.job_id === job && r.status === "success").length >= 2
      );
    }, { timeoutMs: 20_000, what: "two runs of each job", detail });
    assertEquals((await first.terminate()).status.code, 0, first.stderr);
  }
  const before = await runs(db);
  const lastStrict = lastFire(before.filter((r) => r.job_id === "strict"));
  const lastMerge = lastFire(before.filter((r) => r.job_id === "merge"));
  // The downtime is this test's input, not a state to wait for: stay down
  // until the clock is DOWNTIME_MS past the last fire, however long the stop took.
  const upAgain = Math.max(lastStrict, lastMerge) + DOWNTIME_MS;
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, upAgain - Date.now())));
  let restarted: number;
  {
    await using second = new Serve(db, config);
    restarted = second.startedAt;
    await waitFor(async () => {
      const rows = (await runs(db)).filter((r) => r.started_at! > restarted);
      return ["strict", "merge"].every((job) =>
        rows.filter((r) => r.job_id === job && r.status === "success").length >= 2
      );
    }, { timeoutMs: 20_000, what: "two runs of each job after the restart", detail });
    assertEquals((await second.terminate()).status.code, 0, second.stderr);
  }
  const all = await runs(db);

  // strict (grace 1 s, no coalesce): one summary row for the whole gap.
  const strict = all.filter((r) => r.job_id === "strict");
  const missed = strict.filter((r) => r.status === "missed");
  assertEquals(missed.length, 1, `strict:\n${describeRuns(strict)}`);
  const m = missed[0];
  const note = m.note ?? "";
  const match = note.match(
    /^(\d+) fires from (\S+) to (\S+) came later than misfire_grace_time \(1 s\)$/,
  );
  assert(match, `missed note: ${note}`);
  const [count, from, to] = [Number(match[1]), Date.parse(match[2]), Date.parse(match[3])];
  assertEquals(from, lastStrict + 1000, "the gap starts right after the last fire");
  assertEquals(to, m.scheduled_at, "the row stands at the last missed fire");
  assertEquals(count, (to - from) / 1000 + 1, "the count is the fires in the gap");
  // The fire just before the restart is within the grace and runs.
  assert(count >= DOWNTIME_MS / 1000 - 1, `only ${count} fires missed`);
  // Every fire instant of strict is accounted for exactly once.
  const instants = strict.filter((r) => r.status !== "missed").map((r) => r.scheduled_at);
  for (let t = from; t <= to; t += 1000) instants.push(t);
  instants.sort((a, b) => a - b);
  for (let i = 1; i < instants.length; i++) {
    assertEquals(instants[i] - instants[i - 1], 1000, `strict:\n${describeRuns(strict)}`);
  }

  // merge (coalesce, grace 60 s): the gap becomes the next run, noting how many fires it stands for.
  const merge = all.filter((r) => r.job_id === "merge");
  assert(merge.every((r) => r.status === "success"), `merge:\n${describeRuns(merge)}`);
  const after = merge.filter((r) => r.scheduled_at > lastMerge);
  const coalesced = after[0];
  assert(started(coalesced) && coalesced.started_at! >= restarted, describeRuns(merge));
  const n = (coalesced.scheduled_at - lastMerge) / 1000;
  assert(n >= DOWNTIME_MS / 1000, `merge coalesced only ${n} fires:\n${describeRuns(merge)}`);
  assertMatch(coalesced.note ?? "", new RegExp(`^coalesced ${n} fires into one run$`));
  assert(coalesced.scheduled_at <= coalesced.started_at!, "ran before its fire time");
  for (let i = 1; i < after.length; i++) {
    assertEquals(after[i].scheduled_at - after[i - 1].scheduled_at, 1000, describeRuns(merge));
    assertEquals(after[i].note, null);
  }
}

for (const backend of BACKENDS) {
  Deno.test(
    `serve[${backend}]: fires missed while down: one missed row, or one coalesced run that says how many`,
    () => downtime(backend),
  );
}
