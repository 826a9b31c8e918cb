/**
 * The HTTP side's ground floor: the http.* config keys, where it listens and
 * when it refuses, bearer tokens never echoed, /healthz, /metrics behind a
 * token, HTTPS, and typed errors mapped to statuses.
 */
import { assert, assertEquals, assertStringIncludes, assertThrows } from "./assert.ts";
import { defaultSettings, loadConfig, type Settings } from "../src/config/config.ts";
import {
  ConflictError,
  ContentionError,
  DatabaseError,
  kindOf,
  NotFoundError,
  RuntimeError,
  UsageError,
  ValidationError,
} from "../src/errors.ts";
import { planListen } from "../src/http/listen.ts";
import { errorBody, HttpError, statusOf } from "../src/http/errors.ts";
import { StaleCopyError } from "../src/app/jobs.ts";
import { type ServeDeps, startHttpServer } from "../src/http/server.ts";
import { captureLogs, freshDatabase, waitFor } from "./helpers.ts";
import { NOBODY, serverDeps } from "./http_harness.ts";
import { assertRejects } from "./assert.ts";

const ADMIN = "admin-token-0123456789abcdef";
const READER = "read-token-0123456789abcdef";

function settings(overrides: Partial<Settings>): Settings {
  return { ...defaultSettings(), "http.listen": "127.0.0.1:0", ...overrides };
}

/**
 * A real store on a fresh SQLite file for a server whose test does not query
 * it, in a service run as NOBODY: these tests' servers may go without a token.
 */
async function withDeps<T>(fn: (deps: ServeDeps) => Promise<T>): Promise<T> {
  await using db = await freshDatabase("sqlite");
  const store = db.open();
  try {
    return await fn({ ...serverDeps(store), uid: NOBODY });
  } finally {
    await store.close();
  }
}

async function withConfig<T>(text: string, fn: (path: string) => T): Promise<T> {
  const path = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeTextFile(path, text);
    return await fn(path);
  } finally {
    await Deno.remove(path);
  }
}

Deno.test("http.listen: a bare port is loopback without tokens, every interface with them", () => {
  assertEquals(planListen(":8080", false, NOBODY), {
    hostname: "127.0.0.1",
    port: 8080,
    loopback: true,
  });
  assertEquals(planListen(":8080", true, 0), { hostname: "0.0.0.0", port: 8080, loopback: false });
  assertEquals(planListen("[::1]:0", false, NOBODY), { hostname: "::1", port: 0, loopback: true });
  assertEquals(planListen("localhost:9", false, null).loopback, true);
  assertEquals(planListen("10.1.2.3:80", true, 0).loopback, false);
});

Deno.test("http.listen: a reachable address without a token refuses, naming the fix", () => {
  assertThrows(
    () => planListen("0.0.0.0:8080", false, NOBODY),
    ValidationError,
    'http.listen: "0.0.0.0:8080" is reachable from other machines, but no token is configured',
  );
  assertThrows(() => planListen("0.0.0.0:8080", false, NOBODY), ValidationError, "JM_HTTP_TOKEN");
  assertThrows(() => planListen("8080", false, NOBODY), ValidationError, "expected HOST:PORT");
  assertThrows(() => planListen("host:70000", true, 0), ValidationError, "expected HOST:PORT");
});

Deno.test("http.listen: a service run as root without a token refuses on loopback too, naming the fix", () => {
  for (const listen of ["127.0.0.1:8080", ":8080", "[::1]:0"]) {
    assertThrows(
      () => planListen(listen, false, 0),
      ValidationError,
      `http.listen: ${
        JSON.stringify(listen)
      } has no token, and the service runs as root: every local user, and every job run as another user, could add a job through the API and have it run as root; add a token (JM_HTTP_TOKEN or http.tokens, e.g. one made by \`openssl rand -hex 32\`) or run the service as another user`,
    );
  }
  // A reachable address is refused first: its fix, a token, ends both refusals.
  assertThrows(() => planListen("0.0.0.0:8080", false, 0), ValidationError, "is reachable");
  assertEquals(planListen("127.0.0.1:8080", true, 0).loopback, true);
});

Deno.test("http config: tokens from the file and the environment; bad ones never echoed", async () => {
  const secret = "short-secret";
  await withConfig(
    `{ http: { listen: ":8080", tokens: [{ token: "${ADMIN}", role: "admin" }, { token_file: "/x", role: "read" }] } }`,
    (path) => {
      const { settings } = loadConfig({ config: path }, { JM_HTTP_TOKEN: READER });
      assertEquals(settings["http.listen"], ":8080");
      assertEquals(settings["http.tokens"], [
        { token: ADMIN, token_file: undefined, role: "admin" },
        { token: undefined, token_file: "/x", role: "read" },
      ]);
      assertEquals(settings["http.token"], READER);
    },
  );
  const bad: [string, string][] = [
    [`[{ token: "${secret}", role: "admin" }]`, "http.tokens[0].token: expected at least 16"],
    [`[{ token: "${ADMIN}", role: "root" }]`, 'http.tokens[0].role: "root" is not valid'],
    [`[{ token: "${ADMIN}", token_file: "/x", role: "read" }]`, "give either token or token_file"],
    [`[{ token: "${ADMIN}", role: "read", rol: 1 }]`, "unknown key 'rol'"],
    [`{ token: "${ADMIN}" }`, "http.tokens: expected a list"],
  ];
  for (const [tokens, message] of bad) {
    await withConfig(`{ http: { tokens: ${tokens} } }`, (path) => {
      const error = assertThrows(() => loadConfig({ config: path }, {}), ValidationError, message);
      assert(!error.message.includes(secret) && !error.message.includes(ADMIN), error.message);
    });
  }
  const fromEnv = assertThrows(
    () => loadConfig({}, { JM_HTTP_TOKEN: secret }),
    ValidationError,
    "environment JM_HTTP_TOKEN: http.token: expected at least 16 characters",
  );
  assert(!fromEnv.message.includes(secret), fromEnv.message);
});

Deno.test("errors map to kinds and statuses; the body is the CLI's message, with the field", () => {
  const cases: [Error, number, string | null][] = [
    [new ValidationError("minute", "minute: '61' is not valid"), 400, "invalid"],
    [new UsageError("count: 'x' is not valid"), 400, "usage"],
    [new HttpError(401, "no bearer token"), 401, null],
    [new HttpError(403, "needs an admin token"), 403, null],
    [new NotFoundError("job 'x' does not exist"), 404, "not_found"],
    [new ConflictError("job 'x' already exists"), 409, "conflict"],
    [
      new StaleCopyError("job 'x' was changed at …, after the copy this change was made on"),
      412,
      "conflict",
    ],
    [new DatabaseError("database unreachable"), 503, "unavailable"],
    [new DatabaseError("refused", { unreachable: false }), 500, "refused"],
    [
      new ContentionError("a deadlock victim 10 times; nothing was written: try again"),
      503,
      "unavailable",
    ],
    [new RuntimeError("run 3 has already ended"), 409, "refused"],
    [new TypeError("a bug"), 500, "internal"],
  ];
  assertEquals(
    // A refusal only HTTP has is of no kind the CLI reports.
    cases.map(([error]) => [statusOf(error), error instanceof HttpError ? null : kindOf(error)]),
    cases.map(([, status, kind]) => [status, kind]),
  );
  assertEquals(errorBody(new ValidationError("minute", "minute: bad"), (t) => t), {
    error: "minute: bad",
    field: "minute",
  });
  assertEquals(
    errorBody(new DatabaseError("login as root:pw failed"), (t) => t.replaceAll("pw", "***")),
    { error: "login as root:*** failed" },
  );
});

Deno.test("a server without tokens is open on loopback; /healthz and /metrics answer", () =>
  withDeps(async (deps) => {
    const server = await startHttpServer(settings({}), deps);
    try {
      assertStringIncludes(server.url, "http://127.0.0.1:");
      const health = await fetch(`${server.url}/healthz`);
      assertEquals([health.status, await health.json()], [200, { status: "ok" }]);
      const metrics = await fetch(`${server.url}/metrics`);
      assertEquals(metrics.status, 200);
      assertStringIncludes(await metrics.text(), "jobsmanager_process_resident_memory_bytes");
      const missing = await fetch(`${server.url}/nowhere`);
      assertEquals([missing.status, await missing.json()], [404, {
        error: "no such endpoint: GET /nowhere",
      }]);
      // A known path with a method it does not take: 405, saying which it takes.
      const wrong = await fetch(`${server.url}/api/v1/jobs/backup`, { method: "PUT" });
      assertEquals([wrong.status, wrong.headers.get("allow"), await wrong.json()], [
        405,
        "GET, PATCH, DELETE, HEAD",
        {
          error: "/api/v1/jobs/backup does not take PUT; it takes GET, PATCH, DELETE, HEAD",
        },
      ]);
      const probe = await fetch(`${server.url}/healthz`, { method: "POST" });
      assertEquals([probe.status, probe.headers.get("allow")], [405, "GET, HEAD"]);
      await probe.body?.cancel();
      // A trailing slash names no endpoint (the routes are strict): 404, not a 405 naming GET.
      const slash = await fetch(`${server.url}/api/v1/jobs/`);
      assertEquals([slash.status, await slash.json()], [404, {
        error: "no such endpoint: GET /api/v1/jobs/",
      }]);
    } finally {
      await server.close();
    }
  }));

Deno.test("a request the server cannot read is answered 400 with what was wrong", () =>
  withDeps(async (deps) => {
    const server = await startHttpServer(settings({}), deps);
    try {
      const { hostname, port } = new URL(server.url);
      for (
        const raw of [
          "FOO /api/v1/jobs HTTP/1.1\r\nHost: x\r\n\r\n",
          "GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n",
        ]
      ) {
        const conn = await Deno.connect({ hostname, port: Number(port) });
        try {
          await conn.write(new TextEncoder().encode(raw));
          const got: number[] = [];
          const buffer = new Uint8Array(4096);
          for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
            got.push(...buffer.subarray(0, n));
          }
          const answer = new TextDecoder().decode(new Uint8Array(got));
          const [head, body] = answer.split("\r\n\r\n");
          assert(head.startsWith("HTTP/1.1 400 "), `${JSON.stringify(raw)}: ${answer}`);
          assertStringIncludes(head.toLowerCase(), "content-type: application/json");
          assertEquals(JSON.parse(body), {
            error:
              'the request is not HTTP/1.1 this server can read: send a method the API takes (GET, HEAD, POST, PATCH, DELETE), a path, and headers one "Name: value" a line',
          }, JSON.stringify(raw));
        } finally {
          conn.close();
        }
      }
      // On a connection that had an answer already (a stream may be under way), none is written
      // into it: it is closed.
      const conn = await Deno.connect({ hostname, port: Number(port) });
      try {
        await conn.write(new TextEncoder().encode("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
        const got: number[] = [];
        const buffer = new Uint8Array(4096);
        const text = () => new TextDecoder().decode(new Uint8Array(got));
        while (!/\r\n\r\n[^]*"ok"/.test(text())) {
          const n = await conn.read(buffer);
          if (n === null) throw new Error(`closed before the answer: ${text()}`);
          got.push(...buffer.subarray(0, n));
        }
        await conn.write(new TextEncoder().encode("BREW / HTTP/1.1\r\n\r\n"));
        for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
          got.push(...buffer.subarray(0, n));
        }
        assertEquals(text().match(/HTTP\/1\.1 /g)?.length, 1, text());
      } finally {
        conn.close();
      }
      // The server goes on answering.
      const health = await fetch(`${server.url}/healthz`);
      assertEquals(health.status, 200);
      await health.body?.cancel();
    } finally {
      await server.close();
    }
  }));

/** Until the server closed conn (it reads the end, or a reset). */
async function closedByServer(conn: Deno.TcpConn): Promise<void> {
  const buffer = new Uint8Array(64);
  try {
    while (await conn.read(buffer) !== null) {
      // Nothing is sent to a refused connection; read on to its end.
    }
  } catch {
    // A reset ends it too.
  }
}

Deno.test("connections refused over http.max_connections since the last line are said as the server stops", async () => {
  await using log = await captureLogs("warning");
  await withDeps(async (deps) => {
    // The one slot, held by a request in: a readiness the test holds (an idle client would be
    // closed for a newcomer).
    const held = Promise.withResolvers<void>();
    let asked = 0;
    const readiness = async () => {
      asked++;
      await held.promise;
      return await deps.readiness();
    };
    const server = await startHttpServer(settings({ "http.max_connections": 1 }), {
      ...deps,
      readiness,
    });
    const { hostname, port } = new URL(server.url);
    const connect = () => Deno.connect({ hostname, port: Number(port) });
    const refused = () => log.messages().filter((m) => m.startsWith("refused "));
    const open: Deno.TcpConn[] = [];
    try {
      const asking = await connect();
      open.push(asking);
      await asking.write(
        new TextEncoder().encode("GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
      );
      await waitFor(() => asked === 1, {
        timeoutMs: 10_000,
        what: "the held /readyz to be asked",
        detail: () => `asked: ${asked}`,
      });
      // The first refusal is said at once; the next two wait for a minute to pass.
      for (let i = 0; i < 3; i++) {
        const conn = await connect();
        open.push(conn);
        await closedByServer(conn);
      }
      assertEquals(refused().length, 1, refused().join("\n"));
      assertStringIncludes(refused()[0], "refused 1 HTTP connections (the last from 127.0.0.1)");
    } finally {
      held.resolve();
      for (const conn of open) conn.close();
      await server.close();
    }
    const said = refused();
    assertEquals(said.length, 2, said.join("\n"));
    assertEquals(
      said[1],
      "refused 2 HTTP connections (the last from 127.0.0.1): 1 were open (http.max_connections); raise it if these clients are yours; the HTTP server stops",
    );
  });
});

Deno.test("tokens guard /metrics; a wrong one is refused without being echoed", () =>
  withDeps(async (deps) => {
    const dir = await Deno.makeTempDir();
    const file = `${dir}/read.token`;
    await Deno.writeTextFile(file, `${READER}\n`);
    const seen: string[] = [];
    const server = await startHttpServer(
      settings({ "http.tokens": [{ token_file: file, role: "read" }], "http.token": ADMIN }),
      deps,
      (values) => seen.push(...values),
    );
    try {
      assertEquals(seen, [READER, ADMIN]);
      const get = (token?: string) =>
        fetch(`${server.url}/metrics`, {
          headers: token === undefined ? {} : { Authorization: `Bearer ${token}` },
        });
      const none = await get();
      assertEquals(none.status, 401);
      assertEquals(none.headers.get("www-authenticate"), 'Bearer realm="jobsmanager"');
      assertStringIncludes((await none.json()).error, "Authorization: Bearer TOKEN");
      const wrong = await get("not-a-token-of-ours-at-all");
      const body = await wrong.text();
      assertEquals(wrong.status, 401);
      assert(!body.includes("not-a-token-of-ours"), body);
      for (const token of [READER, ADMIN]) {
        const ok = await get(token);
        assertEquals(ok.status, 200);
        await ok.body?.cancel();
      }
      const health = await fetch(`${server.url}/healthz`);
      assertEquals(health.status, 200, "probes need no token");
      await health.body?.cancel();
    } finally {
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
  }));

Deno.test("a client refused for its token is told where the tokens come from: only those configured", () =>
  withDeps(async (deps) => {
    const dir = await Deno.makeTempDir();
    const file = `${dir}/read.token`;
    await Deno.writeTextFile(file, `${READER}\n`);
    const cases: [Partial<Settings>, string, string][] = [
      [{ "http.token": ADMIN }, "JM_HTTP_TOKEN", "the one from JM_HTTP_TOKEN"],
      [
        { "http.tokens": [{ token: READER, role: "read" }] },
        "http.tokens",
        "the one from http.tokens",
      ],
      [
        { "http.tokens": [{ token_file: file, role: "read" }], "http.token": ADMIN },
        "a token_file of http.tokens or JM_HTTP_TOKEN",
        "one of the tokens from a token_file of http.tokens or JM_HTTP_TOKEN",
      ],
      [
        {
          "http.tokens": [{ token_file: file, role: "read" }, { token: ADMIN, role: "admin" }],
          "http.token": `${ADMIN}-2`,
        },
        "http.tokens, a token_file of http.tokens or JM_HTTP_TOKEN",
        "one of the tokens from http.tokens, a token_file of http.tokens or JM_HTTP_TOKEN",
      ],
    ];
    try {
      for (const [configured, from, whence] of cases) {
        const server = await startHttpServer(settings(configured), deps);
        try {
          const errors = [];
          for (const token of [undefined, "not-a-token-of-ours-at-all"]) {
            const res = await fetch(`${server.url}/api/v1/jobs`, {
              headers: token === undefined ? {} : { Authorization: `Bearer ${token}` },
            });
            assertEquals(res.status, 401);
            errors.push((await res.json()).error);
          }
          assertEquals(errors, [
            `no bearer token: send the header Authorization: Bearer TOKEN with a token from ${from}`,
            `the bearer token is not ${whence} (it is not shown)`,
          ], JSON.stringify(configured));
        } finally {
          await server.close();
        }
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }));

Deno.test("a port in use is refused with a message naming http.listen", () =>
  withDeps(async (deps) => {
    using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    await assertRejects(
      () => startHttpServer(settings({ "http.listen": `127.0.0.1:${taken.addr.port}` }), deps),
      RuntimeError,
      `http.listen: cannot listen on 127.0.0.1:${taken.addr.port}: `,
    );
  }));

Deno.test("a reachable address without a token does not start", () =>
  withDeps(async (deps) => {
    await assertRejects(
      () => startHttpServer(settings({ "http.listen": "0.0.0.0:0" }), deps),
      ValidationError,
      "no token is configured",
    );
  }));

Deno.test("a service run as root without a token does not start, even on loopback", () =>
  withDeps(async (deps) => {
    await assertRejects(
      () => startHttpServer(settings({}), { ...deps, uid: 0 }),
      ValidationError,
      "the service runs as root",
    );
  }));

/** What the server answers a request written as is (fetch() sets Host itself), read till it closes. */
async function rawAnswer(url: string, request: string): Promise<{ status: string; body: string }> {
  const { hostname, port } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  await conn.write(new TextEncoder().encode(request));
  const answer = await new Response(conn.readable).text();
  const [head, body] = answer.split("\r\n\r\n", 2);
  return { status: head.split("\r\n")[0], body };
}

Deno.test("a request with more than one Host header is 400, with tokens or without (RFC 9112, 3.2)", () =>
  withDeps(async (deps) => {
    const guarded = await startHttpServer(settings({ "http.token": ADMIN }), deps);
    const open = await startHttpServer(settings({}), deps);
    try {
      for (const server of [guarded, open]) {
        const { host } = new URL(server.url);
        const ask = (hostLines: string[]) =>
          rawAnswer(
            server.url,
            `GET /api/v1/session HTTP/1.1\r\n${hostLines.map((line) => `${line}\r\n`).join("")}` +
              `Authorization: Bearer ${ADMIN}\r\nConnection: close\r\n\r\n`,
          );
        const one = await ask([`Host: ${host}`]);
        assertEquals(one.status, "HTTP/1.1 200 OK", `${server.url}: ${one.body}`);
        const twice: string[][] = [
          [`Host: ${host}`, `Host: ${host}`],
          [`Host: ${host}`, "Host: evil.example"],
          ["Host: evil.example", `host: ${host}`, `HOST: ${host}`],
        ];
        for (const lines of twice) {
          const answer = await ask(lines);
          assertEquals(
            [answer.status, JSON.parse(answer.body)],
            ["HTTP/1.1 400 Bad Request", {
              error:
                `the request has ${lines.length} Host headers; HTTP allows one (RFC 9112, section 3.2)`,
            }],
            `${server.url} with ${lines.join(" | ")}: ${answer.body}`,
          );
        }
      }
    } finally {
      await guarded.close();
      await open.close();
    }
  }));

/** A throwaway certificate authority and a certificate for 127.0.0.1 it signed. */
async function openssl(dir: string, args: string): Promise<void> {
  const out = await new Deno.Command("openssl", {
    args: args.split(" "),
    cwd: dir,
    stdout: "null",
    stderr: "piped",
  })
    .output();
  assert(out.success, `openssl ${args}: ${new TextDecoder().decode(out.stderr)}`);
}

Deno.test("http.cert and http.key serve HTTPS; one without the other is refused", () =>
  withDeps(async (deps) => {
    const dir = await Deno.makeTempDir();
    const [cert, key] = [`${dir}/cert.pem`, `${dir}/key.pem`];
    const ca = `${dir}/ca.pem`;
    await openssl(
      dir,
      "req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=test-ca -keyout ca.key -out ca.pem",
    );
    await openssl(
      dir,
      "req -newkey rsa:2048 -nodes -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 -keyout key.pem -out leaf.csr",
    );
    await openssl(
      dir,
      "x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -days 1 -copy_extensions copy -out cert.pem",
    );
    await assertRejects(
      () => startHttpServer(settings({ "http.cert": cert }), deps),
      ValidationError,
      "http.key: missing; HTTPS needs both http.cert and http.key",
    );
    const server = await startHttpServer(settings({ "http.cert": cert, "http.key": key }), deps);
    const client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(ca)] });
    try {
      assertStringIncludes(server.url, "https://127.0.0.1:");
      const health = await fetch(`${server.url}/healthz`, { client });
      assertEquals(await health.json(), { status: "ok" });
      // A client that never begins its handshake is closed, as one that never sends its headers.
      const { hostname, port } = new URL(server.url);
      const silent = await Deno.connect({ hostname, port: Number(port) });
      let closed = false;
      silent.read(new Uint8Array(16)).catch(() => null).finally(() => closed = true);
      await waitFor(() => closed, {
        timeoutMs: 40_000,
        what: "the server to close a connection that never began its TLS handshake",
      });
      silent.close();
    } finally {
      client.close();
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
  }));

Deno.test("close() ends with a client connected that never sent a whole request", () =>
  withDeps(async (deps) => {
    const server = await startHttpServer(settings({}), deps);
    const { hostname, port } = new URL(server.url);
    const silent = await Deno.connect({ hostname, port: Number(port) });
    const partial = await Deno.connect({ hostname, port: Number(port) });
    await partial.write(new TextEncoder().encode("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
    try {
      let closed = false;
      server.close().then(() => closed = true);
      await waitFor(() => closed, {
        timeoutMs: 20_000,
        what: "close() to end with a silent and a half-sent client connected",
      });
    } finally {
      silent.close();
      partial.close();
    }
  }));

/** Read `conn` till the server closes it, into `got`; settles then (or on a reset). */
async function readTillClosed(conn: Deno.TcpConn, got: Uint8Array[]): Promise<void> {
  const buffer = new Uint8Array(4096);
  try {
    for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
      got.push(buffer.slice(0, n));
    }
  } catch {
    // A reset ends it as well as a close.
  }
}

Deno.test("idle connections are closed: one that sends nothing is answered 408, a keep-alive one after its request", () =>
  withDeps(async (deps) => {
    const server = await startHttpServer(settings({}), deps);
    const { hostname, port } = new URL(server.url);
    const silent = await Deno.connect({ hostname, port: Number(port) });
    const kept = await Deno.connect({ hostname, port: Number(port) });
    const text = (got: Uint8Array[]) =>
      new TextDecoder().decode(new Uint8Array(got.flatMap((c) => [...c])));
    try {
      const fromSilent: Uint8Array[] = [];
      const fromKept: Uint8Array[] = [];
      let silentClosed = false;
      let keptClosed = false;
      readTillClosed(silent, fromSilent).finally(() => silentClosed = true);
      await kept.write(
        new TextEncoder().encode("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
      );
      readTillClosed(kept, fromKept).finally(() => keptClosed = true);
      // node:http: 10 s for a request's headers, a keep-alive connection 5 s without one (checked every 2 s).
      await waitFor(() => silentClosed && keptClosed, {
        timeoutMs: 40_000,
        what: "the server to close an idle connection and a keep-alive one after its answer",
        detail: () => ({
          silentClosed,
          keptClosed,
          silent: text(fromSilent),
          kept: text(fromKept),
        }),
      });
      assert(text(fromSilent).startsWith("HTTP/1.1 408"), text(fromSilent));
      const answer = text(fromKept);
      assert(answer.startsWith("HTTP/1.1 200"), answer);
      assertStringIncludes(answer.toLowerCase(), "keep-alive");
      // One answer only: the connection was closed by the server, not given a second.
      assertEquals(answer.split("HTTP/1.1 ").length, 2, answer);
    } finally {
      silent.close();
      kept.close();
      await server.close();
    }
  }));
