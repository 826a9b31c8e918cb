/**
 * Commands that only read, on a SQLite database on a filesystem mounted
 * read-only for real (a tmpfs remounted; root only): they read it, as
 * SQLite can once asked to read only. They failed, "the database refuses
 * writes", for a command that writes nothing. A write is still refused,
 * saying why and how to fix it; and a `-wal` left by a service killed,
 * which SQLite cannot read there without a `-shm`, is said to be that.
 */
import { assertEquals, assertStringIncludes } from "./assert.ts";
import { cli, type TestDatabase } from "./helpers.ts";
import { ROOT, skipLine, TinyFilesystem } from "./tiny_filesystem.ts";

skipLine("reading a SQLite database on a read-only filesystem");

const run = (db: TestDatabase, ...args: string[]) =>
  cli(["--database", db.url, ...args], { cwd: db.dir });

async function added(db: TestDatabase, id: string): Promise<void> {
  const { code, stderr } = await run(
    db,
    "job",
    "add",
    id,
    "--command",
    "true",
    "--cron",
    "0 3 * * *",
  );
  assertEquals(code, 0, stderr);
}

/** A process that changes `db` and is killed before it closes: its write stays in the -wal. */
async function killedWriting(db: TestDatabase, description: string): Promise<void> {
  const code = `import { DatabaseSync } from "node:sqlite";
    const db = new DatabaseSync(${JSON.stringify(`${db.dir}/jobs.db`)});
    db.prepare("UPDATE jm_jobs SET description = ?").run(${JSON.stringify(description)});
    Deno.kill(Deno.pid, "SIGKILL");`;
  const out = await new Deno.Command(Deno.execPath(), { args: ["eval", code] }).output();
  assertEquals(out.signal, "SIGKILL", new TextDecoder().decode(out.stderr));
}

Deno.test({
  name: "cli: job list, job show, runs and logs read a database on a read-only filesystem",
  ignore: !ROOT,
  async fn() {
    await using fs = await TinyFilesystem.mount();
    const db = fs.database();
    await added(db, "nightly");
    await fs.readOnly();
    const listed = await run(db, "job", "list");
    assertEquals(listed.code, 0, listed.stderr);
    assertStringIncludes(listed.stdout, "nightly");
    for (const args of [["runs"], ["logs"], ["job", "show", "nightly"]]) {
      const { code, stderr } = await run(db, ...args);
      assertEquals(code, 0, `${args.join(" ")}: ${stderr}`);
    }
    const refused = await run(
      db,
      "--json",
      "job",
      "add",
      "more",
      "--command",
      "true",
      "--cron",
      "0 3 * * *",
    );
    assertEquals(refused.code, 1, refused.stderr);
    const error = JSON.parse(refused.stderr).error;
    assertEquals(error.kind, "refused");
    assertStringIncludes(
      error.message,
      `the filesystem holding ${fs.dir} is mounted read-only (SQLite: "attempt to write a readonly database"); remount it read-write`,
    );
  },
});

Deno.test({
  name:
    "cli: a -wal left by a killed writer is read on a read-only filesystem, with its -shm; without one, said so",
  ignore: !ROOT,
  async fn() {
    await using fs = await TinyFilesystem.mount();
    const db = fs.database();
    await added(db, "nightly");
    await killedWriting(db, "from the wal");
    await fs.readOnly();
    const shown = await run(db, "--json", "job", "show", "nightly");
    assertEquals(shown.code, 0, shown.stderr);
    assertEquals(JSON.parse(shown.stdout).description, "from the wal", shown.stdout);
    // The same, its -shm gone: SQLite cannot make one there.
    await fsWritable(fs, () => Deno.remove(`${fs.dir}/jobs.db-shm`));
    const failed = await run(db, "job", "list");
    assertEquals(failed.code, 1, failed.stdout);
    assertEquals(
      failed.stderr,
      `jobsmanager: cannot read the SQLite database ${fs.dir}/jobs.db on the read-only filesystem holding ${fs.dir}: its -wal file holds writes not yet checkpointed into it (a service that did not stop cleanly leaves them), and SQLite reads them only through a -shm file, which it cannot make there; remount it read-write (mount -o remount,rw), or copy the database with its -wal file to a writable place and point db.url (--database) at the copy\n`,
    );
  },
});

/** Do `change` with `fs` read-write for a moment. */
async function fsWritable(fs: TinyFilesystem, change: () => Promise<void>): Promise<void> {
  const remount = async (mode: string) => {
    const out = await new Deno.Command("mount", { args: ["-o", `remount,${mode}`, fs.dir] })
      .output();
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  };
  await remount("rw");
  try {
    await change();
  } finally {
    await remount("ro");
  }
}
