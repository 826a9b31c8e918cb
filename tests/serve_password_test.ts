/**
 * The database password never reaches jm_runs: a job whose output holds
 * it, as it is or %-encoded as in a URL, is stored with `***` instead.
 * A subprocess `serve` on MariaDB, logged in as a user with a password.
 */
import { assertEquals } from "./assert.ts";
import { freshDatabase, mysqlTest, rawQuery, type TestDatabase, waitFor } from "./helpers.ts";
import { jm, runs, runsDetail, Serve, writeConfig } from "./serve_helpers.ts";

/** A user of `db` only, with a password full of URL characters; dropped on dispose. */
async function userWithPassword(db: TestDatabase) {
  const user = `jm_pw_${crypto.randomUUID().slice(0, 8)}`;
  const password = `s3cr@t/${user}%x`;
  const database = new URL(db.url).pathname.slice(1);
  await rawQuery(db, `CREATE USER '${user}'@'%' IDENTIFIED BY '${password}'`);
  await rawQuery(db, `GRANT ALL ON \`${database}\`.* TO '${user}'@'%'`);
  const url = new URL(db.url);
  url.username = user;
  url.password = encodeURIComponent(password);
  return {
    password,
    db: { ...db, url: url.toString() },
    async [Symbol.asyncDispose]() {
      await rawQuery(db, `DROP USER '${user}'@'%'`);
    },
  };
}

mysqlTest(
  "serve[mysql]: output holding the database password is stored with *** instead",
  async () => {
    await using db = await freshDatabase("mysql");
    await using user = await userWithPassword(db);
    const encoded = encodeURIComponent(user.password);
    await jm(
      db,
      "job",
      "add",
      "leak",
      "--second",
      "*",
      "--command",
      `echo 'plain ${user.password} end'; echo 'url ${encoded} end' >&2`,
    );
    await using serve = new Serve(user.db, await writeConfig(db));
    const run = await waitFor(
      async () => (await runs(db, "leak")).find((r) => r.status === "success"),
      { timeoutMs: 20_000, what: "a run of leak", detail: runsDetail(db) },
    );
    assertEquals([run.stdout, run.stderr], ["plain *** end\n", "url *** end\n"]);
    assertEquals((await serve.terminate()).status.code, 0, serve.stderr);
  },
);
