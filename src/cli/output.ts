/**
 * Human-readable rendering: tables for lists, key/value blocks for one job
 * or run, log lines. `--json` output never comes through here.
 */
import type { JobDetails, JobListing } from "../app/jobs.ts";
import type { DefaultZone, ZoneSource } from "../app/zone.ts";
import { envProblem, hasSchedule, type Job } from "../domain/job.ts";
import { NOTIFY_FIELDS, urlForShow } from "../domain/notify.ts";
import { FIELD_NAMES } from "../cron/grammar.ts";
import type { LogRow } from "../domain/log_row.ts";
import type { Node } from "../domain/node.ts";
import { WATCHED_POLL_MS } from "../daemon/poll_timing.ts";
import type { Run } from "../domain/run.ts";
import { readableSchedule } from "../cron/fields.ts";
import { formatInZone, formatUtc } from "../domain/time.ts";
import { toJson } from "../domain/json.ts";
import { shellWord } from "../domain/shell.ts";
import { printable, printableLine } from "../domain/printable.ts";

/** The narrowest a cut last column gets, however narrow the terminal. */
const MIN_LAST_COLUMN = 12;

/** How a table fits a terminal: its width, and the columns it may hide, first to go first. */
export interface Fit {
  width: number | null;
  hide?: string[];
}

/**
 * A borderless table with a header row, like `ps` or `kubectl get`. Given
 * a width, the last column (free text: a command, a note) is cut with `…`
 * so each line fits; when even the shortest cut leaves too little room, the
 * columns of `hide` are left out, in that order, and a last line says which.
 * Hand-made: cli-table3 took 10 s for the 10,000 rows of a big `job list`.
 */
export function table(head: string[], rows: string[][], fit: Fit = { width: null }): string {
  const natural = head.map((h) => h.length);
  for (const row of rows) {
    for (let i = 0; i < natural.length; i++) {
      if (row[i].length > natural[i]) natural[i] = row[i].length;
    }
  }
  const last = head.length - 1;
  const fixed = (shown: number[]) =>
    shown.filter((i) => i !== last).reduce((sum, i) => sum + natural[i] + 2, 0);
  let shown = head.map((_, i) => i);
  const hidden: string[] = [];
  for (const name of fit.hide ?? []) {
    if (fit.width === null || fixed(shown) + MIN_LAST_COLUMN <= fit.width) break;
    shown = shown.filter((i) => head[i] !== name);
    hidden.push(name);
  }
  const room = fit.width === null ? Infinity : Math.max(fit.width - fixed(shown), MIN_LAST_COLUMN);
  // Each line joined from one reused array of its cells and blanks: a
  // padded string for each cell and an array for each line made 10,000
  // rows cost 60-90 ms, most of it collecting them.
  const parts: string[] = [];
  const line = (cells: string[]) => {
    // Every line has as many parts: each is written over, none is added.
    let k = 0;
    for (const i of shown) {
      if (k > 0) parts[k++] = "  ";
      if (i === last) {
        parts[k++] = shorten(cells[i], room);
      } else {
        parts[k++] = cells[i];
        parts[k++] = spaces(natural[i] - cells[i].length);
      }
    }
    return parts.join("").trimEnd();
  };
  const lines = [line(head)];
  for (const row of rows) lines.push(line(row));
  if (hidden.length > 0) {
    lines.push(
      `(${hidden.join(", ")} left out to fit ${fit.width} columns; --json has everything)`,
    );
  }
  return lines.join("\n");
}

const blanks: string[] = [];

/** `n` spaces, made once for each `n`. */
function spaces(n: number): string {
  return blanks[n] ??= " ".repeat(n);
}

function shorten(text: string, width: number): string {
  return text.length > width ? `${text.slice(0, width - 1)}…` : text;
}

/** Text on one line, as a table cell must be. */
function oneLine(text: string): string {
  // Most commands have no blank but single spaces: testing first makes no new string.
  return /[^\S ]|\s\s/.test(text) ? text.replace(/\s+/g, " ") : text;
}

// The CLI prints text from the database or a job as the dashboard shows it.
export { printable };

const ZONE_SOURCES: Record<ZoneSource, string> = {
  configured: "configured zone",
  service: "service zone",
  local: "local zone",
};

/** The default zone and where it comes from: `service zone, UTC`. */
export function defaultZoneText(zone: DefaultZone): string {
  return `${ZONE_SOURCES[zone.source]}, ${zone.name}`;
}

/** A job's zone as a cell: its own (a row written by hand may hold any text), or `(service zone, UTC)`. */
export function zoneCell(job: Job, zone: DefaultZone): string {
  return printableLine(job.timezone ?? `(${defaultZoneText(zone)})`);
}

/** ` (service zone, UTC)` after a heading of fires, for a job without a zone of its own. */
export function zoneNote(job: Job, zone: DefaultZone): string {
  return job.timezone === null ? ` (${defaultZoneText(zone)})` : "";
}

export function jobsTable(
  listings: JobListing[],
  defaultZone: DefaultZone,
  width: number | null,
): string {
  if (listings.length === 0) {
    return "no jobs (add one with `jobsmanager job add ID --command CMD --cron '…'`)";
  }
  // Thousands of jobs share far fewer schedules, timeouts and fire times:
  // each cell of those is written once.
  const schedule = scheduleCells();
  const fires = new Map<string, Map<number, string>>();
  const fire = (next: Date, zone: string) => {
    let inZone = fires.get(zone);
    if (inZone === undefined) fires.set(zone, inZone = new Map());
    let cell = inZone.get(next.getTime());
    if (cell === undefined) inZone.set(next.getTime(), cell = formatInZone(next, zone));
    return cell;
  };
  const timeouts = new Map<number, string>();
  const timeout = (seconds: number) => {
    let cell = timeouts.get(seconds);
    if (cell === undefined) timeouts.set(seconds, cell = seconds === 0 ? "none" : `${seconds}s`);
    return cell;
  };
  const ownZone = printableLine(`(${defaultZoneText(defaultZone)})`);
  return table(
    ["ID", "SCHEDULE (s m h dom mon dow)", "ZONE", "ENABLED", "TIMEOUT", "NEXT FIRE", "COMMAND"],
    listings.map(({ job, zone, next, invalid, link }) => [
      printable(job.id),
      link === null ? schedule(job) : `${schedule(job)} (no job '${printable(job.after_job!)}')`,
      job.timezone === null ? ownZone : printableLine(job.timezone),
      job.enabled ? "yes" : "no",
      timeout(job.timeout),
      invalid !== null ? printable(`INVALID: ${invalid}`) : next ? fire(next, zone) : "-",
      printable(oneLine(job.command)),
    ]),
    { width, hide: ["TIMEOUT", "ENABLED", "ZONE"] },
  );
}

/** What a job's schedule cell shows: its fields, and the job it follows. */
const SCHEDULE_KEYS = [...FIELD_NAMES, "after_job", "after_outcome"] as const;

/**
 * A job's schedule cell, made once for each schedule: found by its fields
 * one Map at a time, as a key built of them for each of 10,000 rows was
 * 5 MB of garbage.
 */
function scheduleCells(): (job: Job) => string {
  const root = new Map<string | null, unknown>();
  return (job) => {
    let node = root;
    for (let i = 0; i < SCHEDULE_KEYS.length - 1; i++) {
      const key = job[SCHEDULE_KEYS[i]];
      let next = node.get(key) as Map<string | null, unknown> | undefined;
      if (next === undefined) node.set(key, next = new Map());
      node = next;
    }
    const key = job[SCHEDULE_KEYS[SCHEDULE_KEYS.length - 1]];
    let cell = node.get(key) as string | undefined;
    if (cell === undefined) node.set(key, cell = printableLine(scheduleCell(job)));
    return cell;
  };
}

/**
 * What a write or a reload means for the services on `database`: which
 * live ones apply it, and by when, or, with none, that nothing does until
 * one runs. A service told of the write (its machine's: SQLite's file, a
 * MySQL change notice) applies it within half a second, and before its
 * next fire; else its timed poll does,
 * which a lone service that is told of writes makes only every 5 s, or
 * reload_interval when longer (poll_timing.ts), and one beside others
 * every reload_interval.
 */
export function serviceLine(live: Node[], database: string): string {
  if (live.length === 0) {
    return `no live service uses ${database}, so nothing applies this yet: start one with \`jobsmanager serve\` on this database, or point this command at the service's database with --database or --config`;
  }
  const names = live.map((n) => n.id).join(", ");
  return live.length === 1
    ? `the live service on this database (${names}) applies it within half a second if told of it (a write on its machine), else within ${
      WATCHED_POLL_MS / 1000
    } s, or its reload_interval if longer`
    : `the ${live.length} live services on this database (${names}) apply it within half a second if told of it (a write on their machine), else within their reload_interval`;
}

/** `text` about a write, then, when it wrote a marker, who applies it. */
export function withServiceLine(
  text: string,
  markerId: number | null,
  live: Node[],
  database: string,
): string {
  return markerId === null ? text : `${text}\n${serviceLine(live, database)}`;
}

export function fireLines(fires: Date[], zone: string): string {
  if (fires.length === 0) return "  (the schedule never fires again)";
  return fires.map((f) => `  ${formatInZone(f, zone)}  ${zone}   ${formatUtc(f)}`).join("\n");
}

/** A row's instant; one written by hand that is none, as stored. */
function storedInstant(at: unknown): string {
  const instant = new Date(typeof at === "number" ? at : NaN);
  return Number.isNaN(instant.getTime())
    ? printable(`${JSON.stringify(at)} (not a time)`)
    : formatUtc(instant);
}

export function jobDetails(
  { job, zone, next, runs, invalid, link }: JobDetails,
  defaultZone: DefaultZone,
  width: number | null,
): string {
  const orDefault = <T>(v: T | null, what: string) =>
    v === null ? `(service default: ${what})` : String(v);
  const rows: [string, string][] = [
    ["id", printable(job.id)],
    ["command", printable(job.command)],
    [
      "schedule",
      hasSchedule(job)
        ? `${printableLine(readableSchedule(job))}   (second minute hour day month day_of_week)`
        : "none of its own",
    ],
    ...retryRows(job, link),
    ["timezone", zoneCell(job, defaultZone)],
    ["enabled", job.enabled ? "yes" : "no"],
    ["timeout", job.timeout === 0 ? "none" : `${job.timeout} s`],
    ["max_instances", orDefault(job.max_instances, "jobsmanager.max_instances")],
    ["coalesce", orDefault(job.coalesce, "jobsmanager.coalesce")],
    ["misfire_grace_time", orDefault(job.misfire_grace_time, "jobsmanager.misfire_grace_time")],
    [
      "env",
      // A column broken by hand is shown as it is stored; INVALID says what is wrong.
      envProblem(job.env) !== null
        ? printable(`${JSON.stringify(job.env)} (as stored)`)
        : Object.keys(job.env).length === 0
        ? "-"
        : printable(Object.entries(job.env).map(([k, v]) => `${k}=${shellWord(v)}`).join(" ")),
    ],
    ["user", printable(job.user ?? "(the service's own)")],
    [
      "cwd",
      printable(
        job.cwd ?? (job.user === null ? "(service working directory)" : "(the user's home)"),
      ),
    ],
    ["description", printableLine(job.description ?? "-")],
    // Notifications (issue 13): only those set; URLs without their secrets.
    ...NOTIFY_FIELDS.filter((f) => f !== "alert_after").flatMap((f): [string, string][] =>
      job[f] === null ? [] : [[f, printable(f.endsWith("_url") ? urlForShow(job[f]!) : job[f]!)]]
    ),
    ...(job.alert_after === null ? [] : [["alert_after", `${job.alert_after} s`]] as [
      string,
      string,
    ][]),
    ["created", storedInstant(job.created_at)],
    ["updated", storedInstant(job.updated_at)],
    ...(invalid === null ? [] : [[
      "INVALID",
      // A link that closes a cycle leaves the job's own fires, which follow.
      printable(next.length === 0 ? `${invalid} (the service skips it)` : invalid),
    ] as [string, string]]),
  ];
  const keyWidth = Math.max(...rows.map(([k]) => k.length));
  const lines = rows.map(([k, v]) => `${k.padEnd(keyWidth)}  ${v}`);
  lines.push(
    `next fires${zoneNote(job, defaultZone)}${job.enabled ? "" : " (if enabled)"}:`,
    hasSchedule(job) ? fireLines(next, zone) : `  ${printable(followsText(job))}`,
    "last runs:",
    runsTable(runs, width, () => job.retries + 1),
  );
  return lines.join("\n");
}

function duration(run: Run): string {
  if (run.started_at === null || run.finished_at === null) return "-";
  const ms = run.finished_at - run.started_at;
  return ms < 10_000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** A job's schedule in a listing: its fields, and which job it follows. */
function scheduleCell(job: Job): string {
  if (!hasSchedule(job)) return followsText(job);
  const own = readableSchedule(job);
  return job.after_job === null ? own : `${own}; and ${followsText(job)}`;
}

/** `after 'backup' ends: success`, for a job following another. */
export function followsText(job: Job): string {
  return job.after_job === null
    ? "(no schedule and no job to follow: the service skips it)"
    : `after '${job.after_job}' ends: ${job.after_outcome}`;
}

function retryRows(job: Job, link: string | null): [string, string][] {
  return [
    [
      "retries",
      job.retries === 0
        ? "none"
        : `${job.retries} (first after ${job.retry_delay} s, doubling, at most ${job.retry_max_delay} s; on ${
          printableLine(job.retry_on.replaceAll(",", ", "))
        }; ${job.retry_overlap ? "kept" : "dropped"} when the next fire comes)`,
    ],
    [
      "after",
      job.after_job === null
        ? "-"
        : printable(`${job.after_job}:${job.after_outcome}${link === null ? "" : ` (${link})`}`),
    ],
  ];
}

/**
 * Why a run exists, with its attempt (`retry 2/3 of run 17`) or the run it
 * follows (`after run 12`); `attempts` is the job's total, when known.
 */
export function triggerText(run: Run, attempts?: number): string {
  if (run.trigger === "retry") {
    return `retry ${run.attempt}${
      attempts === undefined ? "" : `/${attempts}`
    } of run ${run.first_run_id}`;
  }
  if (run.trigger === "after") return `after run ${run.parent_run_id}`;
  return run.trigger;
}

/** Runs as a table; `attempts` gives the attempts a job allows, for its retries. */
export function runsTable(
  runs: Run[],
  width: number | null,
  attempts: (jobId: string) => number | undefined = () => undefined,
): string {
  if (runs.length === 0) return "no runs";
  return table(
    ["RUN", "JOB", "SCHEDULED (UTC)", "STATUS", "EXIT", "DURATION", "TRIGGER", "NOTE"],
    runs.map((r) => [
      String(r.id),
      printable(r.job_id),
      formatUtc(new Date(r.scheduled_at)),
      // A row written by hand may hold any text in these.
      printableLine(r.status),
      r.exit_code !== null ? String(r.exit_code) : printableLine(r.signal ?? "-"),
      duration(r),
      printableLine(triggerText(r, attempts(r.job_id))),
      printable(oneLine(r.note ?? "")),
    ]),
    { width, hide: ["TRIGGER", "DURATION", "EXIT"] },
  );
}

/** A run's fields and, unless it was already shown as it came (`job run --here`), its output. */
export function runDetails(
  run: Run,
  options: { output: boolean; attempts?: number } = { output: true },
): string {
  const time = (ms: number | null) => ms === null ? "-" : `${formatUtc(new Date(ms))} (${ms})`;
  const lines = [
    `run          ${run.id}`,
    `job          ${printableLine(run.job_id)}`,
    `status       ${printableLine(run.status)}`,
    `trigger      ${printableLine(triggerText(run, options.attempts))}`,
    `scheduled    ${time(run.scheduled_at)}`,
    `started      ${time(run.started_at)}`,
    `finished     ${time(run.finished_at)}`,
    `duration     ${duration(run)}`,
    `exit code    ${run.exit_code ?? "-"}`,
    `signal       ${printableLine(run.signal ?? "-")}`,
    `node         ${printableLine(run.node_id ?? "-")}`,
    `note         ${printableLine(run.note ?? "-")}`,
  ];
  if (options.output) {
    lines.push(
      "--- stdout ---",
      printable(run.stdout ?? ""),
      "--- stderr ---",
      printable(run.stderr ?? ""),
    );
  }
  return lines.join("\n");
}

/** One line of `logs`: JSON with --json, else time, level, node, logger, message and context. */
export function logLine(row: LogRow, json: boolean): string {
  if (json) return toJson(row);
  const context = Object.keys(row.context).length === 0 ? "" : `  ${JSON.stringify(row.context)}`;
  // One record, one line: a newline in a message (a hook's stderr) is shown as `\n`.
  return printableLine(
    `${formatUtc(new Date(row.created_at))}  ${row.level.toUpperCase().padEnd(7)}  ${
      row.node_id ? `${row.node_id}  ` : ""
    }${row.logger_name}  ${row.message}${context}`,
  );
}
