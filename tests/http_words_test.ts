/** Schedules in words, as the dashboard lists them. */
import { assertEquals } from "./assert.ts";
import { scheduleWords } from "../src/http/schedule_words.ts";
import type { ScheduleFields } from "../src/cron/fields.ts";

function words(second: string, minute: string, hour: string, rest = "* * *"): string {
  const [day, month, day_of_week] = rest.split(" ");
  const fields: ScheduleFields = { second, minute, hour, day, month, day_of_week };
  return scheduleWords(fields);
}

Deno.test("common schedules read as a sentence; the rest field by field", () => {
  const cases: [string, string][] = [
    [words("*", "*", "*"), "every second"],
    [words("*/10", "*", "*"), "every 10 seconds"],
    [words("0", "*", "*"), "every minute"],
    [words("0", "*/5", "*"), "every 5 minutes"],
    [words("0", "15", "*"), "every hour at minute 15"],
    [words("0", "30", "2"), "at 02:30 every day"],
    [words("5", "0", "9", "* * mon-fri"), "at 09:00:05 on mon-fri"],
    [words("0", "0", "0", "1 * *"), "at 00:00 on day 1 of the month"],
    [words("0", "0", "0", "last * *"), "at 00:00 on the last day of the month"],
    [words("0", "0", "0", "* jan,jul *"), "at 00:00 in month jan,jul"],
    [words("0", "0", "9", "* * 0-4"), "at 09:00 on mon-fri"],
    [words("0", "0,30", "9-17", "* * mon-fri"), "at second 0, minute 0,30, hour 9-17 on mon-fri"],
  ];
  assertEquals(cases.map(([got]) => got), cases.map(([, want]) => want));
});
