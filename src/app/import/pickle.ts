/**
 * A pickle reader that builds plain data and never runs anything: the
 * `job_state` blobs of the original JobsManager's APScheduler 3 table.
 *
 * Python's unpickler imports any module a blob names and calls any function
 * it names, so an untrusted blob is a program. This reader knows only the
 * data opcodes of protocols 2-5 and the few classes and functions an
 * APScheduler 3 job state holds (its CronTrigger, fields and expressions,
 * zoneinfo / pytz / datetime values, the logger the original passed); each
 * of those becomes a tagged plain object. Any other opcode or name is
 * refused before it could mean anything. (The npm `pickleparser` was
 * considered: it makes objects of unknown classes by default and calls what
 * REDUCE names, so safety would rest on our resolver and its internals.)
 */

/** What a blob decodes to. Python tuples and lists are both arrays (tuples frozen). */
export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | readonly PyValue[]
  | PyDict
  | PyObject
  | PyGlobal
  | PyZone
  | PyDateTime
  | PyTimedelta
  | PyLogger;

export type PyDict = Map<PyValue, PyValue>;

/** An instance of an allowed class, with the state BUILD gave it. */
export interface PyObject {
  kind: "object";
  /** `module.QualName`, e.g. `apscheduler.triggers.cron.CronTrigger`. */
  class: string;
  state: PyDict;
}

/** A class or function reference, before it is instantiated or called. */
export interface PyGlobal {
  kind: "global";
  name: string;
}

/** A time zone: an IANA name, or `UTC+05:45` for a fixed offset that has none. */
export interface PyZone {
  kind: "zone";
  name: string;
}

/** A `datetime.datetime`: its wall-clock fields and its zone, if any. */
export interface PyDateTime {
  kind: "datetime";
  /** `YYYY-MM-DDTHH:MM:SS.ffffff`, wall-clock time in `zone`. */
  local: string;
  zone: string | null;
}

export interface PyTimedelta {
  kind: "timedelta";
  seconds: number;
}

/** `logging.getLogger(name)`: the original passed its logger as the first argument. */
export interface PyLogger {
  kind: "logger";
  name: string;
}

/** The blob cannot be read, or names something this reader refuses. */
export class PickleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PickleError";
  }
}

/** Classes an APScheduler 3 job state instantiates (NEWOBJ, then BUILD with their state). */
const CLASSES = new Set([
  "apscheduler.triggers.cron.CronTrigger",
  "apscheduler.triggers.interval.IntervalTrigger",
  "apscheduler.triggers.date.DateTrigger",
  ...["BaseField", "WeekField", "DayOfMonthField", "DayOfWeekField", "MonthField"].map((c) =>
    `apscheduler.triggers.cron.fields.${c}`
  ),
  ...[
    "AllExpression",
    "RangeExpression",
    "MonthRangeExpression",
    "WeekdayRangeExpression",
    "WeekdayPositionExpression",
    "LastDayOfMonthExpression",
  ].map((c) => `apscheduler.triggers.cron.expressions.${c}`),
]);

/**
 * The ZoneInfo classes whose `_unpickle`, the one attribute fetched with
 * `getattr`, is how a ZoneInfo pickles: Python 3.9+'s, and the backport's
 * (Python 3.8 and older with tzlocal 4).
 */
const ZONEINFO_CLASSES = ["zoneinfo.ZoneInfo", "backports.zoneinfo.ZoneInfo"];
const ZONEINFO_UNPICKLE = ZONEINFO_CLASSES.map((c) => `${c}._unpickle`);

/** Functions a job state calls (REDUCE), each replaced by a pure function on data. */
const FUNCTIONS: Record<string, (args: readonly PyValue[]) => PyValue> = {
  "builtins.getattr": ([owner, attribute]) => {
    const name = isKind(owner, "global") ? `${owner.name}.${attribute}` : null;
    if (name !== null && ZONEINFO_UNPICKLE.includes(name)) return { kind: "global", name };
    throw new PickleError(
      `refuses getattr(${describe(owner)}, ${JSON.stringify(attribute)}): only ${
        ZONEINFO_UNPICKLE.join(" and ")
      } are read`,
    );
  },
  ...Object.fromEntries(
    ZONEINFO_UNPICKLE.map((name) => [name, ([key]: readonly PyValue[]) => zone(key)]),
  ),
  // APScheduler 3.9 with tzlocal 4: a ZoneInfo wrapped for pytz's API.
  "pytz_deprecation_shim._impl.wrap_zone": ([wrapped]) =>
    isKind(wrapped, "zone") ? wrapped : zone(wrapped),
  // Older APScheduler: pytz zones pickle as pytz._p(name, …) and pytz.utc as pytz._UTC().
  "pytz._p": ([name]) => zone(name),
  "pytz._UTC": () => ({ kind: "zone", name: "UTC" }),
  "datetime.timezone": ([offset]) => fixedOffset(offset),
  "datetime.timedelta": ([days = 0, seconds = 0, micros = 0]) => ({
    kind: "timedelta",
    seconds: Number(days) * 86_400 + Number(seconds) + Number(micros) / 1e6,
  }),
  "datetime.datetime": ([bytes, tz = null]) => dateTime(bytes, tz),
  "logging.getLogger": ([name = "root"]) => ({ kind: "logger", name: String(name) }),
  // Protocol 2 has no bytes opcode: Python 3 writes bytes as _codecs.encode(text, "latin1").
  "_codecs.encode": ([text, encoding]) => {
    if (typeof text !== "string" || encoding !== "latin1") {
      throw new PickleError(`refuses _codecs.encode with ${describe(encoding)}: only latin1`);
    }
    return Uint8Array.from(text, (c) => c.charCodeAt(0));
  },
};

/** Names a blob may mention: the classes, the functions, and the ZoneInfos (for getattr). */
const NAMES = new Set([...CLASSES, ...Object.keys(FUNCTIONS), ...ZONEINFO_CLASSES]);

function isKind<K extends string>(value: PyValue, kind: K): value is Extract<PyValue, { kind: K }> {
  return typeof value === "object" && value !== null && "kind" in value && value.kind === kind;
}

function zone(name: PyValue): PyZone {
  if (typeof name !== "string") throw new PickleError(`a time zone named ${describe(name)}`);
  return { kind: "zone", name };
}

function fixedOffset(offset: PyValue): PyZone {
  if (!isKind(offset, "timedelta")) throw new PickleError("datetime.timezone without an offset");
  const minutes = Math.round(offset.seconds / 60);
  if (minutes === 0) return { kind: "zone", name: "UTC" };
  // Etc/GMT zones count the other way round: UTC+8 is Etc/GMT-8.
  if (minutes % 60 === 0) {
    return { kind: "zone", name: `Etc/GMT${minutes > 0 ? "-" : "+"}${Math.abs(minutes / 60)}` };
  }
  const hh = String(Math.floor(Math.abs(minutes) / 60)).padStart(2, "0");
  const mm = String(Math.abs(minutes) % 60).padStart(2, "0");
  return { kind: "zone", name: `UTC${minutes < 0 ? "-" : "+"}${hh}:${mm}` };
}

/** datetime's pickled state: 10 bytes (year high, low, month, day, h, m, s, 3 of µs). */
function dateTime(bytes: PyValue, tz: PyValue): PyDateTime {
  if (!(bytes instanceof Uint8Array) || bytes.length !== 10) {
    throw new PickleError("a datetime whose state is not its 10 bytes");
  }
  const two = (n: number) => String(n).padStart(2, "0");
  const year = String(bytes[0] * 256 + bytes[1]).padStart(4, "0");
  const micros = String((bytes[7] << 16) | (bytes[8] << 8) | bytes[9]).padStart(6, "0");
  // The high bit of the month byte is `fold`, which a wall-clock text does not need.
  const local = `${year}-${two(bytes[2] & 0x7f)}-${two(bytes[3])}T${two(bytes[4])}:${
    two(bytes[5])
  }:${two(bytes[6])}.${micros}`;
  return {
    kind: "datetime",
    local,
    zone: tz === null ? null : isKind(tz, "zone") ? tz.name : null,
  };
}

/** A short text for a value in messages. */
export function describe(value: PyValue | undefined): string {
  if (value === undefined) return "nothing";
  if (value === null) return "None";
  if (typeof value === "string") {
    return JSON.stringify(value.length > 40 ? value.slice(0, 40) + "…" : value);
  }
  if (typeof value === "bigint") return integer(value);
  if (typeof value !== "object") return String(value);
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  if (Array.isArray(value)) return `a sequence of ${value.length}`;
  if (value instanceof Map) return `a dict of ${value.size}`;
  if (isKind(value, "object")) return `a ${value.class}`;
  if (isKind(value, "global")) return value.name;
  return `a ${(value as { kind: string }).kind}`;
}

/** An integer as its digits, or its size where they would flood a message (a hostile blob's). */
function integer(value: bigint): string {
  const text = value.toString(16);
  const digits = text.replace("-", "");
  if (digits.length <= 32) return String(value);
  const bits = (digits.length - 1) * 4 + parseInt(digits[0], 16).toString(2).length;
  return `${value < 0n ? "a negative" : "an"} integer of ${bits} bits`;
}

/** Opcode names, for messages about the ones refused. */
const REFUSED: Record<number, string> = {
  0x69: "INST",
  0x6f: "OBJ",
  0x50: "PERSID",
  0x51: "BINPERSID",
  0x82: "EXT1",
  0x83: "EXT2",
  0x84: "EXT4",
  0x97: "NEXT_BUFFER",
  0x98: "READONLY_BUFFER",
  0x49: "INT (protocol 0)",
  0x4c: "LONG (protocol 0)",
  0x53: "STRING (protocol 0)",
  0x56: "UNICODE (protocol 0)",
  0x46: "FLOAT (protocol 0)",
  0x67: "GET (protocol 0)",
  0x70: "PUT (protocol 0)",
  0x54: "BINSTRING (Python 2)",
  0x55: "SHORT_BINSTRING (Python 2)",
  0x8f: "EMPTY_SET",
  0x90: "ADDITEMS",
  0x91: "FROZENSET",
};

/** Blobs larger than this are not job states (APScheduler's column is a 64 KiB BLOB). */
const MAX_BYTES = 1 << 20;

/** Decode one pickle. Throws PickleError saying where and why it stopped. */
export function unpickle(blob: Uint8Array): PyValue {
  if (blob.length > MAX_BYTES) {
    throw new PickleError(`is ${blob.length} bytes, more than a job state (${MAX_BYTES} at most)`);
  }
  return new Reader(blob).run();
}

const MARK: unique symbol = Symbol("mark");
type Slot = PyValue | typeof MARK;

class Reader {
  private pos = 0;
  private stack: Slot[] = [];
  private readonly memo = new Map<number, PyValue>();
  private readonly view: DataView;

  constructor(private readonly blob: Uint8Array) {
    this.view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  }

  private fail(at: number, message: string): never {
    throw new PickleError(`byte ${at}: ${message}`);
  }

  private take(n: number | bigint): number {
    const size = Number(n);
    if (this.pos + size > this.blob.length) {
      this.fail(
        this.pos,
        `truncated: needs ${size} more byte${
          size === 1 ? "" : "s"
        }, the blob ends at ${this.blob.length}`,
      );
    }
    const start = this.pos;
    this.pos += size;
    return start;
  }

  private u8(): number {
    return this.blob[this.take(1)];
  }

  private u32(): number {
    return this.view.getUint32(this.take(4), true);
  }

  private u64(): bigint {
    return this.view.getBigUint64(this.take(8), true);
  }

  private bytes(n: number | bigint): Uint8Array {
    const start = this.take(n);
    return this.blob.slice(start, this.pos);
  }

  private text(n: number | bigint): string {
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(this.bytes(n));
    } catch (error) {
      if (error instanceof PickleError) throw error;
      this.fail(this.pos, "a string that is not UTF-8");
    }
  }

  private line(): string {
    const end = this.blob.indexOf(0x0a, this.pos);
    if (end < 0) this.fail(this.pos, "truncated: a name without its line end");
    return new TextDecoder().decode(this.bytes(end - this.pos + 1)).slice(0, -1);
  }

  private pop(at: number): PyValue {
    const value = this.stack.pop();
    if (value === undefined || value === MARK) this.fail(at, "malformed: the stack is empty");
    return value;
  }

  private top(at: number): PyValue {
    const value = this.stack.at(-1);
    if (value === undefined || value === MARK) this.fail(at, "malformed: the stack is empty");
    return value;
  }

  /** The values pushed since the last MARK, removing them and the mark. */
  private popMark(at: number): PyValue[] {
    const mark = this.stack.lastIndexOf(MARK);
    if (mark < 0) this.fail(at, "malformed: no MARK to end at");
    const items = this.stack.splice(mark) as PyValue[];
    return items.slice(1);
  }

  private global(at: number, name: string): PyGlobal {
    if (!NAMES.has(name)) {
      this.fail(
        at,
        `names ${
          printable(name)
        }, which is not part of an APScheduler 3 job state; refused without running anything`,
      );
    }
    return { kind: "global", name };
  }

  private list(at: number, value: PyValue): PyValue[] {
    if (!Array.isArray(value) || Object.isFrozen(value)) {
      this.fail(at, `malformed: appending to ${describe(value)}, not a list`);
    }
    return value as PyValue[];
  }

  private dict(at: number, value: PyValue): PyDict {
    if (!(value instanceof Map)) this.fail(at, `malformed: setting an item of ${describe(value)}`);
    return value;
  }

  private setItems(at: number, dict: PyValue, items: PyValue[]): void {
    if (items.length % 2 !== 0) this.fail(at, "malformed: a key without a value");
    const target = this.dict(at, dict);
    for (let i = 0; i < items.length; i += 2) target.set(items[i], items[i + 1]);
  }

  private instance(at: number, cls: PyValue, args: PyValue): PyObject {
    if (!isKind(cls, "global") || !CLASSES.has(cls.name)) {
      this.fail(at, `refuses to instantiate ${describe(cls)}`);
    }
    if (!Array.isArray(args) || args.length > 0) {
      this.fail(at, `${cls.name} is built from arguments, which its job state never does`);
    }
    return { kind: "object", class: cls.name, state: new Map() };
  }

  private call(at: number, fn: PyValue, args: PyValue): PyValue {
    if (!isKind(fn, "global") || !Object.hasOwn(FUNCTIONS, fn.name)) {
      this.fail(at, `refuses to call ${describe(fn)}`);
    }
    if (!Array.isArray(args)) this.fail(at, `malformed: ${fn.name} called without a tuple`);
    try {
      return FUNCTIONS[fn.name](args as readonly PyValue[]);
    } catch (error) {
      if (error instanceof PickleError) this.fail(at, `${fn.name}: ${error.message}`);
      throw error;
    }
  }

  /** BUILD: the state of an object, a dict or (dict, slots dict). */
  private build(at: number, target: PyValue, state: PyValue): void {
    if (!isKind(target, "object")) this.fail(at, `refuses to set the state of ${describe(target)}`);
    const parts = Array.isArray(state) && state.length === 2 ? state : [state];
    for (const part of parts) {
      if (part === null) continue;
      for (const [key, value] of this.dict(at, part)) target.state.set(key, value);
    }
  }

  private push(value: PyValue): void {
    this.stack.push(value);
  }

  run(): PyValue {
    for (;;) {
      const at = this.pos;
      if (at >= this.blob.length) this.fail(at, "truncated: the blob ends before STOP");
      const op = this.u8();
      switch (op) {
        case 0x80: { // PROTO
          const version = this.u8();
          if (version < 2 || version > 5) {
            this.fail(at, `protocol ${version} (APScheduler 3 writes 2 to 5)`);
          }
          break;
        }
        case 0x95: // FRAME: only a hint for buffered readers
          this.u64();
          break;
        case 0x2e: // STOP
          return this.pop(at);
        case 0x28: // MARK
          this.stack.push(MARK);
          break;
        case 0x30: // POP
          this.stack.pop();
          break;
        case 0x31: // POP_MARK
          this.popMark(at);
          break;
        case 0x32: // DUP
          this.push(this.top(at));
          break;
        case 0x94: // MEMOIZE
          this.memo.set(this.memo.size, this.top(at));
          break;
        case 0x71: // BINPUT
          this.memo.set(this.u8(), this.top(at));
          break;
        case 0x72: // LONG_BINPUT
          this.memo.set(this.u32(), this.top(at));
          break;
        case 0x68: // BINGET
        case 0x6a: { // LONG_BINGET
          const index = op === 0x68 ? this.u8() : this.u32();
          if (!this.memo.has(index)) this.fail(at, `malformed: memo ${index} was never stored`);
          this.push(this.memo.get(index)!);
          break;
        }
        case 0x4e: // NONE
          this.push(null);
          break;
        case 0x88: // NEWTRUE
        case 0x89: // NEWFALSE
          this.push(op === 0x88);
          break;
        case 0x4a: // BININT
          this.push(this.view.getInt32(this.take(4), true));
          break;
        case 0x4b: // BININT1
          this.push(this.u8());
          break;
        case 0x4d: // BININT2
          this.push(this.view.getUint16(this.take(2), true));
          break;
        case 0x8a: // LONG1
        case 0x8b: // LONG4
          this.push(this.long(op === 0x8a ? this.u8() : this.u32()));
          break;
        case 0x47: // BINFLOAT
          this.push(this.view.getFloat64(this.take(8), false));
          break;
        case 0x8c: // SHORT_BINUNICODE
          this.push(this.text(this.u8()));
          break;
        case 0x58: // BINUNICODE
          this.push(this.text(this.u32()));
          break;
        case 0x8d: // BINUNICODE8
          this.push(this.text(this.u64()));
          break;
        case 0x43: // SHORT_BINBYTES
          this.push(this.bytes(this.u8()));
          break;
        case 0x42: // BINBYTES
          this.push(this.bytes(this.u32()));
          break;
        case 0x8e: // BINBYTES8
        case 0x96: // BYTEARRAY8
          this.push(this.bytes(this.u64()));
          break;
        case 0x7d: // EMPTY_DICT
          this.push(new Map());
          break;
        case 0x5d: // EMPTY_LIST
          this.push([]);
          break;
        case 0x29: // EMPTY_TUPLE
          this.push(Object.freeze([]));
          break;
        case 0x85: // TUPLE1
        case 0x86: // TUPLE2
        case 0x87: { // TUPLE3
          const items = [...Array(op - 0x84)].map(() => this.pop(at)).reverse();
          this.push(Object.freeze(items));
          break;
        }
        case 0x74: // TUPLE
          this.push(Object.freeze(this.popMark(at)));
          break;
        case 0x6c: // LIST
          this.push(this.popMark(at));
          break;
        case 0x64: { // DICT
          const dict: PyDict = new Map();
          this.setItems(at, dict, this.popMark(at));
          this.push(dict);
          break;
        }
        case 0x61: { // APPEND
          const value = this.pop(at);
          this.list(at, this.top(at)).push(value);
          break;
        }
        case 0x65: { // APPENDS
          const items = this.popMark(at);
          this.list(at, this.top(at)).push(...items);
          break;
        }
        case 0x73: { // SETITEM
          const value = this.pop(at);
          const key = this.pop(at);
          this.setItems(at, this.top(at), [key, value]);
          break;
        }
        case 0x75: { // SETITEMS
          const items = this.popMark(at);
          this.setItems(at, this.top(at), items);
          break;
        }
        case 0x63: { // GLOBAL
          // Protocol 2 names Python 3's builtins by their Python 2 module, as Python's reader maps back.
          const module = this.line().replace(/^__builtin__$/, "builtins");
          this.push(this.global(at, `${module}.${this.line()}`));
          break;
        }
        case 0x93: { // STACK_GLOBAL
          const name = this.pop(at);
          const module = this.pop(at);
          if (typeof module !== "string" || typeof name !== "string") {
            this.fail(at, "malformed: STACK_GLOBAL without a module and a name");
          }
          this.push(this.global(at, `${module}.${name}`));
          break;
        }
        case 0x81: { // NEWOBJ
          const args = this.pop(at);
          this.push(this.instance(at, this.pop(at), args));
          break;
        }
        case 0x92: { // NEWOBJ_EX
          const kwargs = this.pop(at);
          const args = this.pop(at);
          if (!(kwargs instanceof Map) || kwargs.size > 0) {
            this.fail(at, "refuses keyword arguments to a constructor");
          }
          this.push(this.instance(at, this.pop(at), args));
          break;
        }
        case 0x52: { // REDUCE
          const args = this.pop(at);
          this.push(this.call(at, this.pop(at), args));
          break;
        }
        case 0x62: { // BUILD
          const state = this.pop(at);
          this.build(at, this.top(at), state);
          break;
        }
        default:
          this.fail(
            at,
            `opcode 0x${op.toString(16).padStart(2, "0")}${
              REFUSED[op] ? ` (${REFUSED[op]})` : ""
            } is not one an APScheduler 3 job state uses; refused`,
          );
      }
    }
  }

  /** A little-endian two's-complement integer of `n` bytes. */
  private long(n: number): number | bigint {
    const bytes = this.bytes(n);
    if (n === 0) return 0;
    // Through one hex text: shifting in a byte at a time copies the number each time, quadratic
    // in its length (a hostile megabyte took a quarter of an hour).
    const hex = new Array<string>(n);
    for (let i = 0; i < n; i++) hex[n - 1 - i] = HEX[bytes[i]];
    let value = BigInt(`0x${hex.join("")}`);
    if (bytes[n - 1] & 0x80) value -= 1n << BigInt(8 * n);
    return Number.isSafeInteger(Number(value)) ? Number(value) : value;
  }
}

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

/** A name read from a damaged blob, its control and non-ASCII bytes escaped: nothing raw reaches a terminal. */
function printable(name: string): string {
  return /^[\x20-\x7e]*$/.test(name)
    ? name
    : JSON.stringify(name).replace(/[^\x20-\x7e]/g, (c) =>
      `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
