/**
 * `import apscheduler --from-database` as a MySQL user the source
 * database refuses: what it says names the source database and the URL
 * given to --from-database, not jobsmanager's database and settings, and
 * the GRANT it advises is SELECT on the one table read (no write, no DDL
 * on the original's database), which is then enough.
 *
 * MariaDB only (SQLite has no users). A real user of its own (jmt_*),
 * granted and revoked table by table, dropped at the end.
 */
import { assertEquals } from "./assert.ts";
import { admin, cli, freshDatabase, mysqlTest } from "./helpers.ts";
import { loadSeed } from "./fixtures/seed.ts";

mysqlTest(
  "import cli[mysql]: a source database that refuses the user says so as the source's, advising SELECT on its table alone",
  async () => {
    await using jobs = await freshDatabase("sqlite");
    await using old = await freshDatabase("mysql");
    if (old.target.kind !== "mysql") throw new Error("not a MySQL test database");
    await loadSeed(old, "jm_jobs");
    const { database, host, port } = old.target;
    const name = `jmt_${crypto.randomUUID().slice(0, 8)}`;
    const url = new URL(old.url);
    url.username = name;
    url.password = `pw-${name}`;
    const shown = `mysql://${name}:***@${host}:${port}/${database}`;
    const sql = (statement: string) => admin((c) => c.query(statement));
    const importing = (from: string, ...more: string[]) =>
      cli(["--database", jobs.url, "import", "apscheduler", "--from-database", from, ...more], {
        cwd: jobs.dir,
      });
    const grant =
      `user '${name}' needs SELECT on the table read (and nothing more: the import only reads it): GRANT SELECT ON \`${database}\`.\`jm_jobs\` TO '${name}'@'<its host>'`;
    await sql(`CREATE USER '${name}'@'%' IDENTIFIED BY 'pw-${name}'`);
    try {
      // A privilege on another table only: the login is taken, the table is not shown.
      await sql(`CREATE TABLE \`${database}\`.other (id INT)`);
      await sql(`GRANT SELECT ON \`${database}\`.other TO '${name}'@'%'`);
      const unseen = await importing(url.toString());
      assertEquals([unseen.code, unseen.stderr], [
        1,
        `jobsmanager: the source database refuses this user's reads: ${shown}: SHOW command denied to user '${name}'@'${host}' for table \`${database}\`.\`jm_jobs\`; ${grant}\n`,
      ]);
      // A write granted, no SELECT: the table is shown, its rows are not read.
      await sql(`GRANT INSERT ON \`${database}\`.jm_jobs TO '${name}'@'%'`);
      for (const json of [false, true]) {
        const unread = await importing(url.toString(), ...json ? ["--json"] : []);
        const message =
          `the source database refuses this user's reads: ${shown}: SELECT command denied to user '${name}'@'${host}' for table \`${database}\`.\`jm_jobs\`; ${grant}`;
        assertEquals(
          [unread.code, json ? JSON.parse(unread.stderr) : unread.stderr],
          [
            1,
            json
              ? { error: { kind: "refused", message, exit_code: 1 } }
              : `jobsmanager: ${message}\n`,
          ],
        );
      }
      // No privilege in the database at all: the server refuses it at the login.
      await sql(`REVOKE ALL PRIVILEGES, GRANT OPTION FROM '${name}'@'%'`);
      const none = await importing(url.toString());
      assertEquals([none.code, none.stderr], [
        1,
        `jobsmanager: the source database refuses this user's reads: MySQL at ${host}:${port} (the source database) refused user '${name}' database '${database}' (access denied: it has no privilege there); ${grant}\n`,
      ]);
      // The GRANT advised is all the import needs.
      await sql(`GRANT SELECT ON \`${database}\`.\`jm_jobs\` TO '${name}'@'%'`);
      const read = await importing(url.toString());
      assertEquals(read.code, 0, read.stderr);
      // A wrong password: the URL given to --from-database, not jobsmanager's settings.
      const wrong = new URL(url);
      wrong.password = "wrong";
      const login = await importing(wrong.toString());
      assertEquals([login.code, login.stderr], [
        1,
        `jobsmanager: MySQL at ${host}:${port} (the source database) rejected the login of user '${name}' to database '${database}' (access denied); check the user and password in the URL given to --from-database (a server or user that requires TLS refuses a plain login so too: see ssl-mode in the URL given to --from-database)\n`,
      ]);
    } finally {
      await sql(`DROP USER IF EXISTS '${name}'@'%'`);
    }
    // No server there: the URL given to --from-database, not db.host/db.port.
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const closed = listener.addr.port;
    listener.close();
    const away = await importing(`mysql://root@127.0.0.1:${closed}/legacydb`);
    assertEquals([away.code, away.stderr], [
      1,
      `jobsmanager: cannot connect to MySQL at 127.0.0.1:${closed} (the source database): connection refused; is the server running, and is the URL given to --from-database right?\n`,
    ]);
  },
);
