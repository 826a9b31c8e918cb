/**
 * Decoding the original JobsManager's pickled job states without running
 * anything, and mapping them to jobs: every field of every seed job, the
 * quirks in the notes, and the blobs that must be refused.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { candidateFromRow, type ServiceDefaults } from "../src/app/import/apscheduler.ts";
import { unpickle } from "../src/app/import/pickle.ts";
import type { Candidate } from "../src/app/import/plan.ts";
import { seedBlob, seedRows } from "./fixtures/seed.ts";

const HONG_KONG: ServiceDefaults = { timezone: "Asia/Hong_Kong", coalesce: false };
const NOW = Date.UTC(2026, 0, 1);

function candidates(defaults = HONG_KONG): Map<string, Candidate> {
  return new Map(seedRows().map((row) => [row.id, candidateFromRow(row, defaults, NOW)]));
}

/** The table in seed-jm_jobs.md: command, timeout, six fields, zone, enabled. */
const EXPECTED: Record<string, [string, number, string, string, boolean]> = {
  "backup": ["/usr/local/bin/backup.sh --full", 600, "0 30 2 * * mon-fri", "Asia/Hong_Kong", true],
  "tick": ["date >> /tmp/tick", 60, "*/10 * * * * *", "Asia/Hong_Kong", true],
  "month-end-report": ["report --month", 120, "0 55 23 last * *", "Asia/Hong_Kong", true],
  "second-friday": ["echo second friday", 60, "0 0 9 2nd fri jan-jun *", "Asia/Hong_Kong", true],
  "quoted": [
    `echo "héllo $(hostname)" | logger -t 'jm test'`,
    60,
    "0 */15 * * * *",
    "Asia/Hong_Kong",
    true,
  ],
  "paused": ["true", 5, "0 0 12 * * *", "Asia/Hong_Kong", false],
  "every-minute-seed-style": ["uptime", 60, "* */1 * * * *", "Asia/Hong_Kong", true],
  "berlin-morning": ["echo guten morgen", 30, "0 0 7 * * 0-4", "Europe/Berlin", true],
};

Deno.test("every seed job maps every field", () => {
  const found = candidates();
  assertEquals([...found.keys()].sort(), Object.keys(EXPECTED).sort());
  for (const [id, [command, timeout, schedule, timezone, enabled]] of Object.entries(EXPECTED)) {
    const c = found.get(id)!;
    assertEquals(c.problem, null, id);
    const job = c.job!;
    const [second, minute, hour, day, month, day_of_week] = schedule.split(" ").reduce(
      (fields, part) => {
        // "2nd fri" is one field: glue a weekday name to the ordinal before it.
        if (/^[a-z]{3}$/.test(part) && /^(\d(st|nd|rd|th)|last)$/.test(fields.at(-1) ?? "")) {
          fields[fields.length - 1] += ` ${part}`;
        } else fields.push(part);
        return fields;
      },
      [] as string[],
    );
    assertEquals(job, {
      id,
      command,
      second,
      minute,
      hour,
      day,
      month,
      day_of_week,
      timezone,
      timeout,
      enabled,
      max_instances: 1,
      // The original's coalesce came from its global.json: the service's setting decides now.
      coalesce: null,
      misfire_grace_time: 1,
      env: {},
      cwd: null,
      description: null,
      created_at: NOW,
      updated_at: NOW,
    }, id);
  }
});

Deno.test("the notes report the original's quirks, per job", () => {
  const found = candidates();
  const notes = (id: string) => found.get(id)!.notes.join("\n");
  assertMatch(notes("berlin-morning"), /fires in Europe\/Berlin, as before: .*host's zone/);
  assert(!/fires in/.test(notes("backup")), "a job in the service's zone needs no zone note");
  assertMatch(notes("every-minute-seed-style"), /every second .*--second 0/);
  assert(!/every second/.test(notes("tick")), "*/10 seconds is not the default-second quirk");
  assertMatch(notes("paused"), /paused in the original .*imported disabled/);
  for (const c of found.values()) {
    assertMatch(c.notes.join("\n"), /coalesce "False" as true.*--coalesce/, c.id);
  }
  const coalescing = candidates({ timezone: "Europe/Berlin", coalesce: true });
  assert(!/coalesce/.test(coalescing.get("backup")!.notes.join("\n")));
  assertMatch(coalescing.get("backup")!.notes.join("\n"), /fires in Asia\/Hong_Kong/);
});

/** A protocol-4 pickle from opcodes and short strings. */
function pickle(...parts: (number | string)[]): Uint8Array {
  const bytes: number[] = [0x80, 4];
  for (const part of parts) {
    if (typeof part === "number") bytes.push(part);
    else {
      const encoded = new TextEncoder().encode(part);
      bytes.push(0x8c, encoded.length, ...encoded);
    }
  }
  return Uint8Array.from(bytes);
}

function refusal(blob: Uint8Array): string {
  const c = candidateFromRow({ id: "x", next_run_time: 1, job_state: blob }, HONG_KONG, NOW);
  assertEquals(c.job, null);
  return c.problem!;
}

Deno.test("a truncated blob is refused with where it ends", () => {
  const blob = seedBlob("backup");
  assertEquals(
    refusal(blob.slice(0, 50)),
    "its job_state cannot be decoded: byte 49: truncated: needs 21 more bytes, the blob ends at 50",
  );
  assertMatch(refusal(blob.slice(0, -1)), /truncated: the blob ends before STOP/);
  assertMatch(refusal(new Uint8Array()), /truncated/);
});

Deno.test("a foreign class is refused before anything could call it", () => {
  // The real backup state with its logger, logging.getLogger('jobsmanager'),
  // turned into os.system('jobsmanager'): Python would run a command.
  const blob = seedBlob("backup");
  const text = String.fromCharCode(...blob);
  const hostile = text.replace(
    "\x8c\x07logging\x94\x8c\x09getLogger",
    "\x8c\x02os\x94\x8c\x06system",
  );
  assert(hostile !== text);
  assertEquals(
    refusal(Uint8Array.from(hostile, (c) => c.charCodeAt(0))),
    "its job_state cannot be decoded: byte 996: names os.system, which is not part of an APScheduler 3 job state; refused without running anything",
  );
  // The same through GLOBAL, protocol 2's way of naming it.
  const global = Uint8Array.from(
    "\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.",
    (c) => c.charCodeAt(0),
  );
  assertMatch(refusal(global), /byte 2: names posix\.system, which is not part/);
  // getattr may fetch only ZoneInfo._unpickle.
  assertMatch(
    refusal(
      pickle(
        "builtins",
        "getattr",
        0x93,
        "zoneinfo",
        "ZoneInfo",
        0x93,
        "__new__",
        0x86,
        0x52,
        0x2e,
      ),
    ),
    /refuses getattr\(zoneinfo\.ZoneInfo, "__new__"\)/,
  );
  // An allowed class cannot be called as a function, nor a function built as an object.
  assertMatch(
    refusal(pickle("apscheduler.triggers.cron", "CronTrigger", 0x93, 0x29, 0x52, 0x2e)),
    /refuses to call apscheduler\.triggers\.cron\.CronTrigger/,
  );
  assertMatch(
    refusal(pickle("logging", "getLogger", 0x93, 0x29, 0x81, 0x2e)),
    /refuses to instantiate logging\.getLogger/,
  );
});

Deno.test("opcodes that load code or objects by other means are refused by name", () => {
  assertMatch(
    refusal(pickle(0x28, 0x69)),
    /opcode 0x69 \(INST\) is not one an APScheduler 3 job state uses/,
  );
  assertMatch(refusal(pickle(0x28, 0x6f)), /opcode 0x6f \(OBJ\)/);
  assertMatch(refusal(pickle("x", 0x51)), /opcode 0x51 \(BINPERSID\)/);
  assertMatch(refusal(pickle(0x82, 1)), /opcode 0x82 \(EXT1\)/);
  assertMatch(
    refusal(Uint8Array.of(0x80, 1, 0x4e, 0x2e)),
    /protocol 1 \(APScheduler 3 writes 2 to 5\)/,
  );
});

Deno.test("a decodable state of another shape says what is missing", () => {
  assertMatch(refusal(pickle(0x4e, 0x2e)), /job_state is None, not a dict/);
  assertMatch(refusal(pickle(0x7d, "version", 0x4b, 1, 0x73, 0x2e)), /job_state has no 'func'/);
});

Deno.test("unpickle builds plain data: dicts as Maps, zones and datetimes as tagged values", () => {
  const state = unpickle(seedBlob("berlin-morning")) as Map<unknown, unknown>;
  assertEquals(state.get("id"), "berlin-morning");
  assertEquals(state.get("next_run_time"), {
    kind: "datetime",
    local: "2026-12-01T07:00:00.000000",
    zone: "Europe/Berlin",
  });
  assertEquals((state.get("args") as unknown[])[0], { kind: "logger", name: "jobsmanager" });
  // A key named __proto__ is data, not a prototype.
  const dict = unpickle(pickle(0x7d, "__proto__", 0x4b, 7, 0x73, 0x2e)) as Map<unknown, unknown>;
  assertEquals(dict.get("__proto__"), 7);
});
