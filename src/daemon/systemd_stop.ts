/**
 * Whether the unit's `TimeoutStopSec` leaves `serve` its stop budget
 * (`shutdown_timeout` + `kill_grace` + 5 s). systemd passes no stop
 * timeout in the environment, so a service started by it (`INVOCATION_ID`
 * set) asks it: its unit from /proc/self/cgroup, the timeout from
 * `systemctl show`. A limit too short means systemd SIGKILLs the service
 * before it records its runs `interrupted`: said at the start, not found
 * out at the next restart.
 */
import type { Settings } from "../config/config.ts";
import { stopBudgetMs } from "./boot.ts";
import { errorMessage } from "../errors.ts";
import { log } from "./log.ts";
import { commandStatus } from "./native_spawn.ts";

const SYSTEMCTL_TIMEOUT_MS = 2000;

/** The service unit in a /proc/self/cgroup text (`0::/system.slice/jobsmanager.service`), or null. */
export function unitOf(cgroup: string): string | null {
  for (const line of cgroup.split("\n")) {
    const path = line.split(":").slice(2).join(":");
    const unit = path.split("/").reverse().find((part) => part.endsWith(".service"));
    if (unit !== undefined) return unit;
  }
  return null;
}

const UNITS_MS: Record<string, number> = {
  us: 0.001,
  ms: 1,
  s: 1000,
  min: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** A systemd time span as `systemctl show` prints it (`40s`, `1min 30s`, `infinity`) in ms; null when not one. */
export function parseTimespan(text: string): number | null {
  const s = text.trim();
  if (s === "infinity") return Infinity;
  const parts = [...s.matchAll(/(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d|w)(?![a-z])/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join(" ") !== s.replace(/\s+/g, " ")) {
    return null;
  }
  return parts.reduce((sum, [, n, unit]) => sum + Number(n) * UNITS_MS[unit], 0);
}

/** The warning when `limitMs` (systemd's) is shorter than the service's stop budget; null when it is not. */
export function stopTimeoutWarning(
  settings: Settings,
  unit: string,
  limitMs: number,
): string | null {
  const budget = stopBudgetMs(settings);
  if (limitMs >= budget) return null;
  const seconds = (ms: number) => `${Math.ceil(ms / 1000)} s`;
  return `${unit} has TimeoutStopSec=${
    seconds(limitMs)
  }, less than this service may take to stop (jobsmanager.shutdown_timeout ${
    settings["jobsmanager.shutdown_timeout"]
  } s + kill_grace ${settings["jobsmanager.kill_grace"]} s + 5 s = ${
    seconds(budget)
  }): systemd would kill it before it records its runs interrupted; raise TimeoutStopSec to at least ${
    seconds(budget + 5000)
  } (systemctl edit ${unit}), or lower those settings`;
}

/**
 * The unit's TimeoutStopSec in ms, asked of `systemctl show`, or why it
 * could not be had (no systemctl, no D-Bus, systemctl killed).
 */
export async function unitStopTimeout(
  unit: string,
  systemctl = "systemctl",
): Promise<{ ms: number } | { failed: string }> {
  try {
    const child = new Deno.Command(systemctl, {
      args: ["show", "--property=TimeoutStopUSec", "--value", unit],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
      signal: AbortSignal.timeout(SYSTEMCTL_TIMEOUT_MS),
    }).spawn();
    // Not `output()`: it rejects when a real-time signal ended systemctl.
    const [status, printed] = await Promise.all([
      commandStatus(child),
      new Response(child.stdout).text(),
    ]);
    if (status.signal !== null) return { failed: `${systemctl} was killed by ${status.signal}` };
    if (!status.success) return { failed: `${systemctl} exited with ${status.code}` };
    const ms = parseTimespan(printed);
    if (ms === null) {
      return { failed: `${systemctl} printed ${JSON.stringify(printed.trim())}, not a time span` };
    }
    return { ms };
  } catch (error) {
    return { failed: `${systemctl}: ${errorMessage(error)}` };
  }
}

/**
 * Under systemd, warn when the unit's stop timeout is shorter than the stop
 * budget; quiet otherwise, but at debug level when systemctl did not say it
 * (the unit's comment and the README say to keep them in step).
 */
export async function checkStopTimeout(settings: Settings): Promise<void> {
  if (!Deno.env.get("INVOCATION_ID")) return;
  const unit = unitOf(await Deno.readTextFile("/proc/self/cgroup").catch(() => ""));
  if (unit === null) return;
  const limit = await unitStopTimeout(unit);
  if ("failed" in limit) {
    log("service").debug("{unit}'s TimeoutStopSec is not checked: {why}", {
      unit,
      why: limit.failed,
    });
    return;
  }
  const warning = stopTimeoutWarning(settings, unit, limit.ms);
  if (warning !== null) log("service").warn(warning.replaceAll("{", "{{"));
}
