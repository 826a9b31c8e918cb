/**
 * A loopback TCP proxy for outage tests: the service connects to the
 * proxy's port, the proxy forwards to the real server, and the test breaks
 * the path in between.
 *
 * - `cut()`: every open connection is closed both ways and the port stops
 *   listening, so new connections are refused (a server restart, a
 *   firewall that rejects).
 * - `blackhole()`: sockets stay open but no byte moves either way, so
 *   queries and new logins hang (a network partition that drops packets).
 *   Bytes sent meanwhile are held, not lost, and are delivered by
 *   `restore()`, as TCP retransmission would once the partition heals.
 * - `restore()`: forward again, listening on the same port.
 *
 * Dispose it (`await using`) to close the listener and every socket, so
 * Deno's resource sanitizer finds nothing open.
 */
import type { TestDatabase } from "./helpers.ts";

type Mode = "forward" | "blackhole" | "cut";

/** How often, and how far apart, `restore()` tries a port its cut listener still holds. */
const RELISTEN_TRIES = 100;
const RELISTEN_MS = 10;

/** How many ports below the ephemeral range a proxy picks its own from. */
const PORTS_BELOW_EPHEMERAL = 8000;

/** The first port of the kernel's ephemeral range (Linux's default where it cannot be read). */
function ephemeralLow(): number {
  try {
    const low = Number(
      Deno.readTextFileSync("/proc/sys/net/ipv4/ip_local_port_range").trim().split(/\s+/)[0],
    );
    if (low > PORTS_BELOW_EPHEMERAL + 1024) return low;
  } catch {
    // No /proc: Linux's default.
  }
  return 32768;
}

interface Link {
  client: Deno.TcpConn;
  upstream: Deno.TcpConn | null;
  closed: boolean;
}

function closeQuietly(conn: Deno.Conn | Deno.Listener | null): void {
  try {
    conn?.close();
  } catch {
    // Already closed.
  }
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let written = 0;
  while (written < data.length) written += await conn.write(data.subarray(written));
}

export class TcpProxy implements AsyncDisposable {
  private listener: Deno.TcpListener | null = null;
  private accepting: Promise<void> = Promise.resolve();
  private mode: Mode = "forward";
  private readonly links = new Set<Link>();
  /** Every pump and accept loop still running; dispose waits for them. */
  private readonly tasks = new Set<Promise<void>>();
  /** Resolved (and replaced) whenever the mode changes, to wake held pumps. */
  private modeChanged = Promise.withResolvers<void>();
  private port_ = 0;
  private held = 0;
  private fromClients = 0;
  private disposed = false;

  private constructor(private readonly target: { hostname: string; port: number }) {}

  /**
   * Listen on 127.0.0.1 and forward to `target`: on a free port below the
   * kernel's ephemeral range, which no connection made while it is cut
   * takes (an outgoing connection's own port is an ephemeral one), so that
   * `restore()` finds it free again.
   */
  static start(target: { hostname: string; port: number }): TcpProxy {
    const proxy = new TcpProxy(target);
    const below = ephemeralLow();
    for (let tries = 0;; tries++) {
      const port = below - 1 - Math.floor(Math.random() * PORTS_BELOW_EPHEMERAL);
      try {
        proxy.listen(port);
        return proxy;
      } catch (error) {
        if (!(error instanceof Deno.errors.AddrInUse) || tries >= 50) throw error;
      }
    }
  }

  /** The port clients connect to; the same one after `restore()`. */
  get port(): number {
    return this.port_;
  }

  /** Chunks read and held back by `blackhole()`, so a test can wait until bytes are held. */
  get heldChunks(): number {
    return this.held;
  }

  /**
   * Chunks read from clients so far: a request written at once, then
   * answered before the next, is one chunk (how many round trips a client
   * took).
   */
  get chunksFromClients(): number {
    return this.fromClients;
  }

  /** Connections currently open through the proxy. */
  get openConnections(): number {
    return this.links.size;
  }

  /** Whether it listens on its port (not while cut). */
  get listening(): boolean {
    return this.listener !== null;
  }

  /** Close every connection both ways and refuse new ones. */
  cut(): void {
    this.setMode("cut");
    closeQuietly(this.listener);
    this.listener = null;
    for (const link of this.links) this.closeLink(link);
  }

  /** Keep sockets (and new ones) open but move no bytes, so everything hangs. */
  blackhole(): void {
    this.setMode("blackhole");
  }

  /** Forward again; listen again on the same port if `cut()` stopped it. */
  restore(): void {
    this.setMode("forward");
    if (this.listener === null) this.listenAgain(0);
  }

  /**
   * Listen on the port again. The listener `cut()` closed lets go of the
   * port only once the event loop has polled its pending accept: a test
   * that awaited nothing but promises since finds it taken still
   * (AddrInUse, seen in CI), so it is tried again each turn of the loop,
   * for a second at most.
   */
  private listenAgain(tries: number): void {
    try {
      this.listen(this.port_);
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrInUse) || tries >= RELISTEN_TRIES) throw error;
      this.track(
        new Promise((resolve) => setTimeout(resolve, RELISTEN_MS)).then(() => {
          if (this.listener === null && this.mode !== "cut" && !this.disposed) {
            this.listenAgain(tries + 1);
          }
        }),
      );
    }
  }

  private setMode(mode: Mode): void {
    if (this.disposed) throw new Error("the proxy is closed");
    this.mode = mode;
    this.modeChanged.resolve();
    this.modeChanged = Promise.withResolvers<void>();
  }

  private listen(port: number): void {
    const listener = Deno.listen({ hostname: "127.0.0.1", port, transport: "tcp" });
    this.listener = listener;
    this.port_ = (listener.addr as Deno.NetAddr).port;
    this.track(this.accept(listener));
  }

  private track(task: Promise<void>): void {
    const tracked = task.catch(() => {}).finally(() => this.tasks.delete(tracked));
    this.tasks.add(tracked);
  }

  private async accept(listener: Deno.TcpListener): Promise<void> {
    for (;;) {
      let client: Deno.TcpConn;
      try {
        client = await listener.accept();
      } catch {
        return; // The listener was closed.
      }
      if (this.mode === "cut") {
        closeQuietly(client);
        continue;
      }
      const link: Link = { client, upstream: null, closed: false };
      this.links.add(link);
      this.track(this.connect(link));
    }
  }

  private async connect(link: Link): Promise<void> {
    try {
      link.upstream = await Deno.connect({ ...this.target, transport: "tcp" });
    } catch {
      this.closeLink(link);
      return;
    }
    if (link.closed) {
      closeQuietly(link.upstream);
      return;
    }
    await Promise.all([
      this.pump(link, link.client, link.upstream),
      this.pump(link, link.upstream, link.client),
    ]);
  }

  /** Copy `from` to `to` while forwarding; hold each chunk while blackholed. */
  private async pump(link: Link, from: Deno.Conn, to: Deno.Conn): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await from.read(buffer);
        if (n === null) break;
        if (from === link.client) this.fromClients++;
        // Holding the chunk also stops reading: TCP backpressure does the rest.
        if (this.mode === "blackhole" && !link.closed) {
          this.held++;
          try {
            while (this.mode === "blackhole" && !link.closed) await this.modeChanged.promise;
          } finally {
            this.held--;
          }
        }
        if (link.closed) break;
        await writeAll(to, buffer.subarray(0, n));
      }
    } catch {
      // A side was closed (by the peer, `cut()` or dispose).
    } finally {
      this.closeLink(link);
    }
  }

  private closeLink(link: Link): void {
    if (link.closed) return;
    link.closed = true;
    this.links.delete(link);
    closeQuietly(link.client);
    closeQuietly(link.upstream);
    // Wake a pump that holds a chunk for this link.
    this.modeChanged.resolve();
    this.modeChanged = Promise.withResolvers<void>();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.disposed) return;
    closeQuietly(this.listener);
    this.listener = null;
    this.mode = "cut";
    for (const link of this.links) this.closeLink(link);
    this.disposed = true;
    while (this.tasks.size > 0) await Promise.all([...this.tasks]);
  }
}

/** A proxy in front of `db`'s MariaDB server, for outage tests. */
export function proxyFor(db: TestDatabase): TcpProxy {
  if (db.target.kind !== "mysql") throw new Error("outage tests need MySQL");
  return TcpProxy.start({ hostname: db.target.host, port: db.target.port });
}
