/**
 * A time zone's offset from UTC at an instant, from ICU, and the wall clock
 * it makes.
 */

/** Zones with no offset ever, whose wall clock needs no ICU. */
export const UTC_ZONES = new Set(["UTC", "Etc/UTC"]);

const formatters = new Map<string, Intl.DateTimeFormat>();

/** ICU's name of the offset ends the text of this formatter: `1/1/2026, GMT+05:45`. */
function offsetFormatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", { timeZone, timeZoneName: "longOffset" });
    formatters.set(timeZone, f);
  }
  return f;
}

const OFFSET = /GMT(?:([+-])(\d\d):(\d\d)(?::(\d\d))?)?$/;

export interface ZoneOffset {
  /** Milliseconds to add to an instant for its wall-clock time. */
  ms: number;
  /** As people read it: `+01:00`, `-00:44:30`; `+00:00` for none. */
  text: string;
}

const NO_OFFSET: ZoneOffset = { ms: 0, text: "+00:00" };

/**
 * The zone's offset at an instant. Asks ICU for the offset's name alone:
 * the parts of a whole date (formatToParts) took 25 µs a time, and a
 * listing asks once for each of its thousands of fire times.
 */
export function zoneOffset(instant: Date, timeZone: string): ZoneOffset {
  if (UTC_ZONES.has(timeZone)) return NO_OFFSET;
  const [text, sign, hours, minutes, seconds] = OFFSET.exec(
    offsetFormatter(timeZone).format(instant),
  )!;
  if (sign === undefined) return NO_OFFSET;
  const ms = ((Number(hours) * 60 + Number(minutes)) * 60 + Number(seconds ?? 0)) * 1000;
  return { ms: sign === "-" ? -ms : ms, text: text.slice("GMT".length) };
}

/** The zone's UTC offset at an instant, in milliseconds. */
export function offsetMs(instant: Date, timeZone: string): number {
  return zoneOffset(instant, timeZone).ms;
}
