/** Who is on the other end of a request, for the log and for the records that name a caller. */
import type { Context } from "hono";
import { getConnInfo } from "@hono/node-server/conninfo";

/**
 * The client's address, or null where there is none to name: not served by
 * node:http (`app.request` in a test), or asked after the connection closed
 * (a closed socket no longer says where it was, so ask before it may close).
 */
export function remoteAddress(c: Context): string | null {
  try {
    return getConnInfo(c).remote.address ?? null;
  } catch {
    return null;
  }
}
