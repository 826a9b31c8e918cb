/**
 * What a request may hold, on every backend: a body in UTF-8 only, and so
 * on for the parts of a request the API checks before it acts.
 */
import { assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase } from "./helpers.ts";
import { ADMIN, type Api, startApi } from "./http_harness.ts";

async function withApi(backend: (typeof BACKENDS)[number], fn: (api: Api) => Promise<void>) {
  await using db = await freshDatabase(backend);
  await using api = await startApi(db);
  await fn(api);
}

/** A request whose body is `bytes` as they are, with the admin token. */
async function sendBytes(
  api: Api,
  method: string,
  path: string,
  bytes: Uint8Array<ArrayBuffer>,
) {
  const res = await fetch(`${api.url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" },
    body: bytes,
  });
  return { status: res.status, body: await res.json() };
}

for (const backend of BACKENDS) {
  Deno.test(`api (${backend}): a body that is not UTF-8 is refused, nothing stored`, () =>
    withApi(backend, async (api) => {
      const text = new TextEncoder().encode(
        '{"id":"latin","command":"echo caf\u0000","cron":"0 0 1 1 *"}',
      );
      // "café" in Latin-1: 0xE9 alone is no UTF-8.
      text[text.indexOf(0)] = 0xe9;
      const NOT_UTF8 =
        "the body is not UTF-8: JSON must be sent in UTF-8 (bytes that are not would be stored as U+FFFD, other text than was sent)";
      assertEquals(await sendBytes(api, "POST", "/api/v1/jobs", text), {
        status: 400,
        body: { error: NOT_UTF8 },
      });
      assertEquals(await api.store.getJob("latin"), null);
      await api.call("POST", "/api/v1/jobs", {
        body: { id: "latin", command: "echo café", cron: "0 0 1 1 *" },
      });
      const patch = new TextEncoder().encode('{"description":"caf\u0000"}');
      patch[patch.indexOf(0)] = 0xe9;
      assertEquals(await sendBytes(api, "PATCH", "/api/v1/jobs/latin", patch), {
        status: 400,
        body: { error: NOT_UTF8 },
      });
      assertEquals((await api.store.getJob("latin"))?.command, "echo café");
    }));
}
