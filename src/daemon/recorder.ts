/**
 * Run records between the service and the store, built for the database
 * going away. While it answers, claims and updates go straight through.
 * When it fails, or does not answer a claim in time, the service keeps
 * firing from its timetable: new runs get provisional (negative) ids and
 * wait, with their updates, in a bounded buffer, written when the database
 * health says the database is back (before it counts as back). A record
 * the database answers but refuses (read-only, access denied, disk full, a
 * table missing) waits in the same buffer and is retried, backing off, until
 * it is written or the service stops: nothing is dropped but what the
 * bound forces out, and that is counted. A record refused for the values
 * it carries (longer than a column, a statement over max_allowed_packet)
 * would be refused forever, its run left `running`: it is written again
 * with its output and note cut, then replaced by a line saying so
 * (`reduced`).
 */
import { DatabaseError, errorMessage, isUnreachable, isUnstorable } from "../errors.ts";
import { log } from "./log.ts";
import {
  type NewRun,
  type RowKey,
  type RunStatus,
  type RunUpdate,
  shortenedNote,
} from "../domain/run.ts";
import { cutAgain } from "../domain/output_cut.ts";
import type { RunStore } from "../store/store.ts";
import { type Clock, Deadline } from "./clock.ts";
import { backoff, type DbHealth } from "./db_health.ts";
import { LostClaims } from "./lost_claims.ts";

/** What the recorder writes with. */
export type RunWriter = Pick<
  RunStore,
  "claimRuns" | "updateRuns" | "runStatuses" | "missLostClaims"
>;

export interface RecorderOptions {
  /** How long a claim may take before the fire starts anyway. */
  claimTimeoutMs: number;
  /** Most run records held while the database is away; the oldest go first. */
  maxBuffered: number;
  /**
   * Told of each row the recorder itself ends (`missed`: a held fire's
   * claim that landed too late, a lost claim's row), as the service tells
   * its observer of the rest: what `/metrics` counts.
   */
  ended?: (jobId: string, status: RunStatus) => void;
  /**
   * This node's id ("" before it registered): the rows it updates are its
   * own, and one whose id another node's run took (jm_runs emptied or
   * restored under the services) is left as it is.
   */
  node?: () => string;
  /**
   * The database gave `runId` to a row the recorder wrote itself (a fire
   * recorded during an outage, a claim that landed late, a run's end
   * written again): a run here still holding that id lost its row
   * (jm_runs emptied meanwhile; ActiveRuns.idTaken).
   */
  idTaken?: (runId: number, jobId: string, row?: RowKey) => void;
}

const storeLog = log("store");

/**
 * A run that started here under a provisional id (the database did not
 * answer its claim) found, once written, that the fire was claimed
 * already: another service ran it too. Said, never dropped silently; its
 * outcome here is in this log, the row is the other service's.
 */
function claimedElsewhere(row: NewRun): void {
  // Missed, skipped, or still waiting for a worker: nothing ran here.
  if (row.started_at == null) return;
  storeLog.warn(
    "job {job}: the fire at {at} ran here while the database did not answer, but another service had claimed it meanwhile, so it ran twice (set cluster.on_database_outage to hold so that nodes that cannot claim do not fire); its outcome here: {status}",
    {
      job: row.job_id,
      at: new Date(row.scheduled_at).toISOString(),
      status: row.status,
      exit_code: row.exit_code ?? null,
    },
  );
}
/** Provisional ids remembered after their rows were written. */
const MAX_REMEMBERED = 100_000;
/**
 * What a claim that bounds its wait by its fires' grace leaves them to
 * start in once it gives up on the database: a claim that waited the
 * whole default grace of a second made the first fire of every database
 * stall `missed`, even where the service fires through outages.
 */
const STARTING_MS = 250;
/** A claim waits at least this long for the database, however close the grace. */
const MIN_CLAIM_WAIT_MS = 100;
/** Between two tries to write, at exit, the records the database did not take. */
const CLOSE_RETRY_MS = 1000;
/** Records the exit's error names; the rest are counted. */
const UNWRITTEN_NAMED = 10;
/**
 * Beyond this many records waiting, a run's output waits cut to its first
 * and last LEAN_OUTPUT / 2 bytes: 10,000 records of 64 KiB outputs
 * would be gigabytes, where 100 full ones and the rest cut are tens of MB.
 */
const FULL_OUTPUT_RECORDS = 100;
const LEAN_OUTPUT = 2048;

/** `text` cut to its head and tail (LEAN_OUTPUT bytes in all), saying how much went in between. */
function leanOutput(text: string): string {
  return cutAgain(
    text,
    LEAN_OUTPUT,
    `the run ended while ${FULL_OUTPUT_RECORDS} or more records waited for the database`,
  );
}

/** Characters of a note kept in a record refused for its values. */
const REDUCED_NOTE = 2000;

/** How far a record refused for its values was reduced: its output cut, then replaced. */
type Reduced = 1 | 2;

/** An update of a run waiting to be written. */
interface Waiting {
  id: number;
  update: RunUpdate;
  /** The run's whole row as it stands with this update, written anew if its own is gone (see `update`). */
  again?: NewRun;
  /** Set once the database refused its values: how far it was reduced, and what it was. */
  reduced?: Reduced;
  original?: RunUpdate;
}

/**
 * A row of a held claim that reached the database after the node gave up
 * on it (`claimOrHold`): its index in the claim, its id, and the row as it
 * ends (a run that could not start ends `missed`).
 */
export interface Landed {
  index: number;
  id: number;
  row: NewRun;
}

/**
 * `update` made smaller after the database refused its values (`why`): at `stage` 1 its output keeps its head and tail and its note
 * its start; at 2 they are replaced by a line saying what was not stored.
 * Its status, times and exit code stay: the run ends as it ended. Null
 * when it has nothing to make smaller.
 */
function reduced<T extends RunUpdate>(update: T, why: string, stage: Reduced): T | null {
  const { stdout, stderr, note } = update;
  if (typeof stdout !== "string" && typeof stderr !== "string" && typeof note !== "string") {
    return null;
  }
  const said = `the database could not store this run's record whole (${why.slice(0, 300)})`;
  if (stage === 1) {
    const output = (text: string | null | undefined) =>
      typeof text === "string" ? cutAgain(text, LEAN_OUTPUT, `${said}; its output is cut`) : text;
    return {
      ...update,
      stdout: output(stdout),
      stderr: output(stderr),
      note: typeof note === "string" ? `${shortenedNote(note, REDUCED_NOTE)}; ${said}` : said,
    };
  }
  // The line goes in the note, TEXT everywhere: an output column may hold less.
  const lost = [
    stdout ? `stdout (${stdout.length} characters)` : null,
    stderr ? `stderr (${stderr.length} characters)` : null,
    note ? `its note (${note.length} characters)` : null,
  ].filter((what) => what !== null);
  return {
    ...update,
    stdout: typeof stdout === "string" ? null : stdout,
    stderr: typeof stderr === "string" ? null : stderr,
    note: `${said}, cut too: ${lost.join(", ")} not stored`,
  };
}

export class RunRecorder {
  /** Runs not yet in the database, by provisional id, with every update merged in. */
  private readonly buffered = new Map<number, NewRun>();
  /** Updates of rows that exist in the database, in order. */
  private updates: Waiting[] = [];
  /**
   * Updates `writeUpdates` took from `updates` and has not written yet: the
   * one on its way, and those refused in this pass (back in `updates` at
   * its end). Counted in the backlog: a stop whose time is up while one is
   * on its way says it was not written.
   */
  private unsent: Waiting[] = [];
  /** Provisional ids whose rows were written since, and their real ids. */
  private readonly written = new Map<number, number | null>();
  /** The same, by real id. */
  private readonly provisionalOf = new Map<number, number>();
  /**
   * Runs a log line named before their rows were written (`runWords`), by
   * provisional id: the line that writes a row says which id it got.
   */
  private readonly namedRowless = new Map<number, { job: string; fired: string }>();
  /** Runs whose row was gone at their end, and the rows their ends were written in (`rowsGone`). */
  private readonly moved = new Map<number, number>();
  /**
   * Runs whose update `writeUpdates` is writing, or was refused by this
   * pass: a later update of theirs waits behind it, or would be undone by it.
   */
  private readonly behind = new Set<number>();
  /** Provisional ids whose first claim timed out but may still land: not flushed meanwhile. */
  private readonly inFlight = new Set<number>();
  /** The runs whose updates the batch being written holds (`recording`). */
  private readonly writing = new Set<number>();
  /**
   * Provisional ids whose claim was sent and failed: it may have been
   * written all the same (its answer lost), as the row was then.
   */
  private readonly sentBefore = new Set<number>();
  /** Claims of held fires that may have been written, their answers lost. */
  private readonly lost: LostClaims;
  private nextProvisional = -1;
  /** Claims on their way, their answers not yet taken in (`claiming`). */
  private claimsUnderWay = 0;
  private dropped = 0;
  private flushing: Promise<void> = Promise.resolve();
  /** The retries of records the database refused, while any wait. */
  private retrying: Promise<void> | null = null;
  private readonly closing = new AbortController();
  /** Set by `abandon`: the database is gone for good, so the close writes nothing more. */
  private abandoned = false;
  /**
   * Updates gathered for the next batch, merged by run: what one turn of
   * the event loop records (a burst of starts and ends) is one commit.
   */
  private batch = new Map<number, { update: RunUpdate; again?: NewRun }>();
  private batchWritten: PromiseWithResolvers<void> | null = null;
  /** One batch at a time, in order: a run's later update never lands before its earlier one. */
  private batches: Promise<void> = Promise.resolve();
  /**
   * Rows a write of this node found marked `lost` by a node that declared
   * it dead, which retried and followed their runs (RunStore.updateRuns).
   */
  private readonly foundLost = new Set<number>();
  /**
   * What waits for a run's end to be judged, by the id it was asked by
   * (`afterJudged`): what to do then, and its caller's wait, resolved at
   * once where the end is parked for the close (`parked`).
   */
  private readonly judging = new Map<
    number,
    { then: (lost: boolean) => unknown; done: PromiseWithResolvers<void>; parked: boolean }
  >();
  /** Set at a stop: an end waiting for the database is parked, judged by `close` (`stopJudging`). */
  private judgingStopped = false;
  /** What follows ends that were parked at the stop, judged since: `close` waits for it. */
  private readonly judgedAtClose = new Set<Promise<void>>();

  constructor(
    private readonly store: RunWriter,
    private readonly health: DbHealth,
    private readonly clock: Clock,
    private readonly options: RecorderOptions,
  ) {
    health.onRecovery(() => this.recover());
    health.recordsWaitingFrom(() => this.backlog);
    health.onBack(() => this.writeLeftovers());
    this.lost = new LostClaims(
      store,
      clock,
      (error) => health.failed(error),
      (jobId) => options.ended?.(jobId, "missed"),
    );
  }

  /** The node whose rows are updated (RecorderOptions `node`); none: any row. */
  private node(): string | undefined {
    return this.options.node?.() || undefined;
  }

  /** Records waiting for the database. */
  get backlog(): number {
    return this.buffered.size + this.updates.length + this.unsent.length;
  }

  /** Records dropped in the outage under way, more than `maxBuffered` waited. */
  get droppedRecords(): number {
    return this.dropped;
  }

  /**
   * The marker a fire held after its claim was lost is to be claimed with
   * again, if it was: a row that claim wrote is then this claim's.
   */
  lostMarker(jobId: string, scheduledAt: number): string | undefined {
    return this.lost.marker(jobId, scheduledAt);
  }

  /**
   * Ids for new run rows (null where the fire was claimed already); never
   * throws. `instant`: the rows are the fires the scheduler decided at an
   * instant (see `claimed`). `startBy`: the first of their fires must
   * start by then (its grace); the claim waits for the database no longer
   * than leaves STARTING_MS to start it.
   */
  claim(
    rows: NewRun[],
    options: { instant?: boolean; startBy?: number } = {},
  ): Promise<(number | null)[]> {
    return this.underWay(this.claimRows(rows, options));
  }

  private async claimRows(
    rows: NewRun[],
    { instant = false, startBy = Infinity } = {},
  ): Promise<(number | null)[]> {
    const again = this.lost.take(rows);
    if (!this.health.online) {
      // Rows lost claims may have written are these rows' (their markers):
      // once written, the buffered copies go over them.
      const provisional = this.buffer(rows);
      for (const i of again) if (provisional[i] !== null) this.sentBefore.add(provisional[i]!);
      return provisional;
    }
    const wait = Math.max(MIN_CLAIM_WAIT_MS, startBy - STARTING_MS - this.clock.now());
    const { attempt, outcome, error } = await this.attempt(rows, wait);
    if (outcome && "ids" in outcome) {
      return this.given(
        rows,
        await this.claimed(rows, outcome.ids, again, { instant, holding: false }),
      );
    }
    const provisional = this.buffer(rows);
    if (!isUnreachable(error)) this.retryRefused();
    if (outcome === null) {
      // The claim may still land: then its rows exist, under real ids.
      for (const id of provisional) if (id !== null) this.inFlight.add(id);
      this.underWay(attempt.then(
        (ids) => ids.forEach((id, i) => this.landed(provisional[i], id)),
        () => provisional.forEach((id) => id !== null && this.sentAndFailed(id)),
      ));
    } else {
      for (const id of provisional) if (id !== null) this.sentBefore.add(id);
    }
    return provisional;
  }

  /**
   * As `claim`, but null when the database does not answer: nothing is
   * buffered and nothing may run (a cluster node holding through an
   * outage). A claim that lands after its timeout is recorded `missed`;
   * one that failed on its way may have been written all the same: its
   * fires keep their markers (`lostMarker`) until they are decided again.
   */
  claimOrHold(
    rows: NewRun[],
    landed?: (rows: Landed[]) => void,
  ): Promise<(number | null)[] | null> {
    return this.underWay(this.claimOrHoldRows(rows, landed));
  }

  private async claimOrHoldRows(
    rows: NewRun[],
    landed: (rows: Landed[]) => void = () => {},
  ): Promise<(number | null)[] | null> {
    if (!this.health.online) return null;
    const again = this.lost.take(rows);
    const { attempt, outcome, error } = await this.attempt(rows);
    if (outcome && "ids" in outcome) {
      return this.given(
        rows,
        await this.claimed(rows, outcome.ids, again, { instant: true, holding: true }),
      );
    }
    if (outcome !== null) {
      // Refused, it wrote nothing; the rows earlier claims lost may still be there.
      this.lost.keep(isUnreachable(error) ? rows : again.map((i) => rows[i]));
      return null;
    }
    // Its markers are not used again: a run it wrote, if it lands, is ended
    // here, as never started. A row that was final already (missed, skipped)
    // stays as it says: its fires are decided again all the same (a claim
    // of the same instant then finds it there, and takes it for another
    // node's; a range of missed fires decided again may overlap it: a fire
    // told twice, none lost). The rows that landed are told to `landed`.
    this.underWay(attempt.then((ids) => {
      const written: Landed[] = [];
      ids.forEach((id, i) => {
        if (id === null) return;
        if (rows[i].status !== "running" && rows[i].status !== "queued") {
          written.push({ index: i, id, row: rows[i] });
          return;
        }
        const ended = {
          status: "missed",
          started_at: null,
          finished_at: this.clock.now(),
          note:
            "held: its claim reached the database too late to start it (cluster.on_database_outage)",
        } as const;
        this.update(id, ended);
        this.options.ended?.(rows[i].job_id, "missed");
        written.push({ index: i, id, row: { ...rows[i], ...ended } });
      });
      landed(written);
    }, () => this.lost.keep(rows)));
    return null;
  }

  /**
   * Whether a claim of this service is on its way, or its answer not yet
   * taken in: a row it wrote may be in the database before the service
   * knows its run (see `claimsUnderWay`).
   */
  get claiming(): boolean {
    return this.claimsUnderWay > 0;
  }

  /** `work`, a claim, counted under way until it settles. */
  private underWay<T>(work: Promise<T>): Promise<T> {
    this.claimsUnderWay++;
    return work.finally(() => this.claimsUnderWay--);
  }

  /**
   * The database gave `id` to a new row of `jobId` that the recorder wrote
   * itself (a fire recorded during an outage, a claim that landed late, a
   * run's end written again): a run here still holding that id lost its
   * row (RecorderOptions `idTaken`), and so did one known by the
   * provisional id whose row had it (see `given`).
   */
  private idGiven(id: number, row: Pick<NewRun, "job_id"> & RowKey): void {
    this.options.idTaken?.(id, row.job_id, row);
    this.given([row], [id]);
  }

  /**
   * `ids`, just given to `rows`: a run here that started under a
   * provisional id, and whose row, written since, had one of these ids,
   * lost that row (jm_runs emptied since): the service knows it by its
   * provisional id, which it is told of (RecorderOptions `idTaken`), and
   * the id is no longer that run's (`knownAs`). Returns `ids`.
   */
  private given(rows: Pick<NewRun, "job_id">[], ids: (number | null)[]): (number | null)[] {
    ids.forEach((id, i) => {
      const provisional = id === null ? undefined : this.provisionalOf.get(id);
      if (provisional === undefined) return;
      this.provisionalOf.delete(id!);
      this.options.idTaken?.(provisional, rows[i].job_id);
    });
    return ids;
  }

  /**
   * The provisional id run `id` started under while the database was
   * away, by which the service knows it; undefined when none.
   */
  knownAs(id: number): number | undefined {
    return this.provisionalOf.get(id);
  }

  /**
   * A claim of `rows` went through. Of the rows lost claims wrote that it
   * made again (`again`), those since ended (`lost`: another node declared
   * this one dead) are not its to run. When the rows are an instant's
   * fires, the fires of the other lost claims were decided otherwise:
   * their rows end.
   */
  private async claimed(
    rows: NewRun[],
    ids: (number | null)[],
    again: number[],
    { instant, holding }: { instant: boolean; holding: boolean },
  ): Promise<(number | null)[]> {
    if (instant) void this.lost.end();
    const mine = again.map((i) => ids[i]).filter((id): id is number => id !== null);
    if (mine.length === 0) return ids;
    let statuses: Map<number, string>;
    try {
      statuses = await this.store.runStatuses(mine);
    } catch (error) {
      this.health.failed(error);
      // A node that fires through outages runs them; one that holds runs
      // nothing the database did not confirm: the rows end at the next instant.
      if (!holding) return ids;
      this.lost.keep(again.map((i) => rows[i]));
      return ids.map((id, i) => again.includes(i) ? null : id);
    }
    for (const i of again) {
      const status = statuses.get(ids[i]!);
      if (status !== undefined && status !== "queued" && status !== "running") ids[i] = null;
    }
    return ids;
  }

  /**
   * Claim, waiting for the answer `waitMs` at most (claimTimeoutMs unless
   * less is given). A failure turns the database health offline, and so
   * does a claim still unanswered after claimTimeoutMs: one given up on
   * sooner, for its fires' grace, counts as an outage only if the
   * database still has not answered it by then (under load, a burst's
   * claim may take a few hundred ms).
   */
  private async attempt(rows: NewRun[], waitMs = Infinity) {
    const attempt = this.store.claimRuns(rows);
    const limit = this.options.claimTimeoutMs;
    const ms = Math.min(waitMs, limit);
    const timeout = new AbortController();
    const outcome = await Promise.race([
      attempt.then((ids) => ({ ids }), (error: unknown) => ({ error })),
      this.clock.sleep(ms, timeout.signal).then(() => null),
    ]);
    timeout.abort();
    if (outcome && "ids" in outcome) {
      this.health.wrote();
      return { attempt, outcome, error: null };
    }
    if (outcome) {
      this.health.failed(outcome.error);
      return { attempt, outcome, error: outcome.error };
    }
    const error = new DatabaseError(`no answer to a claim within ${limit} ms`, {
      unanswered: true,
    });
    if (ms >= limit) {
      this.health.failed(error);
      return { attempt, outcome, error };
    }
    const answered = new AbortController();
    attempt.then(() => answered.abort(), (failure: unknown) => {
      answered.abort();
      this.health.failed(failure);
    });
    this.clock.sleep(limit - ms, answered.signal).then(() => {
      if (!answered.signal.aborted) this.health.failed(error);
    });
    return { attempt, outcome, error };
  }

  /** The real id of a provisional one, once its row is written. */
  realId(provisional: number): number | null | undefined {
    return this.written.get(provisional);
  }

  /**
   * The ids of the rows of runs `runIds`: a provisional one by the id its
   * row got, one with no row yet left out.
   */
  rowIds(runIds: Iterable<number>): number[] {
    const ids: number[] = [];
    for (const runId of runIds) {
      const id = runId < 0 ? this.realId(runId) : runId;
      if (typeof id === "number") ids.push(id);
    }
    return ids;
  }

  /**
   * How a log line names run `id` (of job `jobId`, fired at
   * `scheduledAt`): the words to put in its message where `run {run}`
   * would go, and their values. A run with a row is `run {run}`, its id
   * (one that started under a provisional id, by the id its row got). One
   * that started while the database was away and has no row yet is `run
   * fired at {fired} (no row yet)`, which an operator can search for; the
   * line that writes its row later says which id it got. `run` keeps the
   * provisional id all the same: the database's copy of the line, written
   * after the row, gets the real one there (boot.ts).
   */
  runWords(
    id: number,
    jobId: string,
    scheduledAt: number,
  ): { words: string; values: { run: number; fired?: string } } {
    const real = id < 0 ? this.written.get(id) : id;
    if (typeof real === "number") return { words: "run {run}", values: { run: real } };
    const fired = new Date(scheduledAt).toISOString();
    if (real === undefined) {
      this.namedRowless.set(id, { job: jobId, fired });
      return { words: "run fired at {fired} (no row yet)", values: { run: id, fired } };
    }
    // Its fire's row is another service's (claimedElsewhere), or its record was dropped.
    return { words: "run fired at {fired} (no row of its own)", values: { run: id, fired } };
  }

  /**
   * Record progress of a run; resolves when written or buffered, never
   * rejects. `again`: the run's whole row as it stands with this update
   * (an end): if its row is gone (jm_runs emptied, or restored from an
   * older dump, while it ran), it is written as a new row rather than lost.
   */
  update(id: number, update: RunUpdate, again?: NewRun): Promise<void> {
    const real = id < 0 ? this.written.get(id) : this.moved.get(id) ?? id;
    if (real === null) return Promise.resolve();
    if (real === undefined) {
      const row = this.buffered.get(id);
      if (row) this.buffered.set(id, { ...row, ...definedOnly(this.waiting(update)) });
      return Promise.resolve();
    }
    // Behind an earlier update of its run that waits, or it would be undone by it. One gathered
    // for the next batch takes it in, the database away or not: that batch, should it fail,
    // waits ahead of the backlog, where this update alone would come first and be undone by it
    // (a run's end under its start: the row said `running` again, atk222).
    if ((!this.health.online && !this.batch.has(real)) || this.waits(real)) {
      this.updates.push({ id: real, update: this.waiting(update), again });
      return Promise.resolve();
    }
    const earlier = this.batch.get(real);
    this.batch.set(real, {
      update: { ...earlier?.update, ...definedOnly(update) },
      again: again ?? earlier?.again,
    });
    if (this.batchWritten === null) {
      this.batchWritten = Promise.withResolvers();
      setTimeout(() => this.batches = this.batches.then(() => this.writeBatch()), 0);
    }
    return this.batchWritten.promise;
  }

  /**
   * Whether an update of run `id` is still to be written: gathered for the
   * next batch, in the batch being written, or waiting for the database.
   * Till then its row says what it said before (running, for a run that
   * has ended here).
   */
  recording(id: number): boolean {
    const real = this.moved.get(id) ?? id;
    return this.batch.has(real) || this.writing.has(real) || this.waits(real);
  }

  /** Whether an earlier update of run `id` is still to be written. */
  private waits(id: number): boolean {
    return this.behind.has(id) || this.updates.some((waiting) => waiting.id === id);
  }

  /**
   * Write the gathered updates in one transaction. If the database fails
   * or refuses it, they wait with the backlog, in order, and are retried
   * one by one there (so one refused record holds up only its own run's).
   */
  private async writeBatch(): Promise<void> {
    const written = this.batchWritten!;
    const updates: Waiting[] = [];
    for (const [gathered, { update, again }] of this.batch) {
      // Its row was written anew while this batch gathered (`rowsGone`).
      const id = this.moved.get(gathered) ?? gathered;
      // An earlier batch with this run failed meanwhile: stay behind it.
      if (this.waits(id)) this.updates.push({ id, update: this.waiting(update), again });
      else updates.push({ id, update, again });
    }
    this.batch = new Map();
    this.batchWritten = null;
    for (const { id } of updates) this.writing.add(id);
    try {
      const gone = await this.store.updateRuns(updates, this.node(), this.sawLost);
      this.health.wrote();
      if (gone.length > 0) await this.rowsGone(updates.filter((u) => gone.includes(u.id)));
    } catch (error) {
      // Before what came meanwhile: a later update of one of these runs may wait there already.
      this.updates = [
        ...updates.map((u) => ({ ...u, update: this.waiting(u.update) })),
        ...this.updates,
      ];
      if (isUnreachable(error)) {
        this.health.failed(error);
      } else if (isUnstorable(error)) {
        // Sent again one by one, the one refused made smaller (writeUpdates).
        this.writeLeftovers();
      } else {
        const runs = updates.map((u) => u.id).join(", ");
        // Told once: a full disk refuses every batch alike.
        const level = this.health.newRefusal(error) ? "error" : "debug";
        storeLog[level](
          updates.length === 1
            ? "run {runs}: the database refused its record ({error}); it is kept and retried until written or the service stops"
            : "runs {runs}: the database refused their records ({error}); they are kept and retried until written or the service stops",
          { runs, error: errorMessage(error) },
        );
        this.retryRefused();
      }
    } finally {
      for (const { id } of updates) this.writing.delete(id);
      this.settleJudged();
    }
    written.resolve();
  }

  /** Rows a write found marked `lost` (RunStore.updateRuns `foundLost`). */
  private readonly sawLost = (ids: number[]): void => {
    for (const id of ids) {
      this.foundLost.delete(id);
      this.foundLost.add(id);
    }
    while (this.foundLost.size > MAX_REMEMBERED) {
      this.foundLost.delete(this.foundLost.values().next().value!);
    }
  };

  /**
   * Once the updates of run `id` given so far are written, `then(lost)`:
   * lost true when one found its row marked `lost` by a node that
   * declared this one dead (which retried the run and started its
   * follow-ups), so that its end leads to nothing here. False where
   * nothing was found so: a run with no row yet (or whose fire another
   * service had claimed), or an update dropped (more waited than
   * `maxBuffered`). Resolves once `then` has settled (rejecting as it
   * does). At a stop (`stopJudging`), an end still to be written is
   * parked: this resolves at once, and `close` runs `then` once it has
   * written the end, and writes what `then` claimed (a retry, follow-ups)
   * before it ends; an end it could not write before exit is followed by
   * no one here (its row, still `running`, is marked lost and followed at
   * this node's next start, or by a node that declares this one dead).
   * Followed at the stop as not lost, an end the backlog then wrote over
   * `lost` had a second retry chain and second follow-ups (atk226).
   */
  afterJudged(id: number, then: (lost: boolean) => unknown): Promise<void> {
    const done = Promise.withResolvers<void>();
    this.judging.set(id, { then, done, parked: false });
    this.settleJudged();
    return done.promise;
  }

  /**
   * The service stops: an end still waiting for the database is not
   * waited for (the stop would wait for it to its end, leaving the
   * recorder's close no time to write the backlog): it is parked, and
   * judged by `close` once written (`afterJudged`).
   */
  stopJudging(): void {
    this.judgingStopped = true;
    this.settleJudged();
  }

  /** Resolve the `afterJudged` waits whose runs' updates are written; park the rest at a stop. */
  private settleJudged(): void {
    for (const [id, waiting] of this.judging) {
      const lost = this.judgedNow(id);
      if (lost === undefined) {
        if (this.judgingStopped && !waiting.parked) {
          waiting.parked = true;
          waiting.done.resolve();
        }
        continue;
      }
      this.judging.delete(id);
      const work = Promise.resolve().then(() => waiting.then(lost)).then(() => {});
      if (!waiting.parked) {
        work.then(waiting.done.resolve, waiting.done.reject);
        continue;
      }
      const logged = work.catch((error) => {
        storeLog.error("could not queue what follows run {run}'s end: {error}", {
          run: id,
          error: String(error),
        });
      }).finally(() => this.judgedAtClose.delete(logged));
      this.judgedAtClose.add(logged);
    }
  }

  /** Whether run `id`'s row was found marked lost, once its updates are written; undefined till then. */
  private judgedNow(id: number): boolean | undefined {
    const written = id < 0 ? this.written.get(id) : id;
    // Another service's row, or dropped with its updates; or no row yet (it started while the
    // database was away): the row written for it later is new, no other node's to mark lost, and
    // what follows it is queued once it is written (Aftermath `endsToFollow`).
    if (written === null || written === undefined) return false;
    const real = this.moved.get(written) ?? written;
    if (this.batch.has(real) || this.writing.has(real)) return undefined;
    if (this.waits(real)) return undefined;
    return this.foundLost.has(real);
  }

  /**
   * Updates whose run's row was not there (or not this node's): jm_runs was
   * emptied, or restored from an older dump, while the run went on. Said,
   * never silent; an end given with its whole row (`again`) is written as
   * a new row, its note saying so, so that the run is not lost; what comes
   * of the run later goes to that row. Throws as a write does.
   */
  private async rowsGone(updates: Waiting[]): Promise<void> {
    for (const { id, update, again } of updates) {
      const facts = {
        run: id,
        job: again?.job_id ?? "(not known here)",
        status: update.status ?? "(unchanged)",
      };
      if (again === undefined) {
        storeLog.warn(
          `run {run} of job {job}: its row in jm_runs is gone (jm_runs was emptied or restored from a backup while it ran), so this record of it (status {status}) was written nowhere${
            update.status === "running" ? "; its end is written as a new row" : ""
          }`,
          facts,
        );
        continue;
      }
      const row = this.anew(id, again);
      const [written] = await this.store.claimRuns([row]);
      if (written === null) {
        storeLog.warn(
          "run {run} of job {job} ended {status}, but its row in jm_runs was gone (jm_runs emptied or restored from a backup while it ran), and its fire's row is there again, another's: its end is in this log only",
          facts,
        );
        continue;
      }
      this.idGiven(written, row);
      this.moved.set(id, written);
      if (this.moved.size > MAX_REMEMBERED) this.moved.delete(this.moved.keys().next().value!);
      storeLog.warn(
        "run {run} of job {job} ended {status}, but its row in jm_runs was gone (jm_runs emptied or restored from a backup while it ran): its end is written as a new row, run {written}",
        { ...facts, written },
      );
    }
  }

  /** `again`, the whole row of run `id` whose own row is gone, as written anew, its note saying so. */
  private anew(id: number, again: NewRun): NewRun {
    // A run that started under a provisional id is named by the id its row had.
    const was = id < 0 ? this.written.get(id) ?? id : id;
    return {
      ...again,
      node_id: this.node() ?? again.node_id,
      note: [
        again.note,
        `written again: its row, run ${was}, was gone when it ended (jm_runs emptied or restored from a backup while it ran)`,
      ].filter((n) => n).join("; "),
    };
  }

  /**
   * Run `id` ended after the database gave its id to another run (jm_runs
   * emptied while it ran; ActiveRuns `rowless`): its end (`again`, its whole
   * row) is written as a new row, with the records waiting for the
   * database. Never rejects.
   */
  recordAnew(id: number, again: NewRun): void {
    this.buffer([this.anew(id, again)]);
    if (this.health.online) this.writeLeftovers();
  }

  /**
   * Retry what the database refused, backing off from 1 s to 30 s, until
   * nothing waits or the service stops. While the database is away, its
   * recovery writes the backlog instead.
   */
  private retryRefused(): void {
    if (this.retrying || this.closing.signal.aborted) return;
    this.retrying = (async () => {
      for (let attempt = 0; this.backlog > 0; attempt++) {
        await this.clock.sleep(backoff(attempt), this.closing.signal);
        if (this.closing.signal.aborted) return;
        if (!this.health.online) continue;
        const waiting = this.backlog;
        try {
          await this.flush();
          this.health.wrote();
          storeLog.info("wrote {count} run records the database had refused", { count: waiting });
        } catch (error) {
          if (isUnreachable(error)) {
            this.health.failed(error);
          } else {
            this.health.refused(error);
            // Per attempt, so only at debug: each refusal was logged when it came.
            storeLog.debug("the database still refuses {count} run records ({error})", {
              count: this.backlog,
              error: errorMessage(error),
            });
          }
        }
      }
    })().finally(() => this.retrying = null);
  }

  /** `update` as it waits for the database: its output cut once many records wait. */
  private waiting(update: RunUpdate): RunUpdate {
    if (this.backlog < FULL_OUTPUT_RECORDS) return update;
    const lean = { ...update };
    if (typeof update.stdout === "string") lean.stdout = leanOutput(update.stdout);
    if (typeof update.stderr === "string") lean.stderr = leanOutput(update.stderr);
    return lean;
  }

  private buffer(rows: NewRun[]): (number | null)[] {
    return rows.map((row) => {
      const id = this.nextProvisional--;
      this.buffered.set(id, row);
      this.trim();
      return id;
    });
  }

  private trim(): void {
    // What `writeUpdates` has on its way is not dropped: it may be written yet.
    while (
      this.backlog > this.options.maxBuffered && this.buffered.size + this.updates.length > 0
    ) {
      const oldest = this.buffered.keys().next();
      if (!oldest.done) {
        this.buffered.delete(oldest.value);
        this.sentBefore.delete(oldest.value);
        this.remember(oldest.value, null);
      } else {
        this.updates.shift();
      }
      this.dropped++;
    }
    if (this.judging.size > 0) this.settleJudged();
  }

  /** A claim that timed out failed after all: its rows may have been written all the same. */
  private sentAndFailed(provisional: number): void {
    this.inFlight.delete(provisional);
    if (!this.buffered.has(provisional)) return;
    this.sentBefore.add(provisional);
    // Back already, the recovery passed it by (in flight then): write it now.
    if (this.health.online) this.writeLeftovers();
  }

  /** A claim that timed out answered after all: its rows exist (or were someone else's). */
  private landed(provisional: number | null, id: number | null): void {
    if (provisional === null) return;
    this.inFlight.delete(provisional);
    const row = this.buffered.get(provisional);
    if (!row) return;
    this.buffered.delete(provisional);
    if (id !== null) this.idGiven(id, row);
    this.remember(provisional, id);
    // What the run learned meanwhile (its end, its output) goes to the landed row.
    if (id === null) claimedElsewhere(row);
    else if (learned(row)) this.update(id, postClaimFields(row));
  }

  /** The database answers again: write what waited (throws, keeping the rest, if it fails). */
  private async recover(): Promise<void> {
    // A batch sent before the outage may still land, or fail and wait with
    // the backlog: the updates that waited come after it either way, or it
    // would undo them (its run back from `success` to `running`).
    await this.batches;
    const waiting = this.backlog;
    try {
      await this.flush();
      this.health.wrote();
    } catch (error) {
      // Back, but refusing: the outage is over; the refused records wait on.
      if (!isUnreachable(error)) this.retryRefused();
      throw error;
    }
    if (waiting > 0 || this.dropped > 0) {
      storeLog.info(
        "wrote {written} run records that waited for the database ({dropped} dropped)",
        {
          written: waiting,
          dropped: this.dropped,
        },
      );
    }
    this.dropped = 0;
  }

  /**
   * Write what was recorded between the recovery's last write and the
   * database counting as back (a run that ended, a late claim that landed,
   * a fire): nothing else would until the next outage.
   */
  private writeLeftovers(): void {
    if (this.backlog === 0) return;
    this.flush().catch((error) => {
      if (isUnreachable(error)) {
        this.health.failed(error);
      } else {
        this.health.refused(error);
        this.retryRefused();
      }
    });
  }

  /**
   * Write every buffered record; throws (keeping what it could not write)
   * when the database fails or refuses. One flush at a time: two would
   * claim the same rows.
   */
  private flush(): Promise<void> {
    const next = this.flushing.catch(() => {}).then(() => this.writeBacklog());
    this.flushing = next;
    return next;
  }

  private async writeBacklog(): Promise<void> {
    // What the rows were before a claim refused for their values made them smaller.
    const originals = new Map<number, NewRun>();
    let stage = 0;
    // Fires keep coming while this writes: go round until nothing is left.
    for (;;) {
      const pending = [...this.buffered.entries()].filter(([id]) => !this.inFlight.has(id));
      if (pending.length === 0 && this.updates.length === 0) return;
      if (pending.length > 0) {
        let ids: (number | null)[];
        // Till the ids are taken in (`remember`, below): see `claiming`.
        this.claimsUnderWay++;
        try {
          ids = await this.store.claimRuns(pending.map(([, row]) => row));
        } catch (error) {
          this.claimsUnderWay--;
          for (const [provisional] of pending) this.sentBefore.add(provisional);
          if (!isUnstorable(error) || stage === 2) throw error;
          stage++;
          this.reduceBuffered(pending.map(([id]) => id), originals, error, stage as Reduced);
          continue;
        }
        try {
          pending.forEach(([provisional, sent], i) => {
            const current = this.buffered.get(provisional);
            const again = this.sentBefore.delete(provisional);
            this.buffered.delete(provisional);
            // jm_runs emptied during the outage: a run still going here may hold the id.
            if (ids[i] !== null) this.idGiven(ids[i]!, sent);
            this.remember(provisional, ids[i]);
            // A run that ended while its row was on its way merged its end into
            // the buffered copy, not the one sent; a claim sent again after its
            // answer was lost finds its row as the first attempt wrote it: send
            // the buffered copy as an update.
            const id = ids[i];
            if (id === null) return claimedElsewhere(current ?? sent);
            if (current && (current !== sent || again) && learned(current)) {
              this.updates.push({ id, update: postClaimFields(current) });
            }
          });
        } finally {
          this.claimsUnderWay--;
        }
      }
      await this.writeUpdates();
    }
  }

  /**
   * Write the updates in order. One the database refuses is kept, with
   * every later update of its run (written after it, they would be undone
   * by it); the others go on. Throws the first refusal at the end.
   */
  private async writeUpdates(): Promise<void> {
    const held = new Set<number>();
    const sent = (update: Waiting) => {
      const at = this.unsent.indexOf(update);
      if (at >= 0) this.unsent.splice(at, 1);
    };
    let refusal: unknown = null;
    try {
      while (this.updates.length > 0) {
        const next = this.updates.shift()!;
        next.id = this.moved.get(next.id) ?? next.id;
        this.unsent.push(next);
        if (held.has(next.id)) continue;
        this.behind.add(next.id);
        try {
          const gone = await this.store.updateRuns([next], this.node(), this.sawLost);
          this.behind.delete(next.id);
          // A row gone is written anew: till then (it may fail too) the update is not sent.
          if (gone.length > 0) await this.rowsGone([next]);
          sent(next);
        } catch (error) {
          if (isUnreachable(error)) throw error;
          const smaller = isUnstorable(error) ? this.reduce(next, error) : null;
          if (smaller !== null) {
            sent(next);
            this.updates.unshift(smaller);
            continue;
          }
          held.add(next.id);
          refusal ??= error;
        }
      }
    } finally {
      // What was not written is back at the front of the queue, where later updates look.
      this.behind.clear();
      this.updates = [...this.unsent, ...this.updates];
      this.unsent = [];
      this.settleJudged();
    }
    if (refusal !== null) throw refusal;
  }

  /**
   * Buffered runs (`ids`) made smaller after the database refused a claim
   * of them for their values: at stage 1 those with much text, at 2 all.
   */
  private reduceBuffered(
    ids: number[],
    originals: Map<number, NewRun>,
    error: unknown,
    stage: Reduced,
  ): void {
    let count = 0;
    for (const id of ids) {
      const row = this.buffered.get(id);
      if (row === undefined) continue;
      const original = originals.get(id) ?? row;
      const text = [original.stdout, original.stderr, original.note]
        .reduce((n, t) => n + (t?.length ?? 0), 0);
      if (stage === 1 && text <= LEAN_OUTPUT * 2 + REDUCED_NOTE) continue;
      const smaller = reduced(original, errorMessage(error), stage);
      if (smaller === null) continue;
      originals.set(id, original);
      this.buffered.set(id, smaller);
      count++;
    }
    storeLog.warn(
      "the database refused {count} run records for the values they carry ({error}); they are written with their output and note {what}",
      {
        count,
        error: errorMessage(error),
        what: stage === 1 ? "cut" : "left out, their notes saying so",
      },
    );
  }

  /** `waiting` made smaller after the database refused its values; null if it cannot be. */
  private reduce(waiting: Waiting, error: unknown): Waiting | null {
    const stage: Reduced | null = waiting.reduced === undefined
      ? 1
      : waiting.reduced === 1
      ? 2
      : null;
    const original = waiting.original ?? waiting.update;
    const update = stage === null ? null : reduced(original, errorMessage(error), stage);
    if (update === null) return null;
    storeLog.warn(
      stage === 1
        ? "run {run}: the database refused its record for the values it carries ({error}); it is written with its output and note cut"
        : "run {run}: the database refused its record cut too ({error}); it is written without its output, its note saying so",
      { run: waiting.id, error: errorMessage(error) },
    );
    return { id: waiting.id, update, reduced: stage!, original };
  }

  /**
   * Map a provisional id to its row's id, for the run's later updates and
   * log lines. Bounded: runs that old have long ended.
   */
  private remember(provisional: number, id: number | null): void {
    const named = this.namedRowless.get(provisional);
    if (named !== undefined) {
      this.namedRowless.delete(provisional);
      // Not written (another service's row, or dropped): said where that is found.
      if (id !== null) {
        storeLog.info(
          "job {job}: its run fired at {fired} (no row yet) is run {run}: its row is written",
          { job: named.job, fired: named.fired, run: id },
        );
      }
    }
    this.written.set(provisional, id);
    if (id !== null) this.provisionalOf.set(id, provisional);
    if (this.written.size > MAX_REMEMBERED) {
      const [oldest, real] = this.written.entries().next().value!;
      this.written.delete(oldest);
      if (real !== null && this.provisionalOf.get(real) === oldest) this.provisionalOf.delete(real);
    }
  }

  /**
   * The database is gone for good (its SQLite file replaced): the close
   * does not try to write the backlog, which the service counts itself.
   */
  abandon(): void {
    this.abandoned = true;
  }

  /** At shutdown: try each second, for at most `timeoutMs`, to write the backlog. */
  async close(timeoutMs: number): Promise<void> {
    this.closing.abort();
    this.stopJudging();
    if (this.abandoned) return;
    const deadline = Deadline.in(this.clock, timeoutMs);
    // Fires held after lost claims will not be decided here again.
    await deadline.wait(this.lost.end());
    // A batch on its way is written, or waits with the backlog.
    await deadline.wait(this.batches);
    // A database away at exit may be back within the stop's time: tried again each second till
    // then. Unwritten, a run that ended here is marked lost at this node's next start, or once
    // another declares it dead (interrupted at the next start, if this stop itself is recorded).
    while (deadline.left > 0) {
      while (this.backlog > 0 && deadline.left > 0) {
        await deadline.wait(this.flush().catch(() => undefined));
        if (this.backlog === 0 || deadline.left === 0) break;
        await this.clock.sleep(Math.min(CLOSE_RETRY_MS, deadline.left));
      }
      // Ends parked at the stop, written and judged since: what follows them is claimed now
      // (written at once, or buffered and written in the next round), after its cause.
      if (this.judgedAtClose.size === 0) break;
      await deadline.wait(Promise.all(this.judgedAtClose));
    }
    // A batch still on its way when the time is up is not known written.
    const left = this.backlog + this.writing.size;
    if (left > 0 || this.dropped > 0) {
      storeLog.error(
        "{count} run records could not be written before exit ({dropped} more were dropped earlier: more than {max} waited): {runs}; its runs still recorded running are marked lost (and retried where their jobs say so) when a service starts again under this node id or another node declares this one dead, or interrupted at that start if this stop was recorded",
        {
          count: left,
          dropped: this.dropped,
          max: this.options.maxBuffered,
          runs: this.unwritten(),
        },
      );
    }
  }

  /** The records still waiting, for the log: `job @ time` of a fire, `run N` of an update. */
  private unwritten(): string {
    const named = [
      ...[...this.buffered.values()].map((row) =>
        `${row.job_id} @ ${new Date(row.scheduled_at).toISOString()}`
      ),
      ...[...new Set([...this.unsent, ...this.updates].map((u) => u.id)), ...this.writing].map(
        (id) => `run ${id}`,
      ),
    ];
    const shown = named.slice(0, UNWRITTEN_NAMED).join(", ");
    return named.length > UNWRITTEN_NAMED
      ? `${shown} and ${named.length - UNWRITTEN_NAMED} more`
      : shown;
  }
}

function definedOnly(update: RunUpdate): RunUpdate {
  return Object.fromEntries(Object.entries(update).filter(([, v]) => v !== undefined));
}

/**
 * Whether a buffered row may have learned something after its claim: a
 * row still `queued` has not, and is any service's to take, or drop (a
 * retry the next fire came before), once written: an update after its
 * claim's answer would put it back to queued where none takes it.
 */
function learned(row: NewRun): boolean {
  return row.status !== "queued";
}

/** What a buffered row learned after its claim, as an update of the landed row. */
function postClaimFields(row: NewRun): RunUpdate {
  const { job_id: _j, scheduled_at: _s, trigger: _t, ...rest } = row;
  return definedOnly(rest as RunUpdate);
}
