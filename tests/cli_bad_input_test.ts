/**
 * Bad input through the real CLI, on every backend: each case pins the one
 * line on stderr and the exit code (2 usage or validation, 1 at run time),
 * and proves the database did not change. Unreachable or refusing
 * databases are pinned by message and exit code.
 */
import { assert, assertEquals } from "./assert.ts";
import {
  BACKENDS,
  cli,
  type CliResult,
  freshDatabase,
  mysqlTest,
  rawQuery,
  type TestDatabase,
} from "./helpers.ts";

interface BadCase {
  name: string;
  /** Without the global `--database` (added unless `config` says the file names it). */
  args: string[];
  code: 1 | 2;
  /** The whole of stderr, without `jobsmanager: ` and the newline. */
  error: string;
  /** The config file given names the database, so no `--database` is passed. */
  config?: boolean;
  env?: Record<string, string>;
}

const ADD = ["job", "add", "new", "--command", "true"];
const ID_RULE = "(allowed: 1-191 characters of A-Z a-z 0-9 . _ : -)";
const TIMEOUT_RULE = "is not valid (allowed: a whole number from 0 to 31536000)";
const DOW_GRAMMAR =
  "(allowed: *, */N, A, A-B, A-B/N, A/N with 0-6 (0 = mon) or mon-sun, comma-separated)";
const MONTH_GRAMMAR = "(allowed: *, */N, A, A-B, A-B/N, A/N with 1-12 or jan-dec, comma-separated)";
const DASH_HINT = "; a value that begins with '-' is given as --option=VALUE, an argument after --";
const NOT_FOUND = "job 'nope' does not exist (see `jobsmanager job list`)";

const CASES: BadCase[] = [
  {
    name: "minute 61",
    args: [...ADD, "--minute", "61"],
    code: 2,
    error: "minute: '61' is out of range (allowed 0-59)",
  },
  {
    name: "hour 24",
    args: [...ADD, "--hour", "24"],
    code: 2,
    error: "hour: '24' is out of range (allowed 0-23)",
  },
  {
    name: "second */0",
    args: [...ADD, "--second", "*/0"],
    code: 2,
    error: "second: step 0 in '*/0' must be at least 1",
  },
  {
    name: "day 32",
    args: [...ADD, "--day", "32"],
    code: 2,
    error: "day: '32' is out of range (allowed 1-31)",
  },
  {
    name: "month 13",
    args: [...ADD, "--month", "13"],
    code: 2,
    error: "month: '13' is out of range (allowed 1-12)",
  },
  {
    name: "day_of_week 7",
    args: [...ADD, "--day-of-week", "7"],
    code: 2,
    error: "day_of_week: '7' is out of range (allowed 0-6, 0 = mon)",
  },
  {
    name: "day_of_week mon-fri/2 (APScheduler ignored the step)",
    args: [...ADD, "--day-of-week", "mon-fri/2"],
    code: 2,
    error: `day_of_week: 'mon-fri/2' is not valid ${DOW_GRAMMAR}`,
  },
  {
    name: "month jan1",
    args: [...ADD, "--month", "jan1"],
    code: 2,
    error: `month: 'jan1' is not valid ${MONTH_GRAMMAR}`,
  },
  {
    name: "day_of_week fri-mon goes backwards",
    args: [...ADD, "--day-of-week", "fri-mon"],
    code: 2,
    error: "day_of_week: range 'fri-mon' goes backwards (first must not be after last)",
  },
  {
    name: "nth weekday with a day_of_week restriction",
    args: [...ADD, "--day", "2nd fri", "--day-of-week", "mon"],
    code: 2,
    error:
      "day: '2nd fri' needs day_of_week '*' (got 'mon'), since an nth weekday already picks the weekday; drop the day_of_week restriction or schedule two jobs",
  },
  {
    name: "crontab line with 4 fields",
    args: [...ADD, "--cron", "1 2 3 4"],
    code: 2,
    error:
      "cron: '1 2 3 4' has 4 fields; expected 5 (minute hour day-of-month month day-of-week), 6 (second first) or a nickname like @daily",
  },
  {
    name: "crontab line restricting both day-of-month and day-of-week",
    args: [...ADD, "--cron", "0 9 13 * fri"],
    code: 2,
    error:
      "cron: '0 9 13 * fri' restricts both day-of-month and day-of-week, which crontab ORs (day 13 of the month or fri) but jobsmanager ANDs; schedule two jobs, or use --day and --day-of-week if you mean both at once",
  },
  {
    name: "unknown crontab nickname",
    args: [...ADD, "--cron", "@fortnightly"],
    code: 2,
    error:
      "cron: unknown nickname '@fortnightly' (allowed: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly)",
  },
  {
    name: "--cron together with --minute",
    args: [...ADD, "--cron", "0 9 * * *", "--minute", "5"],
    code: 2,
    error: "cron: give either --cron or the field options (--minute), not both",
  },
  {
    name: "unknown time zone Mars/Olympus",
    args: [...ADD, "--minute", "5", "--timezone", "Mars/Olympus"],
    code: 2,
    error:
      "timezone: 'Mars/Olympus' is not a known IANA time zone (e.g. Europe/Berlin, America/New_York, UTC)",
  },
  {
    name: "time zone +01:00",
    args: [...ADD, "--minute", "5", "--timezone", "+01:00"],
    code: 2,
    error:
      "timezone: '+01:00' is not an IANA time zone name (e.g. Europe/Berlin, America/New_York, UTC)",
  },
  {
    name: "id with a space",
    args: ["job", "add", "a b", "--command", "true", "--minute", "5"],
    code: 2,
    error: `id: "a b" has characters outside A-Z a-z 0-9 . _ : - ${ID_RULE}`,
  },
  {
    name: "id of 192 characters",
    args: ["job", "add", "x".repeat(192), "--command", "true", "--minute", "5"],
    code: 2,
    error: `id: "${"x".repeat(60)}…" is 192 characters long ${ID_RULE}`,
  },
  {
    name: "id of dots only",
    args: ["job", "add", "..", "--command", "true", "--minute", "5"],
    code: 2,
    error:
      'id: ".." is only dots, which a URL cannot name (/jobs/.. is read as the path above it): give an id with another character',
  },
  {
    name: "empty id",
    args: ["job", "add", "", "--command", "true", "--minute", "5"],
    code: 2,
    error: `id: "" is empty ${ID_RULE}`,
  },
  {
    name: "timeout -1",
    args: [...ADD, "--minute", "5", "--timeout", "-1"],
    code: 2,
    error: `timeout: "-1" ${TIMEOUT_RULE}`,
  },
  {
    name: "timeout abc",
    args: [...ADD, "--minute", "5", "--timeout", "abc"],
    code: 2,
    error: `timeout: "abc" ${TIMEOUT_RULE}`,
  },
  {
    name: "timeout 1.5",
    args: [...ADD, "--minute", "5", "--timeout", "1.5"],
    code: 2,
    error: `timeout: "1.5" ${TIMEOUT_RULE}`,
  },
  {
    name: "max-instances 0",
    args: [...ADD, "--minute", "5", "--max-instances", "0"],
    code: 2,
    error: 'max_instances: "0" is not valid (allowed: a whole number from 1 to 10000)',
  },
  {
    name: "misfire-grace-time -5",
    args: [...ADD, "--minute", "5", "--misfire-grace-time", "-5"],
    code: 2,
    error: 'misfire_grace_time: "-5" is not valid (allowed: a whole number from 0 to 31536000)',
  },
  {
    name: "description of 1001 characters",
    args: [...ADD, "--minute", "5", "--description", "y".repeat(1001)],
    code: 2,
    error: "description: is 1001 characters long (allowed: up to 1000)",
  },
  // What MySQL's columns hold, on both backends: MySQL refused more with an error naming no job.
  {
    name: "command of 65,536 bytes (32,768 characters)",
    args: ["job", "add", "new", "--command", "é".repeat(32_768), "--minute", "5"],
    code: 2,
    error:
      "command: is 65536 bytes long (allowed: up to 65535; a longer script belongs in a file the job reads)",
  },
  {
    name: "minute of 257 characters",
    args: [...ADD, "--minute", `${"0,".repeat(128)}0`],
    code: 2,
    error: "minute: is 257 characters long (allowed: up to 255)",
  },
  {
    name: "--env without =",
    args: [...ADD, "--minute", "5", "--env", "NOEQUALS"],
    code: 2,
    error: 'env: "NOEQUALS" is not NAME=VALUE with NAME of A-Z a-z 0-9 _ not starting with a digit',
  },
  // An --env value is not shown, wherever it is refused: it may be a secret.
  {
    name: "--env with a name not allowed",
    args: [...ADD, "--minute", "5", "--env", "MY-TOKEN=s3cr3t"],
    code: 2,
    error:
      'env: "MY-TOKEN=…" is not NAME=VALUE with NAME of A-Z a-z 0-9 _ not starting with a digit',
  },
  {
    name: "a second NAME=VALUE after one --env",
    args: ["job", "update", "seed", "--env", "A=1", "TOKEN=s3cr3t"],
    code: 2,
    error: "too many arguments: 'TOKEN=…' (it takes 1) (see `jobsmanager job update --help`)",
  },
  // Which was meant cannot be told; the values (a secret, maybe) are not shown.
  {
    name: "--env given twice with different values",
    args: ["job", "update", "seed", "--env", "A=1", "--env", "A=2"],
    code: 2,
    error: "env: A is given twice with different values (--env A=… twice); give it once",
  },
  {
    name: "--env on a new job, given twice with different values",
    args: [...ADD, "--minute", "5", "--env", "B=x", "--env", "A=1", "--env", "A="],
    code: 2,
    error: "env: A is given twice with different values (--env A=… twice); give it once",
  },
  {
    name: "--unset-env and --env of one variable",
    args: ["job", "update", "seed", "--unset-env", "A", "--env", "A=3"],
    code: 2,
    error: "env: A is both dropped and set (--unset-env A and --env A=…); give one of them",
  },
  {
    name: "--env JM_JOB_ID=1 (reserved)",
    args: [...ADD, "--minute", "5", "--env", "JM_JOB_ID=1"],
    code: 2,
    error: "env: JM_JOB_ID is set by jobsmanager for every run and cannot be overridden",
  },
  {
    name: "relative --cwd",
    args: [...ADD, "--minute", "5", "--cwd", "rel/dir"],
    code: 2,
    error: 'cwd: "rel/dir" is not an absolute path (the service\'s working directory is not yours)',
  },
  {
    name: "missing --command",
    args: ["job", "add", "new", "--minute", "5"],
    code: 2,
    error: "command: missing (give --command 'shell command')",
  },
  {
    name: "empty --command",
    args: ["job", "add", "new", "--command", " ", "--minute", "5"],
    code: 2,
    error: "command: is empty (give --command 'shell command')",
  },
  {
    name: "missing schedule",
    args: ADD,
    code: 2,
    error:
      "schedule: missing (give --cron 'm h dom mon dow' or at least one of --second --minute --hour --day --month --day-of-week, or --after JOB for a job that runs only after another)",
  },
  {
    name: "job add of an existing id without --replace",
    args: ["job", "add", "seed", "--command", "true", "--minute", "5"],
    code: 1,
    error:
      "job 'seed' already exists; change it with `jobsmanager job update … seed` or pass --replace",
  },
  {
    name: "job update of an unknown id",
    args: ["job", "update", "nope", "--minute", "5"],
    code: 1,
    error: NOT_FOUND,
  },
  // The input is checked before the job is looked for, as `job add` builds its job first.
  {
    name: "job update of an unknown id with a negative timeout",
    args: ["job", "update", "nope", "--timeout=-5"],
    code: 2,
    error: `timeout: "-5" ${TIMEOUT_RULE}`,
  },
  {
    name: "job update of an unknown id with a relative --cwd",
    args: ["job", "update", "nope", "--cwd", "tmp"],
    code: 2,
    error: 'cwd: "tmp" is not an absolute path (the service\'s working directory is not yours)',
  },
  {
    name: "job update of an unknown id with a retry delay above its most",
    args: ["job", "update", "nope", "--retry-delay", "60", "--retry-max-delay", "30"],
    code: 2,
    error:
      "retry_max_delay: 30 s is shorter than retry_delay (60 s); give --retry-max-delay at least 60",
  },
  {
    name: "job update of an unknown id with --no-schedule and a schedule field",
    args: ["job", "update", "nope", "--no-schedule", "--day", "31"],
    code: 2,
    error: "schedule: give --no-schedule or a schedule (--cron, --second …), not both",
  },
  {
    name: "job update of an unknown id with options right for some job (it is looked for)",
    args: ["job", "update", "nope", "--retry-max-delay", "1", "--month", "2", "--no-coalesce"],
    code: 1,
    error: NOT_FOUND,
  },
  {
    name: "job remove of an unknown id",
    args: ["job", "remove", "nope"],
    code: 1,
    error: NOT_FOUND,
  },
  { name: "job show of an unknown id", args: ["job", "show", "nope"], code: 1, error: NOT_FOUND },
  {
    name: "job enable of an unknown id",
    args: ["job", "enable", "nope"],
    code: 1,
    error: NOT_FOUND,
  },
  {
    name: "job update of an existing job with minute 61 (rolled back)",
    args: ["job", "update", "seed", "--minute", "61", "--command", "changed"],
    code: 2,
    error: "minute: '61' is out of range (allowed 0-59)",
  },
  {
    name: "job update with --cron and --hour",
    args: ["job", "update", "seed", "--cron", "* * * * *", "--hour", "2"],
    code: 2,
    error: "cron: give either --cron or the field options (--hour), not both",
  },
  {
    name: "job update with --enabled and --disabled",
    args: ["job", "update", "seed", "--enabled", "--disabled"],
    code: 2,
    error: "enabled: give --enabled or --disabled, not both",
  },
  {
    name: "job update with a bad id",
    args: ["job", "update", "bad id", "--minute", "5"],
    code: 2,
    error: `id: "bad id" has characters outside A-Z a-z 0-9 . _ : - ${ID_RULE}`,
  },
  {
    name: "job next -n 0",
    args: ["job", "next", "seed", "-n", "0"],
    code: 2,
    error:
      "--count: '0' is not valid (allowed: a whole number from 1 to 1000) (see `jobsmanager job next --help`)",
  },
  {
    name: "logs --job with a bad id",
    args: ["logs", "--job", "bad id"],
    code: 2,
    error:
      `--job: "bad id" has characters outside A-Z a-z 0-9 . _ : - ${ID_RULE} (see \`jobsmanager logs --help\`)`,
  },
  {
    name: "job next --from garbage",
    args: ["job", "next", "seed", "--from", "garbage"],
    code: 2,
    error:
      "--from: 'garbage' is not a date-time (expected e.g. 2026-03-29T01:30:00Z, 2026-03-29T02:30+02:00 or 2026-03-29 02:30 in the job's zone) (see `jobsmanager job next --help`)",
  },
  {
    name: "unknown config key",
    args: ["--config", "unknown-key.json", ...ADD, "--minute", "5"],
    config: true,
    code: 2,
    error:
      "config unknown-key.json: unknown key 'db.frob' (known here: url, host, port, username, password, password_file, database, charset, pool_size, connect_timeout, socket, ssl_mode, ssl_ca, ssl_cert, ssl_key)",
  },
  {
    name: "unknown config section",
    args: ["--config", "unknown-section.json", ...ADD, "--minute", "5"],
    config: true,
    code: 2,
    error:
      "config unknown-section.json: unknown key 'frobnicate' (known here: db, log, runs, changes, lib, jobsmanager, cluster, notify, http)",
  },
  {
    name: "config value of the wrong type",
    args: ["--config", "bad-port.json", ...ADD, "--minute", "5"],
    config: true,
    code: 2,
    error:
      'config bad-port.json: db.port: "abc" is not valid (expected a whole number from 1 to 65535)',
  },
  // A blank URL would mean ./jobsmanager.db, as no URL does: another database than meant.
  {
    name: "config db.url of only blanks",
    args: ["--config", "blank-url.json", ...ADD, "--minute", "5"],
    config: true,
    code: 2,
    error:
      'config blank-url.json: db.url: "  " is only blanks; give sqlite:PATH or mysql://USER@HOST:PORT/DB, or leave it out or empty to use db.host or ./jobsmanager.db',
  },
  {
    name: "JM_DATABASE_URL of only blanks",
    args: [...ADD, "--minute", "5"],
    config: true,
    env: { JM_DATABASE_URL: " \t" },
    code: 2,
    error:
      'environment JM_DATABASE_URL: db.url: " \\t" is only blanks; give sqlite:PATH or mysql://USER@HOST:PORT/DB, or leave it unset or empty to use db.host or ./jobsmanager.db',
  },
  {
    name: "malformed JSON5 config",
    args: ["--config", "malformed.json", ...ADD, "--minute", "5"],
    config: true,
    code: 2,
    error: "config malformed.json: not valid JSON5: unexpected end of input at 2:1",
  },
  {
    name: "--config pointing to a missing file",
    args: ["--config", "missing.json", ...ADD, "--minute", "5"],
    code: 2,
    error:
      "config file 'missing.json' (from --config) does not exist; fix the path or drop --config to use the defaults",
  },
  {
    name: "JM_CONFIG pointing to a missing file",
    args: [...ADD, "--minute", "5"],
    env: { JM_CONFIG: "missing.json" },
    code: 2,
    error:
      "config file 'missing.json' (from JM_CONFIG) does not exist; fix the path or drop JM_CONFIG to use the defaults",
  },
  {
    name: "job remove of an id that is -h (help only as --help there)",
    args: ["job", "remove", "-h"],
    code: 2,
    error: `'-h' stands where an argument goes${DASH_HINT} (see \`jobsmanager job remove --help\`)`,
  },
  {
    name: "job update with a description that is --help",
    args: ["job", "update", "seed", "--description", "--help"],
    code: 2,
    error:
      `option '--description' needs a value${DASH_HINT} (see \`jobsmanager job update --help\`)`,
  },
  {
    name: "job update with a description that is -h",
    args: ["job", "update", "seed", "--description", "-h"],
    code: 2,
    error:
      `option '--description' needs a value${DASH_HINT} (see \`jobsmanager job update --help\`)`,
  },
  {
    name: "job next -n with -h as the count",
    args: ["job", "next", "seed", "-n", "-h"],
    code: 2,
    error: `option '--count' needs a value${DASH_HINT} (see \`jobsmanager job next --help\`)`,
  },
  {
    name: "--timeout given twice, differently (alike, it is given once)",
    args: ["job", "update", "seed", "--timeout", "5", "--timeout=6"],
    code: 2,
    error:
      "option '--timeout' given more than once, with different values (see `jobsmanager job update --help`)",
  },
  {
    name: "--coalesce and --no-coalesce",
    args: ["job", "update", "seed", "--coalesce", "--no-coalesce"],
    code: 2,
    error:
      "options '--coalesce' and '--no-coalesce' given together (see `jobsmanager job update --help`)",
  },
  {
    name: "--desc, the start of --description",
    args: ["job", "update", "seed", "--desc", "x"],
    code: 2,
    error:
      "unknown option '--desc'; did you mean --description? (see `jobsmanager job update --help`)",
  },
  {
    name: "--maxInstance, near --max-instances (said as typed)",
    args: ["job", "update", "seed", "--maxInstance", "2"],
    code: 2,
    error:
      "unknown option '--maxInstance'; did you mean --max-instances? (see `jobsmanager job update --help`)",
  },
  {
    name: "bad JM_LOG_LEVEL",
    args: [...ADD, "--minute", "5"],
    env: { JM_LOG_LEVEL: "loud" },
    code: 2,
    error:
      'environment JM_LOG_LEVEL: log.level: "loud" is not valid (expected one of debug, info, warning, error, fatal)',
  },
];

type Snapshot = { jobs: Record<string, unknown>[]; markers: Record<string, unknown>[] };

async function snapshot(db: TestDatabase): Promise<Snapshot> {
  return {
    jobs: await rawQuery(db, "SELECT * FROM jm_jobs ORDER BY id"),
    markers: await rawQuery(db, "SELECT * FROM jm_update_info ORDER BY id"),
  };
}

async function writeConfigs(db: TestDatabase): Promise<void> {
  const files: Record<string, string> = {
    "unknown-key.json": `{ db: { url: "${db.url}", frob: 1 } }`,
    "unknown-section.json": `{ db: { url: "${db.url}" }, frobnicate: 1 }`,
    "bad-port.json": `{ db: { url: "${db.url}", port: "abc" } }`,
    "malformed.json": `{ db: { url: "${db.url}",\n`,
    "blank-url.json": `{ db: { url: "  " } }`,
  };
  for (const [name, text] of Object.entries(files)) {
    await Deno.writeTextFile(`${db.dir}/${name}`, text);
  }
}

/** Run `args` and check the exit code, the one stderr line, and that nothing changed. */
async function expectRejected(
  db: TestDatabase,
  args: string[],
  expected: { code: number; stderr: string },
  env?: Record<string, string>,
): Promise<CliResult> {
  const before = await snapshot(db);
  const r = await cli(args, { cwd: db.dir, env });
  assertEquals(
    { code: r.code, stdout: r.stdout, stderr: r.stderr },
    { code: expected.code, stdout: "", stderr: expected.stderr },
    args.join(" "),
  );
  assertEquals(await snapshot(db), before, `database unchanged by ${args.join(" ")}`);
  return r;
}

async function seeded(db: TestDatabase): Promise<void> {
  const r = await cli(
    ["--database", db.url, "job", "add", "seed", "--command", "echo seed", "--minute", "*/5"],
    { cwd: db.dir },
  );
  assertEquals(r.code, 0, r.stderr);
  await writeConfigs(db);
  const { jobs, markers } = await snapshot(db);
  assertEquals([jobs.length, markers.length], [1, 1]);
}

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: bad input is refused with one line and changes nothing`, async (t) => {
    await using db = await freshDatabase(backend);
    await seeded(db);
    for (const c of CASES) {
      await t.step(c.name, async () => {
        const args = c.config ? c.args : ["--database", db.url, ...c.args];
        await expectRejected(
          db,
          args,
          { code: c.code, stderr: `jobsmanager: ${c.error}\n` },
          c.env,
        );
      });
    }
  });
}

Deno.test("cli: usage errors are one line on stderr, naming the help to read", async () => {
  await using db = await freshDatabase("sqlite");
  await seeded(db);
  await expectRejected(db, ["--database", db.url, ...ADD, "--minute", "5", "--frobnicate"], {
    code: 2,
    stderr: "jobsmanager: unknown option '--frobnicate' (see `jobsmanager job add --help`)\n",
  });
  await expectRejected(db, ["--database", db.url, "job", "add"], {
    code: 2,
    stderr: "jobsmanager: missing required argument 'id' (see `jobsmanager job add --help`)\n",
  });
  await expectRejected(db, ["--database", db.url, "job", "add", "x", "--command", "-x"], {
    code: 2,
    stderr:
      "jobsmanager: unknown option '-x'; a value that begins with '-' is given as --option=VALUE, an argument after -- (see `jobsmanager job add --help`)\n",
  });
  await expectRejected(db, ["--database", db.url, "job", "show", "x", "--count"], {
    code: 2,
    stderr: "jobsmanager: option '--count' needs a value (see `jobsmanager job show --help`)\n",
  });
  await expectRejected(db, ["--database", db.url, "jobs", "list"], {
    code: 2,
    stderr:
      "jobsmanager: 'jobs' is not a command; did you mean `job`? (see `jobsmanager --help`)\n",
  });
  // `--json=` is `--json ""`: the empty word is the one that names no command, and every
  // command is a suggestion for it, not only the `job` typed after it.
  await expectRejected(db, ["--database", db.url, "--json=", "job", "list"], {
    code: 2,
    stderr: "jobsmanager: '' is not a command; did you mean `db`? (see `jobsmanager --help`)\n",
  });
});

// ------------------------------------------------ databases that fail to open

Deno.test("cli: a MySQL server on a closed port (exit 1, connection refused)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-cli-closed-" });
  try {
    const r = await cli(["--database", "mysql://root@127.0.0.1:1/x", "job", "list"], { cwd: dir });
    assertEquals(r, {
      code: 1,
      stdout: "",
      stderr:
        "jobsmanager: cannot connect to MySQL at 127.0.0.1:1: connection refused; is the server running, and are db.host/db.port (or --database) right?\n",
    });
    assertEquals([...Deno.readDirSync(dir)], [], "no SQLite file made as a fallback");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: database URLs that cannot work (exit 2 or 1)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-cli-url-" });
  try {
    const cases: [string, number, string][] = [
      [
        "postgres://x@h/db",
        2,
        "db.url: scheme 'postgres:' is not supported (expected sqlite:PATH or mysql://USER@HOST:PORT/DB)",
      ],
      [
        "mysql://root@127.0.0.1:3306/",
        2,
        'db.url: "mysql://root@127.0.0.1:3306/" must name a host and a database, e.g. mysql://jobs@127.0.0.1:3306/jobsmanager',
      ],
      [
        "sqlite:",
        2,
        "db.url: 'sqlite:' needs a file path, e.g. sqlite:/var/lib/jobsmanager/jobs.db",
      ],
      [
        "sqlite:/nonexistent-dir/x.db",
        1,
        "cannot open SQLite database '/nonexistent-dir/x.db': unable to open database file: /nonexistent-dir/x.db; check that the directory exists and is writable, or pass --database sqlite:PATH",
      ],
    ];
    await Promise.all(cases.map(async ([url, code, error]) => {
      // A command that may create the database: one that reads refuses a missing file first.
      const r = await cli(["--database", url, ...ADD, "--cron", "@daily"], { cwd: dir });
      assertEquals(r, { code, stdout: "", stderr: `jobsmanager: ${error}\n` }, url);
    }));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

mysqlTest(
  "cli[mysql]: a wrong password and a missing database (exit 1, nothing changed)",
  async () => {
    await using db = await freshDatabase("mysql");
    await seeded(db);
    const t = db.target;
    assert(t.kind === "mysql");
    const where = `${t.host}:${t.port}`;

    // root may have no password (and unix_socket auth locally): over TCP a wrong one is refused.
    const wrong = new URL(db.url);
    wrong.password = "definitely-wrong";
    await expectRejected(db, ["--database", wrong.toString(), ...ADD, "--minute", "5"], {
      code: 1,
      // Given on the command line, the password is warned about first.
      stderr:
        "jobsmanager: warning: the password given in --database can be read by every user of this machine (ps, /proc); give it in JM_DB_PASSWORD or db.password_file instead\n" +
        `jobsmanager: MySQL at ${where} rejected the login of user '${t.user}' to database '${t.database}' (access denied); check db.username and the password (JM_DB_PASSWORD, db.password_file or the URL) (a server or user that requires TLS refuses a plain login so too: see db.ssl_mode)\n`,
    });

    // A user the server does not know, without a password: MariaDB's own code (1698), same advice.
    const unknown = new URL(db.url);
    unknown.username = "jm_no_such_user";
    unknown.password = "";
    await expectRejected(db, ["--database", unknown.toString(), ...ADD, "--minute", "5"], {
      code: 1,
      stderr:
        `jobsmanager: MySQL at ${where} rejected the login of user 'jm_no_such_user' to database '${t.database}' (access denied); check db.username and the password (JM_DB_PASSWORD, db.password_file or the URL) (a server or user that requires TLS refuses a plain login so too: see db.ssl_mode)\n`,
    });

    const name = `jm_missing_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
    const missing = new URL(db.url);
    missing.pathname = `/${name}`;
    await expectRejected(db, ["--database", missing.toString(), ...ADD, "--minute", "5"], {
      code: 1,
      stderr:
        `jobsmanager: database '${name}' does not exist on MySQL at ${where}; create it with: CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4\n`,
    });
    const schemas = await rawQuery(
      db,
      "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
      [name],
    );
    assertEquals(schemas.length, 0, "the missing database was not created");
  },
);
