/**
 * The real CLI end to end, as a subprocess, on every backend: the happy
 * paths of every job command (each write checked against `jm_jobs` and its
 * one reload marker, each test on a fresh database of its own), secrets
 * kept out of every output, the original project's `etc/global.json`, and
 * the program's own flags. Bad input is in cli_bad_input_test.ts.
 */
import { originalGlobalJson } from "./fixtures.ts";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import type { Job } from "../src/domain/job.ts";
import { describeTarget } from "../src/store/target.ts";
import { MIGRATIONS, SCHEMA_VERSION } from "../src/store/migrations.ts";
import { VERSION } from "../src/version.ts";
import {
  type Backend,
  BACKENDS,
  cli,
  type CliResult,
  freshDatabase,
  mysqlTest,
  rawQuery,
  type TestDatabase,
  withExpiredAccount,
  writeOlderNode,
} from "./helpers.ts";

type Row = Record<string, unknown>;

/** What `db migrate` reports applying to an empty database. */
const EVERY_VERSION = MIGRATIONS.map((m) => m.version).join(", ");

const JOB_FIELDS = [
  "id",
  "command",
  "second",
  "minute",
  "hour",
  "day",
  "month",
  "day_of_week",
  "timezone",
  "timeout",
  "enabled",
  "max_instances",
  "coalesce",
  "misfire_grace_time",
  "env",
  "cwd",
  "description",
  "retries",
  "retry_delay",
  "retry_max_delay",
  "retry_on",
  "retry_overlap",
  "after_job",
  "after_outcome",
  "created_at",
  "updated_at",
  // Notifications (issue 13).
  "on_failure",
  "on_failure_url",
  "on_recovery",
  "on_recovery_url",
  "on_success",
  "on_success_url",
  "alert_after",
  "user",
].sort();

/** A jm_jobs row as the Job its snapshots hold (written here, not borrowed from src). */
function toJob(row: Row): Job {
  const orNull = <T>(v: unknown, f: (v: unknown) => T): T | null =>
    v === null || v === undefined ? null : f(v);
  return {
    id: String(row.id),
    command: String(row.command),
    second: String(row.second),
    minute: String(row.minute),
    hour: String(row.hour),
    day: String(row.day),
    month: String(row.month),
    day_of_week: String(row.day_of_week),
    timezone: orNull(row.timezone, String),
    timeout: Number(row.timeout),
    enabled: Number(row.enabled) === 1,
    max_instances: orNull(row.max_instances, Number),
    coalesce: orNull(row.coalesce, (v) => Number(v) === 1),
    misfire_grace_time: orNull(row.misfire_grace_time, Number),
    env: JSON.parse(String(row.env ?? "{}")),
    cwd: orNull(row.cwd, String),
    description: orNull(row.description, String),
    retries: Number(row.retries),
    retry_delay: Number(row.retry_delay),
    retry_max_delay: Number(row.retry_max_delay),
    retry_on: String(row.retry_on),
    retry_overlap: Number(row.retry_overlap) === 1,
    after_job: orNull(row.after_job, String),
    after_outcome: orNull(row.after_outcome, String) as Job["after_outcome"],
    created_at: Number(row.created_at),
    updated_at: Number(row.updated_at),
    // Notifications (issue 13).
    on_failure: orNull(row.on_failure, String),
    on_failure_url: orNull(row.on_failure_url, String),
    on_recovery: orNull(row.on_recovery, String),
    on_recovery_url: orNull(row.on_recovery_url, String),
    on_success: orNull(row.on_success, String),
    on_success_url: orNull(row.on_success_url, String),
    alert_after: orNull(row.alert_after, Number),
    user: orNull(row.user, String),
  };
}

/** A job as --json prints it: its times in ISO 8601. */
function asJson(job: Job): Record<string, unknown> {
  return {
    ...job,
    created_at: new Date(job.created_at).toISOString(),
    updated_at: new Date(job.updated_at).toISOString(),
  };
}

async function jobRows(db: TestDatabase): Promise<Map<string, Row>> {
  const rows = await rawQuery(db, "SELECT * FROM jm_jobs ORDER BY id");
  return new Map(rows.map((r) => [String(r.id), r]));
}

async function jobs(db: TestDatabase): Promise<Map<string, Job>> {
  const rows = await jobRows(db);
  return new Map([...rows].map(([id, row]) => [id, toJob(row)]));
}

async function markers(db: TestDatabase): Promise<Row[]> {
  return await rawQuery(db, "SELECT * FROM jm_update_info ORDER BY id");
}

function run(db: TestDatabase, args: string[]): Promise<CliResult> {
  return cli(["--database", db.url, ...args], { cwd: db.dir });
}

/** The line a write ends with while no service runs, as in every test here. */
function noService(db: TestDatabase): string {
  return `no live service uses ${
    describeTarget(db.target)
  }, so nothing applies this yet: start one with \`jobsmanager serve\` on this database, or point this command at the service's database with --database or --config\n`;
}

/** Run a command that must succeed silently on stderr; return its stdout. */
async function ok(db: TestDatabase, args: string[]): Promise<string> {
  const r = await run(db, args);
  assertEquals({ code: r.code, stderr: r.stderr }, { code: 0, stderr: "" }, args.join(" "));
  return r.stdout;
}

/** A job with field options, --timezone, --env twice, --cwd, --description and no timeout. */
const ADD_BERLIN = [
  "job",
  "add",
  "berlin",
  "--command",
  "echo hi",
  "--hour",
  "2",
  "--minute",
  "30",
  "--timezone",
  "Europe/Berlin",
  "--env",
  "A=1",
  "--env",
  "B=x=y",
  "--cwd",
  "/tmp",
  "--description",
  "nightly backup",
  "--timeout",
  "0",
];
/** A disabled job from a crontab line. */
const ADD_TICK = [
  "job",
  "add",
  "tick",
  "--command",
  "date",
  "--cron",
  "*/5 * * * 1-5",
  "--disabled",
];
/** The same job enabled and running `date -u`, as `job add tick --replace` leaves it. */
const ADD_TICK_ENABLED = ["job", "add", "tick", "--command", "date -u", "--cron", "*/5 * * * 1-5"];

/**
 * A fresh database on `backend` holding what these CLI commands add, so
 * each test starts from its own state and fails alone.
 */
async function databaseWith(backend: Backend, ...setup: string[][]): Promise<TestDatabase> {
  const db = await freshDatabase(backend);
  try {
    // Made here, so no command below is the one that creates it (and says so).
    const store = db.open();
    await store.migrate().finally(() => store.close());
    for (const args of setup) await ok(db, args);
  } catch (error) {
    await db[Symbol.asyncDispose]();
    throw new Error(`setting up the test failed: ${(error as Error).message}`);
  }
  return db;
}

interface Write {
  stdout: string;
  before: Job | null;
  after: Job | null;
  markerId: number;
}

/**
 * Run a write on job `id` and check the promise every write keeps: jm_jobs
 * changed for `id` only, and exactly one marker was added, pending, whose
 * snapshots are the row before and after.
 */
async function write(db: TestDatabase, id: string, args: string[]): Promise<Write> {
  const jobsBefore = await jobs(db);
  const markersBefore = await markers(db);
  const stdout = await ok(db, args);
  const jobsAfter = await jobs(db);
  const added = (await markers(db)).slice(markersBefore.length);
  assertEquals(added.length, 1, `one marker for ${args.join(" ")}`);
  const [marker] = added;
  const before = jobsBefore.get(id) ?? null;
  const after = jobsAfter.get(id) ?? null;
  assertEquals(Number(marker.updated), 0);
  assertEquals(marker.update_time, null);
  assertEquals(JSON.parse(String(marker.jobs_before_update)), before ? [before] : []);
  assertEquals(JSON.parse(String(marker.jobs_after_update)), after ? [after] : []);
  assertNotEqualJobs(before, after);
  jobsBefore.delete(id);
  jobsAfter.delete(id);
  assertEquals(jobsAfter, jobsBefore, "other jobs untouched");
  return { stdout, before, after, markerId: Number(marker.id) };
}

function assertNotEqualJobs(before: Job | null, after: Job | null): void {
  assert(JSON.stringify(before) !== JSON.stringify(after), "jm_jobs changed");
}

/** Run a command that must change nothing (no row, no marker); return its stdout. */
async function noWrite(db: TestDatabase, args: string[]): Promise<string> {
  const rowsBefore = await jobRows(db);
  const markersBefore = await markers(db);
  const stdout = await ok(db, args);
  assertEquals(await jobRows(db), rowsBefore);
  assertEquals(await markers(db), markersBefore);
  return stdout;
}

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: db migrate creates the schema, then reports it current`, async () => {
    await using db = await freshDatabase(backend);
    const description = describeTarget(db.target);
    assertEquals(await run(db, ["db", "migrate"]), {
      code: 0,
      stdout:
        `${description}: schema migrated from version 0 to ${SCHEMA_VERSION} (applied ${EVERY_VERSION})\n`,
      // A new SQLite file is made, and named; in a MySQL database, made by hand, the tables.
      stderr: db.target.kind === "sqlite"
        ? `jobsmanager: created a new, empty database ${db.target.path}; if the service uses another, point this command at it with --database or --config\n`
        : `jobsmanager: created jobsmanager's tables in the empty database ${description}; if the service uses another, point this command at it with --database or --config\n`,
    });
    assertEquals(
      await noWrite(db, ["db", "migrate"]),
      `${description}: schema already at version ${SCHEMA_VERSION}\n`,
    );
    assertEquals(JSON.parse(await noWrite(db, ["--json", "db", "migrate"])), {
      database: description,
      from: SCHEMA_VERSION,
      to: SCHEMA_VERSION,
      applied: [],
      created: [],
      version: SCHEMA_VERSION,
      services_left_behind: [],
    });
    assertEquals(await markers(db), []);
    // A table dropped by hand is created again, and named.
    await rawQuery(db, "DROP TABLE jm_nodes");
    assertEquals(
      await ok(db, ["db", "migrate"]),
      `${description}: created the missing table jm_nodes again, empty\n${description}: schema already at version ${SCHEMA_VERSION}\n`,
    );
  });

  Deno.test(`cli[${backend}]: job add with field options, --timezone, --env twice, --cwd, …`, async () => {
    // The schema only, so the write can be compared with the empty tables before it.
    await using db = await databaseWith(backend, ["db", "migrate"]);
    const w = await write(db, "berlin", ADD_BERLIN);
    const lines = w.stdout.split("\n");
    assertEquals(lines.slice(0, 2), [
      `added job 'berlin' (reload marker ${w.markerId})`,
      "next fire:",
    ]);
    assertMatch(lines[2], /^ {2}\w{3} \d{4}-\d\d-\d\d 02:30:00 \+0[12]:00 {2}Europe\/Berlin {3}/);
    const row = (await jobRows(db)).get("berlin")!;
    assertEquals(
      {
        ...row,
        enabled: Number(row.enabled),
        timeout: Number(row.timeout),
        retries: Number(row.retries),
        retry_delay: Number(row.retry_delay),
        retry_max_delay: Number(row.retry_max_delay),
        retry_overlap: Number(row.retry_overlap),
        created_at: undefined,
        updated_at: undefined,
        // Added enabled: owed its fires from that write on.
        enabled_at: Number(row.enabled_at) === Number(row.updated_at)
          ? "its updated_at"
          : row.enabled_at,
      },
      {
        id: "berlin",
        command: "echo hi",
        second: "0",
        minute: "30",
        hour: "2",
        day: "*",
        month: "*",
        day_of_week: "*",
        timezone: "Europe/Berlin",
        timeout: 0,
        enabled: 1,
        max_instances: null,
        coalesce: null,
        misfire_grace_time: null,
        env: JSON.stringify({ A: "1", B: "x=y" }),
        cwd: "/tmp",
        description: "nightly backup",
        retries: 0,
        retry_delay: 10,
        retry_max_delay: 3600,
        retry_on: "failed,timeout,error,lost",
        retry_overlap: 0,
        after_job: null,
        after_outcome: null,
        created_at: undefined,
        updated_at: undefined,
        enabled_at: "its updated_at",
        on_failure: null,
        on_failure_url: null,
        on_recovery: null,
        on_recovery_url: null,
        on_success: null,
        on_success_url: null,
        alert_after: null,
        user: null,
      },
    );
    assertEquals(w.after!.created_at, w.after!.updated_at);
    assert(Math.abs(w.after!.created_at - Date.now()) < 60_000, "created_at is now, in ms");
  });

  Deno.test(`cli[${backend}]: job add with --cron and --disabled, --json`, async () => {
    await using db = await databaseWith(backend, ADD_BERLIN);
    const w = await write(db, "tick", ["--json", ...ADD_TICK]);
    const out = JSON.parse(w.stdout);
    assertEquals(out.job, asJson(w.after!));
    assertEquals(out.marker_id, w.markerId);
    assertEquals(out.next.length, 1);
    const { second, minute, hour, day, month, day_of_week, enabled } = w.after!;
    assertEquals({ second, minute, hour, day, month, day_of_week, enabled }, {
      second: "0",
      minute: "*/5",
      hour: "*",
      day: "*",
      month: "*",
      day_of_week: "mon-fri",
      enabled: false,
    });
  });

  Deno.test(`cli[${backend}]: job add --replace replaces the job and keeps created_at`, async () => {
    await using db = await databaseWith(backend, ADD_BERLIN, ADD_TICK);
    const w = await write(db, "tick", [
      "job",
      "add",
      "tick",
      "--replace",
      "--command",
      "date -u",
      "--cron",
      "*/5 * * * 1-5",
    ]);
    assertEquals(w.stdout.split("\n")[0], `replaced job 'tick' (reload marker ${w.markerId})`);
    assertEquals(w.after, {
      ...w.before!,
      command: "date -u",
      enabled: true,
      updated_at: w.after!.updated_at,
    });
    assert(w.after!.updated_at >= w.before!.updated_at);
    // The same again writes nothing, and says so as `job update` does.
    const same = await noWrite(db, [...ADD_TICK_ENABLED, "--replace"]);
    assertEquals(same.split("\n")[0], "job 'tick' unchanged (the options given match it)");
    const json = JSON.parse(await noWrite(db, ["--json", ...ADD_TICK_ENABLED, "--replace"]));
    assertEquals([json.marker_id, json.job.command], [null, "date -u"]);
  });

  Deno.test(`cli[${backend}]: job list: a table with the ids; --json has every field`, async () => {
    await using db = await databaseWith(backend, ADD_BERLIN, ADD_TICK_ENABLED);
    const text = await noWrite(db, ["job", "list"]);
    const lines = text.trimEnd().split("\n");
    assertMatch(
      lines[0],
      /^ID +SCHEDULE \(s m h dom mon dow\) +ZONE +ENABLED +TIMEOUT +NEXT FIRE +COMMAND$/,
    );
    assertEquals(lines.length, 3);
    assertMatch(
      lines[1],
      /^berlin +0 30 2 \* \* \* +Europe\/Berlin +yes +none +\w{3} .* +echo hi$/,
    );
    assertMatch(
      lines[2],
      /^tick +0 \*\/5 \* \* \* mon-fri +\(.+\) +yes +60s +\w{3} .* +date -u$/,
    );
    const listed = JSON.parse(await noWrite(db, ["--json", "job", "list"]));
    assertEquals(listed.map((j: Job) => j.id), ["berlin", "tick"]);
    // Every field of the job, the zone it fires in, its next fire, and nothing is wrong with it.
    for (const job of listed) {
      assertEquals(
        Object.keys(job).sort(),
        [...JOB_FIELDS, "zone", "next", "invalid", "after_missing"].sort(),
      );
    }
    assertEquals(listed.map((j: { invalid: string | null }) => j.invalid), [null, null]);
    assertEquals(listed[0].zone, "Europe/Berlin");
    const stored = await jobs(db);
    assertEquals(
      listed.map((
        { next: _, zone: _z, invalid: _i, after_missing: _a, ...job }: Record<string, unknown>,
      ) => job),
      [
        asJson(stored.get("berlin")!),
        asJson(stored.get("tick")!),
      ],
    );
    for (const { next } of listed) assert(Date.parse(next) > Date.now(), next);
    assertMatch(listed[0].next, /^\d{4}-\d\d-\d\dT(00|01):30:00\.000Z$/);
  });

  Deno.test(`cli[${backend}]: job show: every field, and the next fires (--json with next)`, async () => {
    await using db = await databaseWith(backend, ADD_BERLIN);
    const text = await noWrite(db, ["job", "show", "berlin"]);
    for (
      const line of [
        "id                  berlin",
        "command             echo hi",
        "schedule            0 30 2 * * *   (second minute hour day month day_of_week)",
        "timezone            Europe/Berlin",
        "enabled             yes",
        "timeout             none",
        "max_instances       (service default: jobsmanager.max_instances)",
        "env                 A=1 B=x=y",
        "cwd                 /tmp",
        "description         nightly backup",
        "next fires:",
      ]
    ) {
      assert(text.split("\n").includes(line), `job show has ${JSON.stringify(line)}:\n${text}`);
    }
    assertEquals(
      text.trimEnd().split("\n").filter((l) => l.includes("Europe/Berlin   ")).length,
      5,
    );
    const shown = JSON.parse(await noWrite(db, ["--json", "job", "show", "berlin", "-n", "3"]));
    // Every job field plus `next` (other keys, such as recent runs, may follow).
    const job = Object.fromEntries(JOB_FIELDS.map((f) => [f, shown[f]]));
    assertEquals(job, asJson((await jobs(db)).get("berlin")!));
    const next: string[] = shown.next;
    assertEquals(next.length, 3);
    const times = next.map((s: string) => Date.parse(s));
    assert(times[0] > Date.now() && times[0] < times[1] && times[1] < times[2], next.join());
    for (const s of next) assertMatch(s, /^\d{4}-\d\d-\d\dT(00|01):30:00\.000Z$/);
  });

  Deno.test(`cli[${backend}]: job next pins the Berlin spring-forward night`, async () => {
    await using db = await databaseWith(backend, ADD_BERLIN);
    const args = ["job", "next", "berlin", "-n", "3", "--from", "2026-03-28T00:00:00Z"];
    assertEquals(JSON.parse(await noWrite(db, ["--json", ...args])), {
      id: "berlin",
      enabled: true,
      schedule: "0 30 2 * * *",
      after_job: null,
      after_outcome: null,
      timezone: "Europe/Berlin",
      timezone_source: "job",
      from: "2026-03-28T00:00:00.000Z",
      next: ["2026-03-28T01:30:00.000Z", "2026-03-29T01:00:00.000Z", "2026-03-30T00:30:00.000Z"],
    });
    assertEquals(
      await noWrite(db, args),
      [
        "next 3 fires of 'berlin' after 2026-03-28T00:00:00.000Z (Europe/Berlin, then UTC):",
        "  Sat 2026-03-28 02:30:00 +01:00  Europe/Berlin   2026-03-28T01:30:00Z",
        "  Sun 2026-03-29 03:00:00 +02:00  Europe/Berlin   2026-03-29T01:00:00Z",
        "  Mon 2026-03-30 02:30:00 +02:00  Europe/Berlin   2026-03-30T00:30:00Z",
        "",
      ].join("\n"),
    );
  });

  Deno.test(`cli[${backend}]: job update changes only the options given; --cron replaces all six`, async () => {
    await using db = await databaseWith(backend, ADD_BERLIN, ADD_TICK_ENABLED);
    let w = await write(db, "tick", ["job", "update", "tick", "--hour", "3"]);
    assertEquals(w.stdout, `updated job 'tick' (reload marker ${w.markerId})\n${noService(db)}`);
    assertEquals(w.after, { ...w.before!, hour: "3", updated_at: w.after!.updated_at });

    w = await write(db, "tick", ["job", "update", "tick", "--cron", "15 4 1 * *"]);
    assertEquals(w.after, {
      ...w.before!,
      second: "0",
      minute: "15",
      hour: "4",
      day: "1",
      month: "*",
      day_of_week: "*",
      updated_at: w.after!.updated_at,
    });

    w = await write(db, "tick", [
      "--json",
      "job",
      "update",
      "tick",
      "--timeout",
      "120",
      "--env",
      "C=3",
      "--max-instances",
      "2",
      "--no-coalesce",
      "--misfire-grace-time",
      "30",
    ]);
    assertEquals(w.after, {
      ...w.before!,
      timeout: 120,
      env: { C: "3" },
      max_instances: 2,
      coalesce: false,
      misfire_grace_time: 30,
      updated_at: w.after!.updated_at,
    });
    assertEquals(JSON.parse(w.stdout), {
      job: asJson(w.after!),
      marker_id: w.markerId,
      live_services: [],
    });

    assertEquals(
      await noWrite(db, ["job", "update", "tick", "--timeout", "120", "--hour", "4"]),
      "job 'tick' unchanged (the options given match it)\n",
    );

    // Back to the service's jobsmanager.coalesce: the only way from the CLI to a null coalesce.
    w = await write(db, "tick", ["job", "update", "tick", "--service-coalesce"]);
    assertEquals(w.after, { ...w.before!, coalesce: null, updated_at: w.after!.updated_at });
    const both = await cli([
      "--database",
      db.url,
      "job",
      "update",
      "tick",
      "--coalesce",
      "--service-coalesce",
    ]);
    assertEquals([both.code, both.stderr], [
      2,
      "jobsmanager: coalesce: give --coalesce or --service-coalesce, not both\n",
    ]);
  });

  Deno.test(`cli[${backend}]: job disable and enable; a second disable adds no marker`, async () => {
    await using db = await databaseWith(backend, ADD_BERLIN, ADD_TICK_ENABLED);
    let w = await write(db, "berlin", ["job", "disable", "berlin"]);
    assertEquals(w.stdout, `disabled job 'berlin' (reload marker ${w.markerId})\n${noService(db)}`);
    assertEquals(w.after, { ...w.before!, enabled: false, updated_at: w.after!.updated_at });
    assertEquals(
      await noWrite(db, ["job", "disable", "berlin"]),
      "job 'berlin' is already disabled\n",
    );
    w = await write(db, "berlin", ["job", "enable", "berlin"]);
    assertEquals(w.stdout, `enabled job 'berlin' (reload marker ${w.markerId})\n${noService(db)}`);
    assertEquals(w.after, { ...w.before!, enabled: true, updated_at: w.after!.updated_at });
    assertEquals(
      await noWrite(db, ["job", "enable", "berlin"]),
      "job 'berlin' is already enabled\n",
    );
  });

  Deno.test(`cli[${backend}]: reload adds a marker with empty snapshots`, async () => {
    await using db = await databaseWith(backend, ADD_BERLIN, ADD_TICK_ENABLED);
    const rowsBefore = await jobRows(db);
    const before = await markers(db);
    const human = await ok(db, ["reload"]);
    const json = JSON.parse(await ok(db, ["--json", "reload"]));
    const added = (await markers(db)).slice(before.length);
    assertEquals(added.length, 2);
    assertEquals(human, `reload requested (marker ${added[0].id})\n${noService(db)}`);
    assertEquals(json, { marker_id: Number(added[1].id), live_services: [] });
    for (const m of added) {
      assertEquals(
        [Number(m.updated), m.jobs_before_update, m.jobs_after_update],
        [0, "[]", "[]"],
      );
    }
    assertEquals(await jobRows(db), rowsBefore);
  });

  Deno.test(`cli[${backend}]: job remove deletes the row with one marker`, async () => {
    await using db = await databaseWith(backend, ADD_BERLIN, ADD_TICK_ENABLED);
    let w = await write(db, "tick", ["job", "remove", "tick"]);
    assertEquals(w.stdout, `removed job 'tick' (reload marker ${w.markerId})\n${noService(db)}`);
    assertEquals(w.after, null);
    w = await write(db, "berlin", ["--json", "job", "rm", "berlin"]);
    assertEquals(JSON.parse(w.stdout), {
      job: asJson(w.before!),
      marker_id: w.markerId,
      followers: [],
      live_services: [],
    });
    assertEquals(
      await noWrite(db, ["job", "list"]),
      "no jobs (add one with `jobsmanager job add ID --command CMD --cron '…'`)\n",
    );
    assertEquals(await noWrite(db, ["--json", "job", "list"]), "[]\n");
  });
}

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: a description of 1000 characters beyond the BMP is stored whole`, async () => {
    await using db = await freshDatabase(backend);
    const at = { cwd: db.dir };
    const description = "😀".repeat(1000);
    const add = await cli(
      [
        "-d",
        db.url,
        "job",
        "add",
        "d",
        "--command",
        "true",
        "--hour",
        "3",
        "--description",
        description,
      ],
      at,
    );
    assertEquals(add.code, 0, add.stderr);
    const shown = await cli(["-d", db.url, "--json", "job", "show", "d"], at);
    assertEquals(JSON.parse(shown.stdout).description, description);
  });
}

Deno.test("cli[sqlite]: job show quotes an env value as the shell would, so two sets never read alike", async () => {
  await using db = await freshDatabase("sqlite");
  const at = { cwd: db.dir };
  const add = ["-d", db.url, "job", "add", "--command", "true", "--hour", "5"];
  assertEquals((await cli([...add, "one", "--env", "A=1 B=2"], at)).code, 0);
  assertEquals((await cli([...add, "two", "--env", "A=1", "--env", "B=2"], at)).code, 0);
  assertEquals((await cli([...add, "three", "--env", "Q=it's"], at)).code, 0);
  const env = async (id: string) =>
    (await cli(["-d", db.url, "job", "show", id], at)).stdout.split("\n")
      .find((l) => l.startsWith("env "))?.replace(/^env\s+/, "");
  assertEquals(
    [await env("one"), await env("two"), await env("three")],
    ["A='1 B=2'", "A=1 B=2", "Q='it'\\''s'"],
  );
});

Deno.test("cli[sqlite]: global options anywhere before the arguments; `--` ends the options; `--name=` is an empty value", async () => {
  await using db = await freshDatabase("sqlite");
  const at = { cwd: db.dir };
  const add = ["add", "--command", "echo", "--cron", "@daily", "--description", "x"];
  // Before the command, between group and command, after the arguments, with '='.
  const placements: [string, string[]][] = [
    ["a", ["--database", db.url, "job", ...add, "a"]],
    ["b", ["job", "-d", db.url, ...add, "b"]],
    ["c", ["job", ...add, "c", `--database=${db.url}`]],
  ];
  for (const [i, [id, args]] of placements.entries()) {
    const r = await cli(args, at);
    assertEquals([r.code, r.stdout.split("\n")[0]], [
      0,
      `added job '${id}' (reload marker ${i + 1})`,
    ]);
  }
  // An id that begins with '-' follows `--`.
  assertEquals((await cli(["-d", db.url, "job", ...add, "--", "-weird"], at)).code, 0);
  // `--description=` as `--description ''`: empty, not an argument.
  const update = await cli(["-d", db.url, "job", "update", "a", "--description="], at);
  assertEquals(update.code, 0, update.stderr);
  const shown = await cli(["-d", db.url, "--json", "job", "show", "--", "-weird"], at);
  assertEquals(JSON.parse(shown.stdout).id, "-weird");
  const a = JSON.parse((await cli(["-d", db.url, "--json", "job", "show", "a"], at)).stdout);
  const c = JSON.parse((await cli(["-d", db.url, "--json", "job", "show", "c"], at)).stdout);
  assertEquals([a.description, c.description], [null, "x"]);
  // A group alone, after a global option with its value, shows its help as the error.
  const group = await cli(["-d", db.url, "job"], at);
  assertEquals([group.code, group.stdout], [2, ""]);
  assert(group.stderr.startsWith("USAGE\n  jobsmanager job add <id> [options]\n"), group.stderr);
  assertEquals(await cli(["-d"], at), {
    code: 2,
    stdout: "",
    stderr: "jobsmanager: option '-d' needs a value (see `jobsmanager --help`)\n",
  });
  assertEquals(await cli(["-d", db.url, "job", "frob"], at), {
    code: 2,
    stdout: "",
    stderr:
      "jobsmanager: 'frob' is not a command; did you mean `show`? (see `jobsmanager job --help`)\n",
  });
});

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: --name=VALUE takes a value holding a line break, as --name VALUE does`, async () => {
    await using db = await freshDatabase(backend);
    const at = { cwd: db.dir };
    const jm = (...args: string[]) => cli(["-d", db.url, "--json", "job", ...args], at);
    const add = await jm("add", "a", "--command=true", "--cron=@daily", "--description=a\nb");
    assertEquals(add.code, 0, add.stderr);
    // Each break stricli's `=` pattern stops at; a value that begins with '-' keeps its '='.
    const values = ["s3cr3t\nX", "s3cr3t\rX", "s3cr3t\u2028X", "s3cr3t\u2029X", "-x\n"];
    for (const [i, value] of values.entries()) {
      const update = await jm("update", "a", `--env=TOKEN${i}=${value}`, `--description=${value}`);
      assertEquals(update.code, 0, update.stderr);
    }
    const dash = await jm("update", "a", "--description=-x");
    assertEquals(dash.code, 0, dash.stderr);
    const [row] = await rawQuery(db, "SELECT env, description FROM jm_jobs WHERE id = 'a'");
    const env = typeof row.env === "string" ? JSON.parse(row.env) : row.env;
    assertEquals(
      [env, row.description],
      [Object.fromEntries(values.map((v, i) => [`TOKEN${i}`, v])), "-x"],
    );
    // Refused after '=', the value is not shown, nor under --json.
    const refused = await jm("update", "a", "--env=MY-TOKEN=s3cr3t\nX");
    assertEquals(JSON.parse(refused.stderr).error, {
      kind: "invalid",
      message:
        'env: "MY-TOKEN=…" is not NAME=VALUE with NAME of A-Z a-z 0-9 _ not starting with a digit',
      exit_code: 2,
      field: "env",
      option: "--env",
    });
  });
}

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: an option given twice alike is given once (alias jm='jobsmanager --json')`, async () => {
    await using db = await freshDatabase(backend);
    const at = { cwd: db.dir };
    const add = ["job", "add", "a", "--command", "echo", "--cron", "@daily"];
    assertEquals((await cli(["-d", db.url, ...add], at)).code, 0);
    const once = await cli(["--json", "-d", db.url, "job", "list"], at);
    assertEquals([once.code, once.stderr], [0, ""]);
    assertEquals(await cli(["--json", "-d", db.url, "job", "list", "--json"], at), once);
    assertEquals(
      await cli(["--json", "-d", db.url, "job", "list", `--database=${db.url}`, "--json"], at),
      once,
    );
    const update = await cli([
      ...["-d", db.url, "--json", "job", "update", "a", "--timeout", "5", "--timeout=5"],
      ...["--disabled", "--disabled", "--no-coalesce", "--no-coalesce", "--json"],
    ], at);
    assertEquals(update.code, 0, update.stderr);
    const shown = await cli(
      ["-d", db.url, "--json", "job", "show", "a", "-n", "2", "--count=2"],
      at,
    );
    assertEquals(shown.code, 0, shown.stderr);
    const job = JSON.parse(shown.stdout);
    assertEquals([job.timeout, job.enabled, job.coalesce, job.next.length], [5, false, false, 2]);
  });
}

Deno.test("cli: --version, --help, and job without a subcommand", async () => {
  const results = await Promise.all([
    cli(["--version"]),
    cli(["-V"]),
    cli(["--help"]),
    cli(["job", "--help"]),
    cli(["job"]),
  ]);
  const [version, v, help, jobHelp, job] = results;
  assertEquals(version, { code: 0, stdout: `${VERSION}\n`, stderr: "" });
  assertEquals(v, version);
  assertEquals([help.code, help.stderr], [0, ""]);
  assert(help.stdout.startsWith("USAGE\n  jobsmanager serve [options]\n"), help.stdout);
  for (const name of ["job", "reload", "db", "--config", "--database", "--json"]) {
    assertStringIncludes(help.stdout, name);
  }
  assertEquals([jobHelp.code, jobHelp.stderr], [0, ""]);
  assert(jobHelp.stdout.startsWith("USAGE\n  jobsmanager job add <id> [options]\n"));
  // A group alone prints its help as the error, and it is a usage error.
  assertEquals([job.code, job.stdout], [2, ""]);
  assertEquals(job.stderr, jobHelp.stdout);
});

// ---------------------------------------------------------------- secrets

const PASSWORD = "Sup3r-S3cret-PW";
const CLOSED = "127.0.0.1:1";
/** What a password in --database earns, before anything else. */
const PASSWORD_IN_ARGS =
  "jobsmanager: warning: the password given in --database can be read by every user of this machine (ps, /proc); give it in JM_DB_PASSWORD or db.password_file instead\n";
const REFUSED_MESSAGE =
  `cannot connect to MySQL at ${CLOSED}: connection refused; is the server running, and are db.host/db.port (or --database) right?`;
const REFUSED = `jobsmanager: ${REFUSED_MESSAGE}\n`;
/** The same under --json. */
const REFUSED_JSON = `${
  JSON.stringify({ error: { kind: "unavailable", message: REFUSED_MESSAGE, exit_code: 1 } })
}\n`;

function assertNoSecret(r: CliResult, secret: string, what: string): void {
  for (const [name, text] of [["stdout", r.stdout], ["stderr", r.stderr]]) {
    assert(!text.includes(secret), `${what}: ${name} shows the password: ${text}`);
  }
}

Deno.test("cli: the password never reaches stdout or stderr (server unreachable)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-cli-secrets-" });
  try {
    await Deno.writeTextFile(
      `${dir}/url.json`,
      `{ db: { url: "mysql://root@${CLOSED}/jobs", password: "${PASSWORD}" } }`,
    );
    await Deno.writeTextFile(
      `${dir}/keys.json`,
      `{ db: { host: "127.0.0.1", port: "1", username: "root", password: "${PASSWORD}", database: "jobs" } }`,
    );
    const sources: {
      name: string;
      args: string[];
      env?: Record<string, string>;
      warning?: string;
    }[] = [
      { name: "config db.url + db.password", args: ["--config", "url.json"] },
      { name: "config host keys", args: ["--config", "keys.json"] },
      { name: "JM_CONFIG", args: [], env: { JM_CONFIG: "keys.json" } },
      {
        name: "JM_DB_PASSWORD",
        args: ["--database", `mysql://root@${CLOSED}/jobs`],
        env: { JM_DB_PASSWORD: PASSWORD },
      },
      {
        name: "JM_DATABASE_URL",
        args: [],
        env: { JM_DATABASE_URL: `mysql://root:${PASSWORD}@${CLOSED}/jobs` },
      },
      {
        name: "--database URL",
        args: ["--database", `mysql://root:${PASSWORD}@${CLOSED}/jobs`],
        warning: PASSWORD_IN_ARGS,
      },
    ];
    const commands: [string[], number, string][] = [
      [["job", "list"], 1, REFUSED],
      [["--json", "job", "list"], 1, REFUSED_JSON],
      [["job", "add", "a", "--command", "true", "--minute", "5"], 1, REFUSED],
      [["--json", "job", "show", "a"], 1, REFUSED_JSON],
      [["--json", "db", "migrate"], 1, REFUSED_JSON],
      [["reload"], 1, REFUSED],
      [
        ["job", "add", "a", "--command", "true", "--minute", "61"],
        2,
        "jobsmanager: minute: '61' is out of range (allowed 0-59)\n",
      ],
    ];
    await Promise.all(sources.map(async (source) => {
      for (const [args, code, stderr] of commands) {
        const what = `${source.name}: ${args.join(" ")}`;
        const r = await cli([...source.args, ...args], { cwd: dir, env: source.env });
        assertNoSecret(r, PASSWORD, what);
        assertEquals(r, { code, stdout: "", stderr: (source.warning ?? "") + stderr }, what);
      }
    }));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

mysqlTest(
  "cli[mysql]: the password never reaches output, with a server that checks it",
  async () => {
    await using db = await freshDatabase("mysql");
    const t = db.target;
    assert(t.kind === "mysql");
    const user = `jm_cli_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
    await rawQuery(db, `CREATE USER '${user}'@'%' IDENTIFIED BY '${PASSWORD}'`);
    try {
      await rawQuery(db, `GRANT ALL ON \`${t.database}\`.* TO '${user}'@'%'`);
      const at = `${t.host}:${t.port}/${t.database}`;
      const viaUrl = ["--database", `mysql://${user}:${PASSWORD}@${at}`];
      const run = async (args: string[], env?: Record<string, string>) => {
        const r = await cli(args, { cwd: db.dir, env });
        assertNoSecret(r, PASSWORD, args.join(" "));
        return r;
      };
      assertEquals(await run([...viaUrl, "db", "migrate"]), {
        code: 0,
        stdout:
          `mysql://${user}:***@${at}: schema migrated from version 0 to ${SCHEMA_VERSION} (applied ${EVERY_VERSION})\n`,
        stderr:
          `${PASSWORD_IN_ARGS}jobsmanager: created jobsmanager's tables in the empty database mysql://${user}:***@${at}; if the service uses another, point this command at it with --database or --config\n`,
      });
      const json = await run([...viaUrl, "--json", "db", "migrate"]);
      assertEquals(JSON.parse(json.stdout).database, `mysql://${user}:***@${at}`);
      const add = await run([
        ...viaUrl,
        "--json",
        "job",
        "add",
        "a",
        "--command",
        "echo hi",
        "--minute",
        "*/5",
      ]);
      assertEquals(add.code, 0, add.stderr);
      const viaEnv = await run(["--database", `mysql://${user}@${at}`, "--json", "job", "list"], {
        JM_DB_PASSWORD: PASSWORD,
      });
      assertEquals([viaEnv.code, JSON.parse(viaEnv.stdout).length], [0, 1]);
      // A password from JM_DB_PASSWORD is in no URL: the database is named as given, without `:***`.
      const addViaEnv = await run(
        [
          "--database",
          `mysql://${user}@${at}`,
          "job",
          "add",
          "b",
          "--command",
          "true",
          "--hour",
          "1",
        ],
        { JM_DB_PASSWORD: PASSWORD },
      );
      assertEquals(addViaEnv.code, 0, addViaEnv.stderr);
      assertStringIncludes(addViaEnv.stdout, `no live service uses mysql://${user}@${at}, so`);
      const show = await run([...viaUrl, "job", "show", "a"]);
      assertEquals(show.code, 0, show.stderr);

      // A wrong password is rejected, and neither password is printed.
      const wrong = "Wr0ng-Sup3r-S3cret-PW";
      const rejected = await run(["--database", `mysql://${user}:${wrong}@${at}`, "job", "list"]);
      assertNoSecret(rejected, wrong, "wrong password");
      assertEquals(rejected, {
        code: 1,
        stdout: "",
        stderr: PASSWORD_IN_ARGS +
          `jobsmanager: MySQL at ${t.host}:${t.port} rejected the login of user '${user}' to database '${t.database}' (access denied); check db.username and the password (JM_DB_PASSWORD, db.password_file or the URL) (a server or user that requires TLS refuses a plain login so too: see db.ssl_mode)\n`,
      });

      // A locked account (MariaDB's error number is MySQL's for another error) is named so.
      await rawQuery(db, `ALTER USER '${user}'@'%' ACCOUNT LOCK`);
      assertEquals(await run([...viaUrl, "job", "list"]), {
        code: 1,
        stdout: "",
        stderr: PASSWORD_IN_ARGS +
          `jobsmanager: MySQL at ${t.host}:${t.port} rejected the login of user '${user}': the account is locked; unlock it with ALTER USER '${user}'@'<its host>' ACCOUNT UNLOCK\n`,
      });
    } finally {
      await rawQuery(db, `DROP USER '${user}'@'%'`);
    }
  },
);

mysqlTest(
  "cli[mysql]: a user refused the CREATE that makes the schema is told the GRANT it needs",
  async () => {
    await using db = await freshDatabase("mysql");
    const t = db.target;
    assert(t.kind === "mysql");
    const user = `jm_cli_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
    await rawQuery(db, `CREATE USER '${user}'@'%' IDENTIFIED BY '${PASSWORD}'`);
    try {
      // Rows only, as a service may be given: the migrations need more.
      await rawQuery(
        db,
        `GRANT SELECT, INSERT, UPDATE, DELETE ON \`${t.database}\`.* TO '${user}'@'%'`,
      );
      const at = `${t.host}:${t.port}/${t.database}`;
      const r = await cli(["--database", `mysql://${user}@${at}`, "db", "migrate"], {
        cwd: db.dir,
        env: { JM_DB_PASSWORD: PASSWORD },
      });
      assertNoSecret(r, PASSWORD, "db migrate");
      assertEquals([r.code, r.stdout], [1, ""]);
      assertMatch(
        r.stderr,
        new RegExp(
          `^jobsmanager: the database refuses writes: mysql://${user}@${at}: CREATE command denied to user '${user}'@'[^']+' for table \`${t.database}\`\\.\`jm_schema_version\`; user '${user}' needs SELECT, INSERT, UPDATE, DELETE on jobsmanager's database, and CREATE, ALTER, INDEX too to create or upgrade its tables \\(db migrate, serve, the commands that add jobs\\): GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON \`${t.database}\`\\.\\* TO '${user}'@'<its host>'\n$`,
        ),
      );
    } finally {
      await rawQuery(db, `DROP USER '${user}'@'%'`);
    }
  },
);

Deno.test({
  name: "cli: a non-string db.password in the config is not echoed",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "jm-cli-secrets-" });
    try {
      await Deno.writeTextFile(
        `${dir}/num.json`,
        `{ db: { url: "mysql://root@${CLOSED}/jobs", password: 4242424242 } }`,
      );
      const r = await cli(["--config", "num.json", "job", "list"], { cwd: dir });
      assertEquals(r.code, 2);
      assertNoSecret(r, "4242424242", "numeric password");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "cli: a password with '/' in a malformed --database URL is not echoed",
  async fn() {
    const secret = "Sup3r/S3cret-PW";
    const r = await cli(["--database", `mysql://root:${secret}@${CLOSED}/jobs`, "job", "list"]);
    assertEquals(r.code, 2);
    assertNoSecret(r, secret, "password with a slash");
    assertNoSecret(r, "S3cret-PW", "password with a slash");
  },
});

// ------------------------------------------------- the original global.json

mysqlTest(
  "cli[mysql]: the original project's etc/global.json works end to end",
  async () => {
    await using db = await freshDatabase("mysql");
    const t = db.target;
    assert(t.kind === "mysql");
    await Deno.mkdir(`${db.dir}/etc`);
    await Deno.writeTextFile(
      `${db.dir}/etc/global.json`,
      originalGlobalJson({
        host: t.host,
        port: String(t.port),
        username: t.user,
        password: t.password,
        database: t.database,
      }),
    );
    const config = ["--config", "etc/global.json"];
    const add = await cli(
      [...config, "job", "add", "hk", "--command", "echo hk", "--hour", "9"],
      { cwd: db.dir },
    );
    // The empty MySQL database gets jobsmanager's tables, and the command says so.
    assertEquals([add.code, add.stderr], [
      0,
      `jobsmanager: created jobsmanager's tables in the empty database ${
        describeTarget(t)
      }; if the service uses another, point this command at it with --database or --config\n`,
    ]);
    assertEquals(add.stdout.split("\n")[0], "added job 'hk' (reload marker 1)");
    assertMatch(add.stdout.split("\n")[2], /09:00:00 \+08:00 {2}Asia\/Hong_Kong {3}/);

    const list = await cli(["job", "list"], { cwd: db.dir, env: { JM_CONFIG: "etc/global.json" } });
    assertEquals([list.code, list.stderr], [0, ""]);
    assertMatch(
      list.stdout.split("\n")[1],
      /^hk +0 0 9 \* \* \* +\(configured zone, Asia\/Hong_Kong\) +yes +60s +.* echo hk$/,
    );

    const next = await cli(
      [...config, "--json", "job", "next", "hk", "-n", "1", "--from", "2026-01-01T00:00:00Z"],
      { cwd: db.dir },
    );
    assertEquals(JSON.parse(next.stdout), {
      id: "hk",
      enabled: true,
      schedule: "0 0 9 * * *",
      after_job: null,
      after_outcome: null,
      timezone: "Asia/Hong_Kong",
      timezone_source: "configured",
      from: "2026-01-01T00:00:00.000Z",
      next: ["2026-01-01T01:00:00.000Z"],
    });
    const rows = await rawQuery(db, "SELECT id, hour, timezone FROM jm_jobs");
    assertEquals(rows, [{ id: "hk", hour: "9", timezone: null }]);
    assertEquals((await rawQuery(db, "SELECT COUNT(*) AS n FROM jm_update_info"))[0].n, 1);
  },
);

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: --user: job add, show, list --json, update with '' clears it, export and apply keep it`, async () => {
    await using db = await databaseWith(backend);
    const add = ["job", "add", "as-nobody", "--command", "id -u", "--cron", "0 3 * * *"];
    const added = await write(db, "as-nobody", [...add, "--user", "nobody"]);
    assertEquals(added.after!.user, "nobody");
    const shown = (await noWrite(db, ["job", "show", "as-nobody"])).split("\n");
    for (const line of ["user                nobody", "cwd                 (the user's home)"]) {
      assert(shown.includes(line), `job show has ${JSON.stringify(line)}:\n${shown.join("\n")}`);
    }
    const listed = JSON.parse(await noWrite(db, ["--json", "job", "list"]));
    assertEquals(listed.map((j: Job) => j.user), ["nobody"]);
    const exported = await noWrite(db, ["export"]);
    assertStringIncludes(exported, "      user: 'nobody',\n");
    const cleared = await write(db, "as-nobody", ["job", "update", "as-nobody", "--user", ""]);
    assertEquals(cleared.after!.user, null);
    const again = (await noWrite(db, ["job", "show", "as-nobody"])).split("\n");
    assert(again.includes("user                (the service's own)"), again.join("\n"));
    await Deno.writeTextFile(`${db.dir}/jobs.json5`, exported);
    const applied = await write(db, "as-nobody", ["apply", "jobs.json5"]);
    assertEquals(applied.after!.user, "nobody");
    const uid = await write(db, "as-nobody", ["job", "update", "as-nobody", "--user", "65534"]);
    assertEquals(uid.after!.user, "65534");
  });
}

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: job add --user while a service of an older release is live: refused as a conflict, naming it; added once it stopped`, async () => {
    await using db = await databaseWith(backend);
    await writeOlderNode(db, "old-1");
    const add = ["job", "add", "rotate", "--command", "true", "--cron", "0 4 * * *"];
    const message =
      /^job 'rotate' would run as 'nobody', but node old-1 \(host web-1, pid 4242, last heartbeat \d+ s ago\) runs an older release of jobsmanager \(its row in jm_nodes names no schema_version\), which ignores a job's user and runs the job as its own user, root typically; nothing written\. Upgrade or stop that service, then try again$/;
    const refused = await run(db, [...add, "--user", "nobody"]);
    assertEquals([refused.code, refused.stdout], [1, ""]);
    assertMatch(refused.stderr.replace(/^jobsmanager: /, "").trimEnd(), message);
    const json = await run(db, ["--json", ...add, "--user", "nobody"]);
    const { error } = JSON.parse(json.stderr);
    assertEquals([json.code, error.kind, error.exit_code], [1, "conflict", 1]);
    assertMatch(error.message, message);
    assertEquals((await jobs(db)).size, 0);
    await rawQuery(db, "UPDATE jm_nodes SET stopped_at = 1 WHERE id = 'old-1'");
    const added = await write(db, "rotate", [...add, "--user", "nobody"]);
    assertEquals(added.after!.user, "nobody");
  });
}

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: apply --dry-run and import without --apply say the older release guard would refuse their write`, async () => {
    await using db = await databaseWith(backend);
    await writeOlderNode(db, "old-1");
    const refusal = (what: string, undone: string) =>
      new RegExp(
        `^${what}, but node old-1 \\(host web-1, pid 4242, last heartbeat \\d+ s ago\\) runs an older release of jobsmanager \\(its row in jm_nodes names no schema_version\\), which ignores a job's user and runs the job as its own user, root typically; ${undone}\\. Upgrade or stop that service, then try again$`,
      );
    const file = `${db.dir}/jobs.json5`;
    await Deno.writeTextFile(
      file,
      "{ jobs: [{ id: 'rotate', command: 'true', minute: '0', user: 'nobody' }] }\n",
    );
    const dryRun = refusal(
      "job 'rotate' would run as 'nobody'",
      "a dry run: nothing written, and the write would be refused",
    );
    const planned = await run(db, ["apply", file, "--dry-run"]);
    assertEquals([planned.code, planned.stdout], [1, ""]);
    assertMatch(planned.stderr.replace(/^jobsmanager: /, "").trimEnd(), dryRun);
    const json = await run(db, ["--json", "apply", file, "--dry-run"]);
    const { error } = JSON.parse(json.stderr);
    assertEquals([json.code, error.kind, error.exit_code], [1, "conflict", 1]);
    assertMatch(error.message, dryRun);
    const crontab = `${db.dir}/rotate`;
    await Deno.writeTextFile(crontab, "0 4 * * * rotate.sh\n0 5 * * * report.sh\n");
    const imported = await run(db, ["import", "crontab", crontab, "--user", "nobody"]);
    assertEquals([imported.code, imported.stdout], [1, ""]);
    assertMatch(
      imported.stderr.replace(/^jobsmanager: /, "").trimEnd(),
      refusal(
        "2 jobs would run as another user \\('rotate\\.rotate-sh' as 'nobody', 'rotate\\.report-sh' as 'nobody'\\)",
        "a plan: nothing written, and --apply would be refused",
      ),
    );
    // Jobs without a user are planned as before.
    const plain = await run(db, ["import", "crontab", crontab]);
    assertEquals(plain.code, 0, plain.stderr);
    assertStringIncludes(plain.stdout, "2 new");
    assertEquals((await jobs(db)).size, 0);
    await rawQuery(db, "UPDATE jm_nodes SET stopped_at = 1 WHERE id = 'old-1'");
    const allowed = await run(db, ["apply", file, "--dry-run"]);
    assertEquals(allowed.code, 0, allowed.stderr);
    assertStringIncludes(allowed.stdout, "1 new");
  });
}

for (const backend of BACKENDS) {
  Deno.test({
    name:
      `cli[${backend}]: --user an expired account is stored with a warning naming its expiry day and the fix, under --json too`,
    ignore: Deno.uid() !== 0,
    fn: async () => {
      await using db = await databaseWith(backend);
      await withExpiredAccount(async (name, warningOf, chage) => {
        const warning = `${warningOf("stored all the same")}\n`;
        const add = ["job", "add", "nightly", "--command", "true", "--cron", "0 3 * * *"];
        const added = await run(db, [...add, "--user", name]);
        assertEquals([added.code, added.stderr], [0, warning]);
        assertEquals((await jobs(db)).get("nightly")?.user, name);
        await run(db, ["job", "update", "nightly", "--user", ""]);
        const updated = await run(db, ["--json", "job", "update", "nightly", "--user", name]);
        assertEquals([updated.code, updated.stderr], [0, warning]);
        assertEquals(JSON.parse(updated.stdout).job.user, name);
        assertEquals((await jobs(db)).get("nightly")?.user, name);
        // Given again unchanged: nothing written, nothing to say.
        const unchanged = await run(db, ["job", "update", "nightly", "--user", name]);
        assertEquals([unchanged.code, unchanged.stderr], [0, ""]);
        // Renewed: nothing to say.
        await chage("-E", "-1");
        await run(db, ["job", "update", "nightly", "--user", ""]);
        const renewed = await run(db, ["job", "update", "nightly", "--user", name]);
        assertEquals([renewed.code, renewed.stderr], [0, ""]);
      });
    },
  });
}

Deno.test("cli: --user a name this host has no account of is stored with a warning; a malformed one is refused", async () => {
  await using db = await databaseWith("sqlite");
  const add = ["job", "add", "elsewhere", "--command", "true", "--cron", "0 3 * * *"];
  const unknown = await run(db, [...add, "--user", "jm-no-such-user"]);
  assertEquals(
    [unknown.code, unknown.stderr],
    [
      0,
      `jobsmanager: warning: user 'jm-no-such-user' has no account on this host (${Deno.hostname()}): stored all the same, as a service on a host that has it runs its jobs, but a service here records each run of its job as an error until it exists; check with \`getent passwd jm-no-such-user\`\n`,
    ],
  );
  assertEquals((await jobs(db)).get("elsewhere")?.user, "jm-no-such-user");
  // An sssd account of AD, named as getent knows it.
  const ad = await run(db, ["job", "update", "elsewhere", "--user", "jm.no-such@corp"]);
  assertEquals(ad.code, 0, ad.stderr);
  assertEquals((await jobs(db)).get("elsewhere")?.user, "jm.no-such@corp");
  const bad = await run(db, ["job", "update", "elsewhere", "--user", "bob smith"]);
  assertEquals([bad.code, bad.stdout], [2, ""]);
  assertStringIncludes(
    bad.stderr,
    `user: "bob smith" is not a user name or uid (allowed: a name of 1-64 characters of A-Z a-z 0-9 _ . - @ not starting with a digit, ., - or @, or a uid of a whole number from 0 to 4294967294; empty or NULL for the service's own user)`,
  );
  assertEquals((await jobs(db)).get("elsewhere")?.user, "jm.no-such@corp");
});
