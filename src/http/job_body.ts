/**
 * A job as JSON, in the field names of `jm_jobs` (or `cron` for a crontab
 * line), becomes the same `JobOptions` the CLI's flags become, so one
 * builder validates both with the same messages. Its fields are read as a
 * jobs file's entry is (app/job_fields.ts: null is the default); `env` as
 * an object or NAME=VALUE strings.
 */
import { ValidationError } from "../errors.ts";
import { FIELD_NAMES } from "../cron/grammar.ts";
import type { JobOptions } from "../domain/job.ts";
import {
  AFTER_FIELDS,
  badValue as bad,
  BOOLEAN_FIELDS,
  fieldOptions,
  NUMBER_FIELDS,
  TEXT_FIELDS,
} from "../app/job_fields.ts";

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
  const options = fieldOptions(fields);
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
