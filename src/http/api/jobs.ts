/**
 * `/api/v1/jobs`: the catalogue, through the same use cases as `jobsmanager
 * job …`. A job in JSON has the field names of `jm_jobs`; writes answer
 * with the stored job and name their reload marker in a header.
 */
import { Hono } from "hono";
import type { Context } from "hono";
import {
  addJob,
  listJobs,
  type ReadAt,
  refuseStale,
  removeJob,
  retryOnUnused,
  setEnabled,
  showJob,
  storedJobId,
  upcomingFires,
  updateJob,
} from "../../app/jobs.ts";
import { requestRun } from "../../app/runs.ts";
import { userGivenWarnings } from "../../app/user_warnings.ts";
import { accountExpired, AccountLookups } from "../../daemon/run_as.ts";
import type { Run } from "../../domain/run.ts";
import { ValidationError } from "../../errors.ts";
import { buildJob, type Job, nextFires, validateId } from "../../domain/job.ts";
import type { JobChange } from "../../store/store.ts";
import { readableSchedule } from "../../cron/fields.ts";
import { FIELD_NAMES } from "../../cron/grammar.ts";
import { jobOptionsOf } from "../job_body.ts";
import { count, flag } from "../query.ts";
import { scheduleWords } from "../schedule_words.ts";
import { refuseReadOnlyChanges, scheduleTexts } from "./read_only.ts";
import { type ApiContext, type Env, json, readObject } from "./context.ts";
import { urlForLog } from "../../domain/notify.ts";
import { printableLine } from "../../domain/printable.ts";
import { HttpError } from "../errors.ts";
import { API_NAMES } from "../input_names.ts";
import type { Role } from "../auth.ts";
import { EnvMasks } from "./env_masks.ts";

/** The most fires one answer lists, as `job next -n`. */
const MAX_FIRES = 1000;
function written(
  c: Context,
  change: JobChange,
  job: Job | Job & { followers: string[] } | Job & { warnings: string[] },
  status: 200 | 201 = 200,
): Response {
  if (change.markerId !== null) c.header("Reload-Marker", String(change.markerId));
  return json(c, job, status);
}

/**
 * An added or changed job with what the CLI says of the same write on
 * stderr: in its `warnings`, and a Warning header each (RFC 7234 §5.5, code
 * 299, as Kubernetes' API server gives its own), for a client that reads
 * headers. A header holds bytes and one line: the text goes as UTF-8 (an
 * account's lookup that hung says "…"), a control character as `\xNN`.
 */
function writtenJob(
  c: Context,
  change: JobChange,
  warnings: (string | null)[],
  status: 200 | 201 = 200,
): Response {
  const said = warnings.filter((warning) => warning !== null);
  for (const warning of said) {
    const text = String.fromCharCode(...new TextEncoder().encode(printableLine(warning)));
    c.header("Warning", `299 - "${text.replaceAll(/["\\]/g, "\\$&")}"`, { append: true });
  }
  return written(c, change, { ...change.after!, warnings: said }, status);
}

/**
 * A job as a caller of `role` may see it: a read token sees where webhooks
 * go, not their credentials (`https://***@host/***?***`: no path either,
 * where Slack, Telegram and ping services keep their secret), and the
 * names of the job's environment variables, not their values (where a
 * job's API keys and passwords go; a read token is what a monitoring
 * system or a shared screen holds).
 * The secrets the service knows (its API tokens, the database password)
 * are masked in every text of a reader's answer (`json`): a job that calls
 * the API with the admin token would hand it to every read token.
 */
function visible(job: Job, role: Role): Omit<Job, "env"> & { env: Job["env"] | string } {
  if (role === "admin") return job;
  const masked = (url: string | null) => url === null ? null : urlForLog(url);
  return {
    ...job,
    env: maskedEnv(job.env),
    on_failure_url: masked(job.on_failure_url),
    on_recovery_url: masked(job.on_recovery_url),
    on_success_url: masked(job.on_success_url),
  };
}

/**
 * A job's env as a reader sees it: its names, each value `***`; a column
 * written by hand that is no object (text, a list) is `***` whole, its
 * characters no names and its length no one's business.
 */
function maskedEnv(env: unknown): Record<string, string> | string {
  if (typeof env !== "object" || env === null || Array.isArray(env)) return "***";
  return Object.fromEntries(Object.keys(env).map((name) => [name, "***"]));
}

/**
 * The `updated_at` an If-Match names (the ETag of `GET /jobs/{id}`,
 * `"1764000000000"`): the copy a change was made on; `*`, any stored copy
 * (RFC 9110). Absent: no condition.
 */
function readAt(header: string | undefined): ReadAt | undefined {
  if (header === undefined) return undefined;
  if (header.trim() === "*") return "*";
  const tag = /^(?:W\/)?"(\d{1,16})"$/.exec(header.trim());
  if (tag === null) {
    throw new HttpError(
      400,
      `If-Match: ${
        JSON.stringify(header.slice(0, 60))
      } is not the ETag of a job (GET /api/v1/jobs/{id} answers one, e.g. "1764000000000")`,
    );
  }
  return Number(tag[1]);
}

/** A running run as `GET /jobs` lists it with its job: enough to age it and to cancel it. */
function runningSummary(run: Run) {
  const { id, status, scheduled_at, started_at, node_id, cancel_requested_at } = run;
  return { id, status, scheduled_at, started_at, node_id, cancel_requested_at };
}

/** What `POST /schedule/preview` takes. */
const PREVIEW_FIELDS: readonly string[] = ["cron", ...FIELD_NAMES, "timezone", "count"];

export function jobRoutes(api: ApiContext): Hono<Env> {
  const routes = new Hono<Env>();
  const { store } = api;
  // This server's host: where a job given a user is judged runnable, as a run's start judges it.
  const lookups = api.accounts ?? new AccountLookups();
  /** What a write's read-only fields are checked with: what this caller's GET would show. */
  const shownBy = (c: Context<Env>) => ({
    store,
    defaultZone: api.defaultZone,
    shown: c.get("shown"),
  });

  routes.get("/jobs", async (c) => {
    const listings = await listJobs(store, {
      defaultZone: api.defaultZone,
      now: Date.now(),
      names: API_NAMES,
    });
    const [latest, running] = await Promise.all([store.latestRuns(), store.runningRuns()]);
    const last = new Map([...latest].map(([jobId, run]) => {
      const { id, status, scheduled_at, finished_at, exit_code } = run;
      return [jobId, { id, status, scheduled_at, finished_at, exit_code }];
    }));
    // The newest run is most often a skip beside a run stuck for hours: that one is said apart.
    const runningOf = new Map<string, ReturnType<typeof runningSummary>[]>();
    for (const run of running) {
      const list = runningOf.get(run.job_id) ?? [];
      list.push(runningSummary(run));
      runningOf.set(run.job_id, list);
    }
    return json(
      c,
      listings.map(({ job, zone, next, invalid, link }) => ({
        ...visible(job, c.get("role")),
        zone,
        ...scheduleTexts(job),
        next_fire: next?.toISOString() ?? null,
        invalid,
        after_missing: link !== null,
        last_run: last.get(job.id) ?? null,
        running: runningOf.get(job.id) ?? [],
      })),
    );
  });

  routes.post("/jobs", async (c) => {
    const body = await readObject(c);
    const id = body.id;
    if (typeof id !== "string") {
      throw new ValidationError(
        "id",
        `id: ${
          id === undefined ? "missing" : `${JSON.stringify(id)} is not a string`
        } (give the job's id, 1-191 characters of A-Z a-z 0-9 . _ : -)`,
      );
    }
    const now = Date.now();
    const job = buildJob(id, jobOptionsOf(body, false), null, now, API_NAMES);
    const copy = readAt(c.req.header("If-Match"));
    // Checked against the job as stored now (replace=true); addJob reads it again in its transaction.
    const stored = await store.getJob(id);
    // A stale copy is said as such (412) before what in it no longer matches.
    if (copy !== undefined) refuseStale(id, stored, copy);
    await refuseReadOnlyChanges(body, { ...shownBy(c), job, stored, now });
    const change = await addJob(store, job, {
      replace: flag(c.req.query("replace"), "replace"),
      names: API_NAMES,
      readAt: copy,
    });
    c.header("Location", `/api/v1/jobs/${encodeURIComponent(id)}`);
    return writtenJob(c, change, [
      retryOnUnused(body.retry_on !== undefined, change.after, API_NAMES, change.before),
      ...await userGivenWarnings(change, lookups, accountExpired),
    ], change.before ? 200 : 201);
  });

  routes.get("/jobs/:id", async (c) => {
    const id = await storedJobId(store, c.req.param("id"));
    const details = await showJob(store, id, {
      count: count(c.req.query("count"), "count", MAX_FIRES, 5),
      defaultZone: api.defaultZone,
      now: Date.now(),
      names: API_NAMES,
    });
    c.header("ETag", `"${details.job.updated_at}"`);
    const masks = EnvMasks.ofJobs(c.get("role"), [details.job], api.changeSettlesMs);
    return json(c, {
      ...visible(details.job, c.get("role")),
      zone: details.zone,
      ...scheduleTexts(details.job),
      next: details.next.map((d) => d.toISOString()),
      invalid: details.invalid,
      after_missing: details.link !== null,
      runs: details.runs.map((run) => masks.run(run)),
      running: details.running.map((run) => masks.run(run)),
    });
  });

  routes.patch("/jobs/:id", async (c) => {
    const id = validateId(c.req.param("id"));
    const body = await readObject(c);
    const given = body.id;
    if (given !== undefined && given !== id) {
      throw new ValidationError("id", `id: a job's id cannot change (the path names '${id}')`);
    }
    const options = jobOptionsOf(body, true);
    const copy = readAt(c.req.header("If-Match"));
    // Checked against the job as stored now; updateJob builds it again in its transaction.
    const current = await store.getJob(id);
    if (copy !== undefined) refuseStale(id, current, copy);
    if (current) {
      const now = Date.now();
      const job = buildJob(id, options, current, now, API_NAMES);
      await refuseReadOnlyChanges(body, { ...shownBy(c), job, stored: current, now });
    }
    const change = await updateJob(
      store,
      id,
      options,
      Date.now(),
      API_NAMES,
      copy,
    );
    return writtenJob(c, change, [
      retryOnUnused(body.retry_on !== undefined, change.after, API_NAMES, change.before),
      ...await userGivenWarnings(change, lookups, accountExpired),
    ]);
  });

  routes.delete("/jobs/:id", async (c) => {
    const id = await storedJobId(store, c.req.param("id"));
    const change = await removeJob(store, id, readAt(c.req.header("If-Match")), API_NAMES);
    // As `job remove` warns: the jobs that followed it now wait for a job that never ends.
    return written(c, change, { ...change.before!, followers: change.followers });
  });

  for (const [name, enabled] of [["enable", true], ["disable", false]] as const) {
    routes.post(`/jobs/:id/${name}`, async (c) => {
      const id = await storedJobId(store, c.req.param("id"));
      const change = await setEnabled(
        store,
        id,
        enabled,
        Date.now(),
        readAt(c.req.header("If-Match")),
        API_NAMES,
      );
      return written(c, change, change.after!);
    });
  }

  routes.post("/jobs/:id/run", async (c) => {
    const id = validateId(c.req.param("id"));
    const body = await readObject(c, {});
    const unknown = Object.keys(body).find((key) => key !== "force" && key !== "queue");
    if (unknown !== undefined) {
      throw new ValidationError(
        unknown,
        `${unknown}: not an option of a run request (force and queue are, each true or false)`,
      );
    }
    const switchOf = (name: "force" | "queue") => {
      const value = body[name] ?? false;
      if (typeof value !== "boolean") {
        throw new ValidationError(
          name,
          `${name}: ${JSON.stringify(value)} is not valid (expected true or false)`,
        );
      }
      return value;
    };
    const run = await requestRun(store, id, {
      force: switchOf("force"),
      queue: switchOf("queue"),
      now: Date.now(),
      heartbeatMs: api.heartbeatMs,
      names: API_NAMES,
    });
    c.header("Location", `/api/v1/runs/${run.id}`);
    return json(c, run, 202);
  });

  routes.get("/jobs/:id/next", async (c) => {
    const id = validateId(c.req.param("id"));
    const fires = await upcomingFires(store, id, {
      count: count(c.req.query("count"), "count", MAX_FIRES, 10),
      // An empty parameter is one not given, as everywhere in the API.
      from: c.req.query("from") || undefined,
      defaultZone: api.defaultZone,
      now: Date.now(),
      names: API_NAMES,
    });
    return json(c, {
      id,
      after_job: fires.job.after_job,
      after_outcome: fires.job.after_outcome,
      timezone: fires.zone,
      from: fires.from.toISOString(),
      next: fires.next.map((d) => d.toISOString()),
    });
  });

  routes.post("/schedule/preview", async (c) => {
    const body = await readObject(c, undefined, false);
    // Only a schedule: a job's other fields would be taken and ignored.
    const stray = Object.keys(body).find((key) => !PREVIEW_FIELDS.includes(key));
    if (stray !== undefined) {
      throw new ValidationError(
        stray,
        `${stray}: not part of a schedule preview (give "cron", or "second" "minute" "hour" "day" "month" "day_of_week", and "timezone" and "count")`,
      );
    }
    const { count: rawCount, timezone, ...schedule } = body;
    // A job's own message would also offer "after_job", which a preview does not take.
    if (Object.keys(schedule).length === 0) {
      throw new ValidationError(
        "schedule",
        `schedule: missing (give ${
          API_NAMES.option("cron", "m h dom mon dow")
        } or at least one of ${FIELD_NAMES.map((f) => API_NAMES.option(f)).join(" ")})`,
      );
    }
    const n = count(rawCount === undefined ? undefined : String(rawCount), "count", MAX_FIRES, 5);
    // The job builder checks the schedule and zone exactly as for a job.
    const job = buildJob(
      "preview",
      { ...jobOptionsOf({ ...schedule, timezone }, false), command: "true" },
      null,
      Date.now(),
      API_NAMES,
    );
    const zone = job.timezone ?? api.defaultZone;
    return json(c, {
      timezone: zone,
      second: job.second,
      minute: job.minute,
      hour: job.hour,
      day: job.day,
      month: job.month,
      day_of_week: job.day_of_week,
      schedule: readableSchedule(job),
      schedule_words: scheduleWords(job),
      next: nextFires(job, api.defaultZone, new Date(), n).map((d) => d.toISOString()),
    });
  });

  return routes;
}
