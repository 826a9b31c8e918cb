/**
 * Job schedules: six fields that mean exactly what they meant in
 * APScheduler 3's CronTrigger (the Python project jobsmanager replaces),
 * validated with its rules and translated into a croner pattern.
 *
 * croner reads a different dialect: its weekdays count from Sunday, its
 * day-of-week `*\/2` starts on Sunday, it has no `a/n` and writes an nth
 * weekday in the day-of-week field. So weekdays are always sent as explicit
 * croner numbers, and the rest is rewritten where the meanings differ.
 */

import { Cron } from "croner";
import { ValidationError } from "../errors.ts";
import type { ScheduleFields } from "./fields.ts";
import {
  FIELD_NAMES,
  type FieldName,
  type FieldSyntax,
  parseTerm,
  runsOf,
  splitList,
  SYNTAX,
  type Term,
  termValues,
  WEEKDAY_NAMES,
} from "./grammar.ts";

/** A compiled schedule: compile once, ask many times (used by the service's timetable). */
export interface Schedule {
  /** The first fire time strictly after `instant`, or null if the schedule never fires again. */
  nextAfter(instant: Date): Date | null;
  /** Up to `n` fire times strictly after `after`, in order. */
  nextRuns(n: number, after: Date): Date[];
}

/** CronTrigger's field order, most significant first (its day comes before day_of_week). */
const SIGNIFICANCE: readonly FieldName[] = [
  "month",
  "day",
  "day_of_week",
  "hour",
  "minute",
  "second",
];

/** CronTrigger's DEFAULT_VALUES: what a field after the last given one becomes. */
const MINIMUM: ScheduleFields = {
  second: "0",
  minute: "0",
  hour: "0",
  day: "1",
  month: "1",
  day_of_week: "*",
};

/**
 * Validate given fields (any subset), apply CronTrigger's default rule, and
 * return all six normalized (trimmed; spaces around commas removed; lower-case
 * names). Throws ValidationError if no field is given or any is invalid.
 */
export function scheduleFromFields(given: Partial<Record<FieldName, string>>): ScheduleFields {
  // CronTrigger walks its fields from the most significant: those before the
  // least significant given one default to `*`, those after it to their minimum.
  const lastGiven = SIGNIFICANCE.findLastIndex((field) => given[field] !== undefined);
  if (lastGiven < 0) {
    throw new ValidationError(
      "schedule",
      "no schedule given: pass --cron or at least one of --second … --day-of-week",
    );
  }
  const fields = Object.fromEntries(FIELD_NAMES.map((field) => {
    const value = given[field] ?? (SIGNIFICANCE.indexOf(field) < lastGiven ? "*" : MINIMUM[field]);
    return [field, value];
  })) as ScheduleFields;
  // Validate what was typed, so messages quote it; store the normalized spelling.
  toCronerPattern(fields);
  return Object.fromEntries(
    FIELD_NAMES.map((field) => [field, normalized(fields[field])]),
  ) as ScheduleFields;
}

/** One spelling per meaning, so stored fields compare and display alike. */
function normalized(value: string): string {
  return value.trim().split(/\s*,\s*/).map((element) => element.replace(/\s+/g, " "))
    .join(",").toLowerCase();
}

/**
 * Validate all six fields with APScheduler's rules and return the croner
 * pattern. Throws ValidationError naming the field.
 */
export function toCronerPattern(fields: ScheduleFields): string {
  const [second, minute, hour] = (["second", "minute", "hour"] as const).map((field) =>
    terms(fields[field], SYNTAX.apscheduler[field]).map(cronerTerm).join(",")
  );
  const days = splitList(fields.day, SYNTAX.apscheduler.day).map(parseDay);
  const month = terms(fields.month, SYNTAX.apscheduler.month).map(cronerTerm).join(",");
  const weekdays = new Set(
    terms(fields.day_of_week, SYNTAX.apscheduler.day_of_week).flatMap(termValues),
  );
  const [dayOfMonth, dayOfWeek] = cronerDays(fields, days, weekdays);
  return [second, minute, hour, dayOfMonth, month, dayOfWeek].join(" ");
}

function terms(value: string, fieldSyntax: FieldSyntax): Term[] {
  return splitList(value, fieldSyntax).map((element) => parseTerm(element, fieldSyntax));
}

/**
 * A term in croner's syntax. Its `*`, `*\/n` and ranges mean what APScheduler's
 * do for every field but day-of-week (steps start at the field's minimum), so
 * they are kept: croner's DST rules tell interval jobs from fixed-time jobs
 * by them. Only `a/n` is spelled out, as croner requires `a-max/n`.
 */
function cronerTerm(term: Term): string {
  const step = term.step === undefined ? "" : `/${term.step}`;
  if (term.star) return `*${step}`;
  return term.first === term.last && step === ""
    ? `${term.first}`
    : `${term.first}-${term.last}${step}`;
}

/** One element of `day` in croner's syntax, and the croner field that can hold it. */
interface CronerDay {
  field: "dayOfMonth" | "dayOfWeek";
  text: string;
}

const NTH_WEEKDAY = /^(1st|2nd|3rd|4th|5th|last)\s+([a-z]+)$/i;

function parseDay(element: string): CronerDay {
  if (element.toLowerCase() === "last") return { field: "dayOfMonth", text: "L" };
  const nth = NTH_WEEKDAY.exec(element);
  const weekday = nth ? WEEKDAY_NAMES.indexOf(nth[2].toLowerCase()) : -1;
  if (nth && weekday >= 0) {
    const position = nth[1].toLowerCase() === "last" ? "L" : nth[1][0];
    return { field: "dayOfWeek", text: `${cronerWeekday(weekday)}#${position}` };
  }
  return { field: "dayOfMonth", text: cronerTerm(parseTerm(element, SYNTAX.apscheduler.day)) };
}

/**
 * croner's day-of-month and day-of-week fields. croner writes an nth weekday
 * (`5#2`, the 2nd Friday) only in day-of-week, and ANDs that field with
 * day-of-month, so `day: 2nd fri` cannot sit beside plain days, nor beside a
 * day_of_week restriction: that would need an OR, or an AND within one field.
 */
function cronerDays(
  fields: ScheduleFields,
  days: CronerDay[],
  weekdays: Set<number>,
): [string, string] {
  const nth = days.filter((day) => day.field === "dayOfWeek").map((day) => day.text);
  if (nth.length === 0) return [days.map((day) => day.text).join(","), cronerWeekdays(weekdays)];
  const day = fields.day.trim();
  if (nth.length < days.length) {
    throw new ValidationError(
      "day",
      `day: '${day}' mixes nth weekdays with other days, which cannot be scheduled together; ` +
        `use only nth weekdays (e.g. '1st mon,3rd mon') or schedule two jobs`,
    );
  }
  if (weekdays.size < 7) {
    throw new ValidationError(
      "day",
      `day: '${day}' needs day_of_week '*' (got '${fields.day_of_week.trim()}'), since an nth ` +
        `weekday already picks the weekday; drop the day_of_week restriction or schedule two jobs`,
    );
  }
  return ["*", nth.join(",")];
}

/** APScheduler counts weekdays from Monday (0), croner from Sunday (0). */
function cronerWeekday(weekday: number): number {
  return (weekday + 1) % 7;
}

function cronerWeekdays(weekdays: Set<number>): string {
  if (weekdays.size === 7) return "*";
  const sorted = [...weekdays].map(cronerWeekday).sort((a, b) => a - b);
  return runsOf(sorted).map(([a, b]) => a === b ? `${a}` : `${a}-${b}`).join(",");
}

/**
 * Validate an IANA time zone name (e.g. "Europe/Berlin", "UTC") and return it
 * unchanged; throws ValidationError("timezone", …) for unknown names or
 * offsets like "+01:00". Not canonicalized: ICU would turn EST5EDT into
 * America/New_York, and what the user typed is what they should see.
 */
export function validateTimezone(tz: string): string {
  if (knownZones.has(tz)) return tz;
  const examples = "(e.g. Europe/Berlin, America/New_York, UTC)";
  // Intl also takes offsets such as +01:00, but a zone name is what keeps DST rules.
  if (!/^[A-Za-z][A-Za-z0-9_+-]*(?:\/[A-Za-z0-9_+-]+)*$/.test(tz)) {
    throw new ValidationError(
      "timezone",
      `timezone: '${tz}' is not an IANA time zone name ${examples}`,
    );
  }
  try {
    new Intl.DateTimeFormat(undefined, { timeZone: tz });
  } catch {
    throw new ValidationError(
      "timezone",
      `timezone: '${tz}' is not a known IANA time zone ${examples}`,
    );
  }
  knownZones.add(tz);
  return tz;
}

/** Zones already validated: asking ICU costs tens of microseconds a time. */
const knownZones = new Set<string>();

/**
 * Compiled schedules by pattern and zone. A croner instance answers
 * `nextRun(date)` as a pure function of the date, so jobs with the same
 * schedule share one; bounded, since patterns come and go with reloads.
 */
const compiled = new Map<string, Schedule>();
const MAX_COMPILED = 50_000;

/**
 * Compile fields and a time zone once; throws ValidationError like
 * {@link toCronerPattern} and {@link validateTimezone}.
 */
export function compileSchedule(fields: ScheduleFields, timezone: string): Schedule {
  const pattern = toCronerPattern(fields);
  const key = `${pattern}|${timezone}`;
  const cached = compiled.get(key);
  if (cached) return cached;
  const cron = new Cron(pattern, {
    timezone: validateTimezone(timezone),
    domAndDow: true,
    // Vixie cron's DST rule: a fixed time in a gap runs once after it, in an overlap once.
    fixedTimeRule: "no-wildcard",
    mode: "6-part",
  });
  // Jobs sharing a schedule are often asked the same question at once (a
  // reload schedules them all from the same instant): answer it once.
  let lastAfter = NaN;
  let lastNext: Date | null = null;
  const schedule: Schedule = {
    nextAfter: (instant) => {
      if (instant.getTime() !== lastAfter) {
        lastAfter = instant.getTime();
        lastNext = cron.nextRun(instant);
      }
      return lastNext === null ? null : new Date(lastNext);
    },
    nextRuns: (n, after) => cron.nextRuns(n, after),
  };
  if (compiled.size >= MAX_COMPILED) compiled.clear();
  compiled.set(key, schedule);
  return schedule;
}
