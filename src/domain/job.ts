/**
 * The Job model: one row of `jm_jobs`, its validation, and how CLI options
 * become a job. Property names are the column names, so a job, its row and
 * its snapshot in `jm_update_info` all read the same.
 */
import { ValidationError } from "../errors.ts";
import { wholeNumber, wholeNumberRule } from "./number.ts";
import { FIELD_NAMES, type FieldName } from "../cron/grammar.ts";
import { type ScheduleFields, scheduleFromFields } from "../cron/fields.ts";
import { scheduleFromCrontab } from "../cron/crontab.ts";
import {
  checkEverFires,
  compileSchedule,
  toCronerPattern,
  validateTimezone,
} from "../cron/croner.ts";
import {
  applyNotifyOptions,
  NO_NOTIFY,
  NOTIFY_FIELDS,
  type NotifyFields,
  type NotifyOptions,
  validateNotify,
} from "./notify.ts";

export interface Job extends ScheduleFields, NotifyFields {
  id: string;
  command: string;
  /** IANA zone; null = the service's `jobsmanager.timezone`. */
  timezone: string | null;
  /** Seconds before the run is killed; 0 = never. */
  timeout: number;
  enabled: boolean;
  /** null = the service's `jobsmanager.max_instances`. */
  max_instances: number | null;
  /** null = the service's `jobsmanager.coalesce`. */
  coalesce: boolean | null;
  /** Seconds; null = the service's `jobsmanager.misfire_grace_time`. */
  misfire_grace_time: number | null;
  /** Extra environment variables for the command. */
  env: Record<string, string>;
  /** Working directory; null = the service's. */
  cwd: string | null;
  description: string | null;
  /** Milliseconds since the epoch. */
  created_at: number;
  updated_at: number;
}

/** What `job add` / `job update` were told; absent = not given. */
export interface JobOptions extends NotifyOptions {
  command?: string;
  cron?: string;
  schedule?: Partial<Record<FieldName, string>>;
  timeout?: string;
  timezone?: string;
  enabled?: boolean;
  max_instances?: string;
  coalesce?: boolean;
  misfire_grace_time?: string;
  env?: string[];
  /** Names of env variables to drop (`--unset-env`). */
  unset_env?: string[];
  cwd?: string;
  description?: string;
}

export const DEFAULT_TIMEOUT = 60;
const ID_PATTERN = /^[A-Za-z0-9._:-]{1,191}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Variables the runner sets itself; a job may not override them. */
const RESERVED_ENV = ["JM_JOB_ID", "JM_RUN_ID", "JM_SCHEDULED_AT", "JM_RUN_MARKER"];
const MAX_TIMEOUT = 31_536_000;

export function validateId(id: string): string {
  if (!ID_PATTERN.test(id)) {
    const why = id.length === 0
      ? "is empty"
      : id.length > 191
      ? `is ${id.length} characters long`
      : "has characters outside A-Z a-z 0-9 . _ : -";
    throw new ValidationError(
      "id",
      `id: ${
        JSON.stringify(id.length > 60 ? id.slice(0, 60) + "…" : id)
      } ${why} (allowed: 1-191 characters of A-Z a-z 0-9 . _ : -)`,
    );
  }
  return id;
}

function numberOption(field: string, raw: string, min: number, max: number): number {
  const value = wholeNumber(raw, min, max);
  if (value === null) {
    throw new ValidationError(
      field,
      `${field}: ${JSON.stringify(raw)} is not valid (allowed: ${wholeNumberRule(min, max)})`,
    );
  }
  return value;
}

function parseEnv(pairs: string[], into: Record<string, string>): Record<string, string> {
  const env = { ...into };
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    const name = eq < 0 ? pair : pair.slice(0, eq);
    if (eq < 0 || !ENV_NAME.test(name)) {
      throw new ValidationError(
        "env",
        `env: ${
          JSON.stringify(pair)
        } is not NAME=VALUE with NAME of A-Z a-z 0-9 _ not starting with a digit`,
      );
    }
    if (RESERVED_ENV.includes(name)) {
      throw new ValidationError(
        "env",
        `env: ${name} is set by jobsmanager for every run and cannot be overridden`,
      );
    }
    env[name] = pair.slice(eq + 1);
  }
  return env;
}

/**
 * The schedule fields the options set. A new job gets all six (CronTrigger's
 * defaults fill the gaps); an update changes only the fields given, and
 * `--cron` replaces the whole schedule.
 */
function schedulePatch(options: JobOptions, isUpdate: boolean): Partial<ScheduleFields> | null {
  const fields = Object.fromEntries(
    Object.entries(options.schedule ?? {}).filter(([, v]) => v !== undefined),
  ) as Partial<ScheduleFields>;
  if (options.cron !== undefined) {
    if (Object.keys(fields).length > 0) {
      throw new ValidationError(
        "cron",
        `cron: give either --cron or the field options (--${
          Object.keys(fields)[0].replaceAll("_", "-")
        }), not both`,
      );
    }
    return scheduleFromCrontab(options.cron);
  }
  if (Object.keys(fields).length === 0) return null;
  const full = scheduleFromFields(fields);
  if (!isUpdate) return full;
  return Object.fromEntries(FIELD_NAMES.filter((f) => f in fields).map((f) => [f, full[f]]));
}

/**
 * Build the job `job add` (no `current`) or `job update` (with `current`)
 * describes. Only options that were given change; the whole result is
 * validated before it is returned, so nothing half-valid is ever stored.
 */
export function buildJob(id: string, options: JobOptions, current: Job | null, now: number): Job {
  validateId(id);
  const schedule = schedulePatch(options, current !== null);
  if (current === null) {
    if (options.command === undefined) {
      throw new ValidationError("command", "command: missing (give --command 'shell command')");
    }
    if (schedule === null) {
      throw new ValidationError(
        "schedule",
        "schedule: missing (give --cron 'm h dom mon dow' or at least one of --second --minute --hour --day --month --day-of-week)",
      );
    }
  }
  const base: Job = current ?? {
    id,
    command: "",
    ...(schedule as ScheduleFields),
    timezone: null,
    timeout: DEFAULT_TIMEOUT,
    enabled: true,
    max_instances: null,
    coalesce: null,
    misfire_grace_time: null,
    env: {},
    cwd: null,
    description: null,
    // Notifications (issue 13).
    ...NO_NOTIFY,
    created_at: now,
    updated_at: now,
  };
  const job: Job = { ...base, ...(schedule ?? {}), env: { ...base.env } };
  if (options.command !== undefined) job.command = options.command;
  if (options.timeout !== undefined) {
    job.timeout = numberOption("timeout", options.timeout, 0, MAX_TIMEOUT);
  }
  if (options.timezone !== undefined) {
    job.timezone = options.timezone === "" ? null : options.timezone;
  }
  if (options.enabled !== undefined) job.enabled = options.enabled;
  if (options.max_instances !== undefined) {
    job.max_instances = numberOption("max_instances", options.max_instances, 1, 10_000);
  }
  if (options.coalesce !== undefined) job.coalesce = options.coalesce;
  if (options.misfire_grace_time !== undefined) {
    job.misfire_grace_time = numberOption(
      "misfire_grace_time",
      options.misfire_grace_time,
      0,
      MAX_TIMEOUT,
    );
  }
  for (const name of options.unset_env ?? []) delete job.env[name];
  if (options.env !== undefined) job.env = parseEnv(options.env, job.env);
  if (options.cwd !== undefined) job.cwd = options.cwd === "" ? null : options.cwd;
  if (options.description !== undefined) {
    job.description = options.description === "" ? null : options.description;
  }
  // Notifications (issue 13).
  Object.assign(job, applyNotifyOptions(job, options));
  validateJob(job);
  if (schedule !== null) checkEverFires(job);
  return job;
}

/**
 * Check every field of a job, whatever wrote it (CLI or hand-written SQL).
 * Throws ValidationError naming the first field at fault.
 */
export function validateJob(job: Job): Job {
  validateId(job.id);
  if (job.command.trim() === "") {
    throw new ValidationError("command", "command: is empty (give --command 'shell command')");
  }
  if (job.command.includes("\0")) {
    throw new ValidationError("command", "command: contains a NUL byte, which no shell can run");
  }
  for (const field of FIELD_NAMES) {
    if (typeof job[field] !== "string" || job[field].trim() === "") {
      throw new ValidationError(field, `${field}: is empty (use '*' for every value)`);
    }
  }
  toCronerPattern(job);
  if (job.timezone !== null) validateTimezone(job.timezone);
  checkNumber(job, "timeout", 0, MAX_TIMEOUT, false);
  checkNumber(job, "max_instances", 1, 10_000, true);
  checkNumber(job, "misfire_grace_time", 0, MAX_TIMEOUT, true);
  const env: unknown = job.env;
  if (
    typeof env !== "object" || env === null || Array.isArray(env) ||
    Object.entries(env).some(([k, v]) => !ENV_NAME.test(k) || typeof v !== "string")
  ) {
    throw new ValidationError(
      "env",
      `env: ${
        JSON.stringify(env)
      } is not a JSON object of NAME: "value" strings (fix the row, e.g. UPDATE jm_jobs SET env = '{}' WHERE id = '${job.id}')`,
    );
  }
  const nul = Object.entries(env as Record<string, string>).find(([, v]) => v.includes("\0"));
  if (nul) {
    throw new ValidationError(
      "env",
      `env: ${nul[0]} contains a NUL byte, which no environment variable can hold`,
    );
  }
  if (job.cwd?.includes("\0")) {
    throw new ValidationError("cwd", "cwd: contains a NUL byte, which no path can hold");
  }
  if (job.cwd !== null && !job.cwd.startsWith("/")) {
    throw new ValidationError(
      "cwd",
      `cwd: ${
        JSON.stringify(job.cwd)
      } is not an absolute path (the service's working directory is not yours)`,
    );
  }
  if (job.description?.includes("\0")) {
    throw new ValidationError(
      "description",
      "description: contains a NUL byte, at which the database would cut it",
    );
  }
  if (job.description !== null && job.description.length > 1000) {
    throw new ValidationError(
      "description",
      `description: is ${job.description.length} characters long (allowed: up to 1000)`,
    );
  }
  // Notifications (issue 13).
  validateNotify(job);
  return job;
}

/** A numeric column, as a row written by hand may hold it. */
function checkNumber(
  job: Job,
  field: "timeout" | "max_instances" | "misfire_grace_time",
  min: number,
  max: number,
  nullable: boolean,
): void {
  const v = job[field];
  if (v === null && nullable) return;
  // A number, not digits in a string: the row mapper already turned the column into one.
  if (typeof v !== "number" || wholeNumber(v, min, max) === null) {
    throw new ValidationError(
      field,
      `${field}: ${JSON.stringify(v)} is not valid (allowed: ${wholeNumberRule(min, max)}${
        nullable ? ", or NULL for the service default" : ""
      })`,
    );
  }
}

/** The zone a job fires in: its own, else the service default. */
export function zoneOf(job: Job, defaultZone: string): string {
  return job.timezone ?? defaultZone;
}

/** The next `n` fires of a job after `from` (none when the schedule never fires again). */
export function nextFires(job: Job, defaultZone: string, from: Date, n: number): Date[] {
  return compileSchedule(job, zoneOf(job, defaultZone)).nextRuns(n, from);
}

/** The six schedule fields as one line, `second minute hour day month day_of_week`. */
export function scheduleText(job: ScheduleFields): string {
  return FIELD_NAMES.map((f) => job[f]).join(" ");
}

/** True when two jobs differ in anything but their timestamps. */
export function sameDefinition(a: Job, b: Job): boolean {
  // Field by field, not through JSON: a reload compares every loaded job.
  for (const key of DEFINITION_FIELDS) {
    if (a[key] !== b[key]) return false;
  }
  const envA = Object.entries(a.env ?? {});
  const envB = b.env ?? {};
  return envA.length === Object.keys(envB).length &&
    envA.every(([k, v]) => Object.hasOwn(envB, k) && envB[k] === v);
}

/** Every field of a job, in the column order of `jm_jobs`. */
export const JOB_FIELDS = [
  "id",
  "command",
  ...FIELD_NAMES,
  "timezone",
  "timeout",
  "enabled",
  "max_instances",
  "coalesce",
  "misfire_grace_time",
  "env",
  "cwd",
  "description",
  "created_at",
  "updated_at",
  // Notifications (issue 13, migration 7).
  ...NOTIFY_FIELDS,
] as const satisfies readonly (keyof Job)[];

/** Every field of a job but env (compared apart) and the timestamps. */
const DEFINITION_FIELDS = JOB_FIELDS.filter((f) =>
  f !== "env" && f !== "created_at" && f !== "updated_at"
);
