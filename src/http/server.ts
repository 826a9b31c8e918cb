/**
 * The socket side: plan the address from `http.listen` and the tokens,
 * refuse an open API on a reachable address, serve HTTP or HTTPS with
 * Deno's own server, and stop cleanly.
 */
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
  const { promise: listening, resolve } = Promise.withResolvers<Deno.NetAddr>();
  let server: Deno.HttpServer;
  try {
    server = Deno.serve({
      hostname: plan.hostname,
      port: plan.port,
      ...(tls ?? {}),
      onListen: (addr) => resolve(addr as Deno.NetAddr),
    }, app.fetch);
  } catch (error) {
    throw new RuntimeError(
      `http.listen: cannot listen on ${plan.hostname}:${plan.port}: ${
        (error as Error).message
      }; choose another address or port, or stop what holds it`,
    );
  }
  const addr = await listening;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
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
      await server.shutdown();
    },
  };
}
