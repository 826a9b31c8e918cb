/** `serve` under systemd warns when the unit's TimeoutStopSec is shorter than its stop budget. */
import { assertEquals } from "./assert.ts";
import {
  parseTimespan,
  stopTimeoutWarning,
  unitOf,
  unitStopTimeout,
} from "../src/daemon/systemd_stop.ts";
import { defaultSettings } from "../src/config/config.ts";
import { tempDir } from "./notify_fixtures.ts";

/** What `unitStopTimeout` makes of a systemctl that is the shell script `body`. */
async function askedOf(body: string): Promise<{ ms: number } | { failed: string }> {
  await using dir = await tempDir();
  const systemctl = `${dir.path}/systemctl`;
  await Deno.writeTextFile(systemctl, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  const asked = await unitStopTimeout("jobsmanager.service", systemctl);
  return "failed" in asked ? { failed: asked.failed.replace(systemctl, "systemctl") } : asked;
}

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

Deno.test("systemd stop: the unit's TimeoutStopSec is asked of systemctl, or why not is said", async () => {
  assertEquals(
    await askedOf(
      '[ "$*" = "show --property=TimeoutStopUSec --value jobsmanager.service" ] && echo 1min 30s',
    ),
    {
      ms: 90_000,
    },
  );
  assertEquals(await askedOf("echo soon"), { failed: 'systemctl printed "soon", not a time span' });
  assertEquals(await askedOf("exit 1"), { failed: "systemctl exited with 1" });
  assertEquals(await askedOf("kill -KILL $$"), { failed: "systemctl was killed by SIGKILL" });
  // A real-time signal: Deno's output() rejected it ("Invalid signal: 40").
  assertEquals(await askedOf("kill -40 $$"), { failed: "systemctl was killed by SIGRTMIN+6" });
});
