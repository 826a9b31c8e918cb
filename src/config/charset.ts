/** The one character set jobsmanager's MySQL connections may use (config.ts and database.ts ask). */

/**
 * What is wrong with `charset` as the MySQL connection's character set;
 * null for utf8mb4 or one of its collations. Another one changed text
 * without a word: latin1 stored 'echo héllo 😀 ✓' as 'echo héllo =\0 \x13',
 * utf8 (utf8mb3) stored '?' for each character beyond it.
 */
export function charsetProblem(charset: string): string | null {
  return /^utf8mb4(_\w+)?$/i.test(charset.trim())
    ? null
    : "is not utf8mb4, which jobsmanager's tables use: characters beyond it (😀 in utf8, é in latin1) would be stored changed or cut, in jobs, their output and log lines";
}
