/**
 * `/metrics` in Prometheus text format. One registry per server (never
 * prom-client's global one), so two servers in one process, as in tests,
 * keep their own counts.
 *
 * Counters and the fire-lag histogram are fed by the daemon as runs start
 * and end (this class is its `RunObserver`); gauges are read from the
 * daemon at each scrape, node liveness from `jm_nodes` (`nodeMetrics`). The `job`
 * label takes job ids: series are bounded by the jobs in the table, at
 * most one per job and status for `jobsmanager_runs_total`, one per job
 * for `jobsmanager_fires_missed_total` and one histogram per job; a job's
 * go at the first reload that no longer finds it (a run of it that ends
 * after brings them back until the next).
 */
import client from "prom-client";
import type { DaemonVitals } from "../daemon/boot.ts";
import type { RunObserver } from "../daemon/service.ts";
import { MAX_SKEW_MS, type Node, NODE_STATES } from "../domain/node.ts";
import { NOTIFY_CHECK_MS, type NotifyChannel } from "../daemon/notifier.ts";
import { judged } from "../app/status.ts";
import { serviceGone } from "../daemon/presence.ts";
import { RUN_STATUSES, type RunStatus, type RunTrigger } from "../domain/run.ts";
import { settlesWithin, systemClock } from "../daemon/clock.ts";
import type { NodeStore } from "../store/store.ts";
import type { Starts } from "./starts.ts";

/** Fire lag buckets (s): a fire starts within milliseconds; seconds mean trouble. */
const LAG_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class Metrics implements RunObserver {
  readonly registry = new client.Registry();
  private readonly runs: client.Counter<"job" | "status">;
  private readonly missedFires: client.Counter<"job">;
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
      help:
        "Run rows this node recorded, by job and final status (skipped and missed included; a missed row may stand for many fires)",
      labelNames: ["job", "status"],
      registers,
    });
    this.missedFires = new client.Counter({
      name: "jobsmanager_fires_missed_total",
      help: "Scheduled fires this node recorded missed, by job (a missed row counts its fires)",
      labelNames: ["job"],
      registers,
    });
    this.lag = new client.Histogram({
      name: "jobsmanager_fire_lag_seconds",
      help:
        "How late a scheduled fire's run started after its instant (manual runs, retries and followers not counted)",
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

  started(jobId: string, lagMs: number, trigger: RunTrigger): void {
    this.jobs.add(jobId);
    // A retry's or follower's instant is not a fire's, a manual run's is when it was asked.
    if (trigger === "schedule") this.lag.observe({ job: jobId }, Math.max(0, lagMs) / 1000);
    this.starts?.started();
  }

  upcoming(at: number): void {
    this.starts?.upcoming(at);
  }

  ended(jobId: string, status: RunStatus, fires = 1): void {
    this.jobs.add(jobId);
    this.runs.inc({ job: jobId, status });
    if (status === "missed") this.missedFires.inc({ job: jobId }, fires);
  }

  jobsInTable(ids: ReadonlySet<string>): void {
    for (const job of this.jobs) {
      if (ids.has(job)) continue;
      this.jobs.delete(job);
      this.lag.remove({ job });
      this.missedFires.remove({ job });
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

  /** Add the gauges and counters read from the daemon at each scrape. */
  watch(vitals: () => DaemonVitals): void {
    const registers = [this.registry];
    /** A gauge left out while `read` has no value (rather than a 0 that reads as 1970). */
    const gauge = (name: string, help: string, read: (v: DaemonVitals) => number | null) =>
      new client.Gauge({
        name,
        help,
        registers,
        collect() {
          const value = read(vitals());
          if (value === null) this.remove();
          else this.set(value);
        },
      });
    /**
     * A total the daemon keeps since it started, exposed as a counter: never
     * below what it said before (a clock stepped back may shorten a total
     * measured on it), so that a scraper sees no reset.
     */
    const counter = (name: string, help: string, read: (v: DaemonVitals) => number) => {
      let said = 0;
      return new client.Counter({
        name,
        help,
        registers,
        collect() {
          said = Math.max(said, read(vitals()));
          this.reset();
          this.inc(said);
        },
      });
    };
    gauge("jobsmanager_runs_running", "Runs holding a worker now", (v) => v.running);
    gauge("jobsmanager_runs_queued", "Fires waiting for a worker (max_workers)", (v) => v.queued);
    gauge("jobsmanager_jobs_loaded", "Enabled jobs in the timetable", (v) => v.jobsLoaded);
    gauge(
      "jobsmanager_last_reload_timestamp_seconds",
      "When the last reload was applied; left out until the first",
      (v) => v.lastReload && v.lastReload.at / 1000,
    );
    gauge(
      "jobsmanager_last_reload_duration_seconds",
      "How long the last reload took; left out until the first",
      (v) => v.lastReload && v.lastReload.ms / 1000,
    );
    gauge(
      "jobsmanager_database_up",
      "1 while the database answers, takes writes and reads; 0 during an outage, and while it refuses writes or reads (see jobsmanager_database_writes_refused, jobsmanager_database_reads_refused)",
      (v) =>
        v.databaseOnline && v.databaseWritesRefused === null && v.databaseReadsRefused === null
          ? 1
          : 0,
    );
    gauge(
      "jobsmanager_database_writes_refused",
      "1 while the database answers but refuses every write (a full disk or table, a read-only file or server: /readyz and the log say which); run records wait in memory meanwhile",
      (v) => v.databaseOnline && v.databaseWritesRefused !== null ? 1 : 0,
    );
    gauge(
      "jobsmanager_database_reads_refused",
      "1 while the database answers but refuses this node's reads (the MySQL user lacks SELECT: /readyz names the GRANT); the service sees no job changes, cancels or job run requests meanwhile",
      (v) => v.databaseOnline && v.databaseReadsRefused !== null ? 1 : 0,
    );
    gauge(
      "jobsmanager_run_records_waiting",
      "Run records held in memory until the database takes them (an outage, refused writes); a restart loses them",
      (v) => v.runRecordsWaiting,
    );
    counter(
      "jobsmanager_database_outage_seconds_total",
      "Seconds the database has been unreachable since this node started, every outage summed",
      (v) => v.outageMs / 1000,
    );
    gauge(
      "jobsmanager_database_outage_current_seconds",
      "How long the current database outage has lasted; 0 while the database answers",
      (v) => v.currentOutageMs / 1000,
    );
    gauge(
      "jobsmanager_share_taken",
      `1 while this node fires its share of the jobs; 0 while its clock is more than ${
        MAX_SKEW_MS / 1000
      } s off the database's and another live node's is in step (fix its time sync)`,
      (v) => v.firing ? (v.takesShare ? 1 : 0) : null,
    );
    gauge(
      "jobsmanager_jobs_silent",
      `Jobs without a success for their alert_after, as status lists them (every node sees them all; looked at every ${
        NOTIFY_CHECK_MS / 1000
      } s)`,
      (v) => v.silentJobs,
    );
    counter(
      "jobsmanager_log_records_dropped_total",
      "Log records the jm_syslog sink dropped since this node started (its queue was full)",
      (v) => v.logRecordsDropped,
    );
  }
}

/**
 * How long a scrape waits for `jm_nodes`: a database that drops packets
 * would hold it until db.connect_timeout, past Prometheus' 10 s scrape
 * timeout, and the target would show down with the rest of its metrics
 * (`jobsmanager_database_up 0` among them) unseen.
 */
export const NODES_READ_MS = 1000;

/**
 * Node liveness from `jm_nodes` at each scrape, in a registry of its own:
 * the HTTP worker reads it on its own connection, so the scheduler's thread
 * does no database work for a scrape. The read is bounded by `readMs`; one
 * that has not answered is left to finish rather than piled on by the next
 * scrapes.
 */
export function nodeMetrics(
  store: Pick<NodeStore, "nodesAndNow">,
  heartbeatMs: number,
  readMs = NODES_READ_MS,
): client.Registry {
  const registry = new client.Registry();
  let reading: Promise<{ nodes: Node[]; databaseNow: number }> | null = null;
  let answer: Promise<{ nodes: Node[]; databaseNow: number } | null> | null = null;
  /** This scrape's read, shared by both gauges; null when the database failed or was too slow. */
  const read = () => {
    if (answer) return answer;
    const current = reading ??= store.nodesAndNow().finally(() => reading = null);
    answer = (async () => {
      const settled = await settlesWithin(systemClock, current, readMs);
      return settled ? await current.catch(() => null) : null;
    })().finally(() => answer = null);
    return answer;
  };
  new client.Gauge({
    name: "jobsmanager_nodes",
    help:
      "Services on this database by liveness (jm_nodes, judged by heartbeats, dead at once where this host's pid is gone); left out when jobsmanager_nodes_known is 0",
    labelNames: ["state"],
    registers: [registry],
    async collect() {
      this.reset();
      const found = await read();
      // The database is away or slow: jobsmanager_nodes_known says so; no guess here.
      if (!found) return;
      // Judged as `status` judges them: by the database's clock where a node reports it.
      const stateOf = (n: Node) =>
        judged(n, Date.now(), heartbeatMs, found.databaseNow, { gone: serviceGone }).state;
      for (const state of NODE_STATES) {
        this.set({ state }, found.nodes.filter((n) => stateOf(n) === state).length);
      }
    },
  });
  new client.Gauge({
    name: "jobsmanager_nodes_known",
    help:
      `1 when jobsmanager_nodes was read from jm_nodes for this scrape; 0 when the database failed or did not answer within ${
        readMs / 1000
      } s`,
    registers: [registry],
    async collect() {
      this.set((await read()) ? 1 : 0);
    },
  });
  return registry;
}
