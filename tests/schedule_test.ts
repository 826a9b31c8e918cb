/**
 * Schedules: APScheduler 3 CronTrigger meanings, checked against fire times
 * worked out from the calendar (weekdays, month lengths, DST transitions of
 * 2026), not copied from the implementation.
 */
import { deepStrictEqual, fail, strictEqual } from "node:assert/strict";
import { ValidationError } from "../src/errors.ts";
import { buildJob } from "../src/domain/job.ts";
import type { FieldName } from "../src/cron/grammar.ts";
import {
  readableSchedule,
  sameFieldValues,
  type ScheduleFields,
  scheduleFromFields,
} from "../src/cron/fields.ts";
import { scheduleFromCrontab } from "../src/cron/crontab.ts";
import { compileSchedule, toCronerPattern, validateTimezone } from "../src/cron/croner.ts";

type Given = Partial<Record<FieldName, string>>;

interface FireCase {
  name: string;
  schedule: Given;
  zone: string;
  from: string;
  fires: string[];
}

const FIRES: FireCase[] = [
  {
    name: "minute */5 fires every five minutes at second 0",
    schedule: { minute: "*/5" },
    zone: "UTC",
    from: "2026-01-01T00:03:20Z",
    fires: ["2026-01-01T00:05:00.000Z", "2026-01-01T00:10:00.000Z", "2026-01-01T00:15:00.000Z"],
  },
  {
    name: "minute 10/20 fires at 10, 30 and 50",
    schedule: { minute: "10/20" },
    zone: "UTC",
    from: "2026-01-01T00:00:00Z",
    fires: [
      "2026-01-01T00:10:00.000Z",
      "2026-01-01T00:30:00.000Z",
      "2026-01-01T00:50:00.000Z",
      "2026-01-01T01:10:00.000Z",
    ],
  },
  {
    name: "hour 3 with second 5 leaves minute at * (CronTrigger's rule)",
    schedule: { hour: "3", second: "5" },
    zone: "UTC",
    from: "2026-01-01T03:58:00Z",
    fires: ["2026-01-01T03:58:05.000Z", "2026-01-01T03:59:05.000Z", "2026-01-02T03:00:05.000Z"],
  },
  {
    name: "day_of_week 0 is Monday",
    schedule: { day_of_week: "0" },
    zone: "UTC",
    from: "2026-01-01T00:00:00Z", // a Thursday
    fires: ["2026-01-05T00:00:00.000Z", "2026-01-12T00:00:00.000Z", "2026-01-19T00:00:00.000Z"],
  },
  {
    name: "day_of_week */2 is mon, wed, fri, sun",
    schedule: { day_of_week: "*/2" },
    zone: "UTC",
    from: "2026-01-01T00:00:00Z",
    fires: [
      "2026-01-02T00:00:00.000Z", // fri
      "2026-01-04T00:00:00.000Z", // sun
      "2026-01-05T00:00:00.000Z", // mon
      "2026-01-07T00:00:00.000Z", // wed
      "2026-01-09T00:00:00.000Z", // fri
    ],
  },
  {
    name: "day_of_week mon-fri skips the weekend",
    schedule: { day_of_week: "mon-fri", hour: "9" },
    zone: "UTC",
    from: "2026-01-01T12:00:00Z",
    fires: ["2026-01-02T09:00:00.000Z", "2026-01-05T09:00:00.000Z", "2026-01-06T09:00:00.000Z"],
  },
  {
    name: "day_of_week sun",
    schedule: { day_of_week: "SUN" },
    zone: "UTC",
    from: "2026-01-01T00:00:00Z",
    fires: ["2026-01-04T00:00:00.000Z", "2026-01-11T00:00:00.000Z"],
  },
  {
    name: "day 13 and day_of_week fri: only Friday the 13ths",
    schedule: { day: "13", day_of_week: "fri", hour: "0" },
    zone: "UTC",
    from: "2026-01-01T00:00:00Z",
    fires: ["2026-02-13T00:00:00.000Z", "2026-03-13T00:00:00.000Z", "2026-11-13T00:00:00.000Z"],
  },
  {
    name: "day last in a leap year, and in 30- and 31-day months",
    schedule: { day: "last", hour: "0" },
    zone: "UTC",
    from: "2028-01-15T00:00:00Z",
    fires: [
      "2028-01-31T00:00:00.000Z",
      "2028-02-29T00:00:00.000Z",
      "2028-03-31T00:00:00.000Z",
      "2028-04-30T00:00:00.000Z",
    ],
  },
  {
    name: "day last in a common year",
    schedule: { day: "last", hour: "0" },
    zone: "UTC",
    from: "2027-02-01T00:00:00Z",
    fires: ["2027-02-28T00:00:00.000Z", "2027-03-31T00:00:00.000Z"],
  },
  {
    name: "day 1, 15 and last",
    schedule: { day: "1,15,last", hour: "0" },
    zone: "UTC",
    from: "2027-02-01T00:00:00Z",
    fires: ["2027-02-15T00:00:00.000Z", "2027-02-28T00:00:00.000Z", "2027-03-01T00:00:00.000Z"],
  },
  {
    name: "day 29 of month 2 fires only in leap years",
    schedule: { day: "29", month: "2", hour: "0" },
    zone: "UTC",
    from: "2026-01-01T00:00:00Z",
    fires: ["2028-02-29T00:00:00.000Z", "2032-02-29T00:00:00.000Z"],
  },
  {
    name: "day 2nd fri",
    schedule: { day: "2nd fri", hour: "0" },
    zone: "UTC",
    from: "2026-01-01T00:00:00Z",
    fires: ["2026-01-09T00:00:00.000Z", "2026-02-13T00:00:00.000Z", "2026-03-13T00:00:00.000Z"],
  },
  {
    name: "day last fri",
    schedule: { day: "last fri", hour: "0" },
    zone: "UTC",
    from: "2026-01-01T00:00:00Z",
    fires: ["2026-01-30T00:00:00.000Z", "2026-02-27T00:00:00.000Z", "2026-03-27T00:00:00.000Z"],
  },
  {
    name: "day last sun",
    schedule: { day: "last sun", hour: "0" },
    zone: "UTC",
    from: "2026-01-01T00:00:00Z",
    fires: ["2026-01-25T00:00:00.000Z", "2026-02-22T00:00:00.000Z", "2026-03-29T00:00:00.000Z"],
  },
  {
    name: "day 5th fri skips months with four Fridays",
    schedule: { day: "5th fri", hour: "0" },
    zone: "UTC",
    from: "2026-01-01T00:00:00Z",
    fires: ["2026-01-30T00:00:00.000Z", "2026-05-29T00:00:00.000Z", "2026-07-31T00:00:00.000Z"],
  },
  {
    name: "day 1st mon and last fri together",
    schedule: { day: "1st mon, last fri", hour: "0" },
    zone: "UTC",
    from: "2026-01-01T00:00:00Z",
    fires: [
      "2026-01-05T00:00:00.000Z",
      "2026-01-30T00:00:00.000Z",
      "2026-02-02T00:00:00.000Z",
      "2026-02-27T00:00:00.000Z",
    ],
  },
  {
    name: "Berlin spring forward: 02:30 does not exist, fires once at 03:00 CEST",
    schedule: { hour: "2", minute: "30" },
    zone: "Europe/Berlin",
    from: "2026-03-28T00:00:00Z",
    fires: ["2026-03-28T01:30:00.000Z", "2026-03-29T01:00:00.000Z", "2026-03-30T00:30:00.000Z"],
  },
  {
    name: "Berlin fall back: 02:30 happens twice, fires once (CEST)",
    schedule: { hour: "2", minute: "30" },
    zone: "Europe/Berlin",
    from: "2026-10-24T00:00:00Z",
    fires: ["2026-10-24T00:30:00.000Z", "2026-10-25T00:30:00.000Z", "2026-10-26T01:30:00.000Z"],
  },
  {
    name: "Berlin spring forward: a list of hours is a fixed time too (Vixie rule)",
    schedule: { hour: "1,2", minute: "30" },
    zone: "Europe/Berlin",
    from: "2026-03-29T00:00:00Z",
    fires: ["2026-03-29T00:30:00.000Z", "2026-03-29T01:00:00.000Z", "2026-03-29T23:30:00.000Z"],
  },
  {
    name: "New York spring forward: 02:30 fires once at 03:00 EDT",
    schedule: { hour: "2", minute: "30" },
    zone: "America/New_York",
    from: "2026-03-07T12:00:00Z",
    fires: ["2026-03-08T07:00:00.000Z", "2026-03-09T06:30:00.000Z", "2026-03-10T06:30:00.000Z"],
  },
  {
    name: "New York fall back: 01:30 happens twice, fires once (EDT)",
    schedule: { hour: "1", minute: "30" },
    zone: "America/New_York",
    from: "2026-10-31T12:00:00Z",
    fires: ["2026-11-01T05:30:00.000Z", "2026-11-02T06:30:00.000Z"],
  },
  {
    name: "New York fall back: an interval job runs through both 01:00 hours",
    schedule: { minute: "*/30" },
    zone: "America/New_York",
    from: "2026-11-01T04:45:00Z",
    fires: [
      "2026-11-01T05:00:00.000Z", // 01:00 EDT
      "2026-11-01T05:30:00.000Z", // 01:30 EDT
      "2026-11-01T06:00:00.000Z", // 01:00 EST
      "2026-11-01T06:30:00.000Z", // 01:30 EST
      "2026-11-01T07:00:00.000Z", // 02:00 EST
    ],
  },
  {
    name: "day */10 counts from the 1st: 1, 11, 21, 31",
    schedule: { day: "*/10", hour: "0" },
    zone: "UTC",
    from: "2026-01-28T00:00:00Z",
    fires: [
      "2026-01-31T00:00:00.000Z",
      "2026-02-01T00:00:00.000Z",
      "2026-02-11T00:00:00.000Z",
      "2026-02-21T00:00:00.000Z",
      "2026-03-01T00:00:00.000Z",
    ],
  },
  {
    name: "month */5 counts from January: jan, jun, nov",
    schedule: { month: "*/5" },
    zone: "UTC",
    from: "2026-01-28T00:00:00Z",
    fires: ["2026-06-01T00:00:00.000Z", "2026-11-01T00:00:00.000Z", "2027-01-01T00:00:00.000Z"],
  },
  {
    name: "day last and day_of_week fri: a month ending on a Friday",
    schedule: { day: "last", day_of_week: "fri", hour: "0" },
    zone: "UTC",
    from: "2026-01-01T00:00:00Z",
    fires: ["2026-07-31T00:00:00.000Z", "2027-04-30T00:00:00.000Z", "2027-12-31T00:00:00.000Z"],
  },
];

for (const c of FIRES) {
  Deno.test(`fires: ${c.name}`, () => {
    const schedule = compileSchedule(scheduleFromFields(c.schedule), c.zone);
    const fires = schedule.nextRuns(c.fires.length, new Date(c.from)).map((d) => d.toISOString());
    deepStrictEqual(fires, c.fires);
    strictEqual(schedule.nextAfter(new Date(c.from))?.toISOString(), c.fires[0]);
  });
}

Deno.test("nextAfter is strictly after the instant, also within its second", () => {
  const schedule = compileSchedule(scheduleFromFields({ minute: "*/5" }), "UTC");
  strictEqual(
    schedule.nextAfter(new Date("2026-01-01T00:05:00Z"))?.toISOString(),
    "2026-01-01T00:10:00.000Z",
  );
  strictEqual(
    schedule.nextAfter(new Date("2026-01-01T00:05:00.5Z"))?.toISOString(),
    "2026-01-01T00:10:00.000Z",
  );
  strictEqual(
    schedule.nextAfter(new Date("2026-01-01T00:04:59.999Z"))?.toISOString(),
    "2026-01-01T00:05:00.000Z",
  );
});

Deno.test("a schedule that can never fire gives null and no runs", () => {
  const schedule = compileSchedule(scheduleFromFields({ month: "2", day: "30" }), "UTC");
  strictEqual(schedule.nextAfter(new Date("2026-01-01T00:00:00Z")), null);
  deepStrictEqual(schedule.nextRuns(3, new Date("2026-01-01T00:00:00Z")), []);
});

Deno.test("a job whose schedule never fires is refused when written, naming the fields", () => {
  const never = (given: Given) =>
    rejection(() =>
      buildJob("x", { command: "true", schedule: given }, null, Date.parse("2026-11-30T00:00:00Z"))
    );
  const message = (day: string, month: string, dow: string) =>
    `schedule: day '${day}', month '${month}' and day_of_week '${dow}' never fall on one date, ` +
    `so the job would never fire; check those fields`;
  deepStrictEqual(never({ day: "31", month: "2" }), ["schedule", message("31", "2", "*")]);
  deepStrictEqual(never({ day: "30", month: "feb" }), ["schedule", message("30", "feb", "*")]);
  deepStrictEqual(never({ day: "31", month: "4,6,9,11", day_of_week: "mon" }), [
    "schedule",
    message("31", "4,6,9,11", "mon"),
  ]);
  // Rare is not never: a 5th Monday in February comes in leap years that start it on a Monday.
  strictEqual(
    buildJob("x", { command: "true", schedule: { day: "5th mon", month: "feb" } }, null, 0).day,
    "5th mon",
  );
  strictEqual(buildJob("x", { command: "true", cron: "0 0 29 2 *" }, null, 0).day, "29");
});

const ALL = { second: "*", minute: "*", hour: "*", day: "*", month: "*", day_of_week: "*" };

Deno.test("a schedule as printed, pasted back into --cron, fires at the same instants", () => {
  const from = new Date("2026-11-30T00:00:00Z");
  const fires = (fields: ScheduleFields) =>
    compileSchedule(fields, "UTC").nextRuns(30, from).map((d) => d.toISOString());
  // Rows as the original program or a hand-written UPDATE left them: APScheduler's numbers.
  const stored: [ScheduleFields, string][] = [
    [{ ...ALL, second: "0", minute: "0", hour: "9", day_of_week: "0" }, "0 0 9 * * mon"],
    [{ ...ALL, second: "0", minute: "0", hour: "9", day_of_week: "0-4" }, "0 0 9 * * mon-fri"],
    [
      { ...ALL, second: "0", minute: "0", hour: "0", day_of_week: "*/2" },
      "0 0 0 * * mon,wed,fri,sun",
    ],
    [{ ...ALL, second: "0", minute: "30", hour: "6", day_of_week: "5,6" }, "0 30 6 * * sat,sun"],
    [
      { ...ALL, second: "0", minute: "0", hour: "1-3/2", day_of_week: "1-5/2" },
      "0 0 1-3/2 * * tue,thu,sat",
    ],
    [{ ...ALL, second: "0", minute: "0", hour: "0", day_of_week: "*" }, "0 0 0 * * *"],
  ];
  for (const [fields, printed] of stored) {
    strictEqual(readableSchedule(fields), printed);
    deepStrictEqual(fires(scheduleFromCrontab(printed)), fires(fields), printed);
  }
});

Deno.test("day_of_week is stored in names, whatever numbering was typed", () => {
  deepStrictEqual(scheduleFromFields({ hour: "9", day_of_week: "0-4" }).day_of_week, "mon-fri");
  deepStrictEqual(scheduleFromFields({ day_of_week: "*/3" }).day_of_week, "mon,thu,sun");
  deepStrictEqual(scheduleFromCrontab("0 9 * * 1-5").day_of_week, "mon-fri");
  deepStrictEqual(scheduleFromFields({ day_of_week: "*" }).day_of_week, "*");
  deepStrictEqual(scheduleFromFields({ day_of_week: "mon-sun" }).day_of_week, "*");
  deepStrictEqual(scheduleFromFields({ day_of_week: "sun" }).day_of_week, "sun");
});

Deno.test("a row broken by hand is printed as it is", () => {
  strictEqual(readableSchedule({ ...ALL, day_of_week: "funday" }), "* * * * * funday");
});

Deno.test("defaults follow CronTrigger: * before the last given field, minimum after it", () => {
  const cases: [Given, ScheduleFields][] = [
    [{ minute: "*/5" }, { ...ALL, second: "0", minute: "*/5" }],
    [{ hour: "3" }, { ...ALL, second: "0", minute: "0", hour: "3" }],
    [{ day_of_week: "mon-fri" }, {
      ...ALL,
      second: "0",
      minute: "0",
      hour: "0",
      day_of_week: "mon-fri",
    }],
    [{ month: "6" }, {
      second: "0",
      minute: "0",
      hour: "0",
      day: "1",
      month: "6",
      day_of_week: "*",
    }],
    [{ hour: "3", second: "5" }, { ...ALL, second: "5", hour: "3" }],
    [{ day: "15" }, { ...ALL, second: "0", minute: "0", hour: "0", day: "15" }],
    [{ second: "*/10" }, { ...ALL, second: "*/10" }],
  ];
  for (const [given, expected] of cases) deepStrictEqual(scheduleFromFields(given), expected);
});

Deno.test("fields are normalized: trimmed, no spaces around commas, lower-case names", () => {
  deepStrictEqual(scheduleFromFields({ day: " 2nd  FRI , Last Sun ", month: "JAN-Mar , 6" }), {
    ...ALL,
    second: "0",
    minute: "0",
    hour: "0",
    day: "2nd fri,last sun",
    month: "jan-mar,6",
  });
});

Deno.test("croner patterns keep intervals, spell out a/n and number weekdays from Sunday", () => {
  const cases: [Given, string][] = [
    [{ minute: "*/5" }, "0 */5 * * * *"],
    [{ minute: "10/20" }, "0 10-59/20 * * * *"],
    [{ hour: "8-18/2", minute: "0-29" }, "0 0-29 8-18/2 * * *"],
    [{ day_of_week: "*/2" }, "0 0 0 * * 0-1,3,5"],
    [{ day_of_week: "mon-fri" }, "0 0 0 * * 1-5"],
    [{ day_of_week: "sat,sun" }, "0 0 0 * * 0,6"],
    [{ day_of_week: "mon-sun" }, "0 0 0 * * *"],
    [{ day: "1,15,last" }, "0 0 0 1,15,L * *"],
    [{ day: "*/10", month: "jan-mar,dec" }, "0 0 0 */10 1-3,12 *"],
    [{ day: "2nd fri, last sun" }, "0 0 0 * * 5#2,0#L"],
  ];
  for (const [given, pattern] of cases) {
    strictEqual(toCronerPattern(scheduleFromFields(given)), pattern);
  }
});

Deno.test("validateTimezone returns known IANA names unchanged", () => {
  for (
    const zone of [
      "UTC",
      "Europe/Berlin",
      "America/New_York",
      "Etc/GMT+5",
      "America/Port-au-Prince",
    ]
  ) {
    strictEqual(validateTimezone(zone), zone);
  }
});

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

const valid: ScheduleFields = { ...ALL, second: "0", minute: "0", hour: "0" };
const ALLOWED_0_59 = "(allowed: *, */N, A, A-B, A-B/N, A/N with 0-59, comma-separated)";
const ALLOWED_DOW =
  "(allowed: *, */N, A, A-B, A-B/N, A/N with 0-6 (0 = mon) or mon-sun, comma-separated)";
const ALLOWED_MONTH = "(allowed: *, */N, A, A-B, A-B/N, A/N with 1-12 or jan-dec, comma-separated)";
const ALLOWED_DAY = "(allowed: *, */N, A, A-B, A-B/N, A/N with 1-31, last, " +
  "or 1st-5th/last + weekday name (e.g. 2nd fri), comma-separated)";
const ZONES = "(e.g. Europe/Berlin, America/New_York, UTC)";

const REJECTED: [string, () => unknown, string, string][] = [
  [
    "no field",
    () => scheduleFromFields({}),
    "schedule",
    "no schedule given: pass --cron or at least one of --second … --day-of-week",
  ],
  [
    "minute 61",
    () => toCronerPattern({ ...valid, minute: "61" }),
    "minute",
    "minute: '61' is out of range (allowed 0-59)",
  ],
  [
    "second 1,60",
    () => toCronerPattern({ ...valid, second: "1, 60" }),
    "second",
    "second: '60' is out of range (allowed 0-59)",
  ],
  [
    "day 0",
    () => scheduleFromFields({ day: "0" }),
    "day",
    "day: '0' is out of range (allowed 1-31)",
  ],
  [
    "day_of_week 7",
    () => scheduleFromFields({ day_of_week: "7" }),
    "day_of_week",
    "day_of_week: '7' is out of range (allowed 0-6, 0 = mon)",
  ],
  [
    "minute 70/5",
    () => scheduleFromFields({ minute: "70/5" }),
    "minute",
    "minute: '70/5' is out of range (allowed 0-59)",
  ],
  [
    "mon-fri/2",
    () => scheduleFromFields({ day_of_week: "mon-fri/2" }),
    "day_of_week",
    `day_of_week: 'mon-fri/2' is not valid ${ALLOWED_DOW}`,
  ],
  [
    "jan1",
    () => scheduleFromFields({ month: "jan1" }),
    "month",
    `month: 'jan1' is not valid ${ALLOWED_MONTH}`,
  ],
  [
    "jan-jun/2",
    () => scheduleFromFields({ month: "jan-jun/2" }),
    "month",
    `month: 'jan-jun/2' is not valid ${ALLOWED_MONTH}`,
  ],
  [
    "5x",
    () => scheduleFromFields({ minute: "5x" }),
    "minute",
    `minute: '5x' is not valid ${ALLOWED_0_59}`,
  ],
  [
    "empty",
    () => scheduleFromFields({ minute: "" }),
    "minute",
    `minute: '' is not valid ${ALLOWED_0_59}`,
  ],
  [
    "1-fri",
    () => scheduleFromFields({ day_of_week: "1-fri" }),
    "day_of_week",
    `day_of_week: '1-fri' is not valid ${ALLOWED_DOW}`,
  ],
  [
    "2nd fry",
    () => scheduleFromFields({ day: "2nd fry" }),
    "day",
    `day: '2nd fry' is not valid ${ALLOWED_DAY}`,
  ],
  [
    "lastx",
    () => scheduleFromFields({ day: "lastx" }),
    "day",
    `day: 'lastx' is not valid ${ALLOWED_DAY}`,
  ],
  [
    "1,,2",
    () => scheduleFromFields({ minute: "1,,2" }),
    "minute",
    "minute: '1,,2' has an empty element in its list",
  ],
  [
    "trailing comma",
    () => scheduleFromFields({ hour: "1," }),
    "hour",
    "hour: '1,' has an empty element in its list",
  ],
  [
    "fri-mon",
    () => scheduleFromFields({ day_of_week: "fri-mon" }),
    "day_of_week",
    "day_of_week: range 'fri-mon' goes backwards (first must not be after last)",
  ],
  [
    "dec-jan",
    () => scheduleFromFields({ month: "dec-jan" }),
    "month",
    "month: range 'dec-jan' goes backwards (first must not be after last)",
  ],
  [
    "5-3",
    () => scheduleFromFields({ day: "5-3" }),
    "day",
    "day: range '5-3' goes backwards (first must not be after last)",
  ],
  [
    "*/0",
    () => scheduleFromFields({ minute: "*/0" }),
    "minute",
    "minute: step 0 in '*/0' must be at least 1",
  ],
  [
    "hour */30",
    () => scheduleFromFields({ hour: "*/30" }),
    "hour",
    "hour: step 30 in '*/30' is larger than the field's range (0-23)",
  ],
  [
    "day_of_week */7",
    () => scheduleFromFields({ day_of_week: "*/7" }),
    "day_of_week",
    "day_of_week: step 7 in '*/7' is larger than the field's range (0-6)",
  ],
  [
    "10-20/11",
    () => scheduleFromFields({ minute: "10-20/11" }),
    "minute",
    "minute: step 11 in '10-20/11' is larger than its range (10-20)",
  ],
  [
    "10/60",
    () => scheduleFromFields({ minute: "10/60" }),
    "minute",
    "minute: step 60 in '10/60' is larger than its range (10-59)",
  ],
  [
    "nth weekday with plain days",
    () => scheduleFromFields({ day: "1,2nd fri" }),
    "day",
    "day: '1,2nd fri' mixes nth weekdays with other days, which cannot be scheduled together; " +
    "use only nth weekdays (e.g. '1st mon,3rd mon') or schedule two jobs",
  ],
  [
    "nth weekday with a day_of_week restriction",
    () => scheduleFromFields({ day: "2nd fri", day_of_week: "mon-fri" }),
    "day",
    "day: '2nd fri' needs day_of_week '*' (got 'mon-fri'), since an nth weekday already picks " +
    "the weekday; drop the day_of_week restriction or schedule two jobs",
  ],
  [
    "zone Mars/Base",
    () => validateTimezone("Mars/Base"),
    "timezone",
    `timezone: 'Mars/Base' is not a known IANA time zone ${ZONES}`,
  ],
  [
    "zone +01:00",
    () => validateTimezone("+01:00"),
    "timezone",
    `timezone: '+01:00' is not an IANA time zone name ${ZONES}`,
  ],
  [
    "zone in compile",
    () => compileSchedule(valid, "Berlin "),
    "timezone",
    `timezone: 'Berlin ' is not an IANA time zone name ${ZONES}`,
  ],
];

for (const [name, f, field, message] of REJECTED) {
  Deno.test(`rejects: ${name}`, () => deepStrictEqual(rejection(f), [field, message]));
}

Deno.test("a schedule refused once is refused again: only valid patterns are remembered", () => {
  const broken = { ...valid, minute: "1 2" };
  for (let i = 0; i < 2; i++) {
    deepStrictEqual(rejection(() => toCronerPattern(broken))[0], "minute");
  }
  // The same text split into other fields is another schedule, not a remembered one.
  strictEqual(toCronerPattern({ ...valid, second: "0", minute: "1, 2" }), "0 1,2 0 * * *");
  deepStrictEqual(
    rejection(() => toCronerPattern({ ...valid, second: "0 1,", minute: "2" }))[0],
    "second",
  );
});

Deno.test("fields of * and single numbers are translated as the whole grammar reads them", () => {
  // Such fields skip the grammar; these are the cases where that could differ from it.
  const plain: [ScheduleFields, string][] = [
    [{ ...ALL }, "* * * * * *"],
    [{ ...ALL, second: "00", minute: "07", hour: "23", day: "31", month: "12" }, "0 7 23 31 12 *"],
    [{ ...ALL, second: "59", minute: "0", hour: "0", day: "1", month: "1" }, "59 0 0 1 1 *"],
    [{ ...valid, day_of_week: "0" }, "0 0 0 * * 1"],
    [{ ...valid, month: "jan" }, "0 0 0 * 1 *"],
    [{ ...valid, hour: " 5" }, "0 0 5 * * *"],
  ];
  for (const [fields, pattern] of plain) strictEqual(toCronerPattern(fields), pattern);
  const outOfRange: [Partial<ScheduleFields>, string, string][] = [
    [{ hour: "24" }, "hour", "hour: '24' is out of range (allowed 0-23)"],
    [{ day: "32" }, "day", "day: '32' is out of range (allowed 1-31)"],
    [{ day: "00" }, "day", "day: '00' is out of range (allowed 1-31)"],
    [{ month: "13" }, "month", "month: '13' is out of range (allowed 1-12)"],
    [
      { second: "99999999999999999999" },
      "second",
      "second: '99999999999999999999' is out of range (allowed 0-59)",
    ],
  ];
  for (const [given, field, message] of outOfRange) {
    deepStrictEqual(rejection(() => toCronerPattern({ ...valid, ...given })), [field, message]);
  }
});

Deno.test("fields changed in place after a translation get their own pattern", () => {
  const fields = { ...valid, minute: "5" };
  strictEqual(toCronerPattern(fields), "0 5 0 * * *");
  fields.minute = "6";
  strictEqual(toCronerPattern(fields), "0 6 0 * * *");
  fields.minute = "6 7";
  deepStrictEqual(rejection(() => toCronerPattern(fields))[0], "minute");
});

Deno.test("a field holding the key's separator is refused, whatever fields were translated before", () => {
  strictEqual(toCronerPattern({ ...valid, second: "1", minute: "2" }), "1 2 0 * * *");
  deepStrictEqual(
    rejection(() => toCronerPattern({ ...valid, second: "1|2", minute: "0" }))[0],
    "second",
  );
  deepStrictEqual(
    rejection(() => toCronerPattern({ ...valid, second: "1", minute: "2|0" }))[0],
    "minute",
  );
});

Deno.test("one next fire is the first of several, in UTC and across a DST change", () => {
  for (
    const [zone, from] of [["UTC", "2026-03-29T00:59:59Z"], [
      "Europe/Berlin",
      "2026-03-29T00:30:00Z",
    ]]
  ) {
    for (const cron of ["30 2 * * *", "*/7 * * * *", "0 0 1 */2 *", "15 3 * * 1-5"]) {
      const schedule = compileSchedule(scheduleFromCrontab(cron), zone);
      const after = new Date(from);
      const [first] = schedule.nextRuns(3, after);
      deepStrictEqual(schedule.nextRuns(1, after), [first], `${cron} in ${zone}`);
      deepStrictEqual(schedule.nextAfter(after), first, `${cron} in ${zone}`);
    }
  }
});

Deno.test("thousands of compiled schedules stay small (croner's table of years is dropped)", () => {
  const before = Deno.memoryUsage().heapUsed;
  const kept = [];
  // 2,000 schedules compiled nowhere else in this file (a zone of their own).
  for (let i = 0; i < 2000; i++) {
    kept.push(
      compileSchedule(
        { ...valid, second: String(i % 60), minute: String(Math.floor(i / 60)) },
        "Asia/Kathmandu",
      ),
    );
  }
  const grownMb = (Deno.memoryUsage().heapUsed - before) / 1e6;
  // Croner's table alone is 80 kB a schedule: 160 MB for these.
  strictEqual(grownMb < 60, true, `2,000 schedules grew the heap by ${grownMb.toFixed(0)} MB`);
  strictEqual(kept.length, 2000);
});

Deno.test("spellings of the same values that fire alike are the same field", () => {
  const cases: [FieldName, string, string, boolean][] = [
    ["minute", "0-59/15", "*/15", true],
    ["minute", "0,15,30,45", "*/15", false], // a fixed time at DST changes, */15 an interval
    ["hour", "0-23", "*", false],
    ["hour", "1-3", "1,2,3", true],
    ["day_of_week", "0-4", "mon-fri", true],
    ["month", "1-3", "jan-mar", true],
    ["day", "1-31", "*", true],
    ["day", "last", "last", true],
    ["day", "2nd fri", "last", false],
    ["minute", "nope", "nope", false],
  ];
  for (const [field, a, b, same] of cases) {
    strictEqual(sameFieldValues(field, a, b), same, `${field} ${a} ${b}`);
  }
});
