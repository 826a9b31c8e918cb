/**
 * Where a store points: a SQLite file or a MySQL server (resolved from the
 * settings by `config/database.ts`). `describeTarget` is the one way to
 * print a target, and it never shows the password.
 */

export interface SqliteTarget {
  kind: "sqlite";
  path: string;
}

export interface MysqlTarget {
  kind: "mysql";
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  charset: string;
  poolSize: number;
  connectTimeoutMs: number;
}

export type DatabaseTarget = SqliteTarget | MysqlTarget;

/** Replace the password in a URL-shaped string with `***`. */
export function redactUrl(url: string): string {
  // Up to the last "@": an unencoded password may hold "/" or "@".
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/]*:).*@/i, "$1***@");
}

/** A target as people see it: `mysql://root:***@127.0.0.1:3306/test`, `sqlite:jobs.db`. */
export function describeTarget(target: DatabaseTarget): string {
  if (target.kind === "sqlite") return `sqlite:${target.path}`;
  const auth = target.password === "" ? target.user : `${target.user}:***`;
  return `mysql://${auth}@${target.host}:${target.port}/${target.database}`;
}

/**
 * Strings that must never be printed: the configured password, if any, as
 * it is and %-encoded as it appears in a URL.
 */
export function secretsOf(target: DatabaseTarget): string[] {
  if (target.kind !== "mysql" || target.password === "") return [];
  return [...new Set([target.password, encodeURIComponent(target.password)])];
}

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
