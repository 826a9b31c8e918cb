/**
 * Write the files people read that are derived from the code: the example
 * config, the schema DDL and the systemd unit. `tests/generated_test.ts`
 * fails when they are stale; run `deno task generate` after changing
 * config keys, migrations or the service's stop budget.
 */
import { renderExampleConfig } from "../src/config/config.ts";
import { renderSystemdUnit } from "../src/daemon/systemd_unit.ts";
import { renderSchema } from "../src/store/migrations.ts";

const root = new URL("../", import.meta.url);
const files: [string, string][] = [
  ["etc/jobsmanager.json", renderExampleConfig()],
  ["sql/mysql.sql", renderSchema("mysql")],
  ["sql/sqlite.sql", renderSchema("sqlite")],
  ["systemd/jobsmanager.service", renderSystemdUnit()],
];
for (const [path, text] of files) {
  await Deno.writeTextFile(new URL(path, root), text);
  console.log(`wrote ${path}`);
}
