/**
 * A MySQL server whose defaults are not the usual ones, as operators set
 * them (my.cnf, `SET GLOBAL`): every connection sets its own session, so
 * what is written is stored as written, nothing else is overwritten, and
 * every row is read. On a private server (the shared one must not change).
 */
import { assertEquals, assertMatch } from "./assert.ts";
import { cli, serveUntilLoaded } from "./helpers.ts";
import { describeTarget } from "../src/store/target.ts";
import { privateMariadb, privateMariadbMissing } from "./private_mariadb.ts";
import { openStore } from "../src/store/open.ts";
import { resolveTarget } from "../src/config/database.ts";
import { defaultSettings } from "../src/config/config.ts";
import { buildJob } from "../src/domain/job.ts";
import { MysqlDriver } from "../src/store/mysql.ts";

const ignore = privateMariadbMissing() !== null;

Deno.test({
  name:
    "mysql session: with sql_quote_show_create off on the server, the original JobsManager's jm_jobs is still refused untouched",
  ignore,
  fn: async () => {
    await using server = await privateMariadb();
    await server.sql("SET GLOBAL sql_quote_show_create = 0");
    await server.sql(
      "CREATE TABLE jobs.jm_jobs (id VARCHAR(191) NOT NULL PRIMARY KEY, next_run_time DOUBLE, job_state BLOB NOT NULL)",
    );
    const listed = await cli(["--database", server.url, "job", "list"]);
    assertEquals(listed.code, 1, listed.stdout);
    assertMatch(
      listed.stderr,
      /is the original JobsManager's APScheduler job store .*changed nothing/,
    );
    assertEquals(
      await server.sql(
        "SELECT COUNT(*) AS n FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'jobs'",
      ),
      [{ n: 3 }],
    );
  },
});

/** The server's global defaults that broke it (helper-124's attack), all at once. */
const ODD_DEFAULTS =
  "SET GLOBAL sql_mode = 'NO_BACKSLASH_ESCAPES', autocommit = 0, completion_type = 'CHAIN', sql_select_limit = 2, time_zone = '+05:30', sql_safe_updates = 1, wait_timeout = 2, tx_isolation = 'SERIALIZABLE'";

/** With a character set it imposes whatever the client asks (an old my.cnf recipe). */
const UTF8MB3_ONLY = [
  "--character-set-server=utf8mb3",
  "--collation-server=utf8mb3_general_ci",
  "--skip-character-set-client-handshake",
];

Deno.test({
  name:
    "mysql session: odd server defaults: commands with quotes and backslashes, emoji, every job listed",
  ignore,
  fn: async () => {
    await using server = await privateMariadb(UTF8MB3_ONLY);
    await server.sql(ODD_DEFAULTS);
    const jm = (...args: string[]) => cli(["--database", server.url, ...args]);
    const command = `echo 'it''s "quoted"' \\ back\\slash; printf '%s\\n' done`;
    const added = await jm(
      "job",
      "add",
      "quoted",
      "--command",
      command,
      "--description",
      "nightly 😀 ✓",
      "--cron",
      "0 3 * * *",
    );
    assertEquals(added.code, 0, added.stderr);
    for (const id of ["a", "b", "c"]) {
      const more = await jm("job", "add", id, "--command", "true", "--cron", "0 4 * * *");
      assertEquals(more.code, 0, more.stderr);
    }
    const shown = JSON.parse((await jm("job", "show", "quoted", "--json")).stdout);
    assertEquals([shown.command, shown.description], [command, "nightly 😀 ✓"]);
    const listed = JSON.parse((await jm("job", "list", "--json")).stdout);
    assertEquals(listed.map((j: { id: string }) => j.id), ["a", "b", "c", "quoted"]);
  },
});

Deno.test({
  name:
    "mysql session: a run's output holding a quote and a comment is stored as it is, and no other run changes",
  ignore,
  fn: async () => {
    await using server = await privateMariadb();
    await server.sql(ODD_DEFAULTS);
    const target = resolveTarget({ ...defaultSettings(), "db.url": server.url });
    const store = openStore(target);
    try {
      await store.migrate();
      await store.changeJob(
        "j",
        () => buildJob("j", { command: "true", cron: "* * * * *" }, null, 0),
      );
      const fire = (at: number) => ({
        job_id: "j",
        scheduled_at: at,
        status: "running" as const,
        trigger: "schedule" as const,
        node_id: "n1",
      });
      const [first, second] = await store.claimRuns([fire(60_000), fire(120_000)]);
      await store.updateRuns([
        { id: first!, update: { status: "failed", exit_code: 3, stdout: "kept\n" } },
      ]);
      // Printed by a job: with backslash escapes off, `' -- ` ended the string and commented out
      // the WHERE that follows it.
      const output = 'x\\\' -- \\n"y"\n';
      await store.updateRuns([
        { id: second!, update: { status: "success", exit_code: 0, stdout: output } },
      ]);
      // Read through a store of its own: what was written was committed.
      const other = openStore(target);
      try {
        const runs = await other.listRuns({ job_id: "j", limit: 10 });
        assertEquals(
          runs.map((r) => [r.id, r.status, r.exit_code, r.stdout]).sort(),
          [[first, "failed", 3, "kept\n"], [second, "success", 0, output]].sort(),
        );
      } finally {
        await other.close();
      }
    } finally {
      await store.close();
    }
  },
});

Deno.test({
  name: "mysql session: each connection's own settings, whatever the server's defaults",
  ignore,
  fn: async () => {
    await using server = await privateMariadb(UTF8MB3_ONLY);
    await server.sql(ODD_DEFAULTS);
    const target = resolveTarget({ ...defaultSettings(), "db.url": server.url });
    if (target.kind !== "mysql") throw new Error(`not MySQL: ${server.url}`);
    const driver = new MysqlDriver(target);
    try {
      const [row] = await driver.all(
        "SELECT @@SESSION.sql_mode AS sql_mode, @@SESSION.autocommit AS autocommit, @@SESSION.completion_type AS completion_type, @@SESSION.sql_select_limit AS sql_select_limit, @@SESSION.time_zone AS time_zone, @@SESSION.sql_safe_updates AS sql_safe_updates, @@SESSION.character_set_client AS charset, @@SESSION.wait_timeout AS wait_timeout, @@SESSION.tx_isolation AS isolation",
      );
      assertEquals({ ...row, sql_select_limit: String(row.sql_select_limit) }, {
        sql_mode: "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION",
        autocommit: 1,
        completion_type: "NO_CHAIN",
        sql_select_limit: "18446744073709551615",
        time_zone: "+00:00",
        sql_safe_updates: 0,
        charset: "utf8mb4",
        wait_timeout: 120,
        isolation: "REPEATABLE-READ",
      });
    } finally {
      await driver.close();
    }
  },
});

Deno.test({
  name:
    "mysql session: serve warns at its start of a binary log in STATEMENT format, naming the fix; ROW is said nothing of",
  ignore,
  fn: async () => {
    await using server = await privateMariadb(["--log-bin", "--binlog-format=STATEMENT"]);
    const target = resolveTarget({ ...defaultSettings(), "db.url": server.url });
    const caution =
      "its binary log has binlog_format STATEMENT: a replica may apply retention's ordered deletes to other rows than this server did, and the server warns at every claim; set binlog_format to ROW or MIXED (SET GLOBAL binlog_format = 'ROW', and in my.cnf)";
    // Its folder, where serve writes its log file.
    const cwd = await Deno.makeTempDir({ prefix: "jm-test-" });
    const started = async () =>
      (await serveUntilLoaded(["--database", server.url], { cwd })).split("\n")
        .filter((l) => l.includes("binlog_format")).map((l) => JSON.parse(l))
        .map((r) => [r.level, r.message]);
    try {
      assertEquals(await started(), [["WARN", `"${describeTarget(target)}": ${caution}`]]);
      await server.sql("SET GLOBAL binlog_format = 'ROW'");
      assertEquals(await started(), []);
    } finally {
      await Deno.remove(cwd, { recursive: true });
    }
  },
});
