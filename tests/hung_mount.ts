/**
 * A directory on a mount that never answers, as a hung network mount: a
 * FUSE filesystem whose server never reads /dev/fuse, so that a stat (a
 * chdir, an open) of a path under it waits. Disposed, the connection is
 * ended (what waited fails with ENOTCONN) and the mount detached. Needs
 * root and /dev/fuse; `hungMountPossible` says whether this machine has
 * both.
 */

const O_RDWR = 2;
const MNT_DETACH = 2;
const encoder = new TextEncoder();
const cString = (text: string) => encoder.encode(`${text}\0`);

function libc() {
  return Deno.dlopen("libc.so.6", {
    open: { parameters: ["buffer", "i32"], result: "i32" },
    close: { parameters: ["i32"], result: "i32" },
    mount: { parameters: ["buffer", "buffer", "buffer", "u64", "buffer"], result: "i32" },
    umount2: { parameters: ["buffer", "i32"], result: "i32" },
  });
}

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

/** Mount a filesystem that never answers on a new temporary directory. */
export async function hungMount(): Promise<HungMount> {
  const path = await Deno.makeTempDir({ prefix: "jm-hung-" });
  const lib = libc();
  const fd = lib.symbols.open(cString("/dev/fuse"), O_RDWR);
  const options = `fd=${fd},rootmode=40000,user_id=0,group_id=0`;
  if (
    fd < 0 ||
    lib.symbols.mount(cString("jm-hung"), cString(path), cString("fuse"), 0n, cString(options)) !==
      0
  ) {
    if (fd >= 0) lib.symbols.close(fd);
    lib.close();
    await Deno.remove(path);
    throw new Error(`could not mount a FUSE filesystem on ${path} (root and /dev/fuse needed)`);
  }
  return {
    path,
    async [Symbol.asyncDispose]() {
      // The last descriptor of the connection closed ends it: what waited on it fails.
      lib.symbols.close(fd);
      lib.symbols.umount2(cString(path), MNT_DETACH);
      lib.close();
      await Deno.remove(path);
    },
  };
}
