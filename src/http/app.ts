/**
 * The HTTP application: routes, auth and the one error handler, as a Hono
 * app independent of any socket, so tests can call `app.request()` or
 * serve it on a random port.
 */
import { Hono } from "hono";
import type { Context, MiddlewareHandler } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { log } from "../daemon/log.ts";
import { bearerOf, type Role, type Tokens } from "./auth.ts";
import { errorBody, HttpError, statusOf } from "./errors.ts";
import { healthRoutes, type Readiness } from "./health.ts";
import type { Metrics } from "./metrics.ts";
import { dashboardRoutes } from "./dashboard/routes.ts";

export interface HttpDeps {
  tokens: Tokens;
  metrics: Metrics;
  readiness: () => Readiness | Promise<Readiness>;
  /** Scrub secrets (the database password, tokens) from a message. */
  redact: (text: string) => string;
  /** Aborted when the server stops: live streams end. */
  closing: AbortSignal;
}

export type Env = { Variables: { role: Role } };

const httpLog = log("http");

/**
 * Every caller gets a role: admin on an open (token-less, loopback) server,
 * else the role of its bearer token; a request without a valid one ends here.
 */
function authenticate(tokens: Tokens): MiddlewareHandler<Env> {
  return async (c, next) => {
    if (!tokens.configured) {
      c.set("role", "admin");
      return await next();
    }
    const token = bearerOf(c.req.header("authorization"));
    if (token === null) {
      c.header("WWW-Authenticate", 'Bearer realm="jobsmanager"');
      throw new HttpError(
        401,
        "no bearer token: send the header Authorization: Bearer TOKEN with a token from http.tokens",
      );
    }
    const role = tokens.roleOf(token);
    if (role === null) {
      c.header("WWW-Authenticate", 'Bearer realm="jobsmanager", error="invalid_token"');
      throw new HttpError(401, "the bearer token is not one of http.tokens (it is not shown)");
    }
    c.set("role", role);
    await next();
  };
}

/** Reading needs any role; anything else needs admin. */
const authorize: MiddlewareHandler<Env> = async (c, next) => {
  const method = c.req.method;
  if (method !== "GET" && method !== "HEAD" && c.get("role") !== "admin") {
    throw new HttpError(
      403,
      `${method} ${c.req.path} changes jobs or runs and needs an admin token; this one is read-only`,
    );
  }
  await next();
};

export function buildHttpApp(deps: HttpDeps): Hono<Env> {
  const app = new Hono<Env>();
  app.onError((error, c: Context) => {
    const status = statusOf(error);
    if (status >= 500) {
      httpLog.error("{method} {path} failed: {error}", {
        method: c.req.method,
        path: c.req.path,
        error: deps.redact((error as Error).message ?? String(error)),
      });
    }
    return c.json(errorBody(error, deps.redact), status as ContentfulStatusCode);
  });
  app.notFound((c) =>
    c.json(
      errorBody(
        new HttpError(404, `no such endpoint: ${c.req.method} ${c.req.path}`),
        deps.redact,
      ),
      404,
    )
  );
  app.route("/", healthRoutes(deps.readiness));
  app.use("/metrics", authenticate(deps.tokens));
  app.get("/metrics", async (c) => {
    return c.body(await deps.metrics.text(), 200, { "Content-Type": deps.metrics.contentType });
  });
  app.route("/", dashboardRoutes());
  app.use("/api/v1/*", authenticate(deps.tokens), authorize);
  app.get("/api/v1/session", (c) => c.json({ role: c.get("role"), auth: deps.tokens.configured }));
  return app;
}
