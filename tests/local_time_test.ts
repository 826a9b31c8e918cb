/**
 * Wall-clock times as `job list`, `job next` and `status` print them: the
 * same as ICU writes each part of them, in every zone ICU knows, from 1900
 * to 2100 and around the years without an era of their own.
 */
import { deepStrictEqual } from "node:assert/strict";
import { formatInZone } from "../src/domain/time.ts";

/** The date's parts as ICU formats them, put together as formatInZone writes them. */
function byIcu(instant: Date, timeZone: string): string {
  const parts: Record<string, string> = {};
  const f = new Intl.DateTimeFormat("en-US", {
    timeZone,
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    weekday: "short",
    timeZoneName: "longOffset",
  });
  for (const p of f.formatToParts(instant)) parts[p.type] = p.value;
  const offset = parts.timeZoneName === "GMT" ? "+00:00" : parts.timeZoneName.replace("GMT", "");
  return `${parts.weekday} ${
    Number(parts.year)
  }-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second} ${offset}`;
}

Deno.test("formatInZone writes what ICU's parts say, in every zone", () => {
  const from = Date.UTC(1900, 0, 1);
  const to = Date.UTC(2100, 0, 1);
  const zones = Intl.supportedValuesOf("timeZone");
  for (const [i, zone] of [...zones, "UTC", "Etc/UTC"].entries()) {
    for (let k = 0; k < 20; k++) {
      // Spread over two centuries, at odd seconds and milliseconds.
      const at = new Date(
        from + ((i * 7919 + k * 104_729) % 20_000) / 20_000 * (to - from) + k * 1_001,
      );
      deepStrictEqual(formatInZone(at, zone), byIcu(at, zone), `${at.toISOString()} in ${zone}`);
    }
  }
});

Deno.test("formatInZone writes years before 1 as ICU does, by their era", () => {
  for (const iso of ["0000-06-01T00:00:00Z", "-000100-03-01T12:00:00Z", "0001-01-01T00:00:00Z"]) {
    const at = new Date(iso);
    for (const zone of ["UTC", "Europe/Berlin"]) {
      deepStrictEqual(formatInZone(at, zone), byIcu(at, zone), iso);
    }
  }
});
