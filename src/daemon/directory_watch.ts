/**
 * Events in one directory as they happen: libc's inotify, through FFI.
 * `serve` watches a SQLite database's directory for writes
 * (sqlite_file.ts) and the change-notice directory for notices of
 * writes to a MySQL database (change_notices.ts); an idle service then
 * wakes for nothing.
 *
 * Not `Deno.watchFs`: it opens and closes each file an event names, and
 * closing any descriptor of a SQLite database in this process drops the
 * POSIX locks SQLite holds on it, after which another process closing its
 * connection deletes the WAL under the service (seen in tests: the
 * service's writes went to a deleted file).
 */

const LIBC = {
  inotify_init1: { parameters: ["i32"], result: "i32" },
  inotify_add_watch: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  inotify_rm_watch: { parameters: ["i32", "i32"], result: "i32" },
  // On a thread of the runtime's pool: it blocks until events come.
  read: { parameters: ["i32", "buffer", "usize"], result: "isize", nonblocking: true },
  close: { parameters: ["i32"], result: "i32" },
} as const;

/** inotify's event bits (linux/inotify.h). */
export const IN = {
  MODIFY: 0x2,
  MOVED_FROM: 0x40,
  MOVED_TO: 0x80,
  CREATE: 0x100,
  DELETE: 0x200,
  DELETE_SELF: 0x400,
  MOVE_SELF: 0x800,
  /** Events were lost: anything may have happened. */
  Q_OVERFLOW: 0x4000,
  /** The watch is gone: the directory was deleted or unmounted, or `close()` was called. */
  IGNORED: 0x8000,
} as const;

const IN_CLOEXEC = 0o2000000;
/** Watch only a directory, and not one a symbolic link names (change_notices.ts checked the path, not a link). */
const IN_ONLYDIR = 0x01000000;
const IN_DONT_FOLLOW = 0x02000000;
/** struct inotify_event: wd, mask, cookie, len, then `len` bytes of name. */
const EVENT_HEADER = 16;
/** Failed reads in a row before the watch gives up (a signal may interrupt one). */
const READ_FAILURES = 3;

/** One event: its bits (`IN`) and the name of the file in the directory ("" for the directory). */
export interface DirectoryEvent {
  mask: number;
  name: string;
}

/**
 * The events of `mask` in one directory, handed over as they are read
 * (one batch per read). `ended` resolves when the watch stops reporting:
 * its error, or null after `close()`. The batch that holds IN.IGNORED,
 * when the directory went away, is handed over before `ended` resolves.
 */
export class DirectoryWatch {
  readonly ended: Promise<Error | null>;
  private closed = false;

  private constructor(
    private readonly libc: Deno.DynamicLibrary<typeof LIBC>,
    private readonly fd: number,
    private readonly wd: number,
    on: (events: DirectoryEvent[]) => void,
  ) {
    this.ended = this.report(on).finally(() => {
      libc.symbols.close(fd);
      libc.close();
    });
  }

  /**
   * Watch directory `dir` for the events of `mask`; throws, saying why,
   * when it cannot be watched (no libc to call, no inotify watches left,
   * no such directory or no right to read it).
   */
  static start(dir: string, mask: number, on: (events: DirectoryEvent[]) => void): DirectoryWatch {
    const libc = Deno.dlopen("libc.so.6", LIBC);
    const fd = libc.symbols.inotify_init1(IN_CLOEXEC);
    if (fd < 0) {
      libc.close();
      throw new Error("inotify_init1 failed (fs.inotify.max_user_instances reached?)");
    }
    const wd = libc.symbols.inotify_add_watch(
      fd,
      new TextEncoder().encode(`${dir}\0`),
      mask | IN_ONLYDIR | IN_DONT_FOLLOW,
    );
    if (wd < 0) {
      libc.symbols.close(fd);
      libc.close();
      throw new Error(
        `inotify_add_watch on ${dir} failed (fs.inotify.max_user_watches reached, the directory cannot be read, or it is now a symbolic link?)`,
      );
    }
    return new DirectoryWatch(libc, fd, wd, on);
  }

  /** Stop reporting; `ended` then resolves null. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    // The kernel answers the pending read with IN_IGNORED, which ends the loop.
    this.libc.symbols.inotify_rm_watch(this.fd, this.wd);
  }

  private async report(on: (events: DirectoryEvent[]) => void): Promise<Error | null> {
    const buffer = new Uint8Array(64 * 1024);
    const view = new DataView(buffer.buffer);
    const decoder = new TextDecoder();
    let failures = 0;
    for (;;) {
      const n = Number(await this.libc.symbols.read(this.fd, buffer, BigInt(buffer.length)));
      if (n <= 0) {
        if (this.closed) return null;
        if (++failures < READ_FAILURES) continue;
        return new Error(`reading inotify events failed ${READ_FAILURES} times in a row`);
      }
      failures = 0;
      const events: DirectoryEvent[] = [];
      let ignored = false;
      for (let at = 0; at < n;) {
        const mask = view.getUint32(at + 4, true);
        const length = view.getUint32(at + 12, true);
        const name = decoder.decode(buffer.subarray(at + EVENT_HEADER, at + EVENT_HEADER + length))
          .replace(/\0+$/, "");
        at += EVENT_HEADER + length;
        events.push({ mask, name });
        if (mask & IN.IGNORED) ignored = true;
      }
      if (ignored && this.closed) return null;
      on(events);
      if (ignored) return new Error("the directory is no longer watched (deleted or unmounted)");
    }
  }
}
