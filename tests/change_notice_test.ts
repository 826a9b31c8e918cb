/**
 * Change notices (store/change_notice.ts, daemon/change_notices.ts): a
 * `serve` on MySQL that polls once an hour applies a `job add` and runs a
 * `job run` request through the notices the CLI leaves; a notice folder
 * the CLI cannot write in fails no command; a service that cannot watch
 * one says so and polls; one database's folder is named apart from
 * another's, and alike however the loopback address is spelled.
 */
import { assert, assertEquals } from "./assert.ts";
import { cli, freshDatabase, MYSQL_URL, mysqlTest, type TestDatabase, waitFor } from "./helpers.ts";
import { Serve, sql, writeConfig } from "./serve_helpers.ts";
import { noticeFolder } from "../src/store/change_notice.ts";
import { describeTarget, type MysqlTarget } from "../src/store/target.ts";

/** The CLI on `db` with `env`, required to exit 0. */
async function jmWith(db: TestDatabase, env: Record<string, string>, ...args: string[]) {
  const result = await cli(["--database", db.url, ...args], { cwd: db.dir, env });
  assertEquals(
    result.code,
    0,
    `jobsmanager ${args.join(" ")} exited ${result.code}: ${result.stderr}${result.stdout}`,
  );
  return result;
}

/** Wait until serve has loaded its jobs (its log says so on stderr). */
async function loaded(serve: Serve): Promise<void> {
  await waitFor(() => /"message":"loaded /.test(serve.stderr), {
    timeoutMs: 30_000,
    what: "serve to load its jobs",
    detail: () => serve.stderr,
  });
}

async function runsOf(db: TestDatabase, jobId: string): Promise<Record<string, unknown>[]> {
  return await sql(db, "SELECT `trigger`, status FROM jm_runs WHERE job_id = ?", [jobId]);
}

mysqlTest(
  "notices: serve, polling once an hour, applies a `job add` and runs a `job run` request at once",
  async () => {
    await using db = await freshDatabase("mysql");
    const env = { JM_NOTICE_DIR: `${db.dir}/notices` };
    await using serve = new Serve(db, await writeConfig(db, { reload_interval: 3600 }), env);
    await loaded(serve);
    assert(
      serve.stderr.includes(`"dir":"${env.JM_NOTICE_DIR}/`) &&
        serve.stderr.includes("for notices of changes"),
      `serve does not say it watches the notice directory:\n${serve.stderr}`,
    );

    await jmWith(db, env, "job", "add", "tick", "--command", "true", "--second", "*");
    await waitFor(async () => (await runsOf(db, "tick")).length > 0, {
      timeoutMs: 60_000,
      what: "a run of the job added (the next timed poll is an hour away: only a notice brings it)",
      detail: async () => `${JSON.stringify(await runsOf(db, "tick"))}\n${serve.stderr}`,
    });

    await jmWith(db, env, "job", "add", "once", "--command", "true", "--hour", "3", "--disabled");
    await jmWith(db, env, "job", "run", "once");
    await waitFor(
      async () => (await runsOf(db, "once")).some((r) => r.status === "success"),
      {
        timeoutMs: 60_000,
        what: "the `job run` request to run (the next timed poll is an hour away)",
        detail: async () => `${JSON.stringify(await runsOf(db, "once"))}\n${serve.stderr}`,
      },
    );
  },
);

/**
 * Make directory `dir` one no process may create a file in: mode 0555 and,
 * for root, whom modes do not stop, immutable (chattr +i). Returns how to
 * undo it, or null where this machine cannot (no chattr, a file system
 * without the attribute).
 */
function makeUnwritable(dir: string): (() => void) | null {
  const chattr = (flag: string) => {
    try {
      return new Deno.Command("chattr", { args: [flag, dir], stdout: "null", stderr: "null" })
        .outputSync().success;
    } catch {
      return false;
    }
  };
  Deno.chmodSync(dir, 0o555);
  const immutable = Deno.uid() === 0 && chattr("+i");
  const undo = () => {
    if (immutable) chattr("-i");
    Deno.chmodSync(dir, 0o755);
  };
  try {
    Deno.writeTextFileSync(`${dir}/probe`, "");
    Deno.removeSync(`${dir}/probe`);
  } catch {
    return undo;
  }
  undo();
  return null;
}

const unwritableHere = (() => {
  const dir = Deno.makeTempDirSync({ prefix: "jm-probe-" });
  const undo = makeUnwritable(dir);
  undo?.();
  Deno.removeSync(dir);
  return undo !== null;
})();

Deno.test({
  name: unwritableHere
    ? "notices: a notice folder the CLI cannot write in fails no command"
    : "notices: skipped the unwritable notice folder (as root, chattr +i is needed to make one)",
  ignore: MYSQL_URL === "" || !unwritableHere,
  async fn() {
    await using db = await freshDatabase("mysql");
    const env = { JM_NOTICE_DIR: `${db.dir}/notices` };
    // As a service would have made it, then closed to everyone.
    const folder = `${env.JM_NOTICE_DIR}/${await noticeFolder(db.target as MysqlTarget)}`;
    await Deno.mkdir(folder, { recursive: true });
    const undo = makeUnwritable(folder)!;
    try {
      const added = await jmWith(
        db,
        env,
        "job",
        "add",
        "quiet",
        "--command",
        "true",
        "--hour",
        "3",
      );
      // Of the empty database's tables, not of the notice.
      assertEquals(
        added.stderr,
        `jobsmanager: created jobsmanager's tables in the empty database ${
          describeTarget(db.target)
        }; if the service uses another, point this command at it with --database or --config\n`,
      );
      await jmWith(db, env, "reload");
      const jobs = await sql(db, "SELECT id FROM jm_jobs");
      assertEquals(jobs.map((j) => j.id), ["quiet"]);
      assertEquals([...Deno.readDirSync(folder)], [], "a notice was made in the folder");
    } finally {
      undo();
    }
  },
});

mysqlTest(
  "notices: a service that cannot watch its notice directory says why and polls every reload_interval",
  async () => {
    await using db = await freshDatabase("mysql");
    const env = { JM_NOTICE_DIR: "/proc/no-such-directory/notices" };
    await using serve = new Serve(db, await writeConfig(db, { reload_interval: 0.5 }), env);
    await loaded(serve);
    assert(
      serve.stderr.includes("cannot watch a directory for notices of changes"),
      `serve does not say it cannot watch:\n${serve.stderr}`,
    );
    await jmWith(db, env, "job", "add", "tick", "--command", "true", "--second", "*");
    await waitFor(async () => (await runsOf(db, "tick")).length > 0, {
      timeoutMs: 30_000,
      what: "a run of the job added, found by the poll",
      detail: () => serve.stderr,
    });
  },
);

Deno.test("notices: one database's are named apart from another's, and alike for every loopback spelling", async () => {
  const target = (host: string, port: number, database: string): MysqlTarget => ({
    kind: "mysql",
    host,
    port,
    user: "root",
    password: "",
    database,
    charset: "utf8mb4",
    poolSize: 1,
    connectTimeoutMs: 1000,
  });
  const jobs = await noticeFolder(target("127.0.0.1", 3306, "jobs"));
  assertEquals(await noticeFolder(target("localhost", 3306, "jobs")), jobs);
  assertEquals(await noticeFolder(target("LOCALHOST", 3306, "jobs")), jobs);
  const others = [
    await noticeFolder(target("127.0.0.1", 3306, "jobs2")),
    await noticeFolder(target("127.0.0.1", 3307, "jobs")),
    await noticeFolder(target("db.example", 3306, "jobs")),
  ];
  assertEquals(new Set([jobs, ...others]).size, 4, JSON.stringify([jobs, ...others]));
});
