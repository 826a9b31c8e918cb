/**
 * Live streams are capped (src/http/sse.ts): each polls the database every
 * second, and a thousand of them starved every other request.
 */
import { assertEquals, assertStringIncludes } from "./assert.ts";
import { waitFor } from "./helpers.ts";
import { ADMIN, startServer } from "./http_harness.ts";

Deno.test("http: live streams beyond the most kept open are refused (503) until one closes", async () => {
  await using server = await startServer({ maxStreams: 2 });
  const open = (path: string) =>
    fetch(`${server.url}${path}`, { headers: { Authorization: `Bearer ${ADMIN}` } });
  const streams: Response[] = [];
  try {
    streams.push(await open("/api/v1/runs/stream"), await open("/api/v1/logs/stream"));
    assertEquals(streams.map((r) => r.status), [200, 200]);
    const refused = await open("/api/v1/logs/stream");
    assertEquals(refused.status, 503);
    assertStringIncludes((await refused.json()).error, "2 live streams are open");
    // Plain requests are not streams: they still answer.
    const jobs = await open("/api/v1/jobs");
    assertEquals(jobs.status, 200);
    await jobs.body?.cancel();
    await streams.shift()!.body?.cancel();
    const again = await waitFor(async () => {
      const res = await open("/api/v1/runs/stream");
      if (res.status === 200) return res;
      await res.body?.cancel();
      return null;
    }, { timeoutMs: 10_000, what: "a stream to be taken once another closed" });
    streams.push(again);
  } finally {
    for (const res of streams) await res.body?.cancel();
  }
});
