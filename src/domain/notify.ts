/**
 * A job's notification fields (issue 13): hooks run when a run fails,
 * recovers or succeeds, and the silence alert. Kept apart from job.ts so
 * the columns other features add to `jm_jobs` stay in their own blocks.
 * Null everywhere means "the service's `notify.*` default".
 */
import { ValidationError } from "../errors.ts";
import { parseDuration } from "./time.ts";
import type { RunStatus } from "./run.ts";

export interface NotifyFields {
  /** Shell command run when a run fails (the run as JSON on stdin). */
  on_failure: string | null;
  /** URL POSTed the same JSON when a run fails. */
  on_failure_url: string | null;
  /** Command run on the first success after a failure (or a silence alert). */
  on_recovery: string | null;
  on_recovery_url: string | null;
  /** Command run after every successful run. */
  on_success: string | null;
  on_success_url: string | null;
  /** Seconds without a successful run after which `on_failure` fires with status `silent`; null = never. */
  alert_after: number | null;
}

/** What `job add` / `job update` were told; absent = not given, "" = back to the default. */
export interface NotifyOptions {
  on_failure?: string;
  on_failure_url?: string;
  on_recovery?: string;
  on_recovery_url?: string;
  on_success?: string;
  on_success_url?: string;
  /** A duration (`90s`, `15m`, `2h`, `7d`, `1w`) or seconds; "" = no silence alert. */
  alert_after?: string;
}

export const NOTIFY_FIELDS = [
  "on_failure",
  "on_failure_url",
  "on_recovery",
  "on_recovery_url",
  "on_success",
  "on_success_url",
  "alert_after",
] as const satisfies readonly (keyof NotifyFields)[];

export const HOOK_COMMANDS = ["on_failure", "on_recovery", "on_success"] as const;
export const HOOK_URLS = ["on_failure_url", "on_recovery_url", "on_success_url"] as const;
/** The commands, then the URLs. */
const HOOKS = [...HOOK_COMMANDS, ...HOOK_URLS];

export const NO_NOTIFY: NotifyFields = {
  on_failure: null,
  on_failure_url: null,
  on_recovery: null,
  on_recovery_url: null,
  on_success: null,
  on_success_url: null,
  alert_after: null,
};

/**
 * Outcomes that fire `on_failure`. `missed` is one (the job did not run when
 * it should have); `skipped` (max_instances), `cancelled` (a person asked)
 * and `interrupted` (the service stopped) are not failures of the job.
 */
export const FAILURE_STATUSES: readonly RunStatus[] = [
  "failed",
  "timeout",
  "error",
  "lost",
  "killed",
  "missed",
];

/** The status a silence alert reports (not a run status: no run ended). */
export const SILENT_STATUS = "silent";

/** Longest silence alert: a year. */
const MAX_ALERT_AFTER = 31_536_000;

/** Seconds of `--alert-after`: `90s`, `15m`, `2h`, `7d`, `1w`, or plain seconds. */
export function parseAlertAfter(raw: string): number {
  const text = raw.trim();
  let seconds: number;
  if (/^\d+$/.test(text)) {
    seconds = Number(text);
  } else {
    try {
      // Its own bounds below say what it takes.
      seconds = parseDuration(text, "alert_after", true) / 1000;
    } catch (error) {
      throw new ValidationError("alert_after", (error as Error).message);
    }
  }
  if (seconds < 1 || seconds > MAX_ALERT_AFTER) {
    throw new ValidationError(
      "alert_after",
      `alert_after: ${
        JSON.stringify(raw)
      } is not valid (allowed: from 1 s to ${MAX_ALERT_AFTER} s, e.g. 90s, 15m, 2h, 7d)`,
    );
  }
  return seconds;
}

/** The notification fields `options` change, over `current`. */
export function applyNotifyOptions(current: NotifyFields, options: NotifyOptions): NotifyFields {
  const next = { ...current };
  for (const field of HOOKS) {
    const value = options[field];
    if (value !== undefined) next[field] = value.trim() === "" ? null : value;
  }
  if (options.alert_after !== undefined) {
    next.alert_after = options.alert_after.trim() === ""
      ? null
      : parseAlertAfter(options.alert_after);
  }
  return next;
}

/** Throw unless `url` is an http(s) URL; the message never shows the URL (it may hold a token). */
export function checkHookUrl(url: string, field: string): string {
  let parsed: URL | null = null;
  try {
    parsed = new URL(url);
  } catch {
    // Said below.
  }
  if (parsed === null || (parsed.protocol !== "http:" && parsed.protocol !== "https:")) {
    throw new ValidationError(
      field,
      `${field}: is not an http:// or https:// URL (the value is not shown: it may hold a secret)`,
    );
  }
  return url;
}

/** Check the notification fields of a job, whatever wrote them. */
export function validateNotify(job: NotifyFields & { id: string }): void {
  // Most jobs set no hook, which six reads by name tell without a loop: a
  // reload checks every job it adds, while its code is cold and a for-of's
  // iterator allocates.
  const hooked = job.on_failure !== null || job.on_recovery !== null ||
    job.on_success !== null || job.on_failure_url !== null || job.on_recovery_url !== null ||
    job.on_success_url !== null;
  for (let i = 0; hooked && i < HOOKS.length; i++) {
    const field = HOOKS[i];
    const value: unknown = job[field];
    if (value === null) continue;
    if (typeof value !== "string" || value.trim() === "") {
      throw new ValidationError(
        field,
        `${field}: ${
          JSON.stringify(value)
        } is not valid (expected text, or NULL for the service's notify.${field})`,
      );
    }
    if (value.includes("\0")) {
      throw new ValidationError(field, `${field}: contains a NUL byte, which no shell can run`);
    }
    if (field.endsWith("_url")) checkHookUrl(value, field);
  }
  const after: unknown = job.alert_after;
  if (
    after !== null &&
    (typeof after !== "number" || !Number.isInteger(after) || after < 1 || after > MAX_ALERT_AFTER)
  ) {
    throw new ValidationError(
      "alert_after",
      `alert_after: ${
        JSON.stringify(after)
      } is not valid (allowed: seconds from 1 to ${MAX_ALERT_AFTER}, or NULL for no silence alert)`,
    );
  }
}

/**
 * A URL as it may be logged, or shown to a read token: no user info, no
 * query, no fragment, and no path, where Slack, Discord and Teams keep the
 * secret after the first segment, Telegram in it (`/bot123:TOKEN/…`), and
 * ping services in the only one (`https://hooks.slack.com/***`).
 */
export function urlForLog(url: string): string {
  return maskUrl(url, true);
}

/** A URL as `job show` prints it: no user info, no query, no fragment; its path whole. */
export function urlForShow(url: string): string {
  return maskUrl(url, false);
}

function maskUrl(url: string, path: boolean): string {
  try {
    const u = new URL(url);
    const auth = u.username !== "" || u.password !== "" ? "***@" : "";
    const shown = path && u.pathname !== "/" ? "/***" : u.pathname;
    return `${u.protocol}//${auth}${u.host}${shown}${u.search !== "" ? "?***" : ""}`;
  } catch {
    return "(a URL that does not parse)";
  }
}

/**
 * The path `urlForLog` hides, to scrub from what is logged, or null: none,
 * or one too short to hold a secret (`/hook`), which would scrub common words.
 */
export function urlPathSecret(url: string): string | null {
  try {
    const path = new URL(url).pathname;
    return path.length >= 8 ? path : null;
  } catch {
    return null;
  }
}

/** The counts by status without one of `status` (the notification sent stands for itself). */
export function minusOne(statuses: Record<string, number>, status: string): Record<string, number> {
  const out = { ...statuses };
  if ((out[status] ?? 0) > 1) out[status]--;
  else delete out[status];
  return out;
}
