/** Text as /bin/sh reads it: a command's words, an environment's values. */

/** `text` as one word of /bin/sh: in single quotes, each quote within as '\''. */
export function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** `text` as one word of /bin/sh, quoted only where it needs to be. */
export function shellWord(text: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(text) ? text : shellQuote(text);
}
