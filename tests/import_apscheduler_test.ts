/**
 * Decoding the original JobsManager's pickled job states without running
 * anything, and mapping them to jobs: every field of every seed job, the
 * quirks in the notes, and the blobs that must be refused.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { candidateFromRow, type ServiceDefaults } from "../src/app/import/apscheduler.ts";
import { unpickle } from "../src/app/import/pickle.ts";
import type { Candidate } from "../src/app/import/plan.ts";
import { SEED_IDS, seedBlob, seedJob, seedRows } from "./fixtures/seed.ts";

const HONG_KONG: ServiceDefaults = {
  zone: { name: "Asia/Hong_Kong", source: "configured" },
  coalesce: false,
};
const NOW = Date.UTC(2026, 0, 1);

function candidates(defaults = HONG_KONG): Map<string, Candidate> {
  return new Map(seedRows().map((row) => [row.id, candidateFromRow(row, defaults, NOW)]));
}

Deno.test("every seed job maps every field", () => {
  const found = candidates();
  assertEquals([...found.keys()].sort(), SEED_IDS.toSorted());
  for (const id of SEED_IDS) {
    assertEquals(found.get(id)!.problem, null, id);
    assertEquals(found.get(id)!.job, seedJob(id, NOW), id);
  }
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
  // A damaged name's bytes are escaped: nothing raw reaches the operator's terminal.
  const damaged = Uint8Array.from("\x80\x02cpo\x1b[2J\xfe\nsystem\n.", (c) => c.charCodeAt(0));
  assertMatch(refusal(damaged), /byte 2: names "po\\u001b\[2J\\ufffd\.system", which is not part/);
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

Deno.test("a ZoneInfo pickled by Python 3.9+ or by backports.zoneinfo (3.8 and older) is read", () => {
  for (const module of ["zoneinfo", "backports.zoneinfo"]) {
    const blob = pickle(
      "builtins",
      "getattr",
      0x93,
      module,
      "ZoneInfo",
      0x93,
      "_unpickle",
      0x86,
      0x52,
      "Europe/Berlin",
      0x4b,
      1,
      0x86,
      0x52,
      0x2e,
    );
    assertEquals(unpickle(blob), { kind: "zone", name: "Europe/Berlin" }, module);
  }
  // Protocol 2 names getattr __builtin__.getattr: `pickle.dumps(ZoneInfo("Europe/Berlin"), 2)`.
  const protocol2 = Uint8Array.from(
    "\x80\x02c__builtin__\ngetattr\nq\x00czoneinfo\nZoneInfo\nq\x01X\t\x00\x00\x00_unpickleq\x02\x86q\x03Rq\x04X\r\x00\x00\x00Europe/Berlinq\x05K\x01\x86q\x06Rq\x07.",
    (c) => c.charCodeAt(0),
  );
  assertEquals(unpickle(protocol2), { kind: "zone", name: "Europe/Berlin" });
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

Deno.test("a long integer decodes in time linear in its length, and a message gives its size, not its digits", () => {
  const long1 = (...bytes: number[]) => unpickle(pickle(0x8a, bytes.length, ...bytes, 0x2e));
  assertEquals(
    [long1(), long1(0xff), long1(0x00, 0x80), long1(0x34, 0x12)],
    [0, -1, -32768, 0x1234],
  );
  assertEquals(long1(1, 0, 0, 0, 0, 0, 0, 0, 0x80), -(1n << 71n) + 1n);
  assertEquals(long1(0, 0, 0, 0, 0, 0, 0, 0, 1), 1n << 64n);
  // A hostile state's version: 256 KiB of digits took about a minute, shifted in byte by byte.
  const size = 256 * 1024;
  const head = [0x80, 5, 0x7d, 0x8c, 7, ...new TextEncoder().encode("version"), 0x8b, 0, 0, 0, 0];
  const blob = new Uint8Array(head.length + size + 2);
  blob.set(head);
  new DataView(blob.buffer).setUint32(head.length - 4, size, true);
  blob.fill(0x11, head.length, head.length + size - 1);
  blob.set([0x01, 0x73, 0x2e], head.length + size - 1);
  const started = performance.now();
  const problem = refusal(blob);
  const elapsed = performance.now() - started;
  assertEquals(problem, `job_state version is an integer of ${size * 8 - 7} bits, not 1`);
  assert(elapsed < 10_000, `decoding ${size} bytes took ${Math.round(elapsed)} ms`);
});

Deno.test("a name longer than a description holds is cut, with a note, not the job refused", () => {
  // The tick job's name, a memo of its command, replaced by a name of 1204 characters.
  const name = `${"nightly report for every team ".repeat(40)}end😀`;
  assertEquals([...name].length, 1204);
  const text = String.fromCharCode(...seedBlob("tick"));
  const bytes = new TextEncoder().encode(name);
  const length = String.fromCharCode(...new Uint8Array(Uint32Array.of(bytes.length).buffer));
  const renamed = text.replace(
    /(kwargs\x94}\x94h')h./,
    `$1X${length}${String.fromCharCode(...bytes)}`,
  );
  assert(renamed !== text);
  const c = candidateFromRow(
    { id: "tick", next_run_time: 1, job_state: Uint8Array.from(renamed, (ch) => ch.charCodeAt(0)) },
    HONG_KONG,
    NOW,
  );
  assertEquals(c.problem, null);
  assertEquals(c.job!.description, `${[...name].slice(0, 999).join("")}…`);
  assert(
    c.notes.includes(
      "its name is 1204 characters long: the description keeps the first 999 and an ellipsis (1000 is the most a description holds)",
    ),
    c.notes.join("\n"),
  );
});

Deno.test("a fixed offset of minutes is refused with the zones that keep it all year", () => {
  // `datetime.timezone(timedelta(hours=5, minutes=30))` as Python 3 pickles it with protocol 2.
  const offset = Uint8Array.from(
    "\x80\x02cdatetime\ntimezone\nq\x00cdatetime\ntimedelta\nq\x01K\x00MXMK\x00\x87q\x02Rq\x03\x85q\x04Rq\x05.",
    (c) => c.charCodeAt(0),
  );
  assertEquals(unpickle(offset), { kind: "zone", name: "UTC+05:30" });
  // The tick job's zone, a ZoneInfo's key, made that offset.
  const text = String.fromCharCode(...seedBlob("tick"));
  const fixed = text.replace("\x8c\x0eAsia/Hong_Kong", "\x8c\x09UTC+05:30");
  assert(fixed !== text);
  const problem = refusal(Uint8Array.from(fixed, (c) => c.charCodeAt(0)));
  assertMatch(
    problem,
    /^its trigger's zone is the fixed offset UTC\+05:30 \(a datetime\.timezone\), and a job names an IANA zone, none of which is an offset of minutes; add it by hand with `jobsmanager job add` and --timezone a zone that keeps UTC\+05:30 all year: .*Asia\/(Kolkata|Calcutta)/,
  );
  // The list is ICU's on this machine (Asia/Calcutta or Asia/Kolkata), so it is pinned loosely.
  assert(!problem.includes("Europe/"), problem);
  const odd = text.replace("\x8c\x0eAsia/Hong_Kong", "\x8c\x09UTC-00:17");
  assertEquals(
    refusal(Uint8Array.from(odd, (c) => c.charCodeAt(0))),
    "its trigger's zone is the fixed offset UTC-00:17 (a datetime.timezone), and a job names an IANA zone, none of which is an offset of minutes; add it by hand with `jobsmanager job add` and --timezone the zone whose clock UTC-00:17 followed (mind its daylight saving time: the offset had none)",
  );
});

Deno.test("a timeout that is a number out of range says so, not that it is no number", () => {
  // The tick job's timeout, 60, made 10**20 (LONG1, as Python writes an int past 64 bits).
  const text = String.fromCharCode(...seedBlob("tick"));
  const huge = text.replace("tick\x94K<", "tick\x94\x8a\x09\x00\x00\x10\x63\x2d\x5e\xc7\x6b\x05");
  assert(huge !== text);
  assertEquals(
    refusal(Uint8Array.from(huge, (c) => c.charCodeAt(0))),
    "its timeout is 100000000000000000000, out of range: jobsmanager allows a whole number of seconds from 0 to 31536000",
  );
});
