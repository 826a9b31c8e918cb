/**
 * Notifications (issue 13): when a run ends, a job's hooks (or the
 * `notify.*` defaults) learn of it: a shell command with the run as JSON on
 * stdin, a webhook POST of the same JSON, a mail through sendmail. Off the
 * scheduling path: `runEnded` only claims and queues; a few deliveries go
 * at once.
 *
 * Each notification is claimed in the database as its run ends
 * (`jm_notifications`, unique per job, event and run), so one service of a
 * cluster sends it. The claim keeps what it sends and stays `pending`
 * until every channel is done: what a stop or a crash left unsent, or a
 * full queue left waiting, a later look sends (this node's own, or those
 * of a node that no longer writes), each taken first by one node only.
 * Claims also throttle: a job is notified at most once per
 * `notify.min_interval`; what is held back meanwhile is summarised in the
 * next one, or sent on its own once the interval has passed, as are those
 * beyond a job's bounded backlog. Deliveries that fail are logged and
 * counted; one whose webhook receiver is unreachable waits in the database
 * and is tried again until notify.give_up_after (see tryLater). URLs are
 * logged without their user info, query and path. A job's
 * notifications go out in the order of its runs: its claims one after
 * another, its deliveries in lanes (see Task), and behind the one of it
 * left in the database for want of a turn (see `deferred`).
 */
import type { Job } from "../domain/job.ts";
import { formatUtc } from "../domain/time.ts";
import { FAILURE_STATUSES, SILENT_STATUS, urlForLog } from "../domain/notify.ts";
import type { RunStatus } from "../domain/run.ts";
import type {
  JobStore,
  NotifyEvent,
  NotifyStore,
  PendingNotification,
  RunStore,
} from "../store/store.ts";
import { redactSecrets } from "../domain/secrets.ts";
import { DatabaseError } from "../errors.ts";
import { VERSION } from "../version.ts";
import { type Clock, Deadline } from "./clock.ts";
import type { DbHealth } from "./db_health.ts";
import { log } from "./log.ts";
import type { RunHandle, RunResult, RunSpec } from "./runner.ts";
import { type Account, AccountLookups, lookupNote } from "./run_as.ts";
import type { RunGuard } from "./run_guard.ts";
import {
  deliveryId,
  type EndedRun,
  fetchFailure,
  heldBackOf,
  heldBackText,
  hmacHex,
  mailText,
  type NotifyPayload,
  runPayload,
  silencePayload,
  urlSecrets,
  withGivenUp,
} from "./notify_message.ts";
import { newMarker } from "./processes.ts";

/** The settings the notifier reads (`notify.*` of config.ts). */
export interface NotifySettings {
  onFailure: string;
  onFailureUrl: string;
  onRecovery: string;
  onRecoveryUrl: string;
  onSuccess: string;
  onSuccessUrl: string;
  mailto: string;
  sendmail: string;
  minIntervalMs: number;
  timeoutMs: number;
  webhookTimeoutMs: number;
  webhookRetries: number;
  /** How long a notification whose webhook receiver is unreachable waits in the database, tried again. */
  giveUpAfterMs: number;
  webhookSecret: string;
  maxConcurrent: number;
}

/** How a notification went out; `queue`: dropped before it could (too many waiting). */
export type NotifyChannel = "command" | "webhook" | "mail" | "queue";

/** Told of each delivery (the HTTP side's metrics); must return at once. */
export interface NotifyObserver {
  notified(channel: NotifyChannel, ok: boolean): void;
}

export interface NotifierOptions {
  store:
    & Pick<
      NotifyStore,
      | "claimNotification"
      | "notificationDone"
      | "pendingNotifications"
      | "takeNotification"
      | "failingBefore"
      | "silenceCandidates"
      | "takeHeld"
      | "retryNotification"
      | "givenUp"
      | "dropNotifications"
    >
    & Pick<JobStore, "getJob">
    & Pick<RunStore, "listRuns" | "getRun">;
  clock: Clock;
  health: DbHealth;
  nodeId: () => string;
  /** The real id of a run recorded under a provisional one: undefined until written (recorder.ts). */
  realId: (provisional: number) => number | null | undefined;
  /** Whether this node fires the job (the others check its silence). */
  mayFire: (jobId: string) => boolean;
  /** The nodes that write to the database (live, or stopping): their pending notifications are their own. */
  writers: () => readonly string[];
  /**
   * How old another node's pending notification must be to be taken over
   * when that node no longer writes (ms; default ORPHAN_MS): longer than
   * this node may take to see a node that joins or comes back.
   */
  orphanMs?: number;
  /**
   * Whether any loaded job has an alert_after (the service knows): when
   * none has, silence is not looked for, a scan of jm_jobs saved every
   * NOTIFY_CHECK_MS. Looked for always when not given.
   */
  silenceWatched?: () => boolean;
  settings: NotifySettings;
  startRun: (spec: RunSpec, now: () => number) => RunHandle;
  /** The environment hook commands start from (secrets already removed). */
  baseEnv: Record<string, string>;
  /** Ends hook commands, as runs, when the service dies without ending them (run_guard.ts). */
  guard?: RunGuard | null;
  killGraceMs: number;
  secrets: readonly string[];
  observer?: NotifyObserver;
}

/** Bytes of a hook's own output kept, for the log line when it fails. */
const HOOK_OUTPUT_CAP = 4096;
/** Deliveries waiting for a turn; beyond, new ones are dropped (and logged). */
const MAX_QUEUED = 1000;
/**
 * Of those, the most for one webhook host: posts to a host go one at a
 * time, so a receiver that hangs holds one turn of notify.max_concurrent
 * and its own queue, not everyone's.
 */
const MAX_QUEUED_PER_HOST = 100;
/**
 * And for one job: its deliveries go one at a time, in order, so a job
 * whose hooks are slower than its runs queues its own, not everyone's.
 */
const MAX_QUEUED_PER_JOB = 100;
/**
 * Pending notifications of one job and event (failure, recovery, silent)
 * beyond which new ones are held back as notify.min_interval holds them:
 * counted into the next that goes out (`held_back`), so that hooks slower
 * than the job's runs (or a receiver down) keep a bounded backlog.
 */
const MAX_PENDING_PER_JOB_EVENT = 10;
/** Failed looks for pending notifications in a row after which newer ones no longer wait for them. */
const UNREAD_LOOKS = 3;
/** How often silence and held-back notifications are looked at. */
export const NOTIFY_CHECK_MS = 5000;
/**
 * Held-back notifications are looked for when the first known is due (one
 * this node held, or one found at the last look), and at the latest this
 * long after the last look: those another service held, then left.
 */
const HELD_LOOK_MAX_MS = 60_000;
const FIRST_RETRY_MS = 1000;
/**
 * A notification whose webhook receiver stayed unreachable through the
 * webhook retries waits in the database this long before it is tried
 * again, doubling up to NEXT_TRY_MAX_MS, until notify.give_up_after.
 */
const NEXT_TRY_FIRST_MS = 15_000;
const NEXT_TRY_MAX_MS = 300_000;
/**
 * A pending notification of a node that no longer writes to the database
 * is taken over once claimed this long ago: a node that has just joined
 * and claimed may not be known here yet.
 */
export const ORPHAN_MS = 30_000;
/** Pending notifications read at a time; a look reads on until the queue is full, or all are read. */
const PENDING_PAGE = 100;
/**
 * How long a notification this node finished is remembered: a look whose
 * read began before its outcome was written must not send it again.
 */
const DONE_MEMORY_MS = 60_000;
/** Longest wait between two tries to write a delivery's outcome. */
const DONE_RETRY_MAX_MS = 30_000;
/**
 * Longest wait between two tries of a claim the database did not take:
 * the job's later notifications wait behind it, so it is tried often.
 */
const CLAIM_RETRY_MAX_MS = 10_000;
/** At a stop, a claim the database did not take is tried again this often, until half the stop's time. */
const CLOSE_RETRY_MS = 1000;
/** Claims named in the stop's line of those not written; the rest counted. */
const UNCLAIMED_NAMED = 10;
/**
 * Lost runs read at a time to order a declared-dead node's notifications:
 * a page of their ids and ends, none of their output, however many the
 * node left (a crash loop's thousands all notify).
 */
const LOST_PAGE = 1000;

const notifyLog = log("notify");

/**
 * The hook fields of an event: which command and which URL; `jobsCommand`:
 * the command is the job's own, not the config's `notify.*` default (an
 * administrator's, run as the service).
 */
function hooksOf(
  event: NotifyEvent,
  job: Job,
  s: NotifySettings,
): { command: string | null; jobsCommand: boolean; url: string | null; mail: boolean } {
  const or = (own: string | null, fallback: string) => own ?? (fallback === "" ? null : fallback);
  switch (event) {
    case "failure":
    case "silent":
      return {
        command: or(job.on_failure, s.onFailure),
        jobsCommand: job.on_failure !== null,
        url: or(job.on_failure_url, s.onFailureUrl),
        mail: s.mailto !== "",
      };
    case "recovery":
      return {
        command: or(job.on_recovery, s.onRecovery),
        jobsCommand: job.on_recovery !== null,
        url: or(job.on_recovery_url, s.onRecoveryUrl),
        mail: s.mailto !== "",
      };
    case "success":
      return {
        command: or(job.on_success, s.onSuccess),
        jobsCommand: job.on_success !== null,
        url: or(job.on_success_url, s.onSuccessUrl),
        mail: false,
      };
  }
}

function hasHooks(event: NotifyEvent, job: Job, s: NotifySettings): boolean {
  const h = hooksOf(event, job, s);
  return h.command !== null || h.url !== null || h.mail;
}

/**
 * Work waiting for a turn: `host` for a webhook's post (one at a time per
 * host), else null; `lane`, the job's channel it goes in order in (its
 * commands and mails, or its posts): it waits for the one queued before
 * it there, so a job's recovery never overtakes its failure.
 */
interface Task {
  host: string | null;
  job: string;
  lane: string;
  run: () => Promise<void>;
  /** It will not run (the service stops). */
  left: () => void;
}

/** A delivery's outcome: `unreachable`, its webhook receiver could not be reached (tried later). */
type Delivered = boolean | "unreachable";

/** The claim a delivery is of: its key, when it was made, its tries so far, what is left of it. */
type Claimed = Pick<PendingNotification, "event" | "ref" | "created_at" | "tries" | "channels">;

/** The host a webhook posts to, for its queue; the whole text when it does not parse. */
function hostOf(url: string | null): string | null {
  if (url === null) return null;
  return URL.canParse(url) ? new URL(url).host : url;
}

/** The program of a command line (its first word), as a log may name it. */
function programOf(command: string): string {
  return command.trim().split(/\s+/)[0];
}

/**
 * `text` without the arguments of `command` that may be secret: any value
 * given as `NAME=value` or `--name=value`, and any other argument but the
 * program, each as long as redactSecrets masks.
 */
function argumentsRedacted(text: string, command: string): string {
  const words = command.trim().split(/\s+/).slice(1).map((w) => w.replace(/^['"]|['"]$/g, ""));
  return redactSecrets(text, words.map((w) => /^[^=]*=(.+)$/.exec(w)?.[1] ?? w));
}

/** `text` with each URL holding user info or a query shown as urlForLog shows it. */
function redactUrls(text: string): string {
  return text.replace(/\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>]+/gi, (url) => {
    if (!URL.canParse(url)) return url;
    const u = new URL(url);
    return u.username !== "" || u.password !== "" || u.search !== "" ? urlForLog(url) : url;
  });
}

/** The key of one claimed notification, as `jm_notifications` knows it. */
function claimKey(jobId: string, event: NotifyEvent, ref: number): string {
  return `${jobId}\u0000${event}\u0000${ref}`;
}

export class Notifier {
  private readonly queue: Task[] = [];
  private readonly busy = new Set<Promise<void>>();
  /** Notifications being decided and claimed (runEnded, silence): beside the queue, at once; what each is of. */
  private readonly claiming = new Map<Promise<void>, string>();
  /** At a stop: the claims the database had not taken by half the stop's time (see `untilWritten`). */
  private readonly unclaimed: string[] = [];
  /** When a stop gives up the claims the database does not take (see `close`). */
  private claimsUntil = Infinity;
  /** Deliveries under way or queued, each until its outcome is written. */
  private readonly delivering = new Set<Promise<void>>();
  /** Notifications this node finished lately, by claimKey: when (see DONE_MEMORY_MS). */
  private readonly done = new Map<string, number>();
  /**
   * Notifications this node claimed to send and has not finished with
   * (queued or going out), by claimKey: the look for pending ones leaves
   * them alone. Added before the claim, so that no look sees its row first.
   */
  private readonly sending = new Set<string>();
  /** Webhook hosts being posted to now. */
  private readonly posting = new Set<string>();
  /** The lanes (see Task) of the deliveries under way. */
  private readonly lanes = new Set<string>();
  /** The last claim of each job being decided: the next waits for it, so they queue in order. */
  private readonly claimTails = new Map<string, Promise<void>>();
  /** The claims of lost runs being decided (see lostRuns): every claim made meanwhile waits for them. */
  private lostFirst: Promise<void> | null = null;
  /**
   * Jobs with a notification left pending in the database for want of a
   * turn: their later ones wait there too, behind it, and go in order at
   * the next look for pending ones.
   */
  private deferred = new Set<string>();
  /** While a look for pending ones reads: the jobs of notifications left pending meanwhile. */
  private deferredMeanwhile: Set<string> | null = null;
  /**
   * Whether the last look for pending notifications stopped on a full
   * queue before it read them all: every job's new ones wait in the
   * database then, behind them.
   */
  private unread = false;
  /** Looks for pending notifications that failed in a row (see UNREAD_LOOKS). */
  private failedLooks = 0;
  private readonly hooks = new Set<RunHandle>();
  /** When each job's full backlog was last said (see MAX_PENDING_PER_JOB_EVENT). */
  private readonly backlogSaid = new Map<string, number>();
  /**
   * Each job's hold (notify.min_interval) under way, known by when it is
   * due: its first held-back notification is logged, the rest counted by
   * event and said in one line as the hold ends (`holdEnded`). A crash
   * that left thousands of lost runs logged a line for each. Their claims
   * in jm_notifications are kept all the same.
   */
  private readonly holds = new Map<string, { dueAt: number; more: Map<NotifyEvent, number> }>();
  /** Jobs this node claimed or took notifications of: those removed since have theirs dropped. */
  private readonly jobsNotified = new Set<string>();
  private readonly closing = new AbortController();
  private loop: Promise<void> = Promise.resolve();
  /** Runs that ended while the database was away, by provisional id, until their rows are written. */
  private readonly unrecorded = new Map<number, { job: Job; run: EndedRun }>();
  /** Silence alerts this node has claimed or seen claimed: job id → the `since` they were for. */
  private readonly silenced = new Map<string, number>();
  private silentCount: number | null = null;
  /** When held-back notifications are looked for next (see HELD_LOOK_MAX_MS); at once at start. */
  private heldLookAt = -Infinity;
  /**
   * The first look for pending notifications that read them, at start or
   * after: new claims wait for it, so that what this node left pending
   * goes before anything newer. Not after UNREAD_LOOKS failed ones: newer
   * ones then go ahead (with a warning), rather than none.
   */
  private readonly firstLook = Promise.withResolvers<void>();

  /** The accounts of the users whose jobs' hook commands run as them. */
  private readonly accounts = new AccountLookups();

  constructor(private readonly o: NotifierOptions) {}

  /** Whether a run of this job that ends `status` may notify at all (cheap; no database). */
  private wanted(job: Job, status: RunStatus): boolean {
    const s = this.o.settings;
    if (FAILURE_STATUSES.includes(status)) return hasHooks("failure", job, s);
    if (status !== "success") return false;
    return hasHooks("success", job, s) || hasHooks("recovery", job, s);
  }

  /** A run ended: decide and claim its notifications, which then wait for a turn. Returns at once. */
  runEnded(job: Job, run: EndedRun): void {
    if (this.closing.signal.aborted || !this.wanted(job, run.status)) return;
    if (run.id < 0) {
      // Its row waits in the recorder: it is claimed once written, under its real id.
      if (this.unrecorded.size >= MAX_QUEUED) {
        notifyLog.error(
          "job {job}: notification of a run that ended {status} while the database was away dropped: {count} such runs already wait",
          { job: job.id, status: run.status, count: this.unrecorded.size },
        );
        this.o.observer?.notified("queue", false);
      } else {
        this.unrecorded.set(run.id, { job, run });
      }
      return;
    }
    this.claim(`job ${job.id} run ${run.id}`, job.id, () => this.decide(job, run));
  }

  /** Decide and claim the notifications of a run that ended (see runEnded). */
  private async decide(job: Job, run: EndedRun): Promise<void> {
    if (FAILURE_STATUSES.includes(run.status)) {
      await this.notify(job, "failure", run.id, run.status, runPayload("failure", job, run));
      return;
    }
    const s = this.o.settings;
    const recovered = hasHooks("recovery", job, s) &&
      await this.o.store.failingBefore(
        job.id,
        { id: run.id, finished_at: run.finished_at ?? this.o.clock.now() },
        FAILURE_STATUSES,
      );
    if (hasHooks("success", job, s)) {
      await this.notify(job, "success", run.id, run.status, runPayload("success", job, run));
    }
    if (recovered) {
      await this.notify(job, "recovery", run.id, run.status, runPayload("recovery", job, run));
    }
  }

  /**
   * The jobs in jm_jobs now (a reload read them): the notifications of a
   * job removed since, waiting for a turn here or pending in the database,
   * are not sent (logged with their count); those going out now finish.
   */
  jobsInTable(ids: ReadonlySet<string>): void {
    const gone = new Set([...this.jobsNotified].filter((id) => !ids.has(id)));
    for (const task of this.queue) if (!ids.has(task.job)) gone.add(task.job);
    if (gone.size === 0 || this.closing.signal.aborted) return;
    // Left as a stop leaves them: pending, which the drop below ends.
    const left = this.queue.filter((t) => gone.has(t.job));
    this.queue.splice(0, this.queue.length, ...this.queue.filter((t) => !gone.has(t.job)));
    for (const task of left) task.left();
    for (const id of gone) {
      this.jobsNotified.delete(id);
      this.backlogSaid.delete(id);
      // Its held notifications are dropped, and said so, below.
      this.holds.delete(id);
      this.deferred.delete(id);
      this.claim(`job ${id} removed`, id, async () => {
        const count = await this.o.store.dropNotifications(id);
        if (count === 0) return;
        notifyLog.warn(
          "job {job} was removed: {count} of its notifications waiting to be sent (pending or held back) dropped",
          { job: id, count },
        );
      });
    }
  }

  /**
   * Node `nodeId` was declared dead at `at`: its runs `runIds`, marked lost
   * then, notify, oldest end first. They ended before any run whose end is
   * learnt from now on (a missed fire decided at the restart, a retry's
   * recovery): every claim made after this waits for theirs (`lostFirst`),
   * as theirs wait for the claims made before.
   */
  lostRuns(nodeId: string, at: number, runIds: readonly number[]): void {
    if (this.closing.signal.aborted) return;
    const before = Promise.all([
      this.firstLook.promise,
      this.lostFirst,
      ...this.claimTails.values(),
    ]);
    const claiming = this.claim(`the runs of node ${nodeId}`, null, async () => {
      const ends = await this.lostEnds(nodeId, at, runIds);
      for (const [i, end] of ends.entries()) {
        if (this.closing.signal.aborted && this.o.clock.now() >= this.claimsUntil) {
          // Said with the claims the stop leaves unwritten (see sayUnclaimed).
          this.unclaimed.push(`${ends.length - i} more lost runs of node ${nodeId}`);
          return;
        }
        const what = `job ${end.job_id} run ${end.id}`;
        await this.untilWritten(what, async () => {
          const job = await this.o.store.getJob(end.job_id);
          if (!job || !this.wanted(job, "lost")) return;
          // Read whole (its output, if any) only now: the ends of thousands are all held at once.
          const row = await this.o.store.getRun(end.id);
          if (row === null || row.status !== "lost") return;
          await this.decide(job, { ...row, finished_at: row.finished_at ?? at });
        }).catch((error) => {
          notifyLog.warn("{what}: notification not sent: {error}", {
            what,
            error: this.scrub(String(error)),
          });
        });
      }
    }, before);
    if (claiming === null) return;
    this.lostFirst = claiming;
    claiming.finally(() => {
      if (this.lostFirst === claiming) this.lostFirst = null;
    });
  }

  /**
   * Of `runIds`, the runs of node `nodeId` still `lost`, read a page at a
   * time newest first back to the oldest of them, and returned oldest end
   * first (ended at `at` when no end was written), without their output.
   */
  private async lostEnds(
    nodeId: string,
    at: number,
    runIds: readonly number[],
  ): Promise<{ id: number; job_id: string; finished_at: number }[]> {
    const lost = new Set(runIds);
    const oldest = runIds.reduce((min, id) => Math.min(min, id), Infinity);
    const ends: { id: number; job_id: string; finished_at: number }[] = [];
    let beforeId: number | undefined;
    while (!this.closing.signal.aborted) {
      const page = await this.o.store.listRuns({
        node_id: nodeId,
        status: "lost",
        limit: LOST_PAGE,
        beforeId,
        output: false,
      });
      for (const run of page) {
        if (lost.has(run.id)) {
          ends.push({ id: run.id, job_id: run.job_id, finished_at: run.finished_at ?? at });
        }
      }
      beforeId = page.at(-1)?.id;
      if (page.length < LOST_PAGE || beforeId === undefined || beforeId <= oldest) break;
    }
    return ends.sort((a, b) => a.finished_at - b.finished_at || a.id - b.id);
  }

  /**
   * Jobs with alert_after silent past it at the last look, every node's
   * (as `status` lists them); null before the first look.
   */
  get silentJobs(): number | null {
    return this.silentCount;
  }

  /**
   * Look for silent jobs, due held-back notifications and pending ones
   * every NOTIFY_CHECK_MS until `close`.
   */
  start(): void {
    this.loop = (async () => {
      // What this node left pending when it last stopped goes before anything new can.
      if (this.o.health.online) {
        await this.sendPending(this.o.clock.now()).catch((error) => this.o.health.failed(error));
      }
      while (!this.closing.signal.aborted) {
        await this.o.clock.sleep(NOTIFY_CHECK_MS, this.closing.signal);
        if (this.closing.signal.aborted || !this.o.health.online) continue;
        try {
          await this.check();
        } catch (error) {
          this.o.health.failed(error);
        }
      }
    })();
  }

  /**
   * One look: runs recorded since they ended, silence alerts due, held-back
   * notifications due, pending notifications no one is sending.
   */
  private async check(): Promise<void> {
    for (const [provisional, { job, run }] of this.unrecorded) {
      const id = this.o.realId(provisional);
      if (id === undefined) continue;
      this.unrecorded.delete(provisional);
      // Null: another service had claimed the fire; its run notifies.
      if (id !== null) this.runEnded(job, { ...run, id });
    }
    const now = this.o.clock.now();
    const candidates = this.o.silenceWatched?.() === false
      ? []
      : await this.o.store.silenceCandidates();
    this.silentCount = candidates.filter((c) => c.since + c.alert_after * 1000 <= now).length;
    for (const candidate of candidates) {
      if (!this.o.mayFire(candidate.job_id)) continue;
      if (candidate.since + candidate.alert_after * 1000 > now) continue;
      if (this.silenced.get(candidate.job_id) === candidate.since) continue;
      const job = await this.o.store.getJob(candidate.job_id);
      if (!job || !job.enabled || !hasHooks("silent", job, this.o.settings)) continue;
      const payload = silencePayload(job, candidate, this.o.nodeId());
      this.silenced.set(job.id, candidate.since);
      this.claim(
        `job ${job.id} silence`,
        job.id,
        () => this.notify(job, "silent", candidate.since, SILENT_STATUS, payload),
      );
    }
    await this.sendPending(now);
    // With notify.min_interval 0 too: what was held before it was set so goes now.
    if (now < this.heldLookAt) return;
    // A hold meanwhile (notify, from the queue) lowers it; what this look finds must not undo that.
    const lookAt = this.heldLookAt;
    this.heldLookAt = Infinity;
    const { taken, nextDueAt, lost } = await this.o.store.takeHeld(
      now,
      this.o.settings.minIntervalMs,
      this.o.nodeId(),
      MAX_PENDING_PER_JOB_EVENT,
    ).catch((error) => {
      // Failed: looked for again at the next check.
      this.heldLookAt = Math.min(this.heldLookAt, lookAt);
      throw error;
    });
    this.heldLookAt = Math.min(this.heldLookAt, nextDueAt ?? Infinity, now + HELD_LOOK_MAX_MS);
    for (const jobId of lost) {
      notifyLog.warn(
        "job {job}: its held-back notification is not sent: its claim in jm_notifications was deleted before it was due (housekeeping keeps runs.keep_days; keep it longer than notify.min_interval)",
        { job: jobId },
      );
    }
    // Pending now: what finds no turn free goes at a later look.
    const jobs = new Map<string, Job | null>();
    for (const held of taken) {
      // Behind one of its job left for want of a turn: the next look sends both, in order.
      if (this.deferred.has(held.job_id)) continue;
      if (!await this.sendTaken(held, "held back, due now", jobs)) this.leftBehind(held.job_id);
      else this.holdEnded(held.job_id, "the one going out now summarises them");
    }
  }

  /**
   * Send the pending notifications no service is sending: this node's that
   * wait for a turn or outlived its last run (a stop, a crash), and those
   * of a node that no longer writes to the database, claimed `orphanMs`
   * ago or more. Each is taken first (`takeNotification`), so that one node
   * only sends it. Read a page at a time until the queue is full, in the
   * order claimed: a job's that finds no turn leaves its later ones for a
   * later look too (see `deferred`).
   */
  private async sendPending(now: number): Promise<void> {
    const left = new Set<string>();
    const meanwhile = this.deferredMeanwhile = new Set<string>();
    let readAll = false;
    try {
      readAll = await this.readPending(now, left);
      this.failedLooks = 0;
      this.unread = !readAll;
      this.firstLook.resolve();
    } catch (error) {
      if (++this.failedLooks === UNREAD_LOOKS) {
        notifyLog.warn(
          "the notifications left pending could not be read at {count} looks in a row ({error}): newer ones are sent meanwhile, and may go before them",
          { count: UNREAD_LOOKS, error: this.scrub(String(error)) },
        );
        this.unread = false;
        this.firstLook.resolve();
      }
      throw error;
    } finally {
      this.deferredMeanwhile = null;
      // Read to the end: the jobs left behind are those that found no turn in this look.
      this.deferred = this.failedLooks >= UNREAD_LOOKS
        ? new Set()
        : new Set([...(readAll ? [] : this.deferred), ...left, ...meanwhile]);
    }
  }

  /** One look's reading of sendPending, into `left`: whether it read every pending row. */
  private async readPending(now: number, left: Set<string>): Promise<boolean> {
    const me = this.o.nodeId();
    for (const [key, at] of this.done) if (at < now - DONE_MEMORY_MS) this.done.delete(key);
    // Read once a look: a backlog of one job's notifications costs one read, not one each.
    const jobs = new Map<string, Job | null>();
    for (let afterId = 0; this.queue.length < MAX_QUEUED;) {
      const page = await this.o.store.pendingNotifications({
        mine: me,
        orphanBefore: now - (this.o.orphanMs ?? ORPHAN_MS),
        writing: this.o.writers(),
        afterId,
        limit: PENDING_PAGE,
      });
      for (const row of page) {
        if (this.closing.signal.aborted) return false;
        const key = claimKey(row.job_id, row.event, row.ref);
        if (left.has(row.job_id) || this.sending.has(key) || this.done.has(key)) continue;
        // Waiting for its receiver: the job's later ones wait behind it, in the database.
        if (row.retry_at !== null && row.retry_at > now) {
          left.add(row.job_id);
          continue;
        }
        const sent = await this.sendTaken(
          row,
          row.tries > 0
            ? `waited for its webhook receiver, which was unreachable (try ${row.tries + 1})`
            : row.node_id === me
            ? "claimed before and not sent yet"
            : `claimed by node ${row.node_id}, which stopped before it went out`,
          jobs,
        );
        if (!sent) left.add(row.job_id);
      }
      if (page.length < PENDING_PAGE) return true;
      afterId = page[page.length - 1].id;
    }
    return false;
  }

  /** A notification of `job` was left pending in the database: its later ones wait behind it. */
  private leftBehind(job: string): void {
    this.deferred.add(job);
    this.deferredMeanwhile?.add(job);
  }

  /**
   * Take a pending notification (`why`, for the log) and send it, unless
   * another node took it first, or no turn is free for it (a later look
   * tries again). One whose job was removed meanwhile is done with, unsent.
   * `jobs`: the jobs read in this look. False when it found no turn.
   */
  private async sendTaken(
    row: PendingNotification,
    why: string,
    jobs: Map<string, Job | null>,
  ): Promise<boolean> {
    if (!jobs.has(row.job_id)) jobs.set(row.job_id, await this.o.store.getJob(row.job_id));
    const job = jobs.get(row.job_id)!;
    if (job) {
      const host = hostOf(hooksOf(row.event, job, this.o.settings).url);
      if (this.noRoom(host, job.id) !== null) return false;
      this.jobsNotified.add(job.id);
    }
    const now = this.o.clock.now();
    if (!await this.o.store.takeNotification(row.id, row.attempt, this.o.nodeId(), now)) {
      return true;
    }
    if (!job) {
      notifyLog.warn(
        "job {job}: its {event} notification (of {ref}) is not sent: the job was removed before it went out",
        { job: row.job_id, event: row.event, ref: row.ref },
      );
      await this.o.store.notificationDone(row.job_id, row.event, row.ref, "failed");
      return true;
    }
    let payload: NotifyPayload;
    try {
      const kept = JSON.parse(row.payload) as NotifyPayload | null;
      if (kept?.event !== row.event) throw new Error(`not a ${row.event} notification`);
      // Kept before version 10, it has no given_up.
      payload = {
        ...kept,
        // Kept before version 10, it has none of these.
        given_up: kept.given_up ?? null,
        attempt: kept.attempt ?? null,
        full_output: kept.full_output ?? null,
        held_back: row.heldBack && heldBackOf(row.heldBack),
      };
    } catch (error) {
      // Written by hand, or broken: it would stop every look, and its job's notifications behind it.
      notifyLog.error(
        "job {job}: its {event} notification (of {ref}) is not sent: what its claim in jm_notifications keeps does not parse ({error})",
        { job: row.job_id, event: row.event, ref: row.ref, error: String(error) },
      );
      await this.o.store.notificationDone(row.job_id, row.event, row.ref, "failed");
      return true;
    }
    if (!this.send(job, payload, row)) return false;
    notifyLog.info("job {job}: {event} notification (of {ref}) {why}: sending it now", {
      job: job.id,
      event: row.event,
      ref: row.ref,
      why,
    });
    return true;
  }

  /**
   * Stop taking work; give claims and deliveries under way half of
   * `timeoutMs`, then end their hook commands (SIGTERM, SIGKILL after
   * kill_grace) and wait for them the other half. Never longer than
   * `timeoutMs` in all. What was claimed and did not go out stays pending
   * in the database, for the next service to send; claims the database
   * did not take are tried each second for the first half, and those
   * still not written then are said in one line (see sayUnclaimed).
   */
  async close(timeoutMs: number): Promise<void> {
    this.claimsUntil = this.o.clock.now() + timeoutMs / 2;
    this.closing.abort();
    for (const job of [...this.holds.keys()]) {
      this.holdEnded(job, "they stay held in the database, and go out summarised once due");
    }
    // Claims waiting for a first look still reading (a hung database) are written, not sent.
    this.firstLook.resolve();
    if (this.queue.length > 0) {
      notifyLog.warn(
        "{count} deliveries waiting for a turn are not made by this service, which stops: their notifications stay pending in the database, and the next service to start sends them",
        { count: this.queue.length },
      );
      for (const task of this.queue.splice(0)) task.left();
    }
    if (this.unrecorded.size > 0) {
      notifyLog.warn(
        "{count} notifications are not sent: the service stops before their runs were recorded",
        { count: this.unrecorded.size },
      );
      for (const _ of this.unrecorded) this.o.observer?.notified("queue", false);
    }
    const deadline = Deadline.in(this.o.clock, timeoutMs);
    // No delivery starts from here on (see `send`): claims settling now leave theirs pending.
    const all = () =>
      Promise.all([this.loop, ...this.claiming.keys(), ...this.busy, ...this.delivering]);
    if (!await deadline.wait(all(), timeoutMs / 2)) {
      for (const hook of this.hooks) hook.interrupt();
      await deadline.wait(all());
    }
    this.sayUnclaimed();
  }

  /**
   * At a stop: the notifications whose claims the database did not take
   * (given up, or still waiting for it or for an earlier claim of their
   * job), as the recorder says the run records it could not write: their
   * runs have rows, but nothing in jm_notifications, so no service sends them.
   */
  private sayUnclaimed(): void {
    const named = [...this.unclaimed, ...this.claiming.values()];
    if (named.length === 0) return;
    const shown = named.slice(0, UNCLAIMED_NAMED).join(", ");
    notifyLog.error(
      "{count} notifications could not be claimed before exit (the database did not take their claims in jm_notifications): {what}; they are not sent",
      {
        count: named.length,
        what: named.length > UNCLAIMED_NAMED
          ? `${shown} and ${named.length - UNCLAIMED_NAMED} more`
          : shown,
      },
    );
    for (const _ of named) this.o.observer?.notified("queue", false);
  }

  /**
   * Run `work` (a claim), again while it fails for the database (away, no
   * answer in time, a lock wait, a deadlock, a write refused), waits
   * doubling up to CLAIM_RETRY_MAX_MS, until written: the run's row exists,
   * and nothing else would claim its notification. At a stop, tried each
   * second until half the stop's time, then left to the stop's line (see
   * `sayUnclaimed`). Other failures (the values refused, a fault) are the
   * caller's, as is the first error once the service stops.
   */
  private async untilWritten(what: string, work: () => Promise<void>): Promise<void> {
    for (let tries = 1, wait = FIRST_RETRY_MS;; tries++) {
      try {
        await work();
        if (tries > 1) {
          notifyLog.info("{what}: notification claimed at try {tries}", { what, tries });
        }
        return;
      } catch (error) {
        if (!(error instanceof DatabaseError) || error.unstorable) throw error;
        const now = this.o.clock.now();
        if (now >= this.claimsUntil) {
          this.unclaimed.push(what);
          return;
        }
        if (tries === 1) {
          notifyLog.warn(
            "{what}: notification not claimed yet: {error}; tried again until the database takes it, and the job's later notifications wait behind it",
            { what, error: this.scrub(String(error)) },
          );
        } else {
          notifyLog.debug("{what}: notification not claimed at try {tries}: {error}", {
            what,
            tries,
            error: this.scrub(String(error)),
          });
        }
        const stopping = this.closing.signal.aborted;
        await this.o.clock.sleep(
          stopping ? Math.min(CLOSE_RETRY_MS, this.claimsUntil - now) : wait,
          stopping ? undefined : this.closing.signal,
        );
        wait = Math.min(2 * wait, CLAIM_RETRY_MAX_MS);
      }
    }
  }

  /**
   * Decide and claim a notification now (`work`), beside the queue: it
   * only waits for the database, for the claim of `job` before it, and for
   * those of lost runs learnt before it (see lostRuns); or for `before`,
   * when given. Null when it was dropped, else settles once done (never
   * rejects).
   */
  private claim(
    what: string,
    job: string | null,
    work: () => Promise<void>,
    before?: Promise<unknown>,
  ): Promise<void> | null {
    if (this.claiming.size >= MAX_QUEUED) {
      notifyLog.error(
        "{what}: notification dropped: {count} are already being claimed (is the database slow?)",
        { what, count: this.claiming.size },
      );
      this.o.observer?.notified("queue", false);
      return null;
    }
    const previous = (job === null ? undefined : this.claimTails.get(job)) ??
      this.firstLook.promise;
    const after = before ??
      (this.lostFirst === null ? previous : Promise.all([previous, this.lostFirst]));
    const claiming: Promise<void> = after.then(() => this.untilWritten(what, work)).catch(
      (error) => {
        notifyLog.warn("{what}: notification not sent: {error}", {
          what,
          error: this.scrub(String(error)),
        });
      },
    ).finally(() => {
      this.claiming.delete(claiming);
      if (job !== null && this.claimTails.get(job) === claiming) this.claimTails.delete(job);
    });
    this.claiming.set(claiming, what);
    if (job !== null) this.claimTails.set(job, claiming);
    return claiming;
  }

  /**
   * Why no turn is free for a delivery of `job` (to webhook `host`, when
   * it has one); null when one is.
   */
  private noRoom(host: string | null, job: string): string | null {
    const count = (of: (t: Task) => boolean) => this.queue.filter(of).length;
    if (this.queue.length >= MAX_QUEUED) {
      return `${this.queue.length} deliveries already wait for a turn (notify.max_concurrent is ${this.o.settings.maxConcurrent})`;
    }
    if (count((t) => t.job === job) >= MAX_QUEUED_PER_JOB) {
      return `${MAX_QUEUED_PER_JOB} of this job's already wait for its earlier ones (are its hooks slower than its runs?)`;
    }
    if (host !== null && count((t) => t.host === host) >= MAX_QUEUED_PER_HOST) {
      return `${MAX_QUEUED_PER_HOST} posts to ${host} already wait for it to answer`;
    }
    return null;
  }

  /**
   * Queue `work` of `job` for a turn, `host`: a webhook's post, which waits
   * for the host's previous one; either waits for the job's previous one
   * in its `lane`. Resolves with what it returned; false when it threw
   * (logged); null when it was left undone (the service stopped).
   */
  private enqueue(
    what: string,
    work: () => Promise<Delivered>,
    route: Pick<Task, "host" | "job" | "lane">,
  ): Promise<Delivered | null> {
    const done = Promise.withResolvers<Delivered | null>();
    const run = async () => {
      try {
        done.resolve(await work());
      } catch (error) {
        notifyLog.warn("{what}: notification not sent: {error}", {
          what,
          error: this.scrub(String(error)),
        });
        done.resolve(false);
      }
    };
    this.queue.push({ ...route, run, left: () => done.resolve(null) });
    this.pump();
    return done.promise;
  }

  /**
   * Start queued work, oldest first, while turns are free: a host's posts
   * one at a time; a job's lane one at a time in the order queued (what
   * waits, for its host or its lane, holds its lane for what follows).
   */
  private pump(): void {
    const held = new Set<string>();
    for (let i = 0; i < this.queue.length && this.busy.size < this.o.settings.maxConcurrent;) {
      const { host, lane, run } = this.queue[i];
      if (this.lanes.has(lane) || held.has(lane) || (host !== null && this.posting.has(host))) {
        held.add(lane);
        i++;
        continue;
      }
      this.queue.splice(i, 1);
      this.lanes.add(lane);
      if (host !== null) this.posting.add(host);
      const running: Promise<void> = run().finally(() => {
        this.lanes.delete(lane);
        if (host !== null) this.posting.delete(host);
        this.busy.delete(running);
        this.pump();
      });
      this.busy.add(running);
    }
  }

  /** Claim, then send unless held back (or claimed elsewhere). */
  private async notify(
    job: Job,
    event: NotifyEvent,
    ref: number,
    status: string,
    payload: NotifyPayload,
  ): Promise<void> {
    const key = claimKey(job.id, event, ref);
    this.sending.add(key);
    this.jobsNotified.add(job.id);
    const claimedAt = this.o.clock.now();
    // on_success is a hook of every run, not an alert: never held back.
    const throttled = event !== "success";
    let outcome;
    try {
      outcome = await this.o.store.claimNotification({
        job_id: job.id,
        event,
        ref,
        status,
        at: claimedAt,
        node_id: this.o.nodeId(),
        minIntervalMs: throttled ? this.o.settings.minIntervalMs : null,
        payload: JSON.stringify(payload),
        maxPending: MAX_PENDING_PER_JOB_EVENT,
      });
    } finally {
      this.sending.delete(key);
    }
    if (outcome === null) return;
    if (!outcome.send) {
      this.heldLookAt = Math.min(this.heldLookAt, outcome.dueAt);
      const now = this.o.clock.now();
      if (outcome.backlog && (this.backlogSaid.get(job.id) ?? -Infinity) <= now - 60_000) {
        // Once a minute a job: every run of a job whose backlog is full would say it.
        this.backlogSaid.set(job.id, now);
        notifyLog.warn(
          "job {job}: {event} notification held back: {max} of the job's wait to be sent already (its hooks are slower than its runs, or a receiver is down); the next one that goes out counts it",
          { job: job.id, event, run: payload.run_id, max: MAX_PENDING_PER_JOB_EVENT },
        );
      } else if (!outcome.backlog) {
        this.heldBack(job.id, event, outcome.dueAt, payload.run_id);
      }
      return;
    }
    // Through min_interval: the job's hold, if any, ended, its summary going with this one.
    if (throttled) this.holdEnded(job.id, "the one going out now summarises them");
    // A stop under way: it stays pending, for the next service.
    if (this.closing.signal.aborted) return;
    if (this.unread || this.deferred.has(job.id)) {
      this.leftBehind(job.id);
      notifyLog.info(
        this.unread
          ? "job {job}: {event} notification waits in the database behind those the last look had no room to read: it goes out at the next look"
          : "job {job}: {event} notification waits in the database behind an earlier one of the job, which found no turn or waits for its webhook receiver: it goes out after it",
        { job: job.id, event, run: payload.run_id },
      );
      return;
    }
    const why = this.noRoom(hostOf(hooksOf(event, job, this.o.settings).url), job.id);
    if (why !== null) {
      this.leftBehind(job.id);
      notifyLog.warn(
        "job {job}: {event} notification waits in the database: {why}; it goes out when they have",
        { job: job.id, event, run: payload.run_id, why },
      );
      return;
    }
    this.send(
      job,
      { ...payload, held_back: outcome.heldBack && heldBackOf(outcome.heldBack) },
      { event, ref, created_at: claimedAt, tries: 0, channels: null },
    );
  }

  /**
   * A notification of `jobId` was held back (notify.min_interval) until
   * `dueAt`: the first of a hold is logged, the rest of it counted (see
   * `holds`). A hold of another due time means the last one ended
   * without this node sending what it held (another node did): said first.
   */
  private heldBack(jobId: string, event: NotifyEvent, dueAt: number, run: unknown): void {
    const hold = this.holds.get(jobId);
    if (hold?.dueAt === dueAt) {
      hold.more.set(event, (hold.more.get(event) ?? 0) + 1);
      return;
    }
    if (hold !== undefined) this.holdEnded(jobId, "the hold has ended");
    this.holds.set(jobId, { dueAt, more: new Map() });
    notifyLog.info("job {job}: {event} notification held back (notify.min_interval)", {
      job: jobId,
      event,
      run,
    });
  }

  /**
   * The hold of `jobId` ended (`what` follows), or is left so (a stop):
   * the notifications it held beyond the one logged are said in one line.
   */
  private holdEnded(jobId: string, what: string): void {
    const hold = this.holds.get(jobId);
    if (hold === undefined) return;
    this.holds.delete(jobId);
    if (hold.more.size === 0) return;
    const count = [...hold.more.values()].reduce((a, b) => a + b, 0);
    notifyLog.info(
      `job {job}: {count} more notifications were held back (notify.min_interval) after the one logged ({held}), counted rather than logged each; ${what}`,
      {
        job: jobId,
        held: [...hold.more].map(([event, n]) => `${n} ${event}`).join(", "),
        count,
      },
    );
  }

  /**
   * Deliver `payload` through the job's hooks: the command and the mail in
   * one turn, the webhook in its host's. `claimed`: its `jm_notifications`
   * row, marked sent (or failed) once every channel is done; left pending
   * when the service stopped first. False when no turn was free, or the
   * service stops (nothing was started then).
   */
  private send(job: Job, payload: NotifyPayload, claimed: Claimed): boolean {
    const hooks = hooksOf(payload.event, job, this.o.settings);
    const host = hostOf(hooks.url);
    if (this.closing.signal.aborted || this.noRoom(host, job.id) !== null) return false;
    const key = claimKey(job.id, claimed.event, claimed.ref);
    this.sending.add(key);
    // Read now, so that the job's lanes keep the order of its sends; said by every channel.
    const told = this.o.store.givenUp(job.id).catch((error) => {
      this.o.health.failed(error);
      return 0;
    });
    const telling = async () => withGivenUp(payload, await told);
    // Only the post left: the hook and mail went at an earlier try.
    const command = claimed.channels !== null ? null : hooks.command;
    const mail = claimed.channels === null && hooks.mail;
    // Gone at an earlier try: failed there, the notification ends failed whatever the post does.
    let hook: Promise<Delivered | null> = Promise.resolve(claimed.channels !== "webhook:failed");
    if (command !== null || mail) {
      hook = this.enqueue(
        `job ${job.id}: ${payload.event} hook`,
        async () => {
          const full = await telling();
          const results = await Promise.all([
            command === null ? true : this.runCommand(job, command, full, hooks.jobsCommand),
            mail ? this.mail(job, full) : true,
          ]);
          return results.every((ok) => ok);
        },
        { host: null, job: job.id, lane: `hook\u0000${job.id}` },
      );
    }
    const url = hooks.url;
    let post: Promise<Delivered | null> = Promise.resolve(true);
    if (url !== null) {
      post = this.enqueue(
        `job ${job.id}: ${payload.event} webhook`,
        async () => this.post(job, url, payload, await telling(), claimed),
        { host, job: job.id, lane: `post\u0000${job.id}` },
      );
    }
    const delivering: Promise<void> = Promise.all([hook, post]).then(async (results) => {
      try {
        // Cut short by a stop: pending still, sent again by the next service.
        const cut = results.includes(null) ||
          (this.closing.signal.aborted && results.some((r) => r !== true));
        if (cut) return;
        const [hooked, posted] = results;
        if (posted === "unreachable") {
          await this.tryLater(job.id, claimed, payload, hooked === true);
          return;
        }
        const ok = hooked === true && posted === true;
        await this.markDone(job.id, claimed, ok ? "sent" : "failed", ok ? await told : 0);
      } finally {
        this.sending.delete(key);
      }
    }).finally(() => this.delivering.delete(delivering));
    this.delivering.add(delivering);
    return true;
  }

  /**
   * The webhook receiver of a notification was unreachable through the
   * webhook retries: keep it pending in the database, tried again at a
   * later look (waits doubling up to NEXT_TRY_MAX_MS), only its post left;
   * past notify.give_up_after since its claim, give it up (an error in the
   * log; the job's next notification says how many were).
   */
  private async tryLater(
    jobId: string,
    claimed: Claimed,
    payload: NotifyPayload,
    hooked: boolean,
  ): Promise<void> {
    const now = this.o.clock.now();
    const giveUpAt = claimed.created_at + this.o.settings.giveUpAfterMs;
    const what = { job: jobId, event: claimed.event, run: payload.run_id };
    if (now >= giveUpAt) {
      notifyLog.error(
        "job {job}: {event} notification given up: its webhook receiver stayed unreachable for {tried} after the notification was claimed ({tries} tries; notify.give_up_after is {limit} s); the job's next notification says so",
        {
          ...what,
          tried: `${Math.round((now - claimed.created_at) / 1000)} s`,
          tries: claimed.tries + 1,
          limit: this.o.settings.giveUpAfterMs / 1000,
        },
      );
      this.o.observer?.notified("webhook", false);
      await this.markDone(jobId, claimed, "given_up");
      return;
    }
    const wait = Math.min(NEXT_TRY_FIRST_MS * 2 ** claimed.tries, NEXT_TRY_MAX_MS);
    const at = Math.min(now + wait, giveUpAt);
    for (let wait = FIRST_RETRY_MS;; wait = Math.min(2 * wait, DONE_RETRY_MAX_MS)) {
      try {
        await this.o.store.retryNotification(
          jobId,
          claimed.event,
          claimed.ref,
          at,
          hooked ? "webhook" : "webhook:failed",
        );
        // Said once written: the database away, it was not (yet) so.
        notifyLog.warn(
          "job {job}: {event} notification waits in the database for its webhook receiver: tried again at {at}, given up at {giveUp} (notify.give_up_after)",
          { ...what, at: formatUtc(new Date(at)), giveUp: formatUtc(new Date(giveUpAt)) },
        );
        // The job's later ones wait behind it (each look finds it waiting, and says so again).
        this.leftBehind(jobId);
        // A look that read it before is refused by its attempt; no need to remember it.
        return;
      } catch (error) {
        this.o.health.failed(error);
        if (this.closing.signal.aborted) {
          notifyLog.warn(
            "job {job}: {event} notification found its webhook receiver unreachable, and the service stopped before the database took its next try: it stays pending as it was, for the next service to send again",
            what,
          );
          return;
        }
        await this.o.clock.sleep(wait, this.closing.signal);
      }
    }
  }

  /**
   * Write a delivery's outcome, trying again (doubling waits) while the
   * database refuses, until the service stops: a notification still
   * pending would be sent again. Remembered once written (see `done`).
   */
  private async markDone(
    jobId: string,
    claimed: { event: NotifyEvent; ref: number },
    outcome: "sent" | "failed" | "given_up",
    told = 0,
  ): Promise<void> {
    for (let wait = FIRST_RETRY_MS;; wait = Math.min(2 * wait, DONE_RETRY_MAX_MS)) {
      try {
        await this.o.store.notificationDone(jobId, claimed.event, claimed.ref, outcome, told);
        this.done.set(claimKey(jobId, claimed.event, claimed.ref), this.o.clock.now());
        return;
      } catch (error) {
        this.o.health.failed(error);
        if (this.closing.signal.aborted) return;
        await this.o.clock.sleep(wait, this.closing.signal);
      }
    }
  }

  private hookEnv(payload: NotifyPayload): Record<string, string> {
    const text = (v: unknown) => v === null || v === undefined ? "" : String(v);
    return {
      JM_EVENT: payload.event,
      JM_JOB_ID: payload.job_id,
      JM_RUN_ID: text(payload.run_id),
      JM_STATUS: payload.status,
      JM_EXIT_CODE: text(payload.exit_code),
      JM_DURATION: payload.duration_ms === null ? "" : (payload.duration_ms / 1000).toFixed(3),
      JM_SCHEDULED_AT: text(payload.scheduled_at),
      JM_STARTED_AT: text(payload.started_at),
      JM_NODE_ID: text(payload.node_id),
      JM_OUTPUT_TAIL: payload.output_tail.replaceAll("\0", ""),
      JM_SUMMARY: payload.summary,
      JM_HELD_BACK: payload.held_back ? heldBackText(payload.held_back) : "",
    };
  }

  /**
   * Run `command` (a hook, sendmail) with `stdin` and the JM_* variables of
   * `payload`; as `user` (a job's, run_as.ts) when given.
   */
  private async shell(
    command: string,
    payload: NotifyPayload,
    stdin: string,
    user?: RunSpec["user"],
  ): Promise<RunResult> {
    const guard = this.o.guard;
    const marker = newMarker();
    guard?.watch(marker);
    const handle = this.o.startRun({
      command,
      env: this.hookEnv(payload),
      // Apart: a run as another user keeps only some of it (run_as.ts envForAnotherUser).
      baseEnv: this.o.baseEnv,
      user,
      stdin,
      timeoutMs: this.o.settings.timeoutMs,
      killGraceMs: this.o.killGraceMs,
      outputCap: HOOK_OUTPUT_CAP,
      secrets: this.o.secrets,
      marker,
    }, () => this.o.clock.now());
    this.hooks.add(handle);
    if (handle.pid !== null) guard?.add(handle.pid);
    try {
      return await handle.done;
    } finally {
      this.hooks.delete(handle);
      if (handle.pid !== null) guard?.remove(handle.pid);
      // What left the hook's group is looked for a while after its end: watched until then.
      const unwatch = () => guard?.unwatch(marker);
      handle.escaped.then(unwatch, unwatch);
    }
  }

  /**
   * Run the hook command; whether it succeeded. A job with a user has its
   * own hooks (`jobsCommand`) run as that user, as its runs: the service
   * running them would hand the user's output (JM_OUTPUT_TAIL) to a command
   * run as root. The config's `notify.*` defaults are the administrator's,
   * and run as the service, with its environment (a pager's token).
   */
  private async runCommand(
    job: Job,
    command: string,
    payload: NotifyPayload,
    jobsCommand: boolean,
  ): Promise<boolean> {
    let user: RunSpec["user"];
    if (job.user !== null && jobsCommand) {
      const found = await this.accounts.find(job.user);
      const note = lookupNote(found, job.id, job.user, this.accounts.waitMs);
      if (note !== null) return this.hookNotStarted(job, payload, note);
      user = { job: job.id, name: job.user, account: found as Account | null };
    }
    const result = await this.shell(command, payload, JSON.stringify(payload), user);
    const ok = result.status === "success";
    if (!ok && this.cutByStop(job, payload, "hook command")) return false;
    if (result.status === "error" && result.note !== null) {
      return this.hookNotStarted(job, payload, result.note);
    }
    this.o.observer?.notified("command", ok);
    if (ok) {
      notifyLog.info("job {job}: {event} hook command ran", {
        job: job.id,
        event: payload.event,
        run: payload.run_id,
      });
      return true;
    }
    notifyLog.warn("job {job}: {event} hook command {how}: {output}", {
      job: job.id,
      event: payload.event,
      run: payload.run_id,
      how: this.endedHow(result),
      // As sendmail's: a hook may print the URL (with its password) it failed to reach.
      output: this.scrub(redactUrls(result.stderr || result.stdout)).trim().slice(-500) ||
        "(no output)",
    });
    return false;
  }

  /** A hook command that could not start (its user's account, a spawn's error): a failed hook, saying why. */
  private hookNotStarted(job: Job, payload: NotifyPayload, note: string): false {
    this.o.observer?.notified("command", false);
    notifyLog.warn("job {job}: {event} hook command did not start: {note}", {
      job: job.id,
      event: payload.event,
      run: payload.run_id,
      note,
    });
    return false;
  }

  /** Mail the notification; whether sendmail took it (exited 0). */
  private async mail(job: Job, payload: NotifyPayload): Promise<boolean> {
    const s = this.o.settings;
    if (s.sendmail.trim() === "") {
      // The config refuses it; a mail "sent" by an empty command would be lost without a word.
      notifyLog.error("job {job}: {event} mail to {to} not sent: notify.sendmail is empty", {
        job: job.id,
        event: payload.event,
        to: s.mailto,
      });
      this.o.observer?.notified("mail", false);
      return false;
    }
    const result = await this.shell(s.sendmail, payload, mailText(s.mailto, payload));
    const ok = result.status === "success" && result.exitCode === 0;
    if (!ok && this.cutByStop(job, payload, "mail")) return false;
    this.o.observer?.notified("mail", ok);
    if (ok) {
      notifyLog.info("job {job}: {event} mailed to {to}", {
        job: job.id,
        event: payload.event,
        to: s.mailto,
      });
      return true;
    }
    notifyLog.warn(
      "job {job}: {event} mail to {to} not sent: {sendmail} {how}: {output}",
      {
        job: job.id,
        event: payload.event,
        to: s.mailto,
        // Its arguments may hold a password (msmtp --passwordeval, a relay URL): the program only.
        sendmail: programOf(s.sendmail),
        how: this.endedHow(result),
        output: this.scrub(
          redactUrls(argumentsRedacted(result.stderr || result.stdout, s.sendmail)),
        ).trim().slice(-500) || "(no output)",
      },
    );
    return false;
  }

  /**
   * How a hook command (or sendmail) that failed ended, one phrase:
   * "ended failed (exit 7)", "timed out: killed after notify.timeout (30 s)
   * with SIGTERM", "was killed by SIGKILL".
   */
  private endedHow(result: { status: string; exitCode: number | null; signal: string | null }) {
    if (result.status === "timeout") {
      return `timed out: killed after notify.timeout (${this.o.settings.timeoutMs / 1000} s)${
        result.signal === null ? "" : ` with ${result.signal}`
      }`;
    }
    if (result.exitCode === null && result.signal !== null) return `was killed by ${result.signal}`;
    return `ended ${result.status} (exit ${result.exitCode ?? "unknown"})`;
  }

  /**
   * Whether the stop cut a channel short (`what`): said as such, not as a
   * failure; the notification stays pending and is sent again.
   */
  private cutByStop(job: Job, payload: NotifyPayload, what: string): boolean {
    if (!this.closing.signal.aborted) return false;
    notifyLog.info(
      "job {job}: {event} {what} cut short by the stop; the notification stays pending, and the next service sends it again",
      { job: job.id, event: payload.event, what },
    );
    return true;
  }

  /** `text` without anything secret a webhook URL (or the signing key) holds. */
  private scrub(text: string, url?: string): string {
    const secrets = [...(url ? urlSecrets(url) : []), ...this.o.secrets];
    if (this.o.settings.webhookSecret !== "") secrets.push(this.o.settings.webhookSecret);
    return redactSecrets(
      url ? text.replaceAll(url, urlForLog(url)) : text,
      secrets.filter((s) => s !== url),
    );
  }

  /**
   * POST `payload`, retrying network errors, 5xx and 429 with doubling
   * delays: whether it took, or `unreachable` when the last attempt still
   * found the receiver so (the notification waits in the database, see
   * tryLater). `claimed` names the delivery, whose id is the same at each
   * attempt and each try (`given_up`, which may change between them, aside).
   */
  private async post(
    job: Job,
    url: string,
    claimedPayload: NotifyPayload,
    payload: NotifyPayload,
    claimed: Claimed,
  ): Promise<Delivered> {
    const s = this.o.settings;
    const body = JSON.stringify(payload);
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "user-agent": `jobsmanager/${VERSION}`,
      "x-jobsmanager-event": payload.event,
      "x-jobsmanager-delivery": await deliveryId(JSON.stringify(claimedPayload)),
    };
    if (s.webhookSecret !== "") {
      headers["x-jobsmanager-signature"] = `sha256=${await hmacHex(s.webhookSecret, body)}`;
    }
    let why = "";
    // Whether the receiver may answer later: network errors, 5xx, 429.
    let retry = true;
    for (let attempt = 0; attempt <= s.webhookRetries; attempt++) {
      if (attempt > 0) {
        await this.o.clock.sleep(FIRST_RETRY_MS * 2 ** (attempt - 1), this.closing.signal);
        if (this.closing.signal.aborted) break;
      }
      retry = true;
      try {
        const response = await fetch(url, {
          method: "POST",
          headers,
          body,
          // Followed, a 302 becomes a GET without the payload (and "delivered"), a 307
          // sends the signed payload to another host: a redirect is an answer to fix.
          redirect: "manual",
          signal: AbortSignal.any([
            AbortSignal.timeout(s.webhookTimeoutMs),
            this.closing.signal,
          ]),
        });
        await response.body?.cancel();
        if (response.ok) {
          this.o.observer?.notified("webhook", true);
          notifyLog.info("job {job}: {event} webhook {url} answered {code}", {
            job: job.id,
            event: payload.event,
            run: payload.run_id,
            url: urlForLog(url),
            code: response.status,
          });
          return true;
        }
        why = `HTTP ${response.status} ${response.statusText}`;
        if (response.status >= 300 && response.status < 400) {
          const to = response.headers.get("location");
          why += `: a redirect${
            to === null ? "" : ` to ${urlForLog(new URL(to, url).href)}`
          }, not followed; put the URL it names in the job (or notify.*_url)`;
        }
        retry = response.status >= 500 || response.status === 429;
      } catch (error) {
        // The stop's abort is no failure of the receiver.
        why = this.scrub(fetchFailure(error, s.webhookTimeoutMs), url);
      }
      if (!retry) break;
    }
    if (this.cutByStop(job, payload, `webhook ${urlForLog(url)}`)) return false;
    const unreachable = retry && s.giveUpAfterMs > 0;
    if (!unreachable) this.o.observer?.notified("webhook", false);
    // The try as a number: a string placeholder is rendered quoted, empty or not.
    notifyLog.warn("job {job}: {event} webhook {url} failed (try {try}): {why}", {
      job: job.id,
      event: payload.event,
      run: payload.run_id,
      url: urlForLog(url),
      try: claimed.tries + 1,
      why,
    });
    return unreachable ? "unreachable" : false;
  }
}
