/**
 * What a notification says (issue 13): the JSON a hook gets on stdin and a
 * webhook as its body, the mail `sendmail -t` gets, the summary of what was
 * held back, the webhook's signature, and the parts of a URL never logged.
 * Pure functions; the notifier (notifier.ts) sends them.
 */
import { type Job, retryDelayMs, retryOn } from "../domain/job.ts";
import { SILENT_STATUS, urlPathSecret } from "../domain/notify.ts";
import type { RunStatus, RunTrigger } from "../domain/run.ts";
import type { HeldBack, NotifyEvent, SilenceCandidate } from "../store/store.ts";

/** What the notifier is told of a run that ended. */
export interface EndedRun {
  id: number;
  job_id: string;
  status: RunStatus;
  exit_code: number | null;
  signal: string | null;
  scheduled_at: number;
  started_at: number | null;
  finished_at: number;
  node_id: string | null;
  trigger: RunTrigger;
  note: string | null;
  stdout: string | null;
  stderr: string | null;
  /** Which attempt it was (1 = the first run, more for its retries); 1 when not given. */
  attempt?: number;
}

/** The JSON a hook gets on stdin and a webhook as its body. */
export interface NotifyPayload {
  event: NotifyEvent;
  job_id: string;
  description: string | null;
  /** The run's status, or `silent`. */
  status: string;
  /** Null for a silence alert. */
  run_id: number | null;
  exit_code: number | null;
  signal: string | null;
  scheduled_at: string | null;
  started_at: string | null;
  finished_at: string | null;
  duration_ms: number | null;
  node_id: string | null;
  trigger: string | null;
  note: string | null;
  /** The end of the run's output (stdout, then stderr). */
  output_tail: string;
  /**
   * Of a job that retries: which attempt the run was, of how many, and when
   * the next starts (null: no retry left); null for a job without retries
   * or an outcome it does not retry on.
   */
  attempt: { number: number; of: number; next_try_at: string | null } | null;
  /** The command that shows the run with its whole output (null: no run). */
  full_output: string | null;
  /** One line saying what happened, the mail's subject. */
  summary: string;
  /** Notifications of this job not sent since the last one (notify.min_interval). */
  held_back: { count: number; since: string; statuses: Record<string, number> } | null;
  /**
   * How many earlier notifications of this job were given up since one was
   * sent (their webhook receiver stayed unreachable for notify.give_up_after);
   * null: none.
   */
  given_up: number | null;
}

/** Characters of output a notification carries. */
const OUTPUT_TAIL = 2000;

/** The parts of a URL that may be secret: the URL itself, its user info, its query values. */
export function urlSecrets(url: string): string[] {
  const out = [url];
  try {
    const u = new URL(url);
    out.push(u.href, u.username, u.password, decodeURIComponent(u.password), u.search);
    // Where Slack, Discord, Teams and Telegram keep their secret (see urlForLog).
    const path = urlPathSecret(url);
    if (path !== null) out.push(path, decodeURIComponent(path));
    for (const value of u.searchParams.values()) out.push(value, encodeURIComponent(value));
  } catch {
    // Nothing more to find in it.
  }
  // redactSecrets takes the long ones, longest first: a URL is replaced whole before its parts are.
  return out;
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

function tail(run: Pick<EndedRun, "stdout" | "stderr">): string {
  const text = [run.stdout ?? "", run.stderr ?? ""].filter((s) => s !== "").join("\n");
  return text.length > OUTPUT_TAIL ? text.slice(-OUTPUT_TAIL) : text;
}

/** The attempt a run that ended was, of a job that retries it (see NotifyPayload.attempt). */
function attemptOf(job: Job, run: EndedRun): NotifyPayload["attempt"] {
  if (job.retries === 0 || !retryOn(job).includes(run.status)) return null;
  const attempt = run.attempt ?? 1;
  const next = attempt <= job.retries
    ? iso(run.finished_at + retryDelayMs(job, attempt, run.id))
    : null;
  return { number: attempt, of: job.retries + 1, next_try_at: next };
}

/** "attempt 1 of 3, next try at …" / "attempt 3 of 3, no retry left". */
export function attemptText(attempt: NonNullable<NotifyPayload["attempt"]>): string {
  return `attempt ${attempt.number} of ${attempt.of}, ${
    attempt.next_try_at === null ? "no retry left" : `next try at ${attempt.next_try_at}`
  }`;
}

function runSummary(event: NotifyEvent, run: EndedRun): string {
  const how = run.exit_code !== null && run.status !== "success"
    ? ` (exit ${run.exit_code})`
    : run.signal !== null
    ? ` (${run.signal})`
    : "";
  const what = event === "recovery" ? "recovered: succeeded after failing" : run.status;
  return `job ${run.job_id} ${what}${how}, run ${run.id}${run.node_id ? ` on ${run.node_id}` : ""}`;
}

/** The payload of a run that ended. */
export function runPayload(event: NotifyEvent, job: Job, run: EndedRun): NotifyPayload {
  const attempt = event === "failure" ? attemptOf(job, run) : null;
  const summary = runSummary(event, run);
  return {
    event,
    job_id: job.id,
    description: job.description,
    status: run.status,
    run_id: run.id,
    exit_code: run.exit_code,
    signal: run.signal,
    scheduled_at: iso(run.scheduled_at),
    started_at: iso(run.started_at),
    finished_at: iso(run.finished_at),
    duration_ms: run.started_at === null ? null : run.finished_at - run.started_at,
    node_id: run.node_id,
    trigger: run.trigger,
    note: run.note,
    output_tail: tail(run),
    attempt,
    full_output: `jobsmanager runs show ${run.id}`,
    summary: attempt === null ? summary : `${summary}; ${attemptText(attempt)}`,
    held_back: null,
    given_up: null,
  };
}

export function silencePayload(
  job: Job,
  candidate: SilenceCandidate,
  nodeId: string,
): NotifyPayload {
  return {
    event: "silent",
    job_id: job.id,
    description: job.description,
    status: SILENT_STATUS,
    run_id: null,
    exit_code: null,
    signal: null,
    scheduled_at: null,
    started_at: null,
    finished_at: null,
    duration_ms: null,
    node_id: nodeId,
    trigger: null,
    note: `no successful run since ${
      new Date(candidate.since).toISOString()
    } (alert_after ${candidate.alert_after} s)`,
    output_tail: "",
    attempt: null,
    full_output: null,
    summary: `job ${job.id} silent: no successful run for ${candidate.alert_after} s`,
    held_back: null,
    given_up: null,
  };
}

/** The payload telling of `count` notifications given up before it (in its summary too). */
export function withGivenUp(payload: NotifyPayload, count: number): NotifyPayload {
  if (count <= 0) return payload;
  return {
    ...payload,
    given_up: count,
    summary: `${payload.summary}; ${count} earlier notification${
      count === 1 ? " of this job was" : "s of this job were"
    } given up (webhook receiver unreachable)`,
  };
}

/**
 * Why a webhook POST threw, in words an operator can act on: fetch's own
 * message is "fetch failed", the reason is in its cause. `timeoutMs`:
 * notify.webhook_timeout, for a post that got no answer.
 */
export function fetchFailure(error: unknown, timeoutMs: number): string {
  const err = error as Error & { cause?: unknown };
  if (err?.name === "TimeoutError") {
    return `no answer within notify.webhook_timeout (${timeoutMs / 1000} s)`;
  }
  const cause = err?.cause instanceof Error ? err.cause.message : "";
  // "error sending request for url (URL): client error (Connect): tcp connect error: …": the end says it.
  const detail = (cause || String(err?.message ?? error))
    .replace(/^error sending request for url \([^)]*\):\s*/, "")
    .replace(/^client error \(\w+\):\s*/, "");
  const kinds: [RegExp, string][] = [
    [/connection refused/i, "connection refused"],
    [/dns error|failed to lookup|name or service not known|no such host/i, "DNS lookup failed"],
    [/timed out/i, "connection timed out"],
    [/connection reset|broken pipe|connection closed|unexpected eof/i, "connection reset"],
    [/certificate|tls|ssl|handshake|corrupt message/i, "TLS failed"],
    [/network is unreachable|no route to host|host is unreachable/i, "host unreachable"],
  ];
  const kind = kinds.find(([pattern]) => pattern.test(detail))?.[1];
  return kind === undefined ? detail : `${kind} (${detail})`;
}

/** "3 more notifications held back since …: failed 2, missed 1". */
export function heldBackText(held: NonNullable<NotifyPayload["held_back"]>): string {
  return `${held.count} more notification${
    held.count === 1 ? "" : "s"
  } held back since ${held.since}: ${
    Object.entries(held.statuses).map(([status, n]) => `${status} ${n}`).join(", ")
  }`;
}

/** The `X-Jobsmanager-Signature` value's hex: HMAC-SHA256 of `body` under `secret` (WebCrypto). */
/**
 * The id of one delivery, the same at each attempt: a receiver that saw
 * it (a post that timed out after it arrived) can tell the retry.
 */
export async function deliveryId(body: string): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(body)),
  );
  return Array.from(digest.subarray(0, 16), (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function hmacHex(secret: string, body: string): Promise<string> {
  const encoder = new TextEncoder();
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const signature = new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(body)));
  return Array.from(signature, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The mail of a notification, headers first, as `sendmail -t` reads it. */
export function mailText(to: string, payload: NotifyPayload): string {
  const oneLine = (s: string) => s.replace(/[\r\n]+/g, " ");
  const lines = [
    `To: ${oneLine(to)}`,
    `Subject: jobsmanager: ${oneLine(payload.summary)}`,
    "Content-Type: text/plain; charset=utf-8",
    `X-Jobsmanager-Job: ${payload.job_id}`,
    `X-Jobsmanager-Status: ${payload.status}`,
    "",
    payload.summary,
    "",
    ...([
      ["job", payload.job_id],
      ["status", payload.status],
      ["run", payload.run_id],
      ["exit code", payload.exit_code],
      ["signal", payload.signal],
      ["scheduled at", payload.scheduled_at],
      ["started at", payload.started_at],
      ["finished at", payload.finished_at],
      ["node", payload.node_id],
      ["attempt", payload.attempt && attemptText(payload.attempt)],
      ["note", payload.note],
    ] as [string, unknown][]).filter(([, v]) => v !== null && v !== undefined).map(([k, v]) =>
      `${k}: ${v}`
    ),
  ];
  if (payload.held_back) lines.push("", heldBackText(payload.held_back));

  if (payload.output_tail !== "") lines.push("", "output (end):", payload.output_tail);
  if (payload.full_output) lines.push("", `whole output: ${payload.full_output}`);
  return lines.join("\n") + "\n";
}

/** What the store kept of the held-back notifications, as the payload gives it. */
export function heldBackOf(held: HeldBack): NonNullable<NotifyPayload["held_back"]> {
  return { count: held.count, since: new Date(held.since).toISOString(), statuses: held.statuses };
}
