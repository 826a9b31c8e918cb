/**
 * Jobs without a zone are shown in the zone the service fires them in
 * (issue 8, point 4), and the CLI says which: `jobsmanager.timezone` when
 * configured, else the zone a live service reports in `jm_nodes`, else the
 * CLI's own. The CLI runs with TZ=America/New_York throughout, so its own
 * zone differs from every other.
 */
import { assertEquals, assertMatch } from "./assert.ts";
import {
  BACKENDS,
  cli,
  type CliResult,
  freshDatabase,
  saveNodes,
  serviceRow,
  type TestDatabase,
} from "./helpers.ts";

/** 09:00 every day in the zone it is read in. */
const ADD = ["job", "add", "nine", "--command", "true", "--cron", "0 9 * * *"];
const FROM = ["--from", "2026-01-05T00:00:00Z"];

function jm(
  db: TestDatabase,
  args: string[],
  env: Record<string, string> = {},
): Promise<CliResult> {
  return cli(["--database", db.url, ...args], {
    cwd: db.dir,
    env: { TZ: "America/New_York", ...env },
  });
}

async function stdout(db: TestDatabase, args: string[], env?: Record<string, string>) {
  const r = await jm(db, args, env);
  assertEquals(r.code, 0, r.stderr);
  return r.stdout;
}

/** What the CLI shows of job `nine`: its zone cell, `job next`'s heading and first fire, --json. */
async function shown(db: TestDatabase, env?: Record<string, string>) {
  const list = (await stdout(db, ["job", "list"], env)).split("\n")[1];
  const next = (await stdout(db, ["job", "next", "nine", "-n", "1", ...FROM], env)).split("\n");
  const json = JSON.parse(
    await stdout(db, ["--json", "job", "next", "nine", "-n", "1", ...FROM], env),
  );
  const show = (await stdout(db, ["job", "show", "nine"], env)).split("\n");
  const [listed] = JSON.parse(await stdout(db, ["--json", "job", "list"], env));
  const shownJson = JSON.parse(await stdout(db, ["--json", "job", "show", "nine"], env));
  return {
    zoneCell: /^nine +\S+ \S+ \S+ \S+ \S+ \S+ +(\(.*?\)) /.exec(list)?.[1],
    heading: next[0],
    first: next[1],
    json: [json.timezone, json.timezone_source, json.next],
    timezoneRow: show.find((l) => l.startsWith("timezone")),
    fires: show.find((l) => l.startsWith("next fires")),
    /** The zone it fires in, in `job list --json` and `job show --json`. */
    jsonZones: [listed.zone, shownJson.zone],
  };
}

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: a job without a zone is shown in the service's zone, saying which`, async () => {
    await using db = await freshDatabase(backend);
    const add = await jm(db, ADD);
    assertEquals(add.code, 0, add.stderr);
    // No config and no live service: the CLI's own zone, and it says so.
    assertEquals(add.stdout.split("\n")[1], "next fire (local zone, America/New_York):");
    assertEquals(await shown(db), {
      zoneCell: "(local zone, America/New_York)",
      heading:
        "next 1 fire of 'nine' after 2026-01-05T00:00:00.000Z (local zone, America/New_York, then UTC):",
      first: "  Mon 2026-01-05 09:00:00 -05:00  America/New_York   2026-01-05T14:00:00Z",
      json: ["America/New_York", "local", ["2026-01-05T14:00:00.000Z"]],
      timezoneRow: "timezone            (local zone, America/New_York)",
      fires: "next fires (local zone, America/New_York):",
      jsonZones: ["America/New_York", "America/New_York"],
    });

    // A stale service's zone does not count; a live one's does.
    await saveNodes(
      db,
      serviceRow("gone", { timezone: "Asia/Tokyo", agoMs: 60_000 }),
      serviceRow("live", { timezone: "UTC" }),
    );
    assertEquals(await shown(db), {
      zoneCell: "(service zone, UTC)",
      heading:
        "next 1 fire of 'nine' after 2026-01-05T00:00:00.000Z (service zone, UTC, then UTC):",
      first: "  Mon 2026-01-05 09:00:00 +00:00  UTC   2026-01-05T09:00:00Z",
      json: ["UTC", "service", ["2026-01-05T09:00:00.000Z"]],
      timezoneRow: "timezone            (service zone, UTC)",
      fires: "next fires (service zone, UTC):",
      jsonZones: ["UTC", "UTC"],
    });
    const status = await jm(db, ["status"]);
    assertEquals(status.code, 0, status.stderr);
    assertMatch(
      status.stdout,
      /\nnext fires \(jobs without a zone: service zone, UTC\):\n +AT +JOB\n +\w{3} \S+ 09:00:00 \+00:00 +nine\n/,
    );

    // The configured zone wins over the service's.
    assertEquals((await shown(db, { JM_TIMEZONE: "Asia/Kolkata" })).json, [
      "Asia/Kolkata",
      "configured",
      ["2026-01-05T03:30:00.000Z"],
    ]);

    // A job with a zone of its own is shown in it, as before.
    await stdout(db, ["job", "update", "nine", "--timezone", "Europe/Berlin"]);
    const own = await shown(db);
    assertEquals([own.zoneCell, own.heading, own.json[1], own.fires, own.jsonZones], [
      undefined,
      "next 1 fire of 'nine' after 2026-01-05T00:00:00.000Z (Europe/Berlin, then UTC):",
      "job",
      "next fires:",
      ["Europe/Berlin", "Europe/Berlin"],
    ]);
  });
}

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: a zone typed in another case is stored as the zone database spells it; an alias as typed`, async () => {
    await using db = await freshDatabase(backend);
    for (const [id, zone] of [["a", "europe/berlin"], ["b", "utc"], ["c", "Asia/Calcutta"]]) {
      const added = await jm(db, [
        "job",
        "add",
        id,
        "--command",
        "true",
        "--hour",
        "3",
        "--timezone",
        zone,
      ]);
      assertEquals(added.code, 0, added.stderr);
    }
    const jobs = JSON.parse((await jm(db, ["--json", "job", "list"])).stdout);
    assertEquals(
      jobs.map((j: { id: string; timezone: string }) => [j.id, j.timezone]),
      [["a", "Europe/Berlin"], ["b", "UTC"], ["c", "Asia/Calcutta"]],
    );
  });
}
