/**
 * This machine's zone, the default of jobs without one when no service
 * reports its own: the IANA name ICU reads from TZ (or /etc/localtime),
 * as ICU spells it, and UTC for GMT, which is no zone name by itself.
 */
import { assertEquals } from "./assert.ts";
import { cli, freshDatabase, serveUntilLoaded } from "./helpers.ts";

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

Deno.test("systemTimezone: a TZ naming a zoneinfo file, or a link to one, is that zone (ICU took it for UTC)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-test-" });
  try {
    await Deno.symlink("/usr/share/zoneinfo/Asia/Tokyo", `${dir}/localtime`);
    // A tree of its own (NixOS keeps one in its store), linked to as /etc/localtime is.
    await Deno.mkdir(`${dir}/share/zoneinfo/America`, { recursive: true });
    await Deno.copyFile("/usr/share/zoneinfo/America/Lima", `${dir}/share/zoneinfo/America/Lima`);
    await Deno.symlink(`${dir}/share/zoneinfo/America/Lima`, `${dir}/nix-localtime`);
    assertEquals(
      await Promise.all(
        [
          "/usr/share/zoneinfo/Asia/Tokyo",
          ":/usr/share/zoneinfo/posix/Europe/Paris",
          "/usr/share/zoneinfo/../zoneinfo/Asia/Tokyo",
          `:${dir}/localtime`,
          `:${dir}/nix-localtime`,
          ":Asia/Tokyo",
        ].map(zoneWith),
      ),
      ["Asia/Tokyo", "Europe/Paris", "Asia/Tokyo", "Asia/Tokyo", "America/Lima", "Asia/Tokyo"],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("systemTimezone: a TZ that names no zone it reads (a POSIX rule, a misspelled name) is UTC, and a command using it says so", async () => {
  const rule = "CET-1CEST,M3.5.0,M10.5.0/3";
  assertEquals(await Promise.all([rule, "Asia/Tokyoo"].map(zoneWith)), ["UTC", "UTC"]);
  const next = await cli(["job", "next", "--cron", "0 9 * * *", "--count", "1"], {
    env: { TZ: rule },
  });
  assertEquals([next.code, next.stderr], [
    0,
    `jobsmanager: warning: TZ="${rule}" names no time zone jobsmanager can read, so it uses UTC (it reads IANA names such as Europe/Berlin, and the files under /usr/share/zoneinfo); give TZ a zone's name, or set jobsmanager.timezone\n`,
  ]);
  // A zone configured: TZ is not asked, and nothing is said.
  const configured = await cli(["job", "next", "--cron", "0 9 * * *", "--count", "1"], {
    env: { TZ: rule, JM_TIMEZONE: "Europe/Berlin" },
  });
  assertEquals([configured.code, configured.stderr], [0, ""]);
});

Deno.test("systemTimezone: serve on a TZ it cannot read warns at its start that jobs without a zone fire at UTC's instants", async () => {
  await using db = await freshDatabase("sqlite");
  const stderr = await serveUntilLoaded(["--database", db.url], {
    cwd: db.dir,
    env: { TZ: "JST-9" },
  });
  const said = stderr.split("\n").filter((l) => l.includes("TZ=")).map((l) => JSON.parse(l));
  assertEquals(said.map((r) => [r.level, r.message]), [[
    "WARN",
    `TZ="JST-9" names no time zone jobsmanager can read, so it uses UTC (it reads IANA names such as Europe/Berlin, and the files under /usr/share/zoneinfo); give TZ a zone's name, or set jobsmanager.timezone; the jobs that name no zone fire at UTC's instants`,
  ]]);
});
