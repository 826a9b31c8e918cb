/**
 * The socket side: plan the address from `http.listen` and the tokens,
 * refuse an open API on a reachable address, serve HTTP or HTTPS with
 * node:http (through Hono's adaptor), and stop cleanly. Not Deno.serve:
 * it keeps a connection open as long as its client does (headers never
 * finished, a keep-alive connection never used again), and has no cap on
 * how many, so one client could hold every descriptor the service may
 * open, and its runs would fail to start ("Too many open files").
 * node:http closes such connections, and refuses those over a cap.
 */
import { createServer as createHttpsServer } from "node:https";
import { createServer as createHttpServer, type Server as NodeServer } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { getRequestListener, RequestError } from "@hono/node-server";
import type { Settings } from "../config/config.ts";
import { RuntimeError, ValidationError } from "../errors.ts";
import { log } from "../daemon/log.ts";
import { buildHttpApp, type HttpDeps } from "./app.ts";
import { loadTokens, Tokens } from "./auth.ts";
import { planListen } from "./listen.ts";

export interface HttpServer {
  /** Where it answers, e.g. `http://127.0.0.1:8080`. */
  readonly url: string;
  /** Stop accepting, let requests in flight end, close open streams. */
  close(): Promise<void>;
}

const httpLog = log("http");

/** A request's headers must arrive within this, the whole request within REQUEST_MS. */
const HEADERS_MS = 10_000;
const REQUEST_MS = 60_000;
/** A keep-alive connection is closed after this without a request. */
const IDLE_MS = 5_000;
/** How often connections are checked against those limits. */
const CHECK_MS = 2_000;
/** Refused connections are said at most once a minute (the first at once). */
const REFUSED_LOG_MS = 60_000;

/**
 * Close connections that send nothing, and refuse those over
 * `maxConnections` (closed as they come; node:http's own cap does it
 * without a word), saying so in the log.
 */
function guard(server: NodeServer, maxConnections: number): void {
  server.headersTimeout = HEADERS_MS;
  server.requestTimeout = REQUEST_MS;
  server.keepAliveTimeout = IDLE_MS;
  let open = 0;
  let refused = 0;
  let saidAt = -Infinity;
  server.on("connection", (socket: Socket) => {
    if (open < maxConnections) {
      open++;
      socket.once("close", () => open--);
      return;
    }
    socket.destroy();
    refused++;
    if (performance.now() - saidAt < REFUSED_LOG_MS) return;
    saidAt = performance.now();
    httpLog.warn(
      "refused {refused} HTTP connections (the last from {from}): {max} were open (http.max_connections); raise it if these clients are yours",
      { refused, from: socket.remoteAddress ?? "unknown", max: maxConnections },
    );
    refused = 0;
  });
}

/**
 * A request the adaptor could not make a Request of (no Host, a malformed
 * one, a malformed path): 400, with its reason, as the API's errors say.
 * (The app answers its own errors; anything else here is a bug: 500.)
 */
function unreadable(error: unknown): Response {
  if (!(error instanceof RequestError)) {
    httpLog.error("a request failed outside the API: {error}", { error: String(error) });
    return Response.json({ error: "internal error; see the service's log" }, { status: 500 });
  }
  return Response.json({ error: `the request cannot be read: ${error.message}` }, { status: 400 });
}

async function readTls(settings: Settings): Promise<{ cert: string; key: string } | null> {
  const [cert, key] = [settings["http.cert"], settings["http.key"]];
  if (cert === "" && key === "") return null;
  if (cert === "" || key === "") {
    const missing = cert === "" ? "http.cert" : "http.key";
    throw new ValidationError(
      missing,
      `${missing}: missing; HTTPS needs both http.cert and http.key`,
    );
  }
  const read = async (path: string, key: string) => {
    try {
      return await Deno.readTextFile(path);
    } catch (error) {
      throw new ValidationError(key, `${key}: ${path} cannot be read: ${(error as Error).message}`);
    }
  };
  return { cert: await read(cert, "http.cert"), key: await read(key, "http.key") };
}

/** What the server is built from; tokens and the address come from the settings. */
export type ServeDeps = Omit<HttpDeps, "tokens" | "closing">;

/**
 * Listen on `http.listen`. Throws ValidationError (exit 2) for a malformed
 * address, an unreadable token or TLS file, or a reachable address without
 * a token. `onTokens` receives the token values before anything can echo
 * them, for redaction.
 */
export async function startHttpServer(
  settings: Settings,
  deps: ServeDeps,
  onTokens: (values: string[]) => void = () => {},
): Promise<HttpServer> {
  const loaded = await loadTokens(settings);
  onTokens(loaded.map((t) => t.token));
  const tokens = new Tokens(loaded);
  const plan = planListen(settings["http.listen"], tokens.configured);
  const tls = await readTls(settings);
  const closing = new AbortController();
  const app = buildHttpApp({ ...deps, tokens, closing: closing.signal });
  const listener = getRequestListener(app.fetch, {
    // Deno's own Request and Response, not the adaptor's stand-ins: this thread's other code sees the same.
    overrideGlobalObjects: false,
    errorHandler: unreadable,
  });
  const options = { connectionsCheckingInterval: CHECK_MS };
  const server = tls
    ? createHttpsServer({ ...tls, ...options }, listener)
    : createHttpServer(options, listener);
  guard(server, settings["http.max_connections"]);
  let addr: AddressInfo;
  try {
    addr = await new Promise<AddressInfo>((resolve, reject) => {
      server.once("error", reject);
      server.listen(plan.port, plan.hostname, () => {
        server.off("error", reject);
        resolve(server.address() as AddressInfo);
      });
    });
  } catch (error) {
    throw new RuntimeError(
      `http.listen: cannot listen on ${plan.hostname}:${plan.port}: ${
        (error as Error).message
      }; choose another address or port, or stop what holds it`,
    );
  }
  const host = addr.address.includes(":") ? `[${addr.address}]` : addr.address;
  const url = `${tls ? "https" : "http"}://${host}:${addr.port}`;
  httpLog.info(
    tokens.configured
      ? "HTTP API, metrics and dashboard on {url}"
      : "HTTP API, metrics and dashboard on {url}, loopback only and without authentication because no token is configured (http.tokens or JM_HTTP_TOKEN)",
    { url },
  );
  return {
    url,
    async close() {
      // Live streams (log tail, runs) end first, or shutdown would wait for them.
      closing.abort();
      const closed = new Promise((resolve) => server.close(resolve));
      server.closeIdleConnections();
      await closed;
    },
  };
}
