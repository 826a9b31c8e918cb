/**
 * `serve` and its SQLite file, as processes: the one-service lock is on the
 * database file itself, so a symlink or a hard link to it is refused too;
 * and a service whose path stops naming the file it has open (deleted,
 * replaced) says so at error level and exits 1. It watches the file: a
 * `job add` is applied at once, not at the next timed poll.
 */
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { freshDatabase, type TestDatabase, waitFor } from "./helpers.ts";
import { jm, jmMarker, markers, ready, Serve, writeConfig } from "./serve_helpers.ts";

/** The same test database, named by another path. */
function through(db: TestDatabase, path: string): TestDatabase {
  return { ...db, url: `sqlite:${path}` };
}

for (
  const [name, link] of [
    ["a symlink", (from: string, to: string) => Deno.symlink(from, to)],
    ["a hard link", (from: string, to: string) => Deno.link(from, to)],
  ] as const
) {
  Deno.test(`serve[sqlite]: a second serve through ${name} to the file refuses to start`, async () => {
    await using db = await freshDatabase("sqlite");
    await jm(db, "job", "add", "idle", "--command", "true", "--cron", "0 0 1 1 *");
    const config = await writeConfig(db);
    await using serve = new Serve(db, config);
    await ready(db, serve);
    const other = `${db.dir}/other.db`;
    await link(`${db.dir}/jobs.db`, other);
    await using second = new Serve(through(db, other), config);
    const status = await second.exit(20_000, "the second serve to give up");
    assertEquals(status.code, 1, second.stderr);
    assertStringIncludes(
      second.stderr,
      `another jobsmanager serve already runs on sqlite:${other} (it holds a lock on the database file`,
    );
    assert(serve.running, "the first serve stopped");
    assertEquals((await serve.terminate()).status.code, 0, serve.stderr);
  });
}

Deno.test("serve[sqlite]: deleting the lock file of old versions lifts nothing", async () => {
  await using db = await freshDatabase("sqlite");
  await jm(db, "job", "add", "idle", "--command", "true", "--cron", "0 0 1 1 *");
  const config = await writeConfig(db);
  await using serve = new Serve(db, config);
  await ready(db, serve);
  await Deno.remove(`${db.dir}/jobs.db.lock`).catch(() => {});
  await using second = new Serve(db, config);
  assertEquals((await second.exit(20_000, "the second serve to give up")).code, 1, second.stderr);
  assertEquals((await serve.terminate()).status.code, 0, serve.stderr);
});

for (
  const [what, change, says] of [
    [
      "deleted",
      async (db: TestDatabase) => {
        for (const suffix of ["", "-wal", "-shm"]) {
          await Deno.remove(`${db.dir}/jobs.db${suffix}`).catch(() => {});
        }
      },
      "no longer exists: the file this service has open was deleted",
    ],
    [
      "replaced",
      async (db: TestDatabase) => {
        await Deno.writeTextFile(`${db.dir}/new.db`, "");
        await Deno.rename(`${db.dir}/new.db`, `${db.dir}/jobs.db`);
      },
      "now names another file",
    ],
  ] as const
) {
  Deno.test(`serve[sqlite]: a database file ${what} under a running serve stops it, exit 1`, async () => {
    await using db = await freshDatabase("sqlite");
    await jm(db, "job", "add", "idle", "--command", "true", "--cron", "0 0 1 1 *");
    await using serve = new Serve(db, await writeConfig(db));
    await ready(db, serve);
    await change(db);
    // reload_interval is 0.5 s: the check comes within it; the rest is the stop.
    const status = await serve.exit(15_000, `serve to notice its file was ${what}`);
    assertEquals(status.code, 1, serve.stderr);
    const line = serve.stderr.split("\n").find((l) => l.includes(says));
    assert(line, `no line says '${says}':\n${serve.stderr}`);
    assertEquals(JSON.parse(line).level, "ERROR", line);
    assertStringIncludes(serve.stderr, `jobsmanager: stopped: sqlite:${db.dir}/jobs.db`);
  });
}

Deno.test("serve[sqlite]: a job added is applied at once, long before the next timed poll", async () => {
  await using db = await freshDatabase("sqlite");
  await jm(db, "job", "add", "idle", "--command", "true", "--cron", "0 0 1 1 *");
  // The timed poll comes every 60 s: only the watch can apply the job within the wait below.
  await using serve = new Serve(db, await writeConfig(db, { reload_interval: 60 }));
  await ready(db, serve);
  const watching = serve.stderr.split("\n").filter((l) => l.startsWith("{")).map((l) =>
    JSON.parse(l)
  )
    .find((e) => e.message.startsWith("watching "));
  assertEquals(watching?.properties.database, `sqlite:${db.dir}/jobs.db`, serve.stderr);
  const marker = await jmMarker(
    db,
    "job",
    "add",
    "new",
    "--command",
    "true",
    "--cron",
    "0 0 1 1 *",
  );
  await waitFor(async () => (await markers(db)).find((m) => m.id === marker)?.updated === 1, {
    timeoutMs: 20_000,
    what: `marker ${marker} to be applied`,
    detail: () => serve.stderr,
  });
  assertEquals((await serve.terminate()).status.code, 0, serve.stderr);
});
