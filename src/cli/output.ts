/**
 * Human-readable rendering of jobs: tables for lists, key/value blocks for
 * one job. `--json` output never comes through here.
 */
import { type Job, validateJob } from "../domain/job.ts";
import { readableSchedule } from "../cron/fields.ts";
import { compileSchedule } from "../cron/croner.ts";
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

/** The zone a job fires in: its own, else the service default. */
export function zoneOf(job: Job, defaultZone: string): string {
  return job.timezone ?? defaultZone;
}

/** The next `n` fires of a job after `from` (none when the schedule never fires again). */
export function nextFires(job: Job, defaultZone: string, from: Date, n: number): Date[] {
  return compileSchedule(job, zoneOf(job, defaultZone)).nextRuns(n, from);
}

function shorten(text: string, width: number): string {
  const line = text.replace(/\s+/g, " ");
  return line.length > width ? `${line.slice(0, width - 1)}…` : line;
}

export function jobsTable(jobs: Job[], defaultZone: string, now: Date): string {
  if (jobs.length === 0) {
    return "no jobs (add one with `jobsmanager job add ID --command CMD --cron '…'`)";
  }
  return table(
    ["ID", "SCHEDULE (s m h dom mon dow)", "ZONE", "ENABLED", "TIMEOUT", "NEXT FIRE", "COMMAND"],
    jobs.map((job) => {
      const zone = zoneOf(job, defaultZone);
      let next: Date | string | undefined;
      try {
        validateJob(job);
        next = job.enabled ? nextFires(job, defaultZone, now, 1)[0] : undefined;
      } catch (error) {
        // A row broken by hand: say so in its line, keep listing the others.
        next = `INVALID: ${(error as Error).message}`;
      }
      return [
        job.id,
        readableSchedule(job),
        job.timezone ?? `(${zone})`,
        job.enabled ? "yes" : "no",
        job.timeout === 0 ? "none" : `${job.timeout}s`,
        typeof next === "string" ? next : next ? formatInZone(next, zone) : "-",
        shorten(job.command, 50),
      ];
    }),
  );
}

export function fireLines(fires: Date[], zone: string): string {
  if (fires.length === 0) return "  (the schedule never fires again)";
  return fires.map((f) => `  ${formatInZone(f, zone)}  ${zone}   ${formatUtc(f)}`).join("\n");
}

export function jobDetails(job: Job, defaultZone: string, fires: Date[]): string {
  const zone = zoneOf(job, defaultZone);
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
  lines.push(`next fires${job.enabled ? "" : " (if enabled)"}:`, fireLines(fires, zone));
  return lines.join("\n");
}
