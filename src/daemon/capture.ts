/**
 * Keeps the head and the tail of a stream within a fixed number of bytes,
 * and counts what it cut, so a job printing gigabytes costs the service
 * `cap` bytes of memory, not gigabytes (a ring buffer, like dkron's).
 * The text it gives keeps every byte it kept: what is not UTF-8, and NUL
 * (at which SQLite would cut the text), is written `\xNN`; as that text
 * takes up to five times the bytes, head and tail are cut further to stay
 * within `cap` bytes written, and the count of what was cut says so.
 * Written means as a statement carries it: MySQL's client (mysql2's
 * query) escapes `\`, quotes, newline, tab, CR, backspace and ^Z with a
 * backslash, so each counts 2, and `\xNN` 5. Else output of backslashes
 * or empty lines doubled in the statement, and a run's two streams at the
 * largest output_cap overflowed MySQL's 16 MiB packet: the record was
 * refused.
 * Memory is taken as output comes, not up front: most runs print little
 * or nothing, and hundreds run at once.
 */
import { cutLine, keptAroundCut } from "../domain/output_cut.ts";
import { masked, redactSecrets } from "../domain/secrets.ts";

export class HeadTailCapture {
  private head: Uint8Array = EMPTY;
  private headLength = 0;
  private readonly headCap: number;
  /** Allocated once the head is full. */
  private tail: Uint8Array = EMPTY;
  /** Next write position in the tail ring. */
  private tailPos = 0;
  private tailFilled = 0;
  private total = 0;

  constructor(private readonly cap: number) {
    this.headCap = Math.floor(cap / 2);
  }

  /** Bytes seen in all. */
  get bytes(): number {
    return this.total;
  }

  push(chunk: Uint8Array): void {
    this.total += chunk.length;
    let data = chunk;
    if (this.headLength < this.headCap) {
      const take = Math.min(this.headCap - this.headLength, data.length);
      if (this.headLength + take > this.head.length) {
        // Grow by doubling: a few copies at most, never more than the head's share.
        const grown = new Uint8Array(
          Math.min(
            this.headCap,
            Math.max(MIN_BUFFER, this.headLength + take, 2 * this.head.length),
          ),
        );
        grown.set(this.head.subarray(0, this.headLength));
        this.head = grown;
      }
      this.head.set(data.subarray(0, take), this.headLength);
      this.headLength += take;
      data = data.subarray(take);
    }
    if (data.length === 0 || this.cap === this.headCap) return;
    if (this.tail.length === 0) this.tail = new Uint8Array(this.cap - this.headCap);
    if (data.length >= this.tail.length) {
      this.tail.set(data.subarray(data.length - this.tail.length));
      this.tailPos = 0;
      this.tailFilled = this.tail.length;
      return;
    }
    const first = Math.min(data.length, this.tail.length - this.tailPos);
    this.tail.set(data.subarray(0, first), this.tailPos);
    this.tail.set(data.subarray(first), 0);
    this.tailPos = (this.tailPos + data.length) % this.tail.length;
    this.tailFilled = Math.min(this.tail.length, this.tailFilled + data.length);
  }

  /**
   * The kept text, with each of `secrets` replaced by `***`; when bytes
   * were cut, a line in the middle says how many. A secret the cut split
   * is not shown in part: with secrets to mask, the bytes at either side
   * of the cut where a part could be go too (output_cut.ts).
   */
  text(secrets: readonly string[] = []): string {
    const tail = this.tailFilled < this.tail.length
      ? this.tail.subarray(0, this.tailFilled)
      : new Uint8Array([
        ...this.tail.subarray(this.tailPos),
        ...this.tail.subarray(0, this.tailPos),
      ]);
    const head = this.head.subarray(0, this.headLength);
    if (this.total === head.length + tail.length) {
      // Nothing was dropped: one text, cut (if it must be) at its characters'
      // edges, so a character the head and the tail share is not split.
      const whole = new Uint8Array(head.length + tail.length);
      whole.set(head);
      whole.set(tail, head.length);
      if (fittingPrefix(whole, this.cap) === whole.length) {
        return redactSecrets(decodeEscaped(whole), secrets);
      }
      const headEnd = fittingPrefix(whole, this.headCap);
      const tailStart = Math.max(headEnd, fittingSuffix(whole, this.cap - this.headCap));
      return this.joined(whole.subarray(0, headEnd), whole.subarray(tailStart), secrets);
    }
    // Bytes were dropped between. A character they cut goes with them: its
    // bytes left in a full head (or tail) would take 4 each, more than the room.
    const headEnd = fittingPrefix(head, this.headCap);
    const tailStart = fittingSuffix(tail, this.cap - this.headCap);
    return this.joined(head.subarray(0, headEnd), tail.subarray(tailStart), secrets);
  }

  /**
   * `head` and `tail` as text, with a line between saying how many bytes
   * were cut; less of them when secrets are masked (output_cut.ts).
   */
  private joined(head: Uint8Array, tail: Uint8Array, secrets: readonly string[]): string {
    if (this.total === head.length + tail.length) {
      return redactSecrets(decodeEscaped(head) + decodeEscaped(tail), secrets);
    }
    // Those masked whole only: a part of a short one would be found anywhere.
    const { headEnd, tailStart } = keptAroundCut(head, tail, secrets.filter(masked));
    const kept = head.subarray(0, headEnd);
    const rest = tail.subarray(tailStart);
    return redactSecrets(decodeEscaped(kept), secrets) +
      cutLine(this.total - kept.length - rest.length, this.total) +
      redactSecrets(decodeEscaped(rest), secrets);
  }
}

/**
 * A capture whose stream may begin with `mark` (run_as.ts inCwd: bytes its
 * command does not know): those bytes are not kept nor counted, and
 * `marked` says they came. Bytes that may still be the mark's are held
 * back until known not to be. `shown` is given the bytes kept, as they
 * are: a run's live output (`job run --here`), which shows no mark.
 */
export class MarkedCapture extends HeadTailCapture {
  private held = 0;
  private settled = false;
  /** The stream began with the mark. */
  marked = false;

  constructor(
    cap: number,
    private readonly mark: Uint8Array,
    private readonly shown?: (chunk: Uint8Array) => void,
  ) {
    super(cap);
  }

  override get bytes(): number {
    return super.bytes + (this.settled ? 0 : this.held);
  }

  override push(chunk: Uint8Array): void {
    if (this.settled) return this.keep(chunk);
    let n = 0;
    while (n < chunk.length && this.held + n < this.mark.length) {
      if (chunk[n] !== this.mark[this.held + n]) return this.unmarked(chunk);
      n++;
    }
    this.held += n;
    if (this.held < this.mark.length) return;
    this.settled = true;
    this.marked = true;
    if (n < chunk.length) this.keep(chunk.subarray(n));
  }

  override text(secrets: readonly string[] = []): string {
    // A stream that ended within what may have been the mark: it was output.
    if (!this.settled) this.unmarked(EMPTY);
    return super.text(secrets);
  }

  /** Not the mark: what was held back is output, then `chunk`. */
  private unmarked(chunk: Uint8Array): void {
    this.settled = true;
    if (this.held > 0) this.keep(this.mark.subarray(0, this.held));
    if (chunk.length > 0) this.keep(chunk);
  }

  private keep(chunk: Uint8Array): void {
    super.push(chunk);
    this.shown?.(chunk);
  }
}

const EMPTY = new Uint8Array(0);
/** The head's first allocation. */
const MIN_BUFFER = 256;

const strict = new TextDecoder("utf-8", { fatal: true });

/** Bytes a statement's text escapes with a backslash (mysql2's, as sqlstring's): \b \t \n \r ^Z " ' \\. */
const ESCAPED = new Uint8Array(256);
for (const b of [0x08, 0x09, 0x0a, 0x0d, 0x1a, 0x22, 0x27, 0x5c]) ESCAPED[b] = 1;

/** Bytes of `bytes` a statement's text escapes. */
function escapes(bytes: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < bytes.length; i++) n += ESCAPED[bytes[i]];
  return n;
}

/**
 * The units of `bytes` (a valid character, or any other byte and NUL), as
 * [raw bytes, bytes once written]: a character as itself (two when a
 * statement escapes it), the others as the five of `\xNN` escaped.
 */
function units(bytes: Uint8Array): [raw: number, written: number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < bytes.length;) {
    const length = bytes[i] === 0 ? 0 : sequenceLength(bytes, i);
    out.push(length === 0 ? [1, 5] : [length, length + (length === 1 ? ESCAPED[bytes[i]] : 0)]);
    i += length === 0 ? 1 : length;
  }
  return out;
}

/** Text that is written byte for byte: valid UTF-8 without NUL (what jobs print, nearly always). */
function plain(bytes: Uint8Array): boolean {
  if (bytes.includes(0)) return false;
  try {
    strict.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** The end of the longest prefix of `bytes`, at a unit's edge, written in at most `budget` bytes. */
function fittingPrefix(bytes: Uint8Array, budget: number): number {
  if (bytes.length <= budget && bytes.length + escapes(bytes) <= budget && plain(bytes)) {
    return bytes.length;
  }
  let end = 0;
  for (const [raw, written] of units(bytes)) {
    if ((budget -= written) < 0) break;
    end += raw;
  }
  return end;
}

/** The start of the longest suffix of `bytes`, at a unit's edge, written in at most `budget` bytes. */
function fittingSuffix(bytes: Uint8Array, budget: number): number {
  if (bytes.length <= budget && bytes.length + escapes(bytes) <= budget && plain(bytes)) return 0;
  const all = units(bytes);
  let start = bytes.length;
  for (let i = all.length - 1; i >= 0; i--) {
    if ((budget -= all[i][1]) < 0) break;
    start -= all[i][0];
  }
  return start;
}

/** `bytes` as text, with NUL and every byte that is not part of valid UTF-8 as `\xNN`. */
export function decodeEscaped(bytes: Uint8Array): string {
  let out = "";
  let from = 0;
  for (let i = 0; i < bytes.length;) {
    const length = bytes[i] === 0 ? 0 : sequenceLength(bytes, i);
    if (length > 0) {
      i += length;
      continue;
    }
    out += strict.decode(bytes.subarray(from, i)) + `\\x${bytes[i].toString(16).padStart(2, "0")}`;
    from = ++i;
  }
  return out + strict.decode(bytes.subarray(from));
}

/** The length of the valid UTF-8 sequence at `i` (RFC 3629: no overlongs, no surrogates), or 0. */
function sequenceLength(bytes: Uint8Array, i: number): number {
  const b = bytes[i];
  if (b < 0x80) return 1;
  const [length, low, high] = b >= 0xc2 && b <= 0xdf
    ? [2, 0x80, 0xbf]
    : b === 0xe0
    ? [3, 0xa0, 0xbf]
    : b === 0xed
    ? [3, 0x80, 0x9f]
    : b >= 0xe1 && b <= 0xef
    ? [3, 0x80, 0xbf]
    : b === 0xf0
    ? [4, 0x90, 0xbf]
    : b >= 0xf1 && b <= 0xf3
    ? [4, 0x80, 0xbf]
    : b === 0xf4
    ? [4, 0x80, 0x8f]
    : [0, 0, 0];
  if (length === 0 || i + length > bytes.length) return 0;
  if (bytes[i + 1] < low || bytes[i + 1] > high) return 0;
  for (let k = 2; k < length; k++) if ((bytes[i + k] & 0xc0) !== 0x80) return 0;
  return length;
}
