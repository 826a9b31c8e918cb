/**
 * Claims of held fires (cluster.on_database_outage) that failed on their
 * way, or timed out and failed later: the database may have written their
 * rows all the same, under their markers. A fire decided again is claimed
 * with its marker (`marker`), so that the row, if written, is that
 * claim's. Once an instant's claim goes through, the fires of the other
 * lost claims were decided otherwise (missed, skipped, coalesced, another
 * node's): their rows, if written, end `missed` (`end`).
 */
import type { NewRun } from "../domain/run.ts";
import type { LostClaim, RunStore } from "../store/store.ts";
import type { Clock } from "./clock.ts";
import { log } from "./log.ts";

/** The note of a row a lost claim wrote for a fire held, then decided otherwise. */
const LOST_CLAIM_NOTE =
  "held: the database went away as this fire was claimed and the answer was lost; once it was back, the fire was decided again and did not run here (missed, skipped, coalesced with a later fire, or another node's)";

/**
 * Most lost claims kept (claims that keep failing while the database
 * answers its probes add an instant's fires each): past it the oldest are
 * forgotten, their rows, if written, ended at the node's next start.
 */
const MAX_KEPT = 10_000;

const storeLog = log("store");

/** One key per scheduled fire of a job. */
const fireKey = (jobId: string, scheduledAt: number) => `${scheduledAt} ${jobId}`;

export class LostClaims {
  /** The marker each fire is to be claimed with again, by fireKey. */
  private readonly reusable = new Map<string, LostClaim>();
  /** Lost claims not to be made again: their fires were decided since, or claimed again. */
  private stale: LostClaim[] = [];

  constructor(
    private readonly store: Pick<RunStore, "missLostClaims">,
    private readonly clock: Clock,
    private readonly failed: (error: unknown) => void,
    /** Told of each row it ended `missed`, by its job. */
    private readonly missed: (jobId: string) => void = () => {},
  ) {}

  /** The marker a held fire is to be claimed with again, if its claim was lost. */
  marker(jobId: string, scheduledAt: number): string | undefined {
    // Asked for every fire: most often there is none to look for.
    if (this.reusable.size === 0) return undefined;
    return this.reusable.get(fireKey(jobId, scheduledAt))?.marker;
  }

  /** These rows' claim failed on its way: it may have written them. */
  keep(rows: readonly NewRun[]): void {
    for (const { job_id, scheduled_at, marker, trigger } of rows) {
      if (!marker || trigger !== "schedule") continue;
      const key = fireKey(job_id, scheduled_at);
      const earlier = this.reusable.get(key);
      // Claimed again under another marker (after a claim that timed out): either may have landed.
      if (earlier && earlier.marker !== marker) this.stale.push(earlier);
      this.reusable.delete(key);
      this.reusable.set(key, { job_id, scheduled_at, marker });
    }
    this.bound();
  }

  /** The lost claims these rows make again (with their markers), no longer kept: their indexes. */
  take(rows: readonly NewRun[]): number[] {
    const again: number[] = [];
    if (this.reusable.size === 0) return again;
    rows.forEach((row, i) => {
      const key = fireKey(row.job_id, row.scheduled_at);
      if (row.marker && this.reusable.get(key)?.marker === row.marker) {
        this.reusable.delete(key);
        again.push(i);
      }
    });
    return again;
  }

  /**
   * An instant's fires were claimed (or the service stops): the fires of
   * the lost claims left were decided otherwise; their rows, if written,
   * end `missed`. Resolves when written, or kept again; never rejects.
   */
  end(): Promise<void> {
    const claims = [...this.stale, ...this.reusable.values()];
    if (claims.length === 0) return Promise.resolve();
    this.stale = [];
    this.reusable.clear();
    return this.store.missLostClaims(claims, this.clock.now(), LOST_CLAIM_NOTE).then((ended) => {
      if (ended.length === 0) return;
      for (const claim of ended) this.missed(claim.job_id);
      storeLog.warn(
        "{count} fires held after their claims' answers were lost did not run after all: recorded missed",
        { count: ended.length },
      );
    }, (error) => {
      // Tried again after the next instant's claim.
      this.stale.push(...claims);
      this.bound();
      this.failed(error);
    });
  }

  private bound(): void {
    const excess = this.stale.length + this.reusable.size - MAX_KEPT;
    if (excess <= 0) return;
    const fromStale = Math.min(excess, this.stale.length);
    this.stale.splice(0, fromStale);
    for (let i = fromStale; i < excess; i++) {
      this.reusable.delete(this.reusable.keys().next().value!);
    }
    storeLog.warn(
      "{count} claims lost on their way were forgotten (more than {max} waited): their rows, if written, stay running until this node restarts",
      { count: excess, max: MAX_KEPT },
    );
  }
}
