/**
 * The `-wal` and `-shm` of a SQLite database deleted under its live
 * service, with real files and processes. The service (a real `serve`)
 * says so at error level and exits 1, having first written what its WAL
 * held into the file. A CLI command refuses to write into a database whose
 * live service no longer maps its `-shm` (its write would be lost, though
 * it said it was done), and says why a disk I/O error came when the
 * `-wal` was deleted under the service. For the CLI's side the service is
 * this test process, holding the file's lock as `serve` does and a SQLite
 * connection: a real `serve` stops too soon after the deletion to be
 * caught in that state every time.
 */
import { DatabaseSync } from "node:sqlite";
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { cli, freshDatabase, type TestDatabase } from "./helpers.ts";
import { jm, ready, Serve, sql, writeConfig } from "./serve_helpers.ts";

/**
 * This process as the live service on `db`: the lock `serve` takes on the
 * file, and a SQLite connection that has read it (mapping its `-shm`).
 */
async function standIn(db: TestDatabase): Promise<Disposable> {
  const path = `${db.dir}/jobs.db`;
  const lock = await Deno.open(path, { read: true });
  assert(await lock.tryLock(true), "another process holds the lock on the file");
  const conn = new DatabaseSync(path);
  conn.prepare("SELECT count(*) FROM jm_jobs").get();
  return {
    [Symbol.dispose]() {
      // The connection first: closing the lock's descriptor drops its SQLite locks.
      conn.close();
      lock.close();
    },
  };
}

async function jobIds(db: TestDatabase): Promise<string[]> {
  return (await sql(db, "SELECT id FROM jm_jobs ORDER BY id")).map((r) => String(r.id));
}

const ADD = ["--command", "true", "--cron", "0 0 1 1 *"];

Deno.test("sqlite: a CLI write is refused while the live service no longer shares the -shm", async () => {
  await using db = await freshDatabase("sqlite");
  await jm(db, "job", "add", "first", ...ADD);
  {
    using _service = await standIn(db);
    await Deno.remove(`${db.dir}/jobs.db-shm`);
    const added = await cli(["--database", db.url, "job", "add", "lost", ...ADD], { cwd: db.dir });
    assertEquals(added.code, 1, `job add was not refused:\n${added.stdout}${added.stderr}`);
    assertStringIncludes(
      added.stderr,
      `refusing to write to sqlite:${db.dir}/jobs.db: its -shm file ${db.dir}/jobs.db-shm is not the one the live service on it (pid ${Deno.pid}) has open: that was deleted or replaced under the service`,
    );
    assertStringIncludes(added.stderr, "never delete the -wal or -shm file of a database in use");
    const json = await cli(["--database", db.url, "--json", "job", "add", "lost", ...ADD], {
      cwd: db.dir,
    });
    assertEquals(json.code, 1, json.stdout);
    assertEquals(JSON.parse(json.stderr).error.kind, "refused", json.stderr);
    // Reading goes on: the CLI rebuilds the WAL's index from the WAL itself.
    const listed = await cli(["--database", db.url, "job", "list"], { cwd: db.dir });
    assertEquals(listed.code, 0, listed.stderr);
    assertStringIncludes(listed.stdout, "first");
  }
  assertEquals(await jobIds(db), ["first"]);
});

Deno.test("sqlite: a disk I/O error after the -wal was deleted under the live service says so, and not to try again", async () => {
  await using db = await freshDatabase("sqlite");
  await jm(db, "job", "add", "first", ...ADD);
  using _service = await standIn(db);
  // Not checkpointed as the CLI closes: the service's connection is open.
  await jm(db, "job", "add", "walled", ...ADD);
  assert((await Deno.stat(`${db.dir}/jobs.db-wal`)).size > 0, "jobs.db-wal is empty");
  await Deno.remove(`${db.dir}/jobs.db-wal`);
  const listed = await cli(["--database", db.url, "--json", "job", "list"], { cwd: db.dir });
  assertEquals(listed.code, 1, listed.stderr);
  const error = JSON.parse(listed.stderr).error;
  assertEquals(error.kind, "refused", listed.stdout);
  assertStringIncludes(
    error.message,
    `cannot use the SQLite database ${db.dir}/jobs.db (SQLite: "disk I/O error"): its -wal file ${db.dir}/jobs.db-wal was deleted or emptied under the live service on it (pid ${Deno.pid})`,
  );
  assertStringIncludes(error.message, "restart the service");
});

for (const suffix of ["-shm", "-wal"]) {
  Deno.test(`serve[sqlite]: its ${suffix} deleted under it stops it, exit 1, what its WAL held kept`, async () => {
    await using db = await freshDatabase("sqlite");
    await jm(db, "job", "add", "first", ...ADD);
    await using serve = new Serve(db, await writeConfig(db));
    await ready(db, serve);
    // In the WAL alone: the CLI cannot checkpoint while the service has the file open.
    await jm(db, "job", "add", "walled", ...ADD);
    assert((await Deno.stat(`${db.dir}/jobs.db-wal`)).size > 0, "jobs.db-wal is empty");
    await Deno.remove(`${db.dir}/jobs.db${suffix}`);
    const status = await serve.exit(20_000, `serve to notice its ${suffix} was deleted`);
    assertEquals(status.code, 1, serve.stderr);
    const says = `${db.dir}/jobs.db${suffix} was deleted under this service`;
    const line = serve.stderr.split("\n").find((l) => l.startsWith("{") && l.includes(says));
    assert(line, `no line says '${says}':\n${serve.stderr}`);
    assertEquals(JSON.parse(line).level, "ERROR", line);
    assertStringIncludes(serve.stderr, `jobsmanager: stopped: ${says}`);
    assertEquals(await jobIds(db), ["first", "walled"]);
    assertEquals((await sql(db, "PRAGMA integrity_check"))[0].integrity_check, "ok");
  });
}
