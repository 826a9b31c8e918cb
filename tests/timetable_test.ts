/** The timetable's decisions, driven by instants passed in: no sleeping. */
import { assertEquals } from "./assert.ts";
import { buildJob, type Job, type JobOptions } from "../src/domain/job.ts";
import { decideLate, type JobDefaults, Timetable } from "../src/daemon/timetable.ts";
import { compileSchedule, scheduleOrOutline } from "../src/cron/croner.ts";
import type { FieldName } from "../src/cron/grammar.ts";

const DEFAULTS: JobDefaults = {
  timezone: "UTC",
  coalesce: false,
  maxInstances: 1,
  misfireGraceTime: 1,
};
const T0 = Date.UTC(2026, 10, 26, 12, 0, 0); // 2026-11-26T12:00:00Z

function job(id: string, options: JobOptions): Job {
  return buildJob(id, { command: "true", ...options }, null, T0);
}

Deno.test("decideLate: on time runs, late beyond the grace is missed", () => {
  assertEquals(decideLate([1000, 2000, 3000], 3500, { graceMs: 1000, coalesce: false }), {
    run: [3000],
    missed: [1000, 2000],
    coalesced: 0,
  });
  assertEquals(decideLate([3000], 4000, { graceMs: 1000, coalesce: false }), {
    run: [3000],
    missed: [],
    coalesced: 0,
  });
  assertEquals(decideLate([3000], 4001, { graceMs: 1000, coalesce: false }), {
    run: [],
    missed: [3000],
    coalesced: 0,
  });
});

Deno.test("decideLate: coalesce folds the earlier fires into the latest, if it is on time", () => {
  assertEquals(decideLate([1000, 2000, 3000], 3500, { graceMs: 1000, coalesce: true }), {
    run: [3000],
    missed: [],
    coalesced: 2,
  });
  assertEquals(decideLate([1000, 2000, 3000], 9000, { graceMs: 1000, coalesce: true }), {
    run: [],
    missed: [1000, 2000, 3000],
    coalesced: 0,
  });
});

Deno.test("an every-second job fires on whole seconds, each once", () => {
  const t = new Timetable(DEFAULTS);
  t.set(job("tick", { schedule: { second: "*" } }), T0 + 200);
  assertEquals(t.nextDue(), T0 + 1000);
  assertEquals(t.takeDue(T0 + 999), { run: [], missed: [] });
  const fired: number[] = [];
  for (let now = T0 + 1000; now <= T0 + 5000; now += 250) {
    fired.push(...t.takeDue(now).run.map((d) => d.scheduledAt));
  }
  assertEquals(fired, [1, 2, 3, 4, 5].map((s) => T0 + s * 1000));
});

Deno.test("after a stall, fires beyond the grace become one missed summary per job", () => {
  const t = new Timetable(DEFAULTS);
  t.set(job("tick", { schedule: { second: "*" } }), T0);
  const decision = t.takeDue(T0 + 10_500);
  assertEquals(decision.run.map((d) => d.scheduledAt), [T0 + 10_000]);
  assertEquals(decision.missed.length, 1);
  const missed = decision.missed[0];
  assertEquals([missed.first, missed.last, missed.count, missed.more], [
    T0 + 1000,
    T0 + 9000,
    9,
    false,
  ]);
  assertEquals(t.nextDue(), T0 + 11_000);
});

Deno.test("a job's own grace and coalesce override the defaults", () => {
  const t = new Timetable(DEFAULTS);
  t.set(
    job("patient", { schedule: { second: "*" }, misfire_grace_time: "60", coalesce: true }),
    T0,
  );
  const decision = t.takeDue(T0 + 30_000);
  assertEquals(decision.missed, []);
  assertEquals(decision.run.map((d) => [d.scheduledAt, d.coalesced]), [[T0 + 30_000, 29]]);
});

Deno.test("a very long outage is counted, not enumerated without bound", () => {
  const t = new Timetable(DEFAULTS);
  t.set(job("tick", { schedule: { second: "*" } }), T0);
  const decision = t.takeDue(T0 + 86_400_000);
  assertEquals(decision.missed.length, 1);
  assertEquals(decision.missed[0].more, true);
  assertEquals(decision.missed[0].count, 1000);
  assertEquals(t.nextDue(), T0 + 86_401_000);
});

Deno.test("changing a job's command keeps its next fire; changing its schedule recomputes it", () => {
  const t = new Timetable(DEFAULTS);
  const every5 = job("j", { schedule: { second: "*/5" } });
  t.set(every5, T0);
  assertEquals(t.nextDue(), T0 + 5000);
  t.set({ ...every5, command: "echo new" }, T0 + 4999);
  assertEquals(t.nextDue(), T0 + 5000, "a due-soon fire is not pushed back by an unrelated change");
  assertEquals(t.job("j")?.command, "echo new");
  t.set({ ...every5, second: "*/7" }, T0 + 4999);
  assertEquals(t.nextDue(), T0 + 7000);
});

Deno.test("fires follow the job's zone, and the service zone when it has none", () => {
  const t = new Timetable({ ...DEFAULTS, timezone: "Asia/Hong_Kong" });
  t.set(job("hk", { schedule: { hour: "9" } }), T0);
  t.set(job("ny", { schedule: { hour: "9" }, timezone: "America/New_York" }), T0);
  const first = t.takeDue(Date.UTC(2026, 10, 27, 1, 0, 0));
  assertEquals(first.run.map((d) => [d.job.id, new Date(d.scheduledAt).toISOString()]), [
    ["hk", "2026-11-27T01:00:00.000Z"],
  ]);
  const second = t.takeDue(Date.UTC(2026, 10, 27, 14, 0, 0));
  assertEquals(second.run.map((d) => [d.job.id, new Date(d.scheduledAt).toISOString()]), [
    ["ny", "2026-11-27T14:00:00.000Z"],
  ]);
});

Deno.test("removed jobs no longer fire; a schedule that never fires again is not due", () => {
  const t = new Timetable(DEFAULTS);
  t.set(job("gone", { schedule: { second: "*" } }), T0);
  // Written by hand in SQL: `job add` refuses a day that never comes.
  t.set({ ...job("never", { schedule: { day: "31", month: "1" } }), month: "2" }, T0);
  t.delete("gone");
  assertEquals(t.nextDue(), null);
  assertEquals(t.takeDue(T0 + 60_000), { run: [], missed: [] });
});

Deno.test("a job changed right after a fire was taken still gets its following fire", () => {
  const t = new Timetable(DEFAULTS);
  const tick = job("tick", { schedule: { second: "*" } });
  t.set(tick, T0);
  assertEquals(t.takeDue(T0 + 1000).run.map((d) => d.scheduledAt), [T0 + 1000]);
  t.set({ ...tick, command: "echo changed" }, T0 + 1000);
  assertEquals(t.nextDue(), T0 + 2000);
  assertEquals(t.takeDue(T0 + 2000).run.map((d) => d.job.command), ["echo changed"]);
});

Deno.test("a grace of 0 still runs a fire dispatched a few milliseconds late", () => {
  const t = new Timetable({ ...DEFAULTS, misfireGraceTime: 0 });
  t.set(job("strict", { schedule: { second: "*" } }), T0);
  assertEquals(t.takeDue(T0 + 1003).run.map((d) => d.scheduledAt), [T0 + 1000]);
  assertEquals(t.takeDue(T0 + 2400).missed.map((m) => m.last), [T0 + 2000]);
});

Deno.test("the earliest fire follows every change: a sooner job, a later schedule, a removal, a rewind", () => {
  const t = new Timetable(DEFAULTS);
  const at = (s: number) => T0 + s * 1000;
  t.set(job("ten", { schedule: { second: "10" } }), T0);
  t.set(job("thirty", { schedule: { second: "30" } }), T0);
  assertEquals(t.nextDue(), at(10));
  assertEquals(t.takeDue(at(9)), { run: [], missed: [] });
  t.set(job("five", { schedule: { second: "5" } }), T0);
  assertEquals(t.nextDue(), at(5), "a job added with a sooner fire");
  t.set(job("five", { schedule: { second: "20" } }), T0);
  assertEquals(t.nextDue(), at(10), "the earliest job's schedule moved later");
  t.delete("ten");
  assertEquals(t.nextDue(), at(20), "the earliest job removed");
  assertEquals(t.takeDue(at(19)), { run: [], missed: [] });
  t.rewind("thirty", T0 - 60_000);
  assertEquals(t.nextDue(), T0 - 30_000, "a rewind to before the earliest");
  assertEquals(t.takeDue(at(20)).missed.map((m) => m.job.id), ["thirty"]);
  assertEquals(t.takeDue(at(20)).run.map((d) => d.job.id), []);
  assertEquals(t.nextDue(), at(30));
  assertEquals(t.takeDue(at(30)).run.map((d) => [d.job.id, d.scheduledAt]), [["thirty", at(30)]]);
  assertEquals(t.nextDue(), at(60 + 20));
  t.delete("five");
  t.delete("thirty");
  assertEquals(t.nextDue(), null);
});

/** Every fire of `t` from now to `until`, as job id → ISO instants, stepping from one fire to the next. */
function firesUntil(t: Timetable, until: number): Map<string, string[]> {
  const fires = new Map<string, string[]>();
  for (let at = t.nextDue(); at !== null && at <= until; at = t.nextDue()) {
    const due = t.dueAt(at).map(({ job }) => job.id).sort();
    const run = t.takeDue(at).run;
    assertEquals(run.map((d) => d.job.id).sort(), due, `dueAt(${new Date(at).toISOString()})`);
    for (const { job, scheduledAt } of run) {
      fires.set(job.id, [...fires.get(job.id) ?? [], new Date(scheduledAt).toISOString()]);
    }
  }
  return fires;
}

/** The fires of each job from `from` to `until`, from its compiled schedule. */
function compiledFires(
  jobs: Job[],
  zone: string,
  from: number,
  until: number,
  most: number,
): Map<string, string[]> {
  const fires = new Map<string, string[]>();
  for (const j of jobs) {
    const runs = compileSchedule(j, zone).nextRuns(most, new Date(from))
      .filter((d) => d.getTime() <= until).map((d) => d.toISOString());
    if (runs.length > 0) fires.set(j.id, runs);
  }
  return fires;
}

Deno.test("jobs at 1,440 times of day are compiled as their fires come near, and fire at the same instants", () => {
  // A zone of their own: no other test compiles these schedules first.
  const zone = "Australia/Lord_Howe";
  const t = new Timetable({ ...DEFAULTS, timezone: zone });
  const jobs = Array.from({ length: 1440 }, (_, i) =>
    job(`daily.${i}`, {
      schedule: { hour: String(Math.floor(i / 60)), minute: String(i % 60), second: "7" },
    }));
  for (const j of jobs) t.set(j, T0);
  const first = t.nextDue();
  // T0 is 23:00 on Lord Howe (UTC+11 in November): the fires of noon are half a day away.
  const noon = jobs[12 * 60];
  assertEquals(scheduleOrOutline(noon, zone).exact, false, "a fire 13 hours away is not compiled");
  const until = T0 + 2 * 86_400_000;
  const fires = firesUntil(t, until);
  assertEquals(new Date(first!).toISOString(), "2026-11-26T12:00:07.000Z");
  assertEquals(fires, compiledFires(jobs, zone, T0, until, 3));
  assertEquals([...fires.values()].every((f) => f.length === 2), true);
});

Deno.test("jobs known by their outlines fire as compiled across DST gaps and overlaps", () => {
  // Days around each change, and hours from just before it (only a job's first fire is
  // found from its outline: it is compiled then).
  const windows = [
    ["2026-03-28T00:00:00Z", "2026-03-31T00:00:00Z"],
    ["2026-03-29T00:30:00Z", "2026-03-29T04:00:00Z"], // Berlin: 02:00 CET becomes 03:00 CEST
    ["2026-03-08T06:30:00Z", "2026-03-08T10:00:00Z"], // New York: 02:00 EST becomes 03:00 EDT
    ["2026-04-03T12:00:00Z", "2026-04-06T00:00:00Z"],
    ["2026-04-04T14:40:00Z", "2026-04-04T18:00:00Z"], // Lord Howe: 02:00 (+11) becomes 01:30
    ["2026-10-03T15:20:00Z", "2026-10-03T18:00:00Z"], // Lord Howe: 02:00 (+10:30) becomes 02:30
    ["2026-10-24T00:00:00Z", "2026-10-27T00:00:00Z"],
    ["2026-10-25T00:10:00Z", "2026-10-25T03:00:00Z"], // Berlin: 03:00 CEST becomes 02:00 CET
    ["2026-10-31T12:00:00Z", "2026-11-03T00:00:00Z"],
    ["2026-11-01T05:10:00Z", "2026-11-01T07:30:00Z"], // New York: 02:00 EDT becomes 01:00 EST
    ["2026-11-01T06:10:00Z", "2026-11-01T08:00:00Z"], // New York, in the second 01:00 hour
  ].map(([a, b]) => [Date.parse(a), Date.parse(b)]);
  for (const [w, [from, until]] of windows.entries()) {
    // A second of its own in each window: a schedule compiled in one is not known by its outline in the next.
    const s = String(w);
    const cases: [string, string, Partial<Record<FieldName, string>>][] = [
      ["berlin.fixed", "Europe/Berlin", { hour: "2", minute: "30", second: s }],
      ["berlin.hours", "Europe/Berlin", { hour: "1-3", minute: "15", second: s }],
      ["berlin.interval", "Europe/Berlin", { hour: "2", minute: "*/20", second: s }],
      ["york.fixed", "America/New_York", { hour: "1", minute: "30", second: s }],
      ["york.gap", "America/New_York", { hour: "2", minute: "0,45", second: s }],
      ["york.interval", "America/New_York", { hour: "1", minute: "*/30", second: `${s},40` }],
      ["howe.fixed", "Australia/Lord_Howe", { hour: "1,2", minute: "50", second: s }],
      ["howe.interval", "Australia/Lord_Howe", { hour: "2", minute: "*/15", second: s }],
    ];
    const jobs = cases.map(([id, zone, schedule]) => job(id, { schedule, timezone: zone }));
    const t = new Timetable(DEFAULTS);
    for (const j of jobs) {
      assertEquals(scheduleOrOutline(j, j.timezone!).exact, false, j.id);
      t.set(j, from);
    }
    const fires = firesUntil(t, until);
    const expected = new Map<string, string[]>();
    for (const j of jobs) {
      for (const [id, f] of compiledFires([j], j.timezone!, from, until, 100)) expected.set(id, f);
    }
    assertEquals(fires, expected, new Date(from).toISOString());
  }
});

Deno.test("a rewind of a job known by its outline brings back its own fires after the instant", () => {
  const zone = "Asia/Kathmandu";
  const t = new Timetable({ ...DEFAULTS, timezone: zone });
  const daily = job("daily", { schedule: { hour: "9", minute: "10", second: "11" } });
  t.set(daily, T0);
  assertEquals(scheduleOrOutline(daily, zone).exact, false);
  t.rewind("daily", T0 - 3 * 86_400_000);
  const fires = t.takeDue(T0).missed.map((m) => [m.first, m.last, m.count].map(String));
  // 09:10:11 in Kathmandu (UTC+05:45) is 03:25:11Z: the three mornings before T0.
  assertEquals(fires, [[
    String(Date.parse("2026-11-24T03:25:11Z")),
    String(Date.parse("2026-11-26T03:25:11Z")),
    "3",
  ]]);
  assertEquals(new Date(t.nextDue()!).toISOString(), "2026-11-27T03:25:11.000Z");
});
