/**
 * The original JobsManager's jobs: rows of its APScheduler 3 job table
 * (`id`, `next_run_time`, a pickled `job_state`) as jobsmanager jobs.
 *
 * The original added every job through `Task.add_job(Job(...))`: a
 * CronTrigger with all six fields, `Task.run_command` called with (logger,
 * command, timeout), and coalesce, max_instances and misfire_grace_time
 * taken from its global.json. Its quirks are reported per job, not copied.
 */
import { ValidationError } from "../../errors.ts";
import { buildJob, type JobOptions, RUN_POLICY_FIELDS } from "../../domain/job.ts";
import { FIELD_NAMES, type FieldName, MONTH_NAMES, WEEKDAY_NAMES } from "../../cron/grammar.ts";
import { describe, PickleError, type PyDict, type PyValue, unpickle } from "./pickle.ts";
import { type Candidate, descriptionOf, type JobField } from "./plan.ts";
import { MAX_DESCRIPTION } from "../../domain/job.ts";
import type { LegacyRow } from "../../store/legacy.ts";
import { type DefaultZone, zoneInWords } from "../zone.ts";

/** What the notes compare the old jobs with: the service's defaults, as far as they are known. */
export interface ServiceDefaults {
  /** The zone of jobs that name none, resolved as `job list` resolves it. */
  zone: DefaultZone;
  /** `jobsmanager.coalesce` in the config this command read (services do not report theirs). */
  coalesce: boolean;
}

/** Seconds jobsmanager allows at most for a timeout or a grace time: one year. */
const MAX_SECONDS = 31_536_000;
/** A grace time for APScheduler's None (no limit): the most allowed. */
const UNLIMITED_GRACE = MAX_SECONDS;

/** A job state that does not have the shape the original wrote; the message says where. */
class ShapeError extends Error {}

function isDict(value: PyValue | undefined): value is PyDict {
  return value instanceof Map;
}

function field(dict: PyDict, key: string, where: string): PyValue {
  if (!dict.has(key)) throw new ShapeError(`${where} has no '${key}'`);
  return dict.get(key)!;
}

function dictOf(value: PyValue, where: string): PyDict {
  if (!isDict(value)) throw new ShapeError(`${where} is ${describe(value)}, not a dict`);
  return value;
}

function stateOf(value: PyValue, cls: string | RegExp, where: string): [string, PyDict] {
  const ok = typeof value === "object" && value !== null && "kind" in value &&
    value.kind === "object" &&
    (typeof cls === "string" ? value.class === cls : cls.test(value.class));
  if (!ok) {
    const expected = typeof cls === "string" ? cls : "an APScheduler trigger, field or expression";
    throw new ShapeError(`${where} is ${describe(value)}, not ${expected}`);
  }
  const object = value as { class: string; state: PyDict };
  return [object.class, object.state];
}

function int(value: PyValue, where: string): number {
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw new ShapeError(`${where} is ${describe(value)}, not a whole number`);
  }
  return value;
}

function optionalInt(value: PyValue, where: string): number | null {
  return value === null ? null : int(value, where);
}

/** One CronTrigger expression as APScheduler 3 prints it (its `__str__`). */
function expressionText(value: PyValue, where: string): string {
  const [cls, state] = stateOf(value, /^apscheduler\.triggers\.cron\.expressions\./, where);
  const name = cls.slice(cls.lastIndexOf(".") + 1);
  const step = optionalInt(state.get("step") ?? null, `${where}.step`);
  const stepText = step ? `/${step}` : "";
  if (name === "AllExpression") return `*${stepText}`;
  if (name === "LastDayOfMonthExpression") return "last";
  if (name === "WeekdayPositionExpression") {
    const options = ["1st", "2nd", "3rd", "4th", "5th", "last"];
    const option = options[int(field(state, "option_num", where), `${where}.option_num`)];
    const weekday = WEEKDAY_NAMES[int(field(state, "weekday", where), `${where}.weekday`)];
    if (option === undefined || weekday === undefined) {
      throw new ShapeError(`${where} names no weekday position`);
    }
    return `${option} ${weekday}`;
  }
  const first = int(field(state, "first", where), `${where}.first`);
  const last = optionalInt(field(state, "last", where), `${where}.last`);
  const names = name === "MonthRangeExpression"
    ? (n: number) => MONTH_NAMES[n - 1]
    : name === "WeekdayRangeExpression"
    ? (n: number) => WEEKDAY_NAMES[n]
    : name === "RangeExpression"
    ? String
    : null;
  if (names === null) throw new ShapeError(`${where} is an unknown expression ${name}`);
  const range = last !== null && last !== first ? `${names(first)}-${names(last)}` : names(first);
  return `${range}${stepText}`;
}

/** The trigger's fields by name (`year` … `second`), as text. */
function triggerFields(trigger: PyDict): Map<string, string> {
  const fields = field(trigger, "fields", "trigger");
  if (!Array.isArray(fields)) throw new ShapeError("trigger.fields is not a list");
  const out = new Map<string, string>();
  (fields as PyValue[]).forEach((value, i) => {
    const where = `trigger.fields[${i}]`;
    const [, state] = stateOf(value, /^apscheduler\.triggers\.cron\.fields\./, where);
    const name = field(state, "name", where);
    const expressions = field(state, "expressions", where);
    if (typeof name !== "string" || !Array.isArray(expressions)) {
      throw new ShapeError(`${where} has no name or no expressions`);
    }
    out.set(
      name,
      (expressions as PyValue[]).map((e, j) => expressionText(e, `${where}.expressions[${j}]`))
        .join(","),
    );
  });
  return out;
}

function zoneName(value: PyValue, where: string): string {
  if (typeof value === "object" && value !== null && "kind" in value && value.kind === "zone") {
    return value.name;
  }
  throw new ShapeError(`${where} is ${describe(value)}, not a time zone`);
}

/** The original's trigger: six fields and a zone, or a ShapeError saying why not. */
function cronTrigger(
  value: PyValue,
): { schedule: Record<FieldName, string>; zone: string; jitter: PyValue } {
  const [cls, trigger] = stateOf(value, /^apscheduler\.triggers\./, "trigger");
  if (cls !== "apscheduler.triggers.cron.CronTrigger") {
    throw new ShapeError(
      `its trigger is a ${
        cls.slice(cls.lastIndexOf(".") + 1)
      }, which has no cron schedule; add it by hand with \`jobsmanager job add\``,
    );
  }
  for (const key of ["start_date", "end_date"]) {
    const date = trigger.get(key) ?? null;
    if (date !== null) {
      const local = typeof date === "object" && "local" in date ? date.local : describe(date);
      throw new ShapeError(
        `its trigger has a ${key} (${local}), and jobsmanager schedules have none; add it by hand with \`jobsmanager job add\` and enable or remove it when due`,
      );
    }
  }
  const fields = triggerFields(trigger);
  for (const extra of ["year", "week"]) {
    const text = fields.get(extra) ?? "*";
    if (text !== "*") {
      throw new ShapeError(
        `its trigger restricts ${extra} to '${text}', which jobsmanager schedules cannot (they have no ${extra} field)`,
      );
    }
  }
  const schedule = Object.fromEntries(FIELD_NAMES.map((name) => {
    const text = fields.get(name);
    if (text === undefined) throw new ShapeError(`trigger.fields has no ${name}`);
    return [name, text];
  })) as Record<FieldName, string>;
  const zone = zoneName(field(trigger, "timezone", "trigger"), "trigger.timezone");
  return { schedule, zone, jitter: trigger.get("jitter") ?? null };
}

/**
 * Why a trigger in a fixed offset of no whole hours (`UTC+05:30`, from a
 * `datetime.timezone`) is not imported: a job names an IANA zone, and none
 * is an offset of minutes (Etc/GMT-5 is whole hours). The fix names the
 * zones that keep that offset all of `now`'s year, which fire as it did.
 */
function fixedOffset(zone: string, now: number): string {
  const offset = `GMT${zone.slice(3)}`;
  const year = new Date(now).getUTCFullYear();
  const dates = [Date.UTC(year, 0, 1), Date.UTC(year, 6, 1)];
  const keep = Intl.supportedValuesOf("timeZone").filter((name) => {
    const format = new Intl.DateTimeFormat("en-US", { timeZone: name, timeZoneName: "longOffset" });
    return dates.every((date) =>
      format.formatToParts(date).find((p) => p.type === "timeZoneName")?.value === offset
    );
  });
  const which = keep.length > 0
    ? `a zone that keeps ${zone} all year: ${keep.join(", ")}`
    : `the zone whose clock ${zone} followed (mind its daylight saving time: the offset had none)`;
  return `its trigger's zone is the fixed offset ${zone} (a datetime.timezone), and a job names an IANA zone, none of which is an offset of minutes; add it by hand with \`jobsmanager job add\` and --timezone ${which}`;
}

/** The original's job state as `job add` options, with the notes the plan shows. */
function optionsOf(
  row: LegacyRow,
  state: PyDict,
  defaults: ServiceDefaults,
  now: number,
): { options: JobOptions; notes: string[] } {
  const version = field(state, "version", "job_state");
  if (version !== 1) throw new ShapeError(`job_state version is ${describe(version)}, not 1`);
  const func = field(state, "func", "job_state");
  const args = field(state, "args", "job_state");
  if (typeof func !== "string" || !/(^|[.:])Task\.run_command$/.test(func)) {
    throw new ShapeError(
      `it calls the Python function ${
        describe(func)
      }, not the original's Task.run_command; jobsmanager runs shell commands only`,
    );
  }
  const kwargs = field(state, "kwargs", "job_state");
  if (!Array.isArray(args) || args.length !== 3 || (isDict(kwargs) && kwargs.size > 0)) {
    throw new ShapeError("its arguments are not the original's (logger, command, timeout)");
  }
  const [, command, timeout] = args as PyValue[];
  if (typeof command !== "string") throw new ShapeError("its command is not a string");
  const notes: string[] = [];
  const { schedule, zone, jitter } = cronTrigger(field(state, "trigger", "job_state"));
  if (/^UTC[+-]\d\d:\d\d$/.test(zone)) throw new ShapeError(fixedOffset(zone, now));

  if (zone !== defaults.zone.name) {
    notes.push(
      `fires in ${zone}, as before: the original gave each trigger the host's zone when the job was added, whatever its jobsmanager.timezone said (jobs that name no zone fire in ${
        zoneInWords(defaults.zone)
      })`,
    );
  }
  if (schedule.second === "*") {
    notes.push(
      "fires every second of each matching minute, as before (second '*', the original Job's default); if once a minute was meant: `jobsmanager job update ID --second 0`",
    );
  }
  // coalesce came from the original's global.json, which this service reads
  // right: the job follows jobsmanager.coalesce instead of the misread value.
  // Services do not report their coalesce: the note says whose config it read.
  const coalesce = field(state, "coalesce", "job_state");
  const configured =
    `${defaults.coalesce} in the config this command read; the service's own config decides`;
  if (coalesce === true && !defaults.coalesce) {
    notes.push(
      `late fires: the original ran one for several (Python reads its global.json coalesce "False" as true); this job follows the service's jobsmanager.coalesce (${configured}), so each late fire within the grace time runs; \`--coalesce\` keeps the old way`,
    );
  } else if (coalesce === false && defaults.coalesce) {
    notes.push(
      `late fires: the original ran each; this job follows the service's jobsmanager.coalesce (${configured}) and runs one for several; \`--no-coalesce\` keeps the old way`,
    );
  }
  const grace = field(state, "misfire_grace_time", "job_state");
  let misfire: number;
  if (grace === null) {
    misfire = UNLIMITED_GRACE;
    notes.push(
      `misfire_grace_time: the original ran late fires however late; imported as ${UNLIMITED_GRACE} s (one year, the most jobsmanager allows)`,
    );
  } else if (typeof grace === "number" && grace >= 0) {
    misfire = Math.ceil(grace);
    if (misfire !== grace) notes.push(`misfire_grace_time: ${grace} s rounded up to ${misfire} s`);
  } else {
    throw new ShapeError(`its misfire_grace_time is ${describe(grace)}`);
  }
  let seconds = 0;
  if (timeout === null) {
    notes.push("timeout: the original had none; imported as 0 (never killed)");
  } else if (typeof timeout === "number" && timeout >= 0) {
    seconds = Math.ceil(timeout);
    if (seconds !== timeout) notes.push(`timeout: ${timeout} s rounded up to ${seconds} s`);
  } else if (typeof timeout === "bigint" || typeof timeout === "number") {
    // A number all the same, past what a double holds exactly or below 0.
    throw new ShapeError(
      `its timeout is ${
        describe(timeout)
      }, out of range: jobsmanager allows a whole number of seconds from 0 to ${MAX_SECONDS}`,
    );
  } else {
    throw new ShapeError(`its timeout is ${describe(timeout)}, not a number of seconds`);
  }
  const paused = row.next_run_time === null;
  if (paused) notes.push("paused in the original (no next_run_time): imported disabled");
  if (typeof jitter === "number" && jitter > 0) {
    notes.push(`jitter of ${jitter} s dropped: jobsmanager fires on the scheduled instant`);
  }
  const name = state.get("name");
  let description: string | undefined;
  if (typeof name === "string" && name !== command && name !== row.id) {
    const { description: text, cut } = descriptionOf(name);
    description = text;
    if (cut !== null) {
      notes.push(
        `its name is ${cut} characters long: the description keeps the first ${
          MAX_DESCRIPTION - 1
        } and an ellipsis (${MAX_DESCRIPTION} is the most a description holds)`,
      );
    }
  }
  return {
    options: {
      command,
      schedule,
      timezone: zone,
      timeout: String(seconds),
      enabled: !paused,
      max_instances: String(int(field(state, "max_instances", "job_state"), "max_instances")),
      misfire_grace_time: String(misfire),
      description,
    },
    notes,
  };
}

/**
 * The fields the original's job state has no word for: a job imported
 * again keeps what was set since (its environment, its retries).
 */
const APSCHEDULER_SILENT: readonly JobField[] = ["env", "cwd", "user", ...RUN_POLICY_FIELDS];

/** One row of the original's table as a candidate job (or why it cannot be one). */
export function candidateFromRow(
  row: LegacyRow,
  defaults: ServiceDefaults,
  now: number,
): Candidate {
  const source = `row '${row.id}'`;
  const refused = (problem: string): Candidate => ({
    source,
    id: row.id,
    job: null,
    notes: [],
    problem,
  });
  if (row.job_state === null) {
    return refused(`its job_state holds ${row.held}, not a pickled job state (a BLOB)`);
  }
  let state: PyValue;
  try {
    state = unpickle(row.job_state);
  } catch (error) {
    if (!(error instanceof PickleError)) throw error;
    return refused(`its job_state cannot be decoded: ${error.message}`);
  }
  try {
    const { options, notes } = optionsOf(row, dictOf(state, "job_state"), defaults, now);
    return {
      source,
      id: row.id,
      job: buildJob(row.id, options, null, now),
      notes,
      problem: null,
      keeps: APSCHEDULER_SILENT,
    };
  } catch (error) {
    if (error instanceof ShapeError) return refused(error.message);
    if (error instanceof ValidationError) return refused(error.message);
    throw error;
  }
}
