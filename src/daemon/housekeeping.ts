/**
 * The service's chores on timers of their own: the heartbeat in `jm_nodes`
 * (so `status` can tell a live service from a dead one) and retention of
 * `jm_syslog` and `jm_runs` in small batches. Both skip their turn while
 * the database is away rather than pile up attempts.
 */
import { log } from "./log.ts";
import type { Node } from "../domain/node.ts";
import type { LogStore, NodeStore } from "../store/store.ts";
import { type Clock, settlesWithin } from "./clock.ts";
import type { DbHealth } from "./db_health.ts";
import type { ServiceState } from "./service.ts";

export interface HousekeepingOptions {
  store: Pick<NodeStore, "saveNode"> & Pick<LogStore, "pruneOlderThan">;
  clock: Clock;
  health: DbHealth;
  node: Pick<Node, "id" | "host" | "pid" | "version" | "started_at" | "timezone">;
  heartbeatMs: number;
  /** Days kept; 0 = keep everything. */
  keepLogDays: number;
  keepRunDays: number;
  state: () => ServiceState;
}

const DAY_MS = 86_400_000;
const RETENTION_EVERY_MS = 3_600_000;
/** The first pruning runs soon after start, once loading is done. */
const RETENTION_FIRST_MS = 5_000;
const PRUNE_BATCH = 1000;
/** Pause between batches so other writers get the tables. */
const PRUNE_PAUSE_MS = 50;

const houseLog = log("housekeeping");

export class Housekeeping {
  private readonly stopping = new AbortController();
  private loops: Promise<void>[] = [];

  constructor(private readonly o: HousekeepingOptions) {}

  start(): void {
    this.loops = [
      this.every(this.o.heartbeatMs, 0, () => this.beat(null)),
      this.every(RETENTION_EVERY_MS, RETENTION_FIRST_MS, () => this.prune()),
    ];
  }

  /** Stop the loops and record the node as stopped, waiting at most `timeoutMs` on the database. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping.abort();
    const last = Promise.all(this.loops).then(() =>
      this.o.health.online ? this.beat(this.o.clock.now()) : undefined
    );
    await settlesWithin(this.o.clock, last, timeoutMs);
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

  private async beat(stoppedAt: number | null): Promise<void> {
    const state = this.o.state();
    await this.o.store.saveNode({
      ...this.o.node,
      heartbeat_at: this.o.clock.now(),
      applied_marker: state.appliedMarker,
      jobs_loaded: state.jobsLoaded,
      last_reload_at: state.lastReload?.at ?? null,
      last_reload_ms: state.lastReload?.ms ?? null,
      stopped_at: stoppedAt,
    });
  }

  private async prune(): Promise<void> {
    for (
      const [table, days] of [["jm_syslog", this.o.keepLogDays], [
        "jm_runs",
        this.o.keepRunDays,
      ]] as const
    ) {
      if (days === 0) continue;
      const before = this.o.clock.now() - days * DAY_MS;
      let total = 0;
      for (;;) {
        const deleted = await this.o.store.pruneOlderThan(table, before, PRUNE_BATCH);
        total += deleted;
        if (deleted < PRUNE_BATCH || this.stopping.signal.aborted) break;
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
