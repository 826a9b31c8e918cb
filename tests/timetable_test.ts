/** The timetable's decisions, driven by instants passed in: no sleeping. */
import { assertEquals } from "./assert.ts";
import { buildJob, type Job, type JobOptions } from "../src/domain/job.ts";
import { decideLate, type JobDefaults, Timetable } from "../src/daemon/timetable.ts";

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
