/**
 * No job is given a user while a service of a release before schema
 * version 17 is live (src/app/older_nodes.ts): that release ignores the
 * user and runs the job as its own (root). Every backend; the older node's
 * row written as that release writes it.
 */
import { assertEquals, assertMatch, assertRejects } from "./assert.ts";
import { addJob, setEnabled, updateJob } from "../src/app/jobs.ts";
import { applyJobsFile } from "../src/app/jobs_file.ts";
import type { Candidate } from "../src/app/import/plan.ts";
import { guardUsers } from "../src/app/older_nodes.ts";
import { requestRun } from "../src/app/runs.ts";
import { CLI_NAMES } from "../src/cli/input_names.ts";
import { buildJob, type JobOptions } from "../src/domain/job.ts";
import { ConflictError } from "../src/errors.ts";
import { SCHEMA_VERSION } from "../src/store/migrations.ts";
import type { Store } from "../src/store/store.ts";
import { BACKENDS, onFreshStore, serviceRow, writeOlderNode } from "./helpers.ts";

const T0 = Date.UTC(2026, 0, 1);
const HOURLY: JobOptions = { command: "echo hi", schedule: { minute: "5" }, timezone: "UTC" };

/** The refusal while node old-1 is live, for `what` (whose jobs would run as whom). */
function refusal(what: string, undone = "nothing written"): RegExp {
  return new RegExp(
    `^${what}, but node old-1 \\(host web-1, pid 4242, last heartbeat \\d+ s ago\\) runs an older release of jobsmanager \\(its row in jm_nodes names no schema_version\\), which ignores a job's user and runs the job as its own user, root typically; ${undone}\\. Upgrade or stop that service, then try again$`,
  );
}

function guarded(store: Store): Store {
  return guardUsers(store, () => ({ now: Date.now(), heartbeatMs: 5000 }));
}

const add = (store: Store, id: string, options: Partial<JobOptions> = {}) =>
  addJob(store, buildJob(id, { ...HOURLY, ...options }, null, T0), {
    replace: false,
    names: CLI_NAMES,
  });

for (const backend of BACKENDS) {
  const test = (name: string, fn: Parameters<typeof onFreshStore>[1]) =>
    Deno.test(`app older nodes[${backend}]: ${name}`, () => onFreshStore(backend, fn));

  test(
    "a job given a user while an older node is live is refused, naming it, and nothing is written",
    async (store, db) => {
      await writeOlderNode(db, "old-1");
      const jobs = guarded(store);
      const error = await assertRejects(
        () => add(jobs, "rotate", { user: "nobody" }),
        ConflictError,
      );
      assertMatch(error.message, refusal("job 'rotate' would run as 'nobody'"));
      assertEquals(await store.getJob("rotate"), null);
      assertEquals(await store.latestMarkerId(), 0);
      // Without a user, the same write goes through.
      await add(jobs, "rotate");
      const change = await assertRejects(
        () => updateJob(jobs, "rotate", { user: "33" }, T0 + 1000, CLI_NAMES),
        ConflictError,
      );
      assertMatch(change.message, refusal("job 'rotate' would run as '33'"));
      assertEquals((await store.getJob("rotate"))?.user, null);
    },
  );

  test(
    "a job that already ran as its user is not refused a change; another user, or enabling it, is",
    async (store, db) => {
      await add(store, "rotate", { user: "nobody" });
      await add(store, "idle", { user: "nobody", enabled: false });
      await writeOlderNode(db, "old-1");
      const jobs = guarded(store);
      await updateJob(jobs, "rotate", { command: "echo other" }, T0 + 1000, CLI_NAMES);
      assertEquals((await store.getJob("rotate"))?.command, "echo other");
      await setEnabled(jobs, "rotate", false, T0 + 2000);
      await updateJob(jobs, "rotate", { user: "" }, T0 + 3000, CLI_NAMES);
      assertEquals((await store.getJob("rotate"))?.user, null);
      const other = await assertRejects(
        () => updateJob(jobs, "idle", { user: "www-data" }, T0 + 4000, CLI_NAMES),
        ConflictError,
      );
      assertMatch(other.message, refusal("job 'idle' would run as 'www-data'"));
      const enabling = await assertRejects(
        () => setEnabled(jobs, "idle", true, T0 + 5000),
        ConflictError,
      );
      assertMatch(enabling.message, refusal("job 'idle' would run as 'nobody'"));
      assertEquals((await store.getJob("idle"))?.enabled, false);
    },
  );

  test("a jobs file that gives users is refused whole, counting the jobs", async (store, db) => {
    await writeOlderNode(db, "old-1");
    const candidates: Candidate[] = ["a", "b", "c", "d", "e"].map((id) => ({
      source: `job '${id}'`,
      id,
      job: buildJob(id, { ...HOURLY, user: id === "e" ? "" : "nobody" }, null, T0),
      notes: [],
      problem: null,
    }));
    const error = await assertRejects(
      () => applyJobsFile(guarded(store), candidates, { prune: false, dryRun: false }),
      ConflictError,
    );
    assertMatch(
      error.message,
      refusal(
        "4 jobs would run as another user \\('a' as 'nobody', 'b' as 'nobody', 'c' as 'nobody' and 1 more\\)",
      ),
    );
    assertEquals(await store.listJobs(), []);
  });

  test(
    "a run asked by hand of a job that has a user is refused while an older node is live (it may take it)",
    async (store, db) => {
      await add(store, "rotate", { user: "nobody", enabled: false });
      await add(store, "plain");
      await writeOlderNode(db, "old-1");
      const ask = (id: string) =>
        requestRun(store, id, {
          force: false,
          queue: true,
          now: Date.now(),
          heartbeatMs: 5000,
          names: CLI_NAMES,
        });
      const error = await assertRejects(() => ask("rotate"), ConflictError);
      assertMatch(error.message, refusal("job 'rotate' would run as 'nobody'", "nothing queued"));
      assertEquals(await store.listRuns({ job_id: "rotate", limit: 10 }), []);
      // A job without a user runs as the service, on any node.
      assertEquals((await ask("plain")).status, "queued");
    },
  );

  test(
    "an older node stopped, declared dead or silent, and a node of this release, refuse nothing",
    async (store, db) => {
      await writeOlderNode(db, "stopped", { stopped: true });
      await writeOlderNode(db, "dead", { dead: true });
      await writeOlderNode(db, "silent", { agoMs: 3_600_000 });
      await store.saveNode({
        ...serviceRow("current"),
        db_heartbeat_at: await store.databaseNow(),
        heartbeat_ms: 5000,
        schema_version: SCHEMA_VERSION,
      });
      await add(guarded(store), "rotate", { user: "nobody" });
      assertEquals((await store.getJob("rotate"))?.user, "nobody");
    },
  );
}
