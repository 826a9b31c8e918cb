/**
 * Live streams are capped (src/http/sse.ts): each polls the database every
 * second, and a thousand of them starved every other request.
 */
import { assertEquals, assertStringIncludes } from "./assert.ts";
import { waitFor } from "./helpers.ts";
import { ADMIN, startServer } from "./http_harness.ts";
import { Hono } from "hono";
import { pollStream, StreamCount } from "../src/http/sse.ts";

Deno.test("http: live streams beyond the most kept open are refused (503) until one closes", async () => {
  await using server = await startServer({ maxStreams: 2 });
  const open = (path: string) =>
    fetch(`${server.url}${path}`, { headers: { Authorization: `Bearer ${ADMIN}` } });
  const streams: Response[] = [];
  try {
    streams.push(await open("/api/v1/runs/stream"), await open("/api/v1/logs/stream"));
    assertEquals(streams.map((r) => r.status), [200, 200]);
    const refused = await open("/api/v1/logs/stream");
    assertEquals(refused.status, 503);
    assertStringIncludes((await refused.json()).error, "2 live streams are open");
    // Plain requests are not streams: they still answer.
    const jobs = await open("/api/v1/jobs");
    assertEquals(jobs.status, 200);
    await jobs.body?.cancel();
    await streams.shift()!.body?.cancel();
    const again = await waitFor(async () => {
      const res = await open("/api/v1/runs/stream");
      if (res.status === 200) return res;
      await res.body?.cancel();
      return null;
    }, { timeoutMs: 10_000, what: "a stream to be taken once another closed" });
    streams.push(again);
  } finally {
    for (const res of streams) await res.body?.cancel();
  }
});

Deno.test("http: HEAD on a live stream answers its headers and keeps no stream open", async () => {
  await using server = await startServer({ maxStreams: 2 });
  const ask = (method: string) =>
    fetch(`${server.url}/api/v1/logs/stream`, {
      method,
      headers: { Authorization: `Bearer ${ADMIN}` },
    });
  for (let i = 0; i < 5; i++) {
    const head = await ask("HEAD");
    assertEquals([head.status, head.headers.get("content-type")], [200, "text/event-stream"]);
    await head.body?.cancel();
  }
  // Every place is still free: as many streams open as the most kept.
  const streams = [await ask("GET"), await ask("GET")];
  try {
    assertEquals(streams.map((r) => r.status), [200, 200]);
  } finally {
    for (const res of streams) await res.body?.cancel();
  }
});

Deno.test("http: a stream says when the database fails (error) and when it answers again (resumed)", async () => {
  const closing = new AbortController();
  let calls = 0;
  const app = new Hono();
  app.get("/s", (c) =>
    pollStream(c, {
      closing: closing.signal,
      streams: new StreamCount(1),
      intervalMs: 1,
      redact: (t) => t,
      shown: (t) => t,
      poll: () => {
        calls++;
        if (calls <= 2) return Promise.reject(new Error("the database is away"));
        return Promise.resolve(calls === 3 ? [{ event: "ready", data: {} }] : []);
      },
    }));
  const res = await app.request("/s");
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  try {
    while (!text.includes("event: ready")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
  } finally {
    closing.abort();
    await reader.cancel();
  }
  const events = [...text.matchAll(/^event: (\w+)\ndata: (.*)$/gm)].map((m) => [m[1], m[2]]);
  assertEquals(events, [
    ["error", '{"error":"the database is away"}'],
    ["resumed", "{}"],
    ["ready", "{}"],
  ]);
});

Deno.test("http: a stream whose poll hangs says it is not live (error), and resumed once it answers", async () => {
  const closing = new AbortController();
  let release = () => {};
  const hung = new Promise<void>((resolve) => release = resolve);
  let calls = 0;
  const app = new Hono();
  app.get("/s", (c) =>
    pollStream(c, {
      closing: closing.signal,
      streams: new StreamCount(1),
      intervalMs: 1,
      stallMs: 20,
      redact: (t) => t,
      shown: (t) => t,
      poll: async () => {
        calls++;
        if (calls === 1) await hung;
        return calls === 2 ? [{ event: "ready", data: {} }] : [];
      },
    }));
  const res = await app.request("/s");
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  // A stream that never says so would wait for ever: it gets its answer after 10 s, and fails below.
  const deadline = setTimeout(() => release(), 10_000);
  try {
    while (!text.includes("event: ready")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
      // The database answers only once the stream has said it hangs.
      if (text.includes("event: error")) release();
    }
  } finally {
    clearTimeout(deadline);
    closing.abort();
    await reader.cancel();
  }
  const events = [...text.matchAll(/^event: (\w+)\ndata: (.*)$/gm)].map((m) => [m[1], m[2]]);
  assertEquals(events, [
    ["error", '{"error":"the database has not answered for 0.02 s"}'],
    ["resumed", "{}"],
    ["ready", "{}"],
  ]);
});
