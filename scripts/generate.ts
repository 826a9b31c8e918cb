/**
 * Write the files people read that are derived from the code: the example
 * config and the schema DDL. `tests/generated_test.ts` fails when they are
 * stale; run `deno task generate` after changing config keys or migrations.
 */
import { renderExampleConfig } from "../src/config/config.ts";
import { renderSchema } from "../src/store/migrations.ts";

const root = new URL("../", import.meta.url);
const files: [string, string][] = [
  ["etc/jobsmanager.json", renderExampleConfig()],
  ["sql/mysql.sql", renderSchema("mysql")],
  ["sql/sqlite.sql", renderSchema("sqlite")],
];
for (const [path, text] of files) {
  await Deno.writeTextFile(new URL(path, root), text);
  console.log(`wrote ${path}`);
}
