/**
 * A job's fields as JSON-shaped data gives them (an API body, an entry of
 * a jobs file), read by one set of rules for both, into the `JobOptions`
 * the CLI's flags also become: text as strings, a schedule field or a
 * number also as a number, a number also as a digit string, a uid as a
 * number (`user: 33`, as a passwd line writes it), switches as true or
 * false, and null as the field's default: a new job's (`retries` 0,
 * `enabled` true), or the service's (`max_instances`, `timezone`). A change
 * (PATCH) given null sets the field back to it, as `""` does a flag.
 * Each door checks its own keys and `env`.
 */
import { ValidationError } from "../errors.ts";
import { FIELD_NAMES, type FieldName } from "../cron/grammar.ts";
import {
  AFTER_OUTCOMES,
  DEFAULT_RETRY_DELAY,
  DEFAULT_RETRY_MAX_DELAY,
  type JobOptions,
  validateId,
} from "../domain/job.ts";
import { HOOK_COMMANDS, HOOK_URLS } from "../domain/notify.ts";
import { shortened } from "../domain/printable.ts";

export const TEXT_FIELDS = [
  "command",
  "cron",
  "timezone",
  "cwd",
  "description",
  "user",
  "retry_on",
  ...HOOK_COMMANDS,
  ...HOOK_URLS,
] as const;
/** Each number field, and what null sets it to: "" is the default the domain gives it. */
const NUMBER_DEFAULTS = {
  timeout: "",
  max_instances: "",
  misfire_grace_time: "",
  retries: "0",
  retry_delay: String(DEFAULT_RETRY_DELAY),
  retry_max_delay: String(DEFAULT_RETRY_MAX_DELAY),
} as const;
export const NUMBER_FIELDS = Object.keys(NUMBER_DEFAULTS) as (keyof typeof NUMBER_DEFAULTS)[];
/** Each switch, and what null sets it to (coalesce's null is the service's). */
const SWITCH_DEFAULTS = { enabled: true, coalesce: null, retry_overlap: false } as const;
export const BOOLEAN_FIELDS = Object.keys(SWITCH_DEFAULTS) as (keyof typeof SWITCH_DEFAULTS)[];
/** The follow-up link, as jm_jobs holds it. */
export const AFTER_FIELDS = ["after_job", "after_outcome"] as const;
/** Text fields null sets back to the service's default; the others have none to go back to. */
const NULLABLE: readonly string[] = [
  "timezone",
  "cwd",
  "description",
  "user",
  ...HOOK_COMMANDS,
  ...HOOK_URLS,
];

/** The value is shown shortened: a 1 MB env sent wrong would come back whole in the answer. */
export function badValue(field: string, value: unknown, expected: string): ValidationError {
  return new ValidationError(
    field,
    `${field}: ${shortened(jsonHead(value, 100))} is not valid (expected ${expected})`,
  );
}

/**
 * The start of `value`'s JSON, at least `max` characters of it where it
 * has that many (more than `shortened` keeps): a value megabytes large or
 * deep is not written whole to show its start.
 */
function jsonHead(value: unknown, max: number): string {
  let out = "";
  const put = (text: string) => (out += text).length < max;
  const walk = (given: unknown): boolean => {
    // As JSON.stringify does: a date (YAML's 2020-01-01) is its ISO text.
    const v = typeof (given as { toJSON?: unknown })?.toJSON === "function"
      ? (given as { toJSON(key: string): unknown }).toJSON("")
      : given;
    if (Array.isArray(v)) {
      if (!put("[")) return false;
      for (let i = 0; i < v.length; i++) {
        if ((i > 0 && !put(",")) || !walk(v[i])) return false;
      }
      return put("]");
    }
    if (typeof v === "object" && v !== null) {
      if (!put("{")) return false;
      let first = true;
      for (const [key, member] of Object.entries(v)) {
        if (member === undefined || typeof member === "function") continue;
        if ((!first && !put(",")) || !put(`${JSON.stringify(key)}:`) || !walk(member)) {
          return false;
        }
        first = false;
      }
      return put("}");
    }
    return put(JSON.stringify(v) ?? "null");
  };
  walk(value);
  return out;
}

/** `after_job` and `after_outcome` as the `--after JOB[:outcome]` option; null or "" drops the link. */
function afterOf(job: unknown, outcome: unknown): string | undefined {
  if (job === undefined && outcome === undefined) return undefined;
  if (job === null || job === "") return "";
  if (job === undefined) {
    throw new ValidationError("after_outcome", "after_outcome: give after_job with it");
  }
  if (typeof job !== "string") throw badValue("after_job", job, "a job id or null");
  // Checked as sent: `--after`'s form would show it with an outcome no one wrote.
  validateId(job, "after_job");
  // Outcome always given: a job id ending in ":always" is an id, not an outcome.
  if (outcome === undefined || outcome === null) return `${job}:success`;
  if (!(AFTER_OUTCOMES as readonly unknown[]).includes(outcome)) {
    throw badValue("after_outcome", outcome, AFTER_OUTCOMES.join(", "));
  }
  return `${job}:${outcome}`;
}

/**
 * The options `fields` give, every field but `id`, `env` and `unset_env`;
 * a ValidationError names the first field at fault. Keys it does not
 * know are the caller's to refuse.
 */
export function fieldOptions(fields: Readonly<Record<string, unknown>>): JobOptions {
  const options: JobOptions = {};
  for (const field of TEXT_FIELDS) {
    const value = fields[field];
    if (value === undefined) continue;
    // null resets a field to the service default, as an empty flag does.
    if (value === null && NULLABLE.includes(field)) options[field] = "";
    else if (typeof value === "string") options[field] = value;
    // A uid may be written as a number, as in a passwd line.
    else if (field === "user" && typeof value === "number") options.user = String(value);
    else {
      throw badValue(
        field,
        value,
        field === "user"
          ? "a name, a uid or null"
          : NULLABLE.includes(field)
          ? "a string or null"
          : "a string",
      );
    }
  }
  const schedule: Partial<Record<FieldName, string>> = {};
  for (const field of FIELD_NAMES) {
    const value = fields[field];
    if (value === undefined) continue;
    if (typeof value === "string") schedule[field] = value;
    else if (typeof value === "number") schedule[field] = String(value);
    else throw badValue(field, value, "a string in APScheduler cron syntax");
  }
  // All six empty, as a job without a schedule of its own reads back.
  if (FIELD_NAMES.every((f) => schedule[f] === "")) options.no_schedule = true;
  else if (Object.keys(schedule).length > 0) options.schedule = schedule;
  const after = afterOf(fields.after_job, fields.after_outcome);
  if (after !== undefined) options.after = after;
  for (const field of NUMBER_FIELDS) {
    const value = fields[field];
    if (value === undefined) continue;
    if (typeof value === "number" || typeof value === "string") options[field] = String(value);
    else if (value === null) options[field] = NUMBER_DEFAULTS[field];
    else throw badValue(field, value, "a whole number or null");
  }
  for (const field of BOOLEAN_FIELDS) {
    const value = fields[field];
    if (value === undefined) continue;
    if (value === null) (options as Record<string, unknown>)[field] = SWITCH_DEFAULTS[field];
    else if (typeof value === "boolean") options[field] = value;
    else throw badValue(field, value, "true, false or null");
  }
  // Notifications (issue 13): seconds, or a duration like "2h"; null = no silence alert.
  const alertAfter = fields.alert_after;
  if (alertAfter === null) options.alert_after = "";
  else if (typeof alertAfter === "number" || typeof alertAfter === "string") {
    options.alert_after = String(alertAfter);
  } else if (alertAfter !== undefined) {
    throw badValue("alert_after", alertAfter, 'seconds, a duration like "2h", or null');
  }
  return options;
}
