/**
 * What GET shows of a job besides its fields (next fires, runs, last run,
 * …) may come back in a write as GET showed it, so a job read can be sent
 * back whole; a changed value is refused, naming the field, never taken
 * and ignored.
 */
import { assertEquals, assertMatch } from "./assert.ts";
import { BACKENDS, freshDatabase, rawQuery } from "./helpers.ts";
import { type Api, startApi } from "./http_harness.ts";

type Body = Record<string, unknown>;

async function withApi(backend: (typeof BACKENDS)[number], fn: (api: Api) => Promise<void>) {
  await using db = await freshDatabase(backend);
  await using api = await startApi(db);
  await fn(api);
}

const JOB = { id: "nightly", command: "true", cron: "30 2 * * *" };
const HOUR = 3_600_000;

/** The job with one run ended and one running, as GET /jobs/{id} and GET /jobs show it. */
async function jobWithRuns(api: Api) {
  await api.call("POST", "/api/v1/jobs", { body: JOB });
  const [ended, running] = (await api.store.claimRuns([
    {
      job_id: "nightly",
      scheduled_at: Date.now() - 2 * HOUR,
      status: "running",
      trigger: "schedule",
    },
    { job_id: "nightly", scheduled_at: Date.now() - HOUR, status: "running", trigger: "manual" },
  ])) as number[];
  await api.store.updateRun(ended, {
    status: "success",
    started_at: Date.now() - 2 * HOUR,
    finished_at: Date.now() - 2 * HOUR + 5,
    exit_code: 0,
    stdout: "done\n",
  });
  const shown = (await api.call("GET", "/api/v1/jobs/nightly")).body as Body;
  const listed = ((await api.call("GET", "/api/v1/jobs")).body as Body[])[0];
  return { ended, running, shown, listed };
}

/** A PATCH of `body`: its status, and the field and message of a refusal. */
async function patch(api: Api, body: Body) {
  const answer = await api.call("PATCH", "/api/v1/jobs/nightly", { body });
  const { field, error } = answer.body as { field?: string; error?: string };
  return { status: answer.status, field, error: error ?? "" };
}

for (const backend of BACKENDS) {
  Deno.test(`api (${backend}): a job read is taken back whole, its read-only fields as GET showed them`, () =>
    withApi(backend, async (api) => {
      const { running, shown, listed } = await jobWithRuns(api);
      for (const body of [shown, listed]) {
        assertEquals((await patch(api, body)).status, 200, JSON.stringify(body));
        const replaced = await api.call("POST", "/api/v1/jobs?replace=true", { body });
        assertEquals(replaced.status, 200, JSON.stringify(replaced.body));
      }
      // Read a while ago: its first fires have passed, a run has ended since.
      const earlier = new Date(Date.now() - 3 * 24 * HOUR).toISOString();
      const before = (await api.call("GET", `/api/v1/jobs/nightly/next?from=${earlier}&count=5`))
        .body as { next: string[] };
      await api.store.updateRun(running, {
        status: "failed",
        started_at: Date.now() - HOUR,
        finished_at: Date.now(),
        exit_code: 3,
      });
      const old = await patch(api, { ...shown, next: before.next, next_fire: before.next[0] });
      assertEquals(old.status, 200, old.error);
      // A time is the same instant in any offset, or as epoch milliseconds.
      const fire = Date.parse(listed.next_fire as string);
      const paris = new Date(fire + HOUR).toISOString().replace("Z", "+01:00");
      assertEquals((await patch(api, { next_fire: paris })).status, 200, paris);
      assertEquals((await patch(api, { next_fire: fire })).status, 200);
      const created = Date.parse(shown.created_at as string);
      assertEquals((await patch(api, { created_at: created })).status, 200);
    }));

  Deno.test(`api (${backend}): a copy is taken back after what other jobs and runs made true since`, async () => {
    await using db = await freshDatabase(backend);
    await using api = await startApi(db);
    await api.call("POST", "/api/v1/jobs", { body: JOB });
    await api.call("POST", "/api/v1/jobs", {
      body: { id: "cleanup", command: "true", after_job: "nightly", after_outcome: "success" },
    });
    // Read before nightly's first run, and before it was removed.
    const listed = ((await api.call("GET", "/api/v1/jobs")).body as Body[])
      .find((j) => j.id === "nightly")!;
    assertEquals(listed.last_run, null);
    const follower = await api.call("GET", "/api/v1/jobs/cleanup");
    const [first] = (await api.store.claimRuns([
      {
        job_id: "nightly",
        scheduled_at: Date.now() - HOUR,
        status: "running",
        trigger: "schedule",
      },
    ])) as number[];
    const shown = (await api.call("GET", "/api/v1/jobs/nightly")).body as Body;
    assertEquals((shown.runs as Body[]).map((r) => r.id), [first]);
    await api.store.updateRun(first, {
      status: "success",
      started_at: Date.now() - HOUR,
      finished_at: Date.now() - HOUR + 5,
      exit_code: 0,
    });
    assertEquals((await patch(api, { ...listed, description: "a" })).status, 200);
    // Its run removed since (runs.keep_days).
    await rawQuery(db, "DELETE FROM jm_runs WHERE id = ?", [first]);
    assertEquals((await patch(api, { ...shown, description: "b" })).status, 200);
    await api.call("DELETE", "/api/v1/jobs/nightly");
    const sentBack = await api.call("PATCH", "/api/v1/jobs/cleanup", {
      body: { ...(follower.body as Body), description: "c" },
      headers: { "If-Match": follower.headers.get("ETag")! },
    });
    assertEquals(sentBack.status, 200, JSON.stringify(sentBack.body));
  });

  Deno.test(`api (${backend}): a read-only field changed is refused, naming it and what changes it`, () =>
    withApi(backend, async (api) => {
      const { ended, running, shown, listed } = await jobWithRuns(api);
      const next = shown.next as string[];
      const runs = shown.runs as Body[];
      const endedRun = runs.find((r) => r.id === ended)!;
      const lastRun = listed.last_run as Body;
      const fire = Date.parse(listed.next_fire as string);
      const changes: [Body, RegExp][] = [
        [
          { next: next.map((t) => new Date(Date.parse(t) + HOUR).toISOString()) },
          /^next: \[.+ is not this job's fires, nor those it would have, from the first instant given: next is read-only \(GET shows it, a write does not set it\); change "cron" or the six fields, "timezone" or "enabled" \(POST \/jobs\/\{id\}\/run runs it now\)$/,
        ],
        [{ next: [] }, /^next: \[\] is not this job's fires/],
        [
          { next_fire: new Date(fire + 60_000).toISOString() },
          new RegExp(
            `^next_fire: ".*" is not a fire of this job nor of the job as it would be \\(it fires next at ${
              new Date(fire).toISOString()
            }\\): next_fire is read-only`,
          ),
        ],
        [{ next_fire: null }, /^next_fire: null is not a fire of this job/],
        // Without an offset a time names no instant.
        [{ next_fire: (listed.next_fire as string).replace("Z", "") }, /^next_fire: /],
        [
          { invalid: 3 },
          /^invalid: 3 is not a text or null: invalid is read-only .*; it says why the job cannot run: fix the fields it names$/,
        ],
        [
          { after_missing: "no" },
          /^after_missing: "no" is not true or false: after_missing is read-only .*; it says whether after_job names no job: set "after_job" to a job that exists, or null$/,
        ],
        [
          { runs: [{ ...endedRun, status: "failed" }] },
          new RegExp(
            `^runs: .* is not a run of this job as recorded \\(run ${ended}: its status is "success", not "failed"\\): runs is read-only \\(GET shows it, a write does not set it\\); POST /jobs/\\{id\\}/run starts a run and POST /runs/\\{id\\}/cancel ends one; leave it out of a write$`,
          ),
        ],
        [
          { runs: [{ ...endedRun, exit_code: 1 }] },
          new RegExp(`\\(run ${ended}: its exit_code is 0\\)`),
        ],
        [
          { runs: [{ ...endedRun, job_id: "other" }] },
          new RegExp(`\\(run ${ended}: its job_id is "nightly"\\)`),
        ],
        [{ runs: "none" }, /^runs: "none" is not a list of this job's runs: runs is read-only/],
        // GET never shows it: a write's answer does.
        [
          { warnings: "no" },
          /^warnings: "no" is not a list of texts: warnings is read-only \(a write's answer holds it, a write does not set it\); it says what the write that answered with the job warned of; leave it out of a write$/,
        ],
        [
          { last_run: { ...lastRun, exit_code: 2 } },
          new RegExp(
            `^last_run: .* is not a run of this job as recorded \\(run ${running}: a run not ended has no exit_code\\)`,
          ),
        ],
        [
          { created_at: "2020-01-01T00:00:00Z" },
          /^created_at: "2020-01-01T00:00:00Z" is not when this job was created \(.*\): created_at is read-only/,
        ],
        [
          { updated_at: new Date(Date.now() + HOUR).toISOString() },
          /^updated_at: ".*" is not a time this job was read at \(it last changed at .*\): updated_at is read-only .*If-Match\)$/,
        ],
      ];
      for (const [body, message] of changes) {
        const answer = await patch(api, { ...shown, ...body });
        const [field] = Object.keys(body);
        assertEquals([answer.status, answer.field], [400, field], JSON.stringify(body));
        assertMatch(answer.error, message);
      }
      // Nothing of it was written.
      const after = (await api.call("GET", "/api/v1/jobs/nightly")).body as Body;
      assertEquals(after.updated_at, shown.updated_at);
      // A job added has no runs: another job's are not copied with it.
      const copy = await api.call("POST", "/api/v1/jobs", {
        body: { ...shown, id: "copy" },
      });
      assertEquals([copy.status, (copy.body as Body).field], [400, "runs"]);
      assertMatch((copy.body as { error: string }).error, /a run of job 'nightly', not of 'copy'/);
      assertEquals((await api.call("GET", "/api/v1/jobs/copy")).status, 404);
    }));
}
