/**
 * systemd's notify protocol (daemon/sd_notify.ts): a socket of the test's
 * own stands for systemd's, and hears READY=1 once the jobs are loaded,
 * the watchdog's pings, and STOPPING=1 at SIGTERM; jobs inherit none of
 * it.
 */
import { assert, assertEquals } from "./assert.ts";
import { CliProcess, freshDatabase, jm, waitFor } from "./helpers.ts";
import { systemdNotifier } from "../src/daemon/sd_notify.ts";

const LIBC = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;
const MSG_DONTWAIT = 0x40;

/** A Unix datagram socket bound at `path`, as systemd's NOTIFY_SOCKET is: what came to it, read. */
class NotifySocket implements Disposable {
  private readonly libc = Deno.dlopen("libc.so.6", LIBC);
  private readonly fd: number;
  readonly messages: string[] = [];

  constructor(readonly path: string) {
    const name = new TextEncoder().encode(path);
    const addr = new Uint8Array(2 + name.length + 1);
    new DataView(addr.buffer).setUint16(0, 1, true);
    addr.set(name, 2);
    this.fd = this.libc.symbols.socket(1, 2, 0);
    assert(this.fd >= 0, "socket()");
    assertEquals(this.libc.symbols.bind(this.fd, addr, addr.length), 0, `bind(${path})`);
  }

  /** Every message so far, the new ones read first. */
  read(): string[] {
    const buffer = new Uint8Array(4096);
    for (;;) {
      const n = Number(this.libc.symbols.recv(this.fd, buffer, 4096n, MSG_DONTWAIT));
      if (n < 0) return this.messages;
      this.messages.push(new TextDecoder().decode(buffer.subarray(0, n)));
    }
  }

  [Symbol.dispose](): void {
    this.libc.symbols.close(this.fd);
    this.libc.close();
  }
}

Deno.test("systemd notify: READY and STATUS once, pings only when the watchdog is this process's, STOPPING", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-notify-" });
  try {
    using socket = new NotifySocket(`${dir}/notify`);
    assertEquals(systemdNotifier({}), null, "not under systemd: nothing to tell");
    const other = systemdNotifier(
      { NOTIFY_SOCKET: socket.path, WATCHDOG_USEC: "20000", WATCHDOG_PID: "1" },
      4242,
    )!;
    other.ready("3 jobs loaded");
    other.stopping();
    other.close();
    assertEquals(socket.read(), ["READY=1\nSTATUS=3 jobs loaded", "STOPPING=1"]);
    socket.messages.length = 0;
    const watched = systemdNotifier(
      { NOTIFY_SOCKET: socket.path, WATCHDOG_USEC: "20000", WATCHDOG_PID: "4242" },
      4242,
    )!;
    try {
      watched.ready("3 jobs loaded");
      watched.status("the database is away");
      const pings = await waitFor(
        () => socket.read().filter((m) => m === "WATCHDOG=1").length >= 3 ? socket.messages : null,
        { timeoutMs: 10_000, what: "three watchdog pings", detail: () => socket.messages },
      );
      assertEquals(pings.slice(0, 2), ["READY=1\nSTATUS=3 jobs loaded", "WATCHDOG=1"]);
      assert(pings.includes("STATUS=the database is away"), JSON.stringify(pings));
    } finally {
      watched.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("systemd notify: serve says READY once its jobs are loaded, pings the watchdog, says STOPPING; jobs inherit none of it", async () => {
  await using db = await freshDatabase("sqlite");
  using socket = new NotifySocket(`${db.dir}/notify`);
  const added = await jm(
    db,
    "job",
    "add",
    "envdump",
    "--command",
    `env > ${db.dir}/env.txt`,
    "--second",
    "*/1",
  );
  assertEquals(added.code, 0, added.stderr);
  await using serve = new CliProcess(["--database", db.url, "serve"], {
    cwd: db.dir,
    env: { NOTIFY_SOCKET: socket.path, WATCHDOG_USEC: "200000", LISTEN_FDS: "1" },
  });
  const told = await waitFor(
    () => socket.read().filter((m) => m === "WATCHDOG=1").length >= 2 ? socket.messages : null,
    {
      timeoutMs: 30_000,
      what: "serve to say READY, then ping the watchdog",
      detail: () => ({ told: socket.messages, stderr: serve.stderr }),
    },
  );
  assert(
    /^READY=1\nSTATUS=1 jobs loaded; node \S+, pid \d+$/.test(told[0]),
    JSON.stringify(told),
  );
  assert(
    serve.stderr.includes('"loaded 1 enabled jobs of 1'),
    "READY came once the jobs were loaded",
  );
  const env = await waitFor(
    () => Deno.readTextFile(`${db.dir}/env.txt`).catch(() => null),
    { timeoutMs: 30_000, what: "envdump to run", detail: () => serve.stderr },
  );
  for (const name of ["NOTIFY_SOCKET", "WATCHDOG_USEC", "LISTEN_FDS"]) {
    assert(!env.includes(`${name}=`), `a job inherited ${name}:\n${env}`);
  }
  // Unread meanwhile, the socket's queue (10 datagrams, a second of pings) fills: a service that
  // waited in sendto for room would stop there, its jobs with it.
  await waitFor(async () => {
    const runs = await jm(db, "runs", "--json");
    return runs.code === 0 && JSON.parse(runs.stdout).length >= 4;
  }, {
    timeoutMs: 30_000,
    what: "envdump to run 4 times, the socket unread",
    detail: () => serve.stderr,
  });
  // Room for STOPPING, now.
  socket.read();
  serve.signal("SIGTERM");
  assertEquals((await serve.exit(30_000)).code, 0, serve.stderr);
  assert(socket.read().includes("STOPPING=1"), JSON.stringify(socket.messages));
});
