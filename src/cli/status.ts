/**
 * `jobsmanager status`: the running services, pending markers, the last
 * hour's runs and the next fires. Exits 1 when no live service is found,
 * so it can serve as a health check.
 */
import { RuntimeError } from "../errors.ts";
import { printableLine } from "../domain/printable.ts";
import { zoneOf } from "../domain/job.ts";
import { MAX_SKEW_MS, ofOlderSchema, sharers, STALE_AFTER_BEATS } from "../domain/node.ts";
import { formatInZone, formatUtc } from "../domain/time.ts";
import { pendingJson, RESTART, staleNotes, type Status, status } from "../app/status.ts";
import { command } from "./command.ts";
import { defaultZoneText, table } from "./output.ts";
import type { DefaultZone } from "../app/zone.ts";
import { serviceGone, serviceRuns } from "../daemon/presence.ts";

function uptime(ms: number): string {
  const s = Math.floor(ms / 1000);
  const [d, h, m] = [Math.floor(s / 86400), Math.floor(s / 3600) % 24, Math.floor(s / 60) % 60];
  return d > 0 ? `${d}d ${h}h` : h > 0 ? `${h}h ${m}m` : `${m}m ${s % 60}s`;
}

/** A node's clock against the database's: signed seconds, flagged beyond MAX_SKEW_MS. */
function skewText(skewMs: number | null | undefined): string {
  if (skewMs == null) return "-";
  const text = `${skewMs >= 0 ? "+" : "-"}${(Math.abs(skewMs) / 1000).toFixed(1)} s`;
  return Math.abs(skewMs) > MAX_SKEW_MS ? `${text} (off)` : text;
}

/**
 * How long ago the node's `field` (a time on its own clock) was: on the
 * database's clock where the node's offset from it is known, so that a
 * node whose clock is off is not shown up or beating for a negative time;
 * else on this command's clock.
 */
function onDatabaseClock(
  n: Status["services"][number],
  field: "started_at" | "heartbeat_at",
  now: number,
  report: Status,
): number {
  if (report.databaseNow === undefined) return now - n[field];
  if (field === "heartbeat_at" && n.db_heartbeat_at != null) {
    return report.databaseNow - n.db_heartbeat_at;
  }
  if (n.skew_ms == null) return now - n[field];
  return report.databaseNow - (n[field] - n.skew_ms);
}

function servicesText(report: Status, now: number, heartbeatMs: number): string {
  if (report.services.length === 0) return "services: none has ever run on this database";
  const live = report.services.filter((n) => n.state === "live");
  const skewed = live.filter((n) => n.skew_ms != null && Math.abs(n.skew_ms) > MAX_SKEW_MS);
  const sharing = sharers(live);
  // Each node is judged by the interval it beats at, not by this command's configuration.
  const intervals = [...new Set(report.services.map((n) => n.heartbeat_ms ?? heartbeatMs))]
    .sort((a, b) => a - b).map((ms) => `${ms / 1000} s`);
  const interval = intervals.length === 1 ? intervals[0] : `its own (${intervals.join(", ")})`;
  return [
    `services (stale: no heartbeat for ${STALE_AFTER_BEATS} intervals of ${interval}; dead: declared dead by another node, its runs lost and its jobs moved, or its pid, of this boot and pid namespace, is not running; leaving: stopping, ending its runs, its jobs moved):`,
    table(
      [
        "NODE",
        "STATE",
        "PID",
        "VERSION",
        "UP",
        "LAST BEAT",
        "JOBS",
        "SHARE",
        "MARKER",
        "SKEW",
        "LAST RELOAD",
      ],
      // Rows a person may have written by hand: escaped, each cell on its line.
      report.services.map((n) => [
        printableLine(n.id),
        n.gone
          ? `dead (pid ${n.pid} is not running)`
          : n.state === "dead"
          ? printableLine(`dead (by ${n.declared_dead_by})`)
          : n.state,
        String(n.pid),
        printableLine(n.version),
        n.state === "live" ? uptime(onDatabaseClock(n, "started_at", now, report)) : "-",
        `${Math.round(onDatabaseClock(n, "heartbeat_at", now, report) / 1000)} s ago`,
        String(n.jobs_loaded),
        n.state === "live" && n.jobs_owned != null ? String(n.jobs_owned) : "-",
        n.applied_marker === null
          ? "-"
          : n.applied_marker >= report.latestMarker
          ? String(n.applied_marker)
          : `${n.applied_marker} (${report.latestMarker - n.applied_marker} behind)`,
        skewText(n.skew_ms),
        n.last_reload_at === null
          ? "-"
          : `${formatUtc(new Date(n.last_reload_at))} (${n.last_reload_ms} ms)`,
      ]),
    ),
    ...skewed.map((n) =>
      `node ${printableLine(n.id)}: its clock is ${
        skewText(n.skew_ms).replace(" (off)", "")
      } off the database's (more than ${MAX_SKEW_MS / 1000} s); ${
        sharing.includes(n.id)
          ? "it computes its fires from its own clock"
          : "it takes no share of the jobs while another node's clock is in step"
      }: fix its time sync (NTP)`
    ),
    ...live.filter(ofOlderSchema).map((n) =>
      `node ${
        printableLine(n.id)
      }: runs an older release of jobsmanager (its row names no schema_version), which runs a job that has a user as its own user, root typically (jobs given one before still are; no job is given one while it is live): upgrade or stop it`
    ),
  ].join("\n");
}

function pendingText(
  { count, oldest, retrying, nextRetry }: Status["pendingNotifications"],
): string {
  if (oldest === null) return "notifications waiting to be sent: none";
  const retries = nextRetry === null
    ? ""
    : `; ${retrying} of them wait${
      retrying === 1 ? "s" : ""
    } for their webhook receiver to answer, next try at ${formatUtc(new Date(nextRetry))}`;
  return `notifications waiting to be sent: ${count}, the oldest claimed at ${
    formatUtc(new Date(oldest))
  }${retries} (the services send them; \`jobsmanager logs --level warn\` says why one waits)`;
}

function statusText(
  report: Status,
  now: number,
  heartbeatMs: number,
  defaultZone: DefaultZone,
): string {
  const runs = Object.entries(report.runsLastHour);
  return [
    servicesText(report, now, heartbeatMs),
    `pending reload markers: ${report.pendingMarkers}`,
    `runs in the last hour: ${
      runs.length === 0 ? "none" : printableLine(runs.map(([k, v]) => `${k} ${v}`).join(", "))
    }`,
    ...(report.runningOnGone === 0 ? [] : [
      `runs recorded running on a service that is not running: ${report.runningOnGone} (marked lost when it starts again)`,
    ]),
    report.silentJobs.length === 0
      ? "silent jobs (no success for their alert_after): none"
      : "silent jobs (no success for their alert_after):\n" + table(
        ["  JOB", "NO SUCCESS SINCE", "ALERT AFTER"],
        report.silentJobs.map((j) => [
          `  ${printableLine(j.job_id)}`,
          formatUtc(new Date(j.since)),
          `${j.alert_after} s`,
        ]),
      ),
    pendingText(report.pendingNotifications),
    `next fires (jobs without a zone: ${defaultZoneText(defaultZone)}):`,
    report.nextFires.length === 0 ? "  none" : table(
      ["  AT", "JOB"],
      report.nextFires.map((
        { job, at },
      ) => [`  ${formatInZone(at, zoneOf(job, defaultZone.name))}`, printableLine(job.id)]),
    ),
  ].join("\n");
}

export function statusCommand() {
  return command({
    brief: "show running services, pending reloads, recent runs, next fires",
    action: async (ctx) => {
      const heartbeatMs = ctx.config.settings["jobsmanager.heartbeat_interval"] * 1000;
      const now = Date.now();
      const { defaultZone, report } = await ctx.withStore(async (store) => {
        const defaultZone = await ctx.defaultZone(store);
        return {
          defaultZone,
          report: await status(store, {
            now,
            heartbeatMs,
            defaultZone: defaultZone.name,
            presence: { gone: serviceGone, runs: serviceRuns },
          }),
        };
      });
      ctx.print(
        () => statusText(report, now, heartbeatMs, defaultZone),
        {
          services: report.services,
          pending_markers: report.pendingMarkers,
          latest_marker: report.latestMarker,
          runs_last_hour: report.runsLastHour,
          next_fires: report.nextFires.map(({ job, at }) => ({
            job: job.id,
            at: at.toISOString(),
          })),
          silent_jobs: report.silentJobs.map((j) => ({
            job: j.job_id,
            since: new Date(j.since).toISOString(),
            alert_after: j.alert_after,
          })),
          pending_notifications: pendingJson(report.pendingNotifications),
        },
      );
      if (!report.services.some((n) => n.state === "live")) {
        // A stale service did not stop: it may hold the SQLite file still, or come back.
        const stale = report.services.filter((n) => n.state === "stale");
        const gone = report.services.filter((n) => n.gone);
        const named = (nodes: typeof stale) =>
          nodes.map((n) => `${n.id} (pid ${n.pid} on ${n.host})`).join(", ");
        const staleSaid = staleNotes(stale).map(({ nodes, note }) => `${named(nodes)} ${note}`);
        throw new RuntimeError(
          gone.length > 0
            ? `no live jobsmanager service on this database: ${
              named(gone)
            } is not running and did not stop (killed or crashed): ${RESTART}`
            : stale.length === 0
            ? "no live jobsmanager service on this database (start one with `jobsmanager serve`)"
            : `no live jobsmanager service on this database: ${staleSaid.join("; ")}`,
        );
      }
    },
  });
}
