/** Text as /bin/sh reads it: a command's words, an environment's values. */

/** `text` as one word of /bin/sh: in single quotes, each quote within as '\''. */
export function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * A job id as the last word of a command line: after `--` when it starts
 * with `-`, which the parser would otherwise read as an option.
 */
export function idWord(id: string): string {
  return id.startsWith("-") ? `-- ${id}` : id;
}

/** `text` as one word of /bin/sh, quoted only where it needs to be. */
export function shellWord(text: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(text) ? text : shellQuote(text);
}
