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
import { runList, SYNTAX, type Term } from "./grammar.ts";
import { offsetMs, UTC_ZONES } from "./local_time.ts";

/** A compiled schedule: compile once, ask many times (used by the service's timetable). */
export interface Schedule {
  /** The first fire time strictly after `instant`, or null if the schedule never fires again. */
  nextAfter(instant: Date): Date | null;
  /** {@link nextAfter} in milliseconds since the epoch, as a timetable keeps its fires. */
  nextAfterMs(instant: number): number | null;
  /** Up to `n` fire times strictly after `after`, in order. */
  nextRuns(n: number, after: Date): Date[];
}

/**
 * Validate all six fields with APScheduler's rules and return the croner
 * pattern. Throws ValidationError naming the field.
 */
export function toCronerPattern(fields: ScheduleFields): string {
  const { second, minute, hour, day, month, day_of_week } = fields;
  const last = lastTranslated;
  if (
    last.pattern !== "" && second === last.second && minute === last.minute &&
    hour === last.hour && day === last.day && month === last.month &&
    day_of_week === last.day_of_week
  ) {
    return last.pattern;
  }
  let pattern = patterns.get(second)?.get(minute)?.get(hour)?.get(day)?.get(month)
    ?.get(day_of_week);
  if (pattern === undefined) {
    pattern = translate(fields);
    if (patternCount >= MAX_COMPILED) {
      patterns.clear();
      patternCount = 0;
    }
    inPatterns(second, minute, hour, day, month).set(day_of_week, pattern);
    patternCount++;
  }
  last.second = second;
  last.minute = minute;
  last.hour = hour;
  last.day = day;
  last.month = month;
  last.day_of_week = day_of_week;
  last.pattern = pattern;
  return pattern;
}

/**
 * Croner patterns of valid fields already seen, by second, minute, hour,
 * day, month and day_of_week: a catalogue of thousands of jobs shares far
 * fewer schedules, and each is checked and translated on every `job list`
 * and reload. Found one Map at a time, as a key built of the six fields
 * for each of 10,000 jobs was 4 MB of garbage. Invalid fields are not
 * kept: they throw.
 */
const patterns = new Map<
  string,
  Map<string, Map<string, Map<string, Map<string, Map<string, string>>>>>
>();
/** Patterns in {@link patterns}. */
let patternCount = 0;

/** The patterns of valid fields with these five, by day_of_week (made empty when there are none). */
function inPatterns(
  second: string,
  minute: string,
  hour: string,
  day: string,
  month: string,
): Map<string, string> {
  return child(child(child(child(child(patterns, second), minute), hour), day), month);
}

/** `map`'s Map at `key`, made empty when there is none. */
function child<V>(map: Map<string, Map<string, V>>, key: string): Map<string, V> {
  let found = map.get(key);
  if (found === undefined) map.set(key, found = new Map());
  return found;
}

/**
 * The fields last translated, and their pattern (empty before the first):
 * a reload checks a job, then schedules it. One object, written over.
 */
const lastTranslated: ScheduleFields & { pattern: string } = {
  second: "",
  minute: "",
  hour: "",
  day: "",
  month: "",
  day_of_week: "",
  pattern: "",
};

function translate(fields: ScheduleFields): string {
  return plainPattern(fields) ?? parsedPattern(fields);
}

/**
 * The pattern of fields that are each `*` or one number in range, with
 * day_of_week `*`, written as {@link parsedPattern} would write it, or
 * undefined for any other fields. Most schedules are such, and a reload
 * adding thousands of jobs at different times translates each: reading
 * 1,440 of them through the whole grammar took 25-40 ms, this 6.
 */
function plainPattern(fields: ScheduleFields): string | undefined {
  if (fields.day_of_week !== "*") return undefined;
  let pattern = "";
  for (const field of PLAIN_FIELDS) {
    const value = fields[field];
    if (value === "*") {
      pattern += "* ";
      continue;
    }
    const { min, max } = SYNTAX.apscheduler[field];
    const n = DIGITS.test(value) ? Number(value) : NaN;
    if (!(n >= min && n <= max)) return undefined;
    pattern += `${n} `;
  }
  return `${pattern}*`;
}

/** The fields a plain pattern may hold a number in, in croner's order. */
const PLAIN_FIELDS = ["second", "minute", "hour", "day", "month"] as const;
const DIGITS = /^\d+$/;

function parsedPattern(fields: ScheduleFields): string {
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
 * `tz` as the zone database spells it when only its case differs
 * (`europe/berlin` → `Europe/Berlin`, `utc` → `UTC`), so a job shows and
 * compares under one name; as given otherwise (an alias, or no zone: the
 * check says so).
 */
export function zoneSpelling(tz: string): string {
  if (knownZones.has(tz)) return tz;
  try {
    const named = new Intl.DateTimeFormat(undefined, { timeZone: tz }).resolvedOptions().timeZone;
    return named.toLowerCase() === tz.toLowerCase() ? named : tz;
  } catch {
    return tz;
  }
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
 * Compiled schedules by zone and pattern. A croner instance answers
 * `nextRun(date)` as a pure function of the date, so jobs with the same
 * schedule share one; bounded, since patterns come and go with reloads.
 */
const compiled = new Map<string, Map<string, Schedule>>();
/** By zone and pattern, the compiled outline of a pattern not compiled itself (see {@link outlineOf}). */
const outlines = new Map<string, Map<string, Schedule>>();
/** Schedules in `compiled` and `outlines`. */
let compiledCount = 0;
const MAX_COMPILED = 50_000;

/** `cache`'s schedules in `timezone`, by pattern. */
function inZone(
  cache: Map<string, Map<string, Schedule>>,
  timezone: string,
): Map<string, Schedule> {
  let byPattern = cache.get(timezone);
  if (byPattern === undefined) {
    byPattern = new Map();
    cache.set(timezone, byPattern);
  }
  return byPattern;
}

/** Keep `schedule` as `pattern`'s in `timezone` in `cache`, within the bound. */
function keep(
  cache: Map<string, Map<string, Schedule>>,
  pattern: string,
  timezone: string,
  schedule: Schedule,
): void {
  if (compiledCount >= MAX_COMPILED) {
    compiled.clear();
    outlines.clear();
    compiledCount = 0;
  }
  inZone(cache, timezone).set(pattern, schedule);
  compiledCount++;
}

/**
 * Compile fields and a time zone once; throws ValidationError like
 * {@link toCronerPattern} and {@link validateTimezone}.
 */
export function compileSchedule(fields: ScheduleFields, timezone: string): Schedule {
  return compilePattern(toCronerPattern(fields), timezone);
}

/**
 * A schedule of `fields` that costs no new croner instance: the schedule
 * itself when it was compiled before (`exact`), else its outline, which
 * fires whenever the schedule does and at other times too, so that its
 * first fire after any instant is never later than the schedule's. A new
 * croner instance takes a tenth of a millisecond, and 10,000 jobs at
 * 1,440 times of day share 24 outlines: a timetable can order them by
 * their outlines and compile each when its outline's fire comes near.
 */
export function scheduleOrOutline(
  fields: ScheduleFields,
  timezone: string,
): { schedule: Schedule; exact: boolean } {
  const pattern = toCronerPattern(fields);
  const known = compiled.get(timezone)?.get(pattern);
  if (known !== undefined) return { schedule: known, exact: true };
  const outline = outlines.get(timezone)?.get(pattern);
  if (outline !== undefined) return { schedule: outline, exact: false };
  const outlined = outlineOf(pattern);
  const schedule = compilePattern(outlined, timezone);
  if (outlined === pattern) return { schedule, exact: true };
  keep(outlines, pattern, timezone, schedule);
  return { schedule, exact: false };
}

/**
 * The first fire of `fields` in `timezone` strictly after `after`, as
 * `compileSchedule(fields, timezone).nextAfter(after)` answers it, for a
 * listing that asks thousands of jobs once each: a new croner instance
 * takes a tenth of a millisecond and leaves 80 kB of garbage, and 10,000
 * jobs at 1,440 times of day made `job list` spend 100-200 ms on them. A
 * schedule of one second and one minute fires in the hours its outline
 * names, at that minute and second: in the hour of the outline's first
 * fire, unless that minute and second have passed, then in the hour of
 * its next. Only where the zone's offset changes in or at the edge of
 * that hour (DST) is the schedule itself compiled and asked.
 */
export function firstFireAfter(fields: ScheduleFields, timezone: string, after: Date): Date | null {
  const pattern = toCronerPattern(fields);
  const into = intoHour(pattern);
  if (into !== null) {
    const { schedule, exact } = scheduleOrOutline(fields, timezone);
    if (exact) return schedule.nextAfter(after);
    const fire = fireInOutline(schedule, into, timezone, after.getTime());
    if (fire !== undefined) return fire === null ? null : new Date(fire);
  }
  return compilePattern(pattern, timezone).nextAfter(after);
}

/** How far into an hour a pattern of one second and one minute fires, in ms; else null. */
function intoHour(pattern: string): number | null {
  let into = intoHours.get(pattern);
  if (into === undefined) {
    const [second, minute] = pattern.split(" ", 2);
    into = DIGITS.test(second) && DIGITS.test(minute)
      ? (Number(minute) * 60 + Number(second)) * 1000
      : null;
    if (intoHours.size >= MAX_COMPILED) intoHours.clear();
    intoHours.set(pattern, into);
  }
  return into;
}

/** {@link intoHour}'s answers: a listing asks it of every job, and jobs share patterns. */
const intoHours = new Map<string, number | null>();

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/**
 * The first instant after `after` that is `into` milliseconds into an hour
 * of `outline`'s fires; null when the outline never fires again (nor then
 * does any schedule it outlines), undefined when such an hour is not steady.
 */
function fireInOutline(
  outline: Schedule,
  into: number,
  timezone: string,
  after: number,
): number | null | undefined {
  const start = outlineHour(outline, timezone, after);
  if (start === null || start === undefined) return start;
  if (start + into > after) return start + into;
  // Its minute and second of this hour have passed: the outline's next hour.
  const next = outlineHour(outline, timezone, start + HOUR - 1000);
  return next === null || next === undefined ? next : next + into;
}

/**
 * The start of the hour of `outline`'s first fire after `after`, as
 * {@link steadyHourStart} gives it; null when it never fires again. Each
 * outline keeps its last two answers: a listing asks each of its jobs
 * about the same instant, and about the end of that first hour.
 */
function outlineHour(
  outline: Schedule,
  timezone: string,
  after: number,
): number | null | undefined {
  let known = outlineHours.get(outline);
  if (known === undefined) outlineHours.set(outline, known = new Map());
  if (known.has(after)) return known.get(after);
  const fire = outline.nextAfterMs(after);
  const start = fire === null ? null : steadyHourStart(fire, timezone);
  if (known.size >= 2) known.clear();
  known.set(after, start);
  return start;
}

const outlineHours = new WeakMap<Schedule, Map<number, number | null | undefined>>();

/**
 * The start of the local hour `instant` falls in, when the zone's offset is
 * the same from a day before it to its end; else undefined. A DST change
 * that far back may have shown its wall-clock times already (an overlap:
 * a fixed-time schedule ran then), a gap just before it moves skipped fires
 * to its start, and a change within it moves its times.
 */
function steadyHourStart(instant: number, timezone: string): number | undefined {
  if (UTC_ZONES.has(timezone)) return instant - instant % HOUR;
  const offset = offsetMs(new Date(instant), timezone);
  const local = instant + offset;
  const start = local - local % HOUR - offset;
  const steady = [start - DAY, start + HOUR].every((t) =>
    offsetMs(new Date(t), timezone) === offset
  );
  return steady ? start : undefined;
}

/**
 * A croner pattern's outline: every second of the hours, days and months
 * it names. Every local time the pattern names, the outline names too, and
 * croner treats both alike at DST changes: a pattern whose second, minute
 * and hour have no `*` or `/` is a fixed time (run once after a gap, once
 * in an overlap), so its outline spells them `0-59` and is one too.
 */
function outlineOf(pattern: string): string {
  const [second, minute, hour, ...days] = pattern.split(" ");
  const fixed = [second, minute, hour].every((field) => !/[*/]/.test(field));
  const every = fixed ? "0-59" : "*";
  return [every, every, hour, ...days].join(" ");
}

/** The schedule of a valid croner pattern, compiled once per pattern and zone. */
function compilePattern(pattern: string, timezone: string): Schedule {
  const cached = compiled.get(timezone)?.get(pattern);
  if (cached !== undefined) return cached;
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
  // Jobs sharing a schedule are often asked about instants close together
  // at once (a reload schedules each from its last change): no fire lies
  // between the last instant asked and its answer, so every instant
  // between them has that answer too.
  let lastAfter = NaN;
  let lastNext: number | null = null;
  const nextAfterMs = (instant: number) => {
    if (!(instant >= lastAfter && (lastNext === null || instant < lastNext))) {
      lastAfter = instant;
      lastNext = cron.nextRun(new Date(instant))?.getTime() ?? null;
    }
    return lastNext;
  };
  const nextAfter = (instant: Date) => {
    const next = nextAfterMs(instant.getTime());
    return next === null ? null : new Date(next);
  };
  const schedule: Schedule = {
    nextAfter,
    nextAfterMs,
    // `job list` asks every job for one fire after the same instant.
    nextRuns: (n, after) => {
      if (n !== 1) return cron.nextRuns(n, after);
      const next = nextAfter(after);
      return next === null ? [] : [next];
    },
  };
  keep(compiled, pattern, timezone, schedule);
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

/** Whether the fields match a date of some year (see checkEverFires). */
export function everFires(fields: ScheduleFields): boolean {
  return compileSchedule(fields, "UTC").nextAfter(SEARCH_FROM) !== null;
}

/**
 * Throw ValidationError when the fields match no date of any year (day 31
 * of February, a 5th Monday in a month that never has one…): such a job
 * would be stored and never fire. Costs a croner search (milliseconds), so
 * it is asked when a schedule is written, not on every reload.
 */
export function checkEverFires(fields: ScheduleFields): void {
  if (everFires(fields)) return;
  throw new ValidationError(
    "schedule",
    `schedule: day '${fields.day}', month '${fields.month}' and day_of_week '${fields.day_of_week}' ` +
      `never fall on one date, so the job would never fire; check those fields`,
  );
}
