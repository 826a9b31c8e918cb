/**
 * A database user that lacks SELECT on jobsmanager's tables (`REVOKE
 * SELECT`): the service cannot see job changes, cancels or `job run`
 * requests, so /readyz says `degraded` and names the GRANT the user
 * needs, and /metrics says it (`jobsmanager_database_reads_refused` 1,
 * `jobsmanager_database_up` 0); `/api/v1/health` and `/api/v1/status`
 * answer (not a 500), saying the database refuses reads, with the rest as
 * last read; the other routes answer 503 saying so. Once SELECT is granted
 * again, all is as before. A read refused is no write refused. Every CLI
 * command that reads (`status`, `job list`, `logs --follow` …), as such a
 * user, says the database refuses its reads and the GRANT, and exits 1; a
 * job write as a user that lacks INSERT, UPDATE and DELETE says the
 * database refuses writes and the GRANT.
 *
 * MariaDB only: SQLite has no users and no grants, so no read is refused
 * there. In-process daemon on the fake clock, a real user granted and
 * revoked SELECT by the server (jmt_*, dropped at the end).
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import {
  admin,
  cli,
  CliProcess,
  freshDatabase,
  jm,
  mysqlConnection,
  mysqlTest,
  type TestDatabase,
  waitFor,
} from "./helpers.ts";
import { DaemonHarness } from "./daemon_harness.ts";
import { type Api, gaugeValues, startApi } from "./http_harness.ts";
import { readinessOf, readyState } from "../src/http/health.ts";
import { Metrics } from "../src/http/metrics.ts";
import { defaultSettings } from "../src/config/config.ts";
import { resolveTarget } from "../src/config/database.ts";
import { openStore } from "../src/store/open.ts";
import type { Store } from "../src/store/store.ts";

/**
 * A user of its own on `db` (made by `create`, once its tables are),
 * granted SELECT, INSERT, UPDATE, DELETE table by table, with `revoke` and
 * `grant` of SELECT and `open` of a store as it; dropped when disposed.
 * Table by table: the server checks a table's privileges at every
 * statement, a database's only when a connection chooses it, so a pool's
 * open connections would keep a `db.*` SELECT revoked.
 */
function limitedUser(db: TestDatabase) {
  const t = db.target;
  if (t.kind !== "mysql") throw new Error(`${db.backend} is not a MySQL test database`);
  const database = t.database;
  const name = `jmt_${crypto.randomUUID().slice(0, 8)}`;
  let tables: string[] = [];
  const onEach = async (sql: (table: string) => string) => {
    const admin = await mysqlConnection(db);
    try {
      for (const table of tables) await admin.query(sql(`\`${database}\`.\`${table}\``));
    } finally {
      await admin.end();
    }
  };
  const url = new URL(db.url);
  url.username = name;
  url.password = `pw-${name}`;
  return {
    name,
    async create() {
      const admin = await mysqlConnection(db);
      try {
        const [rows] = await admin.query("SHOW TABLES");
        tables = (rows as Record<string, string>[]).map((row) => Object.values(row)[0]);
        await admin.query(`CREATE USER '${name}'@'%' IDENTIFIED BY 'pw-${name}'`);
      } finally {
        await admin.end();
      }
      await onEach((t) => `GRANT SELECT, INSERT, UPDATE, DELETE ON ${t} TO '${name}'@'%'`);
    },
    revoke: () => onEach((t) => `REVOKE SELECT ON ${t} FROM '${name}'@'%'`),
    grant: () => onEach((t) => `GRANT SELECT ON ${t} TO '${name}'@'%'`),
    revokeWrites: () => onEach((t) => `REVOKE INSERT, UPDATE, DELETE ON ${t} FROM '${name}'@'%'`),
    open: (): Store => openStore(resolveTarget({ ...defaultSettings(), "db.url": url.toString() })),
    /** `--database` as the user, for the CLI. */
    url: url.toString(),
    database,
    async [Symbol.asyncDispose]() {
      // The test database is dropped by now: connected to none.
      await admin((c) => c.query(`DROP USER IF EXISTS '${name}'@'%'`));
    },
  };
}

type DatabaseState = { state: string; detail: string };

mysqlTest(
  "daemon and api[mysql]: while the user lacks SELECT, /readyz is degraded and /health and /status say the database refuses reads, naming the GRANT; granted, ready again",
  async () => {
    const db = await freshDatabase("mysql");
    // Dropped last, once the daemon has stopped (and with it the database).
    await using user = limitedUser(db);
    await using h = await DaemonHarness.create(db, { store: () => user.open() });
    await user.create();
    const daemon = await h.start();
    const metrics = new Metrics();
    metrics.watch(() => daemon.vitals);
    const gauges = () =>
      gaugeValues(metrics, "jobsmanager_database_up", "jobsmanager_database_reads_refused");
    // The daemon's store and the API's are the user's.
    const served = user.open();
    try {
      await using api = await startApi(db, {}, () => served, Deno.uid(), {
        readiness: () => Promise.resolve(readinessOf(daemon.vitals)),
      });
      const answers = async () => {
        const health = await api.call("GET", "/api/v1/health");
        const status = await api.call("GET", "/api/v1/status");
        return { health, status };
      };
      // Read once while granted: what is known later "as last read".
      const before = await answers();
      assertEquals(before.health.status, 200);
      assertEquals((before.status.body as { database: DatabaseState }).database.state, "up");
      assertEquals(await gauges(), ["1", "0"], "up and reads taken");

      await user.revoke();
      const readiness = await h.databaseNotOk("the refused reads to be said");
      assertEquals(readyState(readiness), "degraded");
      assertEquals(readiness.database.reads_refused, true);
      assertEquals(readiness.database.writes_refused, undefined, "a read refused is no write");
      const grant = new RegExp(
        `; user '${user.name}' needs SELECT, INSERT, UPDATE, DELETE on jobsmanager's database, .*: GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON \`${user.database}\`\\.\\* TO '${user.name}'@'<its host>'`,
      );
      assertMatch(
        readiness.database.detail,
        /^the database refuses reads: .*SELECT command denied to user .*; until it may read again, this service sees no job changes, cancels or `job run` requests$/,
      );
      assertMatch(readiness.database.detail, grant);
      assert(daemon.vitals.databaseOnline, "a refusal is no outage");
      assertEquals(await gauges(), ["0", "1"], "reads refused: not up");
      const readyz = await api.call("GET", "/readyz");
      assertEquals(readyz.status, 503);
      assertEquals((readyz.body as { status: string }).status, "degraded");

      const refused = await answers();
      for (const [what, answer] of Object.entries(refused)) {
        assertEquals(answer.status, 200, `${what}: ${JSON.stringify(answer.body)}`);
        const body = answer.body as { database: DatabaseState; read_at: string | null };
        assertEquals(body.database.state, "refuses reads", `${what}: ${JSON.stringify(body)}`);
        assertMatch(body.database.detail, /SELECT command denied to user/);
        assertMatch(body.database.detail, grant);
        // As last read, not now.
        assertEquals(
          body.read_at,
          (before[what as keyof typeof before].body as { read_at: string }).read_at,
          what,
        );
      }

      await user.grant();
      await h.until(async () => {
        if (!readinessOf(daemon.vitals).database.ok) await h.clock.advance(1000);
        return readinessOf(daemon.vitals).database.ok;
      }, `reads to be taken again (still: ${JSON.stringify(readinessOf(daemon.vitals))})`);
      assertEquals(readinessOf(daemon.vitals).database, { ok: true, detail: "reachable" });
      const after = await answers();
      for (const [what, answer] of Object.entries(after)) {
        assertEquals((answer.body as { database: DatabaseState }).database.state, "up", what);
      }
      assertEquals((await api.call("GET", "/readyz")).status, 200);
      assertEquals(await gauges(), ["1", "0"], "reads taken again");
    } finally {
      await served.close();
    }
  },
);

/** A store migrated by the test's own (root) user, for `user` to be granted its tables. */
async function migrated(db: TestDatabase): Promise<void> {
  const admin = db.open();
  try {
    await admin.migrate();
  } finally {
    await admin.close();
  }
}

/** The API served by a store of a limited user of its own (`limitedUser`), granted all it needs. */
async function withLimitedApi(
  fn: (api: Api, user: ReturnType<typeof limitedUser>) => Promise<void>,
): Promise<void> {
  await using db = await freshDatabase("mysql");
  await using user = limitedUser(db);
  await migrated(db);
  await user.create();
  const served = user.open();
  try {
    await using api = await startApi(db, {}, () => served);
    await fn(api, user);
  } finally {
    await served.close();
  }
}

/** An API error saying the database refuses `what`, for `denied` to `user`, ending with the GRANT. */
function refusal(user: ReturnType<typeof limitedUser>, what: string, denied: string): RegExp {
  return new RegExp(
    `^the database refuses ${what}: .*${denied} command denied to user '${user.name}'.*: GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON \`${user.database}\`\\.\\* TO '${user.name}'@'<its host>'$`,
  );
}

mysqlTest(
  "api[mysql]: while the user lacks SELECT, the other routes answer 503 saying the database refuses reads and the GRANT, not a 500",
  () =>
    withLimitedApi(async (api, user) => {
      const paths = [
        "/api/v1/jobs",
        "/api/v1/jobs/nightly",
        "/api/v1/jobs/nightly/next",
        "/api/v1/runs",
        "/api/v1/runs/1",
        "/api/v1/logs",
      ];
      for (const path of paths) {
        const answer = await api.call("GET", path);
        assert(answer.status !== 503, `${path} before: ${JSON.stringify(answer.body)}`);
      }
      await user.revoke();
      for (const path of paths) {
        const answer = await api.call("GET", path);
        assertEquals(answer.status, 503, `${path}: ${JSON.stringify(answer.body)}`);
        assertMatch(
          (answer.body as { error: string }).error,
          refusal(user, "reads", "SELECT"),
          path,
        );
      }
      await user.grant();
      assertEquals((await api.call("GET", "/api/v1/jobs")).status, 200, "granted again");
    }),
);

mysqlTest(
  "api[mysql]: while the user lacks INSERT, UPDATE and DELETE, a write answers 503 saying the database refuses writes and the GRANT, not a 500",
  () =>
    withLimitedApi(async (api, user) => {
      const add = (id: string) =>
        api.call("POST", "/api/v1/jobs", { body: { id, command: "true", second: "*/30" } });
      const first = await add("before");
      assertEquals(first.status, 201, JSON.stringify(first.body));
      await user.revokeWrites();
      const writes = [
        ["POST /api/v1/jobs", await add("after"), "INSERT"],
        ["DELETE /api/v1/jobs/before", await api.call("DELETE", "/api/v1/jobs/before"), "DELETE"],
      ] as const;
      for (const [what, answer, denied] of writes) {
        assertEquals(answer.status, 503, `${what}: ${JSON.stringify(answer.body)}`);
        assertMatch(
          (answer.body as { error: string }).error,
          refusal(user, "writes", denied),
          what,
        );
      }
      assertEquals((await api.call("GET", "/api/v1/jobs")).status, 200, "reads go on");
    }),
);

mysqlTest(
  "cli[mysql]: status as a user that lacks SELECT says the database refuses its reads and the GRANT, exits 1",
  async () => {
    await using db = await freshDatabase("mysql");
    await using user = limitedUser(db);
    await migrated(db);
    await user.create();
    await user.revoke();
    const grant =
      `: GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON \`${user.database}\`.* TO '${user.name}'@'<its host>'`;
    const text = await cli(["--database", user.url, "status"], { cwd: db.dir });
    assertEquals(text.code, 1, text.stderr);
    assertEquals(text.stdout, "");
    // The last line; before it, the warning that the password is given in --database.
    const line = text.stderr.trimEnd().split("\n").at(-1)!;
    assertMatch(
      line,
      new RegExp(
        `^jobsmanager: the database refuses this user's reads \\(it lacks SELECT on jobsmanager's tables\\): .*SELECT command denied to user '${user.name}'`,
      ),
    );
    assert(line.endsWith(grant), line);
    assert(!text.stderr.includes("    at "), `a stack trace: ${text.stderr}`);

    const json = await cli(["--json", "--database", user.url, "status"], { cwd: db.dir });
    assertEquals(json.code, 1, json.stderr);
    assertEquals(json.stdout, "");
    const failure = JSON.parse(json.stderr.trimEnd().split("\n").at(-1)!) as {
      error: { kind: string; message: string; exit_code: number };
    };
    assertEquals([failure.error.kind, failure.error.exit_code], ["refused", 1]);
    assertEquals(failure.error.message, line.replace(/^jobsmanager: /, ""));
  },
);

/**
 * The last line a CLI command run as `user` ends with, after exit 1 and
 * nothing on stdout; the lines before it are the warning that the password
 * is given in --database.
 */
async function failedAs(user: ReturnType<typeof limitedUser>, args: string[], cwd: string) {
  const text = await cli(["--database", user.url, ...args], { cwd });
  const what = args.join(" ");
  assertEquals([text.code, text.stdout], [1, ""], `${what}: ${text.stderr}`);
  assert(!text.stderr.includes("    at "), `${what}: a stack trace: ${text.stderr}`);
  return text.stderr.trimEnd().split("\n").at(-1)!;
}

/** `db` made, holding job nightly, and `user` created there (its privileges all granted). */
async function withNightly(db: TestDatabase, user: ReturnType<typeof limitedUser>): Promise<void> {
  await migrated(db);
  const added = await jm(db, "job", "add", "nightly", "--command", "true", "--cron", "0 3 * * *");
  assertEquals(added.code, 0, added.stderr);
  await user.create();
}

/** The GRANT `user` is told to be given, as a line ends with it. */
function grantOf(user: ReturnType<typeof limitedUser>): string {
  return `: GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON \`${user.database}\`.* TO '${user.name}'@'<its host>'`;
}

mysqlTest(
  "cli[mysql]: every command that reads, as a user that lacks SELECT, says once that the database refuses its reads, and the GRANT; exits 1",
  async () => {
    await using db = await freshDatabase("mysql");
    await using user = limitedUser(db);
    await withNightly(db, user);
    await user.revoke();
    const refused = new RegExp(
      `^jobsmanager: the database refuses this user's reads \\(it lacks SELECT on jobsmanager's tables\\): mysql://\\S+: SELECT command denied to user '${user.name}'`,
    );
    const commands = [
      ["job", "list"],
      ["job", "show", "nightly"],
      ["job", "next", "nightly"],
      ["runs", "list"],
      ["logs"],
      ["job", "add", "other", "--command", "true", "--cron", "* * * * *"],
      ["job", "disable", "nightly"],
    ];
    for (const args of commands) {
      const line = await failedAs(user, args, db.dir);
      assertMatch(line, refused, `${args.join(" ")}: ${line}`);
      assert(line.endsWith(grantOf(user)), `${args.join(" ")}: ${line}`);
      assertEquals(line.split("refuses").length, 2, `said once: ${line}`);
    }
    const json = await failedAs(user, ["--json", "job", "list"], db.dir);
    const failure = JSON.parse(json) as {
      error: { kind: string; message: string; exit_code: number };
    };
    assertEquals([failure.error.kind, failure.error.exit_code], ["refused", 1]);
    assertMatch(`jobsmanager: ${failure.error.message}`, refused);
  },
);

mysqlTest(
  "cli[mysql]: a job write, as a user that lacks INSERT, UPDATE and DELETE, says the database refuses writes, and the GRANT; exits 1; reads go on",
  async () => {
    await using db = await freshDatabase("mysql");
    await using user = limitedUser(db);
    await withNightly(db, user);
    await user.revokeWrites();
    const commands = [
      [["job", "add", "other", "--command", "true", "--cron", "* * * * *"], "INSERT"],
      [["job", "disable", "nightly"], "(INSERT|UPDATE)"],
      [["job", "rm", "nightly"], "(INSERT|DELETE)"],
    ] as const;
    for (const [args, denied] of commands) {
      const line = await failedAs(user, [...args], db.dir);
      assertMatch(
        line,
        new RegExp(
          `^jobsmanager: the database refuses writes: mysql://\\S+: ${denied} command denied to user '${user.name}'`,
        ),
        `${args.join(" ")}: ${line}`,
      );
      assert(line.endsWith(grantOf(user)), `${args.join(" ")}: ${line}`);
    }
    const json = await failedAs(user, ["--json", "job", "rm", "nightly"], db.dir);
    const failure = JSON.parse(json) as { error: { kind: string; exit_code: number } };
    assertEquals([failure.error.kind, failure.error.exit_code], ["refused", 1]);
    const list = await cli(["--database", user.url, "job", "list"], { cwd: db.dir });
    assertEquals(list.code, 0, list.stderr);
    assertMatch(list.stdout, /nightly/);
  },
);

mysqlTest(
  "cli[mysql]: logs --follow, its user's SELECT revoked, says the database refuses its reads, and the GRANT; follows on once granted",
  async () => {
    await using db = await freshDatabase("mysql");
    await using user = limitedUser(db);
    await migrated(db);
    await user.create();
    await using f = new CliProcess(["--database", user.url, "logs", "--follow"], {
      cwd: db.dir,
    });
    const said = (text: string, what: string) =>
      waitFor(() => f.stderr.includes(text), {
        timeoutMs: 20_000,
        what,
        detail: () => `running: ${f.running}\nstderr:\n${f.stderr}`,
      });
    await said("no log lines", "logs to say it has none to show, and follow");
    await user.revoke();
    await said("still following", "follow to say it cannot read the log");
    const line = f.stderr.split("\n").find((l) => l.includes("still following"))!;
    assertMatch(
      line,
      new RegExp(
        `^jobsmanager: cannot read the log: the database refuses this user's reads \\(it lacks SELECT on jobsmanager's tables\\): mysql://\\S+: SELECT command denied to user '${user.name}'.*; still following, trying again until Ctrl-C$`,
      ),
    );
    assert(line.includes(grantOf(user)), line);
    await user.grant();
    await said("the database answers again", "follow to read again once granted");
    assertEquals((await f.stop("SIGINT", 10_000)).status.code, 0, f.stderr);
  },
);
