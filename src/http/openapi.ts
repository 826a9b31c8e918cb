/**
 * The OpenAPI 3.1 document of `/api/v1`, served at `/api/v1/openapi.json`.
 * Its schemas are closed (`additionalProperties: false`) and
 * tests/http_api_test.ts validates every response it gets against them, so
 * the document cannot drift from what the server answers.
 */
import { FIELD_NAMES } from "../cron/grammar.ts";
import { LOG_LEVELS } from "../domain/log_row.ts";
import { AFTER_OUTCOMES } from "../domain/job.ts";
import { NODE_STATES } from "../domain/node.ts";
import { RUN_STATUSES, RUN_TRIGGERS } from "../domain/run.ts";
import { VERSION } from "../version.ts";

type Schema = Record<string, unknown>;

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const str: Schema = { type: "string" };
const int: Schema = { type: "integer" };
const bool: Schema = { type: "boolean" };
const nullable = (type: string): Schema => ({ type: [type, "null"] });
/** An instant: ISO 8601 in UTC, as the CLI's `--json` writes it. */
const instant = (doc: string): Schema => ({
  type: "string",
  format: "date-time",
  description: doc,
});
const instantOrNull = (doc: string): Schema => ({
  type: ["string", "null"],
  format: "date-time",
  description: doc,
});
const iso: Schema = { type: "string", format: "date-time" };
const list = (items: Schema): Schema => ({ type: "array", items });

function closed(properties: Record<string, Schema>, optional: string[] = []): Schema {
  return {
    type: "object",
    properties,
    required: Object.keys(properties).filter((k) => !optional.includes(k)),
    additionalProperties: false,
  };
}

/** What a run's stdout and stderr say. */
const OUTPUT =
  "head and tail, capped; to a read token, the job's env values as *** (and the bytes around the cut), and, for a run from before the job's last change or of a removed job, [withheld from read tokens: …]";

const RUN_PROPERTIES: Record<string, Schema> = {
  id: int,
  job_id: str,
  scheduled_at: instant("the fire instant; for a manual run, when it was asked for"),
  started_at: instantOrNull("when the command started"),
  finished_at: instantOrNull("when it ended"),
  status: { enum: [...RUN_STATUSES] },
  exit_code: nullable("integer"),
  signal: nullable("string"),
  stdout: { type: ["string", "null"], description: OUTPUT },
  stderr: { type: ["string", "null"], description: OUTPUT },
  node_id: nullable("string"),
  trigger: { enum: [...RUN_TRIGGERS] },
  note: nullable("string"),
  forced: { type: "boolean", description: "started even when max_instances runs were running" },
  cancel_requested_at: instantOrNull("when a cancel was asked for"),
  cancel_requested_by: { type: ["string", "null"], description: "who asked for the cancel" },
  pgid: { type: ["integer", "null"], description: "the process group its shell led" },
  marker: {
    type: ["string", "null"],
    description: "its JM_RUN_MARKER, by which its processes are found",
  },
  attempt: { type: "integer", description: "1 for a first run; n for the (n-1)th retry" },
  first_run_id: { type: ["integer", "null"], description: "a retry's first attempt" },
  parent_run_id: {
    type: ["integer", "null"],
    description: "the run whose end started it (trigger after)",
  },
  job_updated_at: instantOrNull(
    "the updated_at of the job's version it ran: its command and env then (null in rows from before 0.1 recorded it)",
  ),
};
/** A run as lists show it: without its output, which only the run itself carries. */
const { stdout: _stdout, stderr: _stderr, ...LISTED_RUN_PROPERTIES } = RUN_PROPERTIES;

const INVALID: Schema = {
  type: ["string", "null"],
  description:
    "why a row broken by hand cannot run, or why its follow-up link (a cycle written in SQL) is ignored",
};
const AFTER_MISSING: Schema = {
  type: "boolean",
  description:
    "its after_job names a job that does not exist: it runs only by hand or on its own schedule",
};
const SCHEDULE: Schema = {
  type: "string",
  description: "the six fields as the CLI shows them, weekdays in names",
};
const scheduleFields = Object.fromEntries(FIELD_NAMES.map((f) => [f, str]));

const JOB_PROPERTIES: Record<string, Schema> = {
  id: {
    type: "string",
    maxLength: 191,
    description:
      "1-191 characters of A-Z a-z 0-9 . _ : - (a row written by hand in SQL may hold another, listed with why it is invalid)",
  },
  command: str,
  ...scheduleFields,
  timezone: { type: ["string", "null"], description: "IANA zone; null = the service's" },
  timeout: { type: "integer", description: "seconds before the run is killed; 0 = never" },
  enabled: bool,
  max_instances: { type: ["integer", "null"], description: "null = the service's" },
  coalesce: { type: ["boolean", "null"], description: "null = the service's" },
  misfire_grace_time: { type: ["integer", "null"], description: "seconds; null = the service's" },
  env: {
    anyOf: [
      { type: "object", additionalProperties: str },
      { description: "a row written by hand (invalid says what is wrong): as stored for an admin" },
    ],
    description:
      'NAME: "value"; a read token sees each value as "***", and "***" whole for a column that is no object',
  },
  cwd: {
    type: ["string", "null"],
    description: "null = the service's working directory (with a user: the user's home)",
  },
  description: nullable("string"),
  user: {
    type: ["string", "null"],
    description: "user name or uid the command runs as; null = the service's own user",
  },
  retries: { type: "integer", description: "attempts after a failed one; 0 = none" },
  retry_delay: { type: "integer", description: "seconds before the first retry; doubles" },
  retry_max_delay: { type: "integer", description: "seconds no retry waits longer than" },
  retry_on: { type: "string", description: "outcomes that retry, comma-separated" },
  retry_overlap: { type: "boolean", description: "a pending retry survives the next fire" },
  after_job: { type: ["string", "null"], description: "the job whose runs' ends start this one" },
  after_outcome: { enum: [...AFTER_OUTCOMES, null], description: "which ends start it" },
  created_at: instant("when the job was added"),
  updated_at: instant("when the job last changed"),
  // Notifications (issue 13).
  on_failure: {
    type: ["string", "null"],
    description: "shell command run when a run fails; null = notify.on_failure",
  },
  on_failure_url: {
    type: ["string", "null"],
    description: "URL POSTed the run as JSON when a run fails; null = notify.on_failure_url",
  },
  on_recovery: {
    type: ["string", "null"],
    description: "command run on the first success after a failure; null = notify.on_recovery",
  },
  on_recovery_url: { type: ["string", "null"], description: "null = notify.on_recovery_url" },
  on_success: {
    type: ["string", "null"],
    description: "command run after every success; null = notify.on_success",
  },
  on_success_url: { type: ["string", "null"], description: "null = notify.on_success_url" },
  alert_after: {
    type: ["integer", "null"],
    description:
      "seconds without a success before on_failure fires with status silent; null = never",
  },
};

/** A running run as `GET /jobs` lists it with its job: enough to age it and to cancel it. */
const RUNNING_SUMMARY = closed({
  id: int,
  status: { enum: ["running"] },
  scheduled_at: instant("the fire instant"),
  started_at: instantOrNull("when it started"),
  node_id: nullable("string"),
  cancel_requested_at: instantOrNull("when a cancel was asked (null: none)"),
});

const RUN_SUMMARY = closed({
  id: int,
  status: { enum: [...RUN_STATUSES] },
  scheduled_at: instant("the fire instant"),
  finished_at: instantOrNull("when it ended"),
  exit_code: nullable("integer"),
});

/** A time a job read carries back in a write, where jobsmanager keeps its own. */
const SET_BY_JOBSMANAGER = {
  type: ["string", "integer"],
  description:
    "read-only, set by jobsmanager: the instant GET gave (any offset, or epoch ms) or left out; another is refused (400)",
};
/** What GET shows with a job: taken back as GET showed it, refused (400) when changed. */
const shown = (description: string): Schema => ({
  description: `read-only: ${description}, as GET showed it, or refused (400)`,
});

/** The database as `/status` and `/health` see it. */
const DATABASE_STATE = closed({
  state: {
    enum: ["up", "down", "refuses writes", "refuses reads", "recovering"],
    description:
      "down: this server could not read it (the rest is as last read, read_at); refuses writes: it answers (the rest was read now), but this server's service cannot write to it (a full disk): detail says why; refuses reads: it answers, but refuses the user's reads (it lacks SELECT: the rest is as last read, read_at), or this server's service's: detail names the GRANT it needs; recovering: it answers (the rest was read now), but this server's service has not seen it back yet after an outage: it does at its next try (within 30 s), once it has written what waited (run records, held in memory meanwhile), and detail says what it last found",
  },
  detail: str,
});

const schemas: Record<string, Schema> = {
  Error: closed({
    error: {
      type: "string",
      description: "the one-line message the CLI prints for the same error",
    },
    field: { type: "string", description: "the job field or parameter at fault" },
  }, ["field"]),
  Session: closed({ role: { enum: ["read", "admin"] }, auth: bool }),
  Job: closed(JOB_PROPERTIES),
  WrittenJob: closed({
    ...JOB_PROPERTIES,
    warnings: {
      ...list(str),
      description:
        "what the CLI warns of on stderr for the same write, each a line (also in a Warning header each): a user this server's host has no account of, or an expired one (a service here records each run of the job as an error; one on a host that has it runs it), or whose name service did not answer; retry_on without retries. The job is stored all the same; empty when there is nothing to say",
    },
  }),
  JobInput: {
    type: "object",
    description:
      "A job in the field names of jm_jobs, read as an entry of a jobs file is. Numbers may be given as digit strings; null is a field's default (to update: sets it back); env as an object or a list of NAME=value; cron (a crontab line) instead of the six fields. To add: id, command and a schedule are required. To update: only the fields given change; unset_env drops variables.",
    properties: {
      id: str,
      command: str,
      cron: str,
      ...scheduleFields,
      timezone: nullable("string"),
      timeout: { type: ["integer", "string", "null"], description: "null = the default, 60" },
      enabled: { type: ["boolean", "null"], description: "null = the default, true" },
      max_instances: { type: ["integer", "string", "null"], description: "null = the service's" },
      coalesce: { type: ["boolean", "null"], description: "null = the service's" },
      misfire_grace_time: {
        type: ["integer", "string", "null"],
        description: "seconds; null = the service's",
      },
      env: { oneOf: [{ type: "object", additionalProperties: str }, list(str)] },
      unset_env: list(str),
      cwd: nullable("string"),
      description: nullable("string"),
      user: {
        type: ["string", "integer", "null"],
        description:
          "user name or uid to run as (needs a service run as root); null = the service's own",
      },
      retries: { type: ["integer", "string", "null"], description: "null = the default, 0" },
      retry_delay: { type: ["integer", "string", "null"], description: "null = the default, 10" },
      retry_max_delay: {
        type: ["integer", "string", "null"],
        description: "null = the default, 3600",
      },
      retry_on: str,
      retry_overlap: { type: ["boolean", "null"], description: "null = the default, false" },
      after_job: {
        type: ["string", "null"],
        description: "null drops the link; with all six schedule fields empty, its only trigger",
      },
      after_outcome: { enum: [...AFTER_OUTCOMES, null], description: "default success" },
      // Notifications (issue 13).
      on_failure: nullable("string"),
      on_failure_url: nullable("string"),
      on_recovery: nullable("string"),
      on_recovery_url: nullable("string"),
      on_success: nullable("string"),
      on_success_url: nullable("string"),
      alert_after: { type: ["integer", "string", "null"], description: 'seconds or "2h"' },
      created_at: SET_BY_JOBSMANAGER,
      updated_at: SET_BY_JOBSMANAGER,
      // What GET shows with a job: a job read can be sent back as it is.
      zone: { type: "string", ...shown("the zone; set timezone") },
      schedule: { type: "string", ...shown("the schedule; set cron or the six fields") },
      schedule_words: { type: "string", ...shown("the schedule in words") },
      next: shown("the next fires (from the first given: some may have passed)"),
      next_fire: shown("the next fire"),
      invalid: shown("why the job cannot run"),
      after_missing: shown("whether after_job names no job"),
      runs: shown(
        "its runs, each as recorded (or as it was, queued or running, before it ended)",
      ),
      last_run: shown("its last run, as runs"),
      running: shown("its runs now running, as runs"),
      warnings: {
        description:
          "read-only: what the write that answered with this job warned of (any list of texts), so that its answer may be sent back; it sets nothing",
      },
    },
    additionalProperties: false,
  },
  JobListing: closed({
    ...JOB_PROPERTIES,
    zone: { type: "string", description: "the zone it fires in" },
    schedule: SCHEDULE,
    schedule_words: str,
    next_fire: { type: ["string", "null"], format: "date-time" },
    invalid: INVALID,
    after_missing: AFTER_MISSING,
    last_run: { oneOf: [RUN_SUMMARY, { type: "null" }] },
    running: {
      ...list(RUNNING_SUMMARY),
      description:
        "its runs now running, oldest first, however old (last_run is the newest run: often a skip beside one stuck)",
    },
  }),
  RemovedJob: closed({
    ...JOB_PROPERTIES,
    followers: {
      ...list(str),
      description:
        "ids of the jobs that follow the removed one (after_job): they run only by hand or on their own schedule until relinked",
    },
  }),
  JobDetails: closed({
    ...JOB_PROPERTIES,
    zone: str,
    schedule: SCHEDULE,
    schedule_words: str,
    next: list(iso),
    invalid: INVALID,
    after_missing: AFTER_MISSING,
    runs: list(ref("Run")),
    running: {
      ...list(ref("Run")),
      description:
        "its runs now running, oldest first, without output (runs lists only the last 5)",
    },
  }),
  NextFires: closed({
    id: str,
    // A job that runs only after another has no fires of its own: what it follows instead.
    after_job: JOB_PROPERTIES.after_job,
    after_outcome: JOB_PROPERTIES.after_outcome,
    timezone: str,
    from: iso,
    next: list(iso),
  }),
  Preview: closed({
    timezone: str,
    ...scheduleFields,
    schedule: SCHEDULE,
    schedule_words: str,
    next: list(iso),
  }),
  Run: closed(RUN_PROPERTIES),
  RunListed: closed(LISTED_RUN_PROPERTIES),
  Cancel: closed({
    outcome: {
      enum: ["dropped", "requested", "ended"],
      description:
        "dropped: a queued request no service had taken is cancelled; requested: the service running it will end it (a retry no service took: the first service to see it cancels it, and the attempts end in failure); ended: a run in a terminal (job run --here) recorded interrupted with force, unchecked",
    },
    run: ref("Run"),
    waited: {
      enum: ["ended", "timeout", "stopped", "dead", "not_live", "database_lost", null],
      description:
        "with wait only: how the wait for the service's answer came out. ended: the run ended; timeout: it had not within wait seconds (or the server is stopping): the request stands, the service ends it still; stopped, dead: the service it is recorded running on has stopped, or was declared dead, without recording its end, so no answer will come (it is recorded interrupted or lost when that service starts again, lost when declared dead); not_live: the service holding it is not live otherwise (stale by its heartbeat, a lone service killed, or no row in jm_nodes), answered at once: the request stands, and that service answers it when it starts again on its node; database_lost: the request was written, then the database failed while the wait read the run (a lost connection, a read refused: detail says what it said), so the wait was cut short: the request stands, the service ends the run once it reads it (it may have already), and the run read again once the database answers tells; null: nothing to wait for (the run ended here, or is a retry no service took)",
    },
    detail: {
      type: "string",
      description:
        "with waited database_lost only: what the database said when the wait's read failed",
    },
  }, ["waited", "detail"]),
  LogRow: closed({
    id: int,
    created_at: instant("when it was logged"),
    level: { enum: [...LOG_LEVELS] },
    logger_name: str,
    message: str,
    context: { type: "object", description: "job id, run id, counts, …" },
    node_id: {
      type: ["string", "null"],
      description: "the service that wrote it; null before it knew its id, or before schema 10",
    },
  }),
  Node: closed({
    id: str,
    host: str,
    pid: int,
    version: str,
    started_at: instant("when the service started"),
    heartbeat_at: instant("its last heartbeat"),
    applied_marker: nullable("integer"),
    jobs_loaded: int,
    last_reload_at: instantOrNull("its last reload"),
    last_reload_ms: nullable("integer"),
    stopped_at: instantOrNull("when it stopped cleanly"),
    timezone: { type: ["string", "null"], description: "the zone it fires zoneless jobs in" },
    db_heartbeat_at: instantOrNull("its last heartbeat by the database's clock"),
    heartbeat_ms: { type: ["integer", "null"], description: "its heartbeat interval" },
    skew_ms: {
      type: ["integer", "null"],
      description: "its clock minus the database's at the last heartbeat",
    },
    jobs_owned: { type: ["integer", "null"], description: "the jobs it fires (its share)" },
    declared_dead_at: instantOrNull("when another node declared it dead"),
    declared_dead_by: { type: ["string", "null"], description: "the node that declared it dead" },
    leaving_at: instantOrNull("when its graceful stop began (it ends its runs, and fires no more)"),
    share_basis: {
      type: ["string", "null"],
      description:
        "what it shares the jobs from, as JSON: the reload marker its jobs were read at, their count and digest, the nodes it shares them over, the sharing rule's version (nodes that differ warn)",
    },
    boot_id: {
      type: ["string", "null"],
      description:
        "the boot id of the machine it runs on (/proc/sys/kernel/random/boot_id); null without /proc, or from a release before it",
    },
    pid_ns: {
      type: ["integer", "null"],
      description:
        "its pid namespace (the inode /proc/self/ns/pid names): its pid is looked up only where boot and namespace are this server's",
    },
    schema_version: {
      type: ["integer", "null"],
      description:
        "the schema version its release understands; null: a release before 17, which runs a job that has a user as its own user (no job is given a user while such a node is live)",
    },
    process_start: {
      type: ["integer", "null"],
      description:
        "when its process started, in 1/100 s since its boot (/proc/PID/stat starttime): whether the process with its pid is it, whatever step the wall clock took since; null without /proc, or from a release before schema 19 (judged by started_at against the wall clock)",
    },
    state: {
      enum: [...NODE_STATES],
      description:
        "live; stale: no heartbeat for 3 intervals, not declared dead yet; dead: declared dead by another node, or gone; leaving: stopping cleanly, ending its runs (its jobs went to the live nodes); stopped: stopped cleanly",
    },
    gone: {
      type: "boolean",
      description:
        "it runs in this server's boot and pid namespace (boot_id, pid_ns) and no process has its pid (killed or crashed): dead at once, whatever its heartbeat",
    },
    still_runs: {
      type: "boolean",
      description:
        "it is stale, but it runs in this server's boot and pid namespace and its process still has its pid (the process started when process_start says; for a row without it, one that started no later than started_at): not killed but hung, suspended, or held by a database that refuses writes; a restart loses the run records it holds",
    },
    still_runs_unconfirmed: {
      type: "boolean",
      description:
        "still_runs is true only because a process has its pid: /proc does not let the server see when that process started (hidepid), so it may be one that took the pid after the service died",
    },
    note: {
      type: ["string", "null"],
      description:
        'for a stale service, what that means and what to do, as `jobsmanager status` says it ("on this host": this server\'s); null for the others',
    },
  }),
  StatusCounts: {
    type: "object",
    propertyNames: { enum: [...RUN_STATUSES] },
    additionalProperties: int,
  },
  Status: closed({
    services: list(ref("Node")),
    pending_markers: int,
    latest_marker: { type: "integer", description: "the newest reload marker (0: none)" },
    runs_last_hour: ref("StatusCounts"),
    running: closed({
      count: { type: "integer", description: "runs now running, whenever they started" },
      oldest: {
        oneOf: [
          closed({ id: int, job_id: str, started_at: instantOrNull("when it started") }),
          { type: "null" },
        ],
      },
    }),
    next_fires: list(closed({ job: str, at: iso, timezone: str })),
    silent_jobs: list(closed({
      job: str,
      since: { ...iso, description: "its last success, or its last change" },
      alert_after: { type: "integer", description: "seconds" },
    })),
    pending_notifications: closed({
      count: { type: "integer", description: "notifications claimed and not sent yet" },
      oldest: instantOrNull("when the oldest of them was claimed (null: none)"),
      retrying: {
        type: "integer",
        description:
          "of them, those whose webhook receiver was unreachable, waiting to be tried again",
      },
      next_retry: instantOrNull("when the first of those is tried again (null: none)"),
    }),
    database: DATABASE_STATE,
    runs_per_minute: list(
      closed({ minute: instant("start of the minute"), counts: ref("StatusCounts") }),
    ),
    read_at: instantOrNull(
      "when the rest was read from the database: earlier while it is down (null: never read)",
    ),
    database_now: instantOrNull(
      "the database's clock at this answer, on which db_heartbeat_at and declared_dead_at are (age them against it, not a viewer's clock); while it is down, this server's clock plus their offset when last read (null: never read)",
    ),
  }),
  Health: closed({
    services: {
      oneOf: [
        closed(Object.fromEntries(NODE_STATES.map((state) => [state, int]))),
        { type: "null" },
      ],
      description:
        "how many services (jm_nodes rows) are in each state (see Node.state); null: the database was never read",
    },
    last_reload: {
      oneOf: [
        closed({
          at: instant("when it ended"),
          node: { type: "string", description: "the service that made it" },
          ms: { type: ["integer", "null"], description: "how long it took" },
        }),
        { type: "null" },
      ],
      description: "the newest reload of any service (null: none, or never read)",
    },
    pending_markers: {
      type: ["integer", "null"],
      description: "reload markers not every live service has applied yet (null: never read)",
    },
    database: DATABASE_STATE,
    read_at: instantOrNull(
      "when the rest was read from the database: earlier while it is down (null: never read)",
    ),
    database_now: instantOrNull(
      "the database's clock at this answer (while it is down, this server's clock plus their offset when last read; null: never read)",
    ),
  }),
  Clock: closed({
    database_now: instant(
      "the database's clock at this answer, on which the times of jobs, runs and services are measured: a client whose clock is off ages them against this (minus half the round trip), not its own",
    ),
  }),
  Check: closed({ ok: bool, detail: str }),
  Readiness: closed({
    status: { enum: ["ready", "degraded", "not ready"] },
    database: closed({
      ok: bool,
      detail: str,
      writes_refused: {
        enum: [true],
        description: "the database answers, but refuses writes (a full disk); absent otherwise",
      },
      reads_refused: {
        enum: [true],
        description:
          "the database answers, but refuses reads (the user lacks SELECT); absent otherwise",
      },
    }, ["writes_refused", "reads_refused"]),
    timetable: ref("Check"),
    run_guard: ref("Check"),
  }),
  Marker: closed({ marker_id: int }),
};

const json = (schema: Schema, description: string) => ({
  description,
  content: { "application/json": { schema } },
});
const error = (description: string) => json(ref("Error"), description);

/** The answers every route of the API may give besides its own. */
const COMMON = {
  "400": error(
    "a query parameter the route does not take, one given twice, or a body where it reads none",
  ),
  "401": error(
    "no token, or not one of the service's (http.tokens, a token_file of it, or JM_HTTP_TOKEN)",
  ),
  "503": error(
    'the database is unreachable, or refuses this server\'s reads ("the database refuses reads: …": the user lacks SELECT, the GRANT it needs named), or the service is starting: it is connecting to the database and migrating its schema (Retry-After)',
  ),
};
const READ = { ...COMMON };
const WRITE = {
  ...COMMON,
  "400": error("invalid input (the CLI's message, with the field)"),
  "403": error("a read token on a write"),
  "408": error("the body did not arrive within 10 s"),
  "413": error("the body is larger than 4 MiB"),
};
const NOT_FOUND = { "404": error("no such job or run") };

const idParam = { name: "id", in: "path", required: true, schema: str };
const query = (name: string, description: string, schema: Schema = str) => ({
  name,
  in: "query",
  required: false,
  description,
  schema,
});
const runFilters = [
  query("job", "only this job's runs"),
  query("status", "only runs with this status", { enum: [...RUN_STATUSES] }),
];
const logFilters = [
  query("level", "this level and above", { enum: [...LOG_LEVELS] }),
  query("job", "only lines about this job"),
  query("run", "only lines about this run", int),
  query("node", "only lines this service wrote (its node id)"),
];
const sse = (description: string) => ({
  description,
  content: { "text/event-stream": { schema: str } },
});
/**
 * A list a page polls: its 200 carries an ETag of its body, and a request
 * sending that ETag back as If-None-Match gets 304 and no body while it is
 * the same.
 */
const ifNoneMatch = {
  name: "If-None-Match",
  in: "header",
  required: false,
  description:
    "the ETag of the list as last read: 304 without a body while it is unchanged (a poll that costs a few bytes)",
  schema: str,
};
function polled(answer: Record<string, unknown>) {
  return {
    "200": {
      ...answer,
      headers: {
        ETag: {
          description: 'a weak digest of the body (W/"…"): send it as If-None-Match',
          schema: str,
        },
      },
    },
    "304": { description: "unchanged since the ETag given in If-None-Match; no body" },
  };
}

/** On every write of one job: the copy it was made on. */
const ifMatch = {
  name: "If-Match",
  in: "header",
  required: false,
  description:
    "the ETag of the job as read: a job changed (or removed) since is refused (412) instead of overwritten; * takes any stored version",
  schema: str,
};
const STALE = {
  "412": error("the job changed (or was removed) since the ETag given in If-Match"),
};
/** Said of a write that gives a job a user, or enables one that has one (app/older_nodes.ts). */
const OLDER_NODE =
  "the job would run as its user while a service of an older release is live, which runs it as its own user instead (the message names it: upgrade or stop it)";
const jobBody = { required: true, content: { "application/json": { schema: ref("JobInput") } } };

/** POST /jobs/{id}/enable or /disable: the stored job back, kept to If-Match. */
function switchJob(summary: string, enables: boolean) {
  return {
    parameters: [idParam],
    post: {
      summary,
      parameters: [ifMatch],
      responses: {
        "200": json(ref("Job"), "the stored job"),
        ...WRITE,
        ...NOT_FOUND,
        ...STALE,
        ...enables ? { "409": error(OLDER_NODE) } : {},
      },
    },
  };
}

export const OPENAPI = {
  openapi: "3.1.0",
  info: {
    title: "jobsmanager",
    version: VERSION,
    description:
      "The HTTP API of `jobsmanager serve`: the same use cases, validation and messages as the CLI. Authenticate with `Authorization: Bearer TOKEN` (a token of http.tokens, a token_file of it, or JM_HTTP_TOKEN); read tokens may GET, admin tokens may also change. Writes answer with the stored job and its reload marker in the Reload-Marker header; what the CLI warns of on stderr for a job's add or change comes in the answer's `warnings` (\"this host\" in them is this server's, named), and in a Warning header each (`299 - \"…\"`, its text UTF-8). Answers over 1 KiB (JSON, the dashboard's files) are gzipped for a client that sends Accept-Encoding: gzip, but for GET /jobs/{id}, whose strong ETag is the job's version for If-Match; live streams never are.",
  },
  servers: [{ url: "/api/v1" }],
  security: [{ bearer: [] }],
  components: {
    securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
    schemas,
  },
  paths: {
    "/session": {
      get: {
        summary: "who the token is",
        responses: { "200": json(ref("Session"), "its role"), ...READ },
      },
    },
    "/jobs": {
      get: {
        summary: "every job with its next fire and last run (job list)",
        parameters: [ifNoneMatch],
        responses: { ...polled(json(list(ref("JobListing")), "the jobs, by id")), ...READ },
      },
      post: {
        summary: "add a job (job add)",
        parameters: [
          query("replace", "replace a job of that id", { enum: ["true", "false"] }),
          ifMatch,
        ],
        requestBody: jobBody,
        responses: {
          "201": json(ref("WrittenJob"), "the stored job, with what the write warns of"),
          "200": json(ref("WrittenJob"), "the job, replaced (with replace=true)"),
          ...WRITE,
          "409": error(`the id is taken (send replace=true to replace it); or ${OLDER_NODE}`),
          "412": error(
            "the job changed or was removed since the ETag given in If-Match, or If-Match: * and there is no such job",
          ),
          "415": error("the body is not JSON"),
        },
      },
    },
    "/jobs/{id}": {
      parameters: [idParam],
      get: {
        summary: "a job, its next fires and last runs (job show)",
        parameters: [query("count", "how many next fires (default 5)", int)],
        responses: {
          "200": {
            ...json(ref("JobDetails"), "the job"),
            headers: {
              ETag: {
                description: "the job's updated_at, quoted: send it as If-Match with a change",
                schema: str,
              },
            },
          },
          ...READ,
          ...NOT_FOUND,
          "400": error("bad id or count"),
        },
      },
      patch: {
        summary: "change the given fields of a job (job update)",
        parameters: [ifMatch],
        requestBody: jobBody,
        responses: {
          "200": json(ref("WrittenJob"), "the stored job, with what the write warns of"),
          ...WRITE,
          ...NOT_FOUND,
          ...STALE,
          "409": error(OLDER_NODE),
        },
      },
      delete: {
        summary: "remove a job (job remove)",
        parameters: [ifMatch],
        responses: {
          "200": json(ref("RemovedJob"), "the job removed, and the jobs left following it"),
          ...WRITE,
          ...NOT_FOUND,
          ...STALE,
        },
      },
    },
    "/jobs/{id}/enable": switchJob("enable a job", true),
    "/jobs/{id}/disable": switchJob("disable a job", false),
    "/jobs/{id}/run": {
      parameters: [idParam],
      post: {
        summary: "run a job now, through the running service (job run)",
        requestBody: {
          required: false,
          content: {
            "application/json": {
              schema: closed({
                force: { type: "boolean", description: "even when max_instances runs are running" },
                queue: { type: "boolean", description: "even when no live service would take it" },
              }, ["force", "queue"]),
            },
          },
        },
        responses: {
          "202": json(ref("Run"), "the queued run"),
          ...WRITE,
          ...NOT_FOUND,
          "409": error(
            `no live service would take it (send queue: true to leave it for one); or the job has a user and ${OLDER_NODE}`,
          ),
        },
      },
    },
    "/jobs/{id}/next": {
      parameters: [idParam],
      get: {
        summary: "the next fires of a job (job next)",
        parameters: [
          query("count", "how many (default 10)", int),
          query("from", "after this instant (ISO 8601; without offset: in the job's zone)"),
        ],
        responses: {
          "200": json(ref("NextFires"), "the fires"),
          ...READ,
          ...NOT_FOUND,
          "400": error("bad input"),
        },
      },
    },
    "/schedule/preview": {
      post: {
        summary: "the next fires of a schedule, validated as a job's",
        requestBody: {
          required: true,
          content: {
            "application/json": {
              schema: {
                type: "object",
                properties: {
                  cron: str,
                  ...scheduleFields,
                  timezone: nullable("string"),
                  count: { type: ["integer", "string"] },
                },
                additionalProperties: false,
              },
            },
          },
        },
        responses: { "200": json(ref("Preview"), "the schedule and its fires"), ...WRITE },
      },
    },
    "/runs": {
      get: {
        summary: "runs, newest first (runs)",
        parameters: [
          ...runFilters,
          query("since", "scheduled in the last 90s, 15m, 2h, 7d, …"),
          query("limit", "at most (default 50)", int),
          query("before", "only runs with a lower id: the next page after a list's last run", int),
          ifNoneMatch,
        ],
        responses: {
          ...polled(json(
            list(ref("RunListed")),
            "the runs, without their output (GET /runs/{id} has it)",
          )),
          ...READ,
          "400": error("bad filter"),
        },
      },
    },
    "/runs/stream": {
      get: {
        summary:
          "new and changed runs as Server-Sent Events (event: run, data: a RunListed: no output); with a status filter, event: left (data: the RunListed as it is now) once for a run sent before that no longer has that status; after the first look, event: ready: every change from then on is sent, so a client reads its list again once then. When one look finds more new runs than it sends (1,000: an `after` of long ago, a client that read slowly), event: relist (data: {after, newest}) instead of them: the client reads its list again (GET /runs), and the stream goes on after run `newest`. event: error (data: {error}) when the database fails, event: resumed when it answers again",
        parameters: [
          ...runFilters,
          query(
            "after",
            "also send, at once, the runs newer than this id (the newest one the client has); more than 1,000: event: relist",
            int,
          ),
        ],
        responses: { "200": sse("the stream"), ...READ },
      },
    },
    "/runs/{id}": {
      parameters: [{ ...idParam, schema: int }],
      get: {
        summary: "one run with its output (runs show)",
        responses: { "200": json(ref("Run"), "the run"), ...READ, ...NOT_FOUND },
      },
    },
    "/runs/{id}/cancel": {
      parameters: [{ ...idParam, schema: int }],
      post: {
        summary: "cancel a run (runs cancel)",
        parameters: [
          query(
            "force",
            "a run in a terminal (job run --here): record it interrupted without checking that its CLI process is gone, ending nothing it left running (runs cancel --force)",
            { enum: ["true", "false"] },
          ),
          query(
            "wait",
            "seconds, 1-300: for a run a service holds, wait this long at most for the service's answer, the run ended (runs cancel --wait --timeout): 200 once the run has ended, 202 with the run as it stands when it has not; the answer says how the wait came out (waited). Without it, 202 at once. A wait counts among the server's live streams (503 when they are at their most)",
            int,
          ),
        ],
        responses: {
          "200": json(
            ref("Cancel"),
            "with wait: the run has ended (cancelled, or ended otherwise meanwhile)",
          ),
          "202": json(
            ref("Cancel"),
            "what was done; with wait, the run has not ended (waited says why)",
          ),
          ...WRITE,
          ...NOT_FOUND,
          "409": error("the run has already ended, or runs in a terminal"),
        },
      },
    },
    "/logs": {
      get: {
        summary: "the newest lines of the service's log, oldest first (logs)",
        parameters: [
          ...logFilters,
          query("since", "the last 90s, 15m, 2h, 7d, …"),
          query("limit", "at most (default 100)", int),
          ifNoneMatch,
        ],
        responses: {
          ...polled(json(list(ref("LogRow")), "the lines")),
          ...READ,
          "400": error("bad filter"),
        },
      },
    },
    "/logs/stream": {
      get: {
        summary:
          "the newest lines, then each new one, as Server-Sent Events (event: log, data: a LogRow) (logs --follow); event: error (data: {error}) when the database fails, event: resumed when it answers again; event: reset (data: {last, newest}) when the log has no line after `after` (emptied, or its ids restarted), then its newest `limit` lines",
        parameters: [
          ...logFilters,
          query("since", "only lines written in the last 90s, 15m, 2h, 7d, … before the request"),
          query("after", "only lines after this id (to resume)", int),
          query("limit", "lines sent first (default 100, at most 10000)", int),
        ],
        responses: { "200": sse("the stream"), ...READ },
      },
    },
    "/status": {
      get: {
        summary: "services, pending markers, runs and the database (status)",
        responses: { "200": json(ref("Status"), "the status"), ...READ },
      },
    },
    "/health": {
      get: {
        summary:
          "services live, stale and dead, the database, the last reload: three small reads whatever the number of jobs, to poll every few seconds (the dashboard's health line)",
        responses: { "200": json(ref("Health"), "the health"), ...READ },
      },
    },
    "/clock": {
      get: {
        summary: "the database's clock, to age times on (the dashboard's \"2 min ago\")",
        responses: { "200": json(ref("Clock"), "its clock now"), ...READ },
      },
    },
    "/reload": {
      post: {
        summary: "ask every service to reload all jobs (reload)",
        responses: { "202": json(ref("Marker"), "the marker"), ...WRITE },
      },
    },
  },
};
