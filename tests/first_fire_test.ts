/**
 * `firstFireAfter`, which finds a job's first fire from its schedule's
 * outline, answers what the compiled schedule answers: in every kind of
 * zone (UTC, DST of one hour, half an hour or two, offsets of 45 minutes), before,
 * in and after DST gaps and overlaps, at and between whole seconds.
 */
import { deepStrictEqual } from "node:assert/strict";
import type { ScheduleFields } from "../src/cron/fields.ts";
import { compileSchedule, firstFireAfter } from "../src/cron/croner.ts";

/**
 * DST changes of 2026 (UTC): New York, Europe and Troll (2 hours), Lord
 * Howe (30 minutes), Chatham (+12:45).
 */
const CHANGES = [
  "2026-03-08T07:00:00Z",
  "2026-03-29T01:00:00Z",
  "2026-04-04T14:00:00Z",
  "2026-04-04T15:00:00Z",
  "2026-09-26T14:00:00Z",
  "2026-10-03T15:30:00Z",
  "2026-10-25T01:00:00Z",
  "2026-11-01T06:00:00Z",
];
const ZONES = [
  "UTC",
  "Europe/Berlin",
  "America/New_York",
  "Australia/Lord_Howe",
  "Pacific/Chatham",
  "Asia/Kathmandu",
  "Antarctica/Troll",
];
const HOURS = ["*", "2", "0-3", "*/2"];

interface Case {
  fields: ScheduleFields;
  zone: string;
  after: Date;
  found: Date | null;
}

Deno.test("firstFireAfter finds the compiled schedule's next fire, across DST changes", () => {
  const cases: Case[] = [];
  // Each schedule is asked once per zone, before it is compiled: its second
  // and minute tell the instants apart.
  for (const zone of ZONES) {
    let n = 0;
    for (const change of CHANGES) {
      for (let k = -6; k <= 6; k++, n++) {
        // Every other instant between whole seconds.
        const after = new Date(Date.parse(change) + k * 25 * 60_000 + (k % 2 === 0 ? 0 : 500));
        for (const [hour, day_of_week] of HOURS.flatMap((h) => [[h, "*"], [h, "sun"]])) {
          for (const j of [0, 1]) {
            const fields = {
              second: String(Math.floor(n / 60) * 2 + j),
              minute: String(j === 0 ? n % 60 : 59 - n % 60),
              hour,
              day: "*",
              month: "*",
              day_of_week,
            };
            cases.push({ fields, zone, after, found: firstFireAfter(fields, zone, after) });
          }
        }
      }
    }
  }
  for (const { fields, zone, after, found } of cases) {
    deepStrictEqual(
      found,
      compileSchedule(fields, zone).nextAfter(after),
      `${Object.values(fields).join(" ")} in ${zone} after ${after.toISOString()}`,
    );
  }
});

Deno.test("firstFireAfter: a fire at the very instant asked is not after it; never is null", () => {
  const at = new Date("2026-06-01T02:30:15Z");
  const fields = {
    second: "15",
    minute: "30",
    hour: "2",
    day: "*",
    month: "*",
    day_of_week: "*",
  };
  deepStrictEqual(firstFireAfter(fields, "Etc/UTC", at), new Date("2026-06-02T02:30:15Z"));
  deepStrictEqual(
    firstFireAfter(fields, "Etc/UTC", new Date(at.getTime() - 1)),
    new Date("2026-06-01T02:30:15Z"),
  );
  const never = { ...fields, day: "31", month: "2" };
  deepStrictEqual(firstFireAfter(never, "Europe/Berlin", at), null);
});
