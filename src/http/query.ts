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
import { OPENAPI } from "./openapi.ts";

const given = (raw: string | undefined): raw is string => raw !== undefined && raw !== "";

export function count(
  raw: string | undefined,
  name: string,
  max: number,
  fallback: number,
): number {
  return given(raw) ? parseCount(raw, name, max) : fallback;
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
 * The query parameters each endpoint takes, by method, as the OpenAPI
 * document gives them; paths without a `{…}` first, so that
 * `/runs/stream` is not taken for `/runs/{id}`.
 */
const ENDPOINTS = Object.entries(OPENAPI.paths)
  .map(([template, item]) => {
    const shared: Parameter[] = (item as { parameters?: Parameter[] }).parameters ?? [];
    const takes = new Map<string, string[]>();
    for (const [method, operation] of Object.entries(item)) {
      if (method === "parameters") continue;
      const own: Parameter[] = (operation as { parameters?: Parameter[] }).parameters ?? [];
      takes.set(
        method.toUpperCase(),
        [...shared, ...own].filter((p) => p.in === "query").map((p) => p.name),
      );
    }
    const pattern = new RegExp(`^/api/v1${template.replace(/\{[^}]+\}/g, "[^/]+")}$`);
    return { pattern, literal: !template.includes("{"), takes };
  })
  .sort((a, b) => Number(b.literal) - Number(a.literal));

/**
 * Refuse a query parameter the endpoint does not take (a misspelling, as
 * `?state=failed` for `?status=failed`, would otherwise be ignored, and the
 * answer look filtered when it is not), or one given twice (only one would
 * count). A path or method the API does not have is left to its 404 or 405.
 */
export const knownQueryParameters: MiddlewareHandler = async (c, next) => {
  const search = new URL(c.req.url).searchParams;
  if (search.size > 0) {
    const method = c.req.method === "HEAD" ? "GET" : c.req.method;
    const takes = ENDPOINTS.find((e) => e.pattern.test(c.req.path))?.takes.get(method);
    if (takes !== undefined) {
      const given = [...search.keys()];
      for (const name of new Set(given)) {
        if (!takes.includes(name)) {
          throw new HttpError(
            400,
            `${c.req.method} ${c.req.path} takes no query parameter '${name}' (${
              takes.length > 0 ? `it takes ${takes.join(", ")}` : "it takes none"
            })`,
          );
        }
        const times = given.filter((n) => n === name).length;
        if (times > 1) {
          throw new HttpError(
            400,
            `query parameter '${name}' is given ${times} times; give it once`,
          );
        }
      }
    }
  }
  await next();
};
