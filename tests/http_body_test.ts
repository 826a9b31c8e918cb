/**
 * A request's body is read whole before the request takes one of the
 * API's few slots (src/http/body.ts): slow bodies do not block other
 * callers, a body that never comes ends 408, one too large 413.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { captureLogs, waitFor } from "./helpers.ts";
import { ADMIN, READER, startServer } from "./http_harness.ts";
import { MAX_BODY_BYTES } from "../src/http/body.ts";
import { MAX_HANDLED, Starts } from "../src/http/starts.ts";

/** A request whose headers promise `length` bytes of body, of which only `sent` are sent. */
async function slowBody(url: string, length: number, sent: string): Promise<Deno.TcpConn> {
  const { hostname, port } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  await conn.write(
    new TextEncoder().encode(
      `POST /api/v1/schedule/preview HTTP/1.1\r\nHost: ${hostname}:${port}\r\n` +
        `Authorization: Bearer ${READER}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${length}\r\n\r\n${sent}`,
    ),
  );
  return conn;
}

async function answerOf(conn: Deno.TcpConn): Promise<string> {
  let text = "";
  const buffer = new Uint8Array(4096);
  while (!text.includes("\r\n\r\n")) {
    const n = await conn.read(buffer);
    if (n === null) break;
    text += new TextDecoder().decode(buffer.subarray(0, n));
  }
  return text;
}

Deno.test("http: bodies that come slowly hold none of the API's slots, and end 408", async () => {
  await using server = await startServer({ starts: new Starts(), bodyWaitMs: 2000 });
  const slow: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < MAX_HANDLED + 2; i++) slow.push(await slowBody(server.url, 100, "{"));
    // Every slot would be taken by now, were the bodies awaited in them.
    const res = await fetch(`${server.url}/api/v1/jobs`, {
      headers: { Authorization: `Bearer ${ADMIN}` },
      signal: AbortSignal.timeout(15_000),
    }).catch((error) => {
      throw new Error(
        `GET /api/v1/jobs did not answer behind ${slow.length} slow bodies: ${error}`,
      );
    });
    assertEquals([res.status, await res.json()], [200, []]);
    const answer = await answerOf(slow[0]);
    assertMatch(answer, /^HTTP\/1\.1 408 /);
  } finally {
    for (const conn of slow) conn.close();
  }
});

Deno.test("http: a body larger than the API takes ends 413, naming the limit", async () => {
  await using server = await startServer();
  const huge = JSON.stringify({ cron: "* * * * *", pad: "x".repeat(MAX_BODY_BYTES) });
  const declared = await fetch(`${server.url}/api/v1/schedule/preview`, {
    method: "POST",
    headers: { Authorization: `Bearer ${READER}`, "Content-Type": "application/json" },
    body: huge,
  });
  assertEquals(declared.status, 413);
  const { error } = await declared.json();
  assert(error.includes(`at most ${MAX_BODY_BYTES}`), error);
  // Sent in chunks, with no length declared: counted as it comes.
  const streamed = await fetch(`${server.url}/api/v1/schedule/preview`, {
    method: "POST",
    headers: { Authorization: `Bearer ${READER}`, "Content-Type": "application/json" },
    body: new Blob([huge]).stream(),
  });
  assertEquals(streamed.status, 413);
  await streamed.body?.cancel();
});

Deno.test("http: a client that closes the connection mid-body is said at info, naming it, not as an error", async () => {
  await using log = await captureLogs("debug");
  await using server = await startServer();
  const conn = await slowBody(server.url, 100_000, '{"cron":');
  conn.close();
  const said = await waitFor(
    () => log.leveled().find((line) => line.includes("closed the connection")),
    {
      timeoutMs: 10_000,
      what: "the server to say the client closed the connection",
      detail: () => log.leveled().join("\n"),
    },
  );
  // How much of the body was read before node:http saw the close varies.
  assertMatch(
    said,
    /^info: client 127\.0\.0\.1 closed the connection before its request was whole: POST \/api\/v1\/schedule\/preview, \d+ of 100000 bytes of its body came$/,
  );
  // The server still serves, and nothing of this reached the error level.
  const health = await fetch(`${server.url}/healthz`);
  assertEquals(health.status, 200);
  await health.body?.cancel();
  assertEquals(log.leveled().filter((line) => /^(error|fatal|warning)/.test(line)), []);
});
