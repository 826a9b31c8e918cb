/**
 * The conversion of POSIX crontab lines into APScheduler's six fields, read
 * with the grammar both notations share (see grammar.ts).
 */

import { ValidationError } from "../errors.ts";
import type { ScheduleFields } from "./fields.ts";
import {
  FIELD_NAMES,
  type FieldName,
  parseTerm,
  runList,
  splitList,
  SYNTAX,
  termValues,
  WEEKDAY_NAMES,
} from "./grammar.ts";

const NICKNAMES: Record<string, string> = {
  "@yearly": "0 0 1 1 *",
  "@annually": "0 0 1 1 *",
  "@monthly": "0 0 1 * *",
  "@weekly": "0 0 * * 0",
  "@daily": "0 0 * * *",
  "@midnight": "0 0 * * *",
  "@hourly": "0 * * * *",
};

/**
 * Convert a crontab line (`m h dom mon dow`, `s m h dom mon dow` or a
 * nickname such as `@daily`) into APScheduler's six fields. Day-of-week is
 * written with names, Monday first, because APScheduler numbers weekdays
 * from Monday and crontab from Sunday: a stored `1` would be ambiguous.
 * A message names a field as `option` says the person gives it.
 */
export function scheduleFromCrontab(
  expression: string,
  option: (field: FieldName) => string = (field) => field,
): ScheduleFields {
  const line = expression.trim();
  const expanded = line.startsWith("@") ? nickname(line) : line;
  const parts = expanded === "" ? [] : expanded.split(/\s+/);
  if (parts.length !== 5 && parts.length !== 6) {
    throw new ValidationError(
      "cron",
      `cron: '${line}' has ${parts.length} field${parts.length === 1 ? "" : "s"}; expected 5 ` +
        `(minute hour day-of-month month day-of-week), 6 (second first) or a nickname like @daily`,
    );
  }
  const raw = parts.length === 5 ? ["0", ...parts] : parts;
  const syntax = FIELD_NAMES.map((field) => SYNTAX.crontab[field]);
  const lists = raw.map((value, i) => splitList(value, syntax[i]));
  const terms = lists.map((elements, i) => elements.map((e) => parseTerm(e, syntax[i])));
  const [second, minute, hour, day] = lists.map((elements) => elements.join(",").toLowerCase());
  // A stepped range of month names in numbers: jobsmanager's notation, as APScheduler's, has none.
  const month = lists[4].map((element, i) => {
    const term = terms[4][i];
    return /[a-z]/i.test(element) && term.step !== undefined
      ? `${term.first}-${term.last}/${term.step}`
      : element.toLowerCase();
  }).join(",");
  const weekdays = new Set(
    terms[5].flatMap(termValues).map((sundayFirst) => (sundayFirst + 6) % 7),
  );
  const dayOfWeek = weekdayNames(weekdays);
  // Vixie cron ANDs the two day fields when either starts with `*`, and ORs them otherwise.
  if (!raw[3].startsWith("*") && !raw[5].startsWith("*")) {
    throw new ValidationError(
      "cron",
      `cron: '${line}' restricts both day-of-month and day-of-week, which crontab ORs ` +
        `(day ${day} of the month or ${dayOfWeek}) but jobsmanager ANDs; schedule two jobs, ` +
        `or use ${option("day")} and ${option("day_of_week")} if you mean both at once`,
    );
  }
  return { second, minute, hour, day, month, day_of_week: dayOfWeek };
}

function nickname(line: string): string {
  const pattern = NICKNAMES[line.toLowerCase()];
  if (pattern === undefined) {
    const allowed = Object.keys(NICKNAMES).join(", ");
    throw new ValidationError("cron", `cron: unknown nickname '${line}' (allowed: ${allowed})`);
  }
  return pattern;
}

/** APScheduler weekdays (0 = Monday) as names and name ranges, or `*` for all seven. */
function weekdayNames(weekdays: Set<number>): string {
  return weekdays.size === 7 ? "*" : runList(weekdays, (weekday) => WEEKDAY_NAMES[weekday]);
}
