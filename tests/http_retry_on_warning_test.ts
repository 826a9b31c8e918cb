/**
 * The API's warning about `retry_on` on a job without retries (atk225,
 * finding 4), by the rule `job update --retry-on` follows: said when a
 * write makes it so, not when a job is sent back whole (GET, then PATCH or
 * POST ?replace=true with that body), its retry_on as stored.
 */
import { assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase } from "./helpers.ts";
import { type Api, startApi } from "./http_harness.ts";

const JOB = { id: "rt", command: "true", cron: "0 3 * * *", retries: 0, retry_on: "failed" };
const WARNING =
  `299 - "job 'rt' has retries 0, so \\"retry_on\\" does nothing until \\"retries\\" is above 0"`;

/** A write's status and Warning header. */
async function write(
  api: Api,
  method: string,
  path: string,
  body: unknown,
): Promise<[number, string | null]> {
  const res = await api.call(method, path, { body });
  return [res.status, res.headers.get("warning")];
}

for (const backend of BACKENDS) {
  Deno.test(`api (${backend}): retry_on on a job without retries is said when written, not when the job is sent back whole`, async () => {
    await using db = await freshDatabase(backend);
    await using api = await startApi(db);
    assertEquals(await write(api, "POST", "/api/v1/jobs", JOB), [201, WARNING]);
    const copy = (await api.call("GET", "/api/v1/jobs/rt")).body;
    // Without the fix, each of these said it again.
    assertEquals(await write(api, "PATCH", "/api/v1/jobs/rt", copy), [200, null], "PATCH of a GET");
    assertEquals(
      await write(api, "POST", "/api/v1/jobs?replace=true", copy),
      [200, null],
      "POST ?replace=true of a GET",
    );
    assertEquals(await write(api, "PATCH", "/api/v1/jobs/rt", { retry_on: "failed" }), [200, null]);
    // A retry_on other than the stored one, or retries taken away from it: said.
    assertEquals(await write(api, "PATCH", "/api/v1/jobs/rt", { retry_on: "timeout" }), [
      200,
      WARNING,
    ]);
    assertEquals(await write(api, "PATCH", "/api/v1/jobs/rt", { retries: 2 }), [200, null]);
    assertEquals(
      await write(api, "PATCH", "/api/v1/jobs/rt", { retries: 0, retry_on: "timeout" }),
      [200, WARNING],
    );
  });
}
