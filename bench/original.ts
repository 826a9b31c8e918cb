/**
 * The original program (github.com/kylechenoO/JobsManager), run beside the
 * service so that issue 11's "no higher than the original's in the same
 * run" is measured, not quoted. The project ships none of its code:
 * `--original DIR` names a checkout of it, and a python3 with APScheduler,
 * PyMySQL, SQLAlchemy, pandas and json5 runs it (Debian: apt-get install
 * python3-apscheduler python3-pymysql python3-sqlalchemy python3-pandas
 * python3-json5; JM_BENCH_PYTHON names another python than `python3`).
 * It keeps its jobs in MySQL only.
 */
import { parseJson5 } from "../src/config/json5.ts";
import { type Db, query, until } from "./common.ts";

const PYTHON = Deno.env.get("JM_BENCH_PYTHON") ?? "python3";

/**
 * `dir` as an absolute path, once it is known to be a checkout of the
 * original program and the python to have its packages; else throws,
 * naming what is wrong, before any of a section has run.
 */
export async function checkOriginal(dir: string): Promise<string> {
  for (
    const file of [
      "bin/JobsManager.py",
      "lib/Task.py",
      "etc/global.json",
      "tools/jobsmanager.ddl.sql",
    ]
  ) {
    try {
      Deno.statSync(`${dir}/${file}`);
    } catch {
      throw new Error(
        `bench: --original ${dir} has no ${file}: give a checkout of github.com/kylechenoO/JobsManager`,
      );
    }
  }
  const out = await new Deno.Command(PYTHON, {
    args: ["-c", "import apscheduler, sqlalchemy, pymysql, pandas, json5"],
    stdout: "null",
    stderr: "piped",
  }).output().catch((error: Error) => {
    throw new Error(`bench: cannot run ${PYTHON} (${error.message}); set JM_BENCH_PYTHON`);
  });
  if (!out.success) {
    throw new Error(
      `bench: ${PYTHON} lacks a package the original needs (see bench/original.ts):\n${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
  // Linked from another directory: a relative path would point elsewhere there.
  return Deno.realPathSync(dir);
}

export interface Original {
  pid: number;
  stop(): Promise<void>;
}

/**
 * The original's service on `db` (MySQL) with `everySecond` jobs firing
 * `true` every second, at its shipped settings (its etc/global.json:
 * max_workers 300, misfire_grace_time 1, max_instances 1, coalesce
 * "False", which it reads as on: `bool("False")`), in UTC, logging at info
 * as the service does in the bench; resolves once a job has run. `dir`:
 * from `checkOriginal`.
 */
export async function startOriginal(dir: string, db: Db, everySecond: number): Promise<Original> {
  if (db.target.kind !== "mysql") throw new Error("bench: the original program needs MySQL");
  const home = `${db.dir}/original`;
  await Deno.mkdir(`${home}/etc`, { recursive: true });
  // It finds its etc/ and log/ beside its bin/, by the path it was started by: links keep ours apart.
  await Deno.symlink(`${dir}/bin`, `${home}/bin`);
  await Deno.symlink(`${dir}/lib`, `${home}/lib`);
  const { host, port, user, password, database } = db.target;
  // Its shipped settings (etc/global.json), but for where its database and log are, the zone, and the level.
  const shipped = parseJson5(await Deno.readTextFile(`${dir}/etc/global.json`)).value as {
    db: Record<string, unknown>;
    log: Record<string, unknown>;
    jobsmanager: Record<string, unknown>;
  };
  await Deno.writeTextFile(
    `${home}/etc/global.json`,
    JSON.stringify({
      ...shipped,
      db: { ...shipped.db, host, port: String(port), username: user, password, database },
      log: { ...shipped.log, path: "log", level: "info" },
      jobsmanager: { ...shipped.jobsmanager, timezone: "UTC" },
    }),
  );
  // Its own DDL makes the log and marker tables; APScheduler makes jm_jobs.
  const ddl = await Deno.readTextFile(`${dir}/tools/jobsmanager.ddl.sql`);
  for (const statement of ddl.split(";").map((s) => s.trim())) {
    if (statement !== "" && !/^USE\s/i.test(statement)) await query(db, statement);
  }
  await python(home, [
    "import logging, sys",
    `sys.path.insert(0, ${JSON.stringify(`${home}/lib`)})`,
    "from Task import Task",
    "from Job import Job",
    `t = Task(logging.getLogger('bench'), ${JSON.stringify(host)}, ${port}, ${
      JSON.stringify(user)
    }, ${JSON.stringify(password)}, ${JSON.stringify(database)}, 'utf8mb4', 'jm_jobs', 'UTC', ${
      JSON.stringify(String(shipped.jobsmanager.coalesce))
    }, ${Number(shipped.jobsmanager.max_instances)})`,
    `for i in range(${everySecond}): t.add_job(Job(id='bench.%05d' % i, command='true', second='*'), replace_existing=True)`,
    "t.shutdown()",
  ]);
  // It logs to stderr too: kept, to say why it stopped if it does.
  const stderrPath = `${home}/stderr.log`;
  const stderrFile = await Deno.open(stderrPath, { create: true, write: true });
  const child = new Deno.Command(PYTHON, {
    args: [`${home}/bin/JobsManager.py`],
    cwd: home,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const copied = child.stderr.pipeTo(stderrFile.writable).catch(() => {});
  let exited = false;
  const ended = child.status.then(() => exited = true);
  const logFile = `${home}/log/jobsmanager.log`;
  const why = async (what: string) => {
    await ended;
    await copied;
    const tail = async (path: string) =>
      (await Deno.readTextFile(path).catch(() => "(none)")).slice(-1500);
    return new Error(
      `bench: the original program ${what}; its stderr ends:\n${await tail(
        stderrPath,
      )}\nits log ends:\n${await tail(logFile)}`,
    );
  };
  try {
    await until(async () => {
      if (exited) throw new Error("exited");
      return (await Deno.readTextFile(logFile).catch(() => "")).includes("executed successfully");
    }, 60_000);
  } catch {
    if (!exited) child.kill("SIGKILL");
    throw await why(exited ? "exited before it ran a job" : "ran no job within 60 s");
  }
  return {
    pid: child.pid,
    stop: async () => {
      if (exited) throw await why("exited while it was measured");
      child.kill("SIGTERM");
      await ended;
      await copied;
    },
  };
}

async function python(cwd: string, lines: string[]): Promise<void> {
  const out = await new Deno.Command(PYTHON, { args: ["-c", lines.join("\n")], cwd }).output();
  if (!out.success) {
    throw new Error(
      `bench: ${PYTHON} could not add the original's jobs (are its packages installed? see bench/original.ts):\n${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
}
