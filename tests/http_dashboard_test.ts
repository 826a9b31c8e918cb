/** The dashboard's files: served without a token, under a strict policy, revalidated by ETag. */
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { buildHttpApp } from "../src/http/app.ts";
import { Tokens } from "../src/http/auth.ts";
import { Metrics } from "../src/http/metrics.ts";

const app = buildHttpApp({
  tokens: new Tokens([{ token: "admin-token-0123456789abcdef", role: "admin" }]),
  metrics: new Metrics(),
  readiness: () => ({ ready: true, checks: {} }),
  redact: (t) => t,
  closing: new AbortController().signal,
});

Deno.test("the page, its script and its styles need no token and allow only themselves", async () => {
  for (
    const [path, type] of [
      ["/", "text/html"],
      ["/assets/app.js", "text/javascript"],
      ["/assets/app.css", "text/css"],
    ]
  ) {
    const res = await app.request(path);
    assertEquals(res.status, 200, path);
    assertStringIncludes(res.headers.get("content-type")!, type);
    assertStringIncludes(res.headers.get("content-security-policy")!, "default-src 'self'");
    const body = await res.text();
    assert(body.length > 100, `${path} is nearly empty`);
    const again = await app.request(path, {
      headers: { "If-None-Match": res.headers.get("etag")! },
    });
    assertEquals(again.status, 304, `${path} revalidates`);
  }
  const page = await (await app.request("/")).text();
  assertStringIncludes(page, '<script src="/assets/app.js" defer></script>');
});

Deno.test("the API behind the page still wants the token", async () => {
  const res = await app.request("/api/v1/session");
  assertEquals(res.status, 401);
  const ok = await app.request("/api/v1/session", {
    headers: { Authorization: "Bearer admin-token-0123456789abcdef" },
  });
  assertEquals(await ok.json(), { role: "admin", auth: true });
});
