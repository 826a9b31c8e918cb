/**
 * Where the HTTP side listens, and whether it may: without a token only a
 * loopback address is allowed, so an unauthenticated API is never reachable
 * from another machine, and never by a service run as root, whose API would
 * make every local user root.
 */
import { ValidationError } from "../errors.ts";

export interface ListenPlan {
  hostname: string;
  port: number;
  /** True when the address is reachable only from this machine. */
  loopback: boolean;
}

const LOOPBACK_NAMES = ["localhost", "::1"];

export function isLoopback(hostname: string): boolean {
  return LOOPBACK_NAMES.includes(hostname.toLowerCase()) || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/**
 * `http.listen` as HOST:PORT, [IPv6]:PORT or :PORT. A bare port means every
 * interface when tokens guard it, and loopback when none does. `uid` is the
 * user the service runs as (Deno.uid(); null where there is none).
 */
export function planListen(listen: string, hasTokens: boolean, uid: number | null): ListenPlan {
  const match = /^(?:\[([^\]]+)\]|([^:\[\]]*)):(\d{1,5})$/.exec(listen.trim());
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) {
    throw new ValidationError(
      "http.listen",
      `http.listen: ${
        JSON.stringify(listen)
      } is not valid (expected HOST:PORT, [IPv6]:PORT or :PORT, e.g. "127.0.0.1:8080")`,
    );
  }
  const host = match[1] ?? match[2];
  const hostname = host === "" ? (hasTokens ? "0.0.0.0" : "127.0.0.1") : host;
  const loopback = host === "" ? !hasTokens : isLoopback(host);
  if (!loopback && !hasTokens) {
    throw new ValidationError(
      "http.listen",
      `http.listen: ${
        JSON.stringify(listen)
      } is reachable from other machines, but no token is configured, so anyone there could change jobs; add a token (http.tokens, or JM_HTTP_TOKEN) or listen on 127.0.0.1`,
    );
  }
  // Without a token every caller is admin, and an admin's job runs as the service's user: as
  // root, any local user (and any job run as another user, which sees JM_HTTP_LISTEN) is root.
  if (!hasTokens && uid === 0) {
    throw new ValidationError(
      "http.listen",
      `http.listen: ${
        JSON.stringify(listen)
      } has no token, and the service runs as root: every local user, and every job run as another user, could add a job through the API and have it run as root; add a token (JM_HTTP_TOKEN or http.tokens, e.g. one made by \`openssl rand -hex 32\`) or run the service as another user`,
    );
  }
  return { hostname, port, loopback };
}
