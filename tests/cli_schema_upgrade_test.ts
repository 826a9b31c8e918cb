/**
 * A rolling upgrade: a newer release's command run on a database an older
 * release's services still use. Only `serve` and `db migrate` upgrade the
 * schema, and say so; every other command refuses an older one, naming
 * both versions and the fix, and changes nothing: once upgraded, the older
 * services refuse the schema and cannot start again. A new database is
 * still made by the commands that add jobs, as on first use.
 */
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { DatabaseSync } from "node:sqlite";
import { describeTarget } from "../src/store/target.ts";
import { hereSpace } from "../src/daemon/presence.ts";
import { SCHEMA_VERSION } from "../src/store/migrations.ts";
import { VERSION } from "../src/version.ts";
import {
  BACKENDS,
  cli,
  freshDatabase,
  jm,
  mysqlTest,
  rawQuery,
  schemaAt,
  schemaVersionOf,
  serveUntilLoaded,
  type TestDatabase,
  writeOlderNode,
} from "./helpers.ts";

/** The release before this one: its schema, one migration short. */
const OLDER = SCHEMA_VERSION - 1;

/** What a command refuses an older schema with; with `json`, as --json says it. */
function refusal(db: TestDatabase, json: boolean): string {
  const message = `${
    describeTarget(db.target)
  } has schema version ${OLDER}, older than this jobsmanager ${VERSION} uses (${SCHEMA_VERSION}); this command changed nothing. Upgrade it with \`jobsmanager db migrate\` (or by starting this release's \`jobsmanager serve\`); services of the older release cannot start on it once it is migrated, so upgrade them together`;
  return json
    ? `${JSON.stringify({ error: { kind: "refused", message, exit_code: 1 } })}\n`
    : `jobsmanager: ${message}\n`;
}

/** A database at the older schema, holding one job and files to apply and import. */
async function olderDatabase(backend: "sqlite" | "mysql"): Promise<TestDatabase> {
  const db = await freshDatabase(backend);
  await schemaAt(db, OLDER);
  await rawQuery(
    db,
    "INSERT INTO jm_jobs (id, command, minute, hour, created_at, updated_at) VALUES ('old', 'true', '0', '3', 1, 1)",
  );
  await Deno.writeTextFile(
    `${db.dir}/jobs.json5`,
    "{ jobs: [{ id: 'a', command: 'true', cron: '@daily' }] }\n",
  );
  await Deno.writeTextFile(`${db.dir}/crontab`, "0 4 * * * true\n");
  return db;
}

/** Commands that only read, dry runs and previews. */
const READS = [
  ["job", "list"],
  ["job", "show", "old"],
  ["job", "next", "old"],
  ["job", "next", "--cron", "@daily"],
  ["runs"],
  ["runs", "show", "1"],
  ["logs"],
  ["status"],
  ["export"],
  ["--json", "export"],
  ["apply", "--dry-run", "jobs.json5"],
  ["import", "crontab", "crontab"],
  ["import", "apscheduler"],
];

/** Commands that write jobs, runs or markers. */
const WRITES = [
  ["job", "add", "a", "--command", "true", "--cron", "@daily"],
  ["job", "update", "old", "--timeout", "5"],
  ["job", "update", "nosuch", "--timeout", "5"],
  ["job", "remove", "old"],
  ["job", "enable", "old"],
  ["job", "disable", "old"],
  ["job", "run", "old"],
  ["runs", "cancel", "1"],
  ["reload"],
  ["apply", "jobs.json5"],
  ["import", "crontab", "crontab", "--apply"],
  ["import", "apscheduler", "--apply"],
];

for (const backend of BACKENDS) {
  Deno.test(`schema upgrade[${backend}]: no command but serve and db migrate upgrades an older schema; each says how`, async () => {
    await using db = await olderDatabase(backend);
    for (const args of [...READS, ...WRITES]) {
      const r = await jm(db, ...args);
      assertEquals(
        { code: r.code, stdout: r.stdout, stderr: r.stderr },
        { code: 1, stdout: "", stderr: refusal(db, args.includes("--json")) },
        args.join(" "),
      );
      assertEquals(await schemaVersionOf(db), OLDER, `${args.join(" ")} left the schema alone`);
    }
    const [job] = await rawQuery(db, "SELECT command, timeout FROM jm_jobs WHERE id = 'old'");
    assertEquals([job.command, Number(job.timeout)], ["true", 60]);
    assertEquals(await rawQuery(db, "SELECT id FROM jm_update_info"), []);
  });

  Deno.test(`schema upgrade[${backend}]: bad input is refused as such before the database is read`, async () => {
    await using db = await olderDatabase(backend);
    for (
      const [args, stderr] of [
        [
          ["job", "next", "--cron", "not-a-cron"],
          "jobsmanager: cron: 'not-a-cron' has 1 field; expected 5 (minute hour day-of-month month day-of-week), 6 (second first) or a nickname like @daily\n",
        ],
        [
          ["job", "add", "a", "--command", "true", "--minute", "61"],
          "jobsmanager: minute: '61' is out of range (allowed 0-59)\n",
        ],
      ] as const
    ) {
      const r = await jm(db, ...args);
      assertEquals({ code: r.code, stderr: r.stderr }, { code: 2, stderr }, args.join(" "));
      assertEquals(await schemaVersionOf(db), OLDER);
    }
  });

  Deno.test(`schema upgrade[${backend}]: db migrate upgrades it, saying from which version to which`, async () => {
    await using db = await olderDatabase(backend);
    const r = await jm(db, "db", "migrate");
    assertEquals({ code: r.code, stdout: r.stdout, stderr: r.stderr }, {
      code: 0,
      stdout: `${
        describeTarget(db.target)
      }: schema migrated from version ${OLDER} to ${SCHEMA_VERSION} (applied ${SCHEMA_VERSION})\n`,
      stderr: "",
    });
    const list = await jm(db, "job", "list");
    assertEquals([list.code, list.stderr], [0, ""]);
    assertStringIncludes(list.stdout, "old");
  });

  Deno.test(`schema upgrade[${backend}]: db migrate names each live service of an older release, which will refuse the schema at its next start`, async () => {
    await using db = await olderDatabase(backend);
    // One of the release before (it names the schema it understands), one from before version 17,
    // one of the older release that stopped: not live, not named.
    await writeOlderNode(db, "n-old");
    await writeOlderNode(db, "n-prev");
    await rawQuery(db, `UPDATE jm_nodes SET schema_version = ${OLDER} WHERE id = 'n-prev'`);
    await writeOlderNode(db, "n-gone", { stopped: true });
    // Killed on this host, its heartbeat fresh still: `status` says dead, and so it is not named.
    await writeOlderNode(db, "n-killed");
    const { boot_id, pid_ns } = hereSpace();
    const noPid = Number(Deno.readTextFileSync("/proc/sys/kernel/pid_max").trim()) + 1;
    await rawQuery(
      db,
      `UPDATE jm_nodes SET schema_version = ${OLDER}, boot_id = ?, pid_ns = ?, pid = ? WHERE id = 'n-killed'`,
      [boot_id, pid_ns, noPid],
    );
    const r = await jm(db, "db", "migrate");
    const left = (id: string, release: string) =>
      `jobsmanager: warning: node ${id} (host web-1, pid 4242, last heartbeat N s ago) runs ${release}: it goes on running, but refuses schema version ${SCHEMA_VERSION} at its next start, and its jobs then fire on the other services or nowhere; upgrade it before it restarts`;
    // How old a heartbeat is depends on how long the command took.
    const stderr = r.stderr.replaceAll(/last heartbeat \d+ s ago/g, "last heartbeat N s ago");
    assertEquals({ code: r.code, stdout: r.stdout, stderr }, {
      code: 0,
      stdout: `${
        describeTarget(db.target)
      }: schema migrated from version ${OLDER} to ${SCHEMA_VERSION} (applied ${SCHEMA_VERSION})\n`,
      stderr: [
        left(
          "n-old",
          "a release before schema version 17 (its row in jm_nodes names no schema_version)",
        ),
        left("n-prev", `a release that understands schema version ${OLDER} at most`),
        "",
      ].join("\n"),
    });
    // Run again, the schema up to date: the services left behind are named still.
    const again = await jm(db, "--json", "db", "migrate");
    assertEquals(again.code, 0, again.stderr);
    assertEquals(JSON.parse(again.stdout).services_left_behind, [
      { id: "n-old", host: "web-1", pid: 4242, schema_version: null },
      { id: "n-prev", host: "web-1", pid: 4242, schema_version: OLDER },
    ]);
    assertStringIncludes(again.stderr, "node n-prev");
  });

  Deno.test(`schema upgrade[${backend}]: serve upgrades it at start, and says so at warning level`, async () => {
    await using db = await olderDatabase(backend);
    const stderr = await serveUntilLoaded(["--database", db.url], { cwd: db.dir });
    const line = stderr.split("\n").find((l) => l.includes("migrated the schema"));
    assert(line !== undefined, stderr);
    const record = JSON.parse(line);
    assertEquals(
      [record.level, record.message],
      [
        "WARN",
        `migrated the schema of "${
          describeTarget(db.target)
        }" from version ${OLDER} to ${SCHEMA_VERSION}; services of older releases cannot start on it until upgraded`,
      ],
    );
    assertEquals(await schemaVersionOf(db), SCHEMA_VERSION);
  });

  Deno.test(`schema upgrade[${backend}]: a table dropped by hand is named by a read, not made again; db migrate makes it`, async () => {
    await using db = await freshDatabase(backend);
    const add = await jm(db, "job", "add", "a", "--command", "true", "--cron", "@daily");
    assertEquals(add.code, 0, add.stderr);
    await rawQuery(db, "DROP TABLE jm_nodes");
    const list = await jm(db, "job", "list");
    assertEquals({ code: list.code, stdout: list.stdout, stderr: list.stderr }, {
      code: 1,
      stdout: "",
      stderr: `jobsmanager: ${
        describeTarget(db.target)
      } lacks the table jm_nodes of its schema (dropped by hand?); this command changed nothing. Create it again, empty, with \`jobsmanager db migrate\`\n`,
    });
    const migrate = await jm(db, "db", "migrate");
    assertEquals(migrate.code, 0, migrate.stderr);
    assertStringIncludes(migrate.stdout, "created the missing table jm_nodes again, empty");
    const again = await jm(db, "job", "list");
    assertEquals([again.code, again.stderr], [0, ""]);
    // A command that adds jobs makes it again too, and says so.
    await rawQuery(db, "DROP TABLE jm_nodes");
    const added = await jm(db, "job", "add", "b", "--command", "true", "--cron", "@daily");
    assertEquals([added.code, added.stderr], [
      0,
      `jobsmanager: ${
        describeTarget(db.target)
      }: created the missing table jm_nodes again, empty\n`,
    ]);
  });

  Deno.test(`schema upgrade[${backend}]: a new database is made by the first job added, as before`, async () => {
    await using db = await freshDatabase(backend);
    const add = await jm(db, "job", "add", "a", "--command", "true", "--cron", "@daily");
    assertEquals(add.code, 0, add.stderr);
    assertEquals(await schemaVersionOf(db), SCHEMA_VERSION);
    const list = await jm(db, "job", "list");
    assertEquals([list.code, list.stderr], [0, ""]);
    assertStringIncludes(list.stdout, "a");
  });
}

for (const backend of BACKENDS) {
  Deno.test(`schema upgrade[${backend}]: first commands at once on a new database wait for the one that makes its schema`, async () => {
    await using db = await freshDatabase(backend);
    // MySQL commits each statement of a migration: the others saw a schema half made, and
    // were told it was older and to migrate it.
    const adds = await Promise.all(
      Array.from(
        { length: 6 },
        (_, i) => jm(db, "job", "add", `host${i}`, "--command", "true", "--cron", "@daily"),
      ),
    );
    assertEquals(adds.map((r) => r.code), adds.map(() => 0), adds.map((r) => r.stderr).join(""));
    // The one that made the SQLite file, or the MySQL tables, says so; nothing else is said.
    const said = adds.map((r) => r.stderr).filter((e) => e !== "");
    assertEquals(
      said.map((e) =>
        e.startsWith(
          backend === "sqlite"
            ? "jobsmanager: created a new, empty database "
            : "jobsmanager: created jobsmanager's tables in the empty database ",
        )
      ),
      [true],
      said.join(""),
    );
    const jobs = await rawQuery(db, "SELECT id FROM jm_jobs ORDER BY id");
    assertEquals(jobs.map((r) => r.id), Array.from({ length: 6 }, (_, i) => `host${i}`));
  });
}

mysqlTest(
  "schema upgrade[mysql]: a user allowed only rows is told the schema is older, not refused a CREATE first",
  async () => {
    await using db = await olderDatabase("mysql");
    const t = db.target;
    assert(t.kind === "mysql");
    const user = `jm_rows_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
    await rawQuery(db, `CREATE USER '${user}'@'%' IDENTIFIED BY 'pw-${user}'`);
    try {
      await rawQuery(
        db,
        `GRANT SELECT, INSERT, UPDATE, DELETE ON \`${t.database}\`.* TO '${user}'@'%'`,
      );
      const url = new URL(db.url);
      url.username = user;
      url.password = `pw-${user}`;
      const add = await cli(
        ["--database", url.toString(), "job", "add", "b", "--command", "true", "--cron", "@daily"],
        { cwd: db.dir },
      );
      assertEquals(add.code, 1, add.stderr);
      assertStringIncludes(add.stderr, ` has schema version ${OLDER}, older than this jobsmanager`);
      assert(!add.stderr.includes("denied"), add.stderr);
    } finally {
      await rawQuery(db, `DROP USER '${user}'@'%'`);
    }
  },
);

Deno.test("schema upgrade[sqlite]: a read of an older schema says so while another process holds the write lock", async () => {
  await using db = await olderDatabase("sqlite");
  assert(db.target.kind === "sqlite");
  const holder = new DatabaseSync(db.target.path);
  try {
    // SQLite's migrations are one transaction: an older schema is older, read without the lock.
    holder.exec("PRAGMA journal_mode = WAL");
    holder.exec("BEGIN IMMEDIATE");
    const list = await jm(db, "job", "list");
    assertEquals([list.code, list.stderr], [1, refusal(db, false)]);
  } finally {
    holder.exec("ROLLBACK");
    holder.close();
  }
});
