/** The files derived from code must match it: run `deno task generate` when this fails. */
import { assertEquals } from "./assert.ts";
import { defaultSettings, loadConfig, renderExampleConfig } from "../src/config/config.ts";
import { renderSchema } from "../src/store/migrations.ts";

const root = new URL("../", import.meta.url);
const read = (path: string) => Deno.readTextFile(new URL(path, root));

Deno.test("sql/mysql.sql and sql/sqlite.sql equal the embedded migrations", async () => {
  assertEquals(await read("sql/mysql.sql"), renderSchema("mysql"));
  assertEquals(await read("sql/sqlite.sql"), renderSchema("sqlite"));
});

Deno.test("etc/jobsmanager.json documents every key and loads to the defaults", async () => {
  assertEquals(await read("etc/jobsmanager.json"), renderExampleConfig());
  const loaded = loadConfig({ config: new URL("etc/jobsmanager.json", root).pathname }, {});
  assertEquals(loaded.settings, defaultSettings());
});
