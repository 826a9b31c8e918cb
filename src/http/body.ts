/**
 * A request's body, read whole before the request waits at the door
 * (starts.ts) for one of its few slots: a client that sends its body
 * slowly, or never, held a slot while the handler waited for it, and four
 * such blocked the API and /metrics for every other caller. So the body
 * must arrive within a deadline, and be no larger than any request of
 * this API needs (a job is at most a few hundred kB).
 */
import type { MiddlewareHandler } from "hono";
import { HttpError } from "./errors.ts";

/** The largest body taken. */
export const MAX_BODY_BYTES = 1 << 20;
/** How long a body may take to arrive. */
export const BODY_WAIT_MS = 10_000;

export function bodyFirst(waitMs = BODY_WAIT_MS): MiddlewareHandler {
  return async (c, next) => {
    const tooLarge = (bytes: string) =>
      new HttpError(
        413,
        `the body is ${bytes} bytes; at most ${MAX_BODY_BYTES} are taken (a job's JSON is far smaller)`,
      );
    // Before the body is touched: left alone, the server discards it after the answer.
    const declared = Number(c.req.header("content-length"));
    if (declared > MAX_BODY_BYTES) throw tooLarge(String(declared));
    const body = c.req.raw.body;
    if (body === null) return await next();
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
        const { done, value } = await reader.read();
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
