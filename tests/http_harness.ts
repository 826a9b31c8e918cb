/**
 * The HTTP side in-process for tests: a real store on a fresh database,
 * the server on a random loopback port, a client that sends a token, an
 * SSE reader, and every JSON answer checked against the OpenAPI document.
 */
import { Ajv2020 } from "ajv/dist/2020.js";
import { assert } from "./assert.ts";
import { freshDatabase, migrateFresh, type TestDatabase, waitFor } from "./helpers.ts";
import { Serve, writeConfig } from "./serve_helpers.ts";
import { defaultSettings, type Settings, type TokenSpec } from "../src/config/config.ts";
import type { Readiness } from "../src/http/health.ts";
import { Metrics } from "../src/http/metrics.ts";
import { OPENAPI } from "../src/http/openapi.ts";
import { type HttpServer, type ServeDeps, startHttpServer } from "../src/http/server.ts";
import type { Store } from "../src/store/store.ts";
import type { DaemonVitals } from "../src/daemon/boot.ts";

export const ADMIN = "admin-token-0123456789abcdef";
export const READER = "read-token-0123456789abcdef";
export const TOKENS: TokenSpec[] = [{ token: ADMIN, role: "admin" }, {
  token: READER,
  role: "read",
}];

export interface Api extends AsyncDisposable {
  url: string;
  store: Store;
  server: HttpServer;
  /** A request with `token` (admin unless told; null for none); the answer, its JSON checked. */
  call(
    method: string,
    path: string,
    options?: { token?: string | null; body?: unknown; headers?: Record<string, string> },
  ): Promise<Answer>;
}

export interface Answer {
  status: number;
  headers: Headers;
  body: unknown;
}

/** Readiness from a ping of the store: what the tests without a daemon can say. */
function pingReadiness(store: Store): () => Promise<Readiness> {
  return async () => {
    const database = await store.ping().then(
      () => ({ ok: true, detail: "reachable" }),
      (error) => ({ ok: false, detail: `unreachable: ${(error as Error).message}` }),
    );
    const none = { ok: true, detail: "no daemon in this test" };
    return { database, timetable: none, run_guard: none };
  };
}

/** A service user other than root: only root is refused an API without a token (listen.ts). */
export const NOBODY = 65534;

/** What a server is built from, on a store of `db`. */
export function serverDeps(store: Store): ServeDeps {
  return {
    store,
    defaultZone: "UTC",
    heartbeatMs: 5000,
    metrics: new Metrics(),
    readiness: pingReadiness(store),
    // As the worker's: the tokens it read.
    redact: (t) => t.replaceAll(ADMIN, "***").replaceAll(READER, "***"),
    uid: Deno.uid(),
  };
}

/**
 * The HTTP server alone, on a fresh SQLite database, with the test
 * tokens and `extra` over the test's deps (a door, shorter waits, lower
 * limits).
 */
export async function startServer(
  extra: Partial<ServeDeps> = {},
): Promise<{ url: string } & AsyncDisposable> {
  const db = await freshDatabase("sqlite");
  const store = db.open();
  await store.migrate();
  const server = await startHttpServer(
    { ...defaultSettings(), "http.listen": "127.0.0.1:0", "http.tokens": TOKENS },
    { ...serverDeps(store), ...extra },
  );
  return {
    url: server.url,
    async [Symbol.asyncDispose]() {
      await server.close();
      await store.close();
      await db[Symbol.asyncDispose]();
    },
  };
}

/** Serve the API on `db` (migrated) with `settings` over the test defaults. */
export async function startApi(
  db: TestDatabase,
  settings: Partial<Settings> = {},
  /** What the server is given of the store (an outage the test turns on and off). */
  served: (store: Store) => Store = (store) => store,
  /** The user the service runs as: one without tokens must not be root. */
  uid: number | null = Deno.uid(),
  /** Over the test's deps (a name service that does not answer). */
  extra: Partial<ServeDeps> = {},
): Promise<Api> {
  const store = db.open();
  await migrateFresh(db, store);
  const deps = { ...serverDeps(served(store)), uid, ...extra };
  const server = await startHttpServer(
    { ...defaultSettings(), "http.listen": "127.0.0.1:0", "http.tokens": TOKENS, ...settings },
    deps,
  );
  return {
    url: server.url,
    store,
    server,
    async call(method, path, options = {}) {
      const token = options.token === undefined ? ADMIN : options.token;
      const headers: Record<string, string> = { ...options.headers };
      if (token !== null) headers.Authorization = `Bearer ${token}`;
      if (options.body !== undefined) headers["Content-Type"] = "application/json";
      const res = await fetch(`${server.url}${path}`, {
        method,
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
      });
      const text = await res.text();
      const body = res.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text;
      checkAnswer(method, path, res.status, body);
      return { status: res.status, headers: res.headers, body };
    },
    async [Symbol.asyncDispose]() {
      await server.close();
      await store.close();
    },
  };
}

// ------------------------------------------------------------ OpenAPI check

const ajv = new Ajv2020({ strict: false, allErrors: true });
ajv.addFormat("date-time", (s: string) => /^\d{4}-\d\d-\d\dT/.test(s) && !isNaN(Date.parse(s)));
ajv.addSchema({ ...OPENAPI, $id: "openapi.json" });

/** Operations answered with a 2xx, as "METHOD /template": the test of coverage reads it. */
export const covered = new Set<string>();

const pointer = (s: string) => s.replaceAll("~", "~0").replaceAll("/", "~1");

/** The documented path template a request path matches, e.g. /jobs/{id}. */
export function templateOf(path: string): string | null {
  const bare = path.replace(/^\/api\/v1/, "").split("?")[0];
  for (const template of Object.keys(OPENAPI.paths)) {
    const pattern = new RegExp(`^${template.replace(/\{[^}]+\}/g, "[^/]+")}$`);
    if (pattern.test(bare)) return template;
  }
  return null;
}

/** Fail unless the answer is documented and its JSON body fits the documented schema. */
function checkAnswer(method: string, path: string, status: number, body: unknown): void {
  if (!path.startsWith("/api/v1/") || path.startsWith("/api/v1/openapi.json")) return;
  const template = templateOf(path);
  assert(template !== null, `${method} ${path}: no such path in the OpenAPI document`);
  const operation = (OPENAPI.paths as Record<string, Record<string, unknown>>)[template][
    method.toLowerCase()
  ] as { responses: Record<string, { content?: Record<string, unknown> }> } | undefined;
  assert(operation, `${method} ${template}: not in the OpenAPI document`);
  assert(
    operation.responses[String(status)],
    `${method} ${template} answered ${status}, which the document does not list: ${
      JSON.stringify(body)
    }`,
  );
  // Not modified (If-None-Match): no body to check.
  if (status === 304) return;
  const ref =
    `openapi.json#/paths/${pointer(template)}/${method.toLowerCase()}/responses/${status}` +
    `/content/application~1json/schema`;
  const validate = ajv.getSchema(ref);
  assert(validate, `${method} ${template} ${status}: no JSON schema at ${ref}`);
  assert(
    validate(body),
    `${method} ${path} ${status}: the answer does not fit the document: ${
      ajv.errorsText(validate.errors)
    }\n${JSON.stringify(body).slice(0, 800)}`,
  );
  if (status < 300) covered.add(`${method.toUpperCase()} ${template}`);
}

/** Validate `value` against a named schema of the document (for /readyz and SSE events). */
export function assertSchema(name: string, value: unknown): void {
  const validate = ajv.getSchema(`openapi.json#/components/schemas/${name}`)!;
  assert(
    validate(value),
    `not a ${name}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(value)}`,
  );
}

// ------------------------------------------------------------ SSE

export interface SseReader extends AsyncDisposable {
  /** Events so far, in order. */
  events: { event: string; data: unknown }[];
  /** Wait until an event satisfies `test`; fail after `timeoutMs`, listing what came. */
  until(
    test: (e: { event: string; data: unknown }) => boolean,
    timeoutMs?: number,
  ): Promise<unknown>;
}

export async function readSse(
  api: Api,
  path: string,
  token: string = ADMIN,
  headers: Record<string, string> = {},
): Promise<SseReader> {
  const abort = new AbortController();
  const res = await fetch(`${api.url}${path}`, {
    headers: { Authorization: `Bearer ${token}`, Accept: "text/event-stream", ...headers },
    signal: abort.signal,
  });
  assert(res.ok, `${path}: ${res.status}`);
  covered.add(`GET ${templateOf(path)}`);
  const events: { event: string; data: unknown }[] = [];
  const waiters = new Set<() => void>();
  const pump = (async () => {
    let buffer = "";
    try {
      for await (const chunk of res.body!.pipeThrough(new TextDecoderStream())) {
        buffer += chunk;
        for (let end; (end = buffer.indexOf("\n\n")) >= 0;) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: ?(.*)$/m.exec(block)?.[1] ?? "message";
          const data = [...block.matchAll(/^data: ?(.*)$/gm)].map((m) => m[1]).join("\n");
          if (data !== "") events.push({ event, data: JSON.parse(data) });
          waiters.forEach((wake) => wake());
        }
      }
    } catch (error) {
      if (!abort.signal.aborted) throw error;
    }
  })();
  return {
    events,
    until(test, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = events.find(test);
          if (found) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve(found.data);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(
              `no matching event on ${path} within ${timeoutMs} ms; got ${
                JSON.stringify(events).slice(0, 1500)
              }`,
            ),
          );
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async [Symbol.asyncDispose]() {
      abort.abort();
      await pump;
    },
  };
}

// ------------------------------------------------------------ a real serve

export interface ServedHttp extends AsyncDisposable {
  serve: Serve;
  /** Where its HTTP side answers, from the line it logged. */
  url: string;
}

/**
 * `jobsmanager serve` as a subprocess with `http` settings in its config
 * (listening on a free loopback port), once it has logged where it listens.
 */
export async function serveWithHttp(
  db: TestDatabase,
  http: Record<string, unknown>,
  env: Record<string, string> = {},
): Promise<ServedHttp> {
  const config = await writeConfig(db);
  const doc = JSON.parse(await Deno.readTextFile(config));
  await Deno.writeTextFile(
    config,
    JSON.stringify({ ...doc, http: { listen: "127.0.0.1:0", ...http } }),
  );
  const serve = new Serve(db, config, env);
  const url = await waitFor(() => listeningUrl(serve.stderr), {
    timeoutMs: 20_000,
    what: "serve to log where its HTTP side listens",
    detail: () => `stderr:\n${serve.stderr}`,
  });
  return {
    serve,
    url,
    async [Symbol.asyncDispose]() {
      await serve[Symbol.asyncDispose]();
    },
  };
}

function listeningUrl(stderr: string): string | null {
  for (const line of stderr.split("\n").slice(0, -1)) {
    if (!line.startsWith("{")) continue;
    const entry = JSON.parse(line);
    if (typeof entry.properties?.url === "string" && /dashboard on/.test(entry.message)) {
      return entry.properties.url;
    }
  }
  return null;
}

/** A service's vitals with all well: its timetable loaded and firing, the database online and taking all. */
export const HEALTHY_VITALS: DaemonVitals = {
  jobsLoaded: 3,
  running: 0,
  queued: 0,
  appliedMarker: 1,
  lastReload: null,
  polling: false,
  firing: true,
  databaseOnline: true,
  databaseAway: null,
  databaseWritesRefused: null,
  databaseReadsRefused: null,
  runRecordsWaiting: 0,
  holdingReason: null,
  outageMs: 0,
  currentOutageMs: 0,
  logRecordsDropped: 0,
  takesShare: true,
  silentJobs: 0,
  runGuardRunning: true,
};

/** The values of gauges `names` in `metrics`' text, as written (undefined for one not there). */
export async function gaugeValues(
  metrics: Metrics,
  ...names: string[]
): Promise<(string | undefined)[]> {
  const text = await metrics.text();
  return names.map((name) => text.match(new RegExp(`^${name} (\\S+)$`, "m"))?.[1]);
}
