/**
 * `/metrics` in Prometheus text format. One registry per server (never
 * prom-client's global one), so two servers in one process, as in tests,
 * keep their own counts.
 *
 * Counters and the fire-lag histogram are fed by the daemon as runs start
 * and end (this class is its `RunObserver`); gauges are read from the
 * daemon at each scrape, node liveness from `jm_nodes` (`nodeMetrics`). The `job`
 * label takes job ids: series are bounded by the jobs in the table, at
 * most one per job and status for `jobsmanager_runs_total` and one
 * histogram per job; a job's go at the first reload that no longer finds
 * it (a run of it that ends after brings them back until the next).
 */
import client from "prom-client";
import type { DaemonVitals } from "../daemon/boot.ts";
import type { RunObserver } from "../daemon/service.ts";
import type { NotifyChannel } from "../daemon/notifier.ts";
import { type Node, NODE_STATES, nodeState } from "../domain/node.ts";
import { RUN_STATUSES, type RunStatus } from "../domain/run.ts";
import type { NodeStore } from "../store/store.ts";
import type { Starts } from "./starts.ts";

/** Fire lag buckets (s): a fire starts within milliseconds; seconds mean trouble. */
const LAG_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class Metrics implements RunObserver {
  readonly registry = new client.Registry();
  private readonly runs: client.Counter<"job" | "status">;
  private readonly lag: client.Histogram<"job">;
  private readonly notifications: client.Counter<"channel" | "outcome">;
  private starts: Starts | null = null;
  /** The jobs that have series. */
  private readonly jobs = new Set<string>();

  constructor() {
    const registers = [this.registry];
    client.collectDefaultMetrics({ register: this.registry, prefix: "jobsmanager_" });
    this.runs = new client.Counter({
      name: "jobsmanager_runs_total",
      help: "Runs this node recorded, by job and final status (skipped and missed included)",
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
    this.notifications = new client.Counter({
      name: "jobsmanager_notifications_total",
      help:
        "Notifications this node delivered (command, webhook, mail) by outcome; queue: dropped, too many waiting",
      labelNames: ["channel", "outcome"],
      registers,
    });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  started(jobId: string, lagMs: number): void {
    this.jobs.add(jobId);
    this.lag.observe({ job: jobId }, Math.max(0, lagMs) / 1000);
    this.starts?.started();
  }

  upcoming(at: number): void {
    this.starts?.upcoming(at);
  }

  ended(jobId: string, status: RunStatus): void {
    this.jobs.add(jobId);
    this.runs.inc({ job: jobId, status });
  }

  jobsInTable(ids: ReadonlySet<string>): void {
    for (const job of this.jobs) {
      if (ids.has(job)) continue;
      this.jobs.delete(job);
      this.lag.remove({ job });
      for (const status of RUN_STATUSES) this.runs.remove({ job, status });
    }
  }

  notified(channel: NotifyChannel, ok: boolean): void {
    this.notifications.inc({ channel, outcome: ok ? "sent" : "failed" });
  }

  /** Note each start in `starts`, for the HTTP worker to make way (starts.ts). */
  announceStarts(starts: Starts): void {
    this.starts = starts;
  }

  /** Add the gauges read from the daemon at each scrape. */
  watch(vitals: () => DaemonVitals): void {
    const registers = [this.registry];
    const gauge = (name: string, help: string, read: (v: DaemonVitals) => number | null) =>
      new client.Gauge({
        name,
        help,
        registers,
        collect() {
          const value = read(vitals());
          if (value === null) this.reset();
          else this.set(value);
        },
      });
    gauge("jobsmanager_runs_running", "Runs holding a worker now", (v) => v.running);
    gauge("jobsmanager_runs_queued", "Fires waiting for a worker (max_workers)", (v) => v.queued);
    gauge("jobsmanager_jobs_loaded", "Enabled jobs in the timetable", (v) => v.jobsLoaded);
    gauge(
      "jobsmanager_last_reload_timestamp_seconds",
      "When the last reload was applied",
      (v) => v.lastReload && v.lastReload.at / 1000,
    );
    gauge(
      "jobsmanager_last_reload_duration_seconds",
      "How long the last reload took",
      (v) => v.lastReload && v.lastReload.ms / 1000,
    );
    gauge(
      "jobsmanager_database_up",
      "1 while the database answers, 0 during an outage",
      (v) => v.databaseOnline ? 1 : 0,
    );
    gauge(
      "jobsmanager_database_outage_seconds",
      "Seconds the database has been unreachable since this node started",
      (v) => v.outageMs / 1000,
    );
    gauge(
      "jobsmanager_log_records_dropped",
      "Log records the jm_syslog sink dropped since this node started (its queue was full)",
      (v) => v.logRecordsDropped,
    );
  }
}

/**
 * Node liveness from `jm_nodes` at each scrape, in a registry of its own:
 * the HTTP worker reads it on its own connection, so the scheduler's thread
 * does no database work for a scrape.
 */
export function nodeMetrics(
  store: Pick<NodeStore, "nodesAndNow">,
  heartbeatMs: number,
): client.Registry {
  const registry = new client.Registry();
  new client.Gauge({
    name: "jobsmanager_nodes",
    help: "Services on this database by liveness (jm_nodes, judged by heartbeats)",
    labelNames: ["state"],
    registers: [registry],
    async collect() {
      this.reset();
      let found: Node[];
      let databaseNow: number;
      try {
        ({ nodes: found, databaseNow } = await store.nodesAndNow());
      } catch {
        // The database is away: jobsmanager_database_up says so; no guess here.
        return;
      }
      // Judged as `status` judges them: by the database's clock where a node reports it.
      const stateOf = (n: Node) => nodeState(n, Date.now(), heartbeatMs, databaseNow);
      for (const state of NODE_STATES) {
        this.set({ state }, found.filter((n) => stateOf(n) === state).length);
      }
    },
  });
  return registry;
}
