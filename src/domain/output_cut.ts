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

/** The line between the head and the tail of a cut output. */
export function cutLine(cut: number, total: number): string {
  return `\n[… jobsmanager cut ${cut} bytes of ${total} …]\n`;
}

const CUT_LINE = /\n\[… jobsmanager cut (\d+) bytes of (\d+) …\]\n/g;
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
  const pieces = text.split(CUT_LINE).filter((_, i) => i % 3 === 0).map((p) => encoder.encode(p));
  const cuts = lines.map((line) => Number(line[1]));
  for (let i = 0; i < lines.length; i++) {
    const { headEnd, tailStart } = keptAroundCut(pieces[i], pieces[i + 1], secrets);
    cuts[i] += pieces[i].length - headEnd + tailStart;
    pieces[i] = pieces[i].subarray(0, headEnd);
    pieces[i + 1] = pieces[i + 1].subarray(tailStart);
  }
  return pieces.map((piece, i) =>
    decoder.decode(piece) + (i < lines.length ? cutLine(cuts[i], Number(lines[i][2])) : "")
  ).join("");
}

/**
 * `text`, a run's note as stored, with the characters before each `…`
 * (where a command line it names was shortened) gone, one fewer than the
 * longest of `secrets`: what the shortening left of a secret it split
 * shows no part of it. For what was stored before `secrets` were masked
 * (a job's env, masked for a read token when it is read).
 */
export function trimmedBeforeShortenings(text: string, secrets: readonly string[]): string {
  if (secrets.length === 0) return text;
  const drop = Math.max(...secrets.map((secret) => secret.length)) - 1;
  const parts = text.split("…");
  return parts.map((part, i) =>
    i === parts.length - 1 ? part : part.slice(0, Math.max(0, part.length - drop))
  ).join("…");
}
