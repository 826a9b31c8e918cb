/**
 * A directory on a mount that never answers, as a hung network mount: a
 * FUSE filesystem whose server never reads /dev/fuse, so that a stat (a
 * chdir, an open) of a path under it waits. Its server is a process of
 * its own (hung_mount_server.ts): disposed, or after `limitMs` whatever
 * the test's thread does (a bug may hold it on the mount), or when the
 * test's process dies, the connection is ended (what waited fails with
 * ENOTCONN) and the mount detached. Needs root and /dev/fuse:
 * `hungMountPossible` says whether this machine has both.
 */

/** Whether a hung mount can be made here (root, and /dev/fuse). */
export function hungMountPossible(): boolean {
  try {
    return Deno.uid() === 0 && Deno.statSync("/dev/fuse").isCharDevice === true;
  } catch {
    return false;
  }
}

export interface HungMount extends AsyncDisposable {
  /** The mount point: any path under it waits. */
  readonly path: string;
}

/** Mount a filesystem that never answers on a new temporary directory, for `limitMs` at most. */
export async function hungMount(limitMs = 60_000): Promise<HungMount> {
  const path = await Deno.makeTempDir({ prefix: "jm-hung-" });
  const server = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      new URL("./hung_mount_server.ts", import.meta.url).pathname,
      path,
      String(limitMs),
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const output = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let said = "";
  while (!said.includes("\n")) {
    const { done, value } = await output.read();
    if (done) break;
    said += value;
  }
  const ended = async () => {
    await output.cancel();
    await server.stdin.close();
    await server.status;
    await Deno.remove(path);
  };
  if (said !== "mounted\n") {
    await ended();
    throw new Error(`could not mount a FUSE filesystem on ${path}: ${said.trim()}`);
  }
  return { path, [Symbol.asyncDispose]: ended };
}
