/**
 * Instants as people read and type them, in a named time zone.
 */
import { valueRefused } from "../errors.ts";
import { offsetMs, zoneOffset } from "../cron/local_time.ts";
import { shortened } from "./printable.ts";

/**
 * This machine's zone, the default for `jobsmanager.timezone`. Temporal asks
 * ICU for the zone alone, in 2 ms; a DateTimeFormat's resolved options took
 * 20-30 ms (its locale data), and named no zone but `+00:00` with TZ=GMT.
 */
export function systemTimezone(): string {
  return systemZone().zone;
}

/**
 * This machine's zone, and what in TZ it could not read (null when
 * nothing): ICU reads an IANA name (`Europe/Berlin`, `:Europe/Berlin`) or
 * /etc/localtime, and takes anything else for UTC with no word, where the
 * C library (`date`) reads a zoneinfo file's path or a POSIX rule
 * (`CET-1CEST,M3.5.0,M10.5.0/3`): a service on such a TZ fired the jobs
 * that name no zone hours off. A path to a zoneinfo file is read as the
 * zone it names; anything else is said.
 */
export function systemZone(tz = Deno.env.get("TZ")): { zone: string; problem: string | null } {
  const icu = Temporal.Now.timeZoneId();
  // ICU's name for an empty TZ (`docker run -e TZ=`), which POSIX reads as UTC.
  if (tz === undefined || icu === "Etc/Unknown") {
    return { zone: icu === "Etc/Unknown" ? "UTC" : icu, problem: null };
  }
  const given = tz.startsWith(":") ? tz.slice(1) : tz;
  const file = zoneOfFile(given);
  const name = file ?? given;
  // ICU fell back to UTC for what it could not read: only a name of UTC's is UTC.
  if (icu !== "UTC" || /^(Etc\/)?(UTC|UCT|GMT|Zulu|Universal|Greenwich)([+-]?0)?$/i.test(name)) {
    return { zone: icu, problem: null };
  }
  if (file !== null && knownZone(file)) return { zone: file, problem: null };
  return {
    zone: "UTC",
    problem: `TZ=${
      JSON.stringify(tz)
    } names no time zone jobsmanager can read, so it uses UTC (it reads IANA names such as Europe/Berlin, and the files under /usr/share/zoneinfo); give TZ a zone's name, or set jobsmanager.timezone`,
  };
}

/**
 * The zone a path names: the zoneinfo file it leads to (`TZ=:/etc/localtime`,
 * which spares the C library a stat per call, is a link to one), named by
 * where it lies under a directory `zoneinfo` (/usr/share/zoneinfo, or a
 * tree of another name's making, as NixOS's), its `posix/` and `right/`
 * copies too; null for what is no path, or none under such a directory.
 */
function zoneOfFile(given: string): string | null {
  if (!given.startsWith("/")) return null;
  let path = given;
  try {
    path = Deno.realPathSync(given);
  } catch {
    // Read as given: a path that leads nowhere still names its zone.
  }
  const at = path.lastIndexOf("/zoneinfo/");
  return at < 0 ? null : path.slice(at + "/zoneinfo/".length).replace(/^(posix|right)\//, "");
}

function knownZone(name: string): boolean {
  try {
    Temporal.Now.zonedDateTimeISO(name);
    return true;
  } catch {
    return false;
  }
}

const pad = (n: number, width = 2) => String(n).padStart(width, "0");

const WEEKDAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/** `Fri 2026-03-13 09:30:00 +01:00` in the given zone. */
export function formatInZone(instant: Date, timeZone: string): string {
  const offset = zoneOffset(instant, timeZone);
  const wall = new Date(instant.getTime() + offset.ms);
  // ICU writes the years before 1 as their era's: 1 BC is year 0.
  const year = wall.getUTCFullYear() > 0 ? wall.getUTCFullYear() : 1 - wall.getUTCFullYear();
  return `${WEEKDAYS[wall.getUTCDay()]} ${year}-${pad(wall.getUTCMonth() + 1)}-${
    pad(wall.getUTCDate())
  } ${pad(wall.getUTCHours())}:${pad(wall.getUTCMinutes())}:${
    pad(wall.getUTCSeconds())
  } ${offset.text}`;
}

/** `2026-03-13T08:30:00Z`: UTC, to the second. */
export function formatUtc(instant: Date): string {
  return instant.toISOString().replace(/\.000Z$/, "Z");
}

const ISO_LOCAL =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?)?(Z|[+-]\d{2}:?\d{2})?$/;

/**
 * Parse an instant a person typed: ISO 8601 with `Z` or an offset, or a
 * local date-time without one, read in `timeZone` (the job's zone).
 * Messages name the text by `option`, as the person gave it.
 */
export function parseInstant(text: string, timeZone: string, option: string): Date {
  const m = ISO_LOCAL.exec(text.trim());
  if (!m) {
    throw valueRefused(
      option,
      `${option}: '${text}' is not a date-time (expected e.g. 2026-03-29T01:30:00Z, 2026-03-29T02:30+02:00 or 2026-03-29 02:30 in the job's zone)`,
    );
  }
  const [, y, mo, d, h = "0", mi = "0", s = "0", ms = "0", zone] = m;
  const wall = Date.UTC(+y, +mo - 1, +d, +h, +mi, +s, Number(ms.padEnd(3, "0")));
  const check = new Date(wall);
  if (
    check.getUTCMonth() !== +mo - 1 || check.getUTCDate() !== +d || +h > 23 || +mi > 59 || +s > 59
  ) {
    throw valueRefused(option, `${option}: '${text}' is not a valid date-time`);
  }
  if (zone !== undefined) {
    if (zone === "Z") return new Date(wall);
    const sign = zone.startsWith("-") ? -1 : 1;
    const digits = zone.slice(1).replace(":", "");
    return new Date(
      wall - sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2))) * 60_000,
    );
  }
  // Wall-clock time in the zone: guess with the offset at that instant, then
  // correct once with the offset at the guess (enough for any real zone).
  let guess = wall - offsetMs(new Date(wall), timeZone);
  guess = wall - offsetMs(new Date(guess), timeZone);
  return new Date(guess);
}

const DURATION_UNITS: Record<string, number> = {
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** The longest duration taken: longer ones are typing mistakes, and far enough would be Infinity. */
const MAX_DURATION_MS = 100 * 365 * 86_400_000;

/**
 * `90s`, `15m`, `2h`, `7d`, `1w` in milliseconds; at most 100 years unless
 * `checked` (the caller refuses what is too long with its own bounds).
 */
export function parseDuration(text: string, option: string, checked = false): number {
  const m = /^(\d+)([smhdw])$/.exec(text.trim());
  if (!m) {
    throw valueRefused(
      option,
      `${option}: '${text}' is not a duration (expected a number and a unit: 90s, 15m, 2h, 7d, 1w)`,
    );
  }
  const ms = Number(m[1]) * DURATION_UNITS[m[2]];
  if (!checked && ms > MAX_DURATION_MS) {
    throw valueRefused(
      option,
      `${option}: '${
        shortened(text)
      }' is longer than 100 years (36500d), the longest taken; give a shorter duration`,
    );
  }
  return ms;
}
