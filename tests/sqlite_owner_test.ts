/**
 * A SQLite file a root CLI made (README's install: `sudo jobsmanager job
 * add …` before the service ran) is given to its directory's owner, and a
 * file the service may not open is named with its owner, mode and the fix.
 */
import { assertEquals, assertStringIncludes } from "./assert.ts";
import { cli } from "./helpers.ts";
import { notOurs, userName } from "../src/store/sqlite_owner.ts";

const ROOT = Deno.uid() === 0;

Deno.test("sqlite owner: a file root owns, 0600, is named with its owner, mode and the chown", async () => {
  await using dir = await Deno.makeTempDir().then((path) => ({
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  }));
  const file = `${dir.path}/jobs.db`;
  await Deno.writeTextFile(file, "", { mode: 0o600 });
  const me = Deno.uid()!;
  const other = me === 0 ? 65534 : me + 1;
  const found = notOurs(file, other);
  assertEquals(found, {
    what: `${file} is owned by ${
      userName(me)
    } (uid ${me}), mode 0600, and this process runs as user ${userName(other)} (uid ${other})`,
    fix: `give it to this user: chown ${
      userName(other).startsWith("uid ") ? other : userName(other)
    }: ${file} ${file}-wal ${file}-shm (the -wal and -shm files may not exist yet)`,
  });
  // Its owner, and anyone the mode lets in, gets no such error.
  assertEquals(notOurs(file, me), null);
  await Deno.chmod(file, 0o666);
  assertEquals(notOurs(file, other), null);
});

Deno.test({
  name: "sqlite owner: a database root creates in a directory of another user's is that user's",
  ignore: !ROOT,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      await Deno.chown(dir, 65534, 65534);
      const result = await cli(["job", "add", "t", "--command", "true", "--cron", "@daily"], {
        env: { JM_DATABASE_URL: `sqlite:${dir}/jobs.db` },
      });
      assertEquals(result.code, 0, result.stderr);
      const info = await Deno.stat(`${dir}/jobs.db`);
      assertEquals([info.uid, info.gid, info.mode! & 0o777], [65534, 65534, 0o600]);
      assertStringIncludes(
        result.stderr,
        `, owned by ${userName(65534)} (the owner of its directory), so a service run as ${
          userName(65534)
        } can open it;`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
