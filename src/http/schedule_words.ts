/**
 * A schedule in words for the dashboard ("every 5 minutes", "at 02:30 on
 * mon-fri"). Common shapes get a sentence; anything else is said field by
 * field, so the words never claim more than the fields do.
 */
import { readableSchedule, type ScheduleFields } from "../cron/fields.ts";

const NUMBER = /^\d+$/;
const EVERY = /^\*\/(\d+)$/;
const two = (v: string) => v.padStart(2, "0");

function every(n: string, unit: string): string {
  return n === "1" ? `every ${unit}` : `every ${Number(n)} ${unit}s`;
}

/** The time of day part, or null when it has no simple shape. */
function timePart(s: ScheduleFields): string | null {
  const { second, minute, hour } = s;
  const atSecond = NUMBER.test(second) && second !== "0" ? `:${two(second)}` : "";
  if (NUMBER.test(second) && NUMBER.test(minute) && NUMBER.test(hour)) {
    return `at ${two(hour)}:${two(minute)}${atSecond}`;
  }
  if (hour !== "*") return null;
  if (second === "*" && minute === "*") return "every second";
  const secondStep = EVERY.exec(second);
  if (secondStep && minute === "*") return every(secondStep[1], "second");
  if (!NUMBER.test(second)) return null;
  if (minute === "*") return second === "0" ? "every minute" : `every minute at second ${second}`;
  const minuteStep = EVERY.exec(minute);
  if (minuteStep) return every(minuteStep[1], "minute") + (atSecond ? ` at second ${second}` : "");
  if (NUMBER.test(minute)) {
    return `every hour at minute ${Number(minute)}${atSecond ? `, second ${second}` : ""}`;
  }
  return null;
}

/** A weekday of the month in APScheduler's day field: `3rd fri`, `last sun`. */
const NTH_WEEKDAY = /^(1st|2nd|3rd|4th|5th|last) ([a-z]{3})$/i;

/** The day field's elements in words: `1,last sun` → "day 1, the last sun". */
function dayWords(day: string): string {
  if (/^[\d,/-]+$/.test(day)) return `day ${day}`;
  return day.split(",").map((element) => {
    if (element === "last") return "the last day";
    const nth = NTH_WEEKDAY.exec(element);
    return nth ? `the ${nth[1]} ${nth[2]}` : `day ${element}`;
  }).join(", ");
}

function datePart(s: ScheduleFields): string[] {
  const out: string[] = [];
  if (s.day !== "*") out.push(`on ${dayWords(s.day)} of the month`);
  if (s.day_of_week !== "*") out.push(`on ${s.day_of_week}`);
  if (s.month !== "*") out.push(`in month ${s.month}`);
  return out;
}

const TIME_FIELDS = ["second", "minute", "hour"] as const;

/**
 * The time of day field by field, smallest first, up to the largest one
 * given: a `*` below it is said ("every second of hour 3" fires 3,600 times,
 * where "at hour 3" would say once); one right above another `*` is implied.
 */
function timeFields(s: ScheduleFields): string {
  const top = TIME_FIELDS.findLastIndex((f) => s[f] !== "*");
  const parts: string[] = [];
  for (let i = 0; i <= top; i++) {
    const field = TIME_FIELDS[i];
    // "every minute" fires at second 0: said, it would read as a field of its own.
    if (field === "second" && s.second === "0" && s.minute === "*") continue;
    if (s[field] !== "*") parts.push(`${field} ${s[field]}`);
    else if (i === 0 || s[TIME_FIELDS[i - 1]] !== "*") parts.push(`every ${field}`);
  }
  const every = (part: string) => part.startsWith("every ");
  const joined = parts.reduce((text, part, i) =>
    `${text}${every(part) || every(parts[i - 1]) ? " of " : ", "}${part}`
  );
  return every(joined) ? joined : `at ${joined}`;
}

export function scheduleWords(fields: ScheduleFields): string {
  // Weekdays in names, as the CLI shows them: numbers count differently in crontab. The
  // other fields come first, as given, and may hold spaces (day `last sun`).
  const given = TIME_FIELDS.map((f) => fields[f]).concat(fields.day, fields.month).join(" ");
  const s = { ...fields, day_of_week: readableSchedule(fields).slice(given.length + 1) };
  const time = timePart(s);
  const dates = datePart(s);
  if (time === null) return [timeFields(s), ...dates].join(" ");
  if (dates.length === 0 && time.startsWith("at ")) return `${time} every day`;
  return [time, ...dates].join(" ");
}
