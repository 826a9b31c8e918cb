/**
 * systemd's notify protocol (sd_notify(3)) for a unit of `Type=notify`:
 * `READY=1` once the service has loaded its jobs (so `systemctl start`
 * returns then, and says so when the start fails), `STATUS=` for
 * `systemctl status`, `STOPPING=1` at a stop, and `WATCHDOG=1` every half
 * `WatchdogSec` while the main thread's event loop turns: a scheduler
 * thread held (a hung mount, a synchronous loop) stops the pings, and
 * systemd restarts the service. A database outage does not: the loop
 * goes on, waiting.
 *
 * A datagram to the socket `NOTIFY_SOCKET` names; Deno offers no Unix
 * datagram socket without an unstable flag, and the npm packages for it
 * are native addons, so libc's three calls go through FFI, as
 * native_spawn.ts's do. Without NOTIFY_SOCKET (not under systemd, or a
 * `Type=exec` unit), nothing is sent.
 */
import { log } from "./log.ts";

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;
/**
 * Never wait: a Unix datagram socket queues few messages (net.unix.max_dgram_qlen, 10 here),
 * and a systemd slow to read them would otherwise hold the main thread in sendto: a ping
 * lost is better than the scheduler stopped.
 */
const MSG_DONTWAIT = 0x40;
/** sockaddr_un: a 2-byte family, then the path (108 bytes at most, NUL included). */
const SUN_PATH_MAX = 108;

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  sendto: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"],
    result: "isize",
  },
  close: { parameters: ["i32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

export interface SystemdNotifier {
  /** The jobs are loaded: `READY=1`, and the watchdog's pings begin. */
  ready(status: string): void;
  /** What `systemctl status` shows on its Status line. */
  status(text: string): void;
  /** A stop began: `STOPPING=1`; the pings go on until `close`. */
  stopping(): void;
  close(): void;
}

const serviceLog = log("service");
const encoder = new TextEncoder();

/** The address of `socket` (NOTIFY_SOCKET: a path, or `@name` in the abstract namespace). */
function address(socket: string): Uint8Array | null {
  const path = encoder.encode(socket);
  const abstract = socket.startsWith("@");
  if (path.length === 0 || path.length + (abstract ? 0 : 1) > SUN_PATH_MAX) return null;
  const addr = new Uint8Array(2 + path.length + (abstract ? 0 : 1));
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
  addr.set(path, 2);
  if (abstract) addr[2] = 0;
  return addr;
}

/**
 * The notifier `env` asks for, or null when it asks for none (no
 * NOTIFY_SOCKET). `WATCHDOG_USEC` turns the pings on, unless
 * `WATCHDOG_PID` names another process.
 */
export function systemdNotifier(
  env: Record<string, string | undefined> = Deno.env.toObject(),
  pid: number = Deno.pid,
): SystemdNotifier | null {
  const socket = env.NOTIFY_SOCKET ?? "";
  if (socket === "") return null;
  const addr = address(socket);
  let libc: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
  try {
    if (addr === null) throw new Error(`NOTIFY_SOCKET ${JSON.stringify(socket)} is no socket`);
    libc = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  } catch (error) {
    serviceLog.warn(
      "systemd asked to be told when the service is ready (NOTIFY_SOCKET), and it cannot be: {error}; use Type=exec in the unit",
      { error: (error as Error).message },
    );
    return null;
  }
  const fd = libc.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  let open = fd >= 0;
  let failed = !open;
  const send = (message: string) => {
    if (!open) return;
    const bytes = encoder.encode(message);
    const flags = MSG_NOSIGNAL | MSG_DONTWAIT;
    if (Number(libc.sendto(fd, bytes, BigInt(bytes.length), flags, addr, addr!.length)) >= 0) {
      return;
    }
    // Said once: a systemd that no longer listens would otherwise fill the log.
    if (failed) return;
    failed = true;
    serviceLog.warn("cannot tell systemd {message} through {socket}", {
      message: message.split("\n")[0],
      socket,
    });
  };
  if (fd < 0) serviceLog.warn("cannot open a socket to tell systemd the service's state");
  const usec = Number(env.WATCHDOG_USEC ?? "");
  const watched = Number.isInteger(usec) && usec > 0 &&
    (env.WATCHDOG_PID === undefined || env.WATCHDOG_PID === String(pid));
  let pings: ReturnType<typeof setInterval> | undefined;
  return {
    ready(status) {
      send(`READY=1\nSTATUS=${status}`);
      if (!watched || pings !== undefined) return;
      send("WATCHDOG=1");
      const timer = setInterval(() => send("WATCHDOG=1"), Math.max(1, Math.floor(usec / 2000)));
      Deno.unrefTimer(timer);
      pings = timer;
    },
    status(text) {
      send(`STATUS=${text}`);
    },
    stopping() {
      send("STOPPING=1");
    },
    close() {
      clearInterval(pings);
      if (open) libc.close(fd);
      open = false;
    },
  };
}
