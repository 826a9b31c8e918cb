/**
 * The log file of `serve`, through the logging setup: created readable by
 * its owner only, as are the files it rotates into; rotated at the size,
 * keeping the backups asked for; every line written by the close.
 */
import { assert, assertEquals } from "./assert.ts";
import { closeLogging, log, setupLogging } from "../src/daemon/log.ts";

async function withLogFile(
  backups: number,
  fn: (dir: string, path: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "jm-log-" });
  try {
    const path = `${dir}/logs/jobsmanager.log`;
    await setupLogging({
      consoleLevel: "fatal",
      fileLevel: "info",
      file: path,
      maxSizeBytes: 1000,
      backups,
    });
    try {
      await fn(dir, path);
    } finally {
      await closeLogging();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const mode = async (path: string) => (await Deno.stat(path)).mode! & 0o777;

Deno.test("log file: created 0600, and so is every file it rotates into", async () => {
  await withLogFile(2, async (_dir, path) => {
    for (let i = 0; i < 60; i++) {
      log("test").info("line {i} of the log, padded to some length", { i });
    }
    await closeLogging();
    const files = [path, `${path}.1`, `${path}.2`];
    assertEquals(await Promise.all(files.map(mode)), [0o600, 0o600, 0o600]);
    // Two backups kept, none beyond; every file under the size.
    assert(!await Deno.stat(`${path}.3`).then(() => true, () => false), "a third backup");
    for (const file of files) assert((await Deno.stat(file)).size <= 1000, `${file} too big`);
    const last = (await Deno.readTextFile(path)).trim().split("\n").map((l) => JSON.parse(l));
    assertEquals(last.at(-1).properties.i, 59);
  });
});

Deno.test("log file: with no backups the file starts again, alone", async () => {
  await withLogFile(0, async (dir, path) => {
    for (let i = 0; i < 30; i++) {
      log("test").info("line {i} of the log, padded to some length", { i });
    }
    await closeLogging();
    assertEquals([...Deno.readDirSync(`${dir}/logs`)].map((e) => e.name), ["jobsmanager.log"]);
    assertEquals(await mode(path), 0o600);
  });
});
