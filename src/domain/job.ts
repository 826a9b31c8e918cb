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
import { AS_FIELDS, labelOf, type OptionNames } from "./option_names.ts";
import {
  checkEverFires,
  compileSchedule,
  everFires,
  toCronerPattern,
  validateTimezone,
  zoneSpelling,
} from "../cron/croner.ts";
import {
  applyNotifyOptions,
  HOOK_COMMANDS,
  HOOK_URLS,
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
  /** Working directory; null = the service's (with a `user`: that user's home). */
  cwd: string | null;
  description: string | null;
  /**
   * The account the command runs as: a user name or a numeric uid; null =
   * the service's own user. Another user needs a service run as root.
   */
  user: string | null;
  /** Attempts after a failed one; 0 = none. */
  retries: number;
  /** Seconds before the first retry; each further one waits twice as long, with jitter. */
  retry_delay: number;
  /** Seconds no retry waits longer than. */
  retry_max_delay: number;
  /** The outcomes that retry, comma-separated (RETRYABLE_STATUSES). */
  retry_on: string;
  /** A retry still pending when the next scheduled fire comes is kept, not dropped. */
  retry_overlap: boolean;
  /** The job whose runs this one follows; null = none. */
  after_job: string | null;
  /** Which ends of after_job's runs start this one; null exactly when after_job is. */
  after_outcome: AfterOutcome | null;
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
  /** null: the service's default. */
  coalesce?: boolean | null;
  misfire_grace_time?: string;
  env?: string[];
  /** Names of env variables to drop (`--unset-env`). */
  unset_env?: string[];
  cwd?: string;
  description?: string;
  /** A user name or uid; "" = the service's own user. */
  user?: string;
  retries?: string;
  retry_delay?: string;
  retry_max_delay?: string;
  /** Comma-separated outcomes (`failed,timeout`). */
  retry_on?: string;
  retry_overlap?: boolean;
  /** `JOB[:success|failure|always]`; "" drops the link. */
  after?: string;
  /** Drop the job's own schedule (it then runs only after another job's runs). */
  no_schedule?: boolean;
}

/** Outcomes of a run that may be retried (`--retry-on`). */
export const RETRYABLE_STATUSES = ["failed", "timeout", "error", "lost", "killed"] as const;
export const DEFAULT_RETRY_ON = "failed,timeout,error,lost";
export const DEFAULT_RETRY_DELAY = 10;
export const DEFAULT_RETRY_MAX_DELAY = 3600;
const MAX_RETRIES = 100;

/** Which ends of the parent's runs start a follow-up job. */
export const AFTER_OUTCOMES = ["success", "failure", "always"] as const;
export type AfterOutcome = typeof AFTER_OUTCOMES[number];
/** Run statuses that count as a failure for `--after JOB:failure`. */
export const FAILURE_STATUSES: readonly string[] = ["failed", "timeout", "killed", "error", "lost"];

export const DEFAULT_TIMEOUT = 60;
const ID_PATTERN = /^[A-Za-z0-9._:-]{1,191}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Variables the runner sets itself; a job may not override them. */
const RESERVED_ENV = ["JM_JOB_ID", "JM_RUN_ID", "JM_SCHEDULED_AT", "JM_RUN_MARKER"];
const MAX_TIMEOUT = 31_536_000;

/** `name`: what the id was given as, for the message (a flag, a query parameter). */
export function validateId(id: string, name = "id"): string {
  if (!ID_PATTERN.test(id)) {
    const why = id.length === 0
      ? "is empty"
      : id.length > 191
      ? `is ${id.length} characters long`
      : "has characters outside A-Z a-z 0-9 . _ : -";
    throw new ValidationError(
      name,
      `${name}: ${
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

/**
 * A variable given twice with different values (`--env A=1 --env A=2`),
 * or both dropped and set (`--unset-env A --env A=3`): which was meant
 * cannot be told, as of an option given twice differently. Given twice
 * alike, it is given once. The values are not shown: one may be a secret.
 */
function refuseEnvRepeats(
  pairs: readonly string[],
  unset: readonly string[],
  names: OptionNames,
): void {
  const values = new Map<string, string>();
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    const name = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    const given = names.option("env", `${name}=…`);
    if (values.has(name) && values.get(name) !== value) {
      throw new ValidationError(
        "env",
        `env: ${name} is given twice with different values (${given} twice); give it once`,
      );
    }
    if (unset.includes(name)) {
      throw new ValidationError(
        "env",
        `env: ${name} is both dropped and set (${
          names.option("unset_env", name)
        } and ${given}); give one of them`,
      );
    }
    values.set(name, value);
  }
}

function parseEnv(pairs: string[], into: Record<string, string>): Record<string, string> {
  const env = { ...into };
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    const name = eq < 0 ? pair : pair.slice(0, eq);
    if (eq < 0 || !ENV_NAME.test(name)) {
      throw new ValidationError(
        "env",
        // The value is not shown: it may be a secret.
        `env: ${
          JSON.stringify(eq < 0 ? pair : `${name}=…`)
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
function schedulePatch(
  options: JobOptions,
  isUpdate: boolean,
  names: OptionNames,
): Partial<ScheduleFields> | null {
  const fields = Object.fromEntries(
    Object.entries(options.schedule ?? {}).filter(([, v]) => v !== undefined),
  ) as Partial<ScheduleFields>;
  if (options.no_schedule) {
    if (options.cron !== undefined || Object.keys(fields).length > 0) {
      throw new ValidationError(
        "schedule",
        `schedule: give ${names.option("no_schedule")} or a schedule (${names.option("cron")}, ${
          names.option("second")
        } …), not both`,
      );
    }
    return NO_SCHEDULE;
  }
  if (options.cron !== undefined) {
    if (Object.keys(fields).length > 0) {
      throw new ValidationError(
        "cron",
        `cron: give either ${names.option("cron")} or the field options (${
          names.option(Object.keys(fields)[0] as FieldName)
        }), not both`,
      );
    }
    return scheduleFromCrontab(options.cron, (field) => names.option(field));
  }
  if (Object.keys(fields).length === 0) return null;
  const full = scheduleFromFields(fields);
  if (!isUpdate) return full;
  return Object.fromEntries(FIELD_NAMES.filter((f) => f in fields).map((f) => [f, full[f]]));
}

/** A new job of `schedule` before its options apply: every other field at its default. */
function newJob(id: string, schedule: ScheduleFields, now: number): Job {
  return {
    id,
    command: "",
    ...schedule,
    timezone: null,
    timeout: DEFAULT_TIMEOUT,
    enabled: true,
    max_instances: null,
    coalesce: null,
    misfire_grace_time: null,
    env: {},
    cwd: null,
    description: null,
    user: null,
    retries: 0,
    retry_delay: DEFAULT_RETRY_DELAY,
    retry_max_delay: DEFAULT_RETRY_MAX_DELAY,
    retry_on: DEFAULT_RETRY_ON,
    retry_overlap: false,
    after_job: null,
    after_outcome: null,
    // Notifications (issue 13).
    ...NO_NOTIFY,
    created_at: now,
    updated_at: now,
  };
}

/**
 * Check the options of an update before the job is read, so that bad
 * input is said first (exit 2, HTTP 400), as `job add` says it, not that
 * the job does not exist: each on a stand-in job none can be at odds with
 * (every instant scheduled, a link to another job, retry delays from 0 to
 * the most), so what is refused here is wrong whatever job it changes.
 * What depends on the job itself is left to `buildJob`, which has it.
 */
export function checkUpdate(
  id: string,
  options: JobOptions,
  now: number,
  names: OptionNames = AS_FIELDS,
): void {
  validateId(id);
  const standIn: Job = {
    ...newJob(id, EVERY_INSTANT, now),
    command: "true",
    retry_delay: 0,
    retry_max_delay: MAX_TIMEOUT,
    after_job: id === "a" ? "b" : "a",
    after_outcome: "success",
  };
  buildJob(id, options, standIn, now, names);
}

/** A schedule that fires every second. */
const EVERY_INSTANT: ScheduleFields = Object.fromEntries(
  FIELD_NAMES.map((f) => [f, "*"]),
) as unknown as ScheduleFields;

/**
 * Build the job `job add` (no `current`) or `job update` (with `current`)
 * describes. Only options that were given change; the whole result is
 * validated before it is returned, so nothing half-valid is ever stored.
 * Messages say what to give in `names`: the caller's (the CLI's flags),
 * else the job's fields.
 */
export function buildJob(
  id: string,
  options: JobOptions,
  current: Job | null,
  now: number,
  names: OptionNames = AS_FIELDS,
): Job {
  validateId(id);
  // A job without a schedule gets a whole one, as a new job does.
  const schedule = schedulePatch(options, current !== null && hasSchedule(current), names);
  if (current === null) {
    // Refused for new jobs only: one stored before can still be shown and removed by the CLI.
    if (/^\.+$/.test(id)) {
      throw new ValidationError(
        "id",
        `id: ${
          JSON.stringify(id)
        } is only dots, which a URL cannot name (/jobs/.. is read as the path above it): give an id with another character`,
      );
    }
    if (options.command === undefined) {
      throw new ValidationError(
        "command",
        `command: missing (give ${names.option("command", "shell command")})`,
      );
    }
    if (schedule === null && !options.after) {
      throw new ValidationError(
        "schedule",
        `schedule: missing (give ${names.option("cron", "m h dom mon dow")} or at least one of ${
          FIELD_NAMES.map((f) => names.option(f)).join(" ")
        }, or ${names.option("after", "JOB")} for a job that runs only after another)`,
      );
    }
  }
  const base: Job = current ?? newJob(id, (schedule ?? NO_SCHEDULE) as ScheduleFields, now);
  // An env column broken by hand stays as it is, for validateJob to name and say how to fix,
  // unless this change sets variables: then they go in what is usable of it.
  const env = isEnv(base.env)
    ? { ...base.env }
    : options.env !== undefined || options.unset_env !== undefined
    ? envRepaired(base.env)
    : base.env;
  const job: Job = { ...base, ...(schedule ?? {}), env };
  if (options.command !== undefined) job.command = options.command;
  // "" sets the timeout back to its default, as it does the fields below to the service's.
  if (options.timeout !== undefined) {
    job.timeout = options.timeout === ""
      ? DEFAULT_TIMEOUT
      : numberOption("timeout", options.timeout, 0, MAX_TIMEOUT);
  }
  if (options.timezone !== undefined) {
    job.timezone = options.timezone === "" ? null : zoneSpelling(options.timezone);
  }
  if (options.enabled !== undefined) job.enabled = options.enabled;
  // "" (null for coalesce) sets each back to the service's default, as for the zone.
  if (options.max_instances !== undefined) {
    job.max_instances = options.max_instances === ""
      ? null
      : numberOption("max_instances", options.max_instances, 1, 10_000);
  }
  if (options.coalesce !== undefined) job.coalesce = options.coalesce;
  if (options.misfire_grace_time !== undefined) {
    job.misfire_grace_time = options.misfire_grace_time === ""
      ? null
      : numberOption("misfire_grace_time", options.misfire_grace_time, 0, MAX_TIMEOUT);
  }
  for (const name of options.unset_env ?? []) delete job.env[name];
  if (options.env !== undefined) job.env = parseEnv(options.env, job.env);
  refuseEnvRepeats(options.env ?? [], options.unset_env ?? [], names);
  if (options.cwd !== undefined) job.cwd = options.cwd === "" ? null : options.cwd;
  if (options.description !== undefined) {
    job.description = options.description === "" ? null : options.description;
  }
  if (options.user !== undefined) job.user = options.user === "" ? null : options.user;
  applyRetryOptions(job, options);
  // Notifications (issue 13).
  Object.assign(job, applyNotifyOptions(job, options));
  validateJob(job, names);
  checkSizes(job, current);
  if (schedule !== null && hasSchedule(job)) checkEverFires(job);
  return job;
}

/** Bytes of text a job's long columns hold: MySQL's TEXT. */
const TEXT_BYTES = 65_535;
/** Characters a schedule field's column holds: VARCHAR(255). */
const FIELD_CHARS = 255;

/**
 * A new or changed job fits the columns that store it, on either backend:
 * MySQL would refuse a longer value with a server error naming no job,
 * SQLite would take it. Jobs already stored are not held to it (a longer
 * one SQLite kept still runs): a field the change leaves as `current` had
 * it is not checked.
 */
function checkSizes(job: Job, current: Job | null): void {
  const kept = (field: keyof Job) =>
    current !== null && JSON.stringify(current[field]) === JSON.stringify(job[field]);
  for (const field of FIELD_NAMES) {
    const length = job[field].length;
    if (length > FIELD_CHARS && !kept(field)) {
      throw new ValidationError(
        field,
        `${field}: is ${length} characters long (allowed: up to ${FIELD_CHARS})`,
      );
    }
  }
  const texts: [keyof Job, string | null][] = [
    ["command", job.command],
    ["env", JSON.stringify(job.env)],
    ["cwd", job.cwd],
    ...[...HOOK_COMMANDS, ...HOOK_URLS].map((f): [keyof Job, string | null] => [f, job[f]]),
  ];
  for (const [field, text] of texts) {
    // A UTF-8 character is at most 4 bytes: only a long text needs counting.
    if (text === null || text.length * 4 <= TEXT_BYTES || kept(field)) continue;
    const bytes = new TextEncoder().encode(text).length;
    if (bytes > TEXT_BYTES) {
      throw new ValidationError(
        field,
        `${field}: is ${bytes} bytes long${
          field === "env" ? " as stored (JSON)" : ""
        } (allowed: up to ${TEXT_BYTES}; a longer ${
          field === "command" ? "script" : "value"
        } belongs in a file the job reads)`,
      );
    }
  }
}

/** The fields of a job with no schedule of its own: all six empty. */
const NO_SCHEDULE: ScheduleFields = Object.fromEntries(
  FIELD_NAMES.map((f) => [f, ""]),
) as unknown as ScheduleFields;

/** False for a job that runs only after another job's runs (every schedule field empty). */
export function hasSchedule(job: ScheduleFields): boolean {
  // Each field by name: a reload asks it of every job, and reading a row's field by a
  // variable name costs more than the comparison.
  return job.second !== "" || job.minute !== "" || job.hour !== "" || job.day !== "" ||
    job.month !== "" || job.day_of_week !== "";
}

/** `JOB[:success|failure|always]`; an id may hold ':' itself, so only a known outcome splits. */
export function parseAfter(raw: string): { job: string; outcome: AfterOutcome } {
  const m = raw.match(/^(.*):(success|failure|always)$/);
  const job = m ? m[1] : raw;
  try {
    validateId(job);
  } catch (error) {
    throw new ValidationError(
      "after",
      `after: ${JSON.stringify(raw)} is not JOB[:success|failure|always] (${
        (error as Error).message
      })`,
    );
  }
  return { job, outcome: m ? m[2] as AfterOutcome : "success" };
}

/**
 * retry_on values already found canonical: a catalogue shares a few, and
 * each job's is checked on every reload and `job list`. Bounded: only
 * lists of RETRYABLE_STATUSES, each status once, are kept.
 */
const RETRY_ON_SEEN = new Set<string>();

/** `failed, timeout` → `failed,timeout`, each checked, duplicates dropped. */
function parseRetryOn(raw: string): string {
  const items = raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const wrong = items.find((s) => !(RETRYABLE_STATUSES as readonly string[]).includes(s));
  if (items.length === 0 || wrong !== undefined) {
    throw new ValidationError(
      "retry_on",
      `retry_on: ${JSON.stringify(raw)} ${
        wrong === undefined ? "names no outcome" : `names ${JSON.stringify(wrong)}`
      } (allowed: a comma-separated list of ${RETRYABLE_STATUSES.join(", ")})`,
    );
  }
  return [...new Set(items)].join(",");
}

function applyRetryOptions(job: Job, options: JobOptions): void {
  if (options.retries !== undefined) {
    job.retries = numberOption("retries", options.retries, 0, MAX_RETRIES);
  }
  if (options.retry_delay !== undefined) {
    job.retry_delay = numberOption("retry_delay", options.retry_delay, 0, MAX_TIMEOUT);
  }
  if (options.retry_max_delay !== undefined) {
    job.retry_max_delay = numberOption("retry_max_delay", options.retry_max_delay, 0, MAX_TIMEOUT);
  }
  if (options.retry_on !== undefined) job.retry_on = parseRetryOn(options.retry_on);
  if (options.retry_overlap !== undefined) job.retry_overlap = options.retry_overlap;
  if (options.after !== undefined) {
    const after = options.after === "" ? null : parseAfter(options.after);
    job.after_job = after?.job ?? null;
    job.after_outcome = after?.outcome ?? null;
  }
}

/** The outcomes a job retries on, as a list. */
export function retryOn(job: Job): string[] {
  return job.retry_on.split(",");
}

/**
 * Milliseconds to wait before attempt `attempt + 1`, after attempt
 * `attempt` (1 = the first run) failed: retry_delay doubled per attempt,
 * plus up to 10 % jitter (drawn from the failed run's id `runId`), never
 * above retry_max_delay.
 */
export function retryDelayMs(job: Job, attempt: number, runId: number): number {
  // From the failed run's id, so that the delay is the same whoever computes it.
  const jitter = (Math.imul(runId, 0x9e3779b1) >>> 0) / 2 ** 32;
  const nominal = job.retry_delay * 1000 * 2 ** Math.min(attempt - 1, 40);
  return Math.round(Math.min(job.retry_max_delay * 1000, nominal * (1 + 0.1 * jitter)));
}

/** Whether a parent run that ended `status` starts a job following it with `outcome`. */
export function afterMatches(outcome: AfterOutcome, status: string): boolean {
  if (outcome === "success") return status === "success";
  if (outcome === "failure") return FAILURE_STATUSES.includes(status);
  return status === "success" || FAILURE_STATUSES.includes(status);
}

/**
 * The cycle `job`'s follow-up link closes among `all` (every job by id),
 * in run order and back to the start (`a → b → a`: a's end starts b,
 * whose end starts a); null when it closes none.
 */
export function followCycle(all: ReadonlyMap<string, Job>, job: Job): string[] | null {
  const chain = [job.id];
  for (let at = job.after_job === null ? undefined : all.get(job.after_job); at;) {
    chain.push(at.id);
    if (at.id === job.id) return chain.reverse();
    // A cycle further up the chain, which does not come back to `job`.
    if (chain.indexOf(at.id) !== chain.length - 1) return null;
    at = at.after_job === null ? undefined : all.get(at.after_job);
  }
  return null;
}

function validateRetries(job: Job, names: OptionNames): void {
  checkNumber("retries", job.retries, 0, MAX_RETRIES, false);
  checkNumber("retry_delay", job.retry_delay, 0, MAX_TIMEOUT, false);
  checkNumber("retry_max_delay", job.retry_max_delay, 0, MAX_TIMEOUT, false);
  if (job.retry_max_delay < job.retry_delay) {
    throw new ValidationError(
      "retry_max_delay",
      `retry_max_delay: ${job.retry_max_delay} s is shorter than retry_delay (${job.retry_delay} s); give ${
        names.option("retry_max_delay")
      } at least ${job.retry_delay}`,
    );
  }
  if (typeof job.retry_on !== "string") {
    throw new ValidationError("retry_on", `retry_on: ${JSON.stringify(job.retry_on)} is not text`);
  }
  if (!RETRY_ON_SEEN.has(job.retry_on) && parseRetryOn(job.retry_on) !== job.retry_on) {
    throw new ValidationError(
      "retry_on",
      `retry_on: ${JSON.stringify(job.retry_on)} is not a comma-separated list of ${
        RETRYABLE_STATUSES.join(", ")
      } without blanks`,
    );
  }
  RETRY_ON_SEEN.add(job.retry_on);
  if (typeof job.retry_overlap !== "boolean") {
    throw new ValidationError(
      "retry_overlap",
      `retry_overlap: ${JSON.stringify(job.retry_overlap)} is not true or false`,
    );
  }
  const after = labelOf(names, "after");
  if ((job.after_job === null) !== (job.after_outcome === null)) {
    throw new ValidationError(
      "after",
      `${after}: after_job and after_outcome must both be set or both NULL (fix the row, e.g. UPDATE jm_jobs SET after_outcome = 'success' WHERE id = '${job.id}')`,
    );
  }
  if (job.after_job !== null) {
    parseAfter(job.after_job);
    if (!(AFTER_OUTCOMES as readonly string[]).includes(job.after_outcome!)) {
      throw new ValidationError(
        "after",
        `${after}: outcome ${JSON.stringify(job.after_outcome)} is not one of ${
          AFTER_OUTCOMES.join(", ")
        }`,
      );
    }
    if (job.after_job === job.id) {
      throw new ValidationError(
        "after",
        `${after}: job '${job.id}' cannot follow itself (${job.id} → ${job.id})`,
      );
    }
  }
}

/** What `validateJob` finds wrong with `job` (its message), or null when it is valid. */
export function jobProblem(job: Job, names: OptionNames = AS_FIELDS): string | null {
  try {
    validateJob(job, names);
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

/** The most characters (code points) a job's description holds: jm_jobs.description's VARCHAR(1000). */
export const MAX_DESCRIPTION = 1000;

/**
 * Check every field of a job, whatever wrote it (CLI or hand-written SQL).
 * Throws ValidationError naming the first field at fault, and what to give
 * in `names`.
 */
export function validateJob(job: Job, names: OptionNames = AS_FIELDS): Job {
  validateId(job.id);
  // First: the walks below take text fields for text, and env for an object of strings.
  refuseUnreadableText(job);
  validateEnv(job.env, job.id);
  if (job.command.trim() === "") {
    throw new ValidationError(
      "command",
      `command: is empty (give ${names.option("command", "shell command")})`,
    );
  }
  if (job.command.includes("\0")) {
    throw new ValidationError("command", "command: contains a NUL byte, which no shell can run");
  }
  validateRetries(job, names);
  if (!hasSchedule(job)) {
    if (job.after_job === null) {
      throw new ValidationError(
        "schedule",
        `schedule: missing, and the job follows no other (give ${names.option("cron", "…")} or ${
          names.option("after", "JOB")
        })`,
      );
    }
  } else {
    const blank = blankField(job);
    if (blank !== null) {
      throw new ValidationError(blank, `${blank}: is empty (use '*' for every value)`);
    }
    toCronerPattern(job);
    checkFallsOnSomeDate(job);
  }
  if (job.timezone !== null) validateTimezone(job.timezone);
  checkNumber("timeout", job.timeout, 0, MAX_TIMEOUT, false);
  checkNumber("max_instances", job.max_instances, 1, 10_000, true);
  checkNumber("misfire_grace_time", job.misfire_grace_time, 0, MAX_TIMEOUT, true);
  checkFlag("enabled", job.enabled, job.id, false);
  checkFlag("coalesce", job.coalesce, job.id, true);
  checkInstant("created_at", job.created_at, job.id, job.updated_at);
  checkInstant("updated_at", job.updated_at, job.id, job.created_at);
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
  // Characters as the database counts them (VARCHAR(1000), utf8mb4): code points, not UTF-16 units.
  const descriptionChars = job.description === null ? 0 : [...job.description].length;
  if (descriptionChars > MAX_DESCRIPTION) {
    throw new ValidationError(
      "description",
      `description: is ${descriptionChars} characters long (allowed: up to ${MAX_DESCRIPTION})`,
    );
  }
  validateUser(job.user, job.id);
  // Notifications (issue 13).
  validateNotify(job);
  return job;
}

/**
 * A user name as useradd and POSIX allow it (a final `$` for Samba's
 * machine accounts), or as sssd names an AD or LDAP account
 * (`john.doe@corp.example.com`), or a uid: what getent takes unquoted. At
 * most 64 characters, as the column holds. `CORP\john` is refused: a
 * backslash is an escape to a shell and JSON, and sssd answers to the
 * user@domain form too.
 */
const USER_NAME = /^(?=.{1,64}$)[A-Za-z_][A-Za-z0-9_.@-]*\$?$/;
const MAX_UID = 4_294_967_294;

/** The user column: null, a user name, or a uid (not -1, which means none to the kernel). */
function validateUser(user: unknown, id: string): void {
  if (user === null) return;
  const uid = typeof user === "string" && /^[0-9]+$/.test(user)
    ? wholeNumber(user, 0, MAX_UID)
    : null;
  if (typeof user === "string" && (uid !== null || USER_NAME.test(user))) return;
  throw new ValidationError(
    "user",
    `user: ${
      JSON.stringify(typeof user === "string" && user.length > 80 ? user.slice(0, 80) + "…" : user)
    } is not a user name or uid (allowed: a name of 1-64 characters of A-Z a-z 0-9 _ . - @ not starting with a digit, ., - or @, or a uid of ${
      wholeNumberRule(0, MAX_UID)
    }; empty or NULL for the service's own user)${
      typeof user === "string" && user.includes("\\")
        ? "; a DOMAIN\\name account: give it as name@domain, as sssd also knows it, or as its uid (id -u)"
        : ""
    }${
      typeof user === "string"
        ? ""
        : `; fix the row, e.g. UPDATE jm_jobs SET \`user\` = NULL WHERE id = '${id}'`
    }`,
  );
}

/** A user name or uid typed for many jobs at once (`import crontab --user`): as a job's `user`. */
export function validateUserName(user: string): void {
  validateUser(user, "");
}

/**
 * The first schedule field, in FIELD_NAMES' order, that is not text or is
 * blank; null when none is. Each read by name (see hasSchedule), and no
 * array or callback: a reload asks it of every job it adds.
 */
function blankField(job: ScheduleFields): FieldName | null {
  if (isBlank(job.second)) return "second";
  if (isBlank(job.minute)) return "minute";
  if (isBlank(job.hour)) return "hour";
  if (isBlank(job.day)) return "day";
  if (isBlank(job.month)) return "month";
  if (isBlank(job.day_of_week)) return "day_of_week";
  return null;
}

function isBlank(value: unknown): boolean {
  return typeof value !== "string" || value.trim() === "";
}

/**
 * Text fields that are no text. A lone UTF-16 surrogate (`"\ud800"` in
 * JSON) is no character: a database stores U+FFFD instead, so the job
 * would differ from what was given, at every apply of the same file. Nor
 * are bytes a row's mapper could not read as UTF-8 (see below).
 */
function refuseUnreadableText(job: Job): void {
  // for-in, not JOB_FIELDS by index: V8 reads a field named by for-in from
  // the object's own layout, where a name from a list is looked up (10,000
  // jobs of a reload: 4 ms against 10).
  for (const field in job) {
    const value = job[field as keyof Job];
    if (typeof value === "string") {
      // An env column as text is named by validateEnv, with the row's fix.
      if (!value.isWellFormed() && field !== "env") loneSurrogate(field);
    } else if (value instanceof Uint8Array) {
      // A BLOB a row written by hand holds in SQLite: the row mapper reads one of
      // UTF-8 text as that text, and keeps other bytes, which are no text to run.
      throw new ValidationError(
        field,
        `${field}: is a BLOB whose bytes are not UTF-8 text; fix the row, writing it as text (UPDATE jm_jobs SET ${field} = '…' WHERE id = '${job.id}')`,
      );
    }
  }
}

function loneSurrogate(field: string): never {
  throw new ValidationError(
    field,
    `${field}: holds a lone UTF-16 surrogate (an escape such as \\ud800 without its pair), which is no character and cannot be stored; remove it`,
  );
}

/**
 * The env column: a JSON object of NAME: "value" strings, no value with a
 * NUL byte. Its names walked by index: entry pairs, their destructuring and
 * callbacks cost a reload hundreds of bytes of garbage per job.
 */
function validateEnv(env: unknown, id: string): void {
  if (!isEnv(env)) {
    // Names only: the message reaches logs and read tokens, and a value may be a password.
    const names = Object.keys(envRepaired(env));
    throw new ValidationError(
      "env",
      `${envProblem(env)} (fix the row, e.g. UPDATE jm_jobs SET env = '${
        JSON.stringify(Object.fromEntries(names.map((name) => [name, "…"])))
      }' WHERE id = '${id}'${names.length === 0 ? "" : `, each "…" the variable's value as text`})`,
    );
  }
  const names = Object.keys(env);
  for (let i = 0; i < names.length; i++) {
    if (!names[i].isWellFormed() || !env[names[i]].isWellFormed()) loneSurrogate("env");
    if (RESERVED_ENV.includes(names[i])) {
      throw new ValidationError(
        "env",
        `env: ${
          names[i]
        } is set by jobsmanager for every run and cannot be overridden; remove it (fix the row, e.g. UPDATE jm_jobs SET env = JSON_REMOVE(env, '$.${
          names[i]
        }') WHERE id = '${id}')`,
      );
    }
    if (env[names[i]].includes("\0")) {
      throw new ValidationError(
        "env",
        `env: ${names[i]} contains a NUL byte, which no environment variable can hold`,
      );
    }
  }
}

function isEnv(env: unknown): env is Record<string, string> {
  if (typeof env !== "object" || env === null || Array.isArray(env)) return false;
  const names = Object.keys(env);
  for (let i = 0; i < names.length; i++) {
    const value: unknown = (env as Record<string, unknown>)[names[i]];
    if (!ENV_NAME.test(names[i]) || typeof value !== "string") return false;
  }
  return true;
}

/**
 * What is wrong with `env` as a job's environment (a row's column, an
 * entry of a jobs file), naming the variable at fault and how to write it;
 * null when it is an object of NAME: "value" strings.
 */
export function envProblem(env: unknown): string | null {
  // No value is quoted: a message reaches logs and read tokens, and a value may be a password.
  if (typeof env !== "object" || env === null || Array.isArray(env)) {
    return `env: is ${kindOf(env)}, not an object of NAME: "value" strings`;
  }
  for (const [name, value] of Object.entries(env)) {
    if (!ENV_NAME.test(name)) {
      return `env: ${
        JSON.stringify(name)
      } is not a variable name (A-Z a-z 0-9 _, not starting with a digit)`;
    }
    if (typeof value === "number" || typeof value === "boolean") {
      return `env.${name}: is a ${typeof value}; quote it ("…"): a variable's value is text`;
    }
    if (typeof value !== "string") {
      return `env.${name}: is ${
        kindOf(value)
      }, not text; give a string ("" for empty), or leave ${name} out`;
    }
  }
  return null;
}

/** What kind of JSON value `value` is, for a message that must not show it: `a list`, `text`. */
function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "string") return "text";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

/** What is usable of a broken env: its numbers and booleans as text, the rest left out. */
function envRepaired(env: unknown): Record<string, string> {
  if (typeof env !== "object" || env === null || Array.isArray(env)) return {};
  return Object.fromEntries(
    Object.entries(env).flatMap(([name, value]) =>
      !ENV_NAME.test(name)
        ? []
        : typeof value === "string" || typeof value === "number" || typeof value === "boolean"
        ? [[name, String(value)]]
        : []
    ),
  );
}

/**
 * A numeric column, as a row written by hand may hold it. Given its value,
 * not the job and the name: a reload checks six of these for each of
 * thousands of jobs, and a row's field read by a name that varies is slow.
 */
function checkNumber(
  field:
    | "timeout"
    | "max_instances"
    | "misfire_grace_time"
    | "retries"
    | "retry_delay"
    | "retry_max_delay",
  v: unknown,
  min: number,
  max: number,
  nullable: boolean,
): void {
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

/** The latest instant a Date holds: ms since the epoch. */
const MAX_INSTANT = 8_640_000_000_000_000;

/**
 * A job's time column, which a row written by hand may hold out of range
 * (9223372036854775000; a time in ns): the fix given sets it to the other
 * one when that one is a time.
 */
function checkInstant(
  field: "created_at" | "updated_at",
  v: unknown,
  id: string,
  other: unknown,
): void {
  if (typeof v === "number" && wholeNumber(v, 0, MAX_INSTANT) !== null) return;
  const otherField = field === "created_at" ? "updated_at" : "created_at";
  const fix = typeof other === "number" && wholeNumber(other, 0, MAX_INSTANT) !== null
    ? otherField
    : "0";
  throw new ValidationError(
    field,
    `${field}: ${JSON.stringify(v)} is not a time (allowed: ms since the epoch, ${
      wholeNumberRule(0, MAX_INSTANT)
    }); fix the row, e.g. UPDATE jm_jobs SET ${field} = ${fix} WHERE id = '${id}'`,
  );
}

/**
 * Whether each `day month day_of_week` falls on some date, as asked: a
 * catalogue shares a few, and every reload and `job list` asks it of each
 * job (a croner search, tens of µs). Bounded: cleared when full.
 */
const FALLS_ON_A_DATE = new Map<string, boolean>();

/**
 * A schedule that never falls on a date (day 31 of month 2), which a row
 * written by hand may hold: checkEverFires refuses it when it is written,
 * and the service would keep it, silent, never firing.
 */
function checkFallsOnSomeDate(job: ScheduleFields): void {
  const key = `${job.day} ${job.month} ${job.day_of_week}`;
  let falls = FALLS_ON_A_DATE.get(key);
  if (falls === undefined) {
    falls = everFires(job);
    if (FALLS_ON_A_DATE.size >= 10_000) FALLS_ON_A_DATE.clear();
    FALLS_ON_A_DATE.set(key, falls);
  }
  if (!falls) checkEverFires(job);
}

/**
 * A flag column: a row mapper makes 0 and 1 true and false, and keeps
 * what else a row written by hand holds ('false', '' in SQLite) as it is,
 * not guessed at: `'false'` read as a number is not 0.
 */
function checkFlag(field: "enabled" | "coalesce", v: unknown, id: string, nullable: boolean): void {
  if (typeof v === "boolean" || (v === null && nullable)) return;
  const meant = v === "false" ? "0" : v === "true" ? "1" : null;
  throw new ValidationError(
    field,
    `${field}: ${JSON.stringify(v)} is not 0 or 1${
      nullable ? ", or NULL for the service default" : ""
    }; fix the row, e.g. UPDATE jm_jobs SET ${field} = ${meant ?? "1"} WHERE id = '${id}'${
      meant === null ? " (1 for true, 0 for false)" : ""
    }`,
  );
}

/** The zone a job fires in: its own, else the service default. */
export function zoneOf(job: Job, defaultZone: string): string {
  return job.timezone ?? defaultZone;
}

/** The next `n` fires of a job after `from` (none when the schedule never fires again). */
export function nextFires(job: Job, defaultZone: string, from: Date, n: number): Date[] {
  if (!hasSchedule(job)) return [];
  return compileSchedule(job, zoneOf(job, defaultZone)).nextRuns(n, from);
}

/** The six schedule fields as one line, `second minute hour day month day_of_week`. */
export function scheduleText(job: ScheduleFields): string {
  return FIELD_NAMES.map((f) => job[f]).join(" ");
}

/** True when two jobs differ in anything but their timestamps. */
export function sameDefinition(a: Job, b: Job): boolean {
  // Each field by name, no loop: a reload compares every job it reads with
  // the one it has, while its code is cold, and a field read by a name
  // that varies is slow. tests/job_test.ts changes every field of JOB_FIELDS.
  return a.id === b.id && a.command === b.command && a.second === b.second &&
    a.minute === b.minute && a.hour === b.hour && a.day === b.day && a.month === b.month &&
    a.day_of_week === b.day_of_week && a.timezone === b.timezone && a.timeout === b.timeout &&
    a.enabled === b.enabled && a.max_instances === b.max_instances && a.coalesce === b.coalesce &&
    a.misfire_grace_time === b.misfire_grace_time && a.cwd === b.cwd &&
    a.description === b.description && a.retries === b.retries &&
    a.retry_delay === b.retry_delay && a.retry_max_delay === b.retry_max_delay &&
    a.retry_on === b.retry_on && a.retry_overlap === b.retry_overlap &&
    a.after_job === b.after_job && a.after_outcome === b.after_outcome &&
    a.on_failure === b.on_failure && a.on_failure_url === b.on_failure_url &&
    a.on_recovery === b.on_recovery && a.on_recovery_url === b.on_recovery_url &&
    a.on_success === b.on_success && a.on_success_url === b.on_success_url &&
    a.alert_after === b.alert_after && a.user === b.user && sameEnv(a.env ?? {}, b.env ?? {});
}

/** The same names with the same values, in any order (by index: see sameDefinition). */
function sameEnv(a: Record<string, string>, b: Record<string, string>): boolean {
  const names = Object.keys(a);
  if (names.length !== Object.keys(b).length) return false;
  for (let i = 0; i < names.length; i++) {
    if (!Object.hasOwn(b, names[i]) || b[names[i]] !== a[names[i]]) return false;
  }
  return true;
}

/** How a job's run is retried, what follows it, and who is told (no import source says any). */
export const RUN_POLICY_FIELDS = [
  "retries",
  "retry_delay",
  "retry_max_delay",
  "retry_on",
  "retry_overlap",
  "after_job",
  "after_outcome",
  // Notifications (issue 13, migration 7).
  ...NOTIFY_FIELDS,
] as const satisfies readonly (keyof Job)[];

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
  ...RUN_POLICY_FIELDS,
  // Migration 16.
  "user",
] as const satisfies readonly (keyof Job)[];
