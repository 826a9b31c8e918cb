/**
 * crontab lines: conversion into APScheduler's fields (weekdays renumbered
 * from Sunday-first to Monday-first names), fire times worked out from the
 * calendar, and the lines jobsmanager must refuse.
 */
import { deepStrictEqual, fail } from "node:assert/strict";
import { ValidationError } from "../src/errors.ts";
import type { ScheduleFields } from "../src/cron/fields.ts";
import { scheduleFromCrontab } from "../src/cron/crontab.ts";
import { compileSchedule, toCronerPattern } from "../src/cron/croner.ts";

const ALL = { second: "*", minute: "*", hour: "*", day: "*", month: "*", day_of_week: "*" };

Deno.test("lines become APScheduler fields with weekday names", () => {
  const midnight = { second: "0", minute: "0", hour: "0", day: "*", month: "*" };
  const cases: [string, ScheduleFields][] = [
    ["*/5 * * * *", { ...ALL, second: "0", minute: "*/5" }],
    ["0 0 * * 1-5", { ...midnight, day_of_week: "mon-fri" }],
    ["0 0 * * 0", { ...midnight, day_of_week: "sun" }],
    ["0 0 * * 7", { ...midnight, day_of_week: "sun" }],
    ["0 0 * * 0-2", { ...midnight, day_of_week: "mon-tue,sun" }],
    ["0 0 * * */2", { ...midnight, day_of_week: "tue,thu,sat-sun" }],
    ["0 0 * * 0-7", { ...midnight, day_of_week: "*" }],
    ["0 0 * * Mon-Fri", { ...midnight, day_of_week: "mon-fri" }],
    ["0 0 * * sun,sat", { ...midnight, day_of_week: "sat-sun" }],
    ["0 0 */2 * 1", { ...midnight, day: "*/2", day_of_week: "mon" }],
    ["15 4 1,15 JAN-Mar *", {
      ...ALL,
      second: "0",
      minute: "15",
      hour: "4",
      day: "1,15",
      month: "jan-mar",
    }],
    // A range of names takes a step, as in cron; months are stored in numbers then.
    ["0 0 * jan-mar/2,Oct * ", { ...midnight, month: "1-3/2,oct", day_of_week: "*" }],
    ["0 0 * * mon-fri/2", { ...midnight, day_of_week: "mon,wed,fri" }],
    ["5 0 12 * * *", { ...ALL, second: "5", minute: "0", hour: "12" }],
    ["@yearly", { ...midnight, day: "1", month: "1", day_of_week: "*" }],
    ["@annually", { ...midnight, day: "1", month: "1", day_of_week: "*" }],
    ["@monthly", { ...midnight, day: "1", day_of_week: "*" }],
    ["@weekly", { ...midnight, day_of_week: "sun" }],
    ["@daily", { ...midnight, day_of_week: "*" }],
    ["@midnight", { ...midnight, day_of_week: "*" }],
    ["@hourly", { ...ALL, second: "0", minute: "0" }],
  ];
  for (const [line, expected] of cases) {
    const fields = scheduleFromCrontab(line);
    deepStrictEqual(fields, expected, line);
    toCronerPattern(fields); // round-trips: what is stored is valid
  }
});

interface FireCase {
  name: string;
  line: string;
  from: string;
  fires: string[];
}

const FIRES: FireCase[] = [
  {
    name: "7 is Sunday",
    line: "0 12 * * 7",
    from: "2026-01-01T00:00:00Z",
    fires: ["2026-01-04T12:00:00.000Z", "2026-01-11T12:00:00.000Z"],
  },
  {
    name: "*/2 weekdays are sun, tue, thu, sat",
    line: "0 0 * * */2",
    from: "2026-01-01T00:00:00Z",
    fires: [
      "2026-01-03T00:00:00.000Z", // sat
      "2026-01-04T00:00:00.000Z", // sun
      "2026-01-06T00:00:00.000Z", // tue
      "2026-01-08T00:00:00.000Z", // thu
    ],
  },
  {
    name: "with seconds and month names",
    line: "30 15 10 1 jan,JUL *",
    from: "2026-01-01T00:00:00Z",
    fires: ["2026-01-01T10:15:30.000Z", "2026-07-01T10:15:30.000Z", "2027-01-01T10:15:30.000Z"],
  },
];

for (const c of FIRES) {
  Deno.test(`fires: ${c.name}`, () => {
    const schedule = compileSchedule(scheduleFromCrontab(c.line), "UTC");
    const fires = schedule.nextRuns(c.fires.length, new Date(c.from)).map((d) => d.toISOString());
    deepStrictEqual(fires, c.fires);
  });
}

/** The ValidationError `f` throws, as `[field, message]`. */
function rejection(f: () => unknown): [string, string] {
  try {
    f();
  } catch (error) {
    if (error instanceof ValidationError) return [error.field, error.message];
    throw error;
  }
  fail("expected a ValidationError");
}

const FIELD_COUNT = "expected 5 (minute hour day-of-month month day-of-week), " +
  "6 (second first) or a nickname like @daily";

const REJECTED: [string, () => unknown, string, string][] = [
  [
    "4 fields",
    () => scheduleFromCrontab("* * * *"),
    "cron",
    `cron: '* * * *' has 4 fields; ${FIELD_COUNT}`,
  ],
  [
    "7 fields",
    () => scheduleFromCrontab("0 0 0 * * * 2026"),
    "cron",
    `cron: '0 0 0 * * * 2026' has 7 fields; ${FIELD_COUNT}`,
  ],
  [
    "empty",
    () => scheduleFromCrontab("  "),
    "cron",
    `cron: '' has 0 fields; ${FIELD_COUNT}`,
  ],
  [
    "minute 75",
    () => scheduleFromCrontab("75 * * * *"),
    "cron",
    "cron: minute '75' is out of range (allowed 0-59)",
  ],
  [
    "day-of-week 8",
    () => scheduleFromCrontab("0 0 * * 8"),
    "cron",
    "cron: day-of-week '8' is out of range (allowed 0-7, 0 and 7 = sun)",
  ],
  [
    "a/n",
    () => scheduleFromCrontab("5/10 * * * *"),
    "cron",
    "cron: minute '5/10' is not valid (allowed: *, */N, A, A-B, A-B/N with 0-59, comma-separated)",
  ],
  [
    "a single name with a step",
    () => scheduleFromCrontab("0 0 * jan/2 *"),
    "cron",
    "cron: month 'jan/2' is not valid (allowed: *, */N, A, A-B, A-B/N with 1-12 or jan-dec, comma-separated)",
  ],
  [
    "step 0",
    () => scheduleFromCrontab("0 */0 * * *"),
    "cron",
    "cron: hour step 0 in '*/0' must be at least 1",
  ],
  [
    "nickname",
    () => scheduleFromCrontab("@reboot"),
    "cron",
    "cron: unknown nickname '@reboot' (allowed: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly)",
  ],
  [
    "restricting both day fields",
    () => scheduleFromCrontab("0 0 1 * 1"),
    "cron",
    "cron: '0 0 1 * 1' restricts both day-of-month and day-of-week, which crontab ORs " +
    "(day 1 of the month or mon) but jobsmanager ANDs; schedule two jobs, " +
    "or use day and day_of_week if you mean both at once",
  ],
];

for (const [name, f, field, message] of REJECTED) {
  Deno.test(`rejects: ${name}`, () => deepStrictEqual(rejection(f), [field, message]));
}
