/** The dashboard's files: served without a token, under a strict policy, revalidated by ETag. */
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { freshDatabase } from "./helpers.ts";
import { startApi } from "./http_harness.ts";
import { OPENAPI } from "../src/http/openapi.ts";

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

Deno.test("the script names every field a job has and a write takes (browser_edit_test shows them)", async () => {
  await using db = await freshDatabase("sqlite");
  await using api = await startApi(db);
  const script = await (await fetch(`${api.url}/assets/app.js`)).text();
  const schemas = OPENAPI.components.schemas as Record<string, { properties: object }>;
  const names = (schema: string) => Object.keys(schemas[schema].properties);
  // What GET shows beside a job's fields (zone, next …), and a write (its warnings), is none to
  // show or set.
  const shownBeside = [...names("JobListing"), ...names("JobDetails"), ...names("WrittenJob")]
    .filter((f) => !names("Job").includes(f));
  const fields = [...new Set([...names("Job"), ...names("JobInput")])]
    // unset_env: a variable the env box no longer holds is dropped.
    .filter((f) => !shownBeside.includes(f) && f !== "unset_env");
  const missing = fields.filter((f) => !script.includes(JSON.stringify(f)));
  assertEquals(missing, [], "fields the dashboard neither shows nor sets");
});
