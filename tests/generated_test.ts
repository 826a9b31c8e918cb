/** The files derived from code must match it: run `deno task generate` when this fails. */
import { assertEquals } from "./assert.ts";
import { defaultSettings, loadConfig, renderExampleConfig } from "../src/config/config.ts";
import { renderSchema } from "../src/store/migrations.ts";
import { stopBudgetMs } from "../src/daemon/boot.ts";
import { renderSystemdUnit, SYSTEMD_STOP_HEADROOM_S } from "../src/daemon/systemd_unit.ts";

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

Deno.test("systemd/jobsmanager.service stops later than the service's own stop budget", async () => {
  const unit = await read("systemd/jobsmanager.service");
  assertEquals(unit, renderSystemdUnit());
  const timeout = Number(unit.match(/^TimeoutStopSec=(\d+)s$/m)?.[1]);
  const settings = defaultSettings();
  assertEquals(timeout * 1000, stopBudgetMs(settings) + SYSTEMD_STOP_HEADROOM_S * 1000);
  assertEquals(
    stopBudgetMs(settings),
    (settings["jobsmanager.shutdown_timeout"] + settings["jobsmanager.kill_grace"] + 5) * 1000,
  );
});
