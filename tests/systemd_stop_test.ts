/** `serve` under systemd warns when the unit's TimeoutStopSec is shorter than its stop budget. */
import { assertEquals } from "./assert.ts";
import { parseTimespan, stopTimeoutWarning, unitOf } from "../src/daemon/systemd_stop.ts";
import { defaultSettings } from "../src/config/config.ts";

Deno.test("systemd stop: the unit is read from /proc/self/cgroup", () => {
  assertEquals(unitOf("0::/system.slice/jobsmanager.service\n"), "jobsmanager.service");
  assertEquals(
    unitOf("12:pids:/system.slice/jm@2.service\n0::/system.slice/jm@2.service\n"),
    "jm@2.service",
  );
  assertEquals(unitOf("0::/user.slice/user-1000.slice/session-3.scope\n"), null);
});

Deno.test("systemd stop: time spans as systemctl show prints them", () => {
  assertEquals(parseTimespan("40s\n"), 40_000);
  assertEquals(parseTimespan("1min 30s"), 90_000);
  assertEquals(parseTimespan("1min 500ms"), 60_500);
  assertEquals(parseTimespan("infinity"), Infinity);
  assertEquals(parseTimespan("soon"), null);
});

Deno.test("systemd stop: a TimeoutStopSec below shutdown_timeout + kill_grace + 5 s is named, with the fix", () => {
  const settings = defaultSettings();
  // The defaults: 25 + 5 + 5 = 35 s; the shipped unit's 40 s leaves room.
  assertEquals(stopTimeoutWarning(settings, "jobsmanager.service", 40_000), null);
  assertEquals(stopTimeoutWarning(settings, "jobsmanager.service", Infinity), null);
  assertEquals(
    stopTimeoutWarning(
      { ...settings, "jobsmanager.shutdown_timeout": 120 },
      "jobsmanager.service",
      40_000,
    ),
    "jobsmanager.service has TimeoutStopSec=40 s, less than this service may take to stop (jobsmanager.shutdown_timeout 120 s + kill_grace 5 s + 5 s = 130 s): systemd would kill it before it records its runs interrupted; raise TimeoutStopSec to at least 135 s (systemctl edit jobsmanager.service), or lower those settings",
  );
});
