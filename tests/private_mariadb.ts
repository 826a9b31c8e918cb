/**
 * A MariaDB server of a test's own, for settings a shared server must not
 * be given (`SET GLOBAL`, startup options): made in a temporary directory
 * with `mariadb-install-db`, on a free port, removed at disposal. Only
 * where the MariaDB tests run (JM_TEST_DATABASE_URL set) and the server's
 * programs are installed.
 */
import mysql from "mysql2/promise";
import { MYSQL_URL, waitFor } from "./helpers.ts";

const MARIADBD = "/usr/sbin/mariadbd";

/** Why private servers cannot be made here; null when they can. */
export function privateMariadbMissing(): string | null {
  if (MYSQL_URL === "") return "JM_TEST_DATABASE_URL is not set";
  try {
    Deno.statSync(MARIADBD);
    return null;
  } catch {
    return `${MARIADBD} is not installed`;
  }
}

export interface PrivateMariadb extends AsyncDisposable {
  /** `mysql://root@127.0.0.1:PORT/jobs`, its database made. */
  url: string;
  /** SQL as root, on a connection of its own. */
  sql(text: string): Promise<unknown>;
}

/**
 * Start one with `options` (mariadbd's own, e.g. `--character-set-server=utf8mb3`);
 * `ssl`: how root's own connections (`sql`) reach it, where it takes TLS only.
 */
export async function privateMariadb(
  options: string[] = [],
  ssl?: mysql.SslOptions,
): Promise<PrivateMariadb> {
  const dir = await Deno.makeTempDir({ prefix: "jm-mariadb-" });
  const installed = await new Deno.Command("mariadb-install-db", {
    args: [
      "--no-defaults",
      `--datadir=${dir}/data`,
      // Its temporary tables in its own directory: in the shared /tmp one went missing under it
      // while other tests and services ran ("Could not remove temporary table … error: 2").
      `--tmpdir=${dir}`,
      "--auth-root-authentication-method=normal",
      "--skip-test-db",
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!installed.success) {
    throw new Error(`mariadb-install-db: ${new TextDecoder().decode(installed.stderr)}`);
  }
  const port = freePort();
  const server = new Deno.Command(MARIADBD, {
    args: [
      "--no-defaults",
      "--user=root",
      `--datadir=${dir}/data`,
      `--tmpdir=${dir}`,
      `--socket=${dir}/mysqld.sock`,
      `--pid-file=${dir}/mysqld.pid`,
      `--port=${port}`,
      "--bind-address=127.0.0.1",
      "--skip-log-bin",
      "--innodb-buffer-pool-size=16M",
      ...options,
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const log: string[] = [];
  const reading = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of server.stderr) log.push(decoder.decode(chunk, { stream: true }));
  })();
  const connect = () => mysql.createConnection({ host: "127.0.0.1", port, user: "root", ssl });
  const stop = async () => {
    try {
      server.kill("SIGTERM");
    } catch {
      // Ended already.
    }
    await server.status;
    await reading;
    await Deno.remove(dir, { recursive: true });
  };
  try {
    const first = await waitFor(() => connect().catch(() => null), {
      timeoutMs: 30_000,
      what: `a private MariaDB on port ${port}`,
      detail: () => log.join(""),
    });
    await first.query("CREATE DATABASE jobs");
    await first.end();
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    url: `mysql://root@127.0.0.1:${port}/jobs`,
    sql: async (text) => {
      const conn = await connect();
      try {
        return (await conn.query(text))[0];
      } finally {
        await conn.end();
      }
    },
    [Symbol.asyncDispose]: stop,
  };
}

/** A port no one listens on now. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}
