/**
 * Jobs must not silently go nowhere (issue 8, point 1): a command that
 * creates a new database says so, naming the path; every job write and
 * `reload` says whether a live service uses this database, by the
 * heartbeats in `jm_nodes`, and how to start one when none does.
 */
import { assertEquals, assertStringIncludes } from "./assert.ts";
import { DatabaseSync } from "node:sqlite";
import { describeTarget } from "../src/store/target.ts";
import {
  BACKENDS,
  cli,
  CliProcess,
  freshDatabase,
  jm,
  mysqlTest,
  rawQuery,
  saveNodes,
  serviceRow,
  type TestDatabase,
  waitFor,
} from "./helpers.ts";

const ADD = ["job", "add", "a", "--command", "echo a", "--cron", "0 0 1 1 *"];
const DEFAULT_CLAUSE = " (the default: no --database, $JM_DATABASE_URL or config file names one)";
const POINT_ELSEWHERE =
  "; if the service uses another, point this command at it with --database or --config\n";

Deno.test("cli: the command that creates the default database says so, naming its path", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "jm-cli-created-" }));
  try {
    const first = await cli(ADD, { cwd: dir });
    assertEquals([first.code, first.stderr], [
      0,
      `jobsmanager: created a new, empty database ${dir}/jobsmanager.db${DEFAULT_CLAUSE}${POINT_ELSEWHERE}`,
    ]);
    const again = await cli(["job", "list"], { cwd: dir });
    assertEquals([again.code, again.stderr], [0, ""]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: a SQLite file holding only the original's jm_jobs_apscheduler is said to get jobsmanager's tables, once", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "jm-cli-created-" }));
  try {
    // The original JobsManager's database, its job store moved aside as jobsmanager asks.
    const original = new DatabaseSync(`${dir}/jobs.db`);
    original.exec(
      "CREATE TABLE jm_jobs_apscheduler (id VARCHAR(191) PRIMARY KEY, next_run_time FLOAT, job_state BLOB NOT NULL)",
    );
    original.close();
    // Without the note, the tables were made silently, as in a database jobsmanager had made.
    for (const command of [ADD, ["db", "migrate"]]) {
      const r = await cli(["--database", "sqlite:jobs.db", ...command], { cwd: dir });
      assertEquals(
        [r.code, r.stderr],
        [
          0,
          command === ADD
            ? `jobsmanager: created jobsmanager's tables in the database ${dir}/jobs.db, which held none${POINT_ELSEWHERE}`
            : "",
        ],
        command.join(" "),
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The "created …" lines of `serve` started on sqlite:jobs.db in `dir` until it has loaded its jobs. */
async function createdSaidByServe(dir: string): Promise<string[]> {
  await using serve = new CliProcess(["--database", "sqlite:jobs.db", "serve"], { cwd: dir });
  await waitFor(() => serve.stderr.includes('"loaded '), {
    timeoutMs: 30_000,
    what: "serve to load its jobs",
    detail: () => serve.stderr,
  });
  serve.signal("SIGTERM");
  assertEquals((await serve.exit(30_000)).code, 0, serve.stderr);
  return serve.stderr.split("\n").filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l).message as string).filter((m) => m.startsWith("created "));
}

Deno.test("serve that creates its SQLite database says so, naming its absolute path; started on it again, not", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "jm-serve-created-" }));
  // The path given is relative: the warning names the file as a command run elsewhere finds it.
  const database = JSON.stringify(`sqlite:${dir}/jobs.db`);
  const made =
    `created a new, empty database ${database}; add jobs with \`jobsmanager job add --database ${database} …\``;
  try {
    for (const first of [true, false]) {
      assertEquals(
        await createdSaidByServe(dir),
        first ? [made] : [],
        `${first ? "first" : "second"} start`,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve on a SQLite file holding only the original's jm_jobs_apscheduler says it made jobsmanager's tables there", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "jm-serve-created-" }));
  const database = JSON.stringify(`sqlite:${dir}/jobs.db`);
  try {
    const original = new DatabaseSync(`${dir}/jobs.db`);
    original.exec(
      "CREATE TABLE jm_jobs_apscheduler (id VARCHAR(191) PRIMARY KEY, next_run_time FLOAT, job_state BLOB NOT NULL)",
    );
    original.close();
    assertEquals(await createdSaidByServe(dir), [
      `created jobsmanager's tables in the database ${database}, which held none; add jobs with \`jobsmanager job add --database ${database} …\``,
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

mysqlTest(
  "cli[mysql]: the commands that add jobs to an empty MySQL database say they created its tables, naming it",
  async () => {
    await using from = await freshDatabase("mysql");
    await using to = await freshDatabase("mysql");
    const made = (db: TestDatabase) =>
      `jobsmanager: created jobsmanager's tables in the empty database ${
        describeTarget(db.target)
      }${POINT_ELSEWHERE}`;
    const first = await jm(from, ...ADD);
    assertEquals([first.code, first.stderr], [0, made(from)]);
    const again = await jm(from, "job", "add", "b", "--command", "echo b", "--cron", "0 0 1 1 *");
    assertEquals([again.code, again.stderr], [0, ""]);
    const exported = await jm(from, "export");
    assertEquals(exported.code, 0, exported.stderr);
    const applied = await cli(["--database", to.url, "apply", "-"], {
      cwd: to.dir,
      input: exported.stdout,
    });
    assertEquals([applied.code, applied.stderr], [0, made(to)]);
  },
);

mysqlTest(
  "cli[mysql], serve[mysql]: a MySQL database holding only the original's jm_jobs_apscheduler is said to get jobsmanager's tables, not to be empty",
  async () => {
    const original =
      "CREATE TABLE jm_jobs_apscheduler (id VARCHAR(191) PRIMARY KEY, next_run_time DOUBLE, job_state BLOB NOT NULL)";
    await using db = await freshDatabase("mysql");
    await rawQuery(db, original);
    const added = await jm(db, ...ADD);
    assertEquals([added.code, added.stderr], [
      0,
      `jobsmanager: created jobsmanager's tables in the database ${
        describeTarget(db.target)
      }, which held none${POINT_ELSEWHERE}`,
    ]);
    await using served = await freshDatabase("mysql");
    await rawQuery(served, original);
    await using serve = new CliProcess(["serve"], {
      cwd: served.dir,
      env: { JM_DATABASE_URL: served.url },
    });
    const line = await waitFor(
      () =>
        serve.stderr.split("\n").filter((l) => l.startsWith("{")).map((l) =>
          JSON.parse(l).message as string
        )
          .find((m) => m.startsWith("created ")),
      { timeoutMs: 30_000, what: "serve to say it made the tables", detail: () => serve.stderr },
    );
    const database = JSON.stringify(describeTarget(served.target));
    assertEquals(
      line,
      `created jobsmanager's tables in the database ${database}, which held none; add jobs with \`jobsmanager job add --database ${database} …\``,
    );
    serve.signal("SIGTERM");
    assertEquals((await serve.exit(30_000)).code, 0, serve.stderr);
  },
);

Deno.test("cli: a relative --database path that creates a file is named absolute", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "jm-cli-created-" }));
  try {
    const r = await cli(["--database", "sqlite:jobs.db", "db", "migrate"], { cwd: dir });
    assertEquals(r.code, 0, r.stderr);
    assertEquals(
      r.stderr,
      `jobsmanager: created a new, empty database ${dir}/jobs.db${POINT_ELSEWHERE}`,
    );
    // A preview or an error before the database is touched creates nothing.
    const bad = await cli(["--database", "sqlite:other.db", "job", "add", "b", "--minute", "61"], {
      cwd: dir,
    });
    assertEquals(bad.code, 2);
    assertEquals(await exists(`${dir}/other.db`), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: an empty --database or --config is a usage error, and no database is made", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "jm-cli-blank-" }));
  try {
    // A config named by $JM_CONFIG that `--config ""` must not pass over either.
    await Deno.writeTextFile(`${dir}/cfg.json`, '{ db: { url: "sqlite:named.db" } }');
    const database =
      "option '--database' is empty; give sqlite:PATH or mysql://USER@HOST:PORT/DB, or leave it out to use $JM_DATABASE_URL or the config's db.url";
    const config =
      "option '--config' is empty; give a config file, or leave it out to use $JM_CONFIG or the default paths";
    const cases: [string[], string][] = [
      [[...ADD, "--database", ""], database],
      [[...ADD, "--database", " "], database],
      [["--database=", ...ADD], database],
      [["-d", "", ...ADD], database],
      [[...ADD, "--config", ""], config],
      [[...ADD, "-c", " "], config],
    ];
    for (const [args, error] of cases) {
      const r = await cli(args, { cwd: dir, env: { JM_CONFIG: `${dir}/cfg.json` } });
      assertEquals(r, {
        code: 2,
        stdout: "",
        stderr: `jobsmanager: ${error} (see \`jobsmanager job add --help\`)\n`,
      }, JSON.stringify(args));
    }
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["cfg.json"], "no database made");
    // An empty variable is unset, as for every JM_* variable: the config names the database.
    const unset = await cli(ADD, {
      cwd: dir,
      env: { JM_CONFIG: `${dir}/cfg.json`, JM_DATABASE_URL: "" },
    });
    assertEquals(unset.code, 0, unset.stderr);
    assertStringIncludes(unset.stderr, `created a new, empty database ${dir}/named.db`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

for (const backend of BACKENDS) {
  const run = (db: TestDatabase, args: string[]) =>
    cli(["--database", db.url, ...args], { cwd: db.dir });

  Deno.test(`cli[${backend}]: with no live service, writes and reload say so and how to start one`, async () => {
    await using db = await freshDatabase(backend);
    // A service that stopped and one whose heartbeats stopped a minute ago are not live.
    await saveNodes(
      db,
      { ...serviceRow("stopped", { agoMs: 1000 }), stopped_at: Date.now() },
      serviceRow("stale", { agoMs: 60_000 }),
    );
    const none = `no live service uses ${
      describeTarget(db.target)
    }, so nothing applies this yet: start one with \`jobsmanager serve\` on this database, or point this command at the service's database with --database or --config`;
    const add = await run(db, ADD);
    assertEquals([add.code, add.stderr], [0, ""]);
    assertEquals(add.stdout.trimEnd().split("\n").at(-1), none);
    for (
      const [args, first] of [
        [["job", "update", "a", "--hour", "3"], "updated job 'a' (reload marker 2)"],
        [["job", "disable", "a"], "disabled job 'a' (reload marker 3)"],
        [["job", "enable", "a"], "enabled job 'a' (reload marker 4)"],
        [["reload"], "reload requested (marker 5)"],
        [["job", "remove", "a"], "removed job 'a' (reload marker 6)"],
      ]
    ) {
      const r = await run(db, args as string[]);
      assertEquals(r, { code: 0, stdout: `${first}\n${none}\n`, stderr: "" }, String(args));
    }
    const json = await run(db, ["--json", ...ADD]);
    assertEquals(JSON.parse(json.stdout).live_services, []);
    // A write that changes nothing applies nothing: no word about services.
    const same = await run(db, ["job", "enable", "a"]);
    assertEquals(same.stdout, "job 'a' is already enabled\n");
  });

  Deno.test(`cli[${backend}]: with live services, writes and reload name them`, async () => {
    await using db = await freshDatabase(backend);
    await saveNodes(db, serviceRow("alpha", { agoMs: 1000 }));
    const add = await run(db, ADD);
    assertEquals(add.code, 0, add.stderr);
    assertEquals(
      add.stdout.trimEnd().split("\n").at(-1),
      "the live service on this database (alpha) applies it within half a second if told of it (a write on its machine), else within 5 s, or its reload_interval if longer",
    );
    // Heartbeats written anew before each command: on a busy machine a command takes seconds.
    const beating = () =>
      saveNodes(
        db,
        serviceRow("alpha", { agoMs: 1000 }),
        serviceRow("beta", { agoMs: 2000 }),
        serviceRow("gone", { agoMs: 60_000 }),
      );
    await beating();
    const reload = await run(db, ["reload"]);
    assertEquals(
      reload.stdout,
      "reload requested (marker 2)\nthe 2 live services on this database (alpha, beta) apply it within half a second if told of it (a write on their machine), else within their reload_interval\n",
    );
    await beating();
    const json = JSON.parse((await run(db, ["--json", "job", "disable", "a"])).stdout);
    assertEquals([json.marker_id, json.live_services], [3, ["alpha", "beta"]]);
    await beating();
    assertStringIncludes(
      (await run(db, ["--json", "reload"])).stdout,
      '"live_services": [\n    "alpha",\n    "beta"\n  ]',
    );
  });
}

/** The read and change commands: none can do anything useful on a database not made yet. */
const REFUSING: string[][] = [
  ["export"],
  ["job", "list"],
  ["job", "show", "a"],
  ["job", "next", "a"],
  ["job", "update", "a", "--timeout", "5"],
  ["job", "remove", "a"],
  ["job", "disable", "a"],
  ["job", "run", "a"],
  ["runs", "list"],
  ["logs"],
  ["status"],
  ["reload"],
];
const CREATE_HINT =
  "check --database, $JM_DATABASE_URL or the config's db.url, or create it with `jobsmanager db migrate`, `jobsmanager serve` or a command that adds jobs (`jobsmanager job add`, `jobsmanager apply FILE`)\n";

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: a command that does not add jobs refuses a database not made yet, and makes none`, async () => {
    await using db = await freshDatabase(backend);
    await Deno.writeTextFile(
      `${db.dir}/jobs.json5`,
      "{jobs: [{id: 'a', command: 'true', cron: '@daily'}]}",
    );
    // A mistyped SQLite path; on MySQL, a database without jobsmanager's tables.
    const url = backend === "sqlite" ? `sqlite:${db.dir}/jobs.bd` : db.url;
    const refusal = backend === "sqlite"
      ? `jobsmanager: no database at ${db.dir}/jobs.bd; this command does not create one: ${CREATE_HINT}`
      : `jobsmanager: ${
        describeTarget(db.target)
      } holds no jobsmanager tables; this command does not create them: ${
        CREATE_HINT.replace("create it", "create them")
      }`;
    for (const args of REFUSING) {
      const r = await cli(["--database", url, ...args], { cwd: db.dir });
      assertEquals([r.code, r.stdout, r.stderr], [1, "", refusal], args.join(" "));
    }
    // A schedule's preview needs no database: it runs in this command's zone, and makes none.
    const preview = await cli(["--database", url, "job", "next", "--hour", "3", "-n", "1"], {
      cwd: db.dir,
    });
    assertEquals([preview.code, preview.stderr], [0, ""]);
    // A dry run plans against no jobs, says the database is not there, and makes none.
    const dry = await cli(["--database", url, "apply", "jobs.json5", "--dry-run"], {
      cwd: db.dir,
    });
    assertEquals([dry.code, dry.stderr], [0, ""]);
    assertStringIncludes(
      dry.stdout,
      `1 new, 0 same, 0 differ; nothing written: a dry run\n${
        backend === "sqlite"
          ? `no database at ${db.dir}/jobs.bd yet: \`jobsmanager apply\` without --dry-run creates it`
          : `${
            describeTarget(db.target)
          } holds no jobsmanager tables yet: \`jobsmanager apply\` without --dry-run creates them`
      }\n`,
    );
    if (backend === "sqlite") {
      assertEquals(await exists(`${db.dir}/jobs.bd`), false);
    } else {
      const store = db.open();
      try {
        assertEquals(await store.hasSchema(), false);
      } finally {
        await store.close();
      }
    }
    // What adds jobs makes it; then every command reads it.
    const sqlite = `sqlite:${db.dir}/jobs.db`;
    const made = backend === "sqlite" ? sqlite : db.url;
    const applied = await cli(["--database", made, "apply", "jobs.json5"], { cwd: db.dir });
    assertEquals(applied.code, 0, applied.stderr);
    const exported = await cli(["--database", made, "export"], { cwd: db.dir });
    assertEquals([exported.code, exported.stderr], [0, ""]);
    assertStringIncludes(exported.stdout, "id: 'a'");
  });
}
