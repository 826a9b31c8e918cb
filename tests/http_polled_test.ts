/**
 * What a dashboard polling every few seconds costs: answers gzipped, the
 * polled lists answered 304 while unchanged, and live streams never held
 * in a compressor.
 */
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { freshDatabase } from "./helpers.ts";
import { ADMIN, startApi } from "./http_harness.ts";

/** A raw GET: Deno's fetch would unzip the body and hide how many bytes came. */
async function rawGet(url: string, headers: Record<string, string>) {
  const target = new URL(url);
  const conn = await Deno.connect({ hostname: target.hostname, port: Number(target.port) });
  try {
    const lines = [
      `GET ${target.pathname}${target.search} HTTP/1.1`,
      `Host: ${target.host}`,
      `Authorization: Bearer ${ADMIN}`,
      "Connection: close",
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    ];
    await conn.write(new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n"));
    const chunks: Uint8Array[] = [];
    for await (const chunk of conn.readable) chunks.push(chunk);
    const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) all.set(c, (at += c.length) - c.length);
    const end = all.findIndex((_, i) =>
      all[i] === 13 && all[i + 1] === 10 && all[i + 2] === 13 && all[i + 3] === 10
    );
    const head = new TextDecoder().decode(all.slice(0, end)).toLowerCase();
    return { head, bytes: all.length - end - 4 };
  } finally {
    try {
      conn.close();
    } catch {
      // Closed by reading to the end.
    }
  }
}

async function addJobs(call: (m: string, p: string, o?: { body?: unknown }) => Promise<unknown>) {
  for (let i = 0; i < 20; i++) {
    await call("POST", "/api/v1/jobs", {
      // Yearly: a next fire that moves between two reads would change the list.
      body: { id: `poll.${i}`, command: "echo a job with a few words", cron: "0 0 1 1 *" },
    });
  }
}

Deno.test("http: JSON answers are gzipped for a client that takes gzip, and only for it", async () => {
  await using db = await freshDatabase("sqlite");
  await using api = await startApi(db);
  await addJobs(api.call);
  const plain = await rawGet(`${api.url}/api/v1/jobs`, {});
  assert(!plain.head.includes("content-encoding"), `sent compressed unasked:\n${plain.head}`);
  const zipped = await rawGet(`${api.url}/api/v1/jobs`, { "Accept-Encoding": "gzip" });
  assertStringIncludes(zipped.head, "content-encoding: gzip");
  assertStringIncludes(zipped.head, "vary: accept-encoding");
  assert(
    zipped.bytes * 5 < plain.bytes,
    `gzipped ${zipped.bytes} bytes of the ${plain.bytes} of the list (chunked framing included)`,
  );
  const script = await rawGet(`${api.url}/assets/app.js`, { "Accept-Encoding": "gzip" });
  assertStringIncludes(script.head, "content-encoding: gzip");
});

Deno.test("http: a live stream is never compressed: its first event comes while it stays open", async () => {
  await using db = await freshDatabase("sqlite");
  await using api = await startApi(db);
  const res = await fetch(`${api.url}/api/v1/runs/stream`, {
    headers: { Authorization: `Bearer ${ADMIN}`, "Accept-Encoding": "gzip" },
  });
  try {
    assertEquals(res.headers.get("content-encoding"), null, "a stream compressed");
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("event: ready")) {
      const { value, done } = await reader.read();
      assert(!done, `the stream ended before its first event; it sent ${JSON.stringify(text)}`);
      text += value;
    }
  } finally {
    await res.body?.cancel().catch(() => {});
  }
});

for (const path of ["/api/v1/jobs", "/api/v1/runs?limit=5", "/api/v1/logs?limit=5"]) {
  Deno.test(`http: GET ${path} answers 304 without a body while its ETag is current`, async () => {
    await using db = await freshDatabase("sqlite");
    await using api = await startApi(db);
    await addJobs(api.call);
    await api.call("POST", "/api/v1/jobs/poll.1/run", { body: { queue: true } });
    await api.store.insertLogs([{
      created_at: Date.now(),
      level: "info",
      logger_name: "test",
      message: "a line",
      context: {},
    }]);
    const first = await api.call("GET", path, { headers: { "Accept-Encoding": "gzip" } });
    assertEquals(first.status, 200);
    assert(Array.isArray(first.body) && first.body.length > 0, `${path} lists nothing`);
    const tag = first.headers.get("etag");
    assert(tag !== null, `${path}: no ETag; headers ${JSON.stringify([...first.headers])}`);
    const again = await api.call("GET", path, {
      headers: { "Accept-Encoding": "gzip", "If-None-Match": tag },
    });
    assertEquals([again.status, again.body], [304, ""], `${path} with If-None-Match: ${tag}`);
    assertEquals(again.headers.get("etag"), tag);
    // Something it lists changes: the whole list again, under another tag.
    await api.call("POST", "/api/v1/jobs", {
      body: { id: "poll.new", command: "true", cron: "* * * * *" },
    });
    await api.call("POST", "/api/v1/jobs/poll.new/run", { body: { queue: true } });
    await api.store.insertLogs([{
      created_at: Date.now(),
      level: "info",
      logger_name: "test",
      message: "a new line",
      context: {},
    }]);
    const changed = await api.call("GET", path, { headers: { "If-None-Match": tag } });
    assertEquals(changed.status, 200, `${path} after a change`);
    assert(changed.headers.get("etag") !== tag, `${path}: the same ETag after a change`);
  });
}
