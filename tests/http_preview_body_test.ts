/**
 * A schedule preview, which a read token may send, is only read: its body
 * is not put through the check for keys given twice (seconds of the API's
 * thread for megabytes of small tokens), and a refused value is named
 * shortened, not echoed whole.
 */
import { assert, assertEquals } from "./assert.ts";
import { READER, startServer } from "./http_harness.ts";

async function preview(url: string, body: string): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${url}/api/v1/schedule/preview`, {
    method: "POST",
    headers: { Authorization: `Bearer ${READER}`, "Content-Type": "application/json" },
    body,
  });
  return { status: res.status, json: await res.json() };
}

Deno.test("api: a schedule preview with a key given twice is read as JSON.parse reads it (last wins)", async () => {
  await using server = await startServer();
  const answer = await preview(server.url, '{"cron": "0 3 * * *", "count": 1, "count": 2}');
  assertEquals(answer.status, 200, JSON.stringify(answer.json));
  assertEquals((answer.json as { next: string[] }).next.length, 2, JSON.stringify(answer.json));
});

Deno.test("api: a preview's refused count is named shortened, not echoed whole", async () => {
  await using server = await startServer();
  const answer = await preview(
    server.url,
    JSON.stringify({ cron: "0 3 * * *", count: "9".repeat(100_000) }),
  );
  assertEquals(answer.status, 400);
  const message = (answer.json as { error: string }).error;
  assert(message.length < 300, `a ${message.length}-character message: ${message.slice(0, 300)}`);
});
