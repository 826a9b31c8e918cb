/** The files derived from code must match it: run `deno task generate` when this fails. */
import { assertEquals } from "./assert.ts";
import { defaultSettings, loadConfig, renderExampleConfig } from "../src/config/config.ts";
import { renderSchema } from "../src/store/migrations.ts";
import { stopBudgetMs } from "../src/daemon/boot.ts";
import { renderSystemdUnit, SYSTEMD_STOP_HEADROOM_S } from "../src/daemon/systemd_unit.ts";
import { resolveTarget } from "../src/config/database.ts";
import { openStore } from "../src/store/open.ts";
import { DatabaseSync } from "node:sqlite";

const root = new URL("../", import.meta.url);
const read = (path: string) => Deno.readTextFile(new URL(path, root));

Deno.test("sql/mysql.sql and sql/sqlite.sql equal the embedded migrations", async () => {
  assertEquals(await read("sql/mysql.sql"), renderSchema("mysql"));
  assertEquals(await read("sql/sqlite.sql"), renderSchema("sqlite"));
});

Deno.test("sql/sqlite.sql, run as a DBA would, makes the schema the migrations make", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-test-" });
  try {
    const byFile = new DatabaseSync(`${dir}/by-file.db`);
    byFile.exec(await read("sql/sqlite.sql"));
    const store = openStore(
      resolveTarget({ ...defaultSettings(), "db.url": `sqlite:${dir}/jobs.db` }),
    );
    await store.migrate();
    await store.close();
    const migrated = new DatabaseSync(`${dir}/jobs.db`);
    const schema = (db: DatabaseSync) =>
      db.prepare(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
      ).all().map((r) => ({ ...r }));
    const versions = (db: DatabaseSync) =>
      db.prepare("SELECT version, name FROM jm_schema_version ORDER BY version").all()
        .map((r) => ({ ...r }));
    assertEquals(schema(byFile), schema(migrated));
    assertEquals(versions(byFile), versions(migrated));
    byFile.close();
    migrated.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
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

Deno.test("the README's install config names the database the unit's service uses", async () => {
  const readme = await read("README.md");
  const config = readme.match(/<<'CONFIG'\n([\s\S]*?)\nCONFIG\n/)?.[1];
  assertEquals(typeof config, "string", "the Installing section's config block");
  const path = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeTextFile(path, config!);
    const settings = loadConfig({ config: path }, {}).settings;
    assertEquals(resolveTarget(settings), {
      kind: "sqlite",
      path: "/var/lib/jobsmanager/jobsmanager.db",
    });
    assertEquals(settings["log.path"], "/var/log/jobsmanager");
  } finally {
    await Deno.remove(path);
  }
  const unit = renderSystemdUnit();
  for (const line of ["WorkingDirectory=/var/lib/jobsmanager", "UMask=0077", "User=jobsmanager"]) {
    assertEquals(unit.split("\n").includes(line), true, line);
  }
  // The unit points at the README the install copies.
  const doc = unit.match(/^Documentation=file:\/\/(.*)$/m)?.[1];
  assertEquals(readme.includes(`install -D -m 0644 README.md ${doc}`), true, `${doc}`);
});

const analyze = await new Deno.Command("systemd-analyze", { args: ["--version"] }).output()
  .then((out) => out.success, () => false);

Deno.test({
  name: analyze
    ? "systemd-analyze security rates the unit OK (exposure at most 4.0)"
    : "systemd-analyze is not installed: the unit's security rating is not checked",
  ignore: !analyze,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${dir}/jobsmanager.service`, renderSystemdUnit());
      const out = await new Deno.Command("systemd-analyze", {
        args: ["security", "--offline=true", `${dir}/jobsmanager.service`],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      const level = Number(
        text.match(/Overall exposure level for jobsmanager\.service: ([\d.]+)/)?.[1],
      );
      assertEquals(level <= 4.0, true, text.split("\n").filter((l) => l.includes("✗")).join("\n"));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
