/** What every API route needs: the store, the service defaults, and how to read a body. */
import type { Context } from "hono";
import { parse as parseTree, type ValueNode } from "@humanwhocodes/momoa";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { toJson } from "../../domain/json.ts";
import { shortened } from "../../domain/printable.ts";
import type { Store } from "../../store/store.ts";
import type { AccountFinder } from "../../app/user_warnings.ts";
import type { Account } from "../../daemon/run_as.ts";
import type { Role } from "../auth.ts";
import { ValidationError } from "../../errors.ts";
import { HttpError } from "../errors.ts";
import type { StreamCount } from "../sse.ts";

/** What a request carries through the middleware: the caller's role. */
export type Env = {
  Variables: {
    role: Role;
    /** Each text of an answer as this caller may see it (http/app.ts `authenticate`). */
    shown: (text: string) => string;
    /** Gives up the request's slot at the door (starts.ts `Door`), where there is one. */
    leaveDoor?: () => void;
  };
};

export interface ApiContext {
  store: Store;
  /** Time zone of jobs that name none (`jobsmanager.timezone`, else this machine's). */
  defaultZone: string;
  /** `jobsmanager.heartbeat_interval` in ms: when a node counts as stale. */
  heartbeatMs: number;
  /** How long after a job's change a run may still start with the version before it. */
  changeSettlesMs: number;
  /** Aborted when the server stops: live streams end. */
  closing: AbortSignal;
  /** The live streams open (sse.ts). */
  streams: StreamCount;
  redact: (text: string) => string;
  /** Where the user a job write gives a job is looked up; a run's start's lookups if not given. */
  accounts?: AccountFinder<Account>;
}

/** An answer in JSON, instants in ISO 8601 as the CLI's `--json` writes them. */
export function json(c: Context<Env>, data: unknown, status: ContentfulStatusCode = 200): Response {
  return c.body(toJson(data, undefined, c.get("shown")), status, {
    "Content-Type": "application/json",
  });
}

/**
 * The body as text. JSON is UTF-8 (RFC 8259); read leniently, each byte that
 * is not would become U+FFFD and be stored as other text than was sent,
 * where the CLI refuses such input.
 */
function utf8(bytes: ArrayBuffer): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new HttpError(
      400,
      "the body is not UTF-8: JSON must be sent in UTF-8 (bytes that are not would be stored as U+FFFD, other text than was sent)",
    );
  }
}

/**
 * The JSON object a request sends; `fallback` when there is no body (else
 * that is an error). A key given twice is refused where the body is stored
 * (`stored`): the check costs seconds of the API's thread for megabytes of
 * small tokens, so a body only read (a schedule preview, which a read token
 * may send) is not put through it.
 */
export async function readObject(
  c: Context,
  fallback?: Record<string, unknown>,
  stored = true,
): Promise<Record<string, unknown>> {
  const text = utf8(await c.req.arrayBuffer());
  if (text.trim() === "") {
    if (fallback !== undefined) return fallback;
    throw new HttpError(400, "the request has no body; send a JSON object");
  }
  const type = c.req.header("content-type") ?? "";
  if (!/^application\/([\w.+-]+\+)?json\b/i.test(type)) {
    throw new HttpError(
      415,
      `the body must be JSON (Content-Type: application/json), not '${type}'`,
    );
  }
  if (nestsTooDeeply(text)) {
    throw new HttpError(
      400,
      `the body nests arrays or objects too deeply to be read (more than ${MAX_NESTING} levels)`,
    );
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (error) {
    throw new HttpError(400, `the body is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new HttpError(
      400,
      `the body must be a JSON object ({…}), not ${
        Array.isArray(body) ? "an array" : shortened(text.trim())
      }`,
    );
  }
  if (!stored) return body as Record<string, unknown>;
  refuseRepeatedKeys(parseTree(text, { mode: "json", tokens: false, ranges: false }).body);
  return body as Record<string, unknown>;
}

/** Levels of arrays and objects in a body, at most: a job's deepest (`env`) is two. */
const MAX_NESTING = 64;

/**
 * Whether `text` opens more than MAX_NESTING arrays or objects inside one
 * another, found in one pass before it is parsed: a read token's schedule
 * preview of arrays 2,000,000 deep held the API's thread (and `/healthz`)
 * for seconds in JSON.parse and in the message naming the value.
 */
function nestsTooDeeply(text: string): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // A backslash escapes the next character.
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > MAX_NESTING) return true;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return false;
}

/**
 * A key given twice in one object, at any depth (`env` too), refused naming
 * it and the field it is under: JSON.parse keeps the last one silently,
 * where every other door refuses it (an option given twice differently,
 * `env` as a list, a key of a jobs file).
 */
function refuseRepeatedKeys(node: ValueNode, field?: string): void {
  if (node.type === "Array") {
    for (const element of node.elements) refuseRepeatedKeys(element.value, field);
    return;
  }
  if (node.type !== "Object") return;
  const keys = new Set<string>();
  for (const member of node.members) {
    // In JSON (not JSON5) every key is a string.
    const key = member.name.type === "String" ? member.name.value : member.name.name;
    if (keys.has(key)) {
      throw new ValidationError(
        field ?? key,
        `${shortened(field ?? key)}: key '${
          shortened(key)
        }' is given twice in one object; keep one`,
      );
    }
    keys.add(key);
    refuseRepeatedKeys(member.value, field ?? key);
  }
}
