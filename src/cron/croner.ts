/**
 * Schedules as croner runs them: a job's fields (see fields.ts) translated
 * into a croner pattern, the time zone, and the compiled schedule.
 *
 * croner reads a different dialect: its weekdays count from Sunday, its
 * day-of-week `*\/2` starts on Sunday, it has no `a/n` and writes an nth
 * weekday in the day-of-week field. So weekdays are always sent as explicit
 * croner numbers, and the rest is rewritten where the meanings differ.
 */

import { Cron } from "croner";
import { ValidationError } from "../errors.ts";
import { type Day, parseFields, type ScheduleFields } from "./fields.ts";
import { FIELD_NAMES, runList, type Term } from "./grammar.ts";

/** A compiled schedule: compile once, ask many times (used by the service's timetable). */
export interface Schedule {
  /** The first fire time strictly after `instant`, or null if the schedule never fires again. */
  nextAfter(instant: Date): Date | null;
  /** Up to `n` fire times strictly after `after`, in order. */
  nextRuns(n: number, after: Date): Date[];
}

/**
 * Validate all six fields with APScheduler's rules and return the croner
 * pattern. Throws ValidationError naming the field.
 */
export function toCronerPattern(fields: ScheduleFields): string {
  // Each field after its length, not joined by spaces: a field written by hand may hold one.
  let key = "";
  for (const field of FIELD_NAMES) key += `${fields[field].length}:${fields[field]}`;
  const known = patterns.get(key);
  if (known !== undefined) return known;
  const pattern = translate(fields);
  if (patterns.size >= MAX_COMPILED) patterns.clear();
  patterns.set(key, pattern);
  return pattern;
}

/**
 * Croner patterns of valid fields already seen: a catalogue of thousands of
 * jobs shares far fewer schedules, and each is checked and translated on
 * every `job list` and reload. Invalid fields are not kept: they throw.
 */
const patterns = new Map<string, string>();

function translate(fields: ScheduleFields): string {
  const parsed = parseFields(fields);
  const [second, minute, hour, month] = [parsed.second, parsed.minute, parsed.hour, parsed.month]
    .map((terms) => terms.map(cronerTerm).join(","));
  const [dayOfMonth, dayOfWeek] = cronerDays(parsed.day, parsed.weekdays);
  return [second, minute, hour, dayOfMonth, month, dayOfWeek].join(" ");
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

/**
 * croner's day-of-month and day-of-week fields. croner writes an nth weekday
 * (`5#2`, the 2nd Friday) only in day-of-week, so such days go there; fields.ts
 * has made sure they stand alone, beside day_of_week `*`.
 */
function cronerDays(days: Day[], weekdays: Set<number>): [string, string] {
  const text = days.map(cronerDay).join(",");
  return days.some((day) => day.kind === "nth") ? ["*", text] : [text, cronerWeekdays(weekdays)];
}

function cronerDay(day: Day): string {
  switch (day.kind) {
    case "last":
      return "L";
    case "nth":
      return `${cronerWeekday(day.weekday)}#${day.n === "last" ? "L" : day.n}`;
    case "days":
      return cronerTerm(day.term);
  }
}

/** APScheduler counts weekdays from Monday (0), croner from Sunday (0). */
function cronerWeekday(weekday: number): number {
  return (weekday + 1) % 7;
}

function cronerWeekdays(weekdays: Set<number>): string {
  return weekdays.size === 7 ? "*" : runList([...weekdays].map(cronerWeekday), String);
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

/**
 * Zones already validated: asking ICU costs tens of microseconds a time,
 * and its first answer about 10 ms (loading its data), which a service
 * or `job list` whose jobs all run in UTC need not pay.
 */
const knownZones = new Set<string>(["UTC", "Etc/UTC"]);

/**
 * Compiled schedules by pattern and zone. A croner instance answers
 * `nextRun(date)` as a pure function of the date, so jobs with the same
 * schedule share one; bounded, since patterns come and go with reloads.
 */
const compiled = new Map<string, Schedule>();
const UTC_ZONES = new Set(["UTC", "Etc/UTC"]);
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
    // UTC has no transitions: croner's offset arithmetic finds the same
    // fires several times faster than its search through Intl.
    ...(UTC_ZONES.has(validateTimezone(timezone)) ? { utcOffset: 0 } : { timezone }),
    domAndDow: true,
    // Vixie cron's DST rule: a fixed time in a gap runs once after it, in an overlap once.
    fixedTimeRule: "no-wildcard",
    mode: "6-part",
  });
  dropYearTable(cron);
  // Jobs sharing a schedule are often asked the same question at once (a
  // reload schedules them all from the same instant): answer it once.
  let lastAfter = NaN;
  let lastNext: Date | null = null;
  const nextAfter = (instant: Date) => {
    if (instant.getTime() !== lastAfter) {
      lastAfter = instant.getTime();
      lastNext = cron.nextRun(instant);
    }
    return lastNext === null ? null : new Date(lastNext);
  };
  const schedule: Schedule = {
    nextAfter,
    // `job list` asks every job for one fire after the same instant.
    nextRuns: (n, after) => {
      if (n !== 1) return cron.nextRuns(n, after);
      const next = nextAfter(after);
      return next === null ? [] : [next];
    },
  };
  if (compiled.size >= MAX_COMPILED) compiled.clear();
  compiled.set(key, schedule);
  return schedule;
}

/** What {@link dropYearTable} reaches inside a croner instance. */
interface CronInternals {
  _states?: { pattern?: { starYear?: boolean; year?: number[] } };
}

/**
 * croner gives every pattern a table of 10,000 years (80 kB), which it
 * reads only when the pattern names years; ours never do (6-part). A
 * service holding thousands of schedules would keep hundreds of megabytes
 * of it, so it is dropped. Only when the pattern says every year: should a
 * later croner change its insides, nothing is dropped.
 */
function dropYearTable(cron: Cron): void {
  const pattern = (cron as unknown as CronInternals)._states?.pattern;
  if (pattern?.starYear === true && Array.isArray(pattern.year)) pattern.year = [];
}

/** Where the search for a first fire starts: any instant would do, a fixed one keeps it repeatable. */
const SEARCH_FROM = new Date("2000-01-01T00:00:00Z");

/**
 * Throw ValidationError when the fields match no date of any year (day 31
 * of February, a 5th Monday in a month that never has one…): such a job
 * would be stored and never fire. Costs a croner search (milliseconds), so
 * it is asked when a schedule is written, not on every reload.
 */
export function checkEverFires(fields: ScheduleFields): void {
  if (compileSchedule(fields, "UTC").nextAfter(SEARCH_FROM) !== null) return;
  throw new ValidationError(
    "schedule",
    `schedule: day '${fields.day}', month '${fields.month}' and day_of_week '${fields.day_of_week}' ` +
      `never fall on one date, so the job would never fire; check those fields`,
  );
}
