/**
 * The CLI on a SQLite database it cannot write (a read-only file, a full
 * or read-only filesystem, made for real) ends with exit code 1 and one
 * line naming the file, the condition and the fix. The tmpfs cases need root.
 */
import { assertEquals, assertMatch } from "./assert.ts";
import { cli, CliProcess, freshDatabase, jm, type TestDatabase } from "./helpers.ts";
import { readOnlyFile, ROOT, skipLine, TinyFilesystem } from "./tiny_filesystem.ts";
import { ADMIN } from "./http_harness.ts";

const WHERE_ELSE = "or point db.url (--database) at a writable place";
const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

const add = (db: TestDatabase) =>
  jm(db, "job", "add", "tick", "--command", "true", "--cron", "* * * * *");

async function migrated(db: TestDatabase): Promise<void> {
  const { code, stderr } = await jm(db, "db", "migrate");
  assertEquals(code, 0, stderr);
}

Deno.test("cli: job add on a database file it may not write says which file and how to fix it", async () => {
  await using db = await freshDatabase("sqlite");
  await migrated(db);
  const path = `${db.dir}/jobs.db`;
  const readOnly = readOnlyFile(path);
  if (readOnly === null) {
    console.log("chattr +i does not work here: read-only file case not checked");
    return;
  }
  try {
    const { code, stdout, stderr } = await add(db);
    assertEquals([code, stdout], [1, ""], stderr);
    assertMatch(
      stderr,
      new RegExp(
        `^jobsmanager: the database refuses writes: cannot write the SQLite database ${
          escape(path)
        }: ${escape(path)} `,
      ),
    );
    assertMatch(stderr, readOnly.said);
    assertMatch(
      stderr,
      new RegExp(
        `\\(SQLite: "attempt to write a readonly database"\\); .*${escape(WHERE_ELSE)}\n$`,
      ),
    );
  } finally {
    readOnly.undo();
  }
});

skipLine("the CLI on a full or read-only filesystem");

Deno.test({
  name: "cli: job add on a full filesystem says which file, that it is full and how to fix it",
  ignore: !ROOT,
  async fn() {
    await using fs = await TinyFilesystem.mount();
    const db = fs.database();
    await migrated(db);
    await fs.fill();
    const { code, stdout, stderr } = await add(db);
    assertEquals([code, stdout], [1, ""], stderr);
    assertMatch(
      stderr,
      new RegExp(
        `^jobsmanager: the database refuses writes: cannot write the SQLite database ${
          escape(fs.dir)
        }/jobs\\.db: the filesystem holding ${
          escape(fs.dir)
        } is full \\(SQLite: "(database or disk is full|disk I/O error)"\\); free space on it, ${
          escape(WHERE_ELSE)
        }\n$`,
      ),
    );
    await fs.free();
    assertEquals((await add(db)).code, 0);
  },
});

Deno.test({
  name: "cli: job add on a read-only filesystem says so, and how to fix it",
  ignore: !ROOT,
  async fn() {
    await using fs = await TinyFilesystem.mount();
    const db = fs.database();
    await migrated(db);
    await fs.readOnly();
    // Reading it goes on (sqlite_read_only_mount_test.ts).
    const { code, stdout, stderr } = await cli([
      "--database",
      db.url,
      "job",
      "add",
      "tick",
      "--command",
      "true",
      "--cron",
      "* * * * *",
    ]);
    assertEquals(
      [code, stdout, stderr],
      [
        1,
        "",
        `jobsmanager: the database refuses writes: cannot write the SQLite database ${fs.dir}/jobs.db: the filesystem holding ${fs.dir} is mounted read-only (SQLite: "attempt to write a readonly database"); remount it read-write (mount -o remount,rw), ${WHERE_ELSE}\n`,
      ],
    );
  },
});

Deno.test({
  name: "serve: a new database on a read-only filesystem is said so, not 'No such file'",
  ignore: !ROOT,
  async fn() {
    await using fs = await TinyFilesystem.mount();
    await fs.readOnly();
    const path = `${fs.dir}/new.db`;
    const { code, stderr } = await cli(["--database", `sqlite:${path}`, "serve"]);
    assertEquals(
      [code, stderr],
      [
        1,
        `jobsmanager: cannot open the SQLite database sqlite:${path} to lock it: Read-only file system (os error 30): open '${path}'; check that the directory exists and is writable, or pass --database sqlite:PATH\n`,
      ],
    );
  },
});

/** A full tmpfs holding an empty `found.db` that was there before: someone's, not ours to remove. */
async function fullWithFoundFile(): Promise<TinyFilesystem> {
  const fs = await TinyFilesystem.mount();
  await Deno.writeFile(`${fs.dir}/found.db`, new Uint8Array());
  await fs.fill();
  return fs;
}

const filesIn = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name).sort();

Deno.test({
  name:
    "cli: a new database on a full disk is not said to be created, and its empty file is removed; a file found there stays",
  ignore: !ROOT,
  async fn() {
    await using fs = await fullWithFoundFile();
    const full = (path: string) =>
      new RegExp(
        `^jobsmanager: the database refuses writes: cannot write the SQLite database ${
          escape(path)
        }: the filesystem holding ${
          escape(fs.dir)
        } is full \\(SQLite: "(database or disk is full|disk I/O error)"\\); free space on it, ${
          escape(WHERE_ELSE)
        }\n$`,
      );
    const files = () => filesIn(fs.dir);
    const addJob = ["job", "add", "tick", "--command", "true", "--cron", "* * * * *"];
    for (const args of [addJob, ["db", "migrate"]]) {
      for (const name of ["new.db", "found.db"]) {
        const path = `${fs.dir}/${name}`;
        const { code, stdout, stderr } = await cli(["--database", `sqlite:${path}`, ...args]);
        const what = `${args.join(" ")} on ${name}`;
        assertEquals([code, stdout], [1, ""], `${what}: ${stderr}`);
        assertMatch(stderr, full(path), `${what}: ${stderr}`);
        assertEquals(files(), ["filler", "found.db"], `the files ${what} left`);
      }
    }
    await fs.free();
    // The next attempt starts clean: it makes the database, and says so.
    const made = await cli(["--database", `sqlite:${fs.dir}/new.db`, ...addJob]);
    assertEquals(made.code, 0, made.stderr);
    assertMatch(made.stderr, /^jobsmanager: created a new, empty database /);
    assertEquals(files(), ["found.db", "new.db"]);
  },
});

Deno.test({
  name:
    "serve: a new database file it could not write (a full disk) is removed as it exits; a file found there stays",
  ignore: !ROOT,
  async fn() {
    await using fs = await fullWithFoundFile();
    // Its log file elsewhere: the full disk is the database's alone.
    const home = await Deno.makeTempDir();
    try {
      for (const name of ["new.db", "found.db"]) {
        const path = `${fs.dir}/${name}`;
        await using serve = new CliProcess(["--database", `sqlite:${path}`, "serve"], {
          cwd: home,
        });
        const status = await serve.exit(60_000, `serve on the full ${name} to give up`);
        assertEquals(status.code, 1, serve.stderr);
        assertMatch(
          serve.stderr,
          new RegExp(
            `\njobsmanager: the database refuses writes: cannot write the SQLite database ${
              escape(path)
            }: the filesystem holding ${escape(fs.dir)} is full `,
          ),
        );
        assertEquals(filesIn(fs.dir), ["filler", "found.db"], `the files serve on ${name} left`);
      }
    } finally {
      await Deno.remove(home, { recursive: true });
    }
  },
});

Deno.test("serve: a new database file it wrote no table to (its HTTP port taken) is removed as it exits", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-serve-port-" });
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const listen = `127.0.0.1:${(taken.addr as Deno.NetAddr).port}`;
    await using serve = new CliProcess(["--database", "sqlite:new.db", "serve"], {
      cwd: dir,
      env: { JM_HTTP_LISTEN: listen, JM_HTTP_TOKEN: ADMIN },
    });
    const status = await serve.exit(60_000, "serve on a taken port to give up");
    assertEquals(status.code, 1, serve.stderr);
    assertMatch(serve.stderr, new RegExp(`http\\.listen: cannot listen on ${escape(listen)}`));
    assertEquals(filesIn(dir).filter((name) => name.startsWith("new.db")), [], "the files left");
  } finally {
    taken.close();
    await Deno.remove(dir, { recursive: true });
  }
});
