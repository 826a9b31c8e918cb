/**
 * The log file: formatted lines appended to `path`, which is rotated when
 * it would pass `maxSize` bytes (`path` → `path.1` → … `path.N`, the
 * oldest deleted). Every file is created readable by its owner only: the
 * lines hold commands, ids and errors. Lines wait in memory and are
 * written `flushMs` after the first of them (or once `BUFFER_BYTES` wait),
 * so a busy service never waits on the disk, `tail -f` keeps up, and an
 * idle one sets no timer. A warning or an error is written at once, with
 * the lines before it (behind the write under way, in one write with those
 * logged meanwhile): the lines before a crash (`kill -9`, the OOM killer)
 * that say most are in the file. A file renamed away (logrotate) or removed, its
 * directory too, is made again at the next write.
 *
 * Two services on one host (no configuration needed, README) share the
 * file: its size is read from the file at each write, not counted from
 * this process's own lines, and a rotation holds an exclusive flock on the
 * file it moves and moves it only while the path still names it, so one
 * service does not rotate away the file the other has just started.
 *
 * A disk that does not return a write (a hung network mount) holds at most
 * `maxWaitingBytes` of lines: later ones are dropped and counted, as lines
 * of a failed write are, and a stop waits `disposeWaitMs` at most for it.
 */
import type { LogLevel, LogRecord, Sink, TextFormatter } from "@logtape/logtape";

export interface LogFileOptions {
  formatter: TextFormatter;
  maxSize: number;
  /** Rotated files kept: 0 = none (the file starts again empty). */
  backups: number;
  flushMs: number;
  /**
   * Lines waiting for writes not done (their length in UTF-16 units, bytes
   * for ASCII), beyond which more are dropped, and counted.
   */
  maxWaitingBytes?: number;
  /** How long disposing waits for the writes still going. */
  disposeWaitMs?: number;
}

const BUFFER_BYTES = 64 * 1024;
/** The levels whose lines are written at once, not `flushMs` later. */
const AT_ONCE: ReadonlySet<LogLevel> = new Set(["warning", "error", "fatal"]);
const MAX_WAITING_BYTES = 4 << 20;
const DISPOSE_WAIT_MS = 5000;
const FILE_MODE = 0o600;
const OPEN_OPTIONS: Deno.OpenOptions = { create: true, append: true, mode: FILE_MODE };

export function logFileSink(path: string, options: LogFileOptions): Sink & AsyncDisposable {
  const encoder = new TextEncoder();
  /** The open file; null after a rotation, or a failure, until the next write opens `path`. */
  let file: Deno.FsFile | null = null;
  let size = 0;
  let buffer: string[] = [];
  let buffered = 0;
  /** Length and count of the lines buffered or handed to writes not done yet. */
  let waiting = 0;
  let waitingLines = 0;
  /** Lines dropped since the last handed to a write; whether stderr was told, since the last count written. */
  let dropped = 0;
  let dropping = false;
  /** Lines dropped and not yet in a count written; of `lost`, those that were dropped. */
  let droppedUnsaid = 0;
  let lostDropped = 0;
  const maxWaiting = options.maxWaitingBytes ?? MAX_WAITING_BYTES;
  let writing: Promise<void> = Promise.resolve();
  let timer: ReturnType<typeof setTimeout> | undefined;
  /** A flush is due once the write under way is done (a warning waits). */
  let due = false;
  /** Closing: lines go straight behind what is being written, with no timer. */
  let closing = false;
  /** Closed: a line is appended at once, unless the disk did not take the last ones (`hung`). */
  let closed = false;
  let hung = false;

  const close = () => {
    file?.close();
    file = null;
  };

  /**
   * The file at `path`, opened (its directory made) unless the open one is
   * still there: logrotate may have renamed it, someone removed it or its
   * directory. Lines written on would go to a file nobody reads, and the
   * rotation's rename would fail. Asynchronous, as every use of the disk
   * after the start: a hung mount holds a thread of the pool, not the
   * scheduler's.
   */
  const opened = async (): Promise<Deno.FsFile> => {
    // The close gave up on the disk: a write still going when it came back opens nothing.
    if (hung) throw new Error("the log file was closed");
    if (file !== null) {
      try {
        const [now, open] = await Promise.all([Deno.stat(path), file.stat()]);
        if (now.ino === open.ino) {
          // Another service on this host may append to it too.
          size = now.size;
          return file;
        }
      } catch {
        // Gone from the path.
      }
      close();
    }
    await Deno.mkdir(dirOf(path), { recursive: true });
    const now = await Deno.open(path, OPEN_OPTIONS);
    if (hung) {
      now.close();
      throw new Error("the log file was closed");
    }
    file = now;
    size = (await now.stat()).size;
    return now;
  };
  // At the start, at once: a file that cannot be made stops the start (README).
  Deno.mkdirSync(dirOf(path), { recursive: true });
  file = Deno.openSync(path, OPEN_OPTIONS);
  size = file.statSync().size;

  /**
   * Move the file aside; the next write opens a new one (also when this
   * failed, or another service on this host moved it first).
   */
  const rotate = async () => {
    const from = file;
    if (from === null) return;
    await from.lock(true);
    try {
      if (await namesFile(path, from)) await moveAside();
    } finally {
      await from.unlock();
      close();
    }
  };

  const moveAside = async () => {
    if (options.backups === 0) {
      await Deno.remove(path);
    } else {
      for (let i = options.backups - 1; i > 0; i--) {
        try {
          await Deno.rename(`${path}.${i}`, `${path}.${i + 1}`);
        } catch {
          // Fewer rotated files than kept so far.
        }
      }
      await Deno.rename(path, `${path}.1`);
    }
  };

  /**
   * Append `chunk`'s lines to `to`; returns how many went in whole (and
   * why the rest did not). A write the disk cut short leaves no part of a
   * line: the file is cut back to the end of the last whole one.
   */
  const append = async (
    to: Deno.FsFile,
    chunk: string[],
    bytes = encoder.encode(chunk.join("")),
  ): Promise<{ whole: number; failed?: unknown }> => {
    let done = 0;
    try {
      while (done < bytes.length) done += await to.write(bytes.subarray(done));
      size += done;
      return { whole: chunk.length };
    } catch (failed) {
      let whole = 0;
      let end = 0;
      for (const line of chunk) {
        const length = encoder.encode(line).length;
        if (end + length > done) break;
        end += length;
        whole++;
      }
      try {
        if (end < done) await to.truncate(size + end);
      } catch {
        // The part stays; the count is still right.
      }
      size += end;
      return { whole, failed };
    }
  };

  /** Lines lost to writes that failed since the last that did not, and the first failure. */
  let lost = 0;
  let failure = "";
  const lostLines = () =>
    `${
      lost === 1 ? "1 log line was" : `${lost} log lines were`
    } lost: the log file could not be written (${failure})`;

  /**
   * Write `lines`, rotating between two lines where the next would pass
   * the size; returns how many were written (all but those of a write that
   * failed, then `failed` holds why).
   */
  const write = async (lines: string[]): Promise<{ written: number; failed?: unknown }> => {
    let written = 0;
    let chunk: string[] = [];
    let chunkBytes = 0;
    try {
      let to = await opened();
      const all = encoder.encode(lines.join(""));
      // Most writes rotate nothing: their lines are encoded once, not once more each to be
      // measured (0.4 KB of garbage a line, 4 MB a second in a flood of 10,000 lines).
      if (size + all.length <= options.maxSize) {
        const { whole, failed } = await append(to, lines, all);
        return { written: whole, failed };
      }
      for (const line of lines) {
        const bytes = encoder.encode(line).length;
        if (size + chunkBytes > 0 && size + chunkBytes + bytes > options.maxSize) {
          const { whole, failed } = await append(to, chunk);
          written += whole;
          if (failed !== undefined) return { written, failed };
          await rotate();
          to = await opened();
          chunk = [];
          chunkBytes = 0;
        }
        chunk.push(line);
        chunkBytes += bytes;
      }
      const { whole, failed } = await append(to, chunk);
      return { written: written + whole, failed };
    } catch (error) {
      return { written, failed: error };
    }
  };

  /**
   * Write `lines`. A failed write (a full disk) costs its lines, not the
   * service: said on stderr once, counted, and the count written first, to
   * the file and stderr, by the first write that works again. The disk
   * takes lines again only once a line after the count went in: a failed
   * write's cut-off part, removed, may leave just room for the count, on a
   * disk still full. Until then the count goes on (a count written
   * meanwhile says the lines lost so far, the next one those too).
   */
  const writeCounting = async (lines: string[], droppedBefore: number) => {
    // Behind a write the close gave up on: the file is closed, and must not be opened again.
    if (hung) return;
    if (droppedBefore > 0) {
      if (lost === 0) failure = dropReason();
      lost += droppedBefore;
      lostDropped += droppedBefore;
    }
    const report = lost === 0 ? null : lostLines();
    const batch = report === null ? lines : [options.formatter(lostRecord(report)), ...lines];
    const { written, failed } = await write(batch);
    // What the close gave up on is said there, not as a failure of its own.
    if (hung) return;
    const linesWritten = report === null ? written : Math.max(0, written - 1);
    if (report !== null && linesWritten > 0) {
      console.error(`jobsmanager: ${report}; it can be again`);
      lost = 0;
      droppedUnsaid -= lostDropped;
      lostDropped = 0;
      dropping = false;
    }
    if (failed === undefined) return;
    if (lost === 0) {
      failure = String(failed);
      console.error(
        `jobsmanager: cannot write the log file ${path}: ${failure}; its lines are counted until it can be written again`,
      );
    }
    lost += lines.length - linesWritten;
  };

  /** Write what waits, after what is being written. */
  const flush = (): Promise<void> => {
    clearTimeout(timer);
    timer = undefined;
    if (buffer.length === 0 && dropped === 0) return writing;
    const lines = buffer;
    const length = buffered;
    const droppedBefore = dropped;
    buffer = [];
    buffered = 0;
    dropped = 0;
    writing = writing.then(() => writeCounting(lines, droppedBefore)).finally(() => {
      waiting -= length;
      waitingLines -= lines.length;
    });
    return writing;
  };

  const dropReason = () =>
    `it had not taken the ${
      (maxWaiting / 1024).toFixed(0)
    } KiB of lines before them (a slow or hung disk)`;

  /**
   * A line dropped: the disk has not taken the lines before it. Their
   * count goes in front of the lines logged after it (what waits is handed
   * on first), said on stderr at the first since the disk last took lines.
   */
  const drop = () => {
    if (buffer.length > 0) flush();
    droppedUnsaid++;
    if (!dropping && lost === 0) {
      dropping = true;
      console.error(
        `jobsmanager: the log file ${path} has not taken the last ${
          (maxWaiting / 1024).toFixed(0)
        } KiB of lines; later lines are counted until it does`,
      );
    }
    dropped++;
  };

  const sink = (record: LogRecord) => {
    const line = options.formatter(record);
    // A line logged as the service exits, during or after the close: no
    // later flush would write it, and a timer would hold the exit.
    // After a disk that hung the close, a write could hold the exit: those go to stderr only (at
    // or above its level).
    if (closed) return hung ? undefined : appendNow(path, encoder.encode(line));
    if (waiting + line.length > maxWaiting) return drop();
    if (!closing) timer ??= setTimeout(flush, options.flushMs);
    buffer.push(line);
    buffered += line.length;
    waiting += line.length;
    waitingLines++;
    if (closing || buffered >= BUFFER_BYTES) flush();
    else if (AT_ONCE.has(record.level) && !due) {
      due = true;
      // Once the write under way is done: what is logged until then goes in one write with it.
      const go = () => {
        due = false;
        flush();
      };
      writing.then(go, go);
    }
  };
  /** The close: what waits is written, `disposeWaitMs` at most. */
  const dispose = async () => {
    closing = true;
    flush();
    // Lines logged while it waited chained more writes behind it: those too.
    const drained = (async () => {
      for (let last = writing;; last = writing) {
        await last;
        // The count of lines dropped meanwhile goes in too.
        if (dropped > 0) flush();
        if (last === writing) return true;
      }
    })();
    const waitMs = options.disposeWaitMs ?? DISPOSE_WAIT_MS;
    let giveUp: ReturnType<typeof setTimeout> | undefined;
    const waited = new Promise<false>((resolve) => {
      giveUp = setTimeout(() => resolve(false), waitMs);
    });
    const done = await Promise.race([drained, waited]);
    clearTimeout(giveUp);
    if (!done) {
      hung = true;
      console.error(
        `jobsmanager: the log file ${path} did not finish writing its last ${waitingLines} lines in ${waitMs} ms (a slow or hung disk); they may not be in it`,
      );
    }
    closed = true;
    close();
    // Lost to failed writes, and dropped, and in no count written.
    const unsaid = lost - lostDropped + droppedUnsaid;
    if (unsaid > 0) {
      lost = unsaid;
      failure ||= dropReason();
      console.error(`jobsmanager: ${lostLines()}`);
    }
  };
  let disposed: Promise<void> | undefined;
  return Object.assign(sink, {
    [Symbol.asyncDispose]: () => disposed ??= dispose(),
  });
}

/** The record that says how many lines were lost. */
function lostRecord(message: string): LogRecord {
  return {
    category: ["jobsmanager", "log"],
    level: "warning",
    message: [message],
    rawMessage: message,
    properties: {},
    timestamp: Date.now(),
  };
}

function appendNow(path: string, bytes: Uint8Array): void {
  try {
    const file = Deno.openSync(path, OPEN_OPTIONS);
    try {
      for (let offset = 0; offset < bytes.length;) offset += file.writeSync(bytes.subarray(offset));
    } finally {
      file.close();
    }
  } catch (error) {
    console.error(`jobsmanager: cannot write the log file ${path}: ${error}`);
  }
}

/** `path`'s directory, made where it is missing (the first start, or removed since). */
function dirOf(path: string): string {
  const dir = path.replace(/\/[^/]*$/, "");
  if (dir === path) return ".";
  return dir === "" ? "/" : dir;
}

/** Whether `path` still names `file` (not when it was moved away or removed). */
async function namesFile(path: string, file: Deno.FsFile): Promise<boolean> {
  try {
    const [named, open] = await Promise.all([Deno.stat(path), file.stat()]);
    return named.ino === open.ino;
  } catch {
    return false;
  }
}
