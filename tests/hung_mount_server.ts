/**
 * The process behind a hung mount (hung_mount.ts), run as
 * `hung_mount_server.ts PATH LIMIT_MS`: it mounts at PATH a FUSE
 * filesystem it never answers, says `mounted`, and holds the connection
 * until its stdin closes (the test is done, or died) or LIMIT_MS pass
 * (a test whose own thread waits on the mount, the bug it looks for):
 * then it ends the connection (what waited on the mount fails with
 * ENOTCONN) and detaches the mount. In a process of its own, so that
 * nothing the test's process does or inherits holds the connection.
 */
const O_RDWR = 2;
const O_CLOEXEC = 0o2000000;
const MNT_DETACH = 2;
const encoder = new TextEncoder();
const cString = (text: string) => encoder.encode(`${text}\0`);

const [path, limit] = Deno.args;
const libc = Deno.dlopen("libc.so.6", {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  mount: { parameters: ["buffer", "buffer", "buffer", "u64", "buffer"], result: "i32" },
  umount2: { parameters: ["buffer", "i32"], result: "i32" },
});
const fd = libc.symbols.open(cString("/dev/fuse"), O_RDWR | O_CLOEXEC);
const options = `fd=${fd},rootmode=40000,user_id=0,group_id=0`;
if (
  fd < 0 ||
  libc.symbols.mount(cString("jm-hung"), cString(path), cString("fuse"), 0n, cString(options)) !== 0
) {
  console.log("not mounted");
  Deno.exit(1);
}
console.log("mounted");
await Promise.race([
  Deno.stdin.readable.pipeTo(new WritableStream()),
  new Promise((ended) => setTimeout(ended, Number(limit))),
]);
// The last descriptor of the connection closed ends it.
libc.symbols.close(fd);
libc.symbols.umount2(cString(path), MNT_DETACH);
Deno.exit(0);
