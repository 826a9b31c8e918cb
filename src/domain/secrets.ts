/**
 * The one rule of every place that masks secrets: run output, the CLI's
 * lines, the API's answers, notification logs, notes.
 */

/**
 * The shortest secret masked. A shorter one (a password `job`, a job's
 * `DEBUG=1`) is found inside ordinary words and numbers: masking it would
 * mangle every output and, by where the `***` fall, tell the secret.
 * `serve` warns of a service secret this short.
 */
export const MIN_MASKED_LENGTH = 8;

/** Whether `redactSecrets` masks `secret`. */
export function masked(secret: string): boolean {
  return secret.length >= MIN_MASKED_LENGTH;
}

/**
 * What replaces every one of `secrets` at least MIN_MASKED_LENGTH long
 * with `***`: the one rule of every place that masks secrets (run output,
 * the CLI's lines, the API's answers, notification logs). The longest
 * first, so one that holds another is masked whole. Made once for many
 * texts (an API answer's thousands of strings).
 */
export function redactor(secrets: Iterable<string>): (text: string) => string {
  const longest = [...new Set(secrets)].filter(masked).sort((a, b) => b.length - a.length);
  if (longest.length === 0) return (text) => text;
  return (text) => {
    let out = text;
    for (const secret of longest) if (out.includes(secret)) out = out.replaceAll(secret, "***");
    return out;
  };
}

/** `text` as `redactor(secrets)` shows it. */
export function redactSecrets(text: string, secrets: Iterable<string>): string {
  return redactor(secrets)(text);
}
