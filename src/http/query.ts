/**
 * Query parameters of the API, read by the parsers of the CLI's options
 * (src/domain/input.ts), so `?limit=0` and `--limit 0` get one message, each
 * naming what was typed.
 * Absent or empty means not given.
 */
import type { MiddlewareHandler } from "hono";
import { validateId } from "../domain/job.ts";
import type { LogLevel } from "../domain/log_row.ts";
import { parseCount, parseLevel, parseSince, parseStatus } from "../domain/input.ts";
import type { RunStatus } from "../domain/run.ts";
import { HttpError } from "./errors.ts";
import { UsageError } from "../errors.ts";
import { shortened } from "../domain/printable.ts";
import { OPENAPI } from "./openapi.ts";

export const given = (raw: string | undefined): raw is string => raw !== undefined && raw !== "";

export function count(
  raw: string | undefined,
  name: string,
  max: number,
  fallback: number,
): number {
  return given(raw) ? parseCount(raw, name, max) : fallback;
}

/**
 * A switch (`?replace=`, `?force=`): true or false, absent or empty false.
 * Anything else is refused, not read as false: `?force=1` would otherwise
 * silently not force.
 */
export function flag(raw: string | undefined, name: string): boolean {
  if (!given(raw) || raw === "false") return false;
  if (raw === "true") return true;
  throw new UsageError(
    `${name}: ${JSON.stringify(shortened(raw))} is not valid (expected true or false)`,
  );
}

export function optionalJob(raw: string | undefined): string | undefined {
  return given(raw) ? validateId(raw, "job") : undefined;
}

export function optionalStatus(raw: string | undefined): RunStatus | undefined {
  return given(raw) ? parseStatus(raw, "status") : undefined;
}

export function optionalLevel(raw: string | undefined): LogLevel | undefined {
  return given(raw) ? parseLevel(raw, "level") : undefined;
}

export function optionalSince(raw: string | undefined, now: number): number | undefined {
  return given(raw) ? parseSince(raw, now, "since") : undefined;
}

interface Parameter {
  name: string;
  in: string;
}

/**
 * What each endpoint takes, by method, as the OpenAPI document gives it:
 * its query parameters, and whether a body; paths without a `{…}` first,
 * so that `/runs/stream` is not taken for `/runs/{id}`.
 */
const ENDPOINTS = Object.entries(OPENAPI.paths)
  .map(([template, item]) => {
    const shared: Parameter[] = (item as { parameters?: Parameter[] }).parameters ?? [];
    const takes = new Map<string, { query: string[]; body: boolean }>();
    for (const [method, operation] of Object.entries(item)) {
      if (method === "parameters") continue;
      const { parameters = [], requestBody } = operation as {
        parameters?: Parameter[];
        requestBody?: unknown;
      };
      takes.set(method.toUpperCase(), {
        query: [...shared, ...parameters].filter((p) => p.in === "query").map((p) => p.name),
        body: requestBody !== undefined,
      });
    }
    const pattern = new RegExp(`^/api/v1${template.replace(/\{[^}]+\}/g, "[^/]+")}$`);
    return { pattern, literal: !template.includes("{"), takes };
  })
  .concat(
    // Outside the document's paths (the document itself; /metrics, outside /api/v1): each a
    // GET of neither parameter nor body. Prometheus sends a parameter only when a scrape
    // config's `params` (or a `__param_*` label) asks for one, which this one would ignore.
    ["/api/v1/openapi.json", "/metrics"].map((path) => ({
      pattern: new RegExp(`^${path.replaceAll(".", "\\.")}$`),
      literal: true,
      takes: new Map([["GET", { query: [] as string[], body: false }]]),
    })),
  )
  .sort((a, b) => Number(b.literal) - Number(a.literal));

/**
 * Refuse what the endpoint does not take, which would otherwise be
 * ignored: a query parameter (a misspelling, as `?state=failed` for
 * `?status=failed`, and the answer looks filtered when it is not), one
 * given twice (only one would count), a body where none is read. A path
 * or method the API does not have is left to its 404 or 405.
 */
export const asDocumented: MiddlewareHandler = async (c, next) => {
  const method = c.req.method === "HEAD" ? "GET" : c.req.method;
  const takes = ENDPOINTS.find((e) => e.pattern.test(c.req.path))?.takes.get(method);
  if (takes !== undefined) {
    const where = `${c.req.method} ${c.req.path}`;
    const given = [...new URL(c.req.url).searchParams.keys()];
    for (const name of new Set(given)) {
      if (!takes.query.includes(name)) {
        throw new HttpError(
          400,
          `${where} takes no query parameter '${name}' (${
            takes.query.length > 0 ? `it takes ${takes.query.join(", ")}` : "it takes none"
          })`,
        );
      }
      const times = given.filter((n) => n === name).length;
      if (times > 1) {
        throw new HttpError(400, `query parameter '${name}' is given ${times} times; give it once`);
      }
    }
    const length = c.req.header("content-length");
    const sent = length === undefined
      ? c.req.header("transfer-encoding") !== undefined
      : length.trim() !== "0";
    if (!takes.body && sent) {
      throw new HttpError(400, `${where} takes no body; send the request without one`);
    }
  }
  await next();
};
