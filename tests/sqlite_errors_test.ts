/**
 * SQLite's own errors on a full disk and a read-only file or filesystem,
 * made for real, come out naming the database file, the condition and the
 * fix, as refusals (explainSqliteError). The tmpfs cases need root.
 */
import { DatabaseError } from "../src/errors.ts";
import { SqliteDriver } from "../src/store/sqlite.ts";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { readOnlyFile, ROOT, skipLine, TinyFilesystem } from "./tiny_filesystem.ts";

const WHERE_ELSE = "or point db.url (--database) at a writable place";
const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** The error of `fn` on a driver of the database at `path`, closed after. */
async function failureOn(
  path: string,
  fn: (driver: SqliteDriver) => Promise<unknown>,
): Promise<DatabaseError> {
  const driver = SqliteDriver.open(path);
  try {
    const error = await fn(driver).then(() => null, (e) => e);
    assert(error instanceof DatabaseError, `not a DatabaseError: ${error}`);
    return error;
  } finally {
    await driver.close();
  }
}

async function withTable(path: string): Promise<void> {
  const driver = SqliteDriver.open(path);
  await driver.run("CREATE TABLE t (x TEXT)");
  await driver.close();
}

const insert = (driver: SqliteDriver) => driver.run("INSERT INTO t VALUES (?)", ["x".repeat(8000)]);

Deno.test("sqlite errors: a file this user may not write names the file and the fix", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-sqlite-" });
  const path = `${dir}/jobs.db`;
  try {
    await withTable(path);
    const readOnly = readOnlyFile(path);
    if (readOnly === null) {
      console.log("chattr +i does not work here: read-only file case not checked");
      return;
    }
    try {
      const error = await failureOn(path, insert);
      assertMatch(
        error.message,
        new RegExp(`^cannot write the SQLite database ${escape(path)}: ${escape(path)} `),
      );
      assertMatch(error.message, readOnly.said);
      assertMatch(error.message, /\(SQLite: "attempt to write a readonly database"\)/);
      assert(error.message.endsWith(WHERE_ELSE), error.message);
      assertEquals(error.unreachable, false);
    } finally {
      readOnly.undo();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

skipLine("sqlite errors on a full or read-only filesystem");

Deno.test({
  name: "sqlite errors: a full filesystem names the file, the filesystem and the fix",
  ignore: !ROOT,
  async fn() {
    await using fs = await TinyFilesystem.mount();
    const path = `${fs.dir}/jobs.db`;
    await withTable(path);
    const driver = SqliteDriver.open(path);
    try {
      await driver.all("SELECT * FROM t");
      const locks = posixLocksOn(`${path}-shm`);
      assert(locks.length > 0, "SQLite holds no POSIX lock on the -shm file");
      await fs.fill();
      const error = await insert(driver).then(() => null, (e) => e);
      assert(error instanceof DatabaseError, `not a DatabaseError: ${error}`);
      assertMatch(
        error.message,
        new RegExp(
          `^cannot write the SQLite database ${escape(path)}: the filesystem holding ${
            escape(fs.dir)
          } is full \\(SQLite: "(database or disk is full|disk I/O error)"\\); free space on it, ${
            escape(WHERE_ELSE)
          }$`,
        ),
      );
      assertEquals(error.unreachable, false);
      // Finding that out left SQLite's locks alone: without them, the next
      // connection, thinking itself alone, deletes the WAL this one writes.
      assertEquals(
        posixLocksOn(`${path}-shm`),
        locks,
        "this process's POSIX locks on the -shm file",
      );
      await fs.free();
      await insert(driver);
    } finally {
      await driver.close();
    }
  },
});

/** The POSIX locks this process holds on the file at `path` (from /proc/locks). */
function posixLocksOn(path: string): string[] {
  const inode = `:${Deno.statSync(path).ino}`;
  return Deno.readTextFileSync("/proc/locks").split("\n").map((line) => line.split(/\s+/))
    .filter((f) => f[1] === "POSIX" && f[4] === String(Deno.pid) && f[5]?.endsWith(inode))
    .map((f) => f.slice(3).join(" "));
}

Deno.test({
  name: "sqlite errors: a filesystem mounted read-only names the file, the mount and the fix",
  ignore: !ROOT,
  async fn() {
    await using fs = await TinyFilesystem.mount();
    const path = `${fs.dir}/jobs.db`;
    await withTable(path);
    await fs.readOnly();
    // A read goes on, read-only (sqlite_read_only_mount_test.ts): a write is refused.
    const error = await failureOn(path, insert);
    assertEquals(
      error.message,
      `cannot write the SQLite database ${path}: the filesystem holding ${fs.dir} is mounted read-only (SQLite: "attempt to write a readonly database"); remount it read-write (mount -o remount,rw), ${WHERE_ELSE}`,
    );
    assertEquals(error.unreachable, false);
  },
});

Deno.test("sqlite errors: a damaged file names it, how to check it and how to get it back", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-sqlite-" });
  const path = `${dir}/jobs.db`;
  try {
    const driver = SqliteDriver.open(path);
    await driver.run("CREATE TABLE t (x TEXT)");
    for (let i = 0; i < 20; i++) await driver.run("INSERT INTO t VALUES (?)", ["x".repeat(4000)]);
    await driver.close();
    // Its pages after the first overwritten, as a copy made over it while in use leaves them.
    const size = (await Deno.stat(path)).size;
    const file = await Deno.open(path, { write: true });
    await file.seek(4096, Deno.SeekMode.Start);
    await file.write(new Uint8Array(size - 4096).fill(0xff));
    file.close();
    const error = await failureOn(path, (d) => d.all("SELECT COUNT(*) FROM t"));
    assertEquals(
      error.message,
      `the SQLite database ${path} is damaged (SQLite: "database disk image is malformed"; a copy made over it while a service had it open does this): stop the services that use it, check it (sqlite3 ${path} "PRAGMA integrity_check"), then restore a backup as the README says (Backing up), or save what it still holds: sqlite3 ${path} .recover | sqlite3 ${path}.recovered, and put that in its place`,
    );
    assertEquals(error.unreachable, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sqlite errors: a file that is not a SQLite database is named so, with the setting to check", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-sqlite-" });
  const path = `${dir}/notes.txt`;
  try {
    await Deno.writeTextFile(path, "my notes\n".repeat(200));
    const error = await failureOn(path, (d) => d.all("SELECT 1 FROM sqlite_master"));
    assertEquals(
      error.message,
      `${path} is not a SQLite database (SQLite: "file is not a database"): check db.url (--database, JM_DATABASE_URL) names the database's file; if it is the database, its first page is damaged: restore a backup as the README says (Backing up)`,
    );
    assertEquals(await Deno.readTextFile(path), "my notes\n".repeat(200), "the file is as it was");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
