/**
 * `jobsmanager import …` end to end, as a subprocess: the plan, --apply,
 * --json, the original's table beside ours or in its own database, crontabs
 * from a file and from stdin, and the exit codes.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import {
  BACKENDS,
  cli,
  freshDatabase,
  rawQuery,
  saveNodes,
  serviceRow,
  type TestDatabase,
  warningsIn,
  withExpiredAccount,
} from "./helpers.ts";
import { insertLegacyRow, loadSeed, SEED_IDS } from "./fixtures/seed.ts";
import { describeTarget } from "../src/store/target.ts";

const CRONTABS = new URL("./fixtures/crontab/", import.meta.url).pathname;

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

async function hasSchema(db: TestDatabase): Promise<boolean> {
  const store = db.open();
  try {
    return await store.hasSchema();
  } finally {
    await store.close();
  }
}

async function counts(db: TestDatabase): Promise<{ jobs: number; markers: number }> {
  const [j] = await rawQuery(db, "SELECT COUNT(*) AS n FROM jm_jobs");
  const [m] = await rawQuery(db, "SELECT COUNT(*) AS n FROM jm_update_info");
  return { jobs: Number(j.n), markers: Number(m.n) };
}

/** A file of /etc/cron.d this machine has (Debian's e2fsprogs ships one), if any. */
const CRON_D_FILE = (() => {
  try {
    return [...Deno.readDirSync("/etc/cron.d")].find((e) => e.isFile && !e.name.startsWith("."))
      ?.name;
  } catch {
    return undefined;
  }
})();

Deno.test({
  name: "import cli: an /etc/cron.d file named by a relative path is read with its user column",
  ignore: CRON_D_FILE === undefined,
  fn: async () => {
    await using db = await freshDatabase("sqlite");
    const plan = await cli(
      ["--database", db.url, "import", "crontab", `./${CRON_D_FILE}`, "--json"],
      { cwd: "/etc/cron.d" },
    );
    const entries = JSON.parse(plan.stdout).entries as { job: { command: string } | null }[];
    const commands = entries.flatMap((e) => e.job ? [e.job.command] : []);
    assert(commands.length > 0, plan.stdout + plan.stderr);
    // The first word of each line after the schedule is its user, not part of the command.
    const users = new Set(
      Deno.readTextFileSync(`/etc/cron.d/${CRON_D_FILE}`).split("\n")
        .filter((l) => /^[0-9*@]/.test(l))
        .map((l) => l.trim().split(/\s+/)[l.startsWith("@") ? 1 : 5]),
    );
    for (const command of commands) {
      assert(!users.has(command.split(/\s+/)[0]), `${command} begins with a user: ${[...users]}`);
    }
  },
});

for (const backend of BACKENDS) {
  Deno.test(`import cli[${backend}]`, async (t) => {
    await using db = await freshDatabase(backend);
    const jm = (...args: string[]) => cli(["--database", db.url, ...args]);

    await t.step("the original's table under its own name is refused, naming the fix", async () => {
      await loadSeed(db, "jm_jobs");
      const refused = await jm("import", "apscheduler", "--table", "jm_jobs");
      assertEquals(refused.code, 1, refused.stderr);
      assertMatch(
        refused.stderr,
        /is the original JobsManager's APScheduler job store .*Move it aside with `.*jm_jobs_apscheduler;?`, then bring its jobs in with `jobsmanager import apscheduler`/,
      );
      await rawQuery(
        db,
        backend === "mysql"
          ? "RENAME TABLE jm_jobs TO jm_jobs_apscheduler"
          : "ALTER TABLE jm_jobs RENAME TO jm_jobs_apscheduler",
      );
      await insertLegacyRow(db, "jm_jobs_apscheduler", {
        id: "hostile",
        next_run_time: 1,
        job_state: Uint8Array.from("\x80\x04\x8c\x02os\x8c\x06system\x93.", (c) => c.charCodeAt(0)),
      });
    });

    await t.step("without --apply: the plan, and nothing written", async () => {
      const plan = await jm("import", "apscheduler");
      assertEquals(plan.code, 0, plan.stderr);
      assertMatch(plan.stdout, /^table jm_jobs_apscheduler in (sqlite|mysql):.*:\n/);
      assertStringIncludes(plan.stdout, "new            backup  (row 'backup')\n");
      assertStringIncludes(
        plan.stdout,
        "cannot import  hostile  (row 'hostile')\n    its job_state cannot be decoded: byte 14: names os.system, which is not part of an APScheduler 3 job state; refused without running anything\n",
      );
      // As `apply --dry-run`: planned against no jobs, saying so, and not even the tables made.
      assertStringIncludes(
        plan.stdout,
        `\n8 new, 0 same, 0 differ, 1 cannot be imported; nothing written: run again with --apply to write them\n${
          describeTarget(db.target)
        } holds no jobsmanager tables yet: --apply creates them\n`,
      );
      assertEquals(await hasSchema(db), false, "a plan makes no table");
    });

    await t.step("--apply writes every job with one marker; again, nothing", async () => {
      const applied = await jm("import", "apscheduler", "--apply", "--json");
      // Written, but a job was left behind: a script must not take it for done.
      assertEquals(applied.code, 1, applied.stderr);
      // Under --json, as one JSON line: the plan is on stdout all the same. The first write makes
      // jobsmanager's tables (the plan did not), which a note before that line may say.
      const lines = applied.stderr.trimEnd().split("\n");
      assert(lines.slice(0, -1).every((l) => l.includes("created")), applied.stderr);
      const { error } = JSON.parse(lines.at(-1)!);
      assertEquals([error.kind, error.exit_code], ["refused", 1]);
      assertMatch(
        error.message,
        /^1 job of table jm_jobs_apscheduler in \S+ could not be imported \(listed as `cannot import`, with why\): add it with `jobsmanager job add`, or fix the source and import again, or once seen to, `--ignore ID` each; the rest are imported$/,
      );
      const data = JSON.parse(applied.stdout);
      assertEquals([data.applied, data.counts.new, data.counts["cannot import"]], [true, 8, 1]);
      assertEquals(await counts(db), { jobs: 8, markers: 1 });
      const ids = await rawQuery(db, "SELECT id, enabled FROM jm_jobs ORDER BY id");
      assertEquals(
        ids.map((r) => [r.id, Number(r.enabled)]),
        SEED_IDS.toSorted().map((id) => [id, id === "paused" ? 0 : 1]),
      );
      const again = await jm("import", "apscheduler", "--apply");
      assertEquals(again.code, 1, "the hostile row is still not imported");
      assertMatch(again.stdout, /8 same, 0 differ, 1 cannot be imported; nothing to write\n$/);
      assertEquals(await counts(db), { jobs: 8, markers: 1 });
      // What the original's job state has no word for, set since, stays.
      const set = await jm("job", "update", "backup", "--env", "A=1", "--retries", "2");
      assertEquals(set.code, 0, set.stderr);
      const kept = await jm("import", "apscheduler");
      assertMatch(kept.stdout, /8 same, 0 differ, 1 cannot be imported; nothing to write\n$/);
      const backup = JSON.parse((await jm("job", "show", "backup", "--json")).stdout);
      assertEquals([backup.env, backup.retries], [{ A: "1" }, 2]);
    });

    await t.step("--from-database reads the original's own database (jm_jobs there)", async () => {
      await using old = await freshDatabase(backend);
      await loadSeed(old, "jm_jobs");
      const plan = await jm("import", "apscheduler", "--from-database", old.url, "--json");
      assertEquals(plan.code, 0, plan.stderr);
      const data = JSON.parse(plan.stdout);
      assertMatch(data.source, /^table jm_jobs in /);
      assertEquals(data.counts.same, 8);
      const missing = await jm(
        "import",
        "apscheduler",
        "--from-database",
        old.url,
        "--table",
        "nope",
      );
      assertEquals(missing.code, 1);
      assertMatch(missing.stderr, /^jobsmanager: table nope does not exist in /);
      // A mistyped database is not one to create.
      const typo = backend === "mysql"
        ? old.url.replace(/\/[^/]+$/, "/jm_no_such_database")
        : `sqlite:${old.dir}/no-such.db`;
      const mistyped = await jm("import", "apscheduler", "--from-database", typo);
      assertEquals(mistyped.code, 1);
      assertMatch(
        mistyped.stderr,
        backend === "mysql"
          ? /^jobsmanager: database 'jm_no_such_database' does not exist on MySQL at \S+; check the URL given to --from-database\n$/
          : /^jobsmanager: SQLite database '\S+no-such\.db' does not exist; check --from-database\n$/,
      );
    });

    await t.step("a crontab file, then the same from stdin: same", async () => {
      const file = `${CRONTABS}user-crontab`;
      const applied = await jm("import", "crontab", file, "--apply");
      assertEquals(applied.code, 1, applied.stderr);
      assertMatch(
        applied.stderr,
        /^jobsmanager: 3 jobs of crontab \S+user-crontab could not be imported \(listed as `cannot import`, with why\): add them with `jobsmanager job add`, or fix the source and import again, or once seen to, `--ignore ID` each; the rest are imported\n$/,
      );
      assertMatch(
        applied.stdout,
        /5 new, 0 same, 0 differ, 3 cannot be imported; changed 5 jobs \(reload marker \d+\)\nno live service uses \S+, so nothing applies this yet: .*\n$/,
      );
      assertEquals(await counts(db), { jobs: 13, markers: 3 });
      const text = await Deno.readTextFile(file);
      // Standard input and a pipe have no name to prefix ids with: --name is asked for.
      for (const path of ["-", "/dev/stdin"]) {
        const unnamed = await cli(["--database", db.url, "import", "crontab", path], {
          input: text,
        });
        assertEquals([unnamed.code, unnamed.stderr], [
          2,
          `jobsmanager: ${
            path === "-" ? "standard input" : path
          } is no file whose name can prefix the ids of its jobs: give a name with --name (e.g. --name "$USER" for \`crontab -l\`), the same at every import of this crontab\n`,
        ]);
      }
      for (const name of ["", "...", "ÄÖÜ"]) {
        const empty = await cli(["--database", db.url, "import", "crontab", "-", "--name", name], {
          input: text,
        });
        assertEquals([empty.code, empty.stderr], [
          2,
          `jobsmanager: --name: '${name}' makes no prefix for the ids of its jobs: the prefix is its letters a-z and digits (other characters become '-'), and it has none; give one with --name, e.g. --name alice\n`,
        ]);
      }
      // A path that leads to no file (a pipe: /dev/stdin, <(crontab -l)) is read as it is.
      const piped2 = await cli(
        ["--database", db.url, "import", "crontab", "/dev/stdin", "--name", "user-crontab"],
        { input: text },
      );
      assertEquals(piped2.code, 0, piped2.stderr);
      // --name gives stdin the file's prefix: every job is the same as the file's.
      const named = await cli(
        ["--database", db.url, "import", "crontab", "-", "--name", "user-crontab", "--json"],
        { input: text },
      );
      assertEquals(JSON.parse(named.stdout).counts, {
        new: 0,
        same: 5,
        differs: 0,
        kept: 0,
        remove: 0,
        stale: 0,
        "cannot import": 3,
      });
      const show = await jm("job", "show", "user-crontab.mail-s-timesheets-team-weekday", "--json");
      assertEquals(JSON.parse(show.stdout).day, "2-14,16-31");
    });

    await t.step(
      "imported again, a crontab's jobs keep what it has no word for: enabled, timeout, retries, cwd",
      async () => {
        const file = `${db.dir}/kept`;
        await Deno.writeTextFile(file, "# nightly\n30 2 * * * backup.sh\n");
        assertEquals((await jm("import", "crontab", file, "--apply")).code, 0);
        const id = "kept.backup-sh";
        for (
          const change of [
            ["job", "disable", id],
            ["job", "update", id, "--timeout", "3600", "--retries", "2", "--cwd", "/srv"],
          ]
        ) {
          const done = await jm(...change);
          assertEquals(done.code, 0, done.stderr);
        }
        const again = await jm("import", "crontab", file, "--apply", "--json");
        assertEquals(again.code, 0, again.stderr);
        assertEquals(JSON.parse(again.stdout).entries.map((e: { status: string }) => e.status), [
          "same",
        ]);
        const job = JSON.parse((await jm("job", "show", id, "--json")).stdout);
        assertEquals([job.enabled, job.timeout, job.retries, job.cwd], [false, 3600, 2, "/srv"]);
        // What the crontab does say is listed as kept; --update takes it.
        await Deno.writeTextFile(file, "45 2 * * * backup.sh\n");
        const changes = ['minute: "30" → "45"', 'description: "nightly" → (default)'];
        const moved = await jm("import", "crontab", file, "--json");
        const [entry] = JSON.parse(moved.stdout).entries as { status: string; changes: string[] }[];
        assertEquals([entry.status, entry.changes], ["kept", changes]);
        const updated = await jm("import", "crontab", file, "--update", "--json");
        const [taken] = JSON.parse(updated.stdout).entries as {
          status: string;
          changes: string[];
        }[];
        assertEquals([taken.status, taken.changes], ["differs", changes]);
      },
    );

    await t.step(
      "an edited crontab: the jobs no line makes any more are stale; --prune removes them",
      async () => {
        const file = `${db.dir}/reports`;
        await Deno.writeTextFile(file, "0 3 1 * 1 /usr/bin/report\n30 2 * * * backup.sh\n");
        const first = await jm("import", "crontab", file, "--apply");
        assertEquals(first.code, 0, first.stderr);
        const before = await counts(db);
        await Deno.writeTextFile(file, "0 3 1 * * /usr/bin/report\n30 2 * * * backup.sh --full\n");
        const plan = await jm("import", "crontab", file);
        assertEquals(plan.code, 0, plan.stderr);
        assertMatch(
          plan.stdout,
          /^stale {10}reports\.usr-bin-report-day {2}\(database\)\n {4}no line of this crontab makes it any more \(its id has the crontab's prefix, reports\.\); it is still stored and fires: `--prune` removes it$/m,
        );
        assertMatch(
          plan.stdout,
          /^2 new, 0 same, 0 differ, 3 stale \(still stored and firing\); nothing written: run again with --apply to write them$/m,
        );
        assertEquals(await counts(db), before);
        const pruned = await jm("import", "crontab", file, "--prune", "--apply", "--json");
        assertEquals(pruned.code, 0, pruned.stderr);
        assertEquals(JSON.parse(pruned.stdout).counts, {
          new: 2,
          same: 0,
          differs: 0,
          kept: 0,
          remove: 3,
          stale: 0,
          "cannot import": 0,
        });
        const ids = await rawQuery(
          db,
          "SELECT id FROM jm_jobs WHERE id LIKE 'reports.%' ORDER BY id",
        );
        assertEquals(ids.map((r) => r.id), ["reports.backup-sh-full", "reports.usr-bin-report"]);
        // The jobs of other sources are left alone.
        assertEquals(await counts(db), { jobs: before.jobs - 1, markers: before.markers + 1 });
      },
    );

    await t.step("usage errors exit 2 and write nothing", async () => {
      const before = await counts(db);
      const unreadable = await jm("import", "crontab", "/nonexistent/crontab");
      assertEquals(unreadable.code, 2);
      assertMatch(unreadable.stderr, /^jobsmanager: cannot read \/nonexistent\/crontab: /);
      // Latin-1 bytes would become U+FFFD in the command stored: refused, naming the line.
      const latin1 = `${db.dir}/latin1.cron`;
      await Deno.writeFile(
        latin1,
        new Uint8Array([
          ...new TextEncoder().encode("0 1 * * * true\n0 5 * * * echo caf"),
          0xe9,
          10,
        ]),
      );
      const notUtf8 = await jm("import", "crontab", latin1);
      assertEquals([notUtf8.code, notUtf8.stderr], [
        2,
        `jobsmanager: ${latin1}:2: is not UTF-8 text; convert it (e.g. \`iconv -f latin1 -t utf-8\`) and try again\n`,
      ]);
      const noFile = await jm("import", "crontab");
      assertEquals(noFile.code, 2);
      const badTable = await jm("import", "apscheduler", "--table", "a;b");
      assertEquals(badTable.code, 2);
      assertMatch(badTable.stderr, /table: "a;b" is not a table name/);
      assert((await jm("import", "nothing")).code === 2);
      assertEquals(await counts(db), before);
    });
  });
}

for (const backend of BACKENDS) {
  Deno.test(`import cli[${backend}]: jobs without a zone are compared with the zone a live service fires them in`, async () => {
    await using db = await freshDatabase(backend);
    // The CLI runs in UTC with no zone configured; the live service reports Tokyo.
    const jm = (...args: string[]) =>
      cli(["--database", db.url, ...args], { cwd: db.dir, env: { TZ: "UTC" } });
    await saveNodes(db, serviceRow("tokyo", { timezone: "Asia/Tokyo" }));
    const file = `${db.dir}/t.cron`;
    await Deno.writeTextFile(file, "0 3 * * * echo three\n");
    const applied = await jm("import", "crontab", file, "--apply", "--json");
    assertEquals(applied.code, 0, applied.stderr);
    const [entry] = JSON.parse(applied.stdout).entries;
    assertEquals(entry.job.timezone, "UTC");
    assertStringIncludes(
      entry.notes.join("\n"),
      "cron read its schedule in this machine's zone, UTC; the job keeps it, where a job that names no zone fires in Asia/Tokyo (the zone the live service reports)",
    );

    await loadSeed(db, "jm_jobs_apscheduler");
    const plan = await jm("import", "apscheduler", "--json");
    assertEquals(plan.code, 0, plan.stderr);
    const backup = JSON.parse(plan.stdout).entries.find((e: { id: string }) => e.id === "backup");
    assertEquals(backup.notes.slice(0, 2), [
      "fires in Asia/Hong_Kong, as before: the original gave each trigger the host's zone when the job was added, whatever its jobsmanager.timezone said (jobs that name no zone fire in Asia/Tokyo (the zone the live service reports))",
      "late fires: the original ran one for several (Python reads its global.json coalesce \"False\" as true); this job follows the service's jobsmanager.coalesce (false in the config this command read; the service's own config decides), so each late fire within the grace time runs; `--coalesce` keeps the old way",
    ]);
  });
}

for (const backend of BACKENDS) {
  Deno.test(`import cli[${backend}]: a plan on a database not made yet makes none; --apply does`, async () => {
    await using db = await freshDatabase(backend);
    await Deno.writeTextFile(`${db.dir}/nightly`, "30 2 * * * backup.sh\n");
    // A SQLite path with no file yet; on MySQL, a database without jobsmanager's tables.
    const url = backend === "sqlite" ? `sqlite:${db.dir}/new.db` : db.url;
    const jm = (...args: string[]) => cli(["--database", url, ...args], { cwd: db.dir });
    const missing = backend === "sqlite"
      ? `no database at ${db.dir}/new.db yet: --apply creates it`
      : `${describeTarget(db.target)} holds no jobsmanager tables yet: --apply creates them`;
    const plan = await jm("import", "crontab", "nightly");
    assertEquals([plan.code, plan.stderr], [0, ""]);
    assertStringIncludes(
      plan.stdout,
      `\n1 new, 0 same, 0 differ; nothing written: run again with --apply to write them\n${missing}\n`,
    );
    const json = JSON.parse((await jm("--json", "import", "crontab", "nightly")).stdout);
    assertEquals([json.applied, json.counts.new, json.database_exists], [false, 1, false]);
    if (backend === "sqlite") assertEquals(await exists(`${db.dir}/new.db`), false);
    else assertEquals(await hasSchema(db), false);

    const applied = await jm("--json", "import", "crontab", "nightly", "--apply");
    assertEquals(applied.code, 0, applied.stderr);
    if (backend === "sqlite") {
      assertMatch(applied.stderr, /^jobsmanager: created a new, empty database /);
    } else assertEquals(await hasSchema(db), true);
    assertEquals(JSON.parse(applied.stdout).database_exists, true);
    const again = await jm("import", "crontab", "nightly");
    assertEquals([again.code, again.stderr], [0, ""]);
    assertMatch(again.stdout, /0 new, 1 same, 0 differ; nothing to write\n/);
    assert(!again.stdout.includes("yet:"), again.stdout);
  });

  Deno.test(`import cli[${backend}]: importing the original's table again keeps what the operator changed since`, async () => {
    await using db = await freshDatabase(backend);
    await using old = await freshDatabase(backend);
    await loadSeed(old, "jm_jobs");
    const jm = (...args: string[]) => cli(["--database", db.url, ...args], { cwd: db.dir });
    const ok = async (...args: string[]) => {
      const r = await jm(...args);
      assertEquals(r.code, 0, r.stderr);
      return r;
    };
    await ok("import", "apscheduler", "--from-database", old.url, "--apply");
    await ok("job", "disable", "tick");
    await ok("job", "update", "every-minute-seed-style", "--second", "0");
    await ok("job", "update", "backup", "--coalesce");
    const before = await counts(db);
    const again = await ok("import", "apscheduler", "--from-database", old.url, "--apply");
    assertStringIncludes(
      again.stdout,
      "kept           tick  (row 'tick')\n    enabled: false → true\n    kept as stored: an import does not change a job already stored (what was changed since stays); above, what the source says instead: import again with --update to take it\n",
    );
    assertMatch(
      again.stdout,
      /\n0 new, 5 same, 0 differ, 3 kept as stored \(--update takes the source's\); nothing to write\n/,
    );
    assertEquals(await counts(db), before);
    const show = async (id: string) => JSON.parse((await ok("job", "show", id, "--json")).stdout);
    assertEquals(
      [(await show("tick")).enabled, (await show("every-minute-seed-style")).second],
      [false, "0"],
    );
    assertEquals((await show("backup")).coalesce, true);
    // --update takes the source's, the fields it has no word for still kept.
    const updated = await ok("import", "apscheduler", "--from-database", old.url, "--update");
    assertMatch(updated.stdout, /\n0 new, 5 same, 3 differ; nothing written: /);
  });
}

for (const backend of BACKENDS) {
  Deno.test(`import cli[${backend}]: --prune refuses to remove a job another follows, as apply --prune does`, async () => {
    await using db = await freshDatabase(backend);
    const jm = (...args: string[]) => cli(["--database", db.url, ...args], { cwd: db.dir });
    const file = `${db.dir}/nightly`;
    await Deno.writeTextFile(file, "30 2 * * * backup.sh\n0 4 * * * report.sh\n");
    assertEquals((await jm("import", "crontab", file, "--apply")).code, 0);
    const follow = await jm(
      "job",
      "add",
      "after-backup",
      "--command",
      "true",
      "--after",
      "nightly.backup-sh",
    );
    assertEquals(follow.code, 0, follow.stderr);
    await Deno.writeTextFile(file, "0 4 * * * report.sh\n");
    const before = await counts(db);
    const pruned = await jm("import", "crontab", file, "--prune", "--apply");
    assertEquals([pruned.code, pruned.stderr], [
      2,
      "jobsmanager: 1 job would follow a job that is not there, or in a cycle; nothing written:\ndatabase: job 'after-backup': after: job 'nightly.backup-sh' is removed by this change (the source no longer names it), so 'after-backup' could never follow it: keep it, or drop the link\n",
    ]);
    assertEquals(await counts(db), before);
    // The plan alone says so too; without --prune the job is only stale.
    assertEquals((await jm("import", "crontab", file, "--prune")).code, 2);
    assertEquals((await jm("import", "crontab", file, "--apply")).code, 0);
  });
}

for (const backend of BACKENDS) {
  Deno.test(`import cli[${backend}]: a schedule stored in other words for the same values is the same`, async () => {
    await using db = await freshDatabase(backend);
    const jm = (...args: string[]) => cli(["--database", db.url, ...args], { cwd: db.dir });
    const file = `${db.dir}/q`;
    await Deno.writeTextFile(file, "*/15 * * * 1-5 echo q\n");
    assertEquals((await jm("import", "crontab", file, "--apply")).code, 0);
    const update = await jm(
      "job",
      "update",
      "q.echo-q",
      "--minute",
      "0-59/15",
      "--day-of-week",
      "0-4",
    );
    assertEquals(update.code, 0, update.stderr);
    const again = await jm("import", "crontab", file, "--json");
    assertEquals(JSON.parse(again.stdout).entries.map((e: { status: string }) => e.status), [
      "same",
    ]);
  });
}

for (const backend of BACKENDS) {
  Deno.test(`import cli[${backend}]: --ignore acknowledges a job that cannot be imported, such as @reboot`, async () => {
    await using db = await freshDatabase(backend);
    const jm = (...args: string[]) => cli(["--database", db.url, ...args], { cwd: db.dir });
    const file = `${db.dir}/boot`;
    await Deno.writeTextFile(file, "@reboot /usr/local/bin/warm-cache\n0 4 * * * report.sh\n");
    const first = await jm("import", "crontab", file, "--apply");
    assertEquals(first.code, 1, first.stderr);
    assertStringIncludes(first.stdout, "cannot import  boot.usr-local-bin-warm-cache  (line 1)\n");
    const seen = await jm(
      "import",
      "crontab",
      file,
      "--apply",
      "--ignore",
      "boot.usr-local-bin-warm-cache",
    );
    assertEquals([seen.code, seen.stderr], [0, ""]);
    assertMatch(seen.stdout, /1 same, 0 differ, 1 cannot be imported; nothing to write\n/);
    // An id that is no such job is said, and acknowledges nothing.
    const typo = await jm("import", "crontab", file, "--apply", "--ignore", "boot.warm-cache");
    assertEquals(typo.code, 1);
    assertMatch(
      typo.stderr,
      /^jobsmanager: --ignore boot\.warm-cache: no job of crontab \S+boot is listed as `cannot import` by that id\n/,
    );
  });
}

for (const backend of BACKENDS) {
  Deno.test(`import cli[${backend}]: a user crontab with --user: its jobs run as that user; --update sets it on jobs imported without`, async () => {
    await using db = await freshDatabase(backend);
    const jm = (...args: string[]) => cli(["--database", db.url, ...args], { cwd: db.dir });
    const file = `${db.dir}/alice`;
    await Deno.writeTextFile(file, "0 4 * * * backup.sh\n");
    const bare = await jm("import", "crontab", file, "--apply");
    assertEquals(bare.code, 0, bare.stderr);
    assertStringIncludes(bare.stdout, "runs as the service's own user, not as the crontab's owner");
    assertEquals(await users(db), [{ id: "alice.backup-sh", user: null }]);
    const owned = await jm("import", "crontab", file, "--user", "alice", "--update", "--apply");
    assertEquals(owned.code, 0, owned.stderr);
    assertStringIncludes(owned.stdout, "runs as alice, as cron ran it");
    assertEquals(await users(db), [{ id: "alice.backup-sh", user: "alice" }]);
    const system = await jm("import", "crontab", file, "--system", "--user", "alice", "--apply");
    assertEquals([system.code, system.stdout], [2, ""]);
    assertStringIncludes(
      system.stderr,
      `--user alice: the lines of ${file} have a user column (--system), and each runs as the user it names`,
    );
    assertEquals(await users(db), [{ id: "alice.backup-sh", user: "alice" }]);
  });
}

for (const backend of BACKENDS) {
  Deno.test(`import cli[${backend}]: users this host has no account of are imported, each warned once, saying how to check`, async () => {
    await using db = await freshDatabase(backend);
    const jm = (...args: string[]) => cli(["--database", db.url, ...args], { cwd: db.dir });
    const warning = (user: string, jobs: string, imported = "imported all the same") =>
      `jobsmanager: warning: user '${user}' has no account on this host (${Deno.hostname()}): ${imported}, as a service on a host that has it runs its jobs, but a service here records each run of its ${jobs} as an error until it exists; check with \`getent passwd ${user}\``;
    // A new SQLite file is said too.
    const warnings = (stderr: string) =>
      stderr.split("\n").filter((l) => l.includes(": warning: "));
    const file = `${db.dir}/ghost`;
    await Deno.writeTextFile(file, "0 4 * * * backup.sh\n0 5 * * * report.sh\n");
    const owned = await jm("import", "crontab", file, "--user", "jm-no-such-user", "--apply");
    assertEquals(
      [owned.code, warnings(owned.stderr)],
      [0, [warning("jm-no-such-user", "2 jobs")]],
      owned.stdout,
    );
    assertEquals(await users(db), [
      { id: "ghost.backup-sh", user: "jm-no-such-user" },
      { id: "ghost.report-sh", user: "jm-no-such-user" },
    ]);
    // A system crontab's user column: each unknown user once, a known one not at all.
    const system = `${db.dir}/system`;
    await Deno.writeTextFile(
      system,
      [
        "0 1 * * * jm-ghost-a one.sh",
        "0 2 * * * jm-ghost-b two.sh",
        "0 3 * * * root three.sh",
        "0 4 * * * jm-ghost-a four.sh",
        "",
      ].join("\n"),
    );
    // A plan writes nothing, and says so.
    const dryRun = "--apply would import them all the same";
    const plan = await jm("import", "crontab", system, "--system");
    assertEquals(
      [plan.code, warnings(plan.stderr)],
      [0, [warning("jm-ghost-a", "2 jobs", dryRun), warning("jm-ghost-b", "job", dryRun)]],
      plan.stdout,
    );
    const applied = await jm("import", "crontab", system, "--system", "--apply");
    assertEquals(applied.code, 0, applied.stderr);
    assertEquals(
      (await users(db)).filter((u) => u.id.startsWith("system.")).map((u) => u.user),
      ["jm-ghost-a", "jm-ghost-a", "root", "jm-ghost-b"],
    );
    // Imported again: nothing is written, so nothing is warned of, plan or not.
    for (const args of [[], ["--apply"]]) {
      const again = await jm("import", "crontab", system, "--system", ...args);
      assertEquals([again.code, warnings(again.stderr)], [0, []], again.stdout);
      assertStringIncludes(again.stdout, "0 new, 4 same");
    }
    // A line whose user changed is kept as stored without --update: nothing written, no warning.
    await Deno.writeTextFile(system, "0 2 * * * jm-ghost-c two.sh\n");
    const kept = await jm("import", "crontab", system, "--system", "--apply");
    assertEquals([kept.code, warnings(kept.stderr)], [0, []], kept.stdout);
    const updated = await jm("import", "crontab", system, "--system", "--apply", "--update");
    assertEquals(
      [updated.code, warnings(updated.stderr)],
      [0, [warning("jm-ghost-c", "job")]],
      updated.stdout,
    );
  });
}

for (const backend of BACKENDS) {
  Deno.test({
    name:
      `import cli[${backend}]: a user column naming an expired account is imported with a warning naming the day and the fix, as job add warns`,
    ignore: Deno.uid() !== 0,
    fn: async () => {
      await using db = await freshDatabase(backend);
      const jm = (...args: string[]) => cli(["--database", db.url, ...args], { cwd: db.dir });
      await withExpiredAccount(async (name, warning) => {
        const file = `${db.dir}/system`;
        await Deno.writeTextFile(file, `0 4 * * * ${name} backup.sh\n`);
        const plan = await jm("import", "crontab", file, "--system");
        assertEquals(
          [plan.code, warningsIn(plan.stderr)],
          [0, [warning("--apply would import them all the same")]],
        );
        const applied = await jm("import", "crontab", file, "--system", "--apply");
        assertEquals(
          [applied.code, warningsIn(applied.stderr)],
          [0, [warning("imported all the same")]],
        );
        assertEquals(await users(db), [{ id: "system.backup-sh", user: name }]);
      });
    },
  });
}

async function users(db: TestDatabase): Promise<{ id: string; user: string | null }[]> {
  return (await rawQuery(db, "SELECT id, `user` FROM jm_jobs ORDER BY id")).map((r) => ({
    id: String(r.id),
    user: r.user === null ? null : String(r.user),
  }));
}
