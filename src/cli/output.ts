/**
 * Human-readable rendering: tables for lists, key/value blocks for one job
 * or run, log lines. `--json` output never comes through here.
 */
import type { JobDetails, JobListing } from "../app/jobs.ts";
import type { LogRow } from "../domain/log_row.ts";
import type { Run } from "../domain/run.ts";
import { readableSchedule } from "../cron/fields.ts";
import { formatInZone, formatUtc } from "../domain/time.ts";

/**
 * A borderless table with a header row, like `ps` or `kubectl get`.
 * Hand-made: cli-table3 took 10 s for the 10,000 rows of a big `job list`.
 */
export function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => i === cells.length - 1 ? c : c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(head), ...rows.map(line)].join("\n");
}

function shorten(text: string, width: number): string {
  const line = text.replace(/\s+/g, " ");
  return line.length > width ? `${line.slice(0, width - 1)}…` : line;
}

export function jobsTable(listings: JobListing[]): string {
  if (listings.length === 0) {
    return "no jobs (add one with `jobsmanager job add ID --command CMD --cron '…'`)";
  }
  return table(
    ["ID", "SCHEDULE (s m h dom mon dow)", "ZONE", "ENABLED", "TIMEOUT", "NEXT FIRE", "COMMAND"],
    listings.map(({ job, zone, next, invalid }) => [
      job.id,
      readableSchedule(job),
      job.timezone ?? `(${zone})`,
      job.enabled ? "yes" : "no",
      job.timeout === 0 ? "none" : `${job.timeout}s`,
      invalid !== null ? `INVALID: ${invalid}` : next ? formatInZone(next, zone) : "-",
      shorten(job.command, 50),
    ]),
  );
}

export function fireLines(fires: Date[], zone: string): string {
  if (fires.length === 0) return "  (the schedule never fires again)";
  return fires.map((f) => `  ${formatInZone(f, zone)}  ${zone}   ${formatUtc(f)}`).join("\n");
}

export function jobDetails({ job, zone, next, runs }: JobDetails): string {
  const orDefault = <T>(v: T | null, what: string) =>
    v === null ? `(service default: ${what})` : String(v);
  const rows: [string, string][] = [
    ["id", job.id],
    ["command", job.command],
    ["schedule", `${readableSchedule(job)}   (second minute hour day month day_of_week)`],
    ["timezone", job.timezone ?? `(service default: ${zone})`],
    ["enabled", job.enabled ? "yes" : "no"],
    ["timeout", job.timeout === 0 ? "none" : `${job.timeout} s`],
    ["max_instances", orDefault(job.max_instances, "jobsmanager.max_instances")],
    ["coalesce", orDefault(job.coalesce, "jobsmanager.coalesce")],
    ["misfire_grace_time", orDefault(job.misfire_grace_time, "jobsmanager.misfire_grace_time")],
    [
      "env",
      Object.keys(job.env).length === 0
        ? "-"
        : Object.entries(job.env).map(([k, v]) => `${k}=${v}`).join(" "),
    ],
    ["cwd", job.cwd ?? "(service working directory)"],
    ["description", job.description ?? "-"],
    ["created", formatUtc(new Date(job.created_at))],
    ["updated", formatUtc(new Date(job.updated_at))],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  const lines = rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`);
  lines.push(
    `next fires${job.enabled ? "" : " (if enabled)"}:`,
    fireLines(next, zone),
    "last runs:",
    runsTable(runs),
  );
  return lines.join("\n");
}

function duration(run: Run): string {
  if (run.started_at === null || run.finished_at === null) return "-";
  const ms = run.finished_at - run.started_at;
  return ms < 10_000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function runsTable(runs: Run[]): string {
  if (runs.length === 0) return "no runs";
  return table(
    ["RUN", "JOB", "SCHEDULED (UTC)", "STATUS", "EXIT", "DURATION", "TRIGGER", "NOTE"],
    runs.map((r) => [
      String(r.id),
      r.job_id,
      formatUtc(new Date(r.scheduled_at)),
      r.status,
      r.exit_code !== null ? String(r.exit_code) : r.signal ?? "-",
      duration(r),
      r.trigger,
      r.note ?? "",
    ]),
  );
}

export function runDetails(run: Run): string {
  const time = (ms: number | null) => ms === null ? "-" : `${formatUtc(new Date(ms))} (${ms})`;
  const lines = [
    `run          ${run.id}`,
    `job          ${run.job_id}`,
    `status       ${run.status}`,
    `trigger      ${run.trigger}`,
    `scheduled    ${time(run.scheduled_at)}`,
    `started      ${time(run.started_at)}`,
    `finished     ${time(run.finished_at)}`,
    `duration     ${duration(run)}`,
    `exit code    ${run.exit_code ?? "-"}`,
    `signal       ${run.signal ?? "-"}`,
    `node         ${run.node_id ?? "-"}`,
    `note         ${run.note ?? "-"}`,
    "--- stdout ---",
    run.stdout ?? "",
    "--- stderr ---",
    run.stderr ?? "",
  ];
  return lines.join("\n");
}

/** One line of `logs`: JSON with --json, else time, level, logger, message and context. */
export function logLine(row: LogRow, json: boolean): string {
  if (json) return JSON.stringify(row);
  const context = Object.keys(row.context).length === 0 ? "" : `  ${JSON.stringify(row.context)}`;
  return `${formatUtc(new Date(row.created_at))}  ${
    row.level.toUpperCase().padEnd(7)
  }  ${row.logger_name}  ${row.message}${context}`;
}
