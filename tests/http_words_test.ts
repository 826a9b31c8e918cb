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

Deno.test("words say every second or minute a schedule fires, and a weekday of the month", () => {
  const cases: [string, string][] = [
    // Every second of 03:00-03:59, not once at 3 o'clock.
    [words("*", "*", "3"), "every second of hour 3"],
    [words("*", "5", "*"), "every second of minute 5"],
    [words("0", "*", "3"), "every minute of hour 3"],
    [words("30", "*", "3"), "at second 30 of every minute of hour 3"],
    [words("*", "0-10", "3"), "every second of minute 0-10, hour 3"],
    [words("*", "*/5", "*"), "every second of minute */5"],
    [words("0", "*", "9-17", "* * mon-fri"), "every minute of hour 9-17 on mon-fri"],
    // A day field with a space in it: the last Sunday of March, not "on 3".
    [
      scheduleWords({
        second: "0",
        minute: "0",
        hour: "2",
        day: "last sun",
        month: "3",
        day_of_week: "*",
      }),
      "at 02:00 on the last sun of the month in month 3",
    ],
    [
      scheduleWords({
        second: "0",
        minute: "0",
        hour: "9",
        day: "1,3rd fri,last",
        month: "*",
        day_of_week: "mon",
      }),
      "at 09:00 on day 1, the 3rd fri, the last day of the month on mon",
    ],
  ];
  assertEquals(cases.map(([got]) => got), cases.map(([, want]) => want));
});
