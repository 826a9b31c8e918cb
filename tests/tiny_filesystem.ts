/**
 * A small tmpfs of a test's own, to fill up or remount read-only for real:
 * SQLite on it then fails as it does on a full disk or a read-only mount.
 * Mounting needs root; without it, tests skip with one line (`skipLine`).
 */
import { defaultSettings } from "../src/config/config.ts";
import { resolveTarget } from "../src/config/database.ts";
import { openStore } from "../src/store/open.ts";
import { type TestDatabase, waitFor } from "./helpers.ts";

export const ROOT = Deno.uid() === 0;

/** One ignored test naming what is skipped, when not root. */
export function skipLine(what: string): void {
  if (ROOT) return;
  Deno.test({
    name: `not root: ${what} skipped (they mount a tmpfs: run the tests as root, as CI does)`,
    ignore: true,
    fn() {},
  });
}

async function run(...args: string[]): Promise<void> {
  const out = await new Deno.Command(args[0], { args: args.slice(1), stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

export class TinyFilesystem implements AsyncDisposable {
  private constructor(readonly dir: string) {}

  /** A tmpfs of `sizeKiB` on a new temporary directory. */
  static async mount(sizeKiB = 4096): Promise<TinyFilesystem> {
    const dir = await Deno.makeTempDir({ prefix: "jm-tmpfs-" });
    await run("mount", "-t", "tmpfs", "-o", `size=${sizeKiB}k,mode=0700`, "tmpfs", dir);
    return new TinyFilesystem(dir);
  }

  /** A test database whose SQLite file lies on this filesystem (unmounted on dispose). */
  database(): TestDatabase {
    const url = `sqlite:${this.dir}/jobs.db`;
    const target = resolveTarget({ ...defaultSettings(), "db.url": url });
    return {
      backend: "sqlite",
      url,
      target,
      dir: this.dir,
      open: () => openStore(target),
      [Symbol.asyncDispose]: () => this[Symbol.asyncDispose](),
    };
  }

  /** Take every free byte, with one file (`free` gives them back). */
  async fill(): Promise<void> {
    const file = await Deno.open(`${this.dir}/filler`, { create: true, write: true });
    const chunk = new Uint8Array(64 * 1024);
    try {
      for (;;) await file.write(chunk);
    } catch (error) {
      if ((error as { code?: string }).code !== "ENOSPC") throw error;
    } finally {
      file.close();
    }
  }

  async free(): Promise<void> {
    await Deno.remove(`${this.dir}/filler`);
  }

  async readOnly(): Promise<void> {
    await run("mount", "-o", "remount,ro", this.dir);
  }

  private unmounted = false;

  /**
   * Unmount and remove it; once, whether the database or the filesystem is
   * disposed first. A descriptor a closing store has not let go of yet
   * makes it busy for a moment: tried again until none in this process
   * points into it, the failure naming those that still do.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.unmounted) return;
    this.unmounted = true;
    await waitFor(() => run("umount", this.dir).then(() => true, () => false), {
      timeoutMs: 10_000,
      what: `${this.dir} to unmount`,
      detail: () => this.heldBy(),
    });
    await Deno.remove(this.dir, { recursive: true });
  }

  /** This process's descriptors into the filesystem. */
  private heldBy(): string[] {
    const held: string[] = [];
    for (const entry of Deno.readDirSync("/proc/self/fd")) {
      try {
        const target = Deno.readLinkSync(`/proc/self/fd/${entry.name}`);
        if (target.startsWith(this.dir)) held.push(`fd ${entry.name}: ${target}`);
      } catch {
        // Closed meanwhile.
      }
    }
    return held;
  }
}

/**
 * Make the file at `path` one this process cannot write: for root, whom
 * modes do not stop, immutable (chattr +i); for anyone else, mode 0400.
 * Returns what the error must call it, and how to undo it; null where
 * this machine cannot (no chattr, a file system without the attribute).
 */
export function readOnlyFile(path: string): { said: RegExp; undo(): void } | null {
  if (!ROOT) {
    Deno.chmodSync(path, 0o400);
    return {
      said: /is read-only to user \S+; make it writable/,
      undo: () => Deno.chmodSync(path, 0o600),
    };
  }
  const chattr = (flag: string) => {
    try {
      return new Deno.Command("chattr", { args: [flag, path], stdout: "null", stderr: "null" })
        .outputSync().success;
    } catch {
      return false;
    }
  };
  if (!chattr("+i")) return null;
  return {
    said: new RegExp(
      `is marked immutable .*; clear that with chattr -i ${path},`,
    ),
    undo: () => chattr("-i"),
  };
}
