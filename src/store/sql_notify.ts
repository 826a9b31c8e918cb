/**
 * NotifyStore (store.ts) in SQL both dialects accept: the claim of a
 * notification by the unique key of `jm_notifications`, throttling in
 * `jm_notify_state`, and the questions the notifier asks of `jm_runs`.
 */
import { minusOne } from "../domain/notify.ts";
import { type DialectProfile, type Driver, insertSql } from "./driver.ts";
import type {
  ClaimOutcome,
  HeldBack,
  NotificationClaim,
  NotifyEvent,
  PendingNotification,
  SilenceCandidate,
  TakenHeld,
} from "./store.ts";

const CLAIM_COLUMNS = [
  "job_id",
  "event",
  "ref",
  "status",
  "created_at",
  "node_id",
  "outcome",
  "payload",
] as const;

/** Most held-back notifications one flush takes. */
const HELD_PER_FLUSH = 100;

function statusCounts(text: unknown): Record<string, number> {
  if (typeof text !== "string" || text === "") return {};
  try {
    return JSON.parse(text) as Record<string, number>;
  } catch {
    return {};
  }
}

export async function claimNotification(
  driver: Driver,
  claim: NotificationClaim,
): Promise<ClaimOutcome | null> {
  return await driver.transaction(async (tx) => {
    const inserted = await tx.run(
      insertSql("jm_notifications", CLAIM_COLUMNS, 1, driver.profile.onDuplicateIgnore),
      [
        claim.job_id,
        claim.event,
        claim.ref,
        claim.status,
        claim.at,
        claim.node_id,
        "pending",
        claim.payload,
      ],
    );
    if (inserted.changes !== 1) return null;
    if (claim.minIntervalMs === null) return { send: true, heldBack: null };
    // The job's row is locked from here (the upsert), waiting as any statement does (mysql.ts,
    // 30 s): bounded shorter, a claim behind a frozen holder would only fail sooner and be tried
    // again (notifier.ts untilWritten), getting the row later than a wait granted at its release.
    await tx.run(
      insertSql("jm_notify_state", ["job_id"], 1, driver.profile.upsertTail("job_id", ["job_id"])),
      [claim.job_id],
    );
    const [state] = await tx.all(
      `SELECT last_sent_at, held_count, held_since, held_statuses FROM jm_notify_state WHERE job_id = ?${driver.profile.forUpdate}`,
      [claim.job_id],
    );
    const held = Number(state.held_count);
    const statuses = statusCounts(state.held_statuses);
    // Null: the job was never notified.
    const lastSent = state.last_sent_at === null ? null : Number(state.last_sent_at);
    const crowded = claim.maxPending !== undefined &&
      await pendingOf(tx, claim.job_id, claim.event, inserted.lastId) >= claim.maxPending;
    // Within min_interval of the last one sent, on either side: each node reads its own clock
    // for `at` before its transaction, so a claim may commit after one of a later `at`. Such a
    // one is held only as near to it as the interval says (with 0, never).
    const near = lastSent !== null && Math.abs(claim.at - lastSent) < claim.minIntervalMs;
    if (near || crowded) {
      statuses[claim.status] = (statuses[claim.status] ?? 0) + 1;
      await tx.run(
        "UPDATE jm_notify_state SET held_count = ?, held_since = ?, held_statuses = ?, held_payload = ?, held_id = ? WHERE job_id = ?",
        [
          held + 1,
          held === 0 ? claim.at : Number(state.held_since),
          JSON.stringify(statuses),
          claim.payload,
          inserted.lastId,
          claim.job_id,
        ],
      );
      // Its payload waits in jm_notify_state, for the flush.
      await tx.run("UPDATE jm_notifications SET outcome = 'held', payload = NULL WHERE id = ?", [
        inserted.lastId,
      ]);
      const dueAt = (lastSent ?? claim.at) + claim.minIntervalMs;
      return crowded ? { send: false, dueAt, backlog: true } : { send: false, dueAt };
    }
    await tx.run(
      "UPDATE jm_notify_state SET last_sent_at = ?, held_count = 0, held_since = NULL, held_statuses = NULL, held_payload = NULL, held_id = NULL WHERE job_id = ?",
      // Never back: one that came out of order does not shorten the hold after the later one.
      [Math.max(claim.at, lastSent ?? claim.at), claim.job_id],
    );
    if (held === 0) return { send: true, heldBack: null };
    const heldBack: HeldBack = { count: held, since: Number(state.held_since), statuses };
    await tx.run("UPDATE jm_notifications SET held_back = ? WHERE id = ?", [
      JSON.stringify(heldBack),
      inserted.lastId,
    ]);
    return { send: true, heldBack };
  });
}

/** Thrown to undo a take of a held notification whose job's backlog is full (see takeHeld). */
class StillHeld extends Error {}

/** How many notifications of (job, event) are pending, but `except` (a row id). */
async function pendingOf(
  tx: Pick<Driver, "all">,
  jobId: string,
  event: string,
  except: number,
): Promise<number> {
  const [row] = await tx.all(
    "SELECT COUNT(*) AS n FROM jm_notifications WHERE job_id = ? AND event = ? AND outcome = 'pending' AND id <> ?",
    [jobId, event, except],
  );
  return Number(row.n);
}

export async function pendingNotifications(
  driver: Driver,
  query: {
    mine: string;
    orphanBefore: number;
    writing: readonly string[];
    afterId: number;
    limit: number;
  },
): Promise<PendingNotification[]> {
  const others = query.writing.filter((id) => id !== query.mine);
  const rows = await driver.all(
    `SELECT id, job_id, event, ref, node_id, attempt, payload, held_back, created_at, tries, channels, retry_at FROM jm_notifications WHERE outcome = 'pending' AND id > ? AND (node_id = ? OR (COALESCE(taken_at, created_at) <= ?${
      others.length === 0 ? "" : ` AND node_id NOT IN (${others.map(() => "?").join(", ")})`
    })) ORDER BY id LIMIT ?`,
    [query.afterId, query.mine, query.orphanBefore, ...others, query.limit],
  );
  return rows.map((row) => ({
    id: Number(row.id),
    job_id: String(row.job_id),
    event: String(row.event) as NotifyEvent,
    ref: Number(row.ref),
    node_id: String(row.node_id),
    attempt: Number(row.attempt),
    payload: String(row.payload),
    heldBack: typeof row.held_back === "string" ? JSON.parse(row.held_back) as HeldBack : null,
    created_at: Number(row.created_at),
    tries: Number(row.tries),
    channels: row.channels === "webhook" || row.channels === "webhook:failed" ? row.channels : null,
    retry_at: row.retry_at == null ? null : Number(row.retry_at),
  }));
}

export async function notificationDone(
  driver: Driver,
  key: { jobId: string; event: string; ref: number },
  outcome: "sent" | "failed" | "given_up",
  told: number,
): Promise<void> {
  await driver.transaction(async (tx) => {
    const { changes } = await tx.run(
      "UPDATE jm_notifications SET outcome = ?, payload = NULL, held_back = NULL, retry_at = NULL WHERE job_id = ? AND event = ? AND ref = ? AND outcome = 'pending'",
      [outcome, key.jobId, key.event, key.ref],
    );
    if (changes !== 1) return;
    if (outcome === "given_up") {
      await tx.run(
        insertSql(
          "jm_notify_state",
          ["job_id"],
          1,
          driver.profile.upsertTail("job_id", ["job_id"]),
        ),
        [key.jobId],
      );
      await tx.run("UPDATE jm_notify_state SET given_up = given_up + 1 WHERE job_id = ?", [
        key.jobId,
      ]);
    } else if (outcome === "sent" && told > 0) {
      await tx.run(
        "UPDATE jm_notify_state SET given_up = CASE WHEN given_up > ? THEN given_up - ? ELSE 0 END WHERE job_id = ?",
        [told, told, key.jobId],
      );
    }
  });
}

export async function givenUp(driver: Driver, jobId: string): Promise<number> {
  const [row] = await driver.all("SELECT given_up FROM jm_notify_state WHERE job_id = ?", [jobId]);
  return row === undefined ? 0 : Number(row.given_up);
}

export async function dropNotifications(driver: Driver, jobId: string): Promise<number> {
  return await driver.transaction(async (tx) => {
    const { changes } = await tx.run(
      "UPDATE jm_notifications SET outcome = 'failed', payload = NULL, held_back = NULL, retry_at = NULL WHERE job_id = ? AND outcome IN ('pending', 'held')",
      [jobId],
    );
    await tx.run("DELETE FROM jm_notify_state WHERE job_id = ?", [jobId]);
    return changes;
  });
}

/** Runs of a job looked at for the one that ended last before a given run (see failingBefore). */
const RECENT_RUNS = 200;

export async function failingBefore(
  driver: Driver,
  jobId: string,
  run: { id: number; finished_at: number },
  failures: readonly string[],
): Promise<boolean> {
  const decisive = [...failures, "success"];
  // The run that ended last before this one, among the job's latest: with
  // max_instances above 1 an earlier run may end later, a later one sooner.
  // Newest first on (job_id, id), so only the job's latest rows are read.
  const [previous] = await driver.all(
    `SELECT status FROM (SELECT status, finished_at, id FROM jm_runs WHERE job_id = ? AND id <> ? AND finished_at <= ? AND status IN (${
      decisive.map(() => "?").join(", ")
    }) ORDER BY id DESC LIMIT ${RECENT_RUNS}) recent ORDER BY finished_at DESC, id DESC LIMIT 1`,
    [jobId, run.id, run.finished_at, ...decisive],
  );
  if (previous !== undefined && failures.includes(String(previous.status))) return true;
  const [silent] = await driver.all(
    "SELECT created_at FROM jm_notifications WHERE job_id = ? AND event = 'silent' ORDER BY created_at DESC LIMIT 1",
    [jobId],
  );
  if (silent === undefined) return false;
  // Alerted for silence: failing still, unless a success ended since.
  const [success] = await driver.all(
    `SELECT 1 AS found FROM jm_runs${
      driver.profile.forceIndex("jm_runs_job")
    } WHERE job_id = ? AND id <> ? AND ${
      driver.profile.noIndex("status")
    } = 'success' AND finished_at >= ? AND finished_at <= ? ORDER BY id DESC LIMIT 1`,
    [jobId, run.id, Number(silent.created_at), run.finished_at],
  );
  return success === undefined;
}

/** The job's last silence alert: the `since` it was for (its ref), and when it was claimed. */
const lastAlert = (column: string) =>
  `(SELECT n.${column} FROM jm_notifications n WHERE n.job_id = j.id AND n.event = 'silent' ORDER BY n.created_at DESC, n.id DESC LIMIT 1)`;

/**
 * The jobs watched for silence (every 5 s, and by `status`), each with its
 * last success: the end of the newest successful run, read back along the
 * job's own runs (jm_runs_job) to the first success. The latest end of all
 * its successes read every run of the job (MySQL: 55-100 s for 5,000 jobs
 * of 1,000 runs) or, on SQLite, every success of every job (1.4 s a job, on
 * the scheduler's thread); an index for it cost a third more on every
 * run's writes. Runs that overlap may end out of order: the newest run's
 * end is then earlier than the latest, by less than the overlap.
 */
export function silenceCandidatesSql(profile: DialectProfile): string {
  return `SELECT j.id, j.alert_after, j.created_at, j.updated_at, (SELECT r.finished_at FROM jm_runs r${
    profile.forceIndex("jm_runs_job")
  } WHERE r.job_id = j.id AND ${
    profile.noIndex("r.status")
  } = 'success' ORDER BY r.id DESC LIMIT 1) AS last_success, ${lastAlert("ref")} AS alert_since, ${
    lastAlert("created_at")
  } AS alerted_at FROM jm_jobs j WHERE j.enabled = 1 AND j.alert_after IS NOT NULL ORDER BY j.id`;
}

export async function silenceCandidates(driver: Driver): Promise<SilenceCandidate[]> {
  const rows = await driver.all(silenceCandidatesSql(driver.profile));
  return rows.map((row) => {
    const lastSuccess = Number(row.last_success ?? 0);
    // Alerted, and no success since: silent still, from the same instant, whatever was edited.
    // An alert from before the job was created was another job of that id (removed, added again).
    const alerted = row.alerted_at !== null && Number(row.alerted_at) >= lastSuccess &&
      Number(row.alerted_at) >= Number(row.created_at);
    return {
      job_id: String(row.id),
      alert_after: Number(row.alert_after),
      since: alerted ? Number(row.alert_since) : Math.max(Number(row.updated_at), lastSuccess),
    };
  });
}

export async function takeHeld(
  driver: Driver,
  now: number,
  minIntervalMs: number,
  nodeId: string,
  maxPending?: number,
): Promise<TakenHeld> {
  // The due ones first, and the first not due, for when it will be.
  const rows = await driver.all(
    "SELECT job_id, last_sent_at, held_count, held_since, held_statuses, held_payload, held_id FROM jm_notify_state WHERE held_count > 0 ORDER BY last_sent_at, job_id LIMIT ?",
    [HELD_PER_FLUSH + 1],
  );
  const taken: TakenHeld["taken"] = [];
  const lost: string[] = [];
  for (const [i, row] of rows.entries()) {
    const dueAt = Number(row.last_sent_at) + minIntervalMs;
    if (dueAt > now) return { taken, nextDueAt: dueAt, lost };
    if (i === HELD_PER_FLUSH) return { taken, nextDueAt: now, lost };
    const took = await driver.transaction(async (tx) => {
      // Only one service takes it: the write that finds the row as read.
      const { changes } = await tx.run(
        "UPDATE jm_notify_state SET last_sent_at = ?, held_count = 0, held_since = NULL, held_statuses = NULL, held_payload = NULL, held_id = NULL WHERE job_id = ? AND last_sent_at = ? AND held_count = ?",
        [now, String(row.job_id), Number(row.last_sent_at), Number(row.held_count)],
      );
      if (changes !== 1 || typeof row.held_payload !== "string") return null;
      // The held claim whose payload the state kept goes, the others are
      // counted; held before version 9, which kept no id: the latest.
      const [latest] = row.held_id === null
        ? await tx.all(
          "SELECT id, event, ref, status, created_at FROM jm_notifications WHERE job_id = ? AND outcome = 'held' ORDER BY id DESC LIMIT 1",
          [String(row.job_id)],
        )
        : await tx.all(
          "SELECT id, event, ref, status, created_at FROM jm_notifications WHERE id = ?",
          [
            Number(row.held_id),
          ],
        );
      if (latest === undefined) {
        lost.push(String(row.job_id));
        return null;
      }
      if (
        maxPending !== undefined &&
        await pendingOf(tx, String(row.job_id), String(latest.event), Number(latest.id)) >=
          maxPending
      ) {
        // Its backlog goes first: held still, as it was (a later look takes it).
        throw new StillHeld();
      }
      const count = Number(row.held_count) - 1;
      const heldBack: HeldBack | null = count === 0 ? null : {
        count,
        since: Number(row.held_since),
        statuses: minusOne(statusCounts(row.held_statuses), String(latest.status)),
      };
      await tx.run(
        "UPDATE jm_notifications SET outcome = 'pending', node_id = ?, taken_at = ?, payload = ?, held_back = ? WHERE id = ?",
        [nodeId, now, row.held_payload, heldBack && JSON.stringify(heldBack), Number(latest.id)],
      );
      return {
        id: Number(latest.id),
        job_id: String(row.job_id),
        event: String(latest.event) as NotifyEvent,
        ref: Number(latest.ref),
        node_id: nodeId,
        attempt: 0,
        payload: row.held_payload,
        heldBack,
        created_at: Number(latest.created_at),
        tries: 0,
        channels: null,
        retry_at: null,
      };
    }).catch((error) => {
      if (error instanceof StillHeld) return null;
      throw error;
    });
    if (took !== null) taken.push(took);
  }
  return { taken, nextDueAt: null, lost };
}
