/**
 * DatabaseWatch on real files: a write to a SQLite database in WAL mode,
 * by another connection, is reported as written; a read, or the WAL
 * opened and closed, is not; a file
 * renamed over the database is reported as a possible move; `close()`
 * ends the watch without an error.
 */
import { DatabaseSync } from "node:sqlite";
import { assertEquals } from "./assert.ts";
import { waitFor } from "./helpers.ts";
import { DatabaseWatch } from "../src/daemon/sqlite_file.ts";

Deno.test("sqlite watch: a write is reported, a read is not, a replaced file is", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-watch-" });
  const path = `${dir}/jobs.db`;
  const service = new DatabaseSync(path);
  const cli = new DatabaseSync(path);
  try {
    service.exec("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER)");
    const seen = { written: 0, moved: 0 };
    const watch = DatabaseWatch.start(path, {
      written: () => seen.written++,
      moved: () => seen.moved++,
    });
    const until = (what: string, probe: () => boolean) =>
      waitFor(probe, { timeoutMs: 10_000, what, detail: () => JSON.stringify(seen) });

    cli.exec("INSERT INTO t VALUES (1)");
    await until("the write to be reported", () => seen.written > 0);

    // Events come in order: once the file made after the read is reported, the read would have been.
    const written = seen.written;
    const moved = seen.moved;
    // The service's own polls: reads on open connections.
    service.prepare("SELECT COUNT(*) FROM t").get();
    cli.prepare("SELECT COUNT(*) FROM t").get();
    // Opened read-write and closed without a write, as a `job list` ends (though SQLite
    // run as root chowns its WAL on opening, which is reported: one needless poll).
    (await Deno.open(`${path}-wal`, { read: true, write: true })).close();
    await Deno.writeTextFile(`${dir}/other.db`, "");
    await until("the new file beside it to be reported", () => seen.moved > moved);
    assertEquals(seen.written, written, "a read was reported as a write");

    const before = seen.moved;
    await Deno.rename(`${dir}/other.db`, path);
    await until("the file renamed over the database to be reported", () => seen.moved > before);

    watch.close();
    assertEquals(await watch.ended, null);
  } finally {
    cli.close();
    service.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Run `sql` on the database at `path` in a process of its own, as the CLI would; its output. */
async function inOtherProcess(path: string, sql: string): Promise<string> {
  const code = `import { DatabaseSync } from "node:sqlite";
const db = new DatabaseSync(${JSON.stringify(path)});
console.log(JSON.stringify(db.prepare(${JSON.stringify(sql)}).all()));
db.close();`;
  const out = await new Deno.Command(Deno.execPath(), { args: ["eval", code] }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) throw new Error(`${sql}: ${new TextDecoder().decode(out.stderr)}`);
  return text.trim();
}

Deno.test("sqlite watch: the locks SQLite holds in this process survive it (another process's close leaves the WAL)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-watch-" });
  const path = `${dir}/jobs.db`;
  const service = new DatabaseSync(path);
  try {
    service.exec("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER)");
    service.prepare("SELECT COUNT(*) FROM t").get();
    let written = 0;
    const watch = DatabaseWatch.start(path, { written: () => written++, moved: () => {} });
    await inOtherProcess(path, "INSERT INTO t VALUES (1)");
    await waitFor(() => written > 0, { timeoutMs: 10_000, what: "the write to be reported" });
    // Were this process's locks gone, this close would count as the last one and delete the WAL.
    await inOtherProcess(path, "SELECT 1");
    service.exec("INSERT INTO t VALUES (2)");
    assertEquals(await inOtherProcess(path, "SELECT COUNT(*) AS n FROM t"), '[{"n":2}]');
    watch.close();
    assertEquals(await watch.ended, null);
  } finally {
    service.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sqlite watch: a database named through a symbolic link into another directory: its writes are reported", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-watch-" });
  await Deno.mkdir(`${dir}/data`);
  await Deno.mkdir(`${dir}/etc`);
  const path = `${dir}/etc/jobs.db`;
  await Deno.symlink(`${dir}/data/jobs.db`, path);
  const service = new DatabaseSync(path);
  try {
    service.exec("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER)");
    let written = 0;
    const watch = DatabaseWatch.start(path, { written: () => written++, moved: () => {} });
    await inOtherProcess(path, "INSERT INTO t VALUES (1)");
    await waitFor(() => written > 0, {
      timeoutMs: 10_000,
      what: "the write to be reported",
      detail: () => JSON.stringify([...Deno.readDirSync(`${dir}/data`)].map((e) => e.name)),
    });
    watch.close();
    assertEquals(await watch.ended, null);
  } finally {
    service.close();
    await Deno.remove(dir, { recursive: true });
  }
});
