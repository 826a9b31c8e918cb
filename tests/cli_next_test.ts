/**
 * `job next` previews a schedule before any job has it (issue 8, point 9):
 * `--cron` or the field options, with `--timezone`, `--from` and `-n`,
 * print what the same schedule prints once saved; an id together with a
 * schedule is refused; a preview creates no database.
 */
import { assertEquals } from "./assert.ts";
import { BACKENDS, cli, freshDatabase, jm } from "./helpers.ts";

const FROM = ["--from", "2026-03-28T00:00:00Z", "-n", "3"];
const BERLIN = ["--minute", "30", "--hour", "2", "--timezone", "Europe/Berlin"];
const FIRES = [
  "  Sat 2026-03-28 02:30:00 +01:00  Europe/Berlin   2026-03-28T01:30:00Z",
  "  Sun 2026-03-29 03:00:00 +02:00  Europe/Berlin   2026-03-29T01:00:00Z",
  "  Mon 2026-03-30 02:30:00 +02:00  Europe/Berlin   2026-03-30T00:30:00Z",
];

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: job next previews a schedule as job next shows the saved job`, async () => {
    await using db = await freshDatabase(backend);
    assertEquals((await jm(db, "job", "add", "b", "--command", "true", ...BERLIN)).code, 0);
    const saved = await jm(db, "job", "next", "b", ...FROM);
    assertEquals(saved.stdout.split("\n").slice(1, 4), FIRES);
    for (
      const schedule of [BERLIN, ["--cron", "30 2 * * *", "--timezone", "Europe/Berlin"]]
    ) {
      const preview = await jm(db, "job", "next", ...schedule, ...FROM);
      assertEquals(preview, {
        code: 0,
        stdout: [
          "next 3 fires of schedule '0 30 2 * * *' after 2026-03-28T00:00:00.000Z (Europe/Berlin, then UTC):",
          ...FIRES,
          "",
        ].join("\n"),
        stderr: "",
      });
    }
    const json = JSON.parse((await jm(db, "--json", "job", "next", ...BERLIN, ...FROM)).stdout);
    const savedJson = JSON.parse((await jm(db, "--json", "job", "next", "b", ...FROM)).stdout);
    assertEquals(json, { ...savedJson, id: null });
    // Nothing was saved by the previews.
    const list = JSON.parse((await jm(db, "--json", "job", "list")).stdout);
    assertEquals(list.map((j: { id: string }) => j.id), ["b"]);
    // A job that runs only after another: no schedule, and what it follows instead.
    assertEquals(
      (await jm(db, "job", "add", "f", "--command", "true", "--after", "b:always")).code,
      0,
    );
    const follower = JSON.parse((await jm(db, "--json", "job", "next", "f")).stdout);
    assertEquals(
      [follower.schedule, follower.after_job, follower.after_outcome, follower.next],
      [null, "b", "always", []],
    );
    assertEquals([savedJson.after_job, savedJson.after_outcome], [null, null]);
  });
}

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: job next of a disabled job says its fires are once enabled, as job add does`, async () => {
    await using db = await freshDatabase(backend);
    const add = ["job", "add", "off", "--command", "true", ...BERLIN, "--disabled"];
    assertEquals((await jm(db, ...add)).code, 0);
    assertEquals(await jm(db, "job", "next", "off", ...FROM), {
      code: 0,
      stdout: [
        "next 3 fires of 'off' (once enabled) after 2026-03-28T00:00:00.000Z (Europe/Berlin, then UTC):",
        ...FIRES,
        "",
      ].join("\n"),
      stderr: "",
    });
    const off = JSON.parse((await jm(db, "--json", "job", "next", "off", ...FROM)).stdout);
    assertEquals([off.enabled, off.next.length], [false, 3]);
    assertEquals((await jm(db, "job", "enable", "off")).code, 0);
    const on = await jm(db, "job", "next", "off", ...FROM);
    assertEquals(on.stdout.split("\n")[0].includes("once enabled"), false, on.stdout);
    const json = JSON.parse((await jm(db, "--json", "job", "next", "off", ...FROM)).stdout);
    assertEquals(json.enabled, true);
  });
}

Deno.test("cli: job next -n 1 says 'next 1 fire'", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-cli-next-" });
  try {
    const args = ["job", "next", ...BERLIN, "--from", "2026-03-28T00:00:00Z", "-n", "1"];
    assertEquals(await cli(args, { cwd: dir }), {
      code: 0,
      stdout: [
        "next 1 fire of schedule '0 30 2 * * *' after 2026-03-28T00:00:00.000Z (Europe/Berlin, then UTC):",
        FIRES[0],
        "",
      ].join("\n"),
      stderr: "",
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: job next refuses an id with a schedule, or neither, and checks the schedule as job add does", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-cli-next-" });
  try {
    const run = (...args: string[]) => cli(["job", "next", ...args], { cwd: dir });
    for (
      const [args, error] of [
        [
          ["b", "--hour", "3"],
          "job next: give a job id or a schedule (--cron, --minute, …, --timezone), not both",
        ],
        [
          ["b", "--timezone", "UTC"],
          "job next: give a job id or a schedule (--cron, --minute, …, --timezone), not both",
        ],
        [
          [],
          "job next: give a job id, or a schedule to preview (--cron '…' or --minute … --hour …)",
        ],
        [["--minute", "61"], "minute: '61' is out of range (allowed 0-59)"],
        [
          ["--timezone", "Mars/Olympus"],
          "schedule: missing (give --cron 'm h dom mon dow' or at least one of --second --minute --hour --day --month --day-of-week, or --after JOB for a job that runs only after another)",
        ],
      ] as const
    ) {
      assertEquals(
        await run(...args),
        { code: 2, stdout: "", stderr: `jobsmanager: ${error}\n` },
        args.join(" "),
      );
    }
    // A preview without --timezone, and no database here: the CLI's zone, and no file made.
    const local = await cli(["job", "next", "--hour", "3", "-n", "1"], {
      cwd: dir,
      env: { TZ: "Asia/Tokyo" },
    });
    assertEquals([local.code, local.stderr], [0, ""]);
    assertEquals(
      local.stdout.split("\n")[0].endsWith("(local zone, Asia/Tokyo, then UTC):"),
      true,
      local.stdout,
    );
    assertEquals([...Deno.readDirSync(dir)], [], "a preview creates no database");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
