/** The dashboard's files: served without a token, under a strict policy, revalidated by ETag. */
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { freshDatabase } from "./helpers.ts";
import { startApi } from "./http_harness.ts";

Deno.test("the page, its script and its styles need no token and allow only themselves", async () => {
  await using db = await freshDatabase("sqlite");
  await using api = await startApi(db);
  for (
    const [path, type] of [
      ["/", "text/html"],
      ["/assets/app.js", "text/javascript"],
      ["/assets/app.css", "text/css"],
    ]
  ) {
    const res = await fetch(`${api.url}${path}`);
    assertEquals(res.status, 200, path);
    assertStringIncludes(res.headers.get("content-type")!, type);
    assertStringIncludes(res.headers.get("content-security-policy")!, "default-src 'self'");
    const body = await res.text();
    assert(body.length > 100, `${path} is nearly empty`);
    const again = await fetch(`${api.url}${path}`, {
      headers: { "If-None-Match": res.headers.get("etag")! },
    });
    assertEquals(again.status, 304, `${path} revalidates`);
    await again.body?.cancel();
  }
  const page = await (await fetch(`${api.url}/`)).text();
  assertStringIncludes(page, '<script src="/assets/app.js" defer></script>');
  const session = await api.call("GET", "/api/v1/session", { token: null });
  assertEquals(session.status, 401, "the API behind the page still wants the token");
});
