/**
 * Shared test fixtures: a fresh database per test file on every backend,
 * and the real CLI run as a subprocess.
 */
import mysql from "mysql2/promise";
import { openStore } from "../src/store/open.ts";
import type { Store } from "../src/store/store.ts";
import { resolveTarget } from "../src/config/database.ts";
import type { DatabaseTarget, MysqlTarget } from "../src/store/target.ts";
import { defaultSettings } from "../src/config/config.ts";

/** The MariaDB/MySQL server tests may create databases on (CI always sets it). */
export const MYSQL_URL = Deno.env.get("JM_TEST_DATABASE_URL") ?? "";

export type Backend = "sqlite" | "mysql";

/** Every backend to run against: SQLite always, MySQL when a server is given. */
export const BACKENDS: Backend[] = MYSQL_URL === "" ? ["sqlite"] : ["sqlite", "mysql"];

if (MYSQL_URL === "") {
  console.warn("JM_TEST_DATABASE_URL is not set: MySQL tests are skipped");
}

export interface TestDatabase extends AsyncDisposable {
  backend: Backend;
  /** `--database` value for the CLI. */
  url: string;
  target: DatabaseTarget;
  /** A scratch directory, removed with the database. */
  dir: string;
  /** Open a store on it (the caller closes it). */
  open(): Store;
}

function mysqlTarget(url: string): MysqlTarget {
  const target = resolveTarget({ ...defaultSettings(), "db.url": url });
  if (target.kind !== "mysql") {
    throw new Error(`JM_TEST_DATABASE_URL is not a mysql:// URL: ${url}`);
  }
  return target;
}

async function admin<T>(fn: (conn: mysql.Connection) => Promise<T>): Promise<T> {
  const t = mysqlTarget(MYSQL_URL);
  const conn = await mysql.createConnection({
    host: t.host,
    port: t.port,
    user: t.user,
    password: t.password,
  });
  try {
    return await fn(conn);
  } finally {
    await conn.end();
  }
}

/** Run raw SQL on a test database (for checks and for simulating hand edits). */
export async function rawQuery(
  db: TestDatabase,
  sql: string,
  params: unknown[] = [],
): Promise<Record<string, unknown>[]> {
  if (db.target.kind === "sqlite") {
    const { DatabaseSync } = await import("node:sqlite");
    const conn = new DatabaseSync(db.target.path);
    try {
      const stmt = conn.prepare(sql);
      return /^\s*(select|pragma|with)/i.test(sql)
        ? stmt.all(...params as (string | number | null)[]) as Record<string, unknown>[]
        : (stmt.run(...params as (string | number | null)[]), []);
    } finally {
      conn.close();
    }
  }
  const t = db.target;
  const conn = await mysql.createConnection({
    host: t.host,
    port: t.port,
    user: t.user,
    password: t.password,
    database: t.database,
  });
  try {
    const [rows] = await conn.query(sql, params);
    return Array.isArray(rows) ? rows as Record<string, unknown>[] : [];
  } finally {
    await conn.end();
  }
}

/** A fresh, empty database on `backend`, dropped on dispose. */
export async function freshDatabase(backend: Backend): Promise<TestDatabase> {
  const dir = await Deno.makeTempDir({ prefix: "jm-test-" });
  let url: string;
  let drop = async () => {};
  if (backend === "sqlite") {
    url = `sqlite:${dir}/jobs.db`;
  } else {
    const name = `jm_test_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
    await admin((c) => c.query(`CREATE DATABASE ${name} CHARACTER SET utf8mb4`));
    const base = new URL(MYSQL_URL);
    base.pathname = `/${name}`;
    url = base.toString();
    drop = () => admin((c) => c.query(`DROP DATABASE IF EXISTS ${name}`)).then(() => {});
  }
  const target = resolveTarget({ ...defaultSettings(), "db.url": url });
  return {
    backend,
    url,
    target,
    dir,
    open: () => openStore(target),
    async [Symbol.asyncDispose]() {
      await drop();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

const MAIN = new URL("../src/main.ts", import.meta.url).pathname;

/**
 * Run the real CLI (`deno run -A src/main.ts ARGS`) in `cwd`, with an
 * environment free of the caller's JM_* variables unless given.
 */
export async function cli(
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<CliResult> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(Deno.env.toObject())) {
    if (!k.startsWith("JM_")) env[k] = v;
  }
  const command = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", MAIN, ...args],
    cwd: options.cwd ?? Deno.cwd(),
    env: { ...env, NO_COLOR: "1", ...options.env },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
  const out = await command.output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}
