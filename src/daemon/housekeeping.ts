/**
 * The service's chores on a timer of their own: retention of `jm_syslog`,
 * `jm_runs`, `jm_notifications` and `jm_update_info` (the reload markers
 * every service applied) in small batches, and the end of the
 * `job run --here` runs of this host whose CLI process is gone; each
 * skips its turn while the database is away rather than pile up attempts.
 * (The heartbeat is the cluster's.)
 */
import { log } from "./log.ts";
import type { RunStatus } from "../domain/run.ts";
import type { LogStore, MarkerStore } from "../store/store.ts";
import { type Clock, settlesWithin } from "./clock.ts";
import type { DbHealth } from "./db_health.ts";

export interface HousekeepingOptions {
  store: Pick<LogStore, "pruneOlderThan"> & Pick<MarkerStore, "pruneMarkers">;
  clock: Clock;
  health: DbHealth;
  /** Days kept; 0 = keep everything. */
  keepLogDays: number;
  keepRunDays: number;
  /** Of `jm_update_info`: the markers every service applied (`MarkerStore.pruneMarkers`). */
  keepChangeDays: number;
  /**
   * End the `job run --here` runs of this host whose CLI process is gone
   * (here_runs.ts); the jobs of those it ended (`interrupted`), one a run.
   */
  endGoneHereRuns?: () => Promise<string[]>;
  /** Told of each run it ended, as the service's of theirs: what `/metrics` counts. */
  observer?: { ended(jobId: string, status: RunStatus): void };
}

const DAY_MS = 86_400_000;
const RETENTION_EVERY_MS = 3_600_000;
/** The first pruning runs soon after start, once loading is done. */
const RETENTION_FIRST_MS = 5_000;
/**
 * How often the runs of dead `job run --here` processes are looked for: a
 * query of this host's running CLI runs (nearly always none).
 */
const HERE_RUNS_EVERY_MS = 60_000;
const PRUNE_BATCH = 1000;
/**
 * Reload markers a batch: one holds up to 2 MiB of snapshots (a big
 * `apply`), a run 128 KiB of output; so a batch deletes at most about what
 * one of runs does (SQLite reads every page it frees, holding the write
 * lock; MySQL's binary log copies every row), not 2 GB.
 */
const MARKER_PRUNE_BATCH = 100;
/** Pause between batches so other writers get the tables. */
const PRUNE_PAUSE_MS = 50;

const houseLog = log("housekeeping");

export class Housekeeping {
  private readonly stopping = new AbortController();
  private loop: Promise<void> = Promise.resolve();

  constructor(private readonly o: HousekeepingOptions) {}

  start(): void {
    const end = this.o.endGoneHereRuns;
    this.loop = Promise.all([
      this.every(RETENTION_EVERY_MS, RETENTION_FIRST_MS, () => this.prune()),
      end === undefined
        ? undefined
        : this.every(HERE_RUNS_EVERY_MS, RETENTION_FIRST_MS, async () => {
          const ended = await end();
          for (const jobId of ended) this.o.observer?.ended(jobId, "interrupted");
          if (ended.length > 0) {
            houseLog.warn(
              "{count} runs of `job run --here` on this host were left running by a CLI process that is gone (killed, or the machine restarted): marked interrupted",
              { count: ended.length },
            );
          }
        }),
    ]).then(() => {});
  }

  /** Stop pruning, waiting at most `timeoutMs` for a batch under way. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping.abort();
    await settlesWithin(this.o.clock, this.loop, timeoutMs);
  }

  private async every(
    intervalMs: number,
    firstMs: number,
    chore: () => Promise<void>,
  ): Promise<void> {
    let wait = firstMs;
    while (!this.stopping.signal.aborted) {
      await this.o.clock.sleep(wait, this.stopping.signal);
      wait = intervalMs;
      if (this.stopping.signal.aborted || !this.o.health.online) continue;
      try {
        await chore();
      } catch (error) {
        this.o.health.failed(error);
      }
    }
  }

  private async prune(): Promise<void> {
    // Notification claims go with the runs they were for (a silence alert's
    // claim too: a job silent for longer alerts again once it is gone).
    const { store, keepLogDays, keepRunDays, keepChangeDays } = this.o;
    const olderThan =
      (table: "jm_syslog" | "jm_runs" | "jm_notifications") => (before: number, limit: number) =>
        store.pruneOlderThan(table, before, limit);
    const tables = [
      { table: "jm_syslog", days: keepLogDays, batch: PRUNE_BATCH, prune: olderThan("jm_syslog") },
      { table: "jm_runs", days: keepRunDays, batch: PRUNE_BATCH, prune: olderThan("jm_runs") },
      {
        table: "jm_notifications",
        days: keepRunDays,
        batch: PRUNE_BATCH,
        prune: olderThan("jm_notifications"),
      },
      {
        table: "jm_update_info",
        days: keepChangeDays,
        batch: MARKER_PRUNE_BATCH,
        prune: (before: number, limit: number) => store.pruneMarkers(before, limit),
      },
    ];
    for (const { table, days, batch, prune } of tables) {
      if (days === 0) continue;
      const before = this.o.clock.now() - days * DAY_MS;
      let total = 0;
      for (;;) {
        const deleted = await prune(before, batch);
        total += deleted;
        if (deleted < batch || this.stopping.signal.aborted) break;
        await this.o.clock.sleep(PRUNE_PAUSE_MS, this.stopping.signal);
      }
      if (total > 0) {
        houseLog.info("deleted {count} rows older than {days} days from {table}", {
          count: total,
          days,
          table,
        });
      }
    }
  }
}
