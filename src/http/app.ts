/**
 * The HTTP application: routes, auth and the one error handler, as a Hono
 * app independent of any socket, so tests can call `app.request()` or
 * serve it on a random port.
 */
import { Hono } from "hono";
import type { Context, MiddlewareHandler } from "hono";
import { compress } from "hono/compress";
import { etag } from "hono/etag";
import { PatternRouter } from "hono/router/pattern-router";
import { matchedRoutes } from "hono/route";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { ContentionError, refusesReads } from "../errors.ts";
import { log } from "../daemon/log.ts";
import type { Store } from "../store/store.ts";
import type { Env } from "./api/context.ts";
import { jobRoutes } from "./api/jobs.ts";
import { guardUsers } from "../app/older_nodes.ts";
import type { AccountFinder } from "../app/user_warnings.ts";
import type { Account } from "../daemon/run_as.ts";
import { logRoutes } from "./api/logs.ts";
import { runRoutes } from "./api/runs.ts";
import { statusRoutes } from "./api/status.ts";
import { bearerOf, type Tokens } from "./auth.ts";
import { bodyFirst } from "./body.ts";
import { StreamCount } from "./sse.ts";
import { UnavailableLog } from "./unavailable.ts";
import { dashboardRoutes } from "./dashboard/routes.ts";
import { errorBody, HttpError, httpErrorMessage, statusOf } from "./errors.ts";
import { healthRoutes, MIGRATING, type Readiness } from "./health.ts";
import { isLoopback } from "./listen.ts";
import { OPENAPI } from "./openapi.ts";
import { asDocumented } from "./query.ts";
import { Door, MAX_HANDLED, type Starts } from "./starts.ts";

/** What `/metrics` answers with: this process's registry, or the main thread's from a worker. */
export interface MetricsText {
  readonly contentType: string;
  text(): Promise<string>;
}

export interface HttpDeps {
  store: Store;
  /** Time zone of jobs that name none (`jobsmanager.timezone`, else this machine's). */
  defaultZone: string;
  /** `jobsmanager.heartbeat_interval` in ms: when a node counts as stale. */
  heartbeatMs: number;
  /**
   * How long after a job's change a service may still start a run of the
   * version before it (env_masks.ts): from `jobsmanager.reload_interval`.
   */
  changeSettlesMs: number;
  tokens: Tokens;
  metrics: MetricsText;
  readiness: () => Promise<Readiness>;
  /** Scrub secrets (the database password, tokens) from a message. */
  redact: (text: string) => string;
  /** Aborted when the server stops: live streams end. */
  closing: AbortSignal;
  /** The scheduler's starts, which requests make way for (starts.ts); none in tests of the app alone. */
  starts?: Starts;
  /** How long a request waits at a door that does not turn before its 503 (starts.ts STUCK_MS); tests shorten it. */
  doorStuckMs?: number;
  /** How long a request's body may take to arrive (body.ts); tests shorten it. */
  bodyWaitMs?: number;
  /** Live streams open at once, at most (sse.ts); tests lower it. */
  maxStreams?: number;
  /**
   * Where the user a job write gives a job is looked up, as a run's start
   * looks it up (daemon/run_as.ts `AccountLookups`, the default); tests give
   * a name service that does not answer.
   */
  accounts?: AccountFinder<Account>;
  /** True while the service migrates the schema at its start (serve's worker); never without it. */
  migrating?: () => boolean;
}

/** How long a client is told to wait while the service migrates the schema. */
const MIGRATING_RETRY_S = 5;
/** What the API answers while the schema is migrated: it reads no table. */
const TABLELESS = new Set(["/api/v1/openapi.json", "/api/v1/session"]);

const httpLog = log("http");

/**
 * Every caller gets a role: admin on an open (token-less, loopback) server,
 * else the role of its bearer token; a request without a valid one ends here.
 */
function authenticate(tokens: Tokens, redact: (text: string) => string): MiddlewareHandler<Env> {
  return async (c, next) => {
    // An admin's answers are as stored (a job read can be sent back); a reader's texts show no secret.
    c.set("shown", (text) => c.get("role") === "admin" ? text : redact(text));
    if (!tokens.configured) {
      guardOpenServer(c);
      c.set("role", "admin");
      return await next();
    }
    const token = bearerOf(c.req.header("authorization"));
    if (token === null) {
      c.header("WWW-Authenticate", 'Bearer realm="jobsmanager"');
      throw new HttpError(
        401,
        `no bearer token: send the header Authorization: Bearer TOKEN with a token from ${tokens.sources}`,
      );
    }
    const role = tokens.roleOf(token);
    if (role === null) {
      c.header("WWW-Authenticate", 'Bearer realm="jobsmanager", error="invalid_token"');
      throw new HttpError(401, `the bearer token is not ${tokens.whence} (it is not shown)`);
    }
    c.set("role", role);
    await next();
  };
}

/**
 * Without tokens, any page a local browser opens could reach the API:
 * refuse a Host that is not loopback (DNS rebinding) and a write from
 * another origin (cross-site requests).
 */
function guardOpenServer(c: Context): void {
  const header = c.req.header("host") ?? "localhost";
  if (!URL.canParse(`http://${header}`)) {
    throw new HttpError(400, `Host '${header}' is not a host name (and port)`);
  }
  const host = new URL(`http://${header}`).hostname.replace(/^\[|\]$/g, "");
  if (!isLoopback(host)) {
    throw new HttpError(
      403,
      `Host '${host}' refused: without a token this server answers loopback names only`,
    );
  }
  const origin = c.req.header("origin");
  if (c.req.method !== "GET" && origin !== undefined && new URL(c.req.url).origin !== origin) {
    throw new HttpError(
      403,
      `a write from ${origin} refused: only pages of this server may change jobs`,
    );
  }
}

/** The lists a page asks for every few seconds, answered 304 when unchanged (If-None-Match). */
const POLLED_LISTS = ["/api/v1/jobs", "/api/v1/runs", "/api/v1/logs"];

/** A job's own path: its ETag is the job's version, which If-Match names. */
const ONE_JOB = /^\/api\/v1\/jobs\/[^/]+$/;

/**
 * JSON, HTML, JS and CSS over 1 KiB gzipped for a client that takes it
 * (2,000 jobs: 1.6 MB become 46 kB); an event stream never is: its events
 * would wait in the compressor. Not a job's own answer (a few kB): compressed,
 * its ETag would turn weak (W/"…"), and it is documented as the version a
 * change sends back in If-Match.
 */
function compressed(): MiddlewareHandler {
  const gzip = compress();
  return (c, next) => ONE_JOB.test(c.req.path) ? next() : gzip(c, next);
}

/** Posts that change nothing: a schedule's preview. */
const READ_POSTS = ["/api/v1/schedule/preview"];

/**
 * Reading (and previewing) needs any role; anything else needs admin. A
 * request no route takes passes, to be answered 404 or 405 as for an admin:
 * a read token was told a path that does not exist "needs an admin token".
 */
const authorize: MiddlewareHandler<Env> = async (c, next) => {
  const method = c.req.method;
  const reads = method === "GET" || method === "HEAD" ||
    method === "POST" && READ_POSTS.includes(c.req.path);
  // Middleware is registered for ALL methods; a route, for its own.
  const routed = matchedRoutes(c).some((route) => route.method !== "ALL");
  if (!reads && routed && c.get("role") !== "admin") {
    throw new HttpError(
      403,
      `${method} ${c.req.path} changes jobs or runs and needs an admin token; this one is read-only`,
    );
  }
  await next();
};

/**
 * What makes two reads the same question (Door.share): the URL and every
 * header the answer depends on, credentials included, so a request is
 * never answered with what another caller was allowed to see. Null for
 * writes and live streams, which are each their own.
 */
function sharedReadKey(c: Context): string | null {
  const accept = c.req.header("accept") ?? "";
  if (c.req.method !== "GET" || c.req.path.endsWith("/stream") || accept.includes("event-stream")) {
    return null;
  }
  return [
    c.req.url,
    accept,
    ...["authorization", "host", "if-none-match"].map((h) => c.req.header(h)),
  ]
    .join("\n");
}

export function buildHttpApp(deps: HttpDeps): Hono<Env> {
  const app = new Hono<Env>();
  const unavailable = new UnavailableLog();
  deps.closing.addEventListener("abort", () => unavailable.stopped(), { once: true });
  app.onError((error, c: Context) => {
    const status = statusOf(error);
    const said = {
      method: c.req.method,
      path: c.req.path,
      error: deps.redact(httpErrorMessage(error)),
    };
    if (status === 503) {
      // Reads refused are their own kind: an outage's 503s do not silence them, nor they an outage's.
      const kind = refusesReads(error)
        ? "reads refused"
        : error instanceof Error
        ? error.name
        : "other";
      unavailable.refused(kind, said);
    } else if (status >= 500) {
      httpLog.error("{method} {path} failed: {error}", said);
    }
    // A write that lost to others at once may be sent again straight away.
    const retryS = error instanceof ContentionError
      ? 1
      : error instanceof HttpError
      ? error.retryAfterS
      : undefined;
    const retry = retryS === undefined ? undefined : { "Retry-After": String(retryS) };
    return c.json(errorBody(error, deps.redact), status as ContentfulStatusCode, retry);
  });
  // Outermost: it sees every answer, an error's as onError made it.
  app.use("*", async (c, next) => {
    await next();
    unavailable.answered(c.req.method, c.req.path, c.res.status);
  });
  app.use("*", compressed());
  app.notFound((c) => {
    const { method, path } = c.req;
    const allowed = allowedMethods(path);
    if (allowed.length === 0) {
      return c.json(
        errorBody(new HttpError(404, `no such endpoint: ${method} ${path}`), deps.redact),
        404,
      );
    }
    const error = new HttpError(
      405,
      `${path} does not take ${method}; it takes ${allowed.join(", ")}`,
    );
    return c.json(errorBody(error, deps.redact), 405, { Allow: allowed.join(", ") });
  });
  const migrating = deps.migrating ?? (() => false);
  app.route("/", healthRoutes(deps.readiness, migrating));
  // Before the door: a caller without a valid token, or whose body is slow to
  // come, takes none of its few slots.
  app.use("/metrics", authenticate(deps.tokens, deps.redact), asDocumented);
  app.use(
    "/api/v1/*",
    authenticate(deps.tokens, deps.redact),
    authorize,
    asDocumented,
    bodyFirst(deps.bodyWaitMs),
    // The tables it reads may not be there yet: "the service is starting", not "no such table".
    // The API's description and the caller's session read none; a path or method the API does
    // not have is answered 404 or 405, as once started.
    async (c, next) => {
      const routed = matchedRoutes(c).some((route) => route.method !== "ALL");
      if (migrating() && routed && !TABLELESS.has(c.req.path)) {
        // Answered, not thrown: a start is the state /healthz says, not a fault, and a client
        // asking meanwhile (a dashboard left open, a monitor) is no warning of the 503 log's.
        const starting = new HttpError(503, `${MIGRATING}; try again in a few seconds`);
        return c.json(errorBody(starting, deps.redact), 503, {
          "Retry-After": String(MIGRATING_RETRY_S),
        });
      }
      await next();
    },
  );
  const dashboard = dashboardRoutes();
  // Probes answer at once; everything else makes way for runs starting.
  if (deps.starts) {
    // What reads no table has a door of its own: it never waits behind requests held by a
    // database that does not answer. (/metrics reads jm_nodes, for a second at most.)
    const tableless = new Set([
      ...dashboard.routes.map((route) => route.path),
      "/metrics",
      ...TABLELESS,
    ]);
    const doors = {
      tables: new Door(deps.starts, MAX_HANDLED, deps.doorStuckMs),
      none: new Door(deps.starts, MAX_HANDLED, deps.doorStuckMs),
    };
    app.use("*", async (c, next) => {
      const door = tableless.has(c.req.path) ? doors.none : doors.tables;
      const key = sharedReadKey(c);
      if (key === null) {
        return await door.through((leave) => {
          c.set("leaveDoor", leave);
          return next();
        });
      }
      // Set, not returned: Hono keeps the handler's own response, whose body was read to share it.
      c.res = await door.share(key, async () => {
        await next();
        return c.res;
      });
    });
  }
  app.route("/", dashboard);
  // The lists a dashboard polls: an ETag of the body, and 304 without it when the caller has it.
  // Weak: the same list gzipped or not, and a 304 (never compressed) names it as the 200 did.
  for (const path of POLLED_LISTS) app.use(path, etag({ weak: true }));
  app.get("/api/v1/openapi.json", (c) => c.json(OPENAPI));
  app.get("/metrics", async (c) => {
    return c.body(await deps.metrics.text(), 200, { "Content-Type": deps.metrics.contentType });
  });
  app.get("/api/v1/session", (c) => c.json({ role: c.get("role"), auth: deps.tokens.configured }));
  const api = {
    ...deps,
    store: guardUsers(deps.store, () => ({ now: Date.now(), heartbeatMs: deps.heartbeatMs })),
    streams: new StreamCount(deps.maxStreams),
  };
  app.route("/api/v1", jobRoutes(api));
  app.route("/api/v1", runRoutes(api));
  app.route("/api/v1", logRoutes(api));
  app.route("/api/v1", statusRoutes(api, deps.readiness));
  // A known path asked with a method it does not take is a 405 naming those it takes (RFC 9110).
  const endpoints = new PatternRouter<string>();
  for (const { method, path } of app.routes) {
    if (method !== "ALL") endpoints.add(method, path, method);
  }
  const methods = [...new Set(app.routes.map((r) => r.method).filter((m) => m !== "ALL"))];
  const allowedMethods = (path: string) => {
    // The pattern router ignores a trailing slash, which Hono's routes do not.
    if (path.length > 1 && path.endsWith("/")) return [];
    const allowed = methods.filter((m) => endpoints.match(m, path)[0].length > 0);
    // Hono answers HEAD with the GET handler.
    return allowed.includes("GET") ? [...allowed, "HEAD"] : allowed;
  };
  return app;
}
