/**
 * A SQLite database path that another user could have pointed elsewhere
 * (a symbolic link in a directory not only root's or this user's) is
 * refused, by the CLI and by `serve`'s lock, and nothing is created where
 * the link leads; a link only root or this user could have made is
 * followed, and what it makes is 0600. The race (a link swapped in
 * between create and open) cannot be run deterministically: these pin the
 * checks that close it.
 */
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { cli } from "./helpers.ts";
import { SqliteDriver } from "../src/store/sqlite.ts";
import { SqliteFileLock } from "../src/daemon/sqlite_file.ts";
import { DatabaseError } from "../src/errors.ts";

const ROOT = Deno.uid() === 0;

async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir();
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** `fn`'s error, which it must throw. */
async function failure(fn: () => unknown): Promise<Error> {
  try {
    await fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error("it did not fail");
}

/**
 * A directory anyone may write in, not sticky (so anyone may swap its
 * entries), holding `jobs.db`, a dangling link to `target`.
 */
async function plantedLink(dir: string, target: string): Promise<string> {
  const shared = `${dir}/shared`;
  await Deno.mkdir(shared);
  await Deno.chmod(shared, 0o777);
  const path = `${shared}/jobs.db`;
  await Deno.symlink(target, path);
  return path;
}

Deno.test("sqlite links: the CLI refuses a dangling link another user could have planted, and makes nothing where it leads", async () => {
  await using dir = await tempDir();
  const target = `${dir.path}/chosen`;
  const path = await plantedLink(dir.path, target);
  const result = await cli(["job", "add", "t", "--command", "true", "--cron", "@daily"], {
    env: { JM_DATABASE_URL: `sqlite:${path}` },
  });
  assertEquals(result.code, 1, result.stderr);
  assertStringIncludes(
    result.stderr,
    `refusing to open the SQLite database sqlite:${path}: ${path} is a symbolic link (to ${target}) owned by `,
  );
  assertStringIncludes(
    result.stderr,
    `mode 0777; a link to the database is followed only when the link and its directory belong to root`,
  );
  assertStringIncludes(result.stderr, `Pass the file itself (--database sqlite:${target})`);
  assert(!await exists(target), "the file the link names was created");
  for (const suffix of ["-wal", "-shm"]) {
    assert(!await exists(`${target}${suffix}`), `${target}${suffix} was created`);
  }
});

Deno.test("sqlite links: serve's lock refuses the same link, and makes nothing where it leads", async () => {
  await using dir = await tempDir();
  const target = `${dir.path}/chosen`;
  const path = await plantedLink(dir.path, target);
  const error = await failure(() => SqliteFileLock.acquire(path));
  assert(error instanceof DatabaseError, String(error));
  assertStringIncludes(error.message, `${path} is a symbolic link (to ${target})`);
  assert(!await exists(target), "the file the link names was created");
});

Deno.test({
  name: "sqlite links: a link in a directory owned by another user is refused, though root's",
  ignore: !ROOT,
  fn: async () => {
    await using dir = await tempDir();
    const owned = `${dir.path}/theirs`;
    await Deno.mkdir(owned, { mode: 0o700 });
    // A uid no one has: the directory's owner is who could swap the link.
    await Deno.chown(owned, 4242, 4242);
    const target = `${dir.path}/chosen`;
    await Deno.symlink(target, `${owned}/jobs.db`);
    const error = await failure(() => SqliteDriver.open(`${owned}/jobs.db`));
    assert(error instanceof DatabaseError, String(error));
    assertStringIncludes(error.message, `, in ${owned}, owned by uid 4242, mode 0700`);
    assert(!await exists(target), "the file the link names was created");
  },
});

Deno.test("sqlite links: a -wal file that is a link is refused, naming it, and nothing is made where it leads", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/jobs.db`;
  const target = `${dir.path}/chosen`;
  await Deno.symlink(target, `${path}-wal`);
  const error = await failure(() => SqliteDriver.open(path));
  assert(error instanceof DatabaseError, String(error));
  assertStringIncludes(
    error.message,
    `${path}-wal is a symbolic link, which SQLite does not follow`,
  );
  assert(!await exists(target), "the file the link names was created");
});

Deno.test("sqlite links: a link this user made in its own directory is followed, and the file it makes is 0600", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/data`);
  const target = `${dir.path}/data/jobs.db`;
  const path = `${dir.path}/jobs.db`;
  await Deno.symlink("data/jobs.db", path);
  // Whatever the umask, as the README promises.
  const umask = Deno.umask(0);
  try {
    const driver = SqliteDriver.open(path);
    await driver.run("CREATE TABLE t (x INTEGER)");
    await driver.close();
  } finally {
    Deno.umask(umask);
  }
  assertEquals((await Deno.lstat(target)).mode! & 0o777, 0o600);
  assert((await Deno.lstat(path)).isSymlink, "the link was replaced");
});

Deno.test("sqlite links: a link in a directory only this user's own group may write (umask 002) is followed; another group's is not", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/data`);
  const path = `${dir.path}/app/jobs.db`;
  await Deno.mkdir(`${dir.path}/app`);
  await Deno.symlink(`${dir.path}/data/jobs.db`, path);
  await Deno.chmod(`${dir.path}/app`, 0o775);
  const driver = SqliteDriver.open(path);
  await driver.run("CREATE TABLE t (x INTEGER)");
  await driver.close();
  if (Deno.uid() !== 0) return;
  // Root may give the directory to a group of others.
  await Deno.chown(`${dir.path}/app`, 0, 4242);
  const error = await failure(() => SqliteDriver.open(path));
  assert(error instanceof DatabaseError, String(error));
  assertStringIncludes(error.message, "mode 0775; a link to the database is followed only");
});
