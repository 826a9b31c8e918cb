/**
 * The cron field grammar shared by the two notations jobsmanager reads:
 * APScheduler's CronTrigger fields and POSIX crontab lines.
 *
 * An element of a field (`*`, `*\/n`, `a`, `a-b`, `a-b/n`, names) reads the
 * same in both; the notations differ in bounds, weekday numbering and extras,
 * which {@link SYNTAX} spells out per field and notation. Elements must match
 * whole: APScheduler matched only a prefix, so `mon-fri/2` silently meant
 * `mon-fri`; we reject such text.
 */

import { ValidationError } from "../errors.ts";

/** The six fields of a schedule, in APScheduler's order (a six-field crontab line's too). */
export const FIELD_NAMES = ["second", "minute", "hour", "day", "month", "day_of_week"] as const;
export type FieldName = typeof FIELD_NAMES[number];

/** The notations a field is read in: a job's own fields, or a crontab line (`--cron`). */
export type Notation = "apscheduler" | "crontab";

/** APScheduler's weekday names: index 0 is Monday. */
export const WEEKDAY_NAMES: readonly string[] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/** crontab's weekday names: index 0 is Sunday (and crontab's 7 is Sunday again). */
const CRONTAB_WEEKDAYS: readonly string[] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/** Month names: index 0 is January (month 1). */
export const MONTH_NAMES: readonly string[] = "jan feb mar apr may jun jul aug sep oct nov dec"
  .split(" ");

/** How one field reads: its bounds, its names, and how its errors are worded. */
export interface FieldSyntax {
  /** The field a ValidationError names, e.g. `minute` or `cron`. */
  field: string;
  /** What starts each message, e.g. `minute:` or `cron: minute`. */
  label: string;
  min: number;
  max: number;
  /** The allowed values as messages show them, e.g. `0-6, 0 = mon`. */
  bounds: string;
  /** Names in value order: `names[i]` stands for `min + i`. */
  names?: readonly string[];
  /** Whether `a/n` (a to the maximum, every n) is allowed: APScheduler has it, crontab not. */
  openStep: boolean;
  /**
   * Whether a range of names takes a step (`jan-mar/2`): cron reads one;
   * APScheduler 3 drops the step without a word, so its notation refuses it.
   */
  namedStep: boolean;
  /** The whole grammar, shown when an element does not parse. */
  grammar: string;
}

/** The values a field takes. */
interface Values {
  min: number;
  max: number;
  /** As range errors show them; `min-max` when not given. */
  bounds?: string;
  /** As the grammar line shows them; the bounds when not given. */
  values?: string;
  /** Names in value order: `names[i]` stands for `min + i`. */
  names?: readonly string[];
}

/** A field as APScheduler reads it, and where crontab reads it differently. */
interface FieldRow extends Values {
  /** Forms APScheduler adds to this field's grammar; crontab has none of them. */
  apschedulerForms?: string;
  /** crontab's name for the field in messages, when not the APScheduler name. */
  crontabName?: string;
  /** crontab's values, when not APScheduler's. */
  crontabValues?: Values;
}

/** One row per field: the single source of both notations' {@link SYNTAX}. */
const FIELDS: Record<FieldName, FieldRow> = {
  second: { min: 0, max: 59 },
  minute: { min: 0, max: 59 },
  hour: { min: 0, max: 23 },
  day: {
    min: 1,
    max: 31,
    apschedulerForms: ", last, or 1st-5th/last + weekday name (e.g. 2nd fri)",
    crontabName: "day-of-month",
  },
  month: { min: 1, max: 12, values: "1-12 or jan-dec", names: MONTH_NAMES },
  day_of_week: {
    min: 0,
    max: 6,
    bounds: "0-6, 0 = mon",
    values: "0-6 (0 = mon) or mon-sun",
    names: WEEKDAY_NAMES,
    crontabName: "day-of-week",
    crontabValues: {
      min: 0,
      max: 7,
      bounds: "0-7, 0 and 7 = sun",
      values: "0-7 (0 and 7 = sun) or sun-sat",
      names: CRONTAB_WEEKDAYS,
    },
  },
};

/**
 * How `field` reads in `notation`. A crontab error names the field `cron`,
 * the flag the line came from; crontab has no `a/n` (a to the maximum).
 */
function fieldSyntax(field: FieldName, notation: Notation): FieldSyntax {
  const row = FIELDS[field];
  const crontab = notation === "crontab";
  const { min, max, bounds = `${min}-${max}`, values = bounds, names } = crontab
    ? row.crontabValues ?? row
    : row;
  const openStep = !crontab;
  const forms = `*, */N, A, A-B, A-B/N${openStep ? ", A/N" : ""}`;
  const extra = crontab ? "" : row.apschedulerForms ?? "";
  return {
    field: crontab ? "cron" : field,
    label: crontab ? `cron: ${row.crontabName ?? field}` : `${field}:`,
    min,
    max,
    bounds,
    names,
    openStep,
    namedStep: crontab,
    grammar: `${forms} with ${values}${extra}, comma-separated`,
  };
}

function syntaxes(notation: Notation): Record<FieldName, FieldSyntax> {
  return Object.fromEntries(
    FIELD_NAMES.map((field) => [field, fieldSyntax(field, notation)]),
  ) as Record<FieldName, FieldSyntax>;
}

/** How each field reads in each notation. */
export const SYNTAX: Readonly<Record<Notation, Readonly<Record<FieldName, FieldSyntax>>>> = {
  apscheduler: syntaxes("apscheduler"),
  crontab: syntaxes("crontab"),
};

/** One parsed element: the values `first` to `last`, every `step`. */
export interface Term {
  first: number;
  last: number;
  /** Undefined when no step was written, which is not the same as `/1` for the range checks. */
  step?: number;
  /** Written as `*` or `*\/n`. */
  star: boolean;
}

const STAR = /^\*(?:\/(\d+))?$/;
const NUMBERS = /^(\d+)(?:-(\d+))?(?:\/(\d+))?$/;
const NAMES = /^([a-z]+)(?:-([a-z]+)(?:\/(\d+))?)?$/i;

/** A one-line ValidationError in the field's own wording. */
function fieldError(syntax: FieldSyntax, message: string): ValidationError {
  return new ValidationError(syntax.field, `${syntax.label} ${message}`);
}

/** Split a comma-separated list; spaces around commas are allowed, empty elements are not. */
export function splitList(value: string, syntax: FieldSyntax): string[] {
  const elements = value.trim().split(/\s*,\s*/);
  if (elements.length > 1 && elements.includes("")) {
    throw fieldError(syntax, `'${value.trim()}' has an empty element in its list`);
  }
  return elements;
}

/** Parse one element with APScheduler's range rules (see RangeExpression.validate_range). */
export function parseTerm(element: string, syntax: FieldSyntax): Term {
  const star = STAR.exec(element);
  if (star) {
    return checked(
      { first: syntax.min, last: syntax.max, step: intOrUndefined(star[1]), star: true },
      element,
      syntax,
    );
  }
  const numbers = NUMBERS.exec(element);
  if (numbers && (numbers[2] !== undefined || numbers[3] === undefined || syntax.openStep)) {
    const first = Number(numbers[1]);
    const step = intOrUndefined(numbers[3]);
    const last = numbers[2] !== undefined
      ? Number(numbers[2])
      : step !== undefined
      ? syntax.max
      : first;
    return checked({ first, last, step, star: false }, element, syntax);
  }
  const names = NAMES.exec(element);
  if (names && syntax.names && (names[3] === undefined || syntax.namedStep)) {
    const first = syntax.names.indexOf(names[1].toLowerCase());
    const last = names[2] === undefined ? first : syntax.names.indexOf(names[2].toLowerCase());
    const step = intOrUndefined(names[3]);
    if (first >= 0 && last >= 0) {
      return checked(
        { first: syntax.min + first, last: syntax.min + last, step, star: false },
        element,
        syntax,
      );
    }
  }
  throw fieldError(syntax, `'${element}' is not valid (allowed: ${syntax.grammar})`);
}

function intOrUndefined(digits: string | undefined): number | undefined {
  return digits === undefined ? undefined : Number(digits);
}

function checked(term: Term, element: string, syntax: FieldSyntax): Term {
  const { first, last, step } = term;
  if (step === 0) throw fieldError(syntax, `step 0 in '${element}' must be at least 1`);
  if (first < syntax.min || first > syntax.max || last > syntax.max) {
    throw fieldError(syntax, `'${element}' is out of range (allowed ${syntax.bounds})`);
  }
  if (first > last) {
    throw fieldError(syntax, `range '${element}' goes backwards (first must not be after last)`);
  }
  if (step !== undefined && step > last - first) {
    const range = term.star
      ? `the field's range (${first}-${last})`
      : `its range (${first}-${last})`;
    throw fieldError(syntax, `step ${step} in '${element}' is larger than ${range}`);
  }
  return term;
}

/** Every value a term stands for, in ascending order. */
export function termValues(term: Term): number[] {
  const values: number[] = [];
  for (let value = term.first; value <= term.last; value += term.step ?? 1) values.push(value);
  return values;
}

/** Distinct values as a list of runs, each value written by `spell`: 0,1,2,5 → `0-2,5`. */
export function runList(values: Iterable<number>, spell: (value: number) => string): string {
  const runs: [number, number][] = [];
  for (const value of [...values].sort((a, b) => a - b)) {
    const run = runs.at(-1);
    if (run && value === run[1] + 1) run[1] = value;
    else runs.push([value, value]);
  }
  return runs.map(([a, b]) => a === b ? spell(a) : `${spell(a)}-${spell(b)}`).join(",");
}
