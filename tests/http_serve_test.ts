/**
 * `jobsmanager serve` with `http.listen` set, end to end: a job added over
 * the API fires, its run comes on the live stream, /metrics counts it,
 * /readyz says ready, the tokens never show in the log, SIGTERM stops
 * both sides; and a reachable address without a token refuses to start, as
 * does a service run as root without one.
 */
import parsePrometheus from "parse-prometheus-text-format";
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { BACKENDS, freshDatabase, waitFor } from "./helpers.ts";
import { ADMIN, READER, serveWithHttp } from "./http_harness.ts";
import { Serve, sql, writeConfig } from "./serve_helpers.ts";

for (const backend of BACKENDS) {
  Deno.test(`serve with http (${backend}): a job added over the API fires and is counted`, async () => {
    await using db = await freshDatabase(backend);
    const tokenFile = `${db.dir}/read.token`;
    await Deno.writeTextFile(tokenFile, `${READER}\n`);
    await using served = await serveWithHttp(
      db,
      { tokens: [{ token_file: tokenFile, role: "read" }] },
      {
        JM_HTTP_TOKEN: ADMIN,
        // Secrets of the notifications: no job may read them either.
        JM_NOTIFY_WEBHOOK_SECRET: "SIGNINGKEY-4567",
        JM_NOTIFY_ON_RECOVERY_URL: "http://127.0.0.1:9/hook?token=RECOVERYTOKEN123",
      },
    );
    const call = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${served.url}${path}`, {
        method,
        headers: {
          Authorization: `Bearer ${ADMIN}`,
          ...(body === undefined ? {} : { "Content-Type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, body: await res.json() };
    };
    const ready = await waitFor(async () => (await call("GET", "/readyz")).status === 200, {
      timeoutMs: 20_000,
      what: "/readyz to say ready",
      detail: () => served.serve.stderr,
    });
    assert(ready);
    const added = await call("POST", "/api/v1/jobs", {
      id: "tick",
      command: "echo tick",
      second: "*",
    });
    assertEquals(added.status, 201);

    const run = await waitFor(async () => {
      const runs = (await call("GET", "/api/v1/runs?job=tick&status=success")).body;
      return runs[0] as { id: number } | undefined;
    }, { timeoutMs: 20_000, what: "a successful run of tick", detail: () => served.serve.stderr });
    // Lists leave the output out: the run itself has it.
    assertEquals((await call("GET", `/api/v1/runs/${run.id}`)).body.stdout, "tick\n");

    // A token or a webhook's key neither reaches a job's environment nor
    // shows in its output: a read token would read the admin token in a run,
    // any job could sign webhooks.
    const leak = await call("POST", "/api/v1/jobs", {
      id: "leak",
      command:
        `echo "env=$JM_HTTP_TOKEN$JM_NOTIFY_WEBHOOK_SECRET$JM_NOTIFY_ON_RECOVERY_URL"; echo "typed=${READER} SIGNINGKEY-4567 RECOVERYTOKEN123"`,
      cron: "0 0 1 1 *",
    });
    assertEquals(leak.status, 201, JSON.stringify(leak.body));
    const leakRun = (await call("POST", "/api/v1/jobs/leak/run")).body as { id: number };
    const leaked = await waitFor(async () => {
      const body = (await call("GET", `/api/v1/runs/${leakRun.id}`)).body;
      return body.status === "success" ? body as { stdout: string } : undefined;
    }, { timeoutMs: 20_000, what: "the run of leak", detail: () => served.serve.stderr });
    assertEquals(leaked.stdout, "env=\ntyped=*** *** ***\n");

    const counted = await waitFor(async () => {
      const res = await fetch(`${served.url}/metrics`, {
        headers: { Authorization: `Bearer ${READER}` },
      });
      const families = parsePrometheus(await res.text()) as {
        name: string;
        metrics: { value: string; labels: Record<string, string> }[];
      }[];
      const runs = families.find((f) => f.name === "jobsmanager_runs_total");
      return runs?.metrics.find((m) => m.labels.job === "tick" && m.labels.status === "success");
    }, { timeoutMs: 30_000, what: "/metrics to count tick's run" });
    assert(Number(counted.value) >= 1);

    const status = (await call("GET", "/api/v1/status")).body as { services: { state: string }[] };
    assertEquals(status.services.map((s) => s.state), ["live"]);
    // A live stream still open does not hold the stop up.
    const tail = await fetch(`${served.url}/api/v1/logs/stream`, {
      headers: { Authorization: `Bearer ${READER}` },
    });
    assertEquals(tail.status, 200);
    const { status: exit } = await served.serve.terminate(20_000);
    await tail.body?.cancel();
    assertEquals(exit.code, 0, served.serve.stderr);
    for (const token of [ADMIN, READER]) {
      assert(!served.serve.stderr.includes(token), "a token shows in serve's log");
    }
    assertStringIncludes(
      served.serve.stderr,
      "HTTP API, metrics and dashboard on",
    );
  });
}

Deno.test("serve refuses a reachable http.listen without a token, before it starts", async () => {
  await using db = await freshDatabase("sqlite");
  const config = await writeConfig(db);
  const doc = JSON.parse(await Deno.readTextFile(config));
  await Deno.writeTextFile(config, JSON.stringify({ ...doc, http: { listen: "0.0.0.0:0" } }));
  await using serve = new Serve(db, config);
  const status = await serve.exit(20_000);
  assertEquals(status.code, 2, serve.stderr);
  assertStringIncludes(serve.stderr, 'http.listen: "0.0.0.0:0" is reachable from other machines');
  assertStringIncludes(
    serve.stderr,
    "add a token (http.tokens, or JM_HTTP_TOKEN) or listen on 127.0.0.1",
  );
});

Deno.test({
  name: "serve run as root refuses an API without a token, even on loopback, before it starts",
  // Only root is refused: the suite runs as root (CI), and a test cannot make serve root.
  ignore: Deno.uid() !== 0,
  fn: async () => {
    await using db = await freshDatabase("sqlite");
    const config = await writeConfig(db);
    const doc = JSON.parse(await Deno.readTextFile(config));
    await Deno.writeTextFile(config, JSON.stringify({ ...doc, http: { listen: "127.0.0.1:0" } }));
    await using serve = new Serve(db, config);
    const status = await serve.exit(20_000);
    assertEquals(status.code, 2, serve.stderr);
    assertStringIncludes(
      serve.stderr,
      'http.listen: "127.0.0.1:0" has no token, and the service runs as root: every local user',
    );
    assertStringIncludes(serve.stderr, "e.g. one made by `openssl rand -hex 32`");
  },
});

Deno.test("serve: HTTP clients cannot take the descriptors runs need: those over http.max_connections are refused, and said so", async () => {
  await using db = await freshDatabase("sqlite");
  await using served = await serveWithHttp(db, { max_connections: 8 }, { JM_HTTP_TOKEN: ADMIN });
  // Its HTTP side listens before the service has made the new database's tables: ready first
  // (a busy machine answered the job's POST with 500 "no such table: jm_jobs").
  await waitFor(async () => {
    const res = await fetch(`${served.url}/readyz`);
    await res.body?.cancel();
    return res.status === 200;
  }, { timeoutMs: 30_000, what: "/readyz to say ready", detail: () => served.serve.stderr });
  // Few descriptors, as under a low LimitNOFILE: more idle clients than it leaves room for.
  const limit = await new Deno.Command("prlimit", {
    args: ["--pid", String(served.serve.pid), "--nofile=128:128"],
  }).output();
  assertEquals(limit.code, 0, new TextDecoder().decode(limit.stderr));
  const added = await fetch(`${served.url}/api/v1/jobs`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${ADMIN}` },
    body: JSON.stringify({ id: "tick", command: "echo tick", second: "*" }),
  });
  assertEquals(added.status, 201, await added.text());
  const { hostname, port } = new URL(served.url);
  const idle: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < 200; i++) idle.push(await Deno.connect({ hostname, port: Number(port) }));
    const refused = await waitFor(
      () =>
        served.serve.stderr.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))
          .find((e) => /^refused \d+ HTTP connections/.test(e.message)),
      {
        timeoutMs: 20_000,
        what: "serve to say it refused connections",
        detail: () => served.serve.stderr,
      },
    );
    assertEquals(refused.properties.max, 8);
    assertStringIncludes(refused.message, "raise it if these clients are yours");
    // The runs still have their descriptors: tick keeps running while the clients wait.
    const since = Date.now();
    await waitFor(
      async () =>
        Number(
          (await sql(
            db,
            "SELECT COUNT(*) AS n FROM jm_runs WHERE job_id = 'tick' AND status = 'success' AND scheduled_at > ?",
            [since],
          ))[0].n,
        ) >= 2,
      {
        timeoutMs: 20_000,
        what: "tick to run twice while the clients wait",
        detail: () => served.serve.stderr,
      },
    );
  } finally {
    for (const conn of idle) conn.close();
  }
  // Not a side that died and came back elsewhere: the same address answers once they left.
  await waitFor(
    async () => (await fetch(`${served.url}/healthz`).catch(() => null))?.status === 200,
    {
      timeoutMs: 20_000,
      what: "/healthz to answer once the idle clients left",
      detail: () => served.serve.stderr,
    },
  );
  assert(!served.serve.stderr.includes("the HTTP side failed"), served.serve.stderr);
  const { status } = await served.serve.terminate(20_000);
  assertEquals(status.code, 0, served.serve.stderr);
});

Deno.test("serve: an HTTP side whose listener stops taking connections (no descriptor left) is said so and started again", async () => {
  await using db = await freshDatabase("sqlite");
  // The default cap (256) above what the open-file limit leaves: accepts run out of descriptors.
  await using served = await serveWithHttp(db, {}, { JM_HTTP_TOKEN: ADMIN });
  // Started whole first: its runner threads' epoll sets, made as the jobs load, need descriptors
  // too, and on a busy machine the connections below took them first ("could not make an epoll set").
  await waitFor(() => served.serve.stderr.includes('"loaded '), {
    timeoutMs: 30_000,
    what: "serve to load its jobs",
    detail: () => served.serve.stderr,
  });
  const limit = await new Deno.Command("prlimit", {
    args: ["--pid", String(served.serve.pid), "--nofile=128:128"],
  }).output();
  assertEquals(limit.code, 0, new TextDecoder().decode(limit.stderr));
  const { hostname, port } = new URL(served.url);
  const idle: Deno.TcpConn[] = [];
  for (let i = 0; i < 200; i++) {
    const conn = await Deno.connect({ hostname, port: Number(port) }).catch(() => null);
    if (conn === null) break;
    idle.push(conn);
  }
  // node:http never takes another connection after that, even with descriptors free again.
  for (const conn of idle) conn.close();
  const back = await waitFor(
    () =>
      served.serve.stderr.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))
        .find((e) => /^the HTTP side is back on /.test(e.message))?.properties.url as
          | string
          | undefined,
    {
      timeoutMs: 60_000,
      what: "the HTTP side to be said failed and started again",
      detail: () => `${idle.length} idle connections were opened; stderr:\n${served.serve.stderr}`,
    },
  );
  assertStringIncludes(served.serve.stderr, "the HTTP listener takes no more connections");
  const health = await fetch(`${back}/healthz`);
  assertEquals(health.status, 200);
  await health.body?.cancel();
  const { status } = await served.serve.terminate(20_000);
  assertEquals(status.code, 0, served.serve.stderr);
});

Deno.test("serve: a client that never finishes its request's headers is answered 408 and closed", async () => {
  await using db = await freshDatabase("sqlite");
  await using served = await serveWithHttp(db, {}, { JM_HTTP_TOKEN: ADMIN });
  const { hostname, port } = new URL(served.url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    await conn.write(new TextEncoder().encode("GET /healthz HTTP/1.1\r\nHost: x\r\n"));
    // Read till the server closes: Deno.serve would wait for the rest for ever.
    const got: Uint8Array[] = [];
    const buffer = new Uint8Array(4096);
    let closed = false;
    (async () => {
      for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
        got.push(buffer.slice(0, n));
      }
    })().catch(() => {}).finally(() => closed = true);
    await waitFor(() => closed, {
      timeoutMs: 40_000,
      what: "the server to close a connection whose headers never ended",
      detail: () => new TextDecoder().decode(new Uint8Array(got.flatMap((c) => [...c]))),
    });
    const answer = new TextDecoder().decode(new Uint8Array(got.flatMap((c) => [...c])));
    assertStringIncludes(answer, "HTTP/1.1 408");
    // Said as the API says what was wrong.
    assertEquals(JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4)), {
      error:
        "the request did not arrive in time: its headers must come within 10 s, and the whole request within 60 s; send it at once",
    });
  } finally {
    conn.close();
  }
});
