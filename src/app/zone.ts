/**
 * The zone of jobs that name none, as every command shows them: the zone
 * the service fires them in, not the zone of the machine the CLI runs on.
 */
import type { Node } from "../domain/node.ts";
import type { NodeStore } from "../store/store.ts";
import { liveServices } from "./status.ts";

/** Where the zone came from: the config, a live service's report, or this machine. */
export type ZoneSource = "configured" | "service" | "local";

export interface DefaultZone {
  /** An IANA zone name. */
  name: string;
  source: ZoneSource;
}

/**
 * `configured` (`jobsmanager.timezone`) when set; else the zone the live
 * service with the latest heartbeat reports (`nodes` null: there is no
 * database to ask); else `local`.
 */
export async function defaultZone(
  nodes: NodeStore | null,
  options: { configured: string; local: string; now: number; heartbeatMs: number },
): Promise<DefaultZone> {
  // A configured zone needs no services read.
  const asked = options.configured === "" ? nodes : null;
  return zoneAmong(asked === null ? [] : await liveServices(asked, options), options);
}

/** The same, from the services already known to be live. */
export function zoneAmong(
  live: Node[],
  options: { configured: string; local: string },
): DefaultZone {
  if (options.configured !== "") return { name: options.configured, source: "configured" };
  const reported = live.find((n) => n.timezone)?.timezone;
  return reported
    ? { name: reported, source: "service" }
    : { name: options.local, source: "local" };
}

/** The zone with where it comes from, in words: `Asia/Tokyo (the zone the live service reports)`. */
export function zoneInWords(zone: DefaultZone): string {
  const whence: Record<ZoneSource, string> = {
    configured: "jobsmanager.timezone",
    service: "the zone the live service reports",
    local:
      "this machine's: no jobsmanager.timezone is configured here and no service is live to report its own",
  };
  return `${zone.name} (${whence[zone.source]})`;
}
