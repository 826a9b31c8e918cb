/**
 * `--json` failures through the real CLI: one JSON object on stderr, one
 * line, whose `kind` a script branches on (the exit codes stay 0, 1, 2),
 * with the field or option at fault; stdout stays pure JSON, warnings stay
 * text. And `--`, after which an id is an argument whatever it looks like.
 */
import { assert, assertEquals } from "./assert.ts";
import {
  BACKENDS,
  cli,
  type CliResult,
  freshDatabase,
  MYSQL_URL,
  mysqlTest,
  type TestDatabase,
} from "./helpers.ts";

interface JsonFailure {
  kind: string;
  message: string;
  exit_code: number;
  field?: string;
  option?: string;
}

/** The one JSON line a failed `r` ended with, checked against its exit code. */
function failureOf(r: CliResult, what: string): JsonFailure {
  const lines = r.stderr.split("\n").filter((line) => line !== "");
  assertEquals(lines.length, 1, `${what}: one line on stderr, not ${JSON.stringify(r.stderr)}`);
  let parsed: { error: JsonFailure };
  try {
    parsed = JSON.parse(lines[0]);
  } catch {
    throw new Error(`${what}: stderr is not JSON: ${r.stderr}`);
  }
  assertEquals(r.stdout, "", `${what}: nothing on stdout`);
  assertEquals(parsed.error.exit_code, r.code, `${what}: exit_code is the exit code`);
  return parsed.error;
}

interface KindCase {
  name: string;
  args: string[];
  expected: Omit<JsonFailure, "message" | "exit_code">;
  code: 1 | 2;
  /** The whole message, where the case pins it. */
  message?: string;
}

const NOT_FOUND = "job 'nope' does not exist (see `jobsmanager job list`)";

const CASES: KindCase[] = [
  {
    name: "an unknown option",
    args: ["--json", "job", "add", "x", "--frobnicate"],
    code: 2,
    expected: { kind: "usage", option: "--frobnicate" },
    message: "unknown option '--frobnicate' (see `jobsmanager job add --help`)",
  },
  {
    name: "an option without its value, --json after the command",
    args: ["job", "show", "taken", "--json", "--count"],
    code: 2,
    expected: { kind: "usage", option: "--count" },
  },
  {
    name: "a missing argument",
    args: ["job", "remove", "--json"],
    code: 2,
    expected: { kind: "usage" },
    message: "missing required argument 'id' (see `jobsmanager job remove --help`)",
  },
  {
    name: "a word that is no command",
    args: ["--json", "jobs", "list"],
    code: 2,
    expected: { kind: "usage" },
  },
  {
    name: "a group without its command (not its help)",
    args: ["--json", "db"],
    code: 2,
    expected: { kind: "usage" },
    message: "'jobsmanager db' needs a command: migrate (see `jobsmanager db --help`)",
  },
  {
    name: "an empty --database",
    args: ["--json", "job", "list", "--database", " "],
    code: 2,
    expected: { kind: "usage", option: "--database" },
  },
  // A value the command's own parser refuses names its option, as stricli's refusals do.
  {
    name: "a count that is no number",
    args: ["--json", "job", "show", "taken", "--count", "abc"],
    code: 2,
    expected: { kind: "usage", option: "--count" },
    message:
      "--count: 'abc' is not valid (allowed: a whole number from 1 to 1000) (see `jobsmanager job show --help`)",
  },
  {
    name: "a count given by its alias",
    args: ["--json", "job", "next", "taken", "-n", "0"],
    code: 2,
    expected: { kind: "usage", option: "--count" },
  },
  {
    name: "a limit out of range",
    args: ["--json", "runs", "list", "--limit", "0"],
    code: 2,
    expected: { kind: "usage", option: "--limit" },
    message:
      "--limit: '0' is not valid (allowed: a whole number from 1 to 100000) (see `jobsmanager runs list --help`)",
  },
  {
    name: "a since that is no duration",
    args: ["--json", "logs", "--since", "soon"],
    code: 2,
    expected: { kind: "usage", option: "--since" },
    message:
      "--since: 'soon' is not a duration (expected a number and a unit: 90s, 15m, 2h, 7d, 1w) (see `jobsmanager logs --help`)",
  },
  {
    name: "a status that is none",
    args: ["--json", "runs", "list", "--status", "nope"],
    code: 2,
    expected: { kind: "usage", option: "--status" },
  },
  {
    name: "a timeout without --wait",
    args: ["--json", "runs", "cancel", "1", "--timeout", "5"],
    code: 2,
    expected: { kind: "usage", option: "--timeout" },
  },
  {
    name: "a job id of a filter: an option, not a job's field",
    args: ["--json", "runs", "list", "--job", "bad id"],
    code: 2,
    expected: { kind: "invalid", option: "--job" },
  },
  {
    name: "a run id, an argument: no option",
    args: ["--json", "runs", "show", "abc"],
    code: 2,
    expected: { kind: "usage" },
    message: "run id: 'abc' is not a run number",
  },
  {
    name: "a schedule field out of range",
    args: ["--json", "job", "add", "x", "--command", "true", "--minute", "61"],
    code: 2,
    expected: { kind: "invalid", field: "minute", option: "--minute" },
    message: "minute: '61' is out of range (allowed 0-59)",
  },
  {
    name: "a bad value for a job that does not exist",
    args: ["--json", "job", "update", "nope", "--timeout=-5"],
    code: 2,
    expected: { kind: "invalid", field: "timeout", option: "--timeout" },
  },
  {
    name: "a job field's value that is no number: the field and the option typed",
    args: ["--json", "job", "update", "taken", "--timeout", "abc"],
    code: 2,
    expected: { kind: "invalid", field: "timeout", option: "--timeout" },
    message: 'timeout: "abc" is not valid (allowed: a whole number from 0 to 31536000)',
  },
  {
    name: "a job field of two words: its option as typed",
    args: [
      "--json",
      "job",
      "add",
      "x",
      "--command",
      "true",
      "--cron",
      "@daily",
      "--max-instances",
      "0",
    ],
    code: 2,
    expected: { kind: "invalid", field: "max_instances", option: "--max-instances" },
    message: 'max_instances: "0" is not valid (allowed: a whole number from 1 to 10000)',
  },
  {
    name: "a job field no option gives: the field alone",
    args: ["--json", "job", "add", "x", "--command", "true"],
    code: 2,
    expected: { kind: "invalid", field: "schedule" },
  },
  {
    name: "a job that does not exist",
    args: ["--json", "job", "show", "nope"],
    code: 1,
    expected: { kind: "not_found" },
    message: NOT_FOUND,
  },
  {
    name: "an id taken",
    args: ["--json", "job", "add", "taken", "--command", "true", "--cron", "@daily"],
    code: 1,
    expected: { kind: "conflict" },
  },
  {
    name: "a run no service would take",
    args: ["--json", "job", "run", "taken"],
    code: 1,
    expected: { kind: "refused" },
  },
];

/** `args` on `db`, with the database given unless the case gives its own. */
function on(db: TestDatabase, args: string[]): Promise<CliResult> {
  const given = args.includes("--database");
  return cli(given ? args : ["--database", db.url, ...args], { cwd: db.dir });
}

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: --json ends a failure with one JSON line of its kind`, async (t) => {
    await using db = await freshDatabase(backend);
    await t.step("a database not made yet", async () => {
      const r = await on(db, ["--json", "job", "list"]);
      assertEquals(failureOf(r, "job list").kind, "refused");
    });
    const added = await on(db, ["job", "add", "taken", "--command", "true", "--cron", "@daily"]);
    assertEquals(added.code, 0, added.stderr);
    for (const c of CASES) {
      await t.step(c.name, async () => {
        const r = await on(db, c.args);
        const { message, exit_code: _, ...rest } = failureOf(r, c.args.join(" "));
        assertEquals([r.code, rest], [c.code, c.expected], message);
        if (c.message !== undefined) assertEquals(message, c.message);
      });
    }
    await t.step("after --, --json is an argument: the failure is text", async () => {
      const r = await on(db, ["job", "show", "--", "--json"]);
      assertEquals(r, {
        code: 1,
        stdout: "",
        stderr: "jobsmanager: job '--json' does not exist (see `jobsmanager job list`)\n",
      });
    });
    await t.step("a warning stays text; stdout stays JSON", async () => {
      const r = await on(db, ["--json", "job", "update", "taken", "--retry-on", "failed"]);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(JSON.parse(r.stdout).job.retry_on, "failed");
      assertEquals(
        r.stderr,
        "jobsmanager: warning: job 'taken' has retries 0, so --retry-on does nothing until --retries is above 0\n",
      );
    });
    await t.step(
      "apply: a field of an entry, a link to no job: invalid, naming the field, as job add",
      async () => {
        const file = (name: string, entries: string) =>
          Deno.writeTextFile(`${db.dir}/${name}`, `{ jobs: [\n${entries}\n] }\n`);
        await file("timeout.json5", "{ id: 'a', command: 'true', cron: '@daily', timeout: -1 }");
        await file("after.json5", "{ id: 'b', command: 'true', after_job: 'nope' }");
        const timeout = on(db, [
          "--json",
          "job",
          "add",
          "a",
          "--command=true",
          "--cron=@daily",
          "--timeout=-1",
        ]);
        assertEquals(
          (({ kind, field }) => ({ kind, field }))(failureOf(await timeout, "job add")),
          { kind: "invalid", field: "timeout" },
        );
        for (const dry of [["--dry-run"], []]) {
          const bad = failureOf(
            await on(db, ["--json", "apply", "timeout.json5", ...dry]),
            "apply",
          );
          assertEquals(bad, {
            kind: "invalid",
            message:
              "timeout.json5 has 1 invalid job; nothing written:\ntimeout.json5:2: job 'a': timeout: \"-1\" is not valid (allowed: a whole number from 0 to 31536000)",
            exit_code: 2,
            field: "timeout",
          });
          const link = failureOf(await on(db, ["--json", "apply", "after.json5", ...dry]), "apply");
          assertEquals([link.kind, link.field, link.exit_code], ["invalid", "after_job", 2]);
          assert(link.message.includes("after.json5:2: job 'b': after: "), link.message);
        }
      },
    );
    await t.step("an import that leaves jobs behind: the plan on stdout, refused", async () => {
      await Deno.writeTextFile(`${db.dir}/crontab`, "@reboot echo hi\n*/5 * * * * echo ok\n");
      const r = await on(db, ["--json", "import", "crontab", "crontab", "--apply"]);
      const plan = JSON.parse(r.stdout);
      assertEquals(plan.counts["cannot import"], 1, r.stdout);
      const line = JSON.parse(r.stderr.trimEnd().split("\n").at(-1)!);
      assertEquals([r.code, line.error.kind, line.error.exit_code], [1, "refused", 1], r.stderr);
    });
  });
}

Deno.test("cli: --json with a blank JM_DATABASE_URL: invalid, naming db.url", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-cli-json-" });
  try {
    const r = await cli(["--json", "job", "list"], { cwd: dir, env: { JM_DATABASE_URL: " " } });
    const failure = failureOf(r, "job list");
    assertEquals([r.code, failure.kind, failure.field], [2, "invalid", "db.url"]);
    assertEquals([...Deno.readDirSync(dir)], [], "no ./jobsmanager.db made as a fallback");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: --json with a MySQL server that does not answer: unavailable", async () => {
  // Takes connections and never says a word, as a server hung or behind a dropping firewall.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn);
  })();
  const dir = await Deno.makeTempDir({ prefix: "jm-cli-json-" });
  try {
    await Deno.writeTextFile(
      `${dir}/jobsmanager.json`,
      `{ db: { url: "mysql://root@127.0.0.1:${listener.addr.port}/x", connect_timeout: 1 } }`,
    );
    const r = await cli(["--json", "--config", "jobsmanager.json", "job", "list"], { cwd: dir });
    const failure = failureOf(r, "job list");
    assertEquals([r.code, failure.kind], [1, "unavailable"], failure.message);
    assert(held.length > 0, "the CLI connected to the silent server");
  } finally {
    listener.close();
    await accepting;
    held.forEach((conn) => conn.close());
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: -- before an id, for every command that takes one", async () => {
  await using db = await freshDatabase("sqlite");
  // Ids a shell variable may hold that read as options: after --, they are ids.
  for (const id of ["--help", "-h", "--json"]) {
    const steps: [string[], (r: CliResult) => void][] = [
      [["job", "add", "--command", "true", "--cron", "@daily", "--", id], () => {}],
      [["job", "update", "--timeout", "5", "--", id], () => {}],
      [["job", "disable", "--", id], () => {}],
      [["job", "enable", "--", id], () => {}],
      [["--json", "job", "show", "--", id], (r) => assertEquals(JSON.parse(r.stdout).id, id)],
      [["--json", "job", "next", "-n", "1", "--", id], (r) => {
        assertEquals(JSON.parse(r.stdout).id, id);
      }],
      [["--json", "job", "run", "--here", "--", id], (r) => {
        assertEquals(JSON.parse(r.stdout).job_id, id);
      }],
      [["job", "rm", "--", id], () => {}],
    ];
    for (const [args, check] of steps) {
      const r = await on(db, args);
      assertEquals(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
      check(r);
    }
    // A command suggested for such an id puts it after --, last.
    const add = ["job", "add", "--command", "true", "--cron", "@daily", "--", id];
    assertEquals((await on(db, add)).code, 0);
    const again = await on(db, add);
    assertEquals(
      again.stderr,
      `jobsmanager: job '${id}' already exists; change it with \`jobsmanager job update … -- ${id}\` or pass --replace\n`,
    );
    assertEquals((await on(db, ["job", "rm", "--", id])).code, 0);
    const gone = await on(db, ["job", "remove", "--", id]);
    assertEquals(
      gone.stderr,
      `jobsmanager: job '${id}' does not exist (see \`jobsmanager job list\`)\n`,
    );
  }
});

mysqlTest(
  "cli: --json with MySQL turning the login away: refused, not unavailable (trying again changes nothing)",
  async () => {
    const server = new URL(MYSQL_URL);
    const dir = await Deno.makeTempDir({ prefix: "jm-cli-json-" });
    try {
      const user = server.username || "root";
      const database = `mysql://${user}@${server.host}${server.pathname}`;
      const noDatabase = `mysql://${user}@${server.host}/jm_no_such_database_42`;
      const cases: [string, Record<string, string>][] = [
        [database, { JM_DB_PASSWORD: "not-its-password-42" }],
        [noDatabase, {}],
      ];
      for (const [url, env] of cases) {
        const r = await cli(["--json", "--database", url, "job", "list"], { cwd: dir, env });
        const { kind, message } = failureOf(r, url);
        assertEquals([r.code, kind], [1, "refused"], message);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
