/**
 * A request's body, read whole before the request waits at the door
 * (starts.ts) for one of its few slots: a client that sends its body
 * slowly, or never, held a slot while the handler waited for it, and four
 * such blocked the API and /metrics for every other caller. So the body
 * must arrive within a deadline, and be no larger than any request of
 * this API needs (a job is at most a few hundred kB).
 */
import type { Context, MiddlewareHandler } from "hono";
import { log } from "../daemon/log.ts";
import { HttpError } from "./errors.ts";
import { remoteAddress } from "./remote.ts";

/**
 * The largest body taken: room for the largest job the store takes, whose
 * JSON (a job read and sent back whole) writes each control character of
 * its long texts (65,535 bytes each) in six bytes: under 3 MB. Only a
 * caller whose token may write is read this far (body.ts runs after the
 * token's check).
 */
export const MAX_BODY_BYTES = 4 << 20;
/** How long a body may take to arrive. */
export const BODY_WAIT_MS = 10_000;

const httpLog = log("http");

/**
 * node:http fails a body whose connection closed before it was whole with
 * ECONNRESET ("aborted"): the client gave up or went away, not a fault here.
 */
function isCutShort(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === "ECONNRESET";
}

/**
 * Said at info, not as an error: an operator reads error lines as "the
 * service is broken", and this is the client's doing. The thrown 400 ends
 * the request; nobody is left to read it.
 */
function cutShort(c: Context, client: string | null, got: number, declared: number): HttpError {
  const said = { client: client ?? "(address unknown)", method: c.req.method, path: c.req.path };
  if (Number.isFinite(declared)) {
    httpLog.info(
      "client {client} closed the connection before its request was whole: {method} {path}, {got} of {declared} bytes of its body came",
      { ...said, got, declared },
    );
  } else {
    httpLog.info(
      "client {client} closed the connection before its request was whole: {method} {path}, {got} bytes of its body came",
      { ...said, got },
    );
  }
  return new HttpError(400, "the connection closed before the request's body was whole");
}

export function bodyFirst(waitMs = BODY_WAIT_MS): MiddlewareHandler {
  return async (c, next) => {
    const tooLarge = (bytes: string) =>
      new HttpError(
        413,
        `the body is ${bytes} bytes; at most ${MAX_BODY_BYTES} are taken (the largest job's JSON is under 3 MB)`,
      );
    // Before the body is touched: left alone, the server discards it after the answer.
    const declared = Number(c.req.header("content-length"));
    if (declared > MAX_BODY_BYTES) throw tooLarge(String(declared));
    const body = c.req.raw.body;
    if (body === null) return await next();
    // Now: once the client is gone, its socket no longer says where it was.
    const client = remoteAddress(c);
    const reader = body.getReader();
    let late = false;
    const deadline = setTimeout(() => {
      late = true;
      reader.cancel().catch(() => undefined);
    }, waitMs);
    const chunks: Uint8Array[] = [];
    let size = 0;
    try {
      for (;;) {
        const { done, value } = await reader.read().catch((error) => {
          throw isCutShort(error) ? cutShort(c, client, size, declared) : error;
        });
        if (done) break;
        size += value.length;
        if (size > MAX_BODY_BYTES) {
          reader.cancel().catch(() => undefined);
          throw tooLarge(`more than ${MAX_BODY_BYTES}`);
        }
        chunks.push(value);
      }
    } finally {
      clearTimeout(deadline);
    }
    if (late) {
      throw new HttpError(
        408,
        `the request's body did not arrive within ${
          waitMs / 1000
        } s (${size} bytes came); send it whole`,
      );
    }
    const bytes = new Uint8Array(size);
    let offset = 0;
    for (const chunk of chunks) {
      bytes.set(chunk, offset);
      offset += chunk.length;
    }
    // From its parts: node:http's adaptor gives a stand-in that Request's constructor does not take.
    const { url, method, headers, signal } = c.req.raw;
    c.req.raw = new Request(url, { method, headers, signal, body: bytes });
    await next();
  };
}
