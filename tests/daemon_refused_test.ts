/**
 * A run's final record that the database answers but refuses (a table
 * missing, a privilege revoked) is kept and retried, backing off, until it
 * is written; at a stop before that, the count left unwritten is logged.
 * Logged causes name the database's own error, never "unreachable".
 * In-process, fake clock, real store on every backend.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { BACKENDS, freshDatabase, mysqlTest, rawQuery, type TestDatabase } from "./helpers.ts";
import { DaemonHarness, T0 } from "./daemon_harness.ts";
import { openStore } from "../src/store/open.ts";
import { resolveTarget } from "../src/config/database.ts";
import { defaultSettings } from "../src/config/config.ts";
import { EnvMasks } from "../src/http/api/env_masks.ts";
import type { Run } from "../src/domain/run.ts";

const at = (s: number) => T0 + s * 1000;
const REFUSED = /^run \d+: the database refused its record \((.*)\); it is kept and retried/;
// The run's end, and its start's record when that was still on its way.
const WRITTEN = /^wrote [12] run records the database had refused$/;
const NOT_WRITTEN = /^[12] run records could not be written before exit/;

/** No line says the database was unreachable, or hides the cause behind a failed rollback. */
function causesNamed(h: DaemonHarness): void {
  const wrong = h.lines.filter((l) => /unreachable|cannot rollback/.test(l));
  assertEquals(wrong, [], h.lines.join("\n"));
}

/** Start `once` (fires at 1 s past each minute) and return its run, running. */
async function running(h: DaemonHarness) {
  await h.job("once", { schedule: { second: "1" } });
  await h.start();
  await h.clock.set(at(1));
  const run = await h.started("once", at(1));
  await h.run("once", at(1), "running");
  return run;
}

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: a record refused while jm_runs is away is retried until written`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    const run = await running(h);
    await h.sql("ALTER TABLE jm_runs RENAME TO jm_runs_aside");
    try {
      run.finish({ stdout: "kept\n" });
      const cause = (await h.until(() => h.line(REFUSED), "the refusal to be logged"))
        .match(REFUSED)![1];
      assert(/jm_runs/.test(cause), `the cause names no table: ${cause}`);
      // Retried after 1 s, 2 s …: still refused.
      await h.clock.set(at(2));
      // The start's own record may have been refused with it (see WRITTEN).
      await h.until(() => h.line(/^the database still refuses [12] run records/), "a failed retry");
    } finally {
      await h.sql("ALTER TABLE jm_runs_aside RENAME TO jm_runs");
    }
    await h.clock.set(at(4));
    await h.until(() => h.line(WRITTEN), "the refused record to be written");
    const row = await h.run("once", at(1), "success");
    assertEquals(row.stdout, "kept\n");
    causesNamed(h);
  });

  Deno.test(`daemon[${backend}]: a record still refused at the stop is counted, not called written`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    const run = await running(h);
    await h.sql("ALTER TABLE jm_runs RENAME TO jm_runs_aside");
    try {
      run.finish();
      await h.until(() => h.line(REFUSED), "the refusal to be logged");
      await h.stop();
      // It tries again each second until the stop's time is up.
      await h.until(async () => {
        if (!h.ended) await h.clock.advance(1000);
        return h.ended;
      }, "the daemon to stop");
      assert(h.line(NOT_WRITTEN), h.lines.join("\n"));
      assertMatch(h.line(NOT_WRITTEN)!, /: once @ \S+Z|: run \d+/);
      // A lone service is never declared dead: its next start settles them.
      assertMatch(
        h.line(NOT_WRITTEN)!,
        /lost \(and retried where their jobs say so\) when a service starts again under this node id/,
      );
      assert(!h.line(WRITTEN), h.lines.join("\n"));
    } finally {
      await h.sql("ALTER TABLE jm_runs_aside RENAME TO jm_runs");
    }
    // Honest: the row says what the database last took.
    await h.run("once", at(1), "running");
    causesNamed(h);
  });
}

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: a fire whose claim is refused runs with an empty JM_RUN_ID, recorded later`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("once", { schedule: { second: "1" } });
    await h.start();
    await h.sql("ALTER TABLE jm_runs RENAME TO jm_runs_aside");
    try {
      await h.clock.set(at(1));
      const run = await h.started("once", at(1));
      // Not a placeholder number: the run has no row, so no id, yet.
      assertEquals(run.spec.env.JM_RUN_ID, "");
      run.finish({ stdout: "kept\n" });
    } finally {
      await h.sql("ALTER TABLE jm_runs_aside RENAME TO jm_runs");
    }
    await h.clock.set(at(2));
    assertEquals((await h.run("once", at(1), "success")).stdout, "kept\n");
    causesNamed(h);
  });
}

/**
 * A user of the test database only, as a service would log in, whose
 * UPDATE is granted per table: revoking it on one table takes effect at
 * its next statement (a database-wide grant would wait for a new USE).
 * Nothing global on the shared server is touched. Dropped at the end.
 */
async function writer(db: TestDatabase): Promise<
  AsyncDisposable & {
    url: string;
    revoke(table: string): Promise<void>;
    grant(table: string): Promise<void>;
  }
> {
  const user = `jm_writer_${crypto.randomUUID().slice(0, 8)}`;
  const database = new URL(db.url).pathname.slice(1);
  const on = (table: string) => `\`${database}\`.\`${table}\``;
  await rawQuery(db, `CREATE USER '${user}'@'%' IDENTIFIED BY 'pw-${user}'`);
  await rawQuery(
    db,
    `GRANT SELECT, INSERT, DELETE, CREATE, ALTER, INDEX, DROP ON \`${database}\`.* TO '${user}'@'%'`,
  );
  const tables = await rawQuery(
    db,
    "SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
    [database],
  );
  for (const { name } of tables) {
    await rawQuery(db, `GRANT UPDATE ON ${on(String(name))} TO '${user}'@'%'`);
  }
  const url = new URL(db.url);
  url.username = user;
  url.password = `pw-${user}`;
  return {
    url: url.toString(),
    revoke: async (table) =>
      void await rawQuery(db, `REVOKE UPDATE ON ${on(table)} FROM '${user}'@'%'`),
    grant: async (table) =>
      void await rawQuery(db, `GRANT UPDATE ON ${on(table)} TO '${user}'@'%'`),
    async [Symbol.asyncDispose]() {
      await rawQuery(db, `DROP USER '${user}'@'%'`);
    },
  };
}

mysqlTest(
  "daemon[mysql]: a record refused for want of a privilege is retried until written",
  async () => {
    const db = await freshDatabase("mysql");
    // The daemon logs in as `user` once started; `user` goes before the database does.
    await using h = await DaemonHarness.create(db, {
      store: () => openStore(resolveTarget({ ...defaultSettings(), "db.url": user.url })),
    });
    await using user = await writer(db);
    const run = await running(h);
    await user.revoke("jm_runs");
    try {
      run.finish({ stdout: "kept\n" });
      const cause = (await h.until(() => h.line(REFUSED), "the refusal to be logged"))
        .match(REFUSED)![1];
      assert(/UPDATE command denied/.test(cause), `the cause is not the server's: ${cause}`);
    } finally {
      await user.grant("jm_runs");
    }
    await h.clock.set(at(2));
    await h.until(() => h.line(WRITTEN), "the refused record to be written");
    assertEquals((await h.run("once", at(1), "success")).stdout, "kept\n");
    causesNamed(h);
  },
);

/**
 * Make jm_runs refuse a stdout over 65,535 bytes as the database does for
 * what it cannot store: MySQL's TEXT column itself; on SQLite, whose limit
 * is a gigabyte, a trigger raising SQLite's own message for it.
 */
async function smallStdout(h: DaemonHarness, backend: string, column = "TEXT"): Promise<void> {
  if (backend === "mysql") {
    await h.sql(`ALTER TABLE jm_runs MODIFY stdout ${column} NULL`);
  } else {
    const most = column === "TEXT" ? 65_535 : 100;
    for (const write of ["INSERT", "UPDATE"]) {
      await h.sql(
        `CREATE TRIGGER small_stdout_${write} BEFORE ${write} ON jm_runs WHEN length(NEW.stdout) > ${most} BEGIN SELECT RAISE(ABORT, 'string or blob too big'); END`,
      );
    }
  }
}

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: a run's end refused for its output is written with it cut, not kept running`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    const run = await running(h);
    await smallStdout(h, backend);
    run.finish({ exitCode: 3, status: "failed", stdout: "a".repeat(40_000) + "b".repeat(40_000) });
    await h.until(
      () => h.line(/^run \d+: the database refused its record for the values it carries/),
      "the refusal to be logged",
    );
    const row = await h.run("once", at(1), "failed");
    assertEquals(row.exit_code, 3);
    assertMatch(
      row.stdout!,
      /^a{1024}\n\[… jobsmanager cut 77952 bytes of 80000: the database could not store this run's record whole \(.+\); its output is cut …\]\nb{1024}$/,
    );
    assertMatch(row.note!, /^the database could not store this run's record whole \(.+\)$/);
    assert(!h.line(REFUSED), h.lines.join("\n"));
  });

  Deno.test(`daemon[${backend}]: a run's end refused even with its output cut is written without it, its note saying so`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    const run = await running(h);
    await smallStdout(h, backend, "VARCHAR(100)");
    run.finish({ stdout: "x".repeat(5000), note: "kept" });
    await h.until(
      () => h.line(/^run \d+: the database refused its record cut too/),
      "the second refusal to be logged",
    );
    const row = await h.run("once", at(1), "success");
    assertEquals(row.stdout, null);
    assertMatch(
      row.note!,
      /^the database could not store this run's record whole \(.+\), cut too: stdout \(5000 characters\), its note \(4 characters\) not stored$/,
    );
  });
}

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: a run that waited for its claim, refused then for its output, is written with it cut`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("once", { schedule: { second: "1" } });
    await h.start();
    await h.sql("ALTER TABLE jm_runs RENAME TO jm_runs_aside");
    try {
      await h.clock.set(at(1));
      const run = await h.started("once", at(1));
      run.finish({ stdout: "a".repeat(40_000) + "b".repeat(40_000) });
    } finally {
      await h.sql("ALTER TABLE jm_runs_aside RENAME TO jm_runs");
    }
    await smallStdout(h, backend);
    await h.clock.set(at(2));
    const row = await h.run("once", at(1), "success");
    assertMatch(
      row.stdout!,
      /^a{1024}\n\[… jobsmanager cut 77952 bytes of 80000: the database could not store/,
    );
    assert(
      h.line(/^the database refused 1 run records for the values they carry/),
      h.lines.join("\n"),
    );
  });
}

/** A job's env value, of letters no other text here holds: any of them shown is a part of it. */
const VALUE = "QWERTYUIOPZX";
const PART = /[QWERTYUIOPZX]/;

/** `run` as a read token reads it: its job's env values masked (http/api/env_masks.ts). */
async function asReader(h: DaemonHarness, run: Run): Promise<Run> {
  const job = (await h.store.getJob(run.job_id))!;
  return EnvMasks.ofJobs("read", [job], 60_000).run(run);
}

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: the cuts of a record the database refused whole leave a read token no part of an env value they split`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("once", { schedule: { second: "1" }, env: [`TOKEN=${VALUE}`] });
    await h.start();
    await h.clock.set(at(1));
    const run = await h.started("once", at(1));
    await h.run("once", at(1), "running");
    await smallStdout(h, backend);
    // The value all along: whatever bytes a cut falls at, it splits one.
    const text = (n: number) => `${VALUE}-`.repeat(n);
    run.finish({ stdout: text(6000), note: text(400) });
    await h.until(
      () => h.line(/^run \d+: the database refused its record for the values it carries/),
      "the refusal to be logged",
    );
    const shown = await asReader(h, await h.run("once", at(1), "success"));
    const [head, tail] = shown.stdout!.split(/\n\[… jobsmanager cut [^\n]* …\]\n/);
    assert(tail !== undefined, `no cut line: ${shown.stdout!.slice(0, 2000)}`);
    for (const [what, kept] of [["head", head], ["tail", tail]]) {
      assert(!PART.test(kept), `the output's ${what} shows a part of the value: ${kept}`);
    }
    const note = shown.note!.split("… [jobsmanager cut ")[0];
    assert(!PART.test(note), `the note shows a part of the value: ${shown.note}`);
  });
}
