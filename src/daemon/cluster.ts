/**
 * This service as one node of several on one database, with MySQL as the
 * only coordinator: it takes a node id no live service holds, writes its
 * heartbeat with the database's clock, finds nodes that stopped beating
 * (by that clock: skew between servers cannot kill a live node) and
 * declares them dead by a conditional write, so exactly one node marks
 * their runs `lost`. Every node computes the same owner for every job from
 * the live node ids (domain/share.ts); the `jm_runs` claim stays the
 * safety net for the moments two nodes disagree.
 */
import { errorMessage, RuntimeError } from "../errors.ts";
import {
  heartbeatAge,
  inStep,
  MAX_SKEW_MS,
  type Node,
  nodeState,
  ofOlderSchema,
  type ProcessSpace,
  sameProcessSpace,
  sharers,
  STALE_AFTER_BEATS,
} from "../domain/node.ts";
import { MAX_RECONNECT_WAIT_MS } from "./db_health.ts";
import {
  assignJobs,
  basisDifference,
  jobsDigest,
  readShareBasis,
  sameBasis,
  shareBasis,
} from "../domain/share.ts";
import { SCHEMA_VERSION } from "../store/migrations.ts";
import type { NodeStore } from "../store/store.ts";
import { type Clock, settlesWithin } from "./clock.ts";
import type { DbHealth } from "./db_health.ts";
import { log } from "./log.ts";
import { serviceGone } from "./presence.ts";

/**
 * Who this service is; `id` empty: pick one (see `Cluster.register`).
 * `boot_id` and `pid_ns`: where its pid means something (null where
 * /proc does not say); a row of the same tells whether its pid runs.
 * `process_start`: its start since boot (presence.ts `hereService`),
 * written in each of its rows, by which `status` tells its process from
 * one that took its pid, whatever the wall clock did since it started;
 * absent where /proc does not say.
 */
export type NodeIdentity =
  & Pick<Node, "id" | "host" | "pid" | "version" | "started_at">
  & ProcessSpace
  & Pick<Node, "process_start">;

/** The database's clock, read between two readings of this machine's (`wallClock`). */
interface ClockReading {
  databaseNow: number;
  before: number;
  after: number;
}

/** What the heartbeat reports of the scheduler. */
export interface BeatState {
  jobsLoaded: number;
  appliedMarker: number;
  lastReload: { at: number; ms: number } | null;
}

export type OutagePolicy = "auto" | "run" | "hold";

/** Jobs that became this node's, each with why (a node that left), for the scheduler to catch up. */
export type Gained = Map<string, string | null>;

export interface ClusterOptions {
  store: Pick<
    NodeStore,
    "claimNode" | "saveNode" | "nodesAndNow" | "databaseNow" | "declareDead"
  >;
  clock: Clock;
  /**
   * This machine's clock, measured against the database's at each
   * heartbeat. It is the one `clock` reads in a service; a test's fake
   * `clock` is far from the database's by design, and is not measured.
   */
  wallClock: () => number;
  /**
   * A clock no one steps (`performance.now`): how far `wallClock` moved
   * since the last measure beyond it is a step of this machine's clock,
   * once `sinceBoot` confirms it.
   */
  monotonic?: () => number;
  /**
   * Milliseconds since the machine booted, its suspends included (Linux's
   * CLOCK_BOOTTIME, as /proc/uptime gives it); null where unknown. The
   * monotonic clock stands still while the machine sleeps, and the wall
   * clock moves on: that is no step.
   */
  sinceBoot?: () => number | null;
  health: DbHealth;
  node: NodeIdentity & { timezone: string };
  heartbeatMs: number;
  /** How long nodes may disagree on the assignment (a reload or a heartbeat apart). */
  reloadIntervalMs: number;
  /**
   * How often other nodes are looked at while others are live: every
   * second unless said (or every heartbeat, when that is shorter). Alone,
   * this node looks at each heartbeat.
   */
  sweepMs?: number;
  outagePolicy: OutagePolicy;
  state: () => BeatState;
  /** Told when this node declared node `nodeId` dead at `at`, and the runs it marked lost then. */
  declaredDead?: (nodeId: string, at: number, runIds: readonly number[]) => void;
  /**
   * Told when another service holds this node's id (`holder`, its row):
   * it registered while this one sent no heartbeat. This node writes its
   * row no more from then on.
   */
  displaced?: (holder: Node) => void;
  /**
   * Told the ids of the nodes that write to the database (live and
   * leaving ones, this one included) when a sweep finds them changed.
   */
  writersChanged?: (writers: readonly string[]) => void;
  /**
   * The ids of the enabled jobs that have a user, sorted: asked only when a
   * live node of an older release is found (see `warnOfOlder`).
   */
  jobsWithUser?: () => string[];
}

/**
 * Other nodes are looked at this often while others are live (or every
 * heartbeat, when that is shorter). A node alone looks at each heartbeat
 * only: no other can die meanwhile, and one that joins fires its share from
 * its start while this one, till it sees it, fires every job; the `jm_runs`
 * claim runs each fire once, so the heartbeat only bounds how long both
 * claim the newcomer's fires.
 */
const SWEEP_MS = 1000;
/** Milliseconds since boot, suspends included, from /proc/uptime; null where it cannot be read. */
function readSinceBoot(): number | null {
  try {
    return Number(Deno.readTextFileSync("/proc/uptime").split(" ")[0]) * 1000;
  } catch {
    return null;
  }
}

/** Jobs the warning of an older node names, at most; the rest are counted. */
const OLDER_NAMED_JOBS = 5;

/** Ids tried after the host name while live services hold them: host:2 … */
const MAX_AUTOMATIC_IDS = 100;

const clusterLog = log("cluster");

export class Cluster {
  private id = "";
  private live: string[] = [];
  /** The live nodes the jobs are shared over: those whose clock is in step (domain/node.ts `sharers`). */
  private sharing: string[] = [];
  /** Other nodes as last seen that are stopping: they still write their runs' ends. */
  private leaving: string[] = [];
  /** Other nodes as last seen that may fire again on their own: all but those stopped cleanly. */
  private mayReturn: string[] = [];
  /**
   * Looks at the other nodes since this node's row was written: a node
   * that wrote its row after the first look is seen by the second (it saw
   * this one, and holds), so only from then on may `auto` fire through.
   */
  private sweeps = 0;
  private jobs: string[] = [];
  /** Whether this node schedules a job (see `setJobs`). */
  private scheduled: (jobId: string) => boolean = () => false;
  private owners = new Map<string, string>();
  /** The assignment before the last change, honoured for `transitionMs` after it. */
  private previous = new Map<string, string>();
  private changedAt = -Infinity;
  /** Whether the last assignment gave every job to this node, the only live one. */
  private aloneBefore = false;
  /** This machine's clock minus the database's, as last measured; null before. */
  private skew: number | null = null;
  /** This machine's clocks when `skew` was measured (see `skewNow`); null before. */
  private measuredAt: { wall: number; monotonic: number; sinceBoot: number | null } | null = null;
  /**
   * Nodes this one declared dead without an answer, with the heartbeat it
   * named: the declaration may have been written, and its lost runs are
   * then this node's to retry (see `sweep`).
   */
  private readonly declaring = new Map<string, number>();
  /**
   * Each other node's heartbeat (db_heartbeat_at) as this node last saw it,
   * and the database's clock when it first saw it so (see `unchangedSince`).
   */
  private readonly beatsSeen = new Map<string, { beat: number; since: number }>();
  /** The ids `setJobs` last gave, counted and digested, and their marker: the share basis. */
  private jobsSeen = { count: 0, digest: jobsDigest([]), marker: 0 };
  /** Live nodes found sharing from another basis, since when (this node's clock), and whether said. */
  private readonly apart = new Map<string, { since: number; said: boolean }>();
  /** When this node's graceful stop began (see `leave`); null while it fires. */
  private leavingAt: number | null = null;
  /** The database's clock at the last sweep (see `sweep`); null before the first. */
  private lastSweepAt: number | null = null;
  /**
   * The database's clock when this node looked again after looking at
   * nothing for a while (an outage, a stall); null while it never was away.
   */
  private backAt: number | null = null;
  /** The live nodes left out of the sharing last warned of (see `sweep`); "" when none. */
  private fencedSeen = "";
  /** The different zones of the live nodes last warned of (see `warnOfZones`); "" when one. */
  private zonesSeen = "";
  /** Live nodes of an older release this node has warned of, and the jobs it named (see `warnOfOlder`). */
  private readonly olderSaid = new Map<string, Set<string>>();
  /**
   * The grace each silent node was given, once for its silence (the
   * heartbeat it last wrote): a later return of this node, or a slow sweep,
   * starts no new one, else a node that died would keep its share for as
   * long as this node's turns were slow or its database flapped.
   */
  private readonly graces = new Map<string, { beat: number; until: number; told: boolean }>();
  /** Set when the database counts as back after an outage; the next sweep sets `backAt`. */
  private returned = false;
  /** The service that took this node's id, once one did (see `takenBy`): this one writes no more. */
  private displacedBy: Node | null = null;
  /**
   * The declaration of this node's death (declared_dead_at) its last look
   * found in its row, null for none, undefined before the first (see
   * `seeOwnRow`): its heartbeat clears that one only (see `beat`).
   */
  private declaredDeadSeen: number | null | undefined = undefined;
  private readonly stopping = new AbortController();
  /** Set by {@link reportSoon}. */
  private reportDue = false;
  /** Set by {@link steppedOff}: the next turn measures the clock and beats. */
  private measureDue = false;
  /** Whether {@link stillHeld} has said that a measure due failed, since the last measure. */
  private heldSaid = false;
  /** Aborted to end the loop's wait early. */
  private wake = new AbortController();
  private loop: Promise<void> | null = null;
  private onGain: (gained: Gained) => void = () => {};
  private onLost: (runIds: number[]) => void = () => {};
  private onDeclaredDead: () => void = () => {};

  constructor(private readonly o: ClusterOptions) {
    o.health.onBack(() => {
      this.returned = true;
      // Its heartbeat is as old as the outage: written at once, not up to an interval later, so
      // that the nodes back before it do not find it silent past their own grace.
      this.reportSoon();
    });
  }

  /** This node's id; set by `register`. */
  get nodeId(): string {
    return this.id;
  }

  /** The nodes that write to the database as last seen, this one included: live and leaving. */
  get writers(): readonly string[] {
    return [...this.live, ...this.leaving];
  }

  /** Call `fn` when jobs become this node's (another node died, stopped or joined). */
  whenGaining(fn: (gained: Gained) => void): void {
    this.onGain = fn;
  }

  /** Call `fn` with the runs this node marked `lost` when it declared their node dead. */
  whenLost(fn: (runIds: number[]) => void): void {
    this.onLost = fn;
  }

  /**
   * Call `fn` when this node finds that another declared it dead while it
   * ran on: the runs it holds were marked `lost` then.
   */
  whenDeclaredDead(fn: () => void): void {
    this.onDeclaredDead = fn;
  }

  /**
   * Take a node id: the configured one, refused while a live service holds
   * it; else the host name, or host:2, host:3 … while live services hold
   * those. A row left by a crashed service of this boot and pid namespace
   * (its pid gone) is taken over at once, so a restart keeps its id; one
   * of another (a container given this host's name, whose pid this
   * process cannot look up), or that does not say (an older release), once
   * its heartbeat is STALE_AFTER_BEATS intervals old.
   */
  async register(): Promise<string> {
    const { node } = this.o;
    const explicit = node.id !== "";
    const candidates = explicit ? [node.id] : [
      node.host,
      ...Array.from(
        { length: MAX_AUTOMATIC_IDS - 1 },
        (_, i) => `${node.host}:${i + 2}`,
      ),
    ];
    // Measured before the row is first written: a node whose clock is off
    // is never seen taking a share.
    this.measure(await this.look());
    for (const id of candidates) {
      let databaseNow = 0;
      const holder = await this.o.store.claimNode(
        this.row(id, this.o.clock.now(), 0, null),
        (existing, now) => {
          databaseNow = now;
          const state = nodeState(existing, now, this.o.heartbeatMs, now);
          // A node that is stopping still ends its runs under its id.
          return (state !== "live" && state !== "leaving") || serviceGone(existing, node);
        },
      );
      if (holder === null) {
        this.id = id;
        this.live = [id];
        this.sharing = [id];
        // Know the others before the first fire: it then goes to its owner only.
        const reading = await this.look();
        this.seeOwnRow(reading.nodes);
        await this.sweep(reading);
        return id;
      }
      if (explicit) {
        const { age } = heartbeatAge(holder, databaseNow, this.o.heartbeatMs, databaseNow);
        const where = `pid ${holder.pid} on ${holder.host}, last heartbeat ${
          Math.max(0, Math.round(age / 1000))
        } s ago${this.unseen(holder, databaseNow)}`;
        throw new RuntimeError(
          holder.leaving_at != null
            ? `node id ${
              JSON.stringify(id)
            } is in use by a service that is stopping and still ending its runs (${where}): start this one once it has stopped (within its shutdown_timeout), or give this one another id (jobsmanager.node_id or JM_NODE_ID)`
            : `node id ${
              JSON.stringify(id)
            } is in use by a live service (${where}); give each service on this database its own: set jobsmanager.node_id in the config or JM_NODE_ID, or leave both empty for an automatic one`,
        );
      }
    }
    throw new RuntimeError(
      `live services hold ${node.host} to ${node.host}:${MAX_AUTOMATIC_IDS}; set jobsmanager.node_id or JM_NODE_ID`,
    );
  }

  /**
   * Why `holder`, a row of this host's name this node may not take, counts
   * as live though its pid may be gone: "" where this process can look its
   * pid up (it runs), or it is another host's.
   */
  private unseen(holder: Node, databaseNow: number): string {
    const here = this.o.node;
    if (holder.host !== here.host || sameProcessSpace(holder, here)) return "";
    const { interval } = heartbeatAge(holder, databaseNow, this.o.heartbeatMs, databaseNow);
    const where = here.boot_id === null || here.pid_ns === null
      ? "this machine has no /proc to tell"
      : holder.boot_id == null || holder.pid_ns == null
      ? "its row does not say which boot and pid namespace it runs in (an older release)"
      : holder.boot_id !== here.boot_id
      ? "it runs on another machine of this name (another boot id)"
      : "it runs in another pid namespace (a container given this host's name)";
    return `; this process cannot look its pid up: ${where}; judged by its heartbeat, it is gone only once that is ${
      STALE_AFTER_BEATS * interval / 1000
    } s old`;
  }

  /**
   * What the heartbeat reports changed (a reload applied markers): it is
   * written now, not at the next beat, so that `status` does not show a
   * node behind on markers it has applied.
   */
  reportSoon(): void {
    this.reportDue = true;
    this.wake.abort();
  }

  /**
   * The jobs changed (start, reload): share them again. `all`: the id of
   * every row of jm_jobs, enabled or not, valid or not, so that nodes of
   * releases that judge a row differently (a rule added since) still agree
   * on every owner: shared over the jobs each schedules, a row one of them
   * left out moved others, and a job both took for the other's never fired.
   * `scheduled`: whether this node schedules a job, counted in its share.
   */
  setJobs(all: Iterable<string>, scheduled: (jobId: string) => boolean, marker: number): void {
    this.jobs = [...all];
    this.jobsSeen = { count: this.jobs.length, digest: jobsDigest(this.jobs), marker };
    this.scheduled = scheduled;
    this.reassign(new Map());
  }

  /**
   * Whether this node takes a share of the work whose time its clock
   * judges (fires, due retries and follow-ups): false while its clock is
   * off and another live node's is in step (see `sweep`).
   */
  get takesShare(): boolean {
    if (!this.sharing.includes(this.id)) return false;
    // Measured in step, so the others sharing are too, and stepped off since (up to a sweep
    // ago): fires judged by it now would be early, or recorded missed before they are due, their
    // rows keeping the others from firing them.
    if (this.sharing.length > 1 && inStep(this.skew) && !inStep(this.skewNow())) {
      this.steppedOff();
      return false;
    }
    return true;
  }

  /** This machine's clock minus the database's now: the last measure, moved by any step since. */
  private skewNow(): number | null {
    if (this.skew === null || this.measuredAt === null) return this.skew;
    const moved = this.o.wallClock() - this.measuredAt.wall;
    const skew = this.skew + moved - (this.monotonic() - this.measuredAt.monotonic);
    // Off by the monotonic clock, which a sleep of the machine stops: by the boot clock, which
    // counts it (read only then: a file read).
    const booted = this.measuredAt.sinceBoot;
    const now = booted === null || inStep(skew) ? null : this.sinceBoot();
    return now === null ? skew : this.skew + moved - (now - booted!);
  }

  private sinceBoot(): number | null {
    return (this.o.sinceBoot ?? readSinceBoot)();
  }

  private monotonic(): number {
    return this.o.monotonic ? this.o.monotonic() : performance.now();
  }

  /**
   * The clock, found stepped off, could not be measured again (`why`): the
   * node goes on firing nothing, and says so once (steppedOff said the step
   * itself) rather than go silent for as long as the measures fail.
   */
  private stillHeld(why: string): void {
    if (this.heldSaid) return;
    this.heldSaid = true;
    clusterLog.warn(
      "this node still fires nothing: its clock moved {step} ms since it was last measured against the database's, and {why}; it tries again at each look at the nodes, and fires again once measured in step",
      { step: Math.round(this.skewNow()! - this.skew!), why },
    );
  }

  /**
   * This machine's clock minus the database's as the other nodes are to
   * see it: the last measure, or, while a step waits to be measured, the
   * measure moved by the step, so that they take this node's share
   * meanwhile rather than leave it unfired.
   */
  private get reportedSkew(): number | null {
    const skew = this.measureDue ? this.skewNow() : this.skew;
    return skew === null ? null : Math.round(skew);
  }

  /** The clock was found stepped off between two sweeps: measured again at once, and said then. */
  private steppedOff(): void {
    if (this.measureDue) return;
    this.measureDue = true;
    clusterLog.warn(
      "this node's clock moved {step} ms since it was last measured against the database's; it fires nothing until it is measured again",
      { step: Math.round(this.skewNow()! - this.skew!) },
    );
    this.wake.abort();
  }

  /**
   * Whether this node fires `jobId`: it owns it now, or owned it just
   * before the assignment changed (the others may not have seen the change
   * yet; the claim decides between the two).
   */
  mayFire(jobId: string): boolean {
    // Leaving: the live nodes fire its jobs. Its clock off (see `sweep`): at once, not after
    // the transition: the others catch up the fires since the last recorded one.
    if (this.leavingAt !== null || !this.takesShare) return false;
    return this.assigned(jobId);
  }

  /** Whether `jobId` is this node's by the assignment, or by the one before within the transition. */
  private assigned(jobId: string): boolean {
    if (this.owners.get(jobId) === this.id) return true;
    // A clock stepped back since the change (a negative time since it) ends the transition:
    // it would otherwise last as long as the step, this node firing jobs another now owns.
    const since = this.o.clock.now() - this.changedAt;
    return since >= 0 && since < this.transitionMs && this.previous.get(jobId) === this.id;
  }

  /** How long nodes may see a change at different times: a reload or a heartbeat apart, twice. */
  private get transitionMs(): number {
    return 2 * Math.max(this.o.reloadIntervalMs, this.o.heartbeatMs) +
      (this.o.sweepMs ?? SWEEP_MS);
  }

  /**
   * Whether fires that cannot be claimed must not run
   * (cluster.on_database_outage). `auto` runs them only when no other node
   * was last seen that could fire again on its own: a live one, or one that
   * died (killed, crashed: its supervisor starts it again, and it then
   * catches up the fires since its last recorded one, which this node,
   * unable to record them, would have run too). Only nodes that stopped cleanly,
   * or are stopping, count as gone.
   */
  get holds(): boolean {
    const policy = this.o.outagePolicy;
    return policy === "hold" ||
      (policy === "auto" && (this.mayReturn.length > 0 || !this.settled));
  }

  /** Whether this node has looked at the others twice since its row was written (see `sweeps`). */
  get settled(): boolean {
    return this.sweeps >= 2;
  }

  /** Why this node holds its fires while the database is away; null when it fires them anyway. */
  get holdingReason(): string | null {
    if (!this.holds) return null;
    return this.o.outagePolicy === "hold"
      ? "cluster.on_database_outage is hold"
      : this.mayReturn.length > 0
      ? `cluster.on_database_outage is auto and other nodes may fire them: ${
        this.mayReturn.join(", ")
      }`
      : "cluster.on_database_outage is auto and this node has not looked at the others twice since it started: one that started with it may not be seen yet";
  }

  start(): void {
    this.loop = this.run();
  }

  /**
   * This node fires no more (its graceful stop began): its heartbeat,
   * written at once, says it is leaving, so that the others take its jobs
   * now, not once its runs have ended (up to shutdown_timeout later). It
   * beats on meanwhile, so that it is declared dead only if it dies before
   * its stop ends; the others count the runs it ends against their new
   * jobs' max_instances.
   */
  leave(): void {
    if (this.leavingAt !== null) return;
    this.leavingAt = this.o.clock.now();
    this.reportSoon();
  }

  /** Stop the loop and record the node as stopped, waiting at most `timeoutMs` on the database. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping.abort();
    // A row another service took is its own: this one's stop is not written over it.
    const last = (this.loop ?? Promise.resolve()).then(() =>
      this.o.health.online && this.displacedBy === null ? this.beat(this.o.clock.now()) : undefined
    );
    await settlesWithin(this.o.clock, last, timeoutMs);
  }

  private async run(): Promise<void> {
    const sweepMs = Math.min(this.o.sweepMs ?? SWEEP_MS, this.o.heartbeatMs);
    let nextBeat = this.o.clock.now();
    while (!this.stopping.signal.aborted) {
      // Before the report is looked at: one asked for meanwhile ends the wait below.
      this.wake = new AbortController();
      if (this.o.health.online) {
        try {
          // The beat is due by the time of the wake, not of the sweep's answer; and at once
          // when the clock was stepped back (the next one would wait as long as the step,
          // and the others would declare this node dead meanwhile).
          const now = this.o.clock.now();
          const due = now >= nextBeat || now < nextBeat - this.o.heartbeatMs || this.reportDue ||
            this.measureDue;
          if (due) {
            this.reportDue = false;
            nextBeat = now + this.o.heartbeatMs;
          }
          const seen = this.look();
          const reading = await seen.catch(() => undefined);
          const holder = reading === undefined ? null : this.takenBy(reading.nodes);
          if (holder !== null) {
            this.displacedBy = holder;
            this.o.displaced?.(holder);
            return;
          }
          // Each look measures this node's clock: one found off (or back) is said at once, in a
          // heartbeat out of turn, not up to a heartbeat later.
          const stepped = reading !== undefined && this.measure(reading);
          // Read before the heartbeat, which clears only a declaration this node has read (see
          // `beat`), and then at once: the others count it dead till then.
          const declared = reading !== undefined && this.seeOwnRow(reading.nodes);
          const beatDue = due || stepped || declared;
          // Written before the sweep acts on what the look saw (declaring a node dead may
          // wait on its locks), with the clock the look read, or one read now if it failed.
          if (beatDue) await this.beat(null, reading);
          await this.sweep(await seen);
        } catch (error) {
          if (this.measureDue) {
            this.stillHeld(`it could not be measured again (${errorMessage(error)})`);
          }
          this.o.health.failed(error);
        }
      } else if (this.measureDue) {
        this.stillHeld(
          "the database is unreachable: it is measured again once the database is back",
        );
      }
      // Alone: till the next heartbeat (with the database away, a sweep's time).
      // Further off than a heartbeat, the clock went back while this turn
      // ran (a slow write): the next turn, at once, beats.
      const alone = this.writers.length <= 1 && this.o.health.online;
      const untilBeat = nextBeat - this.o.clock.now();
      await this.o.clock.sleep(
        alone ? (untilBeat > this.o.heartbeatMs ? 0 : untilBeat) : sweepMs,
        AbortSignal.any([this.stopping.signal, this.wake.signal]),
      );
    }
  }

  private row(id: string, now: number, databaseNow: number, stoppedAt: number | null): Node {
    const state = this.o.state();
    return {
      ...this.o.node,
      id,
      heartbeat_at: now,
      db_heartbeat_at: databaseNow,
      heartbeat_ms: this.o.heartbeatMs,
      applied_marker: state.appliedMarker,
      jobs_loaded: state.jobsLoaded,
      jobs_owned: this.ownedBy(id),
      last_reload_at: state.lastReload?.at ?? null,
      last_reload_ms: state.lastReload?.ms ?? null,
      stopped_at: stoppedAt,
      skew_ms: this.reportedSkew,
      declared_dead_at: null,
      declared_dead_by: null,
      leaving_at: this.leavingAt,
      share_basis: JSON.stringify(shareBasis(this.jobsSeen, this.sharing)),
      // What the other nodes, and every command that gives a job a user, tell older releases by.
      schema_version: SCHEMA_VERSION,
    };
  }

  /** How many jobs `id` fires; counted, not listed: with 10,000 jobs each heartbeat would copy them. */
  private ownedBy(id: string): number {
    if (id === this.id && this.leavingAt !== null) return 0;
    let count = 0;
    for (const [job, owner] of this.owners) if (owner === id && this.scheduled(job)) count++;
    return count;
  }

  /**
   * Write the heartbeat, with the database's clock and how far this
   * machine's is from it: as `reading` found them (the look at the nodes
   * just before, whose query reads the database's clock too), else as
   * read now. It leaves a declaration of this node's death that this node
   * has not read (written since its last look, or while that look failed):
   * erased, the next look would find a clean row, and the node would never
   * learn that its runs were marked lost and its jobs moved. Its row says
   * `dead` meanwhile, as it is to the others, until a look reads it.
   */
  private async beat(stoppedAt: number | null, reading?: ClockReading): Promise<void> {
    const found = reading ?? await this.readClock(
      async () => ({ databaseNow: await this.o.store.databaseNow() }),
    );
    this.measure(found);
    await this.o.store.saveNode(
      this.row(this.id, this.o.clock.now(), found.databaseNow, stoppedAt),
      this.declaredDeadSeen ?? null,
    );
    // The database takes writes again (a disk freed): said at once, even with no run to record.
    this.o.health.writesTaken();
  }

  /**
   * Take this machine's clock minus the database's from `reading`, and say
   * when it goes beyond MAX_SKEW_MS or comes back: true then. The database
   * read its clock somewhere between `before` and `after`: a reading slower
   * than the skew it would warn of (a database that stalled) cannot tell
   * it, and the last one stands.
   */
  private measure(reading: ClockReading): boolean {
    const { databaseNow, before, after } = reading;
    // This machine's clock went back while the database answered (NTP stepped it): the reading
    // tells nothing of either clock, and the next look measures it again (it made a clock
    // stepped back in step read as half the step off, and said so).
    if (after < before) return false;
    if (after - before > MAX_SKEW_MS) {
      if (this.measureDue) {
        this.stillHeld(
          `the database answered too slowly to measure it again (in ${
            Math.round(after - before)
          } ms; a reading slower than ${MAX_SKEW_MS} ms cannot tell a clock off by more)`,
        );
      }
      return false;
    }
    const skew = Math.round((before + after) / 2 - databaseNow);
    const wasInStep = inStep(this.skew);
    // Found stepped (steppedOff said it fires nothing till now), and in step after all.
    if (this.measureDue && inStep(skew)) {
      clusterLog.info(
        "this node's clock is measured again, within {max} ms of the database's: it takes its share of the jobs again",
        { max: MAX_SKEW_MS },
      );
    }
    this.heldSaid = false;
    if (!inStep(skew) && wasInStep) {
      clusterLog.warn(
        "this node's clock is {skew} ms off the database's; fires are computed from a node's own clock, so this node takes no share of the jobs while another live node's clock is within {max} ms of the database's (alone, or with all off, it fires at its clock's instants); fix its time sync (NTP)",
        { skew, max: MAX_SKEW_MS },
      );
    } else if (inStep(skew) && !wasInStep) {
      clusterLog.info(
        "this node's clock is back within {max} ms of the database's: it takes its share of the jobs again",
        { max: MAX_SKEW_MS },
      );
    }
    this.skew = skew;
    this.measuredAt = {
      wall: this.o.wallClock(),
      monotonic: this.monotonic(),
      sinceBoot: this.sinceBoot(),
    };
    this.measureDue = false;
    return inStep(skew) !== wasInStep;
  }

  /** `read` the database's clock between two readings of this machine's. */
  private async readClock<T extends { databaseNow: number }>(
    read: () => Promise<T>,
  ): Promise<T & ClockReading> {
    const before = this.o.wallClock();
    const found = await read();
    return { ...found, before, after: this.o.wallClock() };
  }

  /** All nodes, with the database's clock as the same query read it. */
  private look(): Promise<{ nodes: Node[] } & ClockReading> {
    return this.readClock(() => this.o.store.nodesAndNow());
  }

  /**
   * Live nodes that fire jobs naming no zone in different zones (their
   * `jobsmanager.timezone`, else their machine's) move those jobs' fires
   * as the jobs move between them: said once for each different set.
   */
  private warnOfZones(live: Node[]): void {
    const zones = new Map<string, string[]>();
    for (const node of live) {
      const zone = node.id === this.id ? this.o.node.timezone : node.timezone;
      if (zone !== null) zones.set(zone, [...zones.get(zone) ?? [], node.id]);
    }
    const seen = zones.size > 1
      ? [...zones].map(([zone, ids]) => `${ids.sort().join(", ")}: ${zone}`).sort().join("; ")
      : "";
    if (seen === this.zonesSeen) return;
    this.zonesSeen = seen;
    if (seen === "") return;
    clusterLog.warn(
      "the live nodes fire jobs that name no time zone in different zones ({zones}): such a job fires at other instants as it moves between them; give every node the same jobsmanager.timezone, or each job its own (job update --timezone)",
      { zones: seen },
    );
  }

  /**
   * Live nodes of a release before schema version 17 ignore a job's user
   * and run the job as their own user (root, typically): said as an error,
   * once for each such node while enabled jobs have a user (again when it
   * comes back after it was not live), so that the operator upgrades or
   * stops it. No command gives a job a user meanwhile (app/older_nodes.ts),
   * but jobs given one before it was seen, or in SQL, have it.
   */
  private warnOfOlder(older: Node[], databaseNow: number): void {
    for (const id of this.olderSaid.keys()) {
      if (!older.some((n) => n.id === id)) this.olderSaid.delete(id);
    }
    if (older.length === 0) return;
    const withUser = this.o.jobsWithUser?.() ?? [];
    // Said again when a job gained a user (or was enabled) since: it is at risk anew.
    const unsaid = older.filter((n) => withUser.some((id) => !this.olderSaid.get(n.id)?.has(id)));
    if (unsaid.length === 0) return;
    const shown = withUser.slice(0, OLDER_NAMED_JOBS).join(", ") +
      (withUser.length > OLDER_NAMED_JOBS ? `, … ${withUser.length - OLDER_NAMED_JOBS} more` : "");
    for (const node of unsaid) {
      this.olderSaid.set(node.id, new Set(withUser));
      const { age } = heartbeatAge(node, databaseNow, this.o.heartbeatMs, databaseNow);
      clusterLog.error(
        "node {peer} (host {host}, pid {pid}, last heartbeat {seconds} s ago) runs an older release of jobsmanager (its row in jm_nodes names no schema_version), which ignores a job's user: the enabled jobs with a user ({count}: {jobs}) run there as that service's own user, root typically, when they fall to it; upgrade or stop that service",
        {
          peer: node.id,
          host: node.host,
          pid: node.pid,
          seconds: Math.round(age / 1000),
          count: withUser.length,
          jobs: shown,
        },
      );
    }
  }

  /**
   * Since when (the database's clock) this node has seen `node`'s heartbeat
   * as it is now; undefined for a row without one. Seen again after the
   * database's clock went back past that, it counts from now: a heartbeat
   * ahead of the clock (the database's clock stepped back after it was
   * written) grows old as this node watches it stay the same, not only
   * once the clock has caught up with it.
   */
  private unchangedSince(node: Node, databaseNow: number): number | undefined {
    const beat = node.db_heartbeat_at;
    if (beat == null || node.id === this.id) return undefined;
    const seen = this.beatsSeen.get(node.id);
    if (seen !== undefined && seen.beat === beat && seen.since <= databaseNow) return seen.since;
    this.beatsSeen.set(node.id, { beat, since: databaseNow });
    return databaseNow;
  }

  /**
   * Whether `node`, silent since `beat`, may only have been away as this
   * node was: it is given its STALE_AFTER_BEATS heartbeats, and the longest
   * wait between two tries to reconnect, from this node's return.
   */
  private mayHaveBeenAway(node: Node, beat: number, databaseNow: number): boolean {
    return databaseNow < (this.graceOf(node, beat)?.until ?? -Infinity);
  }

  /** The grace of `node`, silent since `beat`: given at the first return of this node after it. */
  private graceOf(node: Node, beat: number): { until: number; told: boolean } | undefined {
    const given = this.graces.get(node.id);
    if (given !== undefined && given.beat === beat) return given;
    if (this.backAt === null || this.backAt <= beat) return undefined;
    const interval = node.heartbeat_ms ?? this.o.heartbeatMs;
    const grace = {
      beat,
      until: this.backAt + STALE_AFTER_BEATS * interval + MAX_RECONNECT_WAIT_MS,
      told: false,
    };
    this.graces.set(node.id, grace);
    return grace;
  }

  /**
   * Say, once for each return of this node, that `node` keeps its share
   * though its heartbeat is old: it may be reconnecting too.
   */
  private awaitReturn(node: Node, beat: number, databaseNow: number): void {
    const grace = this.graceOf(node, beat);
    if (grace === undefined || grace.told) return;
    grace.told = true;
    const until = grace.until;
    clusterLog.info(
      "node {peer} has sent no heartbeat since before this node came back (an outage, or a stall, silences every node): it keeps its share of the jobs for {seconds} s more, time to reconnect as this node did; still silent then, it is declared dead and its jobs move",
      { peer: node.id, seconds: Math.ceil((until - databaseNow) / 1000) },
    );
  }

  /** Declare the nodes that stopped beating dead, and share the jobs again. */
  private async sweep(
    { nodes, databaseNow }: { nodes: Node[]; databaseNow: number },
  ): Promise<void> {
    const live: string[] = [];
    const liveRows: Pick<Node, "id" | "skew_ms">[] = [];
    const mayReturn: string[] = [];
    const leaving = new Set<string>();
    // Away itself (its sweeps come a heartbeat apart at most), this node
    // cannot tell a dead node from one that was away as long: an outage
    // stops every node's heartbeats, and each comes back in its own time.
    const gap = this.lastSweepAt === null ? 0 : databaseNow - this.lastSweepAt;
    if (this.returned || gap > 2 * this.o.heartbeatMs) {
      this.backAt = databaseNow;
    }
    this.returned = false;
    this.lastSweepAt = databaseNow;
    for (const node of nodes) {
      const since = this.unchangedSince(node, databaseNow);
      const state = node.id === this.id
        ? "live"
        : nodeState(node, databaseNow, this.o.heartbeatMs, databaseNow, since);
      const beat = node.db_heartbeat_at;
      // Live when this node went away, silent since: it may be reconnecting as this one did, and
      // keeps its share till it had time to (taken from it, its jobs would move back and forth).
      const mayBeBack = state === "stale" && beat != null && this.live.includes(node.id) &&
        this.mayHaveBeenAway(node, beat, databaseNow);
      if (mayBeBack) this.awaitReturn(node, beat, databaseNow);
      if (state === "live" || mayBeBack) {
        live.push(node.id);
        // Its own skew as just measured: the row holds the one its last heartbeat wrote.
        liveRows.push({
          id: node.id,
          skew_ms: node.id === this.id ? this.reportedSkew : node.skew_ms,
        });
      }
      if (state === "leaving") leaving.add(node.id);
      if (node.id !== this.id && state !== "stopped" && state !== "leaving") {
        mayReturn.push(node.id);
      }
      // Declared by this node, whose answer was lost: asked again, the store returns it.
      const unanswered = state === "dead" && node.declared_dead_by === this.id &&
        this.declaring.get(node.id) === beat;
      if (state !== "dead") this.declaring.delete(node.id);
      // Leaving, it would take the dead node's lost runs on as it stops: the live nodes do.
      if ((state !== "stale" && !unanswered) || beat == null || this.leavingAt !== null) {
        continue;
      }
      if (!unanswered && this.mayHaveBeenAway(node, beat, databaseNow)) continue;
      this.declaring.set(node.id, beat);
      const declared = await this.o.store.declareDead(node.id, beat, this.id);
      this.declaring.delete(node.id);
      if (declared) {
        clusterLog.warn(
          "node {node} sent no heartbeat for {seconds} s (database clock) and is declared dead: {lost} of its runs marked lost; its jobs move to the live nodes",
          {
            node: node.id,
            seconds: Math.round((declared.at - Math.min(beat, since ?? beat)) / 1000),
            lost: declared.lost,
          },
        );
        // The node that declares the death retries the lost runs and starts their follow-ups.
        if (declared.runIds.length > 0) this.onLost(declared.runIds);
        if (declared.lost > 0) this.o.declaredDead?.(node.id, declared.at, declared.runIds);
      }
    }
    for (const id of this.beatsSeen.keys()) {
      if (!nodes.some((n) => n.id === id)) this.beatsSeen.delete(id);
    }
    for (const [id, grace] of this.graces) {
      const node = nodes.find((n) => n.id === id);
      if (node?.db_heartbeat_at !== grace.beat) this.graces.delete(id);
    }
    this.warnOfZones(nodes.filter((n) => live.includes(n.id)));
    this.warnOfOlder(
      nodes.filter((n) => n.id !== this.id && live.includes(n.id) && ofOlderSchema(n)),
      databaseNow,
    );
    this.mayReturn = mayReturn.sort();
    if (this.id !== "") this.sweeps++;
    const writersBefore = this.writers.join("\n");
    this.leaving = [...leaving].sort();
    const before = this.live;
    const sharedBefore = this.sharing;
    this.live = live.sort();
    this.sharing = sharers(liveRows).sort();
    if (before.join("\n") !== this.live.join("\n")) {
      clusterLog.info("{count} live nodes: {nodes}", {
        count: this.live.length,
        nodes: this.live.join(", "),
      });
    }
    const offBy = new Map(liveRows.map((n) => [n.id, n.skew_ms]));
    const fenced = this.live.filter((id) => !this.sharing.includes(id));
    if (fenced.join("\n") !== this.fencedSeen) {
      this.fencedSeen = fenced.join("\n");
      if (fenced.length > 0) {
        clusterLog.warn(
          "live nodes whose clock is more than {max} ms off the database's take no share of the jobs: {nodes}; fix their time sync (NTP)",
          {
            max: MAX_SKEW_MS,
            nodes: fenced.map((id) => `${id} (${offBy.get(id)} ms)`).join(", "),
          },
        );
      }
    }
    if (sharedBefore.join("\n") !== this.sharing.join("\n")) {
      const left = new Map(
        sharedBefore.filter((id) => !this.sharing.includes(id)).map((id) => [
          id,
          leaving.has(id)
            ? "is stopping"
            : this.live.includes(id)
            ? `has a clock ${offBy.get(id)} ms off the database's`
            : "is no longer live",
        ]),
      );
      this.reassign(left);
    }
    if (this.writers.join("\n") !== writersBefore) this.o.writersChanged?.(this.writers);
    this.compareBases(nodes);
  }

  /**
   * Say when a live node has shared the jobs from another basis than this
   * node's for longer than a change takes to reach every node (see
   * `transitionMs`): each may then take a job for the other's, which fires
   * on neither. Judged only between bases of the same reload marker (a
   * node that has not read the last change yet is behind, not apart), and
   * only over an unbroken run of looks that found them apart: a look that
   * cannot judge starts it again. Not while this node leaves: it fires
   * nothing, and still counts itself among the nodes while the others no
   * longer do. Said once, and again when they agree.
   */
  private compareBases(nodes: Node[]): void {
    const judged = new Set<string>();
    const mine = shareBasis(this.jobsSeen, this.sharing);
    const now = this.o.clock.now();
    for (const node of this.leavingAt === null ? nodes : []) {
      if (node.id === this.id || !this.live.includes(node.id)) continue;
      const theirs = readShareBasis(node.share_basis);
      if (theirs === null || theirs.marker !== mine.marker) continue;
      judged.add(node.id);
      const seen = this.apart.get(node.id);
      if (sameBasis(theirs, mine)) {
        if (seen?.said) {
          // `peer`, not `node`: a test's cluster sends a record to the node its `node` names.
          clusterLog.info("node {peer} shares the jobs from the same basis as this node again", {
            peer: node.id,
          });
        }
        this.apart.delete(node.id);
        continue;
      }
      // A clock stepped back counts from now.
      if (seen === undefined || now < seen.since) {
        this.apart.set(node.id, { since: now, said: false });
        continue;
      }
      if (seen.said || now - seen.since < this.transitionMs) continue;
      seen.said = true;
      clusterLog.warn(
        "node {peer} has shared the jobs from another basis than this node's for {seconds} s, at the same reload marker {marker}: {difference}; a job each takes for the other's fires on neither, and no missed run is recorded. Run the same release on every node (status lists each node's version); after a change to jm_jobs by hand, run jobsmanager reload",
        {
          peer: node.id,
          seconds: Math.round((now - seen.since) / 1000),
          marker: mine.marker,
          difference: basisDifference(theirs, mine),
        },
      );
    }
    for (const id of this.apart.keys()) if (!judged.has(id)) this.apart.delete(id);
  }

  /**
   * The row of another service under this node's id, if one that started
   * after this one holds it: it registered the id while this one sent no
   * heartbeat (it was paused, or cut off from the database, long enough
   * to count as not live). Looked at before each heartbeat, which would
   * write this one's over it, and two services would fire one share. A
   * row of a service that started before this one is the one this one
   * took the id from, which wrote its heartbeat over this one's (its look
   * failed, or came just before this one registered): this one's next
   * heartbeat writes it back, and that one stops at its next look.
   */
  private takenBy(nodes: readonly Node[]): Node | null {
    const row = nodes.find((n) => n.id === this.id);
    // This one's own start never changes: a later one is another process's (a pid, a host name
    // may be the same: containers).
    return row !== undefined && row.started_at > this.o.node.started_at ? row : null;
  }

  /**
   * Another node declared this one dead (its heartbeats stopped for three
   * intervals: the process was paused or suspended, or the database out of
   * its reach) and this one runs on: say so, once, with what it means. Its
   * next heartbeat makes it live again. Its jobs moved to the others
   * meanwhile, which may still run them: it takes them back as a node
   * gaining jobs does (`whenGaining`), their fires waiting until those
   * runs hold their slots here, then decided from the last recorded fire.
   * True while the row says this node is dead (news or not: a heartbeat
   * that would clear it may have failed): the next heartbeat clears it.
   */
  private seeOwnRow(nodes: readonly Node[]): boolean {
    const row = nodes.find((n) => n.id === this.id);
    if (row === undefined) return false;
    const at = row.declared_dead_at ?? null;
    // The row's first look is its previous life's (a restart): that death is no news.
    const news = this.declaredDeadSeen !== undefined && at !== null &&
      at !== this.declaredDeadSeen;
    this.declaredDeadSeen = at;
    if (!news) return at !== null;
    clusterLog.error(
      "this node was declared dead by node {by} at {at}: it sent no heartbeat for 3 of its intervals (the process was paused or suspended, or could not reach the database); its runs then were marked lost (and retried where their jobs say so) though they may still run here, and its jobs moved to the other nodes; it is live again from this heartbeat on",
      { by: row.declared_dead_by, at: new Date(at).toISOString() },
    );
    this.onDeclaredDead();
    const own: Gained = new Map();
    for (const job of this.jobs) if (this.assigned(job)) own.set(job, null);
    if (own.size > 0) this.onGain(own);
    return true;
  }

  /** Share the jobs over the live nodes; `left`: nodes gone since the last time, with why. */
  private reassign(left: Map<string, string>): void {
    const owners = assignJobs(this.jobs, this.sharing);
    const alone = this.sharing.length === 1 && this.sharing[0] === this.id;
    // Alone before as well: every job was this node's, none changed hands (a
    // reload of 10,000 jobs need not look at each).
    if (alone && this.aloneBefore) {
      this.owners = owners;
      return;
    }
    this.aloneBefore = alone;
    const gained: Gained = new Map();
    let moved = false;
    for (const [job, owner] of owners) {
      const was = this.owners.get(job);
      if (was === undefined || was === owner) continue;
      moved = true;
      if (owner === this.id) {
        const why = left.get(was);
        gained.set(job, why ? `node ${was}, which fired this job, ${why}` : null);
      }
    }
    if (moved) {
      this.previous = this.owners;
      this.changedAt = this.o.clock.now();
      // Its share in `status` is the heartbeat's: written now, not a heartbeat later.
      this.reportSoon();
    }
    this.owners = owners;
    if (gained.size > 0) this.onGain(gained);
  }
}
