/**
 * `/metrics` in Prometheus text format. One registry per server (never
 * prom-client's global one), so two servers in one process, as in tests,
 * keep their own counts.
 *
 * Counters and the fire-lag histogram are fed by the daemon as runs start
 * and end; gauges are read from the daemon at each scrape. The `job`
 * label takes job ids, so series are bounded by the jobs table: at most
 * one per job and status (12 statuses) for `jobsmanager_runs_total`, one
 * per job for the histogram; a removed job's series go at the next reload.
 */
import client from "prom-client";
import { RUN_STATUSES, type RunStatus } from "../domain/run.ts";

/** What the daemon shows at a scrape. */
export interface DaemonGauges {
  jobsLoaded: number;
  lastReload: { at: number; ms: number } | null;
  running: number;
  queued: number;
  databaseUp: boolean;
  /** Seconds the database has been away in all, this outage included. */
  outageSeconds: number;
  logRecordsDropped: number;
  /** This node's last heartbeat written (ms), null before the first. */
  heartbeatAt: number | null;
}

/** Fire lag buckets (s): a fire starts within milliseconds; seconds mean trouble. */
const LAG_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class Metrics {
  readonly registry = new client.Registry();
  private readonly runs: client.Counter<"job" | "status">;
  private readonly lag: client.Histogram<"job">;
  private readonly jobs = new Set<string>();

  constructor(gauges?: () => DaemonGauges) {
    const registers = [this.registry];
    client.collectDefaultMetrics({ register: this.registry, prefix: "jobsmanager_" });
    this.runs = new client.Counter({
      name: "jobsmanager_runs_total",
      help: "Runs recorded by this node, by job and final status (skipped and missed included)",
      labelNames: ["job", "status"],
      registers,
    });
    this.lag = new client.Histogram({
      name: "jobsmanager_fire_lag_seconds",
      help: "How late a run started after its scheduled instant",
      labelNames: ["job"],
      buckets: LAG_BUCKETS,
      registers,
    });
    if (!gauges) return;
    const gauge = (name: string, help: string, read: (g: DaemonGauges) => number | null) =>
      new client.Gauge({
        name,
        help,
        registers,
        collect() {
          const value = read(gauges());
          if (value === null) this.reset();
          else this.set(value);
        },
      });
    gauge("jobsmanager_runs_running", "Runs holding a worker now", (g) => g.running);
    gauge("jobsmanager_runs_queued", "Fires waiting for a worker (max_workers)", (g) => g.queued);
    gauge("jobsmanager_jobs_loaded", "Enabled jobs in the timetable", (g) => g.jobsLoaded);
    gauge(
      "jobsmanager_last_reload_timestamp_seconds",
      "When the last reload was applied",
      (g) => g.lastReload && g.lastReload.at / 1000,
    );
    gauge(
      "jobsmanager_last_reload_duration_seconds",
      "How long the last reload took",
      (g) => g.lastReload && g.lastReload.ms / 1000,
    );
    gauge(
      "jobsmanager_database_up",
      "1 while the database answers, 0 during an outage",
      (g) => g.databaseUp ? 1 : 0,
    );
    gauge(
      "jobsmanager_database_outage_seconds",
      "Seconds the database has been unreachable since this node started",
      (g) => g.outageSeconds,
    );
    gauge(
      "jobsmanager_log_records_dropped",
      "Log records the jm_syslog sink dropped (outage buffer full)",
      (g) => g.logRecordsDropped,
    );
    gauge(
      "jobsmanager_heartbeat_timestamp_seconds",
      "This node's last heartbeat in jm_nodes: its liveness as status judges it",
      (g) => g.heartbeatAt && g.heartbeatAt / 1000,
    );
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** A run started `lagMs` after its scheduled instant. */
  runStarted(jobId: string, lagMs: number): void {
    this.jobs.add(jobId);
    this.lag.observe({ job: jobId }, Math.max(0, lagMs) / 1000);
  }

  /** A run, or a fire that did not run (skipped, missed), got its final status. */
  runEnded(jobId: string, status: RunStatus): void {
    this.jobs.add(jobId);
    this.runs.inc({ job: jobId, status });
  }

  /** Drop the series of jobs no longer defined (after a reload), keeping cardinality bounded. */
  keepJobs(ids: Iterable<string>): void {
    const keep = new Set(ids);
    for (const id of this.jobs) {
      if (keep.has(id)) continue;
      for (const status of RUN_STATUSES) this.runs.remove({ job: id, status });
      this.lag.remove({ job: id });
      this.jobs.delete(id);
    }
  }
}
