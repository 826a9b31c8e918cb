/**
 * A job as JSON, in the field names of `jm_jobs` (or `cron` for a crontab
 * line), becomes the same `JobOptions` the CLI's flags become, so one
 * builder validates both with the same messages. Numbers may come as JSON
 * numbers or digit strings; `env` as an object or NAME=VALUE strings.
 */
import { ValidationError } from "../errors.ts";
import { FIELD_NAMES, type FieldName } from "../cron/grammar.ts";
import { AFTER_OUTCOMES, type JobOptions, validateId } from "../domain/job.ts";
import { HOOK_COMMANDS, HOOK_URLS } from "../domain/notify.ts";
import { shortened } from "../domain/printable.ts";

const TEXT_FIELDS = [
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
const NUMBER_FIELDS = [
  "timeout",
  "max_instances",
  "misfire_grace_time",
  "retries",
  "retry_delay",
  "retry_max_delay",
] as const;
const BOOLEAN_FIELDS = ["enabled", "coalesce", "retry_overlap"] as const;
/** The follow-up link, as jm_jobs holds it (read back by GET, so sent back as such). */
const AFTER_FIELDS = ["after_job", "after_outcome"];
/** Set by jobsmanager; accepted (as times) so a job read from the API can be sent back. */
const READ_ONLY = ["created_at", "updated_at"];
/**
 * What `GET /jobs/{id}` shows with a job; accepted for the same reason, the
 * schedule and zone only as the job shows them (api/jobs.ts `refuseShownChanges`).
 */
const SHOWN = [
  "zone",
  "schedule",
  "schedule_words",
  "next",
  "invalid",
  "after_missing",
  "runs",
  // And with each job of `GET /jobs`.
  "next_fire",
  "last_run",
  "running",
  // And with a written job: what its write warned of.
  "warnings",
];
const NULLABLE: readonly string[] = [
  "timezone",
  "cwd",
  "description",
  "user",
  ...HOOK_COMMANDS,
  ...HOOK_URLS,
];

/**
 * Fields whose null (or "") is their default: the service's, as GET returns
 * them, or for `timeout` 60 s, which GET returns as the number.
 */
const DEFAULTABLE: readonly string[] = ["timeout", "max_instances", "misfire_grace_time"];

/** The value is shown shortened: a 1 MB env sent wrong would come back whole in the answer. */
function bad(field: string, value: unknown, expected: string): ValidationError {
  return new ValidationError(
    field,
    `${field}: ${shortened(JSON.stringify(value))} is not valid (expected ${expected})`,
  );
}

function envPairs(value: unknown): string[] {
  if (Array.isArray(value) && value.every((v) => typeof v === "string")) return value;
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    return Object.entries(value).map(([name, v]) => {
      if (typeof v !== "string") throw bad("env", { [name]: v }, "string values");
      // Joined as NAME=value below: an "=" in the name would move it into the value.
      if (name.includes("=")) {
        throw bad("env", name, "a NAME of A-Z a-z 0-9 _ not starting with a digit");
      }
      return `${name}=${v}`;
    });
  }
  throw bad("env", value, 'an object like { "NAME": "value" } or a list of "NAME=value"');
}

/** `after_job` and `after_outcome` as the `--after JOB[:outcome]` option; "" drops the link. */
function afterOf(job: unknown, outcome: unknown): string | undefined {
  if (job === undefined && outcome === undefined) return undefined;
  if (job === null || job === "") return "";
  if (job === undefined) {
    throw new ValidationError("after_outcome", "after_outcome: give after_job with it");
  }
  if (typeof job !== "string") throw bad("after_job", job, "a job id or null");
  // Checked as sent: `--after`'s form would show it with an outcome no one wrote.
  validateId(job, "after_job");
  // Outcome always given: a job id ending in ":always" is an id, not an outcome.
  if (outcome === undefined || outcome === null) return `${job}:success`;
  if (!(AFTER_OUTCOMES as readonly unknown[]).includes(outcome)) {
    throw bad("after_outcome", outcome, AFTER_OUTCOMES.join(", "));
  }
  return `${job}:${outcome}`;
}

/**
 * The options a JSON body gives. `forUpdate` allows `unset_env`; `id` is
 * read by the caller (from the body to add, from the path to update).
 */
export function jobOptionsOf(body: unknown, forUpdate: boolean): JobOptions {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new ValidationError("body", "body: expected a JSON object of job fields");
  }
  const known = [
    "id",
    ...TEXT_FIELDS,
    ...FIELD_NAMES,
    ...NUMBER_FIELDS,
    ...BOOLEAN_FIELDS,
    ...AFTER_FIELDS,
    "env",
    "alert_after",
    ...(forUpdate ? ["unset_env"] : []),
    ...READ_ONLY,
  ];
  const fields = body as Record<string, unknown>;
  const unknown = Object.keys(fields).find((k) => !known.includes(k) && !SHOWN.includes(k));
  if (unknown !== undefined) {
    throw new ValidationError(
      unknown,
      `${unknown}: not a job field (known: ${known.filter((k) => k !== "id").join(", ")})`,
    );
  }
  const options: JobOptions = {};
  for (const field of TEXT_FIELDS) {
    const value = fields[field];
    if (value === undefined) continue;
    // null resets a field to the service default, as an empty flag does.
    if (value === null && NULLABLE.includes(field)) options[field] = "";
    else if (typeof value === "string") options[field] = value;
    else throw bad(field, value, NULLABLE.includes(field) ? "a string or null" : "a string");
  }
  const schedule: Partial<Record<FieldName, string>> = {};
  for (const field of FIELD_NAMES) {
    const value = fields[field];
    if (value === undefined) continue;
    if (typeof value === "string") schedule[field] = value;
    else if (typeof value === "number") schedule[field] = String(value);
    else throw bad(field, value, "a string in APScheduler cron syntax");
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
    else if (value === null && DEFAULTABLE.includes(field)) options[field] = "";
    else {
      throw bad(
        field,
        value,
        DEFAULTABLE.includes(field) ? "a whole number or null" : "a whole number",
      );
    }
  }
  for (const field of BOOLEAN_FIELDS) {
    const value = fields[field];
    if (value === undefined) continue;
    if (value === null && field === "coalesce") options.coalesce = null;
    else if (typeof value === "boolean") options[field] = value;
    else throw bad(field, value, field === "coalesce" ? "true, false or null" : "true or false");
  }
  // Notifications (issue 13): seconds, or a duration like "2h"; null = no silence alert.
  const alertAfter = fields.alert_after;
  if (alertAfter === null) options.alert_after = "";
  else if (typeof alertAfter === "number" || typeof alertAfter === "string") {
    options.alert_after = String(alertAfter);
  } else if (alertAfter !== undefined) {
    throw bad("alert_after", alertAfter, 'seconds, a duration like "2h", or null');
  }
  if (fields.env !== undefined) options.env = envPairs(fields.env);
  if (fields.unset_env !== undefined) {
    const names = fields.unset_env;
    if (!Array.isArray(names) || !names.every((n) => typeof n === "string")) {
      throw bad("unset_env", names, "a list of variable names");
    }
    options.unset_env = names;
  }
  return options;
}
