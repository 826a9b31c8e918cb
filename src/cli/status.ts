/**
 * `jobsmanager status`: the running services, pending markers, the last
 * hour's runs and the next fires. Exits 1 when no live service is found,
 * so it can serve as a health check.
 */
import { Command } from "commander";
import { RuntimeError } from "../errors.ts";
import { type Node, nodeState, STALE_AFTER_BEATS } from "../domain/node.ts";
import { systemTimezone } from "../domain/time.ts";
import { formatInZone, formatUtc } from "../domain/time.ts";
import type { ContextOf } from "./context.ts";
import { nextFires, table, zoneOf } from "./output.ts";

const HOUR_MS = 3_600_000;
const NEXT_FIRES = 5;

function uptime(ms: number): string {
  const s = Math.floor(ms / 1000);
  const [d, h, m] = [Math.floor(s / 86400), Math.floor(s / 3600) % 24, Math.floor(s / 60) % 60];
  return d > 0 ? `${d}d ${h}h` : h > 0 ? `${h}h ${m}m` : `${m}m ${s % 60}s`;
}

export function statusCommand(contextOf: ContextOf): Command {
  return new Command("status").description(
    "show running services, pending reloads, recent runs, next fires",
  )
    .action(async (_opts, cmd: Command) => {
      const ctx = contextOf(cmd);
      const s = ctx.config.settings;
      const heartbeatMs = s["jobsmanager.heartbeat_interval"] * 1000;
      const defaultZone = s["jobsmanager.timezone"] || systemTimezone();
      const now = Date.now();
      const { nodes, pending, runs, jobs } = await ctx.withStore(async (store) => ({
        nodes: await store.listNodes(),
        pending: await store.pendingMarkers(),
        runs: await store.countRuns(now - HOUR_MS),
        jobs: await store.listJobs(),
      }));
      const fires = jobs.filter((j) => j.enabled)
        .flatMap((job) => nextFires(job, defaultZone, new Date(now), 1).map((at) => ({ job, at })))
        .sort((a, b) => a.at.getTime() - b.at.getTime())
        .slice(0, NEXT_FIRES);
      const services = nodes.map((n: Node) => ({ ...n, state: nodeState(n, now, heartbeatMs) }));
      const live = services.filter((n) => n.state === "live");
      ctx.print(
        () => {
          const lines = [
            services.length === 0
              ? "services: none has ever run on this database"
              : `services (stale after ${STALE_AFTER_BEATS} missed heartbeats of ${
                heartbeatMs / 1000
              } s):\n` +
                table(
                  [
                    "NODE",
                    "STATE",
                    "PID",
                    "VERSION",
                    "UP",
                    "LAST BEAT",
                    "JOBS",
                    "MARKER",
                    "LAST RELOAD",
                  ],
                  services.map((n) => [
                    n.id,
                    n.state,
                    String(n.pid),
                    n.version,
                    n.state === "live" ? uptime(now - n.started_at) : "-",
                    `${Math.round((now - n.heartbeat_at) / 1000)} s ago`,
                    String(n.jobs_loaded),
                    String(n.applied_marker ?? "-"),
                    n.last_reload_at === null
                      ? "-"
                      : `${formatUtc(new Date(n.last_reload_at))} (${n.last_reload_ms} ms)`,
                  ]),
                ),
            `pending reload markers: ${pending}`,
            `runs in the last hour: ${
              Object.keys(runs).length === 0
                ? "none"
                : Object.entries(runs).map(([k, v]) => `${k} ${v}`).join(", ")
            }`,
            "next fires:",
            fires.length === 0 ? "  none" : table(
              ["  AT", "JOB"],
              fires.map((
                { job, at },
              ) => [`  ${formatInZone(at, zoneOf(job, defaultZone))}`, job.id]),
            ),
          ];
          return lines.join("\n");
        },
        {
          services,
          pending_markers: pending,
          runs_last_hour: runs,
          next_fires: fires.map(({ job, at }) => ({ job: job.id, at: at.toISOString() })),
        },
      );
      if (live.length === 0) {
        throw new RuntimeError(
          "no live jobsmanager service on this database (start one with `jobsmanager serve`)",
        );
      }
    });
}
