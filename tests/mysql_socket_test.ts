/**
 * A MySQL/MariaDB server on this machine reached by its Unix socket
 * (`db.socket`, `?socket=` in db.url): the CLI works through it, a wrong
 * path says what to check, and it names the same database for change
 * notices as the server's loopback address does.
 */
import { assert, assertEquals, assertStringIncludes, assertThrows } from "./assert.ts";
import { freshDatabase, jm, MYSQL_URL, rawQuery } from "./helpers.ts";
import { resolveTarget } from "../src/config/database.ts";
import { defaultSettings, loadConfig } from "../src/config/config.ts";
import { ValidationError } from "../src/errors.ts";
import { noticeFolder } from "../src/store/change_notice.ts";
import type { MysqlTarget } from "../src/store/target.ts";

const mysqlTarget = (url: string, socket = "") =>
  resolveTarget({ ...defaultSettings(), "db.url": url, "db.socket": socket }) as MysqlTarget;

Deno.test("mysql socket: db.socket and ?socket= take an absolute path, and name this machine's server", async () => {
  const url = "mysql://jobs@localhost/jobs?socket=/run/mysqld/mysqld.sock";
  assertEquals(mysqlTarget(url).socket, "/run/mysqld/mysqld.sock");
  assertEquals(mysqlTarget("mysql://jobs@localhost/jobs", "/tmp/my.sock").socket, "/tmp/my.sock");
  // The URL's socket wins over the key, as the rest of the URL does.
  assertEquals(mysqlTarget(url, "/tmp/my.sock").socket, "/run/mysqld/mysqld.sock");
  assertEquals(mysqlTarget("mysql://jobs@localhost/jobs").socket, undefined);
  // The key is a server on this machine: a URL naming another (a --database beside the config)
  // is not reached through it.
  assertEquals(
    mysqlTarget("mysql://jobs@db.remote.example:3399/jobs", "/tmp/my.sock").socket,
    undefined,
  );
  assertEquals(mysqlTarget("mysql://jobs@127.0.0.1/jobs", "/tmp/my.sock").socket, "/tmp/my.sock");
  // A socket alone selects MySQL, as db.host does.
  const alone = resolveTarget({ ...defaultSettings(), "db.socket": "/tmp/my.sock" }) as MysqlTarget;
  assertEquals([alone.kind, alone.host, alone.socket], ["mysql", "localhost", "/tmp/my.sock"]);
  const refused = assertThrows(
    () => mysqlTarget("mysql://jobs@localhost/jobs?socket=mysqld.sock"),
    ValidationError,
  );
  assertEquals(
    refused.message,
    "db.url: socket=mysqld.sock is not a socket's absolute path (e.g. socket=/run/mysqld/mysqld.sock)",
  );
  const dir = await Deno.makeTempDir({ prefix: "jm-socket-" });
  try {
    await Deno.writeTextFile(`${dir}/jobsmanager.json`, '{ db: { socket: "mysqld.sock" } }');
    assertThrows(
      () => loadConfig({ config: `${dir}/jobsmanager.json` }, {}),
      ValidationError,
      'db.socket: "mysqld.sock" is not valid (expected the socket\'s absolute path, e.g. /run/mysqld/mysqld.sock)',
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  // A CLI that names the server by its loopback address reaches a service on its socket at once.
  assertEquals(
    await noticeFolder(mysqlTarget(url)),
    await noticeFolder(mysqlTarget("mysql://jobs@127.0.0.1:3306/jobs")),
  );
  assert(
    await noticeFolder(mysqlTarget(url)) !==
      await noticeFolder(mysqlTarget("mysql://jobs@db.example:3306/jobs")),
  );
});

/** Debian's MariaDB socket, where the test server listens (CI's is this machine's). */
const SOCKET = "/run/mysqld/mysqld.sock";
const noSocket = MYSQL_URL === "" ? "JM_TEST_DATABASE_URL is not set" : (() => {
  try {
    Deno.statSync(SOCKET);
    return null;
  } catch {
    return `${SOCKET} is not here (the test server is on another machine)`;
  }
})();

Deno.test({
  name:
    "mysql socket: the CLI adds and lists jobs through the server's socket; a wrong one says what to check",
  ignore: noSocket !== null,
  fn: async () => {
    await using db = await freshDatabase("mysql");
    const [{ socket }] = await rawQuery(db, "SELECT @@socket AS socket") as { socket: string }[];
    assertEquals(socket, SOCKET, "the test server's socket");
    const onSocket = (path: string) => {
      const url = new URL(db.url);
      return `mysql://${url.username}@localhost${url.pathname}?socket=${path}`;
    };
    const socketDb = { ...db, url: onSocket(socket) };
    const added = await jm(
      socketDb,
      "job",
      "add",
      "viasocket",
      "--command",
      "true",
      "--cron",
      "0 3 * * *",
    );
    assertEquals(added.code, 0, added.stderr);
    const listed = await jm(db, "job", "list", "--json");
    assertEquals(JSON.parse(listed.stdout).map((j: { id: string }) => j.id), ["viasocket"]);

    const wrong = await jm({ ...db, url: onSocket(`${db.dir}/nothing.sock`) }, "job", "list");
    assertEquals(wrong.code, 1, wrong.stderr);
    assertStringIncludes(
      wrong.stderr,
      `cannot connect to MySQL at socket ${db.dir}/nothing.sock: no such socket; is the server running on this machine, and is db.socket (or the URL's socket) its socket (SELECT @@socket tells)?`,
    );
  },
});

if (noSocket !== null) {
  Deno.test({ name: `${noSocket}: the socket test is skipped`, ignore: true, fn: () => {} });
}
