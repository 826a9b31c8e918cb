/**
 * The largest job the store takes goes through the API both ways: its
 * JSON, each control character written as `\u00XX` (six bytes for one),
 * is within the body the API reads, so a job read may be sent back whole.
 */
import { assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase } from "./helpers.ts";
import { startApi } from "./http_harness.ts";

/** A column's whole room (65,535 bytes, MySQL's TEXT) of a character JSON writes in six. */
const FULL = "\x01".repeat(65_535);

for (const backend of BACKENDS) {
  Deno.test(`api (${backend}): the largest job is added, read and sent back whole`, async () => {
    await using db = await freshDatabase(backend);
    await using api = await startApi(db);
    const job = {
      id: "big",
      command: FULL,
      cron: "0 3 * * *",
      on_failure: FULL,
      on_recovery: FULL,
      on_success: FULL,
      cwd: `/${FULL.slice(1)}`,
      // The env's JSON fills its column: each value's character written in six bytes.
      env: { A: "\x01".repeat(10_000), B: "\x01".repeat(920) },
    };
    const added = await api.call("POST", "/api/v1/jobs", { body: job });
    assertEquals(added.status, 201, JSON.stringify(added.body).slice(0, 300));
    const read = await api.call("GET", "/api/v1/jobs/big");
    assertEquals(read.status, 200);
    const sent = await api.call("PATCH", "/api/v1/jobs/big", {
      body: read.body,
      headers: { "If-Match": read.headers.get("etag")! },
    });
    assertEquals(sent.status, 200, JSON.stringify(sent.body).slice(0, 300));
    const again = await api.call("GET", "/api/v1/jobs/big");
    assertEquals(again.body, read.body);
  });
}
