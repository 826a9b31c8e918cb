/**
 * The chaos run of issue 10 (`deno task bench cluster [--seconds N]`, not in
 * CI): several `serve` on one MariaDB database, 50 jobs firing every second;
 * every 10 s one random node is killed with SIGKILL and started again 0-6 s
 * later, and the database server is restarted once in the middle (the node
 * killed just before it starts again as the database comes back). The server is a
 * private `mariadbd` (its own datadir and port, removed afterwards), never
 * the shared one. Each command appends its job and instant to a file, so a
 * fire that ran twice shows even where jm_runs' unique key would hide it.
 * Then, per (job, instant) of the window: run once, run twice, or not run
 * and recorded `missed`/`lost`/`interrupted`/`skipped` with a note, or
 * unaccounted.
 */
import mysql from "mysql2/promise";
import {
  type Db,
  EVERY_SECOND,
  makeJobs,
  quantile,
  readLog,
  seed,
  serveCommand,
  target,
} from "./common.ts";

const JOBS = 50;
const KILL_EVERY_MS = 10_000;
/**
 * A killed node starts again after 0 to this long: quick restarts take
 * their node id back before anyone notices; slow ones are declared dead
 * (3 heartbeats of 1 s), their runs lost and their jobs moved.
 */
const MAX_RESTART_DELAY_MS = 6_000;
/** After the window: time for late fires, held fires and records to land. */
const SETTLE_MS = 15_000;

/** A private MariaDB server for the run, restartable without touching anyone else's. */
class PrivateServer {
  private child: Deno.ChildProcess | null = null;

  private constructor(readonly dir: string, readonly port: number) {}

  static async start(): Promise<PrivateServer> {
    const dir = await Deno.makeTempDir({ prefix: "jm-chaos-mariadb-" });
    const install = await new Deno.Command("mariadb-install-db", {
      args: [
        "--no-defaults",
        `--datadir=${dir}/data`,
        "--user=root",
        "--auth-root-authentication-method=normal",
        "--skip-test-db",
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!install.success) {
      throw new Error(`mariadb-install-db failed: ${new TextDecoder().decode(install.stderr)}`);
    }
    const server = new PrivateServer(dir, freePort());
    await server.up();
    return server;
  }

  get url(): string {
    return `mysql://root@127.0.0.1:${this.port}`;
  }

  /** Start mariadbd and wait until it answers. */
  async up(): Promise<void> {
    this.child = new Deno.Command("/usr/sbin/mariadbd", {
      args: [
        "--no-defaults",
        `--datadir=${this.dir}/data`,
        `--port=${this.port}`,
        `--socket=${this.dir}/mysqld.sock`,
        `--pid-file=${this.dir}/mysqld.pid`,
        `--log-error=${this.dir}/error.log`,
        "--bind-address=127.0.0.1",
        "--user=root",
        "--skip-log-bin",
        "--innodb-buffer-pool-size=64M",
        "--max-connections=500",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        const c = await mysql.createConnection(this.url);
        await c.end();
        return;
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`mariadbd did not answer: ${error}`);
        await sleep(100);
      }
    }
  }

  /** Stop mariadbd cleanly (SIGTERM) and wait for it. */
  async down(): Promise<void> {
    this.child?.kill("SIGTERM");
    await this.child?.status;
    this.child = null;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.down();
    await Deno.remove(this.dir, { recursive: true });
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** As systemd/jobsmanager.service (Restart=on-failure, RestartSec=5s). */
const RESTART_SEC_MS = 5000;

/**
 * One node slot: a `serve` process, killed and started again under the
 * same environment. One that exits by itself (it cannot start while the
 * database is away) is started again 5 s later, as systemd would.
 */
class Node {
  child: Deno.ChildProcess | null = null;
  /** Exits the run did not ask for. */
  exits = 0;
  /** Whether an exit of its own is followed by a restart (off once the window is over). */
  supervised = true;

  constructor(
    readonly db: Db,
    readonly index: number,
    readonly env: Record<string, string>,
    private readonly event: (what: string) => void,
  ) {}

  get config(): string {
    return `${this.db.dir}/node${this.index}.json`;
  }

  get logFile(): string {
    return `${this.db.dir}/log${this.index}/jobsmanager.log`;
  }

  async start(): Promise<void> {
    await Deno.writeTextFile(
      this.config,
      JSON.stringify({
        log: { path: `${this.db.dir}/log${this.index}`, level: "info" },
        jobsmanager: { timezone: "UTC", heartbeat_interval: 1 },
      }),
    );
    const child = serveCommand(this.db.url, this.config, this.db.dir, "null", this.env).spawn();
    this.child = child;
    child.status.then(async ({ code }) => {
      // Killed or stopped by the run: `signal` let go of it first.
      if (this.child !== child) return;
      this.child = null;
      this.exits++;
      this.event(`node slot ${this.index} exited by itself (code ${code}), restarted in 5 s`);
      await sleep(RESTART_SEC_MS);
      if (this.supervised && this.child === null) await this.start();
    });
  }

  kill(): Promise<void> {
    return this.signal("SIGKILL");
  }

  stop(): Promise<void> {
    return this.signal("SIGTERM");
  }

  /** Send `signal` and wait for the exit. */
  private async signal(signal: Deno.Signal): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = null;
    try {
      child.kill(signal);
    } catch {
      // It had just exited.
    }
    await child.status;
  }
}

export interface ChaosFigures {
  nodes: number;
  ids: string;
  seconds: number;
  expected: number;
  once: number;
  twice: number;
  missed: number;
  lost: number;
  interrupted: number;
  skipped: number;
  unaccounted: number;
  kills: number;
  p99LagMs: number;
  maxLagMs: number;
  unaccountedSample: string[];
  twiceSample: string[];
  /** Kills, restarts and the database's restart, by ms from the window's start. */
  events: string[];
  /** Nodes that exited by themselves (restarted 5 s later). */
  exits: number;
  /** A few distinct notes of the records that are not a run, by status. */
  notes: string[];
}

/** `nodes` services for `seconds`; `explicitIds`: JM_NODE_ID n1…, else automatic ids. */
export async function chaos(
  nodes: number,
  seconds: number,
  explicitIds: boolean,
): Promise<ChaosFigures> {
  await using server = await PrivateServer.start();
  const admin = await mysql.createConnection(server.url);
  await admin.query("CREATE DATABASE jm_chaos");
  await admin.end();
  const dir = await Deno.makeTempDir({ prefix: "jm-chaos-" });
  const url = `${server.url}/jm_chaos`;
  const db: Db = { url, dir, target: target(url), drop: () => Promise.resolve() };
  const file = `${dir}/fired.txt`;
  await seed(
    db,
    makeJobs(
      JOBS,
      EVERY_SECOND,
      `echo "$JM_JOB_ID $JM_SCHEDULED_AT" >> ${file}`,
    ),
  );
  const events: string[] = [];
  /** The window's first instant, once known: events are told from it. */
  let from = Date.now();
  const event = (what: string) => void events.push(`+${Date.now() - from} ms: ${what}`);
  const slots = Array.from(
    { length: nodes },
    (_, i) => new Node(db, i, explicitIds ? { JM_NODE_ID: `n${i + 1}` } : {}, event),
  );
  let kills = 0;
  let figures: ChaosFigures;
  try {
    for (const s of slots) await s.start();
    // Every node has loaded its jobs and sees all the others.
    const deadline = Date.now() + 120_000;
    while (
      !(await Promise.all(
        slots.map(async (s) =>
          (await readLog(s.logFile)).some((l) =>
            String(l.message).startsWith(`${nodes} live nodes`)
          )
        ),
      )).every(Boolean)
    ) {
      if (Date.now() > deadline) throw new Error("the nodes did not all see each other");
      await sleep(200);
    }
    from = Math.ceil(Date.now() / 1000) * 1000 + 2000;
    const to = from + seconds * 1000;
    // In the middle, between two kills.
    const restartAt = from + Math.floor(seconds / 2) * 1000 + KILL_EVERY_MS / 2;
    const restart = sleep(restartAt - Date.now())
      .then(() => event("database server stopping"))
      .then(() => server.down())
      .then(() => event("database server down, starting"))
      .then(() => server.up())
      .then(() => event("database server up"));
    const restarts: Promise<void>[] = [];
    for (let next = from + KILL_EVERY_MS; next < to; next += KILL_EVERY_MS) {
      await sleep(next - Date.now());
      // Among the nodes running: one killed before may not be back yet.
      const up = slots.filter((s) => s.child !== null);
      const victim = up[Math.floor(Math.random() * up.length)];
      await victim.kill();
      event(`node slot ${victim.index} killed`);
      kills++;
      // The node killed just before the database's restart comes back as the database does,
      // while the others still wait to reconnect: it catches up the fires they held (or, alone
      // under `run`, ran without a claim) through the restart.
      const back = next < restartAt && restartAt < next + KILL_EVERY_MS
        ? restart
        : sleep(Math.random() * MAX_RESTART_DELAY_MS);
      restarts.push(
        back.then(() => victim.start()).then(() => void event(`node slot ${victim.index} started`)),
      );
    }
    await Promise.all(restarts);
    await restart;
    await sleep(to + SETTLE_MS - Date.now());
    for (const s of slots) s.supervised = false;
    for (const s of slots) await s.stop();
    const ids = (await rows(url, "SELECT id FROM jm_nodes ORDER BY id")).map((r) => r.id);
    figures = {
      ...await account(url, file, from, to),
      nodes,
      seconds,
      kills,
      ids: ids.join(" "),
      events,
      exits: slots.reduce((n, s) => n + s.exits, 0),
    };
  } catch (error) {
    console.error(`chaos: failed; its files are kept in ${dir}`);
    throw error;
  } finally {
    for (const s of slots) s.supervised = false;
    for (const s of slots) await s.kill();
  }
  if (figures.twice > 0 || figures.unaccounted > 0) {
    console.error(`chaos: fires run twice or unaccounted; the nodes' logs are kept in ${dir}`);
  } else {
    await Deno.remove(dir, { recursive: true });
  }
  return figures;
}

async function rows(url: string, sql: string): Promise<Record<string, unknown>[]> {
  const c = await mysql.createConnection(url);
  try {
    return (await c.query(sql))[0] as Record<string, unknown>[];
  } finally {
    await c.end();
  }
}

const COVERED = /(?:more than )?\d+ fires? from (\S+) to (\S+) came later/;

/** Every (job, instant) of [from, to) by what became of it. */
async function account(
  url: string,
  file: string,
  from: number,
  to: number,
): Promise<
  Omit<ChaosFigures, "nodes" | "seconds" | "kills" | "ids" | "events" | "exits">
> {
  const key = (job: string, at: number) => `${job} ${at}`;
  const ran = new Map<string, number>();
  for (const line of (await Deno.readTextFile(file)).split("\n").filter(Boolean)) {
    const [job, at] = line.split(" ");
    const k = key(job, Date.parse(at));
    ran.set(k, (ran.get(k) ?? 0) + 1);
  }
  const recorded = new Map<string, string>();
  const notes = new Set<string>();
  const lags: number[] = [];
  const runs = await rows(
    url,
    `SELECT job_id, scheduled_at, status, started_at, note FROM jm_runs WHERE \`trigger\` = 'schedule' AND scheduled_at >= ${
      from - 3_600_000
    }`,
  );
  for (const r of runs) {
    const job = String(r.job_id);
    const at = Number(r.scheduled_at);
    const status = String(r.status);
    if (["missed", "lost", "interrupted", "skipped"].includes(status) && notes.size < 12) {
      notes.add(`${status}: ${String(r.note).replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, "<instant>")}`);
    }
    if (status === "success" && r.started_at !== null) lags.push(Number(r.started_at) - at);
    const covered = status === "missed" ? COVERED.exec(String(r.note)) : null;
    if (covered) {
      for (let t = Date.parse(covered[1]); t <= Date.parse(covered[2]); t += 1000) {
        recorded.set(key(job, t), status);
      }
    } else {
      recorded.set(key(job, at), status);
    }
  }
  const out = {
    expected: 0,
    once: 0,
    twice: 0,
    missed: 0,
    lost: 0,
    interrupted: 0,
    skipped: 0,
    unaccounted: 0,
    unaccountedSample: [] as string[],
    twiceSample: [] as string[],
  };
  for (let i = 0; i < JOBS; i++) {
    const job = `bench.${String(i).padStart(5, "0")}`;
    for (let at = from; at < to; at += 1000) {
      out.expected++;
      const k = key(job, at);
      const n = ran.get(k) ?? 0;
      const status = recorded.get(k);
      if (n === 1) out.once++;
      else if (n > 1) {
        out.twice++;
        if (out.twiceSample.length < 10) {
          out.twiceSample.push(`${job} ${new Date(at).toISOString()}`);
        }
      } else if (status === "missed") out.missed++;
      else if (status === "lost") out.lost++;
      else if (status === "interrupted") out.interrupted++;
      else if (status === "skipped") out.skipped++;
      else {
        out.unaccounted++;
        if (out.unaccountedSample.length < 10) {
          out.unaccountedSample.push(`${job} ${new Date(at).toISOString()} ${status ?? "no row"}`);
        }
      }
    }
  }
  return {
    ...out,
    notes: [...notes],
    p99LagMs: Math.round(quantile(lags, 0.99)),
    maxLagMs: Math.round(Math.max(...lags)),
  };
}
