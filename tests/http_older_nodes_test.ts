/**
 * The API refuses to give a job a user while a service of a release before
 * schema version 17 is live (src/app/older_nodes.ts), with 409 and the
 * message the CLI gives: POST, PATCH and enable alike. Every backend.
 */
import { assertEquals, assertMatch } from "./assert.ts";
import { BACKENDS, freshDatabase, rawQuery, writeOlderNode } from "./helpers.ts";
import { startApi } from "./http_harness.ts";

const JOB = { id: "rotate", command: "echo hi", cron: "0 4 * * *", timezone: "UTC" };

const REFUSED =
  /^job 'rotate' would run as 'nobody', but node old-1 \(host web-1, pid 4242, last heartbeat \d+ s ago\) runs an older release of jobsmanager \(its row in jm_nodes names no schema_version\), which ignores a job's user and runs the job as its own user, root typically; nothing written\. Upgrade or stop that service, then try again$/;

for (const backend of BACKENDS) {
  Deno.test(`api (${backend}): a job is given no user while a node of an older release is live: 409, and none once it stopped`, async () => {
    await using db = await freshDatabase(backend);
    await using api = await startApi(db);
    await writeOlderNode(db, "old-1");
    const refused = async (method: string, path: string, body?: unknown) => {
      const answer = await api.call(method, path, { body });
      assertEquals(answer.status, 409, JSON.stringify(answer.body));
      assertMatch((answer.body as { error: string }).error, REFUSED);
    };
    await refused("POST", "/api/v1/jobs", { ...JOB, user: "nobody" });
    assertEquals(await api.store.getJob("rotate"), null);
    const added = await api.call("POST", "/api/v1/jobs", { body: { ...JOB, enabled: false } });
    assertEquals(added.status, 201, JSON.stringify(added.body));
    await refused("PATCH", "/api/v1/jobs/rotate", { user: "nobody" });
    await refused("POST", "/api/v1/jobs?replace=true", { ...JOB, user: "nobody" });
    assertEquals((await api.store.getJob("rotate"))?.user, null);
    // Given while no older node was live (a row in SQL), it is not enabled while one is.
    await rawQuery(db, "UPDATE jm_jobs SET `user` = 'nobody' WHERE id = 'rotate'");
    await refused("POST", "/api/v1/jobs/rotate/enable");
    await rawQuery(db, "UPDATE jm_nodes SET stopped_at = 1 WHERE id = 'old-1'");
    const enabled = await api.call("POST", "/api/v1/jobs/rotate/enable");
    assertEquals(enabled.status, 200, JSON.stringify(enabled.body));
    assertEquals((await api.store.getJob("rotate"))?.enabled, true);
  });
}
