/**
 * An attack on one service (issue 9), not a test:
 *
 *   npx --yes deno@2.9.6 run -A bench/attack.ts [--rounds N] [--backend sqlite|mysql]
 *
 * Repeats the faults the issue found against a real `serve` on SQLite and,
 * when JM_BENCH_DATABASE_URL or JM_TEST_DATABASE_URL names a MariaDB
 * server, on MariaDB: kill -9 of the service (and of its guard), signal
 * storms, a jm_runs table gone for a while, a database outage, SQLite files
 * deleted, replaced, symlinked and hard-linked, hostile jobs (escaping their
 * group, printing NUL, bytes that are not UTF-8, the password), and bad
 * input to the CLI. Every job appends its JM_SCHEDULED_AT to a file, so
 * what ran can be compared with jm_runs: a fire that ran without a final
 * row is lost, one that ran twice is duplicated. Prints one line per
 * fault and the totals.
 */
import mysql from "mysql2/promise";
import { type Backend, type Db, freshDb, query, RUN_MAIN, serveCommand, SERVER } from "./common.ts";
import { TcpProxy } from "../tests/tcp_proxy.ts";

const args = [...Deno.args];
const flag = (name: string) => {
  const i = args.indexOf(name);
  return i < 0 ? undefined : args.splice(i, 2)[1];
};
const ROUNDS = Number(flag("--rounds") ?? 5);
const onlyBackend = flag("--backend");
const backends = (["sqlite", "mysql"] as const).filter((b) =>
  (onlyBackend === undefined || onlyBackend === b) && (b === "sqlite" || SERVER !== "")
);

const totals = {
  faults: 0,
  survived: 0,
  fires: 0,
  lost: 0,
  duplicated: 0,
  badInputs: 0,
  badHandled: 0,
  leaked: 0,
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const unique = () => `${Math.floor(Math.random() * 900_000) + 100_000}`;

async function until(check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!await check()) {
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}

/** Count a fault; `check` says whether the service came through it as it should. */
async function fault(backend: Backend, name: string, check: () => Promise<boolean>) {
  totals.faults++;
  let ok = false;
  let why = "";
  try {
    ok = await check();
  } catch (error) {
    why = ` (${(error as Error).message.split("\n")[0]})`;
  }
  if (ok) totals.survived++;
  console.log(`${ok ? "survived" : "FAILED  "}  [${backend}] ${name}${why}`);
}

/** `jobsmanager serve` on a database, its stderr kept. */
class Service {
  readonly child: Deno.ChildProcess;
  private err = "";
  private readonly reading: Promise<void>;
  readonly status: Promise<Deno.CommandStatus>;

  constructor(url: string, dir: string) {
    const child = serveCommand(url, `${dir}/attack.json`, dir, "piped").spawn();
    this.child = child;
    this.reading = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of child.stderr) this.err += decoder.decode(chunk);
    })();
    this.status = this.child.status;
  }

  get stderr(): string {
    return this.err;
  }

  ready(): Promise<boolean> {
    return until(() => this.err.includes('"loaded '), 30_000);
  }

  async end(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    try {
      this.child.kill(signal);
    } catch {
      // Exited already.
    }
    const status = await this.status;
    await this.reading;
    return status;
  }
}

async function writeConfig(dir: string): Promise<void> {
  await Deno.writeTextFile(
    `${dir}/attack.json`,
    JSON.stringify({
      log: { path: `${dir}/log` },
      jobsmanager: {
        timezone: "UTC",
        reload_interval: 0.5,
        shutdown_timeout: 2,
        kill_grace: 1,
        misfire_grace_time: 5,
      },
    }),
  );
}

function jm(db: Db, ...cli: string[]): Promise<Deno.CommandOutput> {
  return new Deno.Command(Deno.execPath(), {
    args: [...RUN_MAIN, "--database", db.url, ...cli],
    cwd: db.dir,
    stdout: "piped",
    stderr: "piped",
  }).output();
}

async function addJob(db: Db, id: string, command: string, second = "*"): Promise<void> {
  const out = await jm(db, "job", "add", id, "--second", second, "--command", command);
  if (out.code !== 0) throw new Error(new TextDecoder().decode(out.stderr));
}

/** A job that records each fire it runs, then does `rest`. */
const recording = (db: Db, rest = "true") =>
  `echo "$JM_JOB_ID@$JM_SCHEDULED_AT" >> ${db.dir}/fires; ${rest}`;

/** Pids whose command line matches `pattern` (pgrep -f). */
async function pgrep(pattern: string): Promise<number[]> {
  const out = await new Deno.Command("pgrep", { args: ["-f", pattern], stdout: "piped" }).output();
  return new TextDecoder().decode(out.stdout).split(/\s+/).filter((s) => s !== "").map(Number);
}

async function killAll(pattern: string): Promise<void> {
  for (const pid of await pgrep(pattern)) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // Gone.
    }
  }
}

/**
 * After a clean stop: every fire a job ran has one final row; none ran
 * twice. Adds to the totals; returns whether nothing was lost or doubled.
 */
async function account(db: Db): Promise<boolean> {
  let ran: string[] = [];
  try {
    ran = (await Deno.readTextFile(`${db.dir}/fires`)).trim().split("\n").filter((l) => l !== "");
  } catch {
    // Nothing ran.
  }
  const rows = await query(db, "SELECT scheduled_at, status, job_id FROM jm_runs");
  const final = new Set(
    rows.filter((r) => !["running", "queued"].includes(String(r.status)))
      .map((r) => `${r.job_id}@${new Date(Number(r.scheduled_at)).toISOString()}`),
  );
  const instants = new Set(ran);
  const duplicated = ran.length - instants.size;
  const lost = [...instants].filter((fire) => !final.has(fire)).length;
  totals.fires += instants.size;
  totals.lost += lost;
  totals.duplicated += duplicated;
  if (lost + duplicated > 0) console.log(`          ${lost} lost, ${duplicated} duplicated`);
  return lost === 0 && duplicated === 0;
}

async function withDb(backend: Backend, fn: (db: Db) => Promise<void>): Promise<void> {
  const db = await freshDb(backend);
  try {
    await writeConfig(db.dir);
    await fn(db);
  } finally {
    await db.drop();
  }
}

/** kill -9 of serve (and, every other round, of its guard), at random moments; a signal storm. */
async function killNine(backend: Backend): Promise<void> {
  await withDb(backend, async (db) => {
    const tag = unique();
    const escaped = `sleep 300.${tag}1`;
    await addJob(db, "tick", recording(db));
    await addJob(db, "long", recording(db, `sleep 2.${tag}2`), "*/3");
    await addJob(
      db,
      "escapee",
      recording(db, `setsid sh -c 'trap "" TERM; ${escaped}' >/dev/null 2>&1 &`),
      "*/5",
    );
    const leftovers = async () => [
      ...await pgrep(`^${escaped}$`),
      ...await pgrep(`^sleep 2\\.${tag}2$`),
    ];
    const gone = (pids: number[]) => pids.every((pid) => parent(pid) === -1);
    let left: number[] = [];
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const service = new Service(db.url, db.dir);
        const withGuard = round % 2 === 1;
        await fault(
          backend,
          `kill -9 of serve${withGuard ? " and its guard" : ""} (${round + 1})`,
          async () => {
            if (!await service.ready()) throw new Error(`serve did not start: ${service.stderr}`);
            // What the last kill left is ended by this start, before its first fire.
            if (!await until(() => gone(left), 10_000)) throw new Error(`left running: ${left}`);
            await sleep(1500 + Math.random() * 3000);
            const guard = (await pgrep("read -r op pgid")).filter((pid) =>
              parent(pid) === service.child.pid
            );
            await service.end("SIGKILL");
            if (withGuard) { for (const pid of guard) Deno.kill(pid, "SIGKILL"); }
            await sleep(500);
            left = await leftovers();
            // With its guard alive, only what escaped the runs' groups is left.
            return withGuard || (await pgrep(`^sleep 2\\.${tag}2$`)).length === 0;
          },
        );
      }
      const last = new Service(db.url, db.dir);
      await fault(backend, "the restart ends what the last kill -9 left", async () => {
        return await last.ready() && await until(() => gone(left), 10_000);
      });
      await fault(backend, "a storm of 100 SIGHUPs", async () => {
        for (let i = 0; i < 100; i++) last.child.kill("SIGHUP");
        const fired = await query(db, "SELECT COUNT(*) AS n FROM jm_runs");
        await sleep(2500);
        const after = await query(db, "SELECT COUNT(*) AS n FROM jm_runs");
        return Number(after[0].n) > Number(fired[0].n) && !(await raceExit(last));
      });
      await sleep(2000);
      const stopped = await last.end();
      await fault(backend, "every fire of the kill -9 rounds recorded once", async () => {
        return stopped.code === 0 && await account(db);
      });
    } finally {
      await killAll(`${tag}`);
    }
  });
}

function parent(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return -1;
  }
}

/** True when the service has exited (it must not have). */
async function raceExit(service: Service): Promise<boolean> {
  return await Promise.race([service.status.then(() => true), sleep(10).then(() => false)]);
}

/** jm_runs moved aside while runs end, then back: the refused records are written after. */
async function tableAway(backend: Backend): Promise<void> {
  await withDb(backend, async (db) => {
    await addJob(db, "tick", recording(db));
    const service = new Service(db.url, db.dir);
    await service.ready();
    await sleep(1500);
    const rename = (from: string, to: string) =>
      query(
        db,
        backend === "sqlite"
          ? `ALTER TABLE ${from} RENAME TO ${to}`
          : `RENAME TABLE ${from} TO ${to}`,
      );
    await fault(backend, "jm_runs gone for 4 s while jobs fire and end", async () => {
      await rename("jm_runs", "jm_runs_aside");
      await sleep(4000);
      await rename("jm_runs_aside", "jm_runs");
      await sleep(5000);
      const status = await service.end();
      return status.code === 0 && !/unreachable|cannot rollback/.test(service.stderr) &&
        await account(db);
    });
  });
}

/** MariaDB behind a proxy that cuts every connection for 6 s. */
async function outage(): Promise<void> {
  await withDb("mysql", async (db) => {
    if (db.target.kind !== "mysql") return;
    await addJob(db, "tick", recording(db, `echo "$JM_RUN_ID" >> ${db.dir}/ids`));
    await using proxy = TcpProxy.start({ hostname: db.target.host, port: db.target.port });
    const url = new URL(db.url);
    url.port = String(proxy.port);
    const service = new Service(url.toString(), db.dir);
    await service.ready();
    await sleep(1500);
    await fault("mysql", "the database cut off for 6 s", async () => {
      proxy.cut();
      await sleep(6000);
      proxy.restore();
      // Reconnection backs off up to 4 s here.
      await sleep(8000);
      const status = await service.end();
      // A run started during the outage has no id yet: empty, never a placeholder.
      const negative = (await Deno.readTextFile(`${db.dir}/ids`)).split("\n").some((id) =>
        id.startsWith("-")
      );
      return status.code === 0 && !negative && await account(db);
    });
  });
}

/** The SQLite file deleted, replaced, and reached by a symlink and a hard link. */
async function sqliteFiles(): Promise<void> {
  for (const what of ["deleted", "replaced"] as const) {
    await withDb("sqlite", async (db) => {
      await addJob(db, "tick", recording(db));
      const service = new Service(db.url, db.dir);
      await service.ready();
      await fault("sqlite", `database file ${what} under serve`, async () => {
        const path = `${db.dir}/jobs.db`;
        if (what === "deleted") {
          for (const suffix of ["", "-wal", "-shm"]) {
            await Deno.remove(path + suffix).catch(() => {});
          }
        } else {
          await Deno.writeTextFile(`${db.dir}/other.db`, "");
          await Deno.rename(`${db.dir}/other.db`, path);
        }
        const exited = await Promise.race([service.status, sleep(10_000).then(() => null)]);
        const status = await service.end();
        return exited !== null && status.code === 1 &&
          /"level":"ERROR".*jobs\.db/.test(service.stderr);
      });
    });
  }
  for (const link of ["symlink", "hard link"] as const) {
    await withDb("sqlite", async (db) => {
      await addJob(db, "tick", recording(db));
      const first = new Service(db.url, db.dir);
      await first.ready();
      await fault("sqlite", `a second serve through a ${link}`, async () => {
        const other = `${db.dir}/other.db`;
        if (link === "symlink") await Deno.symlink(`${db.dir}/jobs.db`, other);
        else await Deno.link(`${db.dir}/jobs.db`, other);
        const second = new Service(`sqlite:${other}`, db.dir);
        const exited = await Promise.race([second.status, sleep(15_000).then(() => null)]);
        const status = await second.end();
        const firstStatus = await first.end();
        return exited !== null && status.code === 1 && firstStatus.code === 0 &&
          await account(db);
      });
    });
  }
}

/** Jobs that escape their group, print NUL and bytes that are not UTF-8, and print the password. */
async function hostileJobs(backend: Backend): Promise<void> {
  await withDb(backend, async (db) => {
    const tag = unique();
    let url = db.url;
    let password = "";
    const user = `jm_attack_${tag}`;
    if (db.target.kind === "mysql") {
      password = `s3cr@t/${tag}%`;
      const admin = await mysql.createConnection(SERVER);
      await admin.query(`CREATE USER '${user}'@'%' IDENTIFIED BY '${password}'`);
      await admin.query(`GRANT ALL ON \`${db.target.database}\`.* TO '${user}'@'%'`);
      await admin.end();
      const u = new URL(db.url);
      u.username = user;
      u.password = encodeURIComponent(password);
      url = u.toString();
    }
    try {
      await addJob(
        db,
        "escapee",
        recording(db, `setsid sh -c 'trap "" TERM; sleep 300.${tag}3' >/dev/null 2>&1 &`),
        "*/4",
      );
      await addJob(db, "bytes", recording(db, String.raw`printf 'a\000b\377c'`), "*/4");
      if (password !== "") {
        await addJob(
          db,
          "leak",
          recording(db, `echo '${password}'; echo '${encodeURIComponent(password)}' >&2`),
          "*/4",
        );
      }
      const service = new Service(url, db.dir);
      await service.ready();
      await sleep(6000);
      await fault(backend, "a job escaping its group (setsid) and ignoring SIGTERM", async () => {
        const rows = await query(
          db,
          "SELECT note FROM jm_runs WHERE job_id = 'escapee' AND status = 'success'",
        );
        const named = rows.filter((r) => /had left the run's process group/.test(String(r.note)));
        const running = await pgrep(`^sleep 300\\.${tag}3$`);
        if (named.length !== rows.length || running.length > 1) {
          console.log(`          notes: ${JSON.stringify(rows)}; still running: ${running}`);
        }
        return rows.length > 0 && named.length === rows.length && running.length <= 1;
      });
      await fault(backend, "output with NUL and bytes that are not UTF-8", async () => {
        const rows = await query(
          db,
          "SELECT stdout FROM jm_runs WHERE job_id = 'bytes' AND status = 'success'",
        );
        return rows.length > 0 && rows.every((r) => r.stdout === String.raw`a\x00b\xffc`);
      });
      if (password !== "") {
        await fault(backend, "a job printing the database password", async () => {
          const rows = await query(db, "SELECT stdout, stderr FROM jm_runs WHERE job_id = 'leak'");
          const shown = await jm(db, "runs", "--job", "leak");
          const text = JSON.stringify(rows) + new TextDecoder().decode(shown.stdout) +
            service.stderr;
          const leaks = [password, encodeURIComponent(password)].filter((p) =>
            text.includes(p)
          ).length;
          totals.leaked += leaks;
          return rows.length > 0 && leaks === 0;
        });
      }
      const status = await service.end();
      await fault(backend, "every fire of the hostile jobs recorded once", async () => {
        return status.code === 0 && await account(db);
      });
    } finally {
      await killAll(`300.${tag}3`);
      if (db.target.kind === "mysql") {
        const admin = await mysql.createConnection(SERVER);
        await admin.query(`DROP USER IF EXISTS '${user}'@'%'`);
        await admin.end();
      }
    }
  });
}

/** Bad input to the CLI: refused with the exit code it deserves, nothing written. */
async function badInputs(backend: Backend): Promise<void> {
  await withDb(backend, async (db) => {
    await addJob(db, "seed", "true");
    const file = (name: string, text: string) => {
      Deno.writeTextFileSync(`${db.dir}/${name}`, text);
      return `${db.dir}/${name}`;
    };
    const cases: [string[], number][] = [
      [["job", "add", "bad id", "--command", "true", "--minute", "5"], 2],
      [["job", "add", "x", "--command", "true", "--minute", "61"], 2],
      [["job", "add", "x", "--command", "  ", "--minute", "5"], 2],
      [["job", "add", "x", "--command", "true", "--cron", "* * *"], 2],
      [["job", "add", "x", "--command", "true", "--minute", "5", "--timezone", "Mars/Olympus"], 2],
      [["job", "add", "x", "--command", "true", "--minute", "5", "--timeout", "-1"], 2],
      [["job", "add", "x", "--command", "true", "--minute", "5", "--env", "JM_RUN_MARKER=x"], 2],
      [["job", "add", "x", "--command", "true", "--minute", "5", "--env", "1A=x"], 2],
      [["job", "add", "x", "--command", "true", "--minute", "5", "--cwd", "relative"], 2],
      [
        [
          "job",
          "add",
          "x",
          "--command",
          "true",
          "--minute",
          "5",
          "--description",
          "d".repeat(1001),
        ],
        2,
      ],
      [["job", "add", "x", "--command", "true", "--cron", "0 0 30 2 *"], 2],
      [["job", "add", "seed", "--command", "true", "--minute", "5"], 1],
      [["job", "remove", "nope"], 1],
      [["job", "show", "still bad"], 2],
      [
        [
          "apply",
          file("nul.json5", '{ jobs: [ { id: "n", command: "a\\u0000b", minute: "*" } ] }'),
        ],
        2,
      ],
      [[
        "apply",
        file(
          "env.json5",
          '{ jobs: [ { id: "n", command: "true", minute: "*", env: { A: "x\\u0000" } } ] }',
        ),
      ], 2],
      [[
        "apply",
        file(
          "desc.json5",
          '{ jobs: [ { id: "n", command: "true", minute: "*", description: "\\u0000" } ] }',
        ),
      ], 2],
      [["runs", "show", "-1"], 2],
      [["logs", "--since", "yesterday-ish"], 2],
    ];
    const before = JSON.stringify(await query(db, "SELECT * FROM jm_jobs ORDER BY id"));
    for (const [cli, code] of cases) {
      totals.badInputs++;
      const out = await jm(db, ...cli);
      const after = JSON.stringify(await query(db, "SELECT * FROM jm_jobs ORDER BY id"));
      if (out.code === code && after === before) {
        totals.badHandled++;
      } else {
        console.log(
          `FAILED    [${backend}] bad input ${cli.join(" ").slice(0, 80)}: exit ${out.code}`,
        );
      }
    }
  });
}

for (const backend of backends) {
  await killNine(backend);
  await tableAway(backend);
  await hostileJobs(backend);
  await badInputs(backend);
  if (backend === "sqlite") await sqliteFiles();
  else await outage();
}

console.log(`
faults injected    ${totals.faults}
survived           ${totals.survived}
fires run          ${totals.fires}
runs lost          ${totals.lost}
runs duplicated    ${totals.duplicated}
secrets leaked     ${totals.leaked}
bad inputs handled ${totals.badHandled} of ${totals.badInputs}`);
