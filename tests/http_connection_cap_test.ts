/**
 * At http.max_connections a newcomer takes the place of the oldest
 * connection that has no whole request in (src/http/server.ts `guard`):
 * clients that connect and send nothing, or a body that never ends, hold
 * no slot a probe needs; a connection whose request is in keeps its own.
 */
import { assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { defaultSettings, type Settings } from "../src/config/config.ts";
import type { Readiness } from "../src/http/health.ts";
import { type HttpListener, type ServeDeps, startHttpServer } from "../src/http/server.ts";
import { captureLogs, freshDatabase, waitFor } from "./helpers.ts";
import { NOBODY, serverDeps } from "./http_harness.ts";

function settings(overrides: Partial<Settings>): Settings {
  return { ...defaultSettings(), "http.listen": "127.0.0.1:0", ...overrides };
}

const READY: Readiness = {
  database: { ok: true, detail: "reachable" },
  timetable: { ok: true, detail: "loaded" },
  run_guard: { ok: true, detail: "running" },
};

/** A server on a fresh SQLite store whose `/readyz` answers once the test lets it. */
async function withServer(
  max: number,
  fn: (server: HttpListener, readyz: { asked: number; answer(): void }) => Promise<void>,
): Promise<void> {
  await using db = await freshDatabase("sqlite");
  const store = db.open();
  const held = Promise.withResolvers<void>();
  const readyz = { asked: 0, answer: () => held.resolve() };
  const deps: ServeDeps = {
    ...serverDeps(store),
    uid: NOBODY,
    readiness: async () => {
      readyz.asked++;
      await held.promise;
      return READY;
    },
  };
  const server = await startHttpServer(settings({ "http.max_connections": max }), deps);
  try {
    await fn(server, readyz);
  } finally {
    readyz.answer();
    await server.close();
    await store.close();
  }
}

const encode = (text: string) => new TextEncoder().encode(text);

/** Everything the server sends on `conn` until it closes it (a reset ends it too). */
async function readToEnd(conn: Deno.TcpConn): Promise<string> {
  const got: number[] = [];
  const buffer = new Uint8Array(4096);
  try {
    for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
      got.push(...buffer.subarray(0, n));
    }
  } catch {
    // A reset: what came before it is the answer.
  }
  return new TextDecoder().decode(new Uint8Array(got));
}

/** Read `conn` until a whole answer with body `"ok"`-like JSON came: the connection stays open. */
async function readAnswer(conn: Deno.TcpConn): Promise<string> {
  const got: number[] = [];
  const buffer = new Uint8Array(4096);
  const text = () => new TextDecoder().decode(new Uint8Array(got));
  while (!/\r\n\r\n[^]*\}/.test(text())) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error(`closed before the answer: ${text()}`);
    got.push(...buffer.subarray(0, n));
  }
  return text();
}

const GET = (path: string, close = false) =>
  `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${close ? "Connection: close\r\n" : ""}\r\n`;

/** What each kind of idle client sends, and never more. */
const IDLE_CLIENTS: [string, string][] = [
  ["send nothing", ""],
  ["send part of their headers", "GET /api/v1/jobs HTTP/1.1\r\nHost: 127.0"],
  [
    "send headers and a body that never ends",
    'POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"id"',
  ],
];

for (const [kind, sent] of IDLE_CLIENTS) {
  Deno.test(`connection cap: clients that ${kind} hold no slot a probe needs; a request in keeps its own`, async () => {
    await using log = await captureLogs("warning");
    await withServer(4, async (server, readyz) => {
      const { hostname, port } = new URL(server.url);
      const connect = () => Deno.connect({ hostname, port: Number(port) });
      const open: Deno.TcpConn[] = [];
      try {
        // The oldest: a request in (a readiness the test holds), which no newcomer takes.
        const asking = await connect();
        open.push(asking);
        await asking.write(encode(GET("/readyz")));
        await waitFor(() => readyz.asked === 1, {
          timeoutMs: 10_000,
          what: "the held /readyz to be asked",
          detail: () => `asked: ${readyz.asked}`,
        });
        const idle: Deno.TcpConn[] = [];
        for (let i = 0; i < 2; i++) {
          const conn = await connect();
          open.push(conn);
          idle.push(conn);
          if (sent !== "") await conn.write(encode(sent));
        }
        // The last slot: another request in, asked once every connection before it was taken.
        const kept = await connect();
        open.push(kept);
        await kept.write(encode(GET("/readyz")));
        await waitFor(() => readyz.asked === 2, {
          timeoutMs: 10_000,
          what: "the second held /readyz to be asked",
          detail: () => `asked: ${readyz.asked}`,
        });
        // Four open, the cap: a probe takes the place of the oldest idle client once that one has
        // been idle a second (a probe sooner is refused, as a client of a moment ago keeps its slot).
        let probes = 0;
        let last = "";
        await waitFor(async () => {
          probes++;
          const probe = await connect();
          try {
            await probe.write(encode(GET("/healthz", true)));
            last = await readToEnd(probe);
          } catch (error) {
            last = String(error);
          } finally {
            probe.close();
          }
          return last.includes("HTTP/1.1 200");
        }, {
          // Within the 10 s the idle clients' headers have: then they would be closed anyway.
          timeoutMs: 6_000,
          intervalMs: 250,
          what: "a probe to be answered while idle clients hold every other slot",
          detail: () => `${probes} probes; the last one's answer: ${JSON.stringify(last)}`,
        });
        assertEquals(await readToEnd(idle[0]), "", "the oldest idle client is closed");
        // The request that was in gets its answer.
        readyz.answer();
        assertStringIncludes(await readAnswer(asking), "HTTP/1.1 200");
        assertStringIncludes(await readAnswer(kept), "HTTP/1.1 200");
      } finally {
        for (const conn of open) conn.close();
      }
    });
    // Said at once, or with the probes refused before it, at the latest as the server stopped.
    const said = log.messages().filter((m) => m.includes("http.max_connections")).join("\n");
    assertMatch(
      said,
      /closed 1 (HTTP connections )?that had sent no whole request \(the last from 127\.0\.0\.1\), the oldest first, to take new ones: 4 were open \(http\.max_connections\)/,
    );
  });
}

Deno.test("connection cap: with every connection's request in, a newcomer is refused", async () => {
  await using log = await captureLogs("warning");
  await withServer(1, async (server, readyz) => {
    const { hostname, port } = new URL(server.url);
    const connect = () => Deno.connect({ hostname, port: Number(port) });
    const open: Deno.TcpConn[] = [];
    try {
      const asking = await connect();
      open.push(asking);
      await asking.write(encode(GET("/readyz")));
      await waitFor(() => readyz.asked === 1, {
        timeoutMs: 10_000,
        what: "the held /readyz to be asked",
        detail: () => `asked: ${readyz.asked}`,
      });
      const newcomer = await connect();
      open.push(newcomer);
      assertEquals(await readToEnd(newcomer), "", "the newcomer is closed unanswered");
      assertEquals(log.messages().filter((m) => m.includes("http.max_connections")), [
        "refused 1 HTTP connections (the last from 127.0.0.1): 1 were open (http.max_connections); raise it if these clients are yours",
      ]);
      readyz.answer();
      assertStringIncludes(await readAnswer(asking), "HTTP/1.1 200");
    } finally {
      for (const conn of open) conn.close();
    }
  });
});
