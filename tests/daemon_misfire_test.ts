/**
 * Late fires, in-process with a fake clock, on every backend: fires missed
 * while the service was down become one `missed` row per job, or one
 * coalesced run; a stall does the same; the grace never drops below
 * 250 ms; a fire recorded far ahead (by hand) holds no job back.
 */
import { assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase } from "./helpers.ts";
import { DaemonHarness, describeRun, NODE_ID, T0 } from "./daemon_harness.ts";
import { buildJob, type JobOptions } from "../src/domain/job.ts";

const iso = (t: number) => new Date(t).toISOString();

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: a missed fire another node recorded is not this node's to log or count`, async () => {
    const counted: string[] = [];
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "jobsmanager.misfire_grace_time": 1, "jobsmanager.coalesce": false },
      observer: {
        started: () => {},
        notified: () => {},
        ended: (job, status) => counted.push(`${job} ${status}`),
      },
    });
    await h.job("late", { schedule: { second: "*" } });
    const fired = (at: number, node_id: string) => ({
      job_id: "late",
      scheduled_at: at,
      status: "success" as const,
      trigger: "schedule" as const,
      node_id,
    });
    // This node last fired it at T0, and stalls; another node records the fire at T0+9 s.
    await h.store.claimRuns([fired(T0, NODE_ID)]);
    await h.clock.set(T0 + 200);
    await h.start();
    await h.store.claimRuns([fired(T0 + 9000, "other")]);
    await h.clock.set(T0 + 10_300);
    // The fire at T0+10 s runs; the missed row for T0+1 s … T0+9 s lost its claim to the other's.
    (await h.started("late", T0 + 10_000)).finish();
    await h.run("late", T0 + 10_000, "success");
    assertEquals(
      (await h.runs("late")).map((r) => `${r.scheduled_at - T0} ${r.status} ${r.node_id}`),
      [`0 success ${NODE_ID}`, "9000 success other", `10000 success ${NODE_ID}`],
    );
    assertEquals(counted, ["late success"]);
    assertEquals(h.lines.filter((l) => l.includes("fires missed")), []);
  });

  Deno.test(`daemon[${backend}]: fires missed while down: one missed row, or one coalesced run`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "jobsmanager.misfire_grace_time": 1, "jobsmanager.coalesce": false },
    });
    // The previous life of the service had two jobs, and last fired both at T0-10 s.
    const last = T0 - 10_000;
    const before = (id: string, options: JobOptions) =>
      h.store.changeJob(id, () => buildJob(id, { command: "true", ...options }, null, last - 1000));
    await before("strict", { schedule: { second: "*" } });
    await before("merge", { schedule: { second: "*" }, coalesce: true, misfire_grace_time: "60" });
    await h.job("new", { schedule: { second: "*" } });
    await h.store.claimRuns(["strict", "merge"].map((job_id) => ({
      job_id,
      scheduled_at: last,
      status: "success" as const,
      trigger: "schedule" as const,
      node_id: NODE_ID,
      started_at: last,
      finished_at: last,
    })));
    await h.clock.set(T0 + 300);
    await h.start();

    const missed = await h.run("strict", T0 - 1000, "missed");
    assertEquals(
      missed.note,
      `9 fires from ${iso(T0 - 9000)} to ${
        iso(T0 - 1000)
      } came later than misfire_grace_time (1 s)`,
    );
    assertEquals(missed.finished_at, T0 + 300);
    // The fire at T0 is 300 ms late, within the grace: it runs.
    const strict = await h.run("strict", T0, "running");
    assertEquals(strict.started_at, T0 + 300);
    const merged = await h.run("merge", T0, "running");
    assertEquals(merged.note, "coalesced 10 fires into one run");
    (await h.started("merge", T0)).finish();
    const done = await h.run("merge", T0, "success");
    assertEquals(done.note, "coalesced 10 fires into one run", "the note outlives the run");
    (await h.started("strict", T0)).finish();
    await h.run("strict", T0, "success");
    // "new" never fired: it resumes after its last change (T0), with nothing to catch up.
    await h.clock.set(T0 + 1000);
    for (const job of ["strict", "merge", "new"]) await h.run(job, T0 + 1000, "running");
    const rows = await h.runs();
    const summary = rows.map((r) => `${r.job_id} ${r.scheduled_at - T0} ${r.status}`).sort();
    assertEquals(summary, [
      "merge -10000 success",
      "merge 0 success",
      "merge 1000 running",
      "new 1000 running",
      "strict -1000 missed",
      "strict -10000 success",
      "strict 0 success",
      "strict 1000 running",
    ], rows.map(describeRun).join("\n"));
  });

  Deno.test(`daemon[${backend}]: a job's first fire, due while the service restarted, runs late within its grace`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    // Added at T0, due at T0+5 s; the service starts at T0+7 s.
    await h.job("lenient", { schedule: { second: "5" }, misfire_grace_time: "30" });
    await h.job("strict", { schedule: { second: "5" }, misfire_grace_time: "1" });
    await h.clock.set(T0 + 7000);
    await h.start();
    const late = await h.run("lenient", T0 + 5000, "running");
    assertEquals(late.started_at, T0 + 7000, describeRun(late));
    (await h.started("lenient", T0 + 5000)).finish();
    await h.run("lenient", T0 + 5000, "success");
    // Past its grace: a job that never fired is not owed it (no row), and fires next at T0+65 s.
    await h.clock.set(T0 + 65_000);
    await h.run("strict", T0 + 65_000, "running");
    const strict = (await h.runs()).filter((r) => r.job_id === "strict");
    assertEquals(
      strict.map((r) => r.scheduled_at - T0),
      [65_000],
      strict.map(describeRun).join("\n"),
    );
  });

  Deno.test(`daemon[${backend}]: after a stall the late fires are missed or coalesced`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("strict", { schedule: { second: "*" } });
    await h.job("merge", { schedule: { second: "*" }, coalesce: true });
    await h.start();
    await h.clock.set(T0 + 1000);
    for (const job of ["strict", "merge"]) (await h.started(job, T0 + 1000)).finish();
    await h.run("strict", T0 + 1000, "success");
    await h.run("merge", T0 + 1000, "success");
    // The event loop was stalled from T0+1 s to T0+4.5 s.
    await h.clock.set(T0 + 4500);
    const missed = await h.run("strict", T0 + 3000, "missed");
    assertEquals(
      missed.note,
      `2 fires from ${iso(T0 + 2000)} to ${
        iso(T0 + 3000)
      } came later than misfire_grace_time (1 s)`,
    );
    assertEquals((await h.run("strict", T0 + 4000, "running")).started_at, T0 + 4500);
    const merged = await h.run("merge", T0 + 4000, "running");
    assertEquals(merged.note, "coalesced 3 fires into one run");
    assertEquals((await h.runs()).length, 5, (await h.runs()).map(describeRun).join("\n"));
  });

  Deno.test(`daemon[${backend}]: a grace of 0 still runs a fire up to 250 ms late`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "jobsmanager.misfire_grace_time": 0 },
    });
    await h.job("strict", { schedule: { second: "*" } });
    await h.start();
    await h.clock.set(T0 + 1250);
    (await h.started("strict", T0 + 1000)).finish();
    await h.run("strict", T0 + 1000, "success");
    await h.clock.set(T0 + 2251);
    const missed = await h.run("strict", T0 + 2000, "missed");
    assertEquals(
      missed.note,
      `1 fire from ${iso(T0 + 2000)} to ${
        iso(T0 + 2000)
      } came later than misfire_grace_time (0.25 s)`,
    );
  });

  Deno.test(`daemon[${backend}]: a fire recorded far ahead (2099, by hand) does not stop its job, and is said once with the SQL that removes it`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("ahead", { schedule: { second: "*" } });
    const fired = (scheduled_at: number, node_id: string) => ({
      job_id: "ahead",
      scheduled_at,
      status: "success" as const,
      trigger: "schedule" as const,
      node_id,
    });
    // Another node, its clock ahead within the skews, fired it at T0+3 s; a DBA wrote one for 2099.
    const year2099 = Date.UTC(2099, 0, 1);
    const [, far] = await h.store.claimRuns([
      fired(T0 + 3000, "other"),
      fired(year2099, "by-hand"),
    ]);
    await h.clock.set(T0 + 300);
    await h.start();
    await h.clock.set(T0 + 4000);
    // It goes on after the other node's fire, as it would without the row of 2099.
    await h.run("ahead", T0 + 4000, "running");
    assertEquals(
      (await h.runs("ahead")).map((r) => `${r.scheduled_at - T0} ${r.node_id}`),
      [`3000 other`, `${year2099 - T0} by-hand`, `4000 ${NODE_ID}`],
    );
    assertEquals(h.count(/recorded as its fire of/), 1, h.lines.join("\n"));
    assertEquals(
      h.line(/recorded as its fire of/),
      `job ahead: run ${far} is recorded as its fire of 2099-01-01T00:00:00.000Z, ${
        Math.round((year2099 - T0 - 300) / 1000)
      } s ahead of this service's clock; the job goes on from its fires before it, not from then. If the row was written by hand, remove it: DELETE FROM jm_runs WHERE id = ${far}`,
    );
  });

  for (
    const [jobs, said] of [
      [["a", "b", "c"], "3 runs of 3 jobs"],
      [["a", "a"], "2 runs of job a"],
    ] as const
  ) {
    Deno.test(`daemon[${backend}]: fires recorded ahead (a clock stepped back): ${said} in one line`, async () => {
      await using h = await DaemonHarness.create(await freshDatabase(backend));
      for (const id of new Set(jobs)) await h.job(id, { schedule: { second: "*" } });
      const ids = await h.store.claimRuns(
        jobs.map((job_id, i) => ({
          job_id,
          scheduled_at: T0 + 10_000 + i * 1000,
          status: "success" as const,
          trigger: "schedule" as const,
          node_id: NODE_ID,
        })),
      );
      await h.clock.set(T0 + 300);
      await h.start();
      await h.clock.set(T0 + 1000);
      await h.run("a", T0 + 1000, "running");
      assertEquals(h.count(/ahead of this service's clock/), 1, h.lines.join("\n"));
      assertEquals(
        h.line(/ahead of this service's clock/),
        `${said} are recorded as fires up to ${
          jobs.length + 9
        } s ahead of this service's clock; their jobs go on from their fires before them, not from then. If this clock was stepped back since they ran, they are real and nothing needs doing; if the rows were written by hand, remove them: DELETE FROM jm_runs WHERE id IN (${
          ids.join(", ")
        })`,
      );
    });
  }
}
