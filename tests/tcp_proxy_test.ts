/** The outage tests' TCP proxy (tcp_proxy.ts) does what those tests count on. */
import { assertEquals } from "./assert.ts";
import { waitFor } from "./helpers.ts";
import { TcpProxy } from "./tcp_proxy.ts";

Deno.test("tcp proxy: restored in the same turn of the event loop as it was cut, it listens and forwards again", async () => {
  // An echo server behind it.
  const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    for await (const conn of server) {
      (async () => {
        try {
          await conn.readable.pipeTo(conn.writable);
        } catch {
          // The proxy closed it.
        }
      })();
    }
  })();
  try {
    await using proxy = TcpProxy.start({
      hostname: "127.0.0.1",
      port: (server.addr as Deno.NetAddr).port,
    });
    // Its cut listener still holds the port till the loop polls its accept.
    proxy.cut();
    proxy.restore();
    let said = "";
    await waitFor(async () => {
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
        try {
          await conn.write(new TextEncoder().encode("ping"));
          const buffer = new Uint8Array(4);
          const n = await conn.read(buffer);
          said = new TextDecoder().decode(buffer.subarray(0, n ?? 0));
        } finally {
          conn.close();
        }
      } catch (error) {
        said = String(error);
      }
      return said === "ping";
    }, {
      timeoutMs: 10_000,
      what: "a connection through the restored proxy to echo",
      detail: () => said,
    });
    assertEquals(proxy.listening, true);
  } finally {
    server.close();
    await serving.catch(() => {});
  }
});
