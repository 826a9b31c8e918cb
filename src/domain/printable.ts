/**
 * Text anyone may have written (a command, a description, a job's output)
 * as it is safe to show: the CLI prints it so, and the dashboard's script
 * carries the same rule (CONTROL's source) to draw it so.
 */

/**
 * Control characters but newline and tab (C0, DEL, C1) and the
 * bidirectional marks and overrides: what lets text from the database or a
 * job move the cursor, recolour, retitle or rewrite a terminal, or reverse
 * the rest of a line on a page.
 */
// deno-lint-ignore no-control-regex
export const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
const CONTROLS = new RegExp(CONTROL.source, "g");

/** Each control character as `\xNN` (`\u{NNNN}` beyond U+00FF), never raw. */
export function printable(text: string): string {
  // Most text holds none: testing first makes no new string.
  if (!CONTROL.test(text)) return text;
  return text.replace(CONTROLS, (c) => {
    const code = c.charCodeAt(0);
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u{${code.toString(16)}}`;
  });
}

/**
 * `printable` for text that must stay on its one line (a log message, a
 * run's note): newline too, as `\n` (a carriage return is `\x0d` already), so a
 * job's output (a hook's stderr in a log message) cannot print a line that
 * reads as one of the service's own.
 */
export function printableLine(text: string): string {
  const safe = printable(text);
  return safe.includes("\n") ? safe.replaceAll("\n", "\\n") : safe;
}

/** A value quoted in an error: its start, not a megabyte of it. */
export function shortened(text: string): string {
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}
