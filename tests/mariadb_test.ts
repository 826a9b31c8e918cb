/**
 * The one line a run without MariaDB prints: every MariaDB test is then
 * ignored (mysqlTest, BACKENDS), and this ignored test's name says how to
 * run them. With a server given, it proves tests can create databases on it.
 */
import { assertEquals } from "./assert.ts";
import { freshDatabase, MYSQL_URL, rawQuery, WITH_MYSQL } from "./helpers.ts";

Deno.test({
  name: MYSQL_URL === ""
    ? `MariaDB tests skipped (JM_TEST_DATABASE_URL is not set); run them with: ${WITH_MYSQL}`
    : "mariadb: JM_TEST_DATABASE_URL names a server the tests can create databases on",
  ignore: MYSQL_URL === "",
  async fn() {
    await using db = await freshDatabase("mysql");
    assertEquals(await rawQuery(db, "SELECT DATABASE() AS name"), [
      { name: db.target.kind === "mysql" ? db.target.database : null },
    ]);
  },
});
