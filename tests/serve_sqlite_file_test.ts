/**
 * `serve` and its SQLite file, as processes: the one-service lock is on the
 * database file itself, so a symlink or a hard link to it is refused too;
 * and a service whose path stops naming the file it has open (deleted,
 * replaced) says so at error level and exits 1. It watches the file: a
 * `job add` is applied at once, not at the next timed poll. The file moved
 * over it is left as it came: the old file's WAL is not left beside it.
 */
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { freshDatabase, type TestDatabase, waitFor } from "./helpers.ts";
import {
  jm,
  jmMarker,
  killLeftovers,
  markers,
  pgrep,
  ready,
  runs,
  runsDetail,
  Serve,
  sql,
  uniqueSeconds,
  writeConfig,
} from "./serve_helpers.ts";

/** The same test database, named by another path. */
function through(db: TestDatabase, path: string): TestDatabase {
  return { ...db, url: `sqlite:${path}`, target: { kind: "sqlite", path } };
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

/** Whether `path` exists (not following a final link). */
async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, (error) => {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  });
}

/**
 * Serve on `db` with an every-second job, until a run is recorded: its
 * WAL then holds frames. Returns the running serve.
 */
async function serveWithFrames(db: TestDatabase): Promise<Serve> {
  const serve = new Serve(db, await writeConfig(db));
  await ready(db, serve);
  await waitFor(async () => (await runs(db, "tick")).some((r) => r.finished_at !== null), {
    timeoutMs: 20_000,
    what: "a run of tick to be recorded",
    detail: runsDetail(db),
  });
  const wal = await Deno.stat(`${db.dir}/jobs.db-wal`);
  assert(wal.size > 0, `jobs.db-wal is empty: the test needs frames in it`);
  return serve;
}

/** `PRAGMA integrity_check` of the database at `db`'s path. */
async function integrity(db: TestDatabase): Promise<string> {
  const rows = await sql(db, "PRAGMA integrity_check");
  return rows.map((r) => String(r.integrity_check)).join("; ");
}

Deno.test("serve[sqlite]: a database moved over the file of a running serve is left whole, and a new serve starts on it", async () => {
  await using db = await freshDatabase("sqlite");
  await jm(db, "job", "add", "tick", "--command", "true", "--second", "*");
  const other = through(db, `${db.dir}/other.db`);
  await jm(other, "job", "add", "other", "--command", "true", "--cron", "0 3 * * *");
  await using serve = await serveWithFrames(db);
  // The old file, still named after the move: what the service wrote must have reached it.
  await Deno.link(`${db.dir}/jobs.db`, `${db.dir}/kept.db`);
  await Deno.rename(`${db.dir}/other.db`, `${db.dir}/jobs.db`);
  assertEquals((await serve.exit(20_000, "serve to notice its file was replaced")).code, 1);
  assertEquals(await exists(`${db.dir}/jobs.db-wal`), false, "the old file's WAL was left");
  assertEquals(await exists(`${db.dir}/jobs.db-shm`), false, "the old file's -shm was left");
  assertEquals(await integrity(db), "ok");
  const jobs = await sql(db, "SELECT id FROM jm_jobs ORDER BY id");
  assertEquals(jobs.map((j) => j.id), ["other"]);
  assertEquals(await runs(db), [], "the runs of the file it replaced were merged into it");
  const kept = through(db, `${db.dir}/kept.db`);
  assertEquals(await integrity(kept), "ok");
  assert((await runs(kept, "tick")).length > 0, "the old file lacks the runs recorded in it");
  await using again = new Serve(db, await writeConfig(db));
  await ready(db, again);
  assertEquals((await again.terminate()).status.code, 0, again.stderr);
});

Deno.test("serve[sqlite]: a copy of its file restored under a running serve stays as it was copied", async () => {
  await using db = await freshDatabase("sqlite");
  await jm(db, "job", "add", "tick", "--command", "true", "--second", "*");
  // No service has it open: the file is the whole database.
  const copied = await Deno.readFile(`${db.dir}/jobs.db`);
  await Deno.writeFile(`${db.dir}/copy.db`, copied);
  await using serve = await serveWithFrames(db);
  await Deno.rename(`${db.dir}/copy.db`, `${db.dir}/jobs.db`);
  assertEquals((await serve.exit(20_000, "serve to notice its file was replaced")).code, 1);
  assertEquals(await exists(`${db.dir}/jobs.db-wal`), false, "the old file's WAL was left");
  assertEquals(await Deno.readFile(`${db.dir}/jobs.db`), copied);
  assertEquals(await integrity(db), "ok");
  assertEquals(await runs(db), [], "the runs of the file it replaced were merged into the copy");
});

Deno.test("serve[sqlite]: a file moved over a running serve's with its own WAL keeps that WAL", async () => {
  await using db = await freshDatabase("sqlite");
  await jm(db, "job", "add", "tick", "--command", "true", "--second", "*");
  const other = through(db, `${db.dir}/other.db`);
  await jm(other, "job", "add", "other", "--command", "true", "--cron", "0 3 * * *");
  const { DatabaseSync } = await import("node:sqlite");
  // A reader keeps the CLI's close from checkpointing: the second job stays in other.db-wal.
  const reader = new DatabaseSync(`${db.dir}/other.db`);
  try {
    reader.prepare("SELECT count(*) FROM jm_jobs").get();
    await jm(other, "job", "add", "walled", "--command", "true", "--cron", "0 3 * * *");
    assert((await Deno.stat(`${db.dir}/other.db-wal`)).size > 0, "other.db-wal is empty");
    await using serve = await serveWithFrames(db);
    await Deno.rename(`${db.dir}/other.db-wal`, `${db.dir}/jobs.db-wal`);
    await Deno.rename(`${db.dir}/other.db`, `${db.dir}/jobs.db`);
    assertEquals((await serve.exit(20_000, "serve to notice its file was replaced")).code, 1);
  } finally {
    // Its file has moved: SQLite leaves the WAL where it is.
    reader.close();
  }
  assert(await exists(`${db.dir}/jobs.db-wal`), "the new file's WAL was removed");
  assertEquals(await integrity(db), "ok");
  const jobs = await sql(db, "SELECT id FROM jm_jobs ORDER BY id");
  assertEquals(jobs.map((j) => j.id), ["other", "walled"]);
  assertEquals(await runs(db), [], "the runs of the file it replaced were merged into it");
});

Deno.test("serve[sqlite]: a run going when its file is replaced is ended by the stop, its record counted as written nowhere", async () => {
  await using db = await freshDatabase("sqlite");
  const seconds = uniqueSeconds(30);
  await jm(db, "job", "add", "slow", "--command", `sleep ${seconds}`, "--second", "*");
  const other = through(db, `${db.dir}/other.db`);
  await jm(other, "job", "add", "other", "--command", "true", "--cron", "0 3 * * *");
  try {
    await using serve = new Serve(db, await writeConfig(db));
    await ready(db, serve);
    await waitFor(async () => (await runs(db, "slow")).some((r) => r.status === "running"), {
      timeoutMs: 20_000,
      what: "a run of slow to be running",
      detail: runsDetail(db),
    });
    await Deno.rename(`${db.dir}/other.db`, `${db.dir}/jobs.db`);
    assertEquals((await serve.exit(20_000, "serve to notice its file was replaced")).code, 1);
    assertEquals(await pgrep(seconds), [], `the run's process outlived the stop:\n${serve.stderr}`);
    const entries = serve.stderr.split("\n").filter((l) => l.startsWith("{")).map((l) =>
      JSON.parse(l)
    );
    assert(
      entries.some((e) => /^job "slow" run \d+ ended "interrupted"/.test(e.message)),
      serve.stderr,
    );
    const nowhere = entries.find((e) => e.message.includes("run records were written nowhere"));
    assertEquals(nowhere?.level, "ERROR", serve.stderr);
    // Its end at least; a fire skipped for it meanwhile too.
    assert(nowhere.properties.count >= 1, serve.stderr);
    // Not tried again until the stop's deadline, nor said to be marked lost at a next start.
    assert(
      !entries.some((e) => e.message.includes("could not be written before exit")),
      serve.stderr,
    );
    assertEquals(await runs(db), [], "the runs of the file it replaced were merged into it");
  } finally {
    await killLeftovers(seconds);
  }
});

Deno.test("serve[sqlite]: a database file deleted under a running serve leaves no WAL for the next file at the path", async () => {
  await using db = await freshDatabase("sqlite");
  await jm(db, "job", "add", "tick", "--command", "true", "--second", "*");
  await using serve = await serveWithFrames(db);
  await Deno.remove(`${db.dir}/jobs.db`);
  assertEquals((await serve.exit(20_000, "serve to notice its file was deleted")).code, 1);
  assertEquals(await exists(`${db.dir}/jobs.db-wal`), false, "the old file's WAL was left");
  assertEquals(await exists(`${db.dir}/jobs.db-shm`), false, "the old file's -shm was left");
  await jm(db, "job", "add", "fresh", "--command", "true", "--cron", "0 3 * * *");
  assertEquals(await integrity(db), "ok");
  const jobs = await sql(db, "SELECT id FROM jm_jobs ORDER BY id");
  assertEquals(jobs.map((j) => j.id), ["fresh"]);
  assertEquals(await runs(db), [], "the runs of the deleted file were merged into the new one");
});
