/**
 * Bounded whole numbers: the one rule behind job fields (`--timeout`, a
 * `max_instances` column), config keys (`db.port`) and CLI counts
 * (`--limit`), so `5`, `"5"` and `" 5 "` mean the same wherever they are given.
 */

/** `value` (a number, or digits with blanks around) as a whole number from `min` to `max`; else null. */
export function wholeNumber(value: unknown, min: number, max: number): number | null {
  const n = typeof value === "string" && /^\s*\d+\s*$/.test(value) ? Number(value) : value;
  return typeof n === "number" && Number.isInteger(n) && n >= min && n <= max ? n : null;
}

/** How the rule reads in a message: `a whole number from 1 to 1000`. */
export function wholeNumberRule(min: number, max: number): string {
  return `a whole number from ${min} to ${max}`;
}
