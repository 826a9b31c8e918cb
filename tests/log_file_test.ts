/**
 * The log file of `serve`, through the logging setup: created readable by
 * its owner only, as are the files it rotates into; rotated at the size,
 * keeping the backups asked for; every line written by the close.
 */
import { assert, assertEquals, assertMatch, assertRejects } from "./assert.ts";
import type { LogRecord, Sink } from "@logtape/logtape";
import { closeLogging, log, setupLogging } from "../src/daemon/log.ts";
import { logFileSink } from "../src/daemon/log_file.ts";
import { waitFor } from "./helpers.ts";

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

const record = (message: string): LogRecord => ({
  category: ["test"],
  level: "info",
  message: [message],
  rawMessage: message,
  properties: {},
  timestamp: Date.now(),
});

const mode = async (path: string) => (await Deno.stat(path)).mode! & 0o777;

Deno.test("log file: each line names the node that logged it, once it knows its id", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-log-" });
  try {
    const path = `${dir}/jobsmanager.log`;
    let node: string | null = null;
    await setupLogging({
      consoleLevel: "fatal",
      fileLevel: "info",
      file: path,
      maxSizeBytes: 100_000,
      backups: 1,
      node: () => node,
    });
    log("test").info("before");
    node = "web-2";
    log("test").info("after {n}", { n: 1 });
    await closeLogging();
    const lines = (await Deno.readTextFile(path)).trim().split("\n").map((l) => JSON.parse(l));
    assertEquals(lines.map((l) => [l.message, l.properties]), [
      ["before", {}],
      ["after 1", { n: 1, node: "web-2" }],
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

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

/** A log file sink writing each record's message as a line, in a new directory. */
async function bareSink(flushMs: number, name = "jobsmanager.log", maxSize = 1_000_000) {
  const dir = await Deno.makeTempDir({ prefix: "jm-log-" });
  const path = `${dir}/${name}`;
  const sink = logFileSink(path, {
    formatter: (record) => `${record.rawMessage}\n`,
    maxSize,
    backups: 1,
    flushMs,
  });
  return { dir, path, sink };
}

/** Wait until the file at `path` holds `text` (a missing file holds nothing). */
async function untilFileIs(path: string, text: string): Promise<void> {
  const read = () => Deno.readTextFile(path).catch(() => "");
  await waitFor(async () => await read() === text, {
    timeoutMs: 10_000,
    what: `${path} to hold ${JSON.stringify(text)}`,
    detail: async () => JSON.stringify(await read()),
  });
}

Deno.test("log file: each line is written within the flush interval, the service still running", async () => {
  const { dir, path, sink } = await bareSink(20);
  try {
    sink(record("first line"));
    await untilFileIs(path, "first line\n");
    sink(record("second line"));
    await untilFileIs(path, "first line\nsecond line\n");
  } finally {
    await sink[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("log file: a warning or an error is written at once, with the lines before it; the rest wait", async () => {
  // An hour: only the warning's write can put a line in the file while the test runs.
  const { dir, path, sink } = await bareSink(3_600_000);
  const at = (level: LogRecord["level"], message: string): LogRecord => ({
    ...record(message),
    level,
  });
  try {
    sink(record("run 1 started"));
    sink(at("warning", "run 1 lost"));
    sink(record("run 2 started"));
    await untilFileIs(path, "run 1 started\nrun 1 lost\nrun 2 started\n");
    sink(record("run 3 started"));
    sink(at("error", "cannot write a run record"));
    await untilFileIs(
      path,
      "run 1 started\nrun 1 lost\nrun 2 started\nrun 3 started\ncannot write a run record\n",
    );
    sink(record("run 4 started"));
    assertEquals(
      await Deno.readTextFile(path),
      "run 1 started\nrun 1 lost\nrun 2 started\nrun 3 started\ncannot write a run record\n",
      "an info line was written before its flush interval",
    );
  } finally {
    await sink[Symbol.asyncDispose]();
  }
  try {
    assertMatch(await Deno.readTextFile(path), /cannot write a run record\nrun 4 started\n$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("log file: lines logged during and after the close are written, in order, no timer left", async () => {
  const { dir, path, sink } = await bareSink(60_000);
  try {
    sink(record("before the close"));
    const closed = sink[Symbol.asyncDispose]();
    sink(record("during the close"));
    await closed;
    sink(record("after the close"));
    // The test's timer sanitizer fails it if a late line armed a flush.
    assertEquals(
      await Deno.readTextFile(path),
      "before the close\nduring the close\nafter the close\n",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("log file: removed, or its directory, while the service runs: made again at the next write", async () => {
  const { dir, path, sink } = await bareSink(20, "logs/jobsmanager.log");
  try {
    sink(record("first"));
    await untilFileIs(path, "first\n");
    await Deno.remove(path);
    sink(record("second"));
    await untilFileIs(path, "second\n");
    await Deno.remove(`${dir}/logs`, { recursive: true });
    sink(record("third"));
    await untilFileIs(path, "third\n");
    assertEquals(await mode(path), 0o600);
  } finally {
    await sink[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("log file: renamed away (logrotate): new lines go to a new file at the path", async () => {
  const { dir, path, sink } = await bareSink(20);
  try {
    sink(record("before"));
    await untilFileIs(path, "before\n");
    await Deno.rename(path, `${path}-20261202`);
    sink(record("after"));
    await untilFileIs(path, "after\n");
    assertEquals(await Deno.readTextFile(`${path}-20261202`), "before\n");
  } finally {
    await sink[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * `fn` with a sink whose path is a link to /dev/full (every write fails as
 * on a full disk) and what it says on stderr; that, once it is closed.
 */
async function onFullDisk(
  flushMs: number,
  fn: (path: string, sink: Sink & AsyncDisposable, errors: string[]) => void | Promise<void>,
): Promise<string[]> {
  const errors: string[] = [];
  const consoleError = console.error;
  console.error = (message: string) => errors.push(message);
  const dir = await Deno.makeTempDir({ prefix: "jm-log-" });
  const path = `${dir}/jobsmanager.log`;
  await Deno.symlink("/dev/full", path);
  const sink = logFileSink(path, {
    formatter: (record) => `${record.rawMessage}\n`,
    maxSize: 1_000_000,
    backups: 1,
    flushMs,
  });
  try {
    await fn(path, sink, errors);
  } finally {
    await sink[Symbol.asyncDispose]();
    console.error = consoleError;
    await Deno.remove(dir, { recursive: true });
  }
  return errors;
}

Deno.test("log file: lines a full disk refused are counted, and the count written first once it takes lines again", async () => {
  const errors = await onFullDisk(20, async (path, sink, errors) => {
    sink(record("one"));
    sink(record("two"));
    await waitFor(() => errors.length > 0, {
      timeoutMs: 10_000,
      what: "the failed write said",
      detail: () => errors,
    });
    // Room again: the path is a file the sink can write.
    await Deno.remove(path);
    sink(record("three"));
    const read = () => Deno.readTextFile(path).catch(() => "");
    await waitFor(async () => (await read()).endsWith("three\n"), {
      timeoutMs: 10_000,
      what: "the line after the full disk written",
      detail: read,
    });
    assertMatch(
      await read(),
      /^2 log lines were lost: the log file could not be written \(.+\)\nthree\n$/,
    );
  });
  assertEquals(errors.length, 2, errors.join("\n"));
  assertMatch(errors[0], /cannot write the log file .*jobsmanager\.log: .+; its lines are counted/);
  assertMatch(errors[1], /^jobsmanager: 2 log lines were lost: .+; it can be again$/);
});

Deno.test("log file: lines lost to a full disk until the service stops are counted on stderr at the close", async () => {
  const errors = await onFullDisk(60_000, (_path, sink) => {
    for (const line of ["one", "two", "three"]) sink(record(line));
  });
  assertEquals(errors.length, 2, errors.join("\n"));
  assertMatch(
    errors[1],
    /^jobsmanager: 3 log lines were lost: the log file could not be written \(.+\)$/,
  );
});

Deno.test("log file: a write a full disk cut short leaves whole lines only, and counts the lines it did not write", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-log-" });
  try {
    const path = `${dir}/jobsmanager.log`;
    // 14 lines of 100 bytes in one write, by a process that may write files of 512 bytes only:
    // the write stops in the middle of the sixth line.
    const script = `${dir}/fill.ts`;
    await Deno.writeTextFile(
      script,
      `import { logFileSink } from ${
        JSON.stringify(import.meta.resolve("../src/daemon/log_file.ts"))
      };
const sink = logFileSink(${JSON.stringify(path)}, {
  formatter: (record) => record.rawMessage + "\\n",
  maxSize: 1_000_000,
  backups: 1,
  flushMs: 60_000,
});
for (let i = 1; i <= 14; i++) {
  const line = ("line " + i).padEnd(99, ".");
  sink({ category: [], level: "info", message: [line], rawMessage: line, properties: {}, timestamp: 0 });
}
await sink[Symbol.asyncDispose]();
`,
    );
    const out = await new Deno.Command("/bin/sh", {
      // SIGXFSZ ignored: the write fails with EFBIG instead of killing the process.
      args: [
        "-c",
        `trap '' XFSZ; ulimit -f 1; exec "$0" run -A --no-check "$1"`,
        Deno.execPath(),
        script,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 0, stderr);
    const lines = (await Deno.readTextFile(path)).split("\n");
    assertEquals(lines.length, 6, lines.join("\n"));
    assertEquals(
      lines.slice(0, 5).map((l) => l.replace(/\.+$/, "")),
      [1, 2, 3, 4, 5].map((i) => `line ${i}`),
    );
    assertEquals(lines[5], "");
    assertMatch(stderr, /9 log lines were lost: the log file could not be written/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("log file: after a rotation that failed the next write opens the file again: once it can rotate, the log goes on", async () => {
  const errors: string[] = [];
  const consoleError = console.error;
  console.error = (message: string) => errors.push(message);
  // Lines of 10 bytes, rotated past 15: every second line rotates.
  const { dir, path, sink } = await bareSink(20, "jobsmanager.log", 15);
  try {
    // A directory with a file in it where the rotated file goes: the rename fails.
    await Deno.mkdir(`${path}.1/blocked`, { recursive: true });
    sink(record("line 1 .."));
    await untilFileIs(path, "line 1 ..\n");
    sink(record("line 2 .."));
    await waitFor(() => errors.length > 0, {
      timeoutMs: 10_000,
      what: "the failed rotation reported",
      detail: () => errors,
    });
    await Deno.remove(`${path}.1`, { recursive: true });
    sink(record("line 3 .."));
    await untilFileIs(path, "line 3 ..\n");
    // The line the failed rotation cost is counted, first thing written after.
    assertMatch(
      await Deno.readTextFile(`${path}.1`),
      /^1 log line was lost: the log file could not be written \(.*\)\n$/,
    );
  } finally {
    await sink[Symbol.asyncDispose]();
    console.error = consoleError;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("log file: two services on one host share it without rotating it against each other", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-log-" });
  try {
    const path = `${dir}/jobsmanager.log`;
    const options = {
      formatter: (record: LogRecord) => `${record.rawMessage}\n`,
      maxSize: 1000,
      backups: 3,
      flushMs: 1,
    };
    const a = logFileSink(path, options);
    const b = logFileSink(path, options);
    const files = [path, `${path}.1`, `${path}.2`, `${path}.3`];
    const lines = async () =>
      (await Promise.all(files.map((f) => Deno.readTextFile(f).catch(() => "")))).join("");
    // 100 bytes a line, 10 to a file, written in turn by each: four files' worth.
    for (let i = 0; i < 40; i++) {
      const line = `line ${i} `.padEnd(99, ".");
      (i % 2 === 0 ? a : b)(record(line));
      await waitFor(async () => (await lines()).includes(line), {
        timeoutMs: 5000,
        intervalMs: 2,
        what: `line ${i} to be written`,
      });
    }
    const sizes = await Promise.all(files.map(async (f) => (await Deno.stat(f)).size));
    assertEquals(sizes, [1000, 1000, 1000, 1000], "each file rotated at the size, none twice");
    const kept = (await lines()).split("\n").filter((l) => l !== "").length;
    assertEquals(kept, 40, "every line kept");
    await a[Symbol.asyncDispose]();
    await b[Symbol.asyncDispose]();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("log file: a disk that takes the count of lost lines but not the line after it is not said to take lines again", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-log-" });
  try {
    const path = `${dir}/jobsmanager.log`;
    // Files of 512 bytes at most; lines of 200: the third is cut short and removed (400 bytes
    // left), after which the count of lost lines (about 90 bytes) fits, and no line after it.
    const script = `${dir}/full.ts`;
    await Deno.writeTextFile(
      script,
      `import { logFileSink } from ${
        JSON.stringify(import.meta.resolve("../src/daemon/log_file.ts"))
      };
const errors = [];
console.error = (message) => errors.push(message);
const path = ${JSON.stringify(path)};
const sink = logFileSink(path, {
  formatter: (record) => record.rawMessage + "\\n",
  maxSize: 1_000_000,
  backups: 1,
  flushMs: 1,
});
const line = (i) => {
  const text = ("line " + i).padEnd(199, ".");
  sink({ category: [], level: "info", message: [text], rawMessage: text, properties: {}, timestamp: 0 });
};
const size = async () => (await Deno.stat(path)).size;
async function until(done) {
  while (!await done()) await new Promise((resolve) => setTimeout(resolve, 5));
}
for (let i = 1; i <= 3; i++) line(i);
await until(async () => errors.length > 0 && await size() === 400);
line(4);
await until(async () => await size() > 400);
await sink[Symbol.asyncDispose]();
console.log(JSON.stringify(errors));
`,
    );
    const out = await new Deno.Command("/bin/sh", {
      // SIGXFSZ ignored: the write fails with EFBIG instead of killing the process.
      args: [
        "-c",
        `trap '' XFSZ; ulimit -f 1; exec "$0" run -A --no-check "$1"`,
        Deno.execPath(),
        script,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decode = (b: Uint8Array) => new TextDecoder().decode(b);
    assertEquals(out.code, 0, decode(out.stderr));
    const errors: string[] = JSON.parse(decode(out.stdout));
    const file = await Deno.readTextFile(path);
    assertMatch(file, /\n1 log line was lost: the log file could not be written \(.+\)\n$/);
    assertEquals(errors.length, 2, errors.join("\n"));
    assertMatch(errors[0], /cannot write the log file .*: .+; its lines are counted/);
    // Not "…; it can be again": line 4 was lost too.
    assertMatch(
      errors[1],
      /^jobsmanager: 2 log lines were lost: the log file could not be written/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("log file: one that cannot be made is an error naming log.path", async () => {
  const blocker = await Deno.makeTempFile();
  try {
    const error = await assertRejects(() =>
      setupLogging({
        consoleLevel: "fatal",
        fileLevel: "info",
        file: `${blocker}/logs/jobsmanager.log`,
        maxSizeBytes: 1000,
        backups: 1,
      })
    );
    assertMatch(
      (error as Error).message,
      /^cannot open the log file .+\/logs\/jobsmanager\.log \(log\.path and log\.file; \$JM_LOG_PATH sets log\.path\): .*mkdir.*; make its directory writable by this user, or set log\.path to another \(empty: no log file\)$/,
    );
  } finally {
    await closeLogging();
    await Deno.remove(blocker);
  }
});

/**
 * A log file on a disk that does not return writes (a hung network mount):
 * a FIFO whose reader reads only when `fn` drains it, read into `text`.
 */
async function onHungDisk(
  options: { maxWaitingBytes: number; disposeWaitMs: number },
  fn: (
    sink: Sink & AsyncDisposable,
    drained: { text: string; drain: () => Promise<void> },
    errors: string[],
  ) => Promise<void>,
): Promise<void> {
  const errors: string[] = [];
  const consoleError = console.error;
  console.error = (message: string) => errors.push(message);
  const dir = await Deno.makeTempDir({ prefix: "jm-log-" });
  const path = `${dir}/jobsmanager.log`;
  const made = await new Deno.Command("mkfifo", { args: [path] }).output();
  assert(made.success, "mkfifo");
  const opening = Deno.open(path, { read: true });
  const sink = logFileSink(path, {
    formatter: (record) => `${record.rawMessage}\n`,
    maxSize: 100_000_000,
    backups: 1,
    flushMs: 5,
    ...options,
  });
  const reader = await opening;
  let draining: Promise<void> | undefined;
  const drained = {
    text: "",
    /** Read what comes, until every writer has closed the FIFO. */
    drain: () =>
      draining ??= (async () => {
        const decoder = new TextDecoder();
        const buffer = new Uint8Array(1 << 16);
        for (let n = await reader.read(buffer); n !== null; n = await reader.read(buffer)) {
          drained.text += decoder.decode(buffer.subarray(0, n), { stream: true });
        }
      })(),
  };
  try {
    await fn(sink, drained, errors);
  } finally {
    console.error = consoleError;
    const closing = sink[Symbol.asyncDispose]();
    await drained.drain();
    await closing;
    reader.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("log file: a disk that does not take writes holds a bounded backlog; the lines dropped are counted once it does", async () => {
  const line = (i: number) => `line ${String(i).padStart(5, "0")} ${"x".repeat(88)}`;
  await onHungDisk({ maxWaitingBytes: 32 * 1024, disposeWaitMs: 60_000 }, async (sink, drained) => {
    // The pipe takes 64 KiB before its writes stop returning; 4,000 lines are 400 KB.
    for (let i = 0; i < 4000; i++) sink(record(line(i)));
    void drained.drain();
    let afters = 0;
    await waitFor(() => {
      if (drained.text.includes("after\n")) return true;
      afters++;
      sink(record("after"));
      return false;
    }, {
      timeoutMs: 20_000,
      what: "a line logged once the disk took writes again",
      detail: () => drained.text.slice(-300),
    });
    const kept = drained.text.split("\n").filter((l) => l.startsWith("line "));
    assert(kept.length > 0, "the lines before the backlog's bound are written");
    assert(
      kept.length <= (64 + 32) * 1024 / 100 + 1,
      `at most the pipe's 64 KiB and the 32 KiB bound were held; ${kept.length} lines were`,
    );
    assertEquals(kept, Array.from({ length: kept.length }, (_, i) => line(i)));
    const said = drained.text.match(
      /\n(\d+) log lines were lost: the log file could not be written \(it had not taken the 32 KiB of lines before them \(a slow or hung disk\)\)\n/,
    );
    assert(said !== null, `the lost lines are counted in the file: ${drained.text.slice(-400)}`);
    const lost = Number(said[1]);
    assert(
      lost >= 4000 - kept.length && lost <= 4000 - kept.length + afters,
      `${lost} lines said lost; ${kept.length} of 4,000 kept, ${afters} more logged`,
    );
  });
});

Deno.test("log file: a stop waits for a disk that does not take writes only as long as it is told, and says what it did not write", async () => {
  await onHungDisk(
    { maxWaitingBytes: 1 << 20, disposeWaitMs: 50 },
    async (sink, _drained, errors) => {
      for (let i = 0; i < 1000; i++) sink(record(`line ${i} ${"x".repeat(200)}`));
      let closed = false;
      const closing = sink[Symbol.asyncDispose]().then(() => closed = true);
      await waitFor(() => closed, {
        timeoutMs: 20_000,
        what: "the close to give up on the hung disk",
        detail: () => errors,
      });
      await closing;
      // Logged after such a close, a line is not written: a write to the hung disk would hang here.
      sink(record("after the close"));
      assert(
        errors.some((e) =>
          /^jobsmanager: the log file .*jobsmanager\.log did not finish writing its last \d+ lines in 50 ms \(a slow or hung disk\); they may not be in it$/
            .test(e)
        ),
        errors.join("\n"),
      );
    },
  );
});

Deno.test("log file: lines dropped while a close waits on a slow disk are counted in the file", async () => {
  const line = (i: number) => `line ${String(i).padStart(5, "0")} ${"x".repeat(88)}`;
  await onHungDisk(
    { maxWaitingBytes: 32 * 1024, disposeWaitMs: 60_000 },
    async (sink, drained) => {
      for (let i = 0; i < 1000; i++) sink(record(line(i)));
      const closing = sink[Symbol.asyncDispose]();
      // Logged as the service stops, beyond the bound: dropped.
      for (let i = 1000; i < 5000; i++) sink(record(line(i)));
      await drained.drain();
      await closing;
      const kept = drained.text.split("\n").filter((l) => l.startsWith("line ")).length;
      const counts = [...drained.text.matchAll(/\n(\d+) log lines were lost: /g)].map((m) =>
        Number(m[1])
      );
      // With no line written after it, each count says the lines lost so far: the last, all.
      assertEquals(kept + counts.at(-1)!, 5000, `${kept} kept, counted lost: ${counts}`);
    },
  );
});

Deno.test("log file: lines dropped before a close gave up on a hung disk are counted on stderr", async () => {
  await onHungDisk(
    { maxWaitingBytes: 256 * 1024, disposeWaitMs: 50 },
    async (sink, _drained, errors) => {
      // 800 KB: the first write (64 KiB and a line) fills the pipe and hangs; 256 KiB wait.
      for (let i = 0; i < 4000; i++) sink(record(`line ${i} ${"x".repeat(200)}`));
      await sink[Symbol.asyncDispose]();
      const said = errors.map((e) =>
        e.match(
          /^jobsmanager: (\d+) log lines were lost: the log file could not be written \(it had not taken the 256 KiB of lines before them/,
        )
      ).find((m) => m !== null);
      assert(said, errors.join("\n"));
      assert(Number(said[1]) > 2000, errors.join("\n"));
    },
  );
});

Deno.test("log file: a path whose open does not return (a hung mount) holds no thread the service needs", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-log-" });
  const path = `${dir}/jobsmanager.log`;
  // The file is replaced by a FIFO with no reader: opening it to write waits, as on a hung mount.
  const script = `${dir}/hang.ts`;
  await Deno.writeTextFile(
    script,
    `import { logFileSink } from ${
      JSON.stringify(import.meta.resolve("../src/daemon/log_file.ts"))
    };
const path = ${JSON.stringify(path)};
const sink = logFileSink(path, {
  formatter: (record) => record.rawMessage + "\\n",
  maxSize: 1_000_000,
  backups: 1,
  flushMs: 1,
});
await Deno.remove(path);
const made = await new Deno.Command("mkfifo", { args: [path] }).output();
if (!made.success) throw new Error("mkfifo failed");
sink({ category: [], level: "info", message: ["through the fifo"], rawMessage: "through the fifo", properties: {}, timestamp: 0 });
const say = (text: string) => Deno.stdout.writeSync(new TextEncoder().encode(text + "\\n"));
say("logged");
const decoder = new TextDecoder();
for await (const chunk of Deno.stdin.readable) {
  const asked = decoder.decode(chunk);
  if (asked.includes("ping")) say("pong");
  if (asked.includes("end")) break;
}
await sink[Symbol.asyncDispose]();
`,
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-check", script],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  let err = "";
  const reading = Promise.all([
    (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of child.stdout) out += decoder.decode(chunk, { stream: true });
    })(),
    (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of child.stderr) err += decoder.decode(chunk, { stream: true });
    })(),
  ]);
  const stdin = child.stdin.getWriter();
  const threads = async () => {
    const states: string[] = [];
    for await (const task of Deno.readDir(`/proc/${child.pid}/task`)) {
      const at = `/proc/${child.pid}/task/${task.name}`;
      try {
        const wchan = await Deno.readTextFile(`${at}/wchan`);
        const call = (await Deno.readTextFile(`${at}/syscall`)).split(" ")[0];
        states.push(`${task.name}: ${wchan} (syscall ${call})`);
      } catch {
        // The thread ended.
      }
    }
    return states;
  };
  let reader: Deno.FsFile | undefined;
  try {
    await waitFor(() => out.includes("logged\n"), {
      timeoutMs: 30_000,
      what: "the line logged with a FIFO at the path",
      detail: () => out,
    });
    await waitFor(
      async () => (await threads()).some((t) => /wait_for_partner|syscall (2|257)\)/.test(t)),
      {
        timeoutMs: 30_000,
        what: "a thread waiting in the FIFO's open",
        detail: async () => (await threads()).join("\n"),
      },
    );
    await stdin.write(new TextEncoder().encode("ping\n"));
    await waitFor(() => out.includes("pong\n"), {
      timeoutMs: 20_000,
      what: "the process to answer while the log file's open waits: its own thread must be free",
      detail: async () =>
        `output: ${JSON.stringify(out)}\nthreads:\n${(await threads()).join("\n")}`,
    });
    // The mount comes back: the line goes in.
    reader = await Deno.open(path, { read: true });
    const buffer = new Uint8Array(1024);
    const n = await reader.read(buffer);
    assertEquals(new TextDecoder().decode(buffer.subarray(0, n ?? 0)), "through the fifo\n");
    await stdin.write(new TextEncoder().encode("end\n"));
    const status = await child.status;
    await reading;
    assertEquals(status.code, 0, err);
  } finally {
    // A child held in the open (the failure) is ended there: a kill ends the wait.
    try {
      child.kill("SIGKILL");
    } catch {
      // It ended.
    }
    await child.status;
    await stdin.close().catch(() => {});
    await reading;
    reader?.close();
    await Deno.remove(dir, { recursive: true });
  }
});
