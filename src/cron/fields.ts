/**
 * A job's schedule: six fields that mean exactly what they meant in
 * APScheduler 3's CronTrigger (the Python project jobsmanager replaces),
 * with its rule for the fields not given, its validation, and one spelling
 * per meaning for what is stored.
 */

import { ValidationError } from "../errors.ts";
import {
  FIELD_NAMES,
  type FieldName,
  parseTerm,
  runList,
  splitList,
  SYNTAX,
  type Term,
  termValues,
  WEEKDAY_NAMES,
} from "./grammar.ts";

/** A job's schedule: APScheduler's six fields as text. */
export type ScheduleFields = Record<FieldName, string>;

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
  const { weekdays } = parseFields(fields);
  return Object.fromEntries(FIELD_NAMES.map((field) => [
    field,
    field === "day_of_week" ? weekdayNames(weekdays) : normalized(fields[field]),
  ])) as ScheduleFields;
}

/**
 * The six fields as a person should read them: day_of_week in names, so a
 * schedule pasted back into `--cron` (whose weekday numbers count from
 * Sunday) means what it meant. A row broken by hand is shown as it is.
 */
export function readableSchedule(fields: ScheduleFields): string {
  // Every day of the week reads `*`, valid or not: nothing to parse (a
  // listing of thousands of schedules spent 6 kB on parsing each).
  if (fields.day_of_week === "*") return FIELD_NAMES.map((field) => fields[field]).join(" ");
  let weekdays: Set<number>;
  try {
    weekdays = parseFields(fields).weekdays;
  } catch {
    return FIELD_NAMES.map((field) => fields[field]).join(" ");
  }
  return FIELD_NAMES.map((field) =>
    field === "day_of_week" ? weekdayNames(weekdays) : fields[field]
  ).join(" ");
}

/**
 * day_of_week in names (`0-4` → `mon-fri`, `*\/2` → `mon,wed,fri,sun`, every day `*`):
 * APScheduler counts weekdays from Monday, crontab from Sunday; only names
 * mean the same in both.
 */
function weekdayNames(weekdays: Set<number>): string {
  if (weekdays.size === WEEKDAY_NAMES.length) return "*";
  // Sunday ends APScheduler's week but starts crontab's: `sat-sun` would be a backwards range there.
  const SUNDAY = 6;
  const names = runList([...weekdays].filter((day) => day !== SUNDAY), (day) => WEEKDAY_NAMES[day]);
  return weekdays.has(SUNDAY) ? (names === "" ? "sun" : `${names},sun`) : names;
}

/** One spelling per meaning, so stored fields compare and display alike. */
function normalized(value: string): string {
  return value.trim().split(/\s*,\s*/).map((element) => element.replace(/\s+/g, " "))
    .join(",").toLowerCase();
}

/** One element of `day`: days of the month, the month's last day, or its nth weekday. */
export type Day =
  | { kind: "days"; term: Term }
  | { kind: "last" }
  | { kind: "nth"; n: number | "last"; weekday: number };

/** Six fields read and checked: what each element stands for. */
export interface ParsedFields {
  second: Term[];
  minute: Term[];
  hour: Term[];
  day: Day[];
  month: Term[];
  /** The weekdays day_of_week allows, 0 = Monday. */
  weekdays: Set<number>;
}

/**
 * Read all six fields with APScheduler's rules; throws ValidationError naming
 * the field that is wrong.
 */
export function parseFields(fields: ScheduleFields): ParsedFields {
  const [second, minute, hour] = (["second", "minute", "hour"] as const).map((field) =>
    terms(fields[field], field)
  );
  const day = splitList(fields.day, SYNTAX.apscheduler.day).map(parseDay);
  const month = terms(fields.month, "month");
  const weekdays = new Set(terms(fields.day_of_week, "day_of_week").flatMap(termValues));
  checkNthWeekdays(fields, day, weekdays);
  return { second, minute, hour, day, month, weekdays };
}

function terms(value: string, field: FieldName): Term[] {
  const syntax = SYNTAX.apscheduler[field];
  return splitList(value, syntax).map((element) => parseTerm(element, syntax));
}

const NTH_WEEKDAY = /^(1st|2nd|3rd|4th|5th|last)\s+([a-z]+)$/i;

function parseDay(element: string): Day {
  if (element.toLowerCase() === "last") return { kind: "last" };
  const nth = NTH_WEEKDAY.exec(element);
  const weekday = nth ? WEEKDAY_NAMES.indexOf(nth[2].toLowerCase()) : -1;
  if (nth && weekday >= 0) {
    const n = nth[1].toLowerCase() === "last" ? "last" : Number(nth[1][0]);
    return { kind: "nth", n, weekday };
  }
  return { kind: "days", term: parseTerm(element, SYNTAX.apscheduler.day) };
}

/**
 * An nth weekday (`2nd fri`) cannot sit beside plain days, nor beside a
 * day_of_week restriction. croner, which runs the schedules, writes an nth
 * weekday in its day-of-week field and ANDs that field with day-of-month:
 * either combination would need an OR, or an AND within one field.
 */
function checkNthWeekdays(fields: ScheduleFields, days: Day[], weekdays: Set<number>): void {
  const nth = days.filter((day) => day.kind === "nth").length;
  if (nth === 0) return;
  const day = fields.day.trim();
  if (nth < days.length) {
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
}

/**
 * Whether two spellings of `field` stand for the same values (`0-59/15`
 * and `*\/15`, `0-4` and `mon-fri`) and fire alike at DST changes, where
 * a second, minute or hour with no `*` or step makes a fixed time (`0-23`
 * is not `*`); a spelling that does not parse matches none.
 */
export function sameFieldValues(field: FieldName, a: string, b: string): boolean {
  try {
    return valuesOf(field, a) === valuesOf(field, b);
  } catch (error) {
    if (error instanceof ValidationError) return false;
    throw error;
  }
}

/** The values a field's text stands for, as one comparable string. */
function valuesOf(field: FieldName, value: string): string {
  const values = field === "day"
    ? splitList(value, SYNTAX.apscheduler.day).map(parseDay).flatMap((day) =>
      day.kind === "days"
        ? termValues(day.term).map(String)
        : day.kind === "last"
        ? ["last"]
        : [`${day.n} ${day.weekday}`]
    )
    : terms(value, field).flatMap(termValues).map(String);
  const interval = (field === "second" || field === "minute" || field === "hour") &&
    terms(value, field).some((term) => term.star || term.step !== undefined);
  return `${interval ? "interval " : ""}${[...new Set(values)].sort().join(",")}`;
}
