/**
 * The daemon built in-process, as `serve` builds it, on a real store
 * (SQLite file or MariaDB), with a fake clock and, unless a test wants
 * real processes, a fake runner whose runs end when the test says. The
 * test moves the clock to an instant, then waits for the state it expects
 * (rows in jm_runs, log lines); nothing depends on how fast the machine is.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { configure, dispose, type LogRecord, withContext } from "@logtape/logtape";
import { defaultSettings, type Settings } from "../src/config/config.ts";
import { boot, type Daemon, stopBudgetMs } from "../src/daemon/boot.ts";
import { SINK_CATEGORY } from "../src/daemon/log.ts";
import { renderMessage } from "../src/daemon/log_sink.ts";
import type {
  Armed,
  ArmRun,
  Launch,
  LaunchOptions,
  LaunchSpec,
  RunResult,
  StartRun,
} from "../src/daemon/runner.ts";
import type { RunObserver } from "../src/daemon/service.ts";
import { buildJob, type JobOptions } from "../src/domain/job.ts";
import type { ProcessSpace } from "../src/domain/node.ts";
import { FINAL_STATUSES, type Run } from "../src/domain/run.ts";
import type { Metrics } from "../src/http/metrics.ts";
import { type Readiness, readinessOf } from "../src/http/health.ts";
import { hereSpace } from "../src/daemon/presence.ts";
import type { Store } from "../src/store/store.ts";
import { VERSION } from "../src/version.ts";
import { FakeClock } from "./fake_clock.ts";
import { MARKER_PREFIX, MARKER_VARIABLE } from "../src/daemon/processes.ts";
import { migrateFresh, rawQuery, readIfThere, type TestDatabase, waitFor } from "./helpers.ts";
import { resolveTarget } from "../src/config/database.ts";
import { openStore } from "../src/store/open.ts";
import { TcpProxy } from "./tcp_proxy.ts";

/** 2030-01-01T00:00:00Z: the daemon starts here; fires of `second *` are T0 + n s. */
export const T0 = Date.UTC(2030, 0, 1);
export const NODE_ID = "test-node";

/** A run the fake runner started: a process that ends when the test says. */
export class FakeRun {
  readonly jobId: string;
  /** Null for a run started under a provisional id (JM_RUN_ID empty). */
  readonly runId: number | null;
  readonly scheduledAt: number;
  readonly startedAt: number;
  /** It was released from a shell armed ahead of its fire. */
  armed = false;
  interrupted = false;
  /** When set, `interrupt()` does not end it (a process that ignores SIGTERM). */
  ignoresInterrupt = false;
  private ended = false;
  private readonly result = Promise.withResolvers<RunResult>();
  readonly handle: Launch;

  constructor(readonly spec: LaunchSpec, private readonly now: () => number) {
    this.jobId = spec.env.JM_JOB_ID;
    this.runId = spec.env.JM_RUN_ID === "" ? null : Number(spec.env.JM_RUN_ID);
    this.scheduledAt = Date.parse(spec.env.JM_SCHEDULED_AT);
    this.startedAt = now();
    this.handle = {
      started: Promise.resolve({ startedAt: this.startedAt, pid: null, marker: null }),
      done: this.result.promise,
      escaped: Promise.resolve(null),
      interrupt: () => {
        this.interrupted = true;
        if (!this.ignoresInterrupt) {
          this.finish({
            status: "interrupted",
            exitCode: null,
            signal: "SIGTERM",
            note: "killed: the service was shutting down",
          });
        }
      },
    };
  }

  get running(): boolean {
    return !this.ended;
  }

  /** End the run: exit 0 unless told otherwise. */
  finish(outcome: Partial<RunResult> = {}): void {
    if (this.ended) return;
    this.ended = true;
    this.result.resolve({
      status: "success",
      exitCode: 0,
      signal: null,
      stdout: "",
      stderr: "",
      startedAt: this.startedAt,
      finishedAt: this.now(),
      outputBytes: 0,
      note: null,
      ...outcome,
    });
  }

  toString(): string {
    return `${this.jobId} run ${this.runId} @${this.scheduledAt - T0}${
      this.ended ? " ended" : " running"
    }${this.interrupted ? " interrupted" : ""}`;
  }
}

/** A shell the fake runner armed ahead of a fire: released by one run, or disarmed. */
export class FakeArmed implements Armed {
  released = false;
  disarmed = false;

  constructor(readonly spec: LaunchSpec, readonly at: number) {}

  disarm(): void {
    if (!this.released) this.disarmed = true;
  }

  /**
   * Released for the run `spec` asks: it must be what was armed, JM_RUN_ID
   * aside (empty when armed), or the service ran another command than the
   * one it armed.
   */
  release(spec: LaunchSpec): void {
    const armed = { ...this.spec, env: { ...this.spec.env, JM_RUN_ID: spec.env.JM_RUN_ID } };
    if (this.released || this.disarmed || this.spec.env.JM_RUN_ID !== "") {
      throw new Error(
        `an armed shell released twice, after its disarm, or armed with a run id: ${this}`,
      );
    }
    if (JSON.stringify(armed) !== JSON.stringify(spec)) {
      throw new Error(
        `released for another run than armed: armed ${JSON.stringify(this.spec)}, released ${
          JSON.stringify(spec)
        }`,
      );
    }
    this.released = true;
  }

  toString(): string {
    return `armed ${this.spec.env.JM_JOB_ID} @${this.at - T0}${this.released ? " released" : ""}${
      this.disarmed ? " disarmed" : ""
    }`;
  }
}

export class FakeRunner {
  readonly runs: FakeRun[] = [];
  /** The shells armed, in order. */
  readonly armed: FakeArmed[] = [];

  /** Called as each run starts (a test makes starting take time). */
  onStart: ((run: FakeRun) => void) | null = null;
  private ending: ((run: FakeRun) => boolean) | null = null;

  /** Runs that came to the runner after their `startBy`, and did not start. */
  readonly late: LaunchSpec[] = [];
  /**
   * While set, runs handed out wait until `releaseStarts()`, as behind a
   * burst in a runner thread; their grace is judged then.
   */
  holdStarts = false;
  /** What a run's lateness is put down to, as a runner says it (Late's `heldBy`). */
  lateHeldBy: string | null = null;
  private readonly held: (() => void)[] = [];

  /** The runs handed out by then, at each time the service sent its starts on (`sendStarts`). */
  readonly sent: number[] = [];

  readonly send = (): void => {
    this.sent.push(this.runs.length + this.held.length);
  };

  readonly arm: ArmRun = (spec) => {
    const armed = new FakeArmed(spec, Date.parse(spec.env.JM_SCHEDULED_AT));
    this.armed.push(armed);
    return armed;
  };

  readonly start: StartRun = (spec, o) => {
    if (o.armed !== undefined) {
      if (!(o.armed instanceof FakeArmed)) {
        throw new Error("released a shell the runner did not arm");
      }
      o.armed.release(spec);
    }
    if (!this.holdStarts) return this.begin(spec, o);
    const later = Promise.withResolvers<Launch>();
    this.held.push(() => later.resolve(this.begin(spec, o)));
    return {
      started: later.promise.then((launch) => launch.started),
      done: later.promise.then((launch) => launch.done),
      escaped: later.promise.then((launch) => launch.escaped),
      interrupt: () => later.promise.then((launch) => launch.interrupt()),
    };
  };

  /** How many runs wait for `releaseStarts()`. */
  get heldStarts(): number {
    return this.held.length;
  }

  /** Let the held runs (the first `count` of them) come to the runner, in the order they were handed out. */
  releaseStarts(count = this.held.length): void {
    for (const begin of this.held.splice(0, count)) begin();
  }

  private begin(spec: LaunchSpec, o: LaunchOptions): Launch {
    const { now, startBy } = o;
    if (now() > startBy) {
      this.late.push(spec);
      return {
        started: Promise.resolve({ late: true as const, heldBy: this.lateHeldBy }),
        done: new Promise(() => {}),
        escaped: new Promise(() => {}),
        interrupt: () => {},
      };
    }
    const run = new FakeRun(spec, now);
    run.armed = o.armed !== undefined;
    this.runs.push(run);
    this.onStart?.(run);
    if (this.ending?.(run)) run.finish();
    return run.handle;
  }

  /**
   * End every run, and from now on each run as soon as it starts; with
   * `keep`, those it picks run on until the test ends them.
   */
  endAll(keep: (run: FakeRun) => boolean = () => false): void {
    this.ending = (run) => !keep(run);
    for (const run of this.runs) if (!keep(run)) run.finish();
  }

  of(jobId: string): FakeRun[] {
    return this.runs.filter((r) => r.jobId === jobId);
  }

  get running(): FakeRun[] {
    return this.runs.filter((r) => r.running);
  }
}

export interface HarnessOptions {
  /** Settings over the defaults (and UTC as the zone). */
  settings?: Partial<Settings>;
  /** Run real processes (`/bin/sh -c`) instead of fake ones. */
  realRuns?: boolean;
  /** The store the daemon uses; `db.open()` by default (a store through a proxy, for outages). */
  store?: () => Store;
  /** Told of runs as they start and end (the HTTP side's metrics). */
  observer?: RunObserver;
  /** Where its pid means something (this process's by default): another pid namespace, say. */
  space?: ProcessSpace;
  /** The node id in jm_nodes; NODE_ID by default. */
  nodeId?: string;
  /**
   * This machine's clock as the daemon measures it against the database's
   * (the real one by default: the fake clock is years away by design).
   */
  wallClock?: () => number;
  /** The clock no one steps the cluster compares it with (`performance.now` by default). */
  monotonic?: () => number;
  /** How long a fire waits for its claim before the database counts as away (1 s, as served). */
  claimTimeoutMs?: number;
  /** The only service its database can have (`serve` holding an SQLite file's lock). */
  soleService?: boolean;
  /** How long a spawn of the fake runner takes, in ms, as the service sizes its arming by it. */
  spawnCost?: number;
  /** Descriptors the service may still open, as it bounds its arming by them; none: no bound. */
  fileRoom?: number;
  /** Leave the database without a schema: the daemon's own migration makes it, as on a new database. */
  unmigrated?: boolean;
}

/** How long a test waits, in real time, for a state it expects. */
const WAIT_MS = 15_000;

/**
 * One daemon on one test database. Create it, add jobs, `start()`; move
 * the clock and wait for states; dispose it (`await using`) to stop the
 * daemon and drop what it opened.
 */
export class DaemonHarness implements AsyncDisposable {
  readonly clock = new FakeClock(T0);
  readonly runner = new FakeRunner();
  readonly logs: LogRecord[] = [];
  readonly settings: Settings;
  /** A store of the test's own, to arrange and inspect the database. */
  readonly store: Store;
  private daemon_: Daemon | null = null;
  private running: Promise<void> | null = null;
  private outcome: { error: unknown } | "ok" | null = null;
  private stoppedAt: number | null = null;
  /** Calls of the daemon's store under way (see `quiet`). */
  private storeCalls = 0;
  /** The daemons logging in this process: itself, or every node of a ClusterHarness. */
  peers: DaemonHarness[] = [this];
  /** Whether disposing it ends the logging and drops the database (not a cluster's node). */
  owner = true;

  private constructor(readonly db: TestDatabase, private readonly options: HarnessOptions) {
    this.settings = {
      ...defaultSettings(),
      "jobsmanager.timezone": "UTC",
      // Real runs start on the real clock while the fake one stands still: a
      // loaded machine's second would otherwise make them late.
      ...options.realRuns ? { "jobsmanager.misfire_grace_time": 60 } : {},
      ...options.settings,
    };
    this.store = db.open();
  }

  /** A harness on `db` with its schema in place; `start()` boots the daemon. */
  static async create(db: TestDatabase, options: HarnessOptions = {}): Promise<DaemonHarness> {
    const h = new DaemonHarness(db, options);
    if (!options.unmigrated) await migrateFresh(db, h.store);
    return h;
  }

  /** Whether `start()` has booted the daemon. */
  get booted(): boolean {
    return this.daemon_ !== null;
  }

  get nodeId(): string {
    return this.options.nodeId ?? NODE_ID;
  }

  get daemon(): Daemon {
    if (!this.daemon_) throw new Error("the daemon is not booted yet: call start()");
    return this.daemon_;
  }

  /** Add (or, given `current`, change) a job through the store, with its marker. */
  async job(id: string, options: JobOptions): Promise<number> {
    const change = await this.store.changeJob(
      id,
      (current) => buildJob(id, { command: "true", ...options }, current, this.clock.now()),
    );
    return change.markerId!;
  }

  async removeJob(id: string): Promise<number> {
    return (await this.store.changeJob(id, () => null)).markerId!;
  }

  /**
   * Boot the daemon and run it; without `wait: false`, wait until it has
   * loaded the jobs. `early` gets the daemon before `run()`, as a signal
   * that comes before the start would.
   */
  async start(
    options: { wait?: boolean; early?: (daemon: Daemon) => void } = {},
  ): Promise<Daemon> {
    const spawnMs = this.options.spawnCost;
    const fileRoom = this.options.fileRoom;
    const daemon = boot({
      settings: this.settings,
      store: this.counted(this.options.store?.() ?? this.db.open()),
      clock: this.clock,
      wallClock: this.options.wallClock,
      monotonic: this.options.monotonic,
      claimTimeoutMs: this.options.claimTimeoutMs,
      soleService: this.options.soleService,
      node: {
        id: this.nodeId,
        host: "test",
        pid: Deno.pid,
        version: VERSION,
        started_at: T0,
        ...this.options.space ?? hereSpace(),
      },
      env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
      // Real runs go through the daemon's own runner threads, as in production.
      startRun: this.options.realRuns ? undefined : this.runner.start,
      armRun: this.options.realRuns ? undefined : this.runner.arm,
      sendStarts: this.options.realRuns ? undefined : this.runner.send,
      spawnCost: spawnMs === undefined ? undefined : () => spawnMs,
      fileRoom: fileRoom === undefined ? undefined : () => fileRoom,
      observer: this.options.observer,
    });
    this.daemon_ = daemon;
    await configureLogs(this.peers);
    options.early?.(daemon);
    // In a cluster, each record says which node logged it (see configureLogs).
    const run = this.peers.length > 1
      ? withContext({ [NODE_PROPERTY]: this.nodeId }, () => daemon.run())
      : daemon.run();
    this.running = run.then(
      () => void (this.outcome = "ok"),
      (error) => void (this.outcome = { error }),
    );
    if (options.wait !== false) {
      await this.until(() => this.line(/^loaded \d+ enabled jobs/), "the daemon to load its jobs");
      // Its cluster loop's first look follows at once: till then, an outage is held whatever the policy.
      await this.until(() => daemon.settled, "the node to look at the others twice");
    }
    return daemon;
  }

  /**
   * `stop()`, as SIGTERM does; returns the instant of the stop. When the
   * service had started, waits until its shutdown has begun, so that a
   * clock moved next is seen by the shutdown's own waits.
   */
  async stop(): Promise<number> {
    this.stoppedAt = this.clock.now();
    this.daemon.stop();
    if (this.line(/^loaded \d+ enabled jobs/)) {
      await this.until(() => this.line(/^stopping: /), "the shutdown to begin");
    }
    return this.stoppedAt;
  }

  /** Until `run()` has resolved (a stop ended). */
  async stopped(): Promise<void> {
    await this.until(() => Promise.resolve(this.ended || null), "the daemon to stop");
  }

  /** The clock moved a second at a time until the service finds the database back after an outage. */
  async databaseBack(): Promise<void> {
    await this.until(async () => {
      if (this.line(/^the database is back/)) return true;
      await this.clock.advance(1000);
      return false;
    }, "the database to be back");
  }

  /** True once `run()` has resolved; throws what it rejected with. */
  get ended(): boolean {
    if (this.outcome !== null && this.outcome !== "ok") throw this.outcome.error;
    return this.outcome === "ok";
  }

  /** The log lines so far, rendered, as `logger: message`. */
  get lines(): string[] {
    return this.logs.map((r) => `${r.category.slice(1).join(".")}: ${renderMessage(r)}`);
  }

  /** The first log message matching `pattern` (without its logger name), or undefined. */
  line(pattern: RegExp): string | undefined {
    return this.logs.map(renderMessage).find((m) => pattern.test(m));
  }

  count(pattern: RegExp): number {
    return this.logs.map(renderMessage).filter((m) => pattern.test(m)).length;
  }

  /** Reload markers: id and whether a service has applied them. */
  async markers(): Promise<{ id: number; updated: boolean }[]> {
    return (await this.store.listMarkers(0, 100_000)).map(({ id, updated }) => ({ id, updated }));
  }

  /** SQL by hand, as a DBA would; retried while the daemon's SQLite transaction holds the lock. */
  async sql(text: string, params: unknown[] = []): Promise<void> {
    for (let attempt = 0;; attempt++) {
      try {
        await rawQuery(this.db, text, params);
        return;
      } catch (error) {
        if (attempt > 50 || !/database is (locked|busy)/.test(String(error))) throw error;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  }

  /** Every run (of `jobId`), oldest first, as the database has them. */
  async runs(jobId?: string): Promise<Run[]> {
    const rows = await this.store.listRuns({ job_id: jobId, limit: 100_000 });
    return rows.sort((a, b) => a.id - b.id);
  }

  /** Wait (real time) until `probe` returns something truthy; fail showing the state. */
  until<T>(
    probe: () => T | Promise<T>,
    what: string,
    timeoutMs = WAIT_MS,
  ): Promise<NonNullable<T>> {
    return until(probe, what, () => this.describe(), timeoutMs);
  }

  /**
   * Wait (real time) until `probe` returns something truthy, moving the
   * fake clock on `step` ms at a time while it is before `to`: what the
   * daemon does within that much fake time, its real work (hooks, posts,
   * writes) given the real time it takes. The clock moves only when
   * `ready` (by default `quiet`) holds at two polls in a row: moved at a
   * fixed real-time rhythm, it reached `to` on a loaded machine before the
   * work the next look needed was done, and that look never came. Fails
   * when neither the probe nor a step comes within `timeoutMs`.
   */
  async stepUntil<T>(
    probe: () => T | Promise<T>,
    what: string,
    o: {
      to: number;
      step?: number;
      ready?: () => boolean | Promise<boolean>;
      timeoutMs?: number;
    },
  ): Promise<NonNullable<T>> {
    const ready = o.ready ?? (() => this.quiet());
    for (;;) {
      let readyPolls = 0;
      const next = await this.until(
        async () => {
          const got = await probe();
          if (got) return { got };
          if (this.clock.now() >= o.to) return null;
          readyPolls = await ready() ? readyPolls + 1 : 0;
          if (readyPolls < 2) return null;
          await this.clock.advance(o.step ?? 1000);
          return { stepped: true };
        },
        `${what}, by T0+${o.to - T0} ms of the fake clock`,
        o.timeoutMs,
      );
      if ("got" in next) return next.got as NonNullable<T>;
    }
  }

  /**
   * Whether the daemon has no real work under way that a look may need
   * done: no call of its store unanswered (`storeIdle`), no process of its
   * own (a hook's) running.
   */
  async quiet(): Promise<boolean> {
    return this.storeIdle && (await childProcesses()).length === 0;
  }

  /** Whether no call of the daemon's store is unanswered (while a hook holds on purpose, say). */
  get storeIdle(): boolean {
    return this.storeCalls === 0;
  }

  /** `store`, counting its calls under way in `storeCalls`. */
  private counted(store: Store): Store {
    return new Proxy(store, {
      get: (target, key) => {
        const value = Reflect.get(target, key, target);
        if (typeof value !== "function") return value;
        return (...args: unknown[]) => {
          const result = value.apply(target, args);
          if (!(result instanceof Promise)) return result;
          this.storeCalls++;
          const done = () => void this.storeCalls--;
          result.then(done, done);
          return result;
        };
      },
    });
  }

  /** Wait for the run of `jobId` fired at `at` to reach one of `statuses`. */
  run(jobId: string, at: number, ...statuses: Run["status"][]): Promise<Run> {
    return this.until(
      async () =>
        (await this.runs(jobId)).find((r) =>
          r.scheduled_at === at && r.trigger === "schedule" && statuses.includes(r.status)
        ),
      `a run of ${jobId} fired at T0+${at - T0} that is ${statuses.join(" or ")}`,
    );
  }

  /**
   * Wait, a second of the fake clock at a time, until the daemon's
   * readiness says its database is not ok (`what`: why it should be so).
   */
  async databaseNotOk(what: string): Promise<Readiness> {
    return await this.until(
      async () => {
        const r = readinessOf(this.daemon.vitals);
        if (r.database.ok) await this.clock.advance(1000);
        return r.database.ok ? undefined : r;
      },
      `${what} (readiness: ${JSON.stringify(readinessOf(this.daemon.vitals))})`,
    );
  }

  /**
   * Wait until one fire holds the only worker (the run the fake runner
   * started) and another waits for it (its row `queued`).
   */
  async oneWaiting(): Promise<{ first: FakeRun; queued: Run }> {
    // The waiting fire's record can land before the other reaches the runner.
    const queued = await this.until(
      async () =>
        this.runner.runs.length === 1
          ? (await this.runs()).find((r) => r.status === "queued")
          : undefined,
      "one fire to hold the worker and the other to wait for it",
    );
    return { first: this.runner.runs[0], queued };
  }

  /** Wait for the fake runner to have started the run of `jobId` fired at `at`. */
  started(jobId: string, at: number): Promise<FakeRun> {
    return this.until(
      () => this.runner.of(jobId).find((r) => r.scheduledAt === at),
      `the runner to start ${jobId} fired at T0+${at - T0}`,
    );
  }

  /** The state, for failure messages: clock, runner, runs, the last log lines. */
  async describe(): Promise<string> {
    let runs: string;
    let markers: string;
    try {
      runs = (await this.runs()).map(describeRun).join("\n");
      markers = (await this.markers()).map((m) => `${m.id}${m.updated ? "" : " pending"}`)
        .join(", ");
    } catch (error) {
      runs = markers = `(cannot read the database: ${error})`;
    }
    return [
      `clock: T0+${this.clock.now() - T0} ms; sleepers wake at ${
        this.clock.wakeUps.map((t) => `T0+${t - T0}`).join(", ")
      }`,
      `daemon: ${
        this.outcome === null ? "running" : JSON.stringify(this.outcome)
      }; store calls under way: ${this.storeCalls}; child processes: ${
        (await childProcesses()).join(", ") || "none"
      }`,
      `fake runs: ${this.runner.runs.join("; ")}`,
      `markers: ${markers}`,
      `jm_runs:\n${runs}`,
      `log (last 30):\n${this.lines.slice(-30).join("\n")}`,
    ].join("\n");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      if (this.running && this.outcome === null) {
        this.runner.endAll();
        if (this.stoppedAt === null) {
          this.stoppedAt = this.clock.now();
          this.daemon.stop();
        }
        // Without runs left, the stop needs no time but the database's; a test
        // that left the database unreachable needs the clock at the deadline.
        if (!await settlesWithin(this.running, 5000)) {
          await this.clock.set(this.stoppedAt! + stopBudgetMs(this.settings));
        }
        await this.running;
      }
    } finally {
      await this.store.close();
      if (this.owner) {
        await dispose();
        await this.db[Symbol.asyncDispose]();
      }
    }
  }
}

/** One store of contexts for every configuration: a node's `withContext` outlives a reconfiguration. */
const contexts = new AsyncLocalStorage<Record<string, unknown>>();
/**
 * The property naming the node that logged a record. Not `node`: a
 * message's own properties override the context's, and one naming
 * another node (`node {node} … is declared dead`) went to that node's log.
 */
const NODE_PROPERTY = "harness_node";

/**
 * Log records to the harnesses' memory and to their daemons' jm_syslog
 * sinks. Alone, a harness gets every record; in a cluster, a record goes
 * to the node its NODE_PROPERTY (set by `withContext` around the node's
 * `run()`) names, and one without it to every node's memory.
 */
async function configureLogs(peers: DaemonHarness[]): Promise<void> {
  const of = (record: LogRecord) =>
    peers.length === 1
      ? peers
      : peers.filter((p) =>
        record.properties[NODE_PROPERTY] === undefined ||
        record.properties[NODE_PROPERTY] === p.nodeId
      );
  await configure({
    reset: true,
    contextLocalStorage: contexts,
    sinks: {
      memory: (record) => of(record).forEach((p) => p.logs.push(record)),
      database: (record) => {
        const [peer] = of(record).filter((p) => p.booted);
        peer?.daemon.logSink(record);
      },
    },
    loggers: [
      { category: ["jobsmanager"], lowestLevel: "debug", sinks: ["memory", "database"] },
      { category: SINK_CATEGORY, sinks: ["memory"], parentSinks: "override" },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["memory"] },
    ],
  });
}

/**
 * Two or more daemons on one test database, as services on several
 * machines: each with its own node id, fake clock and fake runner. `set`
 * moves every clock but those of nodes `freeze` stopped: a frozen node
 * neither fires nor beats, as a process killed with SIGKILL (its runs stay
 * `running` in jm_runs). The heartbeat is a minute unless the settings say
 * otherwise, so that no node looks dead by the database's clock while a
 * test waits; `age` makes a node's last heartbeat old by that clock
 * instead of waiting three intervals. A claim waits ten minutes, not one
 * second: a clock moved while one node's claim is on its way (another
 * node's rows already visible) must not count as a database outage.
 */
export class ClusterHarness implements AsyncDisposable {
  private readonly frozen = new Set<DaemonHarness>();

  private constructor(readonly db: TestDatabase, readonly nodes: DaemonHarness[]) {}

  /** Nodes `ids` on `db`, not started yet; `options` may differ by node (a proxy each). */
  static async create(
    db: TestDatabase,
    ids: string[],
    optionsOf: HarnessOptions | ((id: string) => HarnessOptions) = {},
  ): Promise<ClusterHarness> {
    const nodes: DaemonHarness[] = [];
    for (const nodeId of ids) {
      const options = typeof optionsOf === "function" ? optionsOf(nodeId) : optionsOf;
      nodes.push(
        await DaemonHarness.create(db, {
          claimTimeoutMs: 600_000,
          ...options,
          nodeId,
          settings: { "jobsmanager.heartbeat_interval": 60, ...options.settings },
        }),
      );
    }
    for (const node of nodes) {
      node.peers = nodes;
      node.owner = false;
    }
    return new ClusterHarness(db, nodes);
  }

  /** The store of the first node, to arrange and inspect the database. */
  get store(): Store {
    return this.nodes[0].store;
  }

  node(id: string): DaemonHarness {
    const node = this.nodes.find((n) => n.nodeId === id);
    if (!node) throw new Error(`no node ${id} in this cluster`);
    return node;
  }

  /** The nodes still moving with the clock. */
  get running(): DaemonHarness[] {
    return this.nodes.filter((n) => !this.frozen.has(n));
  }

  /** The time of the nodes still moving. */
  now(): number {
    return this.running[0].clock.now();
  }

  /**
   * Start every node in turn, then move the clocks to the first one's next
   * heartbeat and on a second at a time until each sees all the others live. Jobs are best added after it
   * (see `load`), so that none fires while the nodes still disagree.
   */
  async start(): Promise<void> {
    for (const node of this.nodes) await node.start();
    const all = this.nodes.length;
    // The node started first found itself alone, and looks again at its next heartbeat: one
    // move there, not a heartbeat's worth of seconds each given a tenth of a second of real time.
    const beat = Math.max(...this.nodes.map((n) => n.settings["jobsmanager.heartbeat_interval"]));
    await this.set(this.now() + beat * 1000);
    // The others see the nodes that started after them at their next sweep, a second later.
    let moved = Date.now();
    await this.until(async () => {
      if (this.nodes.every((n) => n.line(new RegExp(`^${all} live nodes`)))) return true;
      // Each move wakes the sweeps; the next waits a little for them to run.
      if (Date.now() - moved > 100) {
        moved = Date.now();
        await this.set(this.now() + 1000);
      }
      return false;
    }, `every node to see ${all} live nodes`);
  }

  /** Move the clocks past a poll and wait until every running node has loaded `count` jobs. */
  async load(count: number): Promise<void> {
    // Past a poll, onto a whole second: the tests step from fire to fire.
    const polled = this.now() + this.nodes[0].settings["jobsmanager.reload_interval"] * 1000;
    await this.set(Math.ceil(polled / 1000) * 1000);
    await this.until(
      () => this.running.every((n) => n.daemon.state.jobsLoaded === count),
      `every node to load ${count} jobs`,
    );
  }

  /** Move the clocks of the nodes not frozen to `at`. */
  async set(at: number): Promise<void> {
    for (const node of this.running) await node.clock.set(at);
  }

  /** Stop moving `id`'s clock: from now on it neither fires nor beats. */
  freeze(id: string): DaemonHarness {
    const node = this.node(id);
    this.frozen.add(node);
    return node;
  }

  /** Move `id`'s clock again, from the time of the others. */
  async thaw(id: string): Promise<void> {
    const node = this.node(id);
    const at = this.now();
    this.frozen.delete(node);
    await node.clock.set(at);
  }

  /**
   * Make node `id`'s last heartbeat older than three of its intervals by the
   * database's clock: what waiting that long after its last beat would do.
   */
  async age(id: string): Promise<void> {
    const [row] = await rawQuery(this.db, "SELECT heartbeat_ms FROM jm_nodes WHERE id = ?", [id]);
    const old = (await this.store.databaseNow()) - 4 * Number(row.heartbeat_ms);
    await this.nodes[0].sql(
      "UPDATE jm_nodes SET db_heartbeat_at = ? WHERE id = ? AND declared_dead_at IS NULL",
      [old, id],
    );
  }

  /** Every run of the database, oldest first. */
  runs(jobId?: string): Promise<Run[]> {
    return this.nodes[0].runs(jobId);
  }

  /** Wait (real time) until `probe` returns something truthy; fail showing every node. */
  until<T>(probe: () => T | Promise<T>, what: string): Promise<NonNullable<T>> {
    return until(probe, what, () => this.describe());
  }

  async describe(): Promise<string> {
    const nodes = await rawQuery(
      this.db,
      "SELECT id, db_heartbeat_at, jobs_owned, applied_marker, declared_dead_at, declared_dead_by, leaving_at, stopped_at FROM jm_nodes ORDER BY id",
    ).catch((error) => [{ error: String(error) }]);
    const parts = [`jm_nodes: ${JSON.stringify(nodes)}`, await this.nodes[0].describe()];
    for (const node of this.nodes.slice(1)) {
      parts.push(
        `--- node ${node.nodeId}${this.frozen.has(node) ? " (frozen)" : ""}: clock T0+${
          node.clock.now() - T0
        }; fake runs: ${node.runner.runs.length}; log (last 15):\n${
          node.lines.slice(-15).join("\n")
        }`,
      );
    }
    return `--- node ${this.nodes[0].nodeId}:\n${parts.join("\n")}`;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      // Each node stops on its own clock, a frozen one too.
      const stopped = await Promise.allSettled(this.nodes.map((n) => n[Symbol.asyncDispose]()));
      for (const result of stopped) if (result.status === "rejected") throw result.reason;
    } finally {
      await dispose();
      await this.db[Symbol.asyncDispose]();
    }
  }
}

/**
 * Wait (real time) until `probe` returns something truthy, and return it;
 * fail naming `what`, with the state `detail` describes.
 */
export function until<T>(
  probe: () => T | Promise<T>,
  what: string,
  detail: () => string | Promise<string>,
  timeoutMs = WAIT_MS,
): Promise<NonNullable<T>> {
  return waitFor(probe, { timeoutMs, what, intervalMs: 10, detail });
}

/** Open a store on `db` through `proxy`: what the daemon uses in an outage test. */
export function throughProxy(db: TestDatabase, proxy: TcpProxy): () => Store {
  const url = new URL(db.url);
  url.port = String(proxy.port);
  return () => openStore(resolveTarget({ ...defaultSettings(), "db.url": url.toString() }));
}

/**
 * Open a store on `db` whose methods named in `overrides` are replaced:
 * each override gets the real store and returns the method to use (a
 * fault to inject, a call to count).
 */
export function storeWith(
  db: TestDatabase,
  overrides: { [K in keyof Store]?: (target: Store) => Store[K] },
): () => Store {
  return () => {
    const store = db.open();
    const replaced = new Map(
      Object.entries(overrides).map(([key, make]) => [key, (make as (s: Store) => unknown)(store)]),
    );
    return new Proxy(store, {
      get(target, key) {
        if (typeof key === "string" && replaced.has(key)) return replaced.get(key);
        const value = Reflect.get(target, key, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  };
}

/**
 * A store on `db` every call of which fails, as with the database gone,
 * while `link.down` (its close, and the reading of jobs, which no outage
 * reaches, excepted).
 */
export function cuttable(db: TestDatabase, link: { down: boolean }): () => Store {
  return () => {
    const store = db.open();
    return new Proxy(store, {
      get(target, key) {
        const value = Reflect.get(target, key, target);
        if (typeof value !== "function") return value;
        if (key === "close" || key === "jobsInChunks") return value.bind(target);
        return (...args: unknown[]) =>
          link.down
            ? Promise.reject(new Error("connect ECONNREFUSED 127.0.0.1:3306"))
            : value.apply(target, args);
      },
    });
  };
}

/**
 * The pids of this process's children (every thread's, as Linux lists
 * them) that carry a run marker of this module's (`MARKER_PREFIX`, one per
 * isolate): the hooks and runs under way of its daemons. Not the other
 * test modules' (`deno test --parallel` runs them in this process, their
 * `serve` and CLI children with them), nor a run guard's awk.
 */
async function childProcesses(): Promise<string[]> {
  const ours = `${MARKER_VARIABLE}=${MARKER_PREFIX}-`;
  const pids: string[] = [];
  for await (const task of Deno.readDir("/proc/self/task")) {
    const children = await readIfThere(`/proc/self/task/${task.name}/children`);
    for (const pid of children?.split(" ") ?? []) {
      if (pid === "") continue;
      try {
        const environ = `\0${await Deno.readTextFile(`/proc/${pid}/environ`)}`;
        if (environ.includes(`\0${ours}`)) pids.push(pid);
      } catch {
        // It ended while we looked.
      }
    }
  }
  return pids;
}

/** True when `work` settles within `ms` of real time. */
async function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const settled = await Promise.race([
    work.then(() => true, () => true),
    new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), ms)),
  ]);
  clearTimeout(timer);
  return settled;
}

export function describeRun(r: Run): string {
  const at = (t: number | null) => t === null ? "-" : `T0+${t - T0}`;
  return [
    r.id,
    r.job_id,
    at(r.scheduled_at),
    r.status,
    `started ${at(r.started_at)}`,
    `finished ${at(r.finished_at)}`,
    r.trigger,
    r.note ?? "",
  ].join(" | ");
}

/**
 * Where `jobsmanager_runs_total` in `metrics` and the final rows of `jobs`
 * differ (`job status: counted N, rows M`, one a line); "" when each final
 * row is counted once.
 */
export async function uncounted(
  h: DaemonHarness,
  metrics: Metrics,
  jobs: readonly string[],
): Promise<string> {
  const text = await metrics.text();
  const wrong: string[] = [];
  for (const job of jobs) {
    const rows = await h.runs(job);
    for (const status of FINAL_STATUSES) {
      const series = new RegExp(
        `^jobsmanager_runs_total\\{job="${job}",status="${status}"\\} (\\d+)$`,
        "m",
      );
      const counted = Number(series.exec(text)?.[1] ?? 0);
      const written = rows.filter((r) => r.status === status).length;
      if (counted !== written) wrong.push(`${job} ${status}: counted ${counted}, rows ${written}`);
    }
  }
  return wrong.join("\n");
}
