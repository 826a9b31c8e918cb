/**
 * Live streams as Server-Sent Events: a poll of the database each second,
 * its new rows sent as events, until the client leaves or the server
 * stops. Polling the database (not the process's memory) shows what every
 * node of a cluster did, as `logs --follow` does.
 */
import type { Context } from "hono";
import { type SSEStreamingApi, streamSSE } from "hono/streaming";
import { toJson } from "../domain/json.ts";
import { HttpError } from "./errors.ts";

export interface SseEvent {
  event: string;
  data: unknown;
  id?: string;
}

/**
 * Live streams open at once, at most: each polls the database every
 * second, and a thousand of them took the HTTP side's thread whole (plain
 * requests went from 20 ms to 4 s). A dashboard tab holds one or two.
 */
export const MAX_STREAMS = 64;

/** How many live streams are open, against their most. */
export class StreamCount {
  open = 0;
  constructor(readonly max: number = MAX_STREAMS) {}
}

export interface PollOptions {
  /** Ended when the server stops. */
  closing: AbortSignal;
  /** The server's streams: one more is refused (503) once they are at their most. */
  streams: StreamCount;
  intervalMs: number;
  /**
   * Events to send now; called once per interval. Throwing sends an `error`
   * event and goes on; the first answer after it sends a `resumed` event.
   */
  poll: () => Promise<SseEvent[]>;
  /**
   * How long a poll may go unanswered (a database that hangs) before the
   * stream sends an `error` event, and `resumed` once it answers; else a
   * page shows "live" over data that stopped (default STALL_MS).
   */
  stallMs?: number;
  redact: (text: string) => string;
  /** Each text of an event's data as the caller may see it (a reader's without secrets). */
  shown: (text: string) => string;
}

/** A comment line this often keeps proxies from closing a quiet stream. */
const KEEPALIVE_MS = 15_000;
/** How long a poll may hang before the stream says it is not live (PollOptions.stallMs). */
export const STALL_MS = 5_000;

export function pollStream(c: Context, o: PollOptions): Response {
  if (o.streams.open >= o.streams.max) {
    throw new HttpError(
      503,
      `${o.streams.open} live streams are open, the most this server keeps; close some (each dashboard tab holds one or two), or poll GET /api/v1/runs and /api/v1/logs`,
    );
  }
  // HEAD gets a stream's headers, not a stream: the server sends no body,
  // so nothing would ever read one, end it, and give its place back.
  if (c.req.method === "HEAD") {
    return new Response(null, {
      headers: { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" },
    });
  }
  o.streams.open++;
  return streamSSE(c, async (stream) => {
    try {
      await follow(stream, o);
    } finally {
      o.streams.open--;
    }
  });
}

async function follow(stream: SSEStreamingApi, o: PollOptions): Promise<void> {
  // The client leaving cancels the stream; the server stopping ends it.
  const left = new AbortController();
  stream.onAbort(() => left.abort());
  const done = AbortSignal.any([o.closing, left.signal]);
  done.addEventListener("abort", () => stream.abort(), { once: true });
  let quietSince = Date.now();
  let failing = false;
  const stallMs = o.stallMs ?? STALL_MS;
  while (!done.aborted) {
    try {
      const answer = o.poll();
      // A poll that hangs throws nothing: said as failing once it has hung stallMs.
      const settled = new AbortController();
      answer.then(() => settled.abort(), () => settled.abort());
      await sleep(stallMs, AbortSignal.any([done, settled.signal]));
      if (!settled.signal.aborted && !done.aborted && !failing) {
        await stream.writeSSE({
          event: "error",
          data: JSON.stringify({
            error: `the database has not answered for ${stallMs / 1000} s`,
          }),
        });
        failing = true;
      }
      const events = await answer;
      // The error event said the stream was not live: say it is again.
      if (failing) events.unshift({ event: "resumed", data: {} });
      for (const e of events) {
        await stream.writeSSE({
          event: e.event,
          data: toJson(e.data, undefined, o.shown),
          id: e.id,
        });
        quietSince = Date.now();
      }
      failing = false;
    } catch (error) {
      // Say it once per outage; the stream resumes when the database answers.
      if (!failing) {
        await stream.writeSSE({
          event: "error",
          data: JSON.stringify({ error: o.redact((error as Error).message) }),
        });
      }
      failing = true;
    }
    if (Date.now() - quietSince >= KEEPALIVE_MS) {
      await stream.write(": keepalive\n\n");
      quietSince = Date.now();
    }
    await sleep(o.intervalMs, done);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
