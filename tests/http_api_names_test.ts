/**
 * The API's messages about follow-up links and things not found name the
 * API's words (atk225, finding 5): `after_job:`, the field its `field`
 * names, not the CLI's `after:`; no `jobsmanager job list` to list them
 * (its client has GET /jobs and /runs; the dashboard, its lists). The
 * CLI's own words stay
 * (cli_retry_test.ts, cli_runs_test.ts, cli_bad_input_test.ts pin them).
 */
import { assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase, rawQuery } from "./helpers.ts";
import { startApi } from "./http_harness.ts";

const NO_JOB = { error: "job 'nope' does not exist" };

for (const backend of BACKENDS) {
  Deno.test(`api (${backend}): links and things not found are said in the API's words`, async () => {
    await using db = await freshDatabase(backend);
    await using api = await startApi(db);
    const call = async (method: string, path: string, body?: unknown) => {
      const res = await api.call(method, path, body === undefined ? {} : { body });
      return [res.status, res.body];
    };
    const job = { command: "true", cron: "0 3 * * *" };
    assertEquals(await call("POST", "/api/v1/jobs", { id: "x", ...job, after_job: "ghost" }), [
      400,
      {
        error: "after_job: job 'ghost' does not exist, so 'x' could never follow it (add it first)",
        field: "after_job",
      },
    ]);
    assertEquals(await call("POST", "/api/v1/jobs", { id: "d", ...job, after_job: "d" }), [
      400,
      { error: "after_job: job 'd' cannot follow itself (d → d)", field: "after_job" },
    ]);
    for (
      const [method, path, body] of [
        ["GET", "/api/v1/jobs/nope"],
        ["GET", "/api/v1/jobs/nope/next"],
        ["PATCH", "/api/v1/jobs/nope", { timeout: 5 }],
        ["DELETE", "/api/v1/jobs/nope"],
        ["POST", "/api/v1/jobs/nope/enable"],
        ["POST", "/api/v1/jobs/nope/disable"],
        ["POST", "/api/v1/jobs/nope/run", { queue: true }],
      ] as [string, string, unknown?][]
    ) {
      assertEquals(await call(method, path, body), [404, NO_JOB], `${method} ${path}`);
    }
    const noRun = { error: "run 999 does not exist" };
    assertEquals(await call("GET", "/api/v1/runs/999"), [404, noRun]);
    assertEquals(await call("POST", "/api/v1/runs/999/cancel"), [404, noRun]);
    assertEquals(await call("POST", "/api/v1/runs/999/cancel?wait=5"), [404, noRun]);
    // A cycle written by hand: the list says why the service ignores it.
    for (const id of ["c1", "c2"]) {
      assertEquals((await call("POST", "/api/v1/jobs", { id, ...job }))[0], 201);
    }
    await rawQuery(
      db,
      "UPDATE jm_jobs SET after_job = 'c2', after_outcome = 'success' WHERE id = 'c1'",
    );
    await rawQuery(
      db,
      "UPDATE jm_jobs SET after_job = 'c1', after_outcome = 'success' WHERE id = 'c2'",
    );
    const [, listed] = await call("GET", "/api/v1/jobs");
    assertEquals(
      (listed as { id: string; invalid: string | null }[]).find((j) => j.id === "c1")?.invalid,
      'after_job: its follow-up link closes a cycle, c1 → c2 → c1, and the service ignores it; drop one link with "after_job": null',
    );
  });
}
