/**
 * Live streams as Server-Sent Events: a poll of the database each second,
 * its new rows sent as events, until the client leaves or the server
 * stops. Polling the database (not the process's memory) shows what every
 * node of a cluster did, as `logs --follow` does.
 */
import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import { toJson } from "../domain/json.ts";

export interface SseEvent {
  event: string;
  data: unknown;
  id?: string;
}

export interface PollOptions {
  /** Ended when the server stops. */
  closing: AbortSignal;
  intervalMs: number;
  /** Events to send now; called once per interval. Throwing sends an `error` event and goes on. */
  poll: () => Promise<SseEvent[]>;
  redact: (text: string) => string;
}

/** A comment line this often keeps proxies from closing a quiet stream. */
const KEEPALIVE_MS = 15_000;

export function pollStream(c: Context, o: PollOptions): Response {
  return streamSSE(c, async (stream) => {
    // The client leaving cancels the stream; the server stopping ends it.
    const left = new AbortController();
    stream.onAbort(() => left.abort());
    const done = AbortSignal.any([o.closing, left.signal]);
    done.addEventListener("abort", () => stream.abort(), { once: true });
    let quietSince = Date.now();
    let failing = false;
    while (!done.aborted) {
      try {
        for (const e of await o.poll()) {
          await stream.writeSSE({ event: e.event, data: toJson(e.data), id: e.id });
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
  });
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
