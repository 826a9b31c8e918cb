/**
 * The socket side: plan the address from `http.listen` and the tokens,
 * refuse an open API on a reachable address, serve HTTP or HTTPS with
 * node:http (through Hono's adaptor), and stop cleanly. Not Deno.serve:
 * it keeps a connection open as long as its client does (headers never
 * finished, a keep-alive connection never used again), and has no cap on
 * how many, so one client could hold every descriptor the service may
 * open, and its runs would fail to start ("Too many open files").
 * node:http closes such connections, and keeps to a cap (`guard`).
 */
import { createServer as createHttpsServer } from "node:https";
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server as NodeServer,
  type ServerResponse,
} from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { getRequestListener, RequestError } from "@hono/node-server";
import type { Settings } from "../config/config.ts";
import { RuntimeError, ValidationError } from "../errors.ts";
import { log } from "../daemon/log.ts";
import { buildHttpApp, type HttpDeps } from "./app.ts";
import { changeSettles } from "./api/env_masks.ts";
import { loadTokens, Tokens } from "./auth.ts";
import { planListen } from "./listen.ts";

export interface HttpServer {
  /** Where it answers, e.g. `http://127.0.0.1:8080`. */
  readonly url: string;
  /** Stop accepting, let requests in flight end, close open streams. */
  close(): Promise<void>;
}

/** The server of one thread (`startHttpServer`). */
export interface HttpListener extends HttpServer {
  /**
   * Settles, saying why, if the server stops accepting connections by
   * itself (node:http does so for good, without a word, once an accept
   * fails for want of a descriptor); its owner then starts another.
   */
  readonly deaf: Promise<string>;
}

const httpLog = log("http");

/** A request's headers (and an HTTPS handshake) must arrive within this, the whole request within REQUEST_MS. */
const HEADERS_MS = 10_000;
const REQUEST_MS = 60_000;
/** A keep-alive connection is closed after this without a request. */
const IDLE_MS = 5_000;
/**
 * Connections closed for newcomers and not gone yet, at most; beyond it
 * newcomers are refused, at once. A closed connection holds its descriptor
 * till its close completes, and in a burst the listener has accepted many
 * more ahead (under a low open-file limit node:http stops for good once an
 * accept finds no descriptor).
 */
const CLOSING_MAX = 4;
/**
 * A connection is closed for a newcomer once it has gone this long without
 * a whole request in (since it came, or since its last answer): a client
 * sends its request as it connects, so one that has not for a second is
 * slow or idle; and a burst of newcomers does not close those of a moment
 * ago, each in turn, but is refused as it comes.
 */
const IDLE_BEFORE_CLOSE_MS = 1_000;
/** How often connections are checked against those limits. */
const CHECK_MS = 2_000;
/** Refused connections are said at most once a minute (the first at once). */
const REFUSED_LOG_MS = 60_000;
/** At a stop, requests in flight get this long; then every connection is closed. */
const CLOSE_GRACE_MS = 1_000;
/** How often the server checks that it still accepts connections, and how long an accept may take. */
const WATCH_MS = 10_000;
const ACCEPT_WAIT_MS = 5_000;

/** The connections a server took, and the ports its own checks (`watch`) come from. */
class Door {
  accepted = 0;
  readonly checks = new Set<number>();
  onAccept: (() => void) | null = null;
}

/** An open connection: since when it waits for a request, and the one it sent, if any. */
interface Connection {
  socket: Socket;
  since: number;
  request: IncomingMessage | null;
}

/** Who sent it: one open connection's address and port (a TLS request's socket is another object). */
function peerOf(socket: Socket): string | null {
  const { remoteAddress, remotePort } = socket;
  return remoteAddress === undefined || remotePort === undefined
    ? null
    : `${remoteAddress} ${remotePort}`;
}

/**
 * Close connections that send nothing, and keep to `maxConnections`: a
 * newcomer over it takes the place of the oldest connection that has had
 * no whole request in for IDLE_BEFORE_CLOSE_MS (one that sent nothing or
 * part of its headers, a keep-alive one between requests, a body still
 * coming), which is closed; when there is none the newcomer is refused
 * (closed as it comes; node:http's own cap does it without a word).
 * Clients that connect and send nothing so hold no slot a probe needs.
 * Both are said in the log at most once a minute, with how many came
 * meanwhile. The function it returns is for the server's stop: what was
 * not said yet is said then, as no next line would say it.
 */
function guard(server: NodeServer, maxConnections: number, door: Door): () => void {
  server.headersTimeout = HEADERS_MS;
  server.requestTimeout = REQUEST_MS;
  server.keepAliveTimeout = IDLE_MS;
  const open = new Map<string, Connection>();
  let refused = 0;
  let from = "";
  let closed = 0;
  let closedFrom = "";
  /** Closed for a newcomer, not gone yet. */
  let closing = 0;
  let saidAt = -Infinity;
  let later: ReturnType<typeof setTimeout> | undefined;
  const say = (stopping = "") => {
    later = undefined;
    saidAt = performance.now();
    const what = closed === 0
      ? "refused {refused} HTTP connections (the last from {from})"
      : refused === 0
      ? "closed {closed} HTTP connections that had sent no whole request (the last from {closedFrom}), the oldest first, to take new ones"
      : "refused {refused} HTTP connections (the last from {from}), and closed {closed} that had sent no whole request (the last from {closedFrom}), the oldest first, to take new ones";
    httpLog.warn(
      what + ": {max} were open (http.max_connections); raise it if these clients are yours" +
        stopping,
      { refused, from, closed, closedFrom, max: maxConnections },
    );
    refused = 0;
    closed = 0;
  };
  const sayLater = () => {
    if (later !== undefined) return;
    const wait = saidAt + REFUSED_LOG_MS - performance.now();
    if (wait <= 0) say();
    else later = setTimeout(say, wait);
  };
  /** The connection that has waited longest without a whole request in, if IDLE_BEFORE_CLOSE_MS or more. */
  const idlest = (): [string, Connection] | null => {
    let found: [string, Connection] | null = null;
    for (const entry of open) {
      const { request, since } = entry[1];
      if (request !== null && request.complete) continue;
      if (found === null || since < found[1].since) found = entry;
    }
    return found !== null && performance.now() - found[1].since >= IDLE_BEFORE_CLOSE_MS
      ? found
      : null;
  };
  server.on("connection", (socket: Socket) => {
    door.accepted++;
    door.onAccept?.();
    const peer = peerOf(socket);
    // Gone already (no address to it): nothing to take or refuse.
    if (peer === null) return void socket.destroy();
    const check = socket.remotePort !== undefined && door.checks.has(socket.remotePort);
    if (open.size >= maxConnections && !check && closing < CLOSING_MAX) {
      const oldest = idlest();
      if (oldest !== null) {
        open.delete(oldest[0]);
        const { socket: old } = oldest[1];
        closedFrom = old.remoteAddress ?? "unknown";
        closing++;
        old.once("close", () => closing--);
        old.destroy();
        closed++;
        sayLater();
      }
    }
    if (open.size < maxConnections) {
      const connection: Connection = { socket, since: performance.now(), request: null };
      open.set(peer, connection);
      socket.once("close", () => {
        if (open.get(peer) === connection) open.delete(peer);
      });
      return;
    }
    socket.destroy();
    if (check) return;
    refused++;
    from = socket.remoteAddress ?? "unknown";
    sayLater();
  });
  server.on("request", (request: IncomingMessage, response: ServerResponse) => {
    const peer = peerOf(request.socket);
    const connection = peer === null ? undefined : open.get(peer);
    if (connection === undefined) return;
    connection.request = request;
    response.once("close", () => {
      if (connection.request !== request) return;
      connection.request = null;
      connection.since = performance.now();
    });
  });
  return () => {
    clearTimeout(later);
    if (refused > 0 || closed > 0) say("; the HTTP server stops");
  };
}

/**
 * Answer what node:http cannot read as a request (a method it does not
 * know, a header line without a colon, headers that never end) as the API
 * answers, `{"error": …}` saying what was wrong: node:http's own answer
 * is a status line and nothing else.
 */
function answerUnreadable(server: NodeServer): void {
  server.on("clientError", (error: Error & { code?: string }, socket: Socket) => {
    // A TLS handshake that failed or never came (no HTTP to answer in), a reset, or a connection
    // that had an answer already (a stream under way: an answer would land inside it): closed.
    const http = error.code?.startsWith("HPE_") || error.code === "ERR_HTTP_REQUEST_TIMEOUT";
    if (!http || !socket.writable || socket.bytesWritten > 0) {
      socket.destroy();
      return;
    }
    const [status, reason, said] = error.code === "ERR_HTTP_REQUEST_TIMEOUT"
      ? [
        408,
        "Request Timeout",
        `the request did not arrive in time: its headers must come within ${
          HEADERS_MS / 1000
        } s, and the whole request within ${REQUEST_MS / 1000} s; send it at once`,
      ]
      : error.code === "HPE_HEADER_OVERFLOW"
      ? [
        431,
        "Request Header Fields Too Large",
        "the request's headers are too large; send fewer or shorter ones",
      ]
      : [
        400,
        "Bad Request",
        'the request is not HTTP/1.1 this server can read: send a method the API takes (GET, HEAD, POST, PATCH, DELETE), a path, and headers one "Name: value" a line',
      ];
    const body = JSON.stringify({ error: said });
    socket.end(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${
        new TextEncoder().encode(body).length
      }\r\nConnection: close\r\n\r\n${body}`,
    );
  });
}

/**
 * Connect to the server every WATCH_MS, and call `deaf` if it does not
 * take the connection within ACCEPT_WAIT_MS (refused over the cap counts
 * as taken). A check that cannot connect (no descriptor here either)
 * waits for the next.
 */
function watch(addr: AddressInfo, door: Door, deaf: (why: string) => void): () => void {
  let checking = false;
  const timer = setInterval(async () => {
    if (checking) return;
    checking = true;
    let conn: Deno.TcpConn | null = null;
    let timeout: ReturnType<typeof setTimeout> | undefined;
    try {
      const taken = new Promise<boolean>((resolve) => {
        door.onAccept = () => resolve(true);
        timeout = setTimeout(() => resolve(false), ACCEPT_WAIT_MS);
      });
      conn = await Deno.connect({ hostname: addr.address, port: addr.port });
      door.checks.add(conn.localAddr.port);
      if (!await taken) {
        deaf(
          "the HTTP listener takes no more connections (node:http stops for good once an accept fails for want of a descriptor); raise the open-file limit (LimitNOFILE=) or lower http.max_connections",
        );
      }
    } catch {
      // No descriptor to check with: the next turn tries again.
    } finally {
      clearTimeout(timeout);
      door.onAccept = null;
      if (conn !== null) {
        door.checks.delete(conn.localAddr.port);
        conn.close();
      }
      checking = false;
    }
  }, WATCH_MS);
  return () => clearInterval(timer);
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

/**
 * RFC 9112 §3.2: a request with more than one Host is answered 400. Hono
 * never sees them apart (node:http joins or drops the copies), and which
 * one names the target is exactly what a proxy ahead of us and this
 * server could read differently. The connection is closed after the answer.
 */
function oneHost(listener: (req: IncomingMessage, res: ServerResponse) => void) {
  return (req: IncomingMessage, res: ServerResponse) => {
    let hosts = 0;
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      if (req.rawHeaders[i].toLowerCase() === "host") hosts++;
    }
    if (hosts <= 1) return listener(req, res);
    const body = new TextEncoder().encode(JSON.stringify({
      error: `the request has ${hosts} Host headers; HTTP allows one (RFC 9112, section 3.2)`,
    }));
    res.writeHead(400, {
      "Content-Type": "application/json",
      "Content-Length": body.length,
      Connection: "close",
    });
    res.end(body);
  };
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
export type ServeDeps = Omit<HttpDeps, "tokens" | "closing" | "changeSettlesMs"> & {
  /** The user the service runs as (Deno.uid()): root may not listen without a token (listen.ts). */
  uid: number | null;
};

/**
 * Listen on `http.listen`. Throws ValidationError (exit 2) for a malformed
 * address, an unreadable token or TLS file, or no token where one is
 * needed: a reachable address, or a service run as root. `onTokens` receives the token values before anything can echo
 * them, for redaction.
 */
export async function startHttpServer(
  settings: Settings,
  deps: ServeDeps,
  onTokens: (values: string[]) => void = () => {},
): Promise<HttpListener> {
  const loaded = await loadTokens(settings);
  onTokens(loaded.map((t) => t.token));
  const tokens = new Tokens(loaded);
  const plan = planListen(settings["http.listen"], tokens.configured, deps.uid);
  const tls = await readTls(settings);
  const closing = new AbortController();
  const app = buildHttpApp({
    ...deps,
    tokens,
    closing: closing.signal,
    changeSettlesMs: changeSettles(settings["jobsmanager.reload_interval"] * 1000),
  });
  const listener = getRequestListener(app.fetch, {
    // Deno's own Request and Response, not the adaptor's stand-ins: this thread's other code sees the same.
    overrideGlobalObjects: false,
    errorHandler: unreadable,
    // A request without Host (HTTP/1.0: a plain health check) is taken as for this address.
    hostname: plan.hostname.includes(":") ? `[${plan.hostname}]` : plan.hostname,
  });
  const options = { connectionsCheckingInterval: CHECK_MS };
  const handle = oneHost(listener);
  const server = tls
    ? createHttpsServer({ ...tls, ...options, handshakeTimeout: HEADERS_MS }, handle)
    : createHttpServer(options, handle);
  const door = new Door();
  const stopSaying = guard(server, settings["http.max_connections"], door);
  answerUnreadable(server);
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
  const deaf = Promise.withResolvers<string>();
  const stopWatching = watch(addr, door, deaf.resolve);
  return {
    url,
    deaf: deaf.promise,
    async close() {
      stopWatching();
      stopSaying();
      // Live streams (log tail, runs) end first, or shutdown would wait for them.
      closing.abort();
      const closed = new Promise((resolve) => server.close(resolve));
      server.closeIdleConnections();
      // Connections that never sent a whole request are not idle to node:http: cut after the grace.
      const cut = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
      await closed;
      clearTimeout(cut);
    },
  };
}
