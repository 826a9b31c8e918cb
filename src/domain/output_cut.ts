/**
 * The line that says where a run's output was cut, and what goes with it
 * when secrets are masked. A secret the cut split in two cannot be found
 * whole on either side; masking what looks like its start (or end) would
 * tell, by where `***` fell, a secret's first and last characters to
 * anyone who controls an output's length. So when secrets are masked the
 * same number of bytes goes at either side of every cut, whatever the
 * output holds: one fewer than the longest secret's, which no part of a
 * secret split there outlasts.
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * The line between the head and the tail of a cut output; `why`, when
 * what cut it was not the output cap (the recorder, for the database).
 */
export function cutLine(cut: number, total: number, why = ""): string {
  // On one line, or the line would not be known again (trimmedAroundCuts).
  const said = why === "" ? "" : `: ${why.replaceAll(/[\r\n]+/g, " ")}`;
  return `\n[… jobsmanager cut ${cut} bytes of ${total}${said} …]\n`;
}

const CUT_LINE = /\n\[… jobsmanager cut (\d+) bytes of (\d+)(?:: ([^\n]*?))? …\]\n/g;
const CUT_LINE_START = "[… jobsmanager cut ";

/** A continuation byte of UTF-8: not where a character starts. */
function inside(bytes: Uint8Array, i: number): boolean {
  return i > 0 && i < bytes.length && (bytes[i] & 0xc0) === 0x80;
}

/** Whether `needle` is in `bytes` at `at`. */
function at(bytes: Uint8Array, needle: Uint8Array, at: number): boolean {
  if (at < 0 || at + needle.length > bytes.length) return false;
  for (let i = 0; i < needle.length; i++) if (bytes[at + i] !== needle[i]) return false;
  return true;
}

/** Where a whole one of `needles` that `bytes` holds across `edge` starts and ends, or null. */
function across(
  bytes: Uint8Array,
  needles: readonly Uint8Array[],
  edge: number,
): [number, number] | null {
  for (const needle of needles) {
    for (let start = Math.max(0, edge - needle.length + 1); start < edge; start++) {
      if (at(bytes, needle, start)) return [start, start + needle.length];
    }
  }
  return null;
}

/**
 * How much of a cut output's `head` and `tail` to keep when `secrets` (at
 * least 8 characters each, as masked) are masked: all but the last bytes
 * of the head and the first of the tail, one fewer than the longest
 * secret's, at a character's edge; less where a whole secret lay across
 * that edge, so that it goes whole (its `***` would have told as much).
 */
export function keptAroundCut(
  head: Uint8Array,
  tail: Uint8Array,
  secrets: readonly string[],
): { headEnd: number; tailStart: number } {
  if (secrets.length === 0) return { headEnd: head.length, tailStart: 0 };
  const needles = secrets.map((secret) => encoder.encode(secret));
  const drop = Math.max(...needles.map((needle) => needle.length)) - 1;
  let headEnd = Math.max(0, head.length - drop);
  while (inside(head, headEnd)) headEnd--;
  for (let found = across(head, needles, headEnd); found !== null;) {
    headEnd = found[0];
    found = across(head, needles, headEnd);
  }
  let tailStart = Math.min(tail.length, drop);
  while (inside(tail, tailStart)) tailStart++;
  for (let found = across(tail, needles, tailStart); found !== null;) {
    tailStart = found[1];
    found = across(tail, needles, tailStart);
  }
  return { headEnd, tailStart };
}

/**
 * `text`, a run's output as stored, with what `keptAroundCut` drops gone
 * at either side of each cut line, and the line's count saying so: for
 * what was stored before `secrets` were masked (a job's env, masked for a
 * read token when it is read). A stored `\xNN` counts as its 4 bytes.
 * Null when the text holds the start of a cut line more than once: the
 * job printed one itself, and which is the cut cannot be told (trimmed
 * around its own, the real cut would keep a split secret's part).
 */
export function trimmedAroundCuts(text: string, secrets: readonly string[]): string | null {
  if (secrets.length === 0) return text;
  if (text.split(CUT_LINE_START).length > 2) return null;
  const lines = [...text.matchAll(CUT_LINE)];
  if (lines.length === 0) return text;
  // split() puts the line's three groups between the pieces.
  const pieces = text.split(CUT_LINE).filter((_, i) => i % 4 === 0).map((p) => encoder.encode(p));
  const cuts = lines.map((line) => Number(line[1]));
  for (let i = 0; i < lines.length; i++) {
    const { headEnd, tailStart } = keptAroundCut(pieces[i], pieces[i + 1], secrets);
    cuts[i] += pieces[i].length - headEnd + tailStart;
    pieces[i] = pieces[i].subarray(0, headEnd);
    pieces[i + 1] = pieces[i + 1].subarray(tailStart);
  }
  return pieces.map((piece, i) =>
    decoder.decode(piece) +
    (i < lines.length ? cutLine(cuts[i], Number(lines[i][2]), lines[i][3] ?? "") : "")
  ).join("");
}

/**
 * `text`, a run's output as stored, cut again to about its first and last
 * `keep / 2` bytes (the recorder's, for a database that is away or
 * refuses it whole), with the cut line the runner's cap writes: the only
 * one a read token's masks trim around (trimmedAroundCuts), so that what
 * of a job's env value this cut splits shows to none. A cut line the
 * text held goes with the middle (its count into the new one's), so that
 * one line still says where and how much. The text was masked of the
 * service's secrets already (capture.ts): no part of one is left to cut.
 * Unchanged where the cut would save no more than the line it adds.
 */
export function cutAgain(text: string, keep: number, why: string): string {
  const bytes = encoder.encode(text);
  const line = cutLine(bytes.length, bytes.length, why);
  if (bytes.length <= keep + encoder.encode(line).length) return text;
  let headEnd = keep / 2;
  while (inside(bytes, headEnd)) headEnd--;
  let tailStart = bytes.length - keep / 2;
  while (inside(bytes, tailStart)) tailStart++;
  let cut = tailStart - headEnd;
  let total = bytes.length;
  const earlier = text.split(CUT_LINE_START).length === 2 ? [...text.matchAll(CUT_LINE)] : [];
  if (earlier.length === 1) {
    const start = encoder.encode(text.slice(0, earlier[0].index)).length;
    const end = start + encoder.encode(earlier[0][0]).length;
    headEnd = Math.min(headEnd, start);
    tailStart = Math.max(tailStart, end);
    cut = tailStart - headEnd - (end - start) + Number(earlier[0][1]);
    total = Number(earlier[0][2]);
  }
  return decoder.decode(bytes.subarray(0, headEnd)) + cutLine(cut, total, why) +
    decoder.decode(bytes.subarray(tailStart));
}

/**
 * `text`, a run's note as stored, with the bytes before each `…` (where a
 * command line it names was shortened, or the note itself was cut) gone
 * as `keptAroundCut` drops them before a cut: one fewer than the longest
 * of `secrets`', more where a whole one lay across that edge (it goes
 * whole, or what was left of it would show unmasked): what the shortening
 * left of a secret it split shows no part of it. For what was stored
 * before `secrets` were masked (a job's env, masked for a read token when
 * it is read).
 */
export function trimmedBeforeShortenings(text: string, secrets: readonly string[]): string {
  if (secrets.length === 0) return text;
  const parts = text.split("…");
  const none = new Uint8Array();
  return parts.map((part, i) => {
    if (i === parts.length - 1) return part;
    const bytes = encoder.encode(part);
    return decoder.decode(bytes.subarray(0, keptAroundCut(bytes, none, secrets).headEnd));
  }).join("…");
}
