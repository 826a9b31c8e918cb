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

function datePart(s: ScheduleFields): string[] {
  const out: string[] = [];
  if (s.day === "last") out.push("on the last day of the month");
  else if (s.day !== "*") out.push(`on day ${s.day} of the month`);
  if (s.day_of_week !== "*") out.push(`on ${s.day_of_week}`);
  if (s.month !== "*") out.push(`in month ${s.month}`);
  return out;
}

export function scheduleWords(fields: ScheduleFields): string {
  // Weekdays in names, as the CLI shows them: numbers count differently in crontab.
  const s = { ...fields, day_of_week: readableSchedule(fields).split(" ")[5] };
  const time = timePart(s);
  const dates = datePart(s);
  if (time === null) {
    const fields = (["second", "minute", "hour"] as const).filter((f) => s[f] !== "*")
      .map((f) => `${f} ${s[f]}`);
    return [`at ${fields.join(", ")}`, ...dates].join(" ");
  }
  if (dates.length === 0 && time.startsWith("at ")) return `${time} every day`;
  return [time, ...dates].join(" ");
}
