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
import { type Db, query, until } from "./common.ts";

const PYTHON = Deno.env.get("JM_BENCH_PYTHON") ?? "python3";

/** Throws, naming what is wrong, unless `dir` is a checkout of the original program. */
export function checkOriginal(dir: string): void {
  for (const file of ["bin/JobsManager.py", "lib/Task.py", "tools/jobsmanager.ddl.sql"]) {
    try {
      Deno.statSync(`${dir}/${file}`);
    } catch {
      throw new Error(
        `bench: --original ${dir} has no ${file}: give a checkout of github.com/kylechenoO/JobsManager`,
      );
    }
  }
}

export interface Original {
  pid: number;
  stop(): Promise<void>;
}

/**
 * The original's service on `db` (MySQL) with `everySecond` jobs firing
 * `true` every second, at its shipped settings (max_workers 300,
 * misfire_grace_time 1, max_instances 1, coalesce off), logging at info
 * as the service does in the bench; resolves once a job has run.
 */
export async function startOriginal(dir: string, db: Db, everySecond: number): Promise<Original> {
  if (db.target.kind !== "mysql") throw new Error("bench: the original program needs MySQL");
  const home = `${db.dir}/original`;
  await Deno.mkdir(`${home}/etc`, { recursive: true });
  // It finds its etc/ and log/ beside its bin/, by the path it was started by: links keep ours apart.
  await Deno.symlink(`${dir}/bin`, `${home}/bin`);
  await Deno.symlink(`${dir}/lib`, `${home}/lib`);
  const { host, port, user, password, database } = db.target;
  await Deno.writeTextFile(
    `${home}/etc/global.json`,
    JSON.stringify({
      db: { host, port: String(port), username: user, password, database, charset: "utf8mb4" },
      log: {
        path: "log",
        file: "jobsmanager.log",
        level: "info",
        table: "jm_syslog",
        rotate: { max_size: 500, backup_count: 7 },
      },
      lib: { path: "lib" },
      jobsmanager: {
        table: "jm_jobs",
        coalesce: "False",
        max_instances: 1,
        max_workers: 300,
        misfire_grace_time: 1,
        timezone: "UTC",
        reload_interval: 10,
      },
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
    }, ${JSON.stringify(password)}, ${
      JSON.stringify(database)
    }, 'utf8mb4', 'jm_jobs', 'UTC', 'False', 1)`,
    `for i in range(${everySecond}): t.add_job(Job(id='bench.%05d' % i, command='true', second='*'), replace_existing=True)`,
    "t.shutdown()",
  ]);
  const child = new Deno.Command(PYTHON, {
    args: [`${home}/bin/JobsManager.py`],
    cwd: home,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const logFile = `${home}/log/jobsmanager.log`;
  const ran = async () =>
    (await Deno.readTextFile(logFile).catch(() => "")).includes("executed successfully");
  try {
    await until(ran, 60_000);
  } catch {
    child.kill("SIGKILL");
    await child.status;
    const tail = (await Deno.readTextFile(logFile).catch(() => "(no log file)")).slice(-2000);
    throw new Error(`bench: the original program ran no job within 60 s; its log ends:\n${tail}`);
  }
  return {
    pid: child.pid,
    stop: async () => {
      child.kill("SIGTERM");
      await child.status;
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
