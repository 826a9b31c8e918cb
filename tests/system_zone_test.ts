/**
 * This machine's zone, the default of jobs without one when no service
 * reports its own: the IANA name ICU reads from TZ (or /etc/localtime),
 * as ICU spells it, and UTC for GMT, which is no zone name by itself.
 */
import { assertEquals } from "./assert.ts";

const TIME = new URL("../src/domain/time.ts", import.meta.url).href;

async function zoneWith(tz: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", `import { systemTimezone } from "${TIME}"; console.log(systemTimezone());`],
    env: { TZ: tz },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(new TextDecoder().decode(out.stderr), "");
  return new TextDecoder().decode(out.stdout).trim();
}

Deno.test("systemTimezone: the zone TZ names, as ICU spells it", async () => {
  assertEquals(
    await Promise.all(
      ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "US/Eastern", "Etc/UTC", "GMT"].map(
        zoneWith,
      ),
    ),
    ["Europe/Berlin", "America/New_York", "Asia/Calcutta", "America/New_York", "UTC", "UTC"],
  );
});

Deno.test("systemTimezone: an empty TZ is UTC, as POSIX reads it (ICU names it Etc/Unknown)", async () => {
  assertEquals(await zoneWith(""), "UTC");
});
