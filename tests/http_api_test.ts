/**
 * The REST API on every backend, in-process on a real store: each endpoint,
 * the auth rules, errors with the CLI's own messages and statuses, and
 * every answer checked against the OpenAPI document (tests/http_harness.ts).
 */
import { buildJob } from "../src/domain/job.ts";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import {
  BACKENDS,
  captureLogs,
  cli,
  freshDatabase,
  rawQuery,
  saveNodes,
  serviceRow,
  waitFor,
} from "./helpers.ts";
import { defaultSettings } from "../src/config/config.ts";
import { Metrics } from "../src/http/metrics.ts";
import { readinessOf, readyState } from "../src/http/health.ts";
import { OPENAPI } from "../src/http/openapi.ts";
import { startHttpServer } from "../src/http/server.ts";
import { openStore } from "../src/store/open.ts";
import { resolveTarget } from "../src/config/database.ts";
import {
  ADMIN,
  type Api,
  covered,
  HEALTHY_VITALS,
  NOBODY,
  READER,
  readSse,
  serverDeps,
  startApi,
} from "./http_harness.ts";
import { DatabaseError } from "../src/errors.ts";
import { hereNode } from "../src/domain/here_run.ts";
import type { Store } from "../src/store/store.ts";
import { changeSettles, withheld } from "../src/http/api/env_masks.ts";
import { cutLine } from "../src/domain/output_cut.ts";

const JOB = { id: "nightly", command: "echo hi", cron: "30 2 * * *", timezone: "Europe/Paris" };

async function withApi(backend: (typeof BACKENDS)[number], fn: (api: Api) => Promise<void>) {
  await using db = await freshDatabase(backend);
  await using api = await startApi(db);
  await fn(api);
}

for (const backend of BACKENDS) {
  Deno.test(`api (${backend}): a job's life: add, list, show, next, update, disable, enable, remove`, () =>
    withApi(backend, async (api) => {
      const added = await api.call("POST", "/api/v1/jobs", {
        body: { ...JOB, timeout: 30, env: { A: "1" } },
      });
      assertEquals(added.status, 201);
      assertEquals(added.headers.get("location"), "/api/v1/jobs/nightly");
      assert(Number(added.headers.get("reload-marker")) > 0, "a write names its reload marker");
      const job = added.body as Record<string, unknown>;
      assertEquals([job.minute, job.hour, job.timezone, job.timeout, job.env], [
        "30",
        "2",
        "Europe/Paris",
        30,
        { A: "1" },
      ]);

      const listed = (await api.call("GET", "/api/v1/jobs")).body as Record<string, unknown>[];
      assertEquals(listed.map((j) => [j.id, j.schedule_words, j.zone, j.last_run]), [
        ["nightly", "at 02:30 every day", "Europe/Paris", null],
      ]);
      assertStringIncludes(String(listed[0].next_fire), ":30:00.000Z");

      const shown = (await api.call("GET", "/api/v1/jobs/nightly?count=3")).body as {
        next: string[];
      };
      assertEquals(shown.next.length, 3);
      const next =
        (await api.call("GET", "/api/v1/jobs/nightly/next?count=2&from=2026-03-28T12:00")).body;
      // Paris springs forward on 2026-03-29: 02:30 does not exist, the fire comes at 03:00.
      assertEquals(next, {
        id: "nightly",
        after_job: null,
        after_outcome: null,
        timezone: "Europe/Paris",
        from: "2026-03-28T11:00:00.000Z",
        next: ["2026-03-29T01:00:00.000Z", "2026-03-30T00:30:00.000Z"],
      });
      // An empty `from` is no `from`, as any empty parameter: from now.
      const fromNow = await api.call("GET", "/api/v1/jobs/nightly/next?count=1&from=");
      assertEquals(fromNow.status, 200, JSON.stringify(fromNow.body));

      // A job as GET shows it can be sent back whole: what it shows besides the job is left alone.
      const asShown = (await api.call("GET", "/api/v1/jobs/nightly")).body as Record<
        string,
        unknown
      >;
      const sentBack = await api.call("PATCH", "/api/v1/jobs/nightly", { body: asShown });
      assertEquals(sentBack.status, 200, JSON.stringify(sentBack.body));
      assertEquals(sentBack.headers.get("reload-marker"), null, "the same job: no change");

      const updated = await api.call("PATCH", "/api/v1/jobs/nightly", {
        body: { minute: "45", unset_env: ["A"], description: "the backup" },
      });
      assertEquals(updated.status, 200);
      const after = updated.body as Record<string, unknown>;
      assertEquals([after.minute, after.hour, after.env, after.description], [
        "45",
        "2",
        {},
        "the backup",
      ]);

      // The policy fields go back to the service's default as GET shows it: null.
      const policies = { max_instances: 3, coalesce: true, misfire_grace_time: 5 };
      const set = await api.call("PATCH", "/api/v1/jobs/nightly", { body: policies });
      const pick = (b: unknown) => {
        const { max_instances, coalesce, misfire_grace_time } = b as typeof policies;
        return { max_instances, coalesce, misfire_grace_time };
      };
      assertEquals([set.status, pick(set.body)], [200, policies]);
      const reset = await api.call("PATCH", "/api/v1/jobs/nightly", {
        body: { max_instances: null, coalesce: null, misfire_grace_time: "" },
      });
      assertEquals([reset.status, pick(reset.body)], [200, {
        max_instances: null,
        coalesce: null,
        misfire_grace_time: null,
      }]);

      // Two editors of one copy: the second change, made on the copy the first replaced, is
      // refused (If-Match, the ETag GET gave), not merged into the first.
      const read = await api.call("GET", "/api/v1/jobs/nightly");
      const etag = read.headers.get("etag")!;
      assertEquals(etag, `"${Date.parse((read.body as { updated_at: string }).updated_at)}"`);
      const first = await api.call("PATCH", "/api/v1/jobs/nightly", {
        body: { minute: "*/5" },
        headers: { "If-Match": etag },
      });
      assertEquals(first.status, 200, JSON.stringify(first.body));
      const second = await api.call("PATCH", "/api/v1/jobs/nightly", {
        body: { hour: "4" },
        headers: { "If-Match": etag },
      });
      assertEquals(second.status, 412);
      assertMatch(
        (second.body as { error: string }).error,
        /^job 'nightly' was changed at \S+Z, after the copy this change was made on; nothing written: read it again and make the change there$/,
      );
      const kept = (await api.call("GET", "/api/v1/jobs/nightly")).body as Record<string, unknown>;
      assertEquals([kept.minute, kept.hour], ["*/5", "2"]);
      const badTag = await api.call("PATCH", "/api/v1/jobs/nightly", {
        body: { hour: "4" },
        headers: { "If-Match": "yesterday" },
      });
      assertEquals(badTag.status, 400);
      // `*` matches whatever version is current (RFC 9110).
      const anyTag = await api.call("PATCH", "/api/v1/jobs/nightly", {
        body: { hour: "2" },
        headers: { "If-Match": "*" },
      });
      assertEquals(anyTag.status, 200, JSON.stringify(anyTag.body));

      const disabled = await api.call("POST", "/api/v1/jobs/nightly/disable");
      assertEquals((disabled.body as { enabled: boolean }).enabled, false);
      const again = await api.call("POST", "/api/v1/jobs/nightly/disable");
      assertEquals(again.headers.get("reload-marker"), null, "no change, no marker");
      await api.call("POST", "/api/v1/jobs/nightly/enable");

      // A preview changes nothing: a read-only token may ask for it.
      const preview = await api.call("POST", "/api/v1/schedule/preview", {
        body: { cron: "0 9 * * 1-5", timezone: "Asia/Tokyo", count: 2 },
        token: READER,
      });
      assertEquals(preview.status, 200);
      const p = preview.body as Record<string, unknown>;
      assertEquals([p.schedule, p.schedule_words, p.timezone], [
        "0 0 9 * * mon-fri",
        "at 09:00 on mon-fri",
        "Asia/Tokyo",
      ]);
      assertEquals((p.next as string[]).map((at) => at.slice(10)), [
        "T00:00:00.000Z",
        "T00:00:00.000Z",
      ]);
      const badPreview = await api.call("POST", "/api/v1/schedule/preview", {
        body: { hour: "25" },
      });
      assertEquals([badPreview.status, (badPreview.body as { field: string }).field], [
        400,
        "hour",
      ]);
      // A schedule only: what GET shows, or a job's command, is refused, not ignored.
      for (const field of ["zone", "schedule", "command"]) {
        const stray = await api.call("POST", "/api/v1/schedule/preview", {
          body: { cron: "0 3 * * *", [field]: "x" },
          token: READER,
        });
        assertEquals([stray.status, (stray.body as { field: string }).field], [400, field]);
      }

      const removed = await api.call("DELETE", "/api/v1/jobs/nightly");
      assertEquals([removed.status, (removed.body as { id: string }).id], [200, "nightly"]);
      assertEquals((await api.call("GET", "/api/v1/jobs")).body, []);
    }));

  Deno.test(`api (${backend}): retries and follow-up jobs: fields, a job without a schedule, a cycle refused`, () =>
    withApi(backend, async (api) => {
      const added = await api.call("POST", "/api/v1/jobs", {
        body: { ...JOB, retries: 2, retry_delay: "30", retry_on: "failed,timeout" },
      });
      assertEquals(added.status, 201);
      const job = added.body as Record<string, unknown>;
      assertEquals(
        [job.retries, job.retry_delay, job.retry_max_delay, job.retry_on, job.retry_overlap],
        [2, 30, 3600, "failed,timeout", false],
      );
      assertEquals(added.headers.get("warning"), null, "retry_on with retries: nothing to say");
      // retry_on without retries is stored and said, as the CLI says it on stderr.
      const warning =
        `299 - "job 'nightly' has retries 0, so \\"retry_on\\" does nothing until \\"retries\\" is above 0"`;
      const unused = await api.call("PATCH", "/api/v1/jobs/nightly", {
        body: { retries: 0, retry_on: "failed" },
      });
      assertEquals([unused.status, unused.headers.get("warning")], [200, warning]);
      assertEquals((unused.body as Record<string, unknown>).retry_on, "failed");
      const replaced = await api.call("POST", "/api/v1/jobs?replace=true", {
        body: { ...JOB, retry_on: "timeout" },
      });
      assertEquals([replaced.status, replaced.headers.get("warning")], [200, warning]);
      const restored = await api.call("PATCH", "/api/v1/jobs/nightly", {
        body: { retries: 2, retry_on: "failed,timeout" },
      });
      assertEquals([restored.status, restored.headers.get("warning")], [200, null]);
      const follower = await api.call("POST", "/api/v1/jobs", {
        body: {
          id: "report",
          command: "echo report",
          after_job: "nightly",
          after_outcome: "failure",
        },
      });
      assertEquals(follower.status, 201);
      const listed = (await api.call("GET", "/api/v1/jobs")).body as Record<string, unknown>[];
      assertEquals(listed.map((j) => [j.id, j.schedule, j.schedule_words, j.next_fire]).slice(1), [
        ["report", "", "after 'nightly' ends: failure", null],
      ]);
      const shown = (await api.call("GET", "/api/v1/jobs/report")).body as Record<string, unknown>;
      assertEquals([shown.after_job, shown.after_outcome, shown.next], ["nightly", "failure", []]);
      assertEquals(shown.after_missing, false);
      const next = (await api.call("GET", "/api/v1/jobs/report/next")).body as Record<
        string,
        unknown
      >;
      assertEquals([next.after_job, next.after_outcome, next.next], ["nightly", "failure", []]);
      // Its schedule and follow-up fields, as read, go back unchanged.
      const back = Object.fromEntries(
        [
          ...["second", "minute", "hour", "day", "month", "day_of_week"],
          ...["retries", "retry_delay", "retry_max_delay", "retry_on", "retry_overlap"],
          ...["after_job", "after_outcome"],
        ].map((k) => [k, shown[k]]),
      );
      const same = await api.call("PATCH", "/api/v1/jobs/report", { body: back });
      assertEquals([same.status, same.headers.get("reload-marker")], [200, null]);

      const cycle = await api.call("PATCH", "/api/v1/jobs/nightly", {
        body: { after_job: "report" },
      });
      assertEquals([cycle.status, cycle.body], [400, {
        error:
          "after_job: 'nightly' following 'report' would close a cycle: nightly → report → nightly (a job's end would start itself again); drop one link with \"after_job\": null",
        // The job's field, beside which a form shows it.
        field: "after_job",
      }]);
      const badOutcome = await api.call("PATCH", "/api/v1/jobs/report", {
        body: { after_job: "nightly", after_outcome: "sometimes" },
      });
      assertEquals([badOutcome.status, (badOutcome.body as { field: string }).field], [
        400,
        "after_outcome",
      ]);
      // A bad id is named as sent, in after_job, with no outcome added to it.
      const badLink = await api.call("PATCH", "/api/v1/jobs/report", {
        body: { after_job: "bad id" },
      });
      assertEquals([badLink.status, badLink.body], [400, {
        error:
          'after_job: "bad id" has characters outside A-Z a-z 0-9 . _ : - (allowed: 1-191 characters of A-Z a-z 0-9 . _ : -)',
        field: "after_job",
      }]);
      // What GET shows goes back as it was shown; another value is refused, not ignored.
      const full = (await api.call("GET", "/api/v1/jobs/nightly")).body as Record<string, unknown>;
      const listedFull = ((await api.call("GET", "/api/v1/jobs")).body as Record<string, unknown>[])
        .find((j) => j.id === "nightly")!;
      for (const body of [full, listedFull]) {
        const back = await api.call("PATCH", "/api/v1/jobs/nightly", { body });
        assertEquals(
          [back.status, back.headers.get("reload-marker")],
          [200, null],
          JSON.stringify(back.body),
        );
      }
      for (
        const [field, value] of [
          ["schedule", "0 0 3 * * *"],
          ["schedule_words", "at 03:00"],
          ["zone", "Asia/Tokyo"],
          ["created_at", "garbage"],
          // A time, but not the job's: its creation is not changed.
          ["created_at", "2020-01-01T00:00:00Z"],
        ]
      ) {
        const refused = await api.call("PATCH", "/api/v1/jobs/nightly", {
          body: { [field]: value },
        });
        assertEquals([refused.status, (refused.body as { field: string }).field], [400, field]);
      }
      const tokyo = await api.call("PATCH", "/api/v1/jobs/nightly", {
        body: { timezone: "Asia/Tokyo", zone: "Asia/Tokyo" },
      });
      assertEquals(tokyo.status, 200, JSON.stringify(tokyo.body));
      // A copy read, changed in its own fields and sent back whole: what it showed still goes.
      const read = (await api.call("GET", "/api/v1/jobs/nightly")).body as Record<string, unknown>;
      const changed = await api.call("PATCH", "/api/v1/jobs/nightly", {
        body: { ...read, hour: "4", timezone: "Europe/Paris" },
      });
      assertEquals(changed.status, 200, JSON.stringify(changed.body));
      const now = (await api.call("GET", "/api/v1/jobs/nightly")).body as Record<string, unknown>;
      assertEquals([now.hour, now.zone], ["4", "Europe/Paris"]);
      const newZone = await api.call("POST", "/api/v1/jobs", {
        body: { ...JOB, id: "zoned", zone: "Asia/Tokyo" },
      });
      assertMatch(
        (newZone.body as { error: string }).error,
        /^zone: "Asia\/Tokyo" is not what this job shows nor what it would show \("Europe\/Paris"\): zone is read-only \(GET shows it, a write does not set it\); give "timezone"/,
      );
      assertEquals((await api.call("GET", "/api/v1/jobs/zoned")).status, 404);
      // The job followed removed: its follower is idle, and says so.
      assertEquals((await api.call("DELETE", "/api/v1/jobs/nightly")).status, 200);
      const idle = (await api.call("GET", "/api/v1/jobs/report")).body as Record<string, unknown>;
      assertEquals([idle.after_job, idle.after_missing], ["nightly", true]);
      await api.call("POST", "/api/v1/jobs", { body: { ...JOB, id: "nightly" } });
      // An id may end in ":always": after_job names it whole, and the outcome is its own field.
      await api.call("POST", "/api/v1/jobs", { body: { ...JOB, id: "ns:always" } });
      const colon = await api.call("POST", "/api/v1/jobs", {
        body: { id: "f2", command: "true", after_job: "ns:always" },
      });
      assertEquals(colon.status, 201, JSON.stringify(colon.body));
      const f2 = colon.body as Record<string, unknown>;
      assertEquals([f2.after_job, f2.after_outcome], ["ns:always", "success"]);
      // "" drops the link, as null does.
      const dropped = await api.call("PATCH", "/api/v1/jobs/f2", {
        body: { after_job: "", cron: "0 0 1 1 *" },
      });
      assertEquals(dropped.status, 200, JSON.stringify(dropped.body));
      assertEquals((dropped.body as Record<string, unknown>).after_job, null);
    }));

  Deno.test(`api (${backend}): errors carry the CLI's message, the field and the status`, () =>
    withApi(backend, async (api) => {
      await using db = await freshDatabase(backend);
      const cliError = async (...args: string[]) => {
        const r = await cli(["--database", db.url, ...args]);
        return r.stderr.trim().replace(/^jobsmanager: /, "");
      };
      const bad = await api.call("POST", "/api/v1/jobs", {
        body: { id: "x", command: "true", minute: "61" },
      });
      assertEquals(bad.status, 400);
      assertEquals(bad.body, {
        error: await cliError("job", "add", "x", "--command", "true", "--minute", "61"),
        field: "minute",
      });
      // A duration past any date a database holds: refused, not an SQL error (MySQL's was a 500).
      const huge = `${"9".repeat(400)}w`;
      for (const path of ["/api/v1/runs", "/api/v1/logs"]) {
        const since = await api.call("GET", `${path}?since=${huge}`);
        assertEquals(since.status, 400, path);
        assertMatch(
          (since.body as { error: string }).error,
          /^since: '9{60}…' is longer than 100 years/,
        );
      }
      assertMatch(
        await cliError("runs", "--since", "36501d"),
        /^--since: '36501d' is longer than 100 years \(36500d\), the longest taken; give a shorter duration \(see `jobsmanager runs --help`\)$/,
      );
      // Each names what was typed: the query parameter here, the flag in the CLI.
      for (
        const [query, flags, name] of [
          ["job=bad%20id", ["--job", "bad id"], "job"],
          ["status=nope", ["--status", "nope"], "status"],
          ["since=soon", ["--since", "soon"], "since"],
          ["limit=0", ["--limit", "0"], "limit"],
        ] as [string, string[], string][]
      ) {
        const refused = await api.call("GET", `/api/v1/runs?${query}`);
        assertEquals(refused.status, 400, query);
        const error = (refused.body as { error: string }).error;
        assert(error.startsWith(`${name}: `), error);
        // The CLI's names its option's help too.
        assertEquals(
          await cliError("runs", ...flags),
          `--${error} (see \`jobsmanager runs --help\`)`,
        );
      }
      const level = await api.call("GET", "/api/v1/logs?level=loud");
      assertEquals(
        `--${(level.body as { error: string }).error} (see \`jobsmanager logs --help\`)`,
        await cliError("logs", "--level", "loud"),
      );
      const zone = await api.call("POST", "/api/v1/jobs", {
        body: { ...JOB, timezone: "Mars/Olympus" },
      });
      assertEquals([zone.status, (zone.body as { field: string }).field], [400, "timezone"]);
      // An env name with "=" in it is refused, not stored as another name with the rest in its value.
      const envName = await api.call("POST", "/api/v1/jobs", {
        body: { ...JOB, id: "envname", env: { "A=B": "c" } },
      });
      assertEquals([envName.status, (envName.body as { field: string }).field], [400, "env"]);
      assertEquals((await api.call("GET", "/api/v1/jobs/envname")).status, 404);
      // A variable twice in a list, differently, or dropped and set at once: which was meant
      // cannot be told. Alike, it counts once.
      const twice = await api.call("POST", "/api/v1/jobs", {
        body: { ...JOB, id: "envtwice", env: ["A=1", "A=2"] },
      });
      assertEquals([twice.status, twice.body], [400, {
        error: 'env: A is given twice with different values ("env": "A=…" twice); give it once',
        field: "env",
      }]);
      assertEquals((await api.call("GET", "/api/v1/jobs/envtwice")).status, 404);
      const alike = await api.call("POST", "/api/v1/jobs", {
        body: { ...JOB, id: "envtwice", env: ["A=1", "A=1"] },
      });
      assertEquals(alike.status, 201, JSON.stringify(alike.body));
      assertEquals((alike.body as { env: unknown }).env, { A: "1" });
      const both = await api.call("PATCH", "/api/v1/jobs/envtwice", {
        body: { unset_env: ["A"], env: ["A=3"] },
      });
      assertEquals([both.status, both.body], [400, {
        error:
          'env: A is both dropped and set ("unset_env": "A" and "env": "A=…"); give one of them',
        field: "env",
      }]);
      await api.call("DELETE", "/api/v1/jobs/envtwice");

      await api.call("POST", "/api/v1/jobs", { body: JOB });
      await cli([
        "--database",
        db.url,
        "job",
        "add",
        "nightly",
        "--command",
        "true",
        "--cron",
        "* * * * *",
      ]);
      // The same refusal, each saying what its own user gives.
      const taken = await api.call("POST", "/api/v1/jobs", { body: JOB });
      assertEquals([taken.status, taken.body], [409, {
        error:
          "job 'nightly' already exists; change it with PATCH /api/v1/jobs/nightly or pass ?replace=true",
      }]);
      assertEquals(
        await cliError("job", "add", "nightly", "--command", "true", "--cron", "* * * * *"),
        "job 'nightly' already exists; change it with `jobsmanager job update … nightly` or pass --replace",
      );
      const replaced = await api.call("POST", "/api/v1/jobs?replace=true", {
        body: { ...JOB, command: "echo again" },
      });
      assertEquals([replaced.status, (replaced.body as { command: string }).command], [
        200,
        "echo again",
      ]);

      const missing = await api.call("PATCH", "/api/v1/jobs/ghost", { body: { minute: "1" } });
      // As the CLI says it, without the CLI's command to list the jobs.
      assertEquals([missing.status, missing.body], [404, {
        error: (await cliError("job", "update", "ghost", "--minute", "1"))
          .replace(" (see `jobsmanager job list`)", ""),
      }]);
      // Bad input is said first, as the CLI says it: 400, not 404.
      const badMissing = await api.call("PATCH", "/api/v1/jobs/ghost", { body: { timeout: -5 } });
      assertEquals([badMissing.status, badMissing.body], [400, {
        error: await cliError("job", "update", "ghost", "--timeout=-5"),
        field: "timeout",
      }]);
      const badId = await api.call("GET", "/api/v1/jobs/bad%20id");
      assertEquals([badId.status, badId.body], [400, {
        error: await cliError("job", "show", "bad id"),
        field: "id",
      }]);
      // A row written by hand with such an id is still reached, as the CLI reaches it.
      await api.store.changeJobs(() => ({
        put: [buildJob("handmade", { command: "true", cron: "@daily" }, null, 1)].map((job) => ({
          ...job,
          id: "bad id",
        })),
        remove: [],
      }));
      const handmade = await api.call("GET", "/api/v1/jobs/bad%20id");
      const shown = handmade.body as { id: string; invalid: string };
      assertEquals([handmade.status, shown.id], [200, "bad id"]);
      assertStringIncludes(shown.invalid, 'id: "bad id" has characters outside');
      assertEquals((await api.call("POST", "/api/v1/jobs/bad%20id/disable")).status, 200);
      assertEquals((await api.call("DELETE", "/api/v1/jobs/bad%20id")).status, 200);
      assertEquals((await api.call("GET", "/api/v1/jobs/bad%20id")).status, 400);

      const notString = await api.call("POST", "/api/v1/jobs", { body: { ...JOB, id: 5 } });
      assertEquals([notString.status, notString.body], [400, {
        error: "id: 5 is not a string (give the job's id, 1-191 characters of A-Z a-z 0-9 . _ : -)",
        field: "id",
      }]);
      const unknown = await api.call("POST", "/api/v1/jobs", {
        body: { ...JOB, id: "y", comand: "x" },
      });
      assertEquals([unknown.status, (unknown.body as { field: string }).field], [400, "comand"]);
      const notJson = await fetch(`${api.url}/api/v1/jobs`, {
        method: "POST",
        headers: { Authorization: `Bearer ${ADMIN}`, "Content-Type": "text/plain" },
        body: JSON.stringify(JOB),
      });
      assertEquals(notJson.status, 415);
      await notJson.body?.cancel();
      // JSON that is not an object is the client's mistake, named, not a server error.
      for (
        const [method, path] of [
          ["POST", "/api/v1/jobs"],
          ["PATCH", "/api/v1/jobs/x"],
          ["POST", "/api/v1/jobs/x/run"],
          ["POST", "/api/v1/schedule/preview"],
        ]
      ) {
        for (const [body, named] of [["null", "null"], ["[1]", "an array"], ["5", "5"]]) {
          const answer = await fetch(`${api.url}${path}`, {
            method,
            headers: { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" },
            body,
          });
          assertEquals([`${method} ${path} ${body}`, answer.status, await answer.json()], [
            `${method} ${path} ${body}`,
            400,
            { error: `the body must be a JSON object ({…}), not ${named}` },
          ]);
        }
      }
      const long = await api.call("POST", "/api/v1/jobs", { body: "x".repeat(100_000) });
      assertEquals(long.body, {
        error: `the body must be a JSON object ({…}), not "${"x".repeat(59)}…`,
      });
      const misspelt = await api.call("POST", "/api/v1/jobs/x/run", { body: { forse: true } });
      assertEquals([misspelt.status, misspelt.body], [400, {
        error: "forse: not an option of a run request (force and queue are, each true or false)",
        field: "forse",
      }]);
    }));

  Deno.test(`api (${backend}): tokens: none is 401, read may look but not change, admin may`, () =>
    withApi(backend, async (api) => {
      const none = await api.call("GET", "/api/v1/jobs", { token: null });
      assertEquals(none.status, 401);
      const wrong = await api.call("GET", "/api/v1/jobs", { token: "x".repeat(20) });
      assertEquals(wrong.status, 401);
      assertEquals((await api.call("GET", "/api/v1/jobs", { token: READER })).status, 200);
      assertEquals((await api.call("GET", "/api/v1/session", { token: READER })).body, {
        role: "read",
        auth: true,
      });
      const refused = await api.call("POST", "/api/v1/jobs", { token: READER, body: JOB });
      assertEquals(refused.status, 403);
      assertStringIncludes((refused.body as { error: string }).error, "needs an admin token");
      assertEquals(
        (await api.call("GET", "/api/v1/jobs")).body,
        [],
        "the refused write wrote nothing",
      );
      assertEquals((await api.call("POST", "/api/v1/reload", { token: READER })).status, 403);
      const reload = await api.call("POST", "/api/v1/reload");
      assertEquals(reload.status, 202);
      assert((reload.body as { marker_id: number }).marker_id > 0);

      // A read token sees where a webhook goes, not its credentials, and the
      // names of the job's variables, not their values; admin sees them whole.
      const url = "https://alice:s3cretpw@hooks.example.com/x?token=HOOKTOKEN42";
      const env = { API_KEY: "k3y-s3cret", REGION: "eu" };
      const hooked = { ...JOB, id: "hooked", on_failure_url: url, env };
      assertEquals((await api.call("POST", "/api/v1/jobs", { body: hooked })).status, 201);
      type Shown = { id: string; on_failure_url: string | null; env: Record<string, string> };
      const asReader = (await api.call("GET", "/api/v1/jobs/hooked", { token: READER }))
        .body as Shown;
      assertEquals(asReader.on_failure_url, "https://***@hooks.example.com/***?***");
      assertEquals(asReader.env, { API_KEY: "***", REGION: "***" });
      const listed = (await api.call("GET", "/api/v1/jobs", { token: READER })).body as Shown[];
      const listedHooked = listed.find((j) => j.id === "hooked")!;
      assertEquals(listedHooked.on_failure_url, asReader.on_failure_url);
      assertEquals(listedHooked.env, asReader.env);
      const asAdmin = (await api.call("GET", "/api/v1/jobs/hooked")).body as Shown;
      assertEquals([asAdmin.on_failure_url, asAdmin.env], [url, env]);
      // Nor the secret Slack (Discord, Teams) keeps in the path, nor Telegram's in its first segment.
      const slack = "https://hooks.slack.com/services/T00000000/B00000000/XXXXSECRETXXXX";
      const slacked = { ...JOB, id: "slacked", on_failure_url: slack };
      assertEquals((await api.call("POST", "/api/v1/jobs", { body: slacked })).status, 201);
      assertEquals(
        ((await api.call("GET", "/api/v1/jobs/slacked", { token: READER })).body as Shown)
          .on_failure_url,
        "https://hooks.slack.com/***",
      );
      const telegram = "https://api.telegram.org/bot123456:AAHsecretTOKEN/sendMessage";
      const telegrammed = { ...JOB, id: "telegrammed", on_failure_url: telegram };
      assertEquals((await api.call("POST", "/api/v1/jobs", { body: telegrammed })).status, 201);
      assertEquals(
        ((await api.call("GET", "/api/v1/jobs/telegrammed", { token: READER })).body as Shown)
          .on_failure_url,
        "https://api.telegram.org/***",
      );
      assertEquals(
        ((await api.call("GET", "/api/v1/jobs/slacked")).body as Shown).on_failure_url,
        slack,
      );

      // Nor does it see a token the service knows in a job that calls the API with it.
      const caller = {
        ...JOB,
        id: "caller",
        command: `curl -H 'Authorization: Bearer ${ADMIN}' http://127.0.0.1/api/v1/reload`,
        env: { API_TOKEN: ADMIN },
      };
      assertEquals((await api.call("POST", "/api/v1/jobs", { body: caller })).status, 201);
      type Called = { command: string; env: Record<string, string> };
      const seen = (await api.call("GET", "/api/v1/jobs/caller", { token: READER })).body as Called;
      assertEquals([seen.command, seen.env], [
        "curl -H 'Authorization: Bearer ***' http://127.0.0.1/api/v1/reload",
        { API_TOKEN: "***" },
      ]);
      const whole = (await api.call("GET", "/api/v1/jobs/caller")).body as Called;
      assertEquals(whole.env, { API_TOKEN: ADMIN });
      // Nor anywhere else in an answer: a working directory, a webhook's path, a run's note.
      const placed = {
        ...JOB,
        id: "placed",
        cwd: `/srv/${ADMIN}`,
        on_failure_url: `https://hooks.example.com/${ADMIN}/x`,
      };
      assertEquals((await api.call("POST", "/api/v1/jobs", { body: placed })).status, 201);
      const [run] = await api.store.claimRuns([{
        job_id: "placed",
        scheduled_at: Date.now(),
        status: "error",
        trigger: "schedule",
        note: `no such cwd '/srv/${ADMIN}'`,
      }]);
      for (const path of ["/api/v1/jobs/placed", "/api/v1/jobs", `/api/v1/runs/${run}`]) {
        const text = JSON.stringify((await api.call("GET", path, { token: READER })).body);
        assert(!text.includes(ADMIN) && text.includes("***"), `${path}: ${text}`);
      }
      const own = (await api.call("GET", `/api/v1/runs/${run}`)).body as { note: string };
      assertEquals(own.note, `no such cwd '/srv/${ADMIN}'`, "an admin reads what is stored");
      // A log line, listed or tailed, and a run in the live stream.
      await api.store.insertLogs([{
        created_at: Date.now(),
        level: "warning",
        logger_name: "jobsmanager.notify",
        message: `webhook https://hooks.example.com/${ADMIN}/x failed`,
        context: { job: "placed" },
      }]);
      const logs = JSON.stringify((await api.call("GET", "/api/v1/logs", { token: READER })).body);
      assert(!logs.includes(ADMIN) && logs.includes("/***/x"), logs);
      for (const path of ["/api/v1/logs/stream", "/api/v1/runs/stream?job=placed&after=0"]) {
        await using live = await readSse(api, path, READER);
        const event = await live.until((e) => JSON.stringify(e.data).includes("***"));
        assert(!JSON.stringify(live.events).includes(ADMIN), `${path}: ${JSON.stringify(event)}`);
      }
    }));

  Deno.test(`api (${backend}): a job whose env was broken by hand tells a read token no value, in invalid nor in env`, async () => {
    await using db = await freshDatabase(backend);
    await using api = await startApi(db);
    const secret = "TopSecretDBpass99";
    for (const id of ["number", "text", "list", "broken", "reserved"]) {
      assertEquals((await api.call("POST", "/api/v1/jobs", { body: { ...JOB, id } })).status, 201);
    }
    const stored: Record<string, string> = {
      number: `{"DB_PASS":"${secret}","N":5}`,
      text: `"${secret}"`,
      list: `["${secret}"]`,
      broken: `{"DB_PASS":"${secret}"`,
      reserved: `{"DB_PASS":"${secret}","JM_JOB_ID":"x"}`,
    };
    for (const [id, env] of Object.entries(stored)) {
      await rawQuery(db, `UPDATE jm_jobs SET env = '${env}' WHERE id = '${id}'`);
    }
    type Shown = { id: string; env: unknown; invalid: string | null };
    const listed = (await api.call("GET", "/api/v1/jobs", { token: READER })).body as Shown[];
    for (const id of Object.keys(stored)) {
      const shown = (await api.call("GET", `/api/v1/jobs/${id}`, { token: READER })).body as Shown;
      const inList = listed.find((j) => j.id === id)!;
      for (const job of [shown, inList]) {
        const text = JSON.stringify(job);
        assert(!text.includes(secret) && job.invalid !== null, `${id}: ${text}`);
      }
    }
    const env = async (id: string) =>
      ((await api.call("GET", `/api/v1/jobs/${id}`, { token: READER })).body as Shown).env;
    assertEquals(await env("number"), { DB_PASS: "***", N: "***" });
    assertEquals(await env("text"), "***");
    assertEquals(await env("list"), "***");
    const invalid = async (id: string) =>
      ((await api.call("GET", `/api/v1/jobs/${id}`)).body as Shown).invalid;
    assertEquals(
      await invalid("number"),
      `env.N: is a number; quote it ("…"): a variable's value is text (fix the row, e.g. UPDATE jm_jobs SET env = '{"DB_PASS":"…","N":"…"}' WHERE id = 'number', each "…" the variable's value as text)`,
    );
    assertEquals(
      await invalid("reserved"),
      `env: JM_JOB_ID is set by jobsmanager for every run and cannot be overridden; remove it (fix the row, e.g. UPDATE jm_jobs SET env = JSON_REMOVE(env, '$.JM_JOB_ID') WHERE id = 'reserved')`,
    );
    // The fix the message gives works on this backend.
    await rawQuery(
      db,
      `UPDATE jm_jobs SET env = JSON_REMOVE(env, '$.JM_JOB_ID') WHERE id = 'reserved'`,
    );
    assertEquals(await invalid("reserved"), null);
  });

  Deno.test(`api (${backend}): a read token reads a job's env values as *** in its runs' output and notes and in log lines about it`, async () => {
    await using db = await freshDatabase(backend);
    await using api = await startApi(db);
    const secret = "EnvOnlySecret777";
    const env = { DBPW: secret, DEBUG: "1" };
    const body = { ...JOB, id: "notesec", env };
    assertEquals((await api.call("POST", "/api/v1/jobs", { body })).status, 201);
    const note = `pids 32496 (sh -c sleep 30; : --password=${secret})`;
    const [run] = await api.store.claimRuns([{
      job_id: "notesec",
      scheduled_at: Date.now(),
      status: "success",
      trigger: "schedule",
      note,
      stdout: `DBPW=${secret}\nDEBUG=1\n`,
      stderr: `login with ${secret} refused\n`,
    }]);
    await api.store.insertLogs([{
      created_at: Date.now(),
      level: "warning",
      logger_name: "jobsmanager.runner",
      message: `job notesec: killed ${note}`,
      context: { job: "notesec", run, pids: note },
    }]);
    type Shown = { note: string; stdout: string; stderr: string };
    const one = (await api.call("GET", `/api/v1/runs/${run}`, { token: READER })).body as Shown;
    // A value shorter than 8 characters (DEBUG=1) is left: masking it would mangle every digit.
    assertEquals([one.note, one.stdout, one.stderr], [
      "pids 32496 (sh -c sleep 30; : --password=***)",
      "DBPW=***\nDEBUG=1\n",
      "login with *** refused\n",
    ]);
    const own = (await api.call("GET", `/api/v1/runs/${run}`)).body as Shown;
    assertEquals([own.note, own.stdout], [note, `DBPW=${secret}\nDEBUG=1\n`], "an admin reads all");
    const reads = [
      "/api/v1/runs",
      "/api/v1/runs?job=notesec",
      "/api/v1/jobs/notesec",
      "/api/v1/logs",
      "/api/v1/logs?job=notesec",
    ];
    for (const path of reads) {
      const text = JSON.stringify((await api.call("GET", path, { token: READER })).body);
      assert(!text.includes(secret) && text.includes("--password=***"), `${path}: ${text}`);
      const whole = JSON.stringify((await api.call("GET", path)).body);
      assert(whole.includes(secret), `${path} as admin: ${whole}`);
    }
    const logs = (await api.call("GET", "/api/v1/logs", { token: READER })).body as {
      context: Record<string, unknown>;
    }[];
    assertEquals(logs[0].context, {
      job: "notesec",
      run,
      pids: "pids 32496 (sh -c sleep 30; : --password=***)",
    });
    for (const path of ["/api/v1/logs/stream", "/api/v1/runs/stream?after=0"]) {
      await using live = await readSse(api, path, READER);
      await live.until((e) => JSON.stringify(e.data).includes("--password="));
      const text = JSON.stringify(live.events);
      assert(!text.includes(secret) && text.includes("--password=***"), `${path}: ${text}`);
    }
  });

  Deno.test(`api (${backend}): a read token does not read a job's old env values once the job changed or was removed`, async () => {
    await using db = await freshDatabase(backend);
    await using api = await startApi(db);
    const old = "supersecretvalue123";
    const body = { ...JOB, id: "sec", env: { SECRET_PW: old } };
    assertEquals((await api.call("POST", "/api/v1/jobs", { body })).status, 201);
    const note = `pids 1 (sh -c : --password=${old})`;
    const [run] = await api.store.claimRuns([{
      job_id: "sec",
      scheduled_at: Date.now(),
      status: "success",
      trigger: "schedule",
      note,
      stdout: `pw=${old}\n`,
    }]);
    await api.store.insertLogs([{
      created_at: Date.now(),
      level: "warning",
      logger_name: "jobsmanager.runner",
      message: `job sec: killed ${note}`,
      context: { job: "sec", run, pids: note },
    }]);
    type Shown = { note: string; stdout: string };
    const asReader = async () =>
      (await api.call("GET", `/api/v1/runs/${run}`, { token: READER })).body as Shown;
    assertEquals((await asReader()).stdout, "pw=***\n");
    const changed = await api.call("PATCH", "/api/v1/jobs/sec", {
      body: { env: { SECRET_PW: "newrotatedsecret999" } },
    });
    assertEquals(changed.status, 200);
    const reason = withheld("sec");
    assertEquals([(await asReader()).note, (await asReader()).stdout], [reason, reason]);
    const reads = [
      "/api/v1/runs",
      `/api/v1/runs/${run}`,
      "/api/v1/jobs/sec",
      "/api/v1/logs",
      "/api/v1/logs?job=sec",
    ];
    const leaks = async () => {
      for (const path of reads) {
        const text = JSON.stringify((await api.call("GET", path, { token: READER })).body);
        assert(
          !text.includes(old) && text.includes("withheld from read tokens"),
          `${path}: ${text}`,
        );
        const whole = JSON.stringify((await api.call("GET", path)).body);
        assert(whole.includes(old), `${path} as admin: ${whole}`);
      }
      for (const path of ["/api/v1/logs/stream", "/api/v1/runs/stream?after=0"]) {
        await using live = await readSse(api, path, READER);
        await live.until((e) => JSON.stringify(e.data).includes("withheld from read tokens"));
        const text = JSON.stringify(live.events);
        assert(!text.includes(old), `${path}: ${text}`);
      }
    };
    await leaks();
    // A run scheduled once the change has settled ran with the new env: masked, not withheld.
    // A minute, or twice a longer reload_interval.
    assertEquals([changeSettles(500), changeSettles(120_000)], [60_000, 240_000]);
    const { updated_at } = (await api.store.getJob("sec"))!;
    const [later] = await api.store.claimRuns([{
      job_id: "sec",
      // The harness polls every 0.5 s (the default reload_interval): a minute.
      scheduled_at: updated_at + changeSettles(500),
      status: "success",
      trigger: "schedule",
      stdout: "pw=newrotatedsecret999\n",
    }]);
    const shown = await api.call("GET", `/api/v1/runs/${later}`, { token: READER });
    assertEquals((shown.body as Shown).stdout, "pw=***\n");
    assertEquals((await api.call("DELETE", "/api/v1/jobs/sec")).status, 200);
    reads.splice(2, 1);
    await leaks();
  });

  Deno.test(`api (${backend}): a run that names its job's version is judged by it, not by its time: a clock behind cannot unmask an old value`, async () => {
    await using db = await freshDatabase(backend);
    await using api = await startApi(db);
    const old = "supersecretvalue123";
    const body = { ...JOB, id: "sec", env: { SECRET_PW: old } };
    assertEquals((await api.call("POST", "/api/v1/jobs", { body })).status, 201);
    const first = (await api.store.getJob("sec"))!.updated_at;
    const changed = await api.call("PATCH", "/api/v1/jobs/sec", {
      body: { env: { SECRET_PW: "newrotatedsecret999" } },
    });
    assertEquals(changed.status, 200);
    const now = (await api.store.getJob("sec"))!.updated_at;
    // The change's updated_at came from a clock far behind the services': the run of the old
    // version looks scheduled long after it, and the new version's run right at it.
    const [ofOld, ofNew] = await api.store.claimRuns([
      {
        job_id: "sec",
        job_updated_at: first,
        scheduled_at: now + 10 * changeSettles(500),
        status: "success",
        trigger: "schedule",
        stdout: `pw=${old}\n`,
      },
      {
        job_id: "sec",
        job_updated_at: now,
        scheduled_at: now,
        status: "success",
        trigger: "schedule",
        stdout: "pw=newrotatedsecret999\n",
      },
    ]);
    await api.store.insertLogs([ofOld, ofNew].map((run, i) => ({
      created_at: now + i,
      level: "info" as const,
      logger_name: "jobsmanager.runner",
      message: `job sec: run ${run} printed ${i === 0 ? old : "newrotatedsecret999"}`,
      context: { job: "sec", run },
    })));
    type Shown = { stdout: string; job_updated_at: string | null };
    const shown = async (run: number | null) =>
      (await api.call("GET", `/api/v1/runs/${run}`, { token: READER })).body as Shown;
    assertEquals((await shown(ofOld)).stdout, withheld("sec"));
    assertEquals((await shown(ofNew)).stdout, "pw=***\n");
    assertEquals((await shown(ofNew)).job_updated_at, new Date(now).toISOString());
    const logs = (await api.call("GET", "/api/v1/logs?job=sec", { token: READER })).body as {
      message: string;
      context: { run: number };
    }[];
    assertEquals(
      logs.map((line) => [line.context.run, line.message]).sort(([a], [b]) =>
        Number(a) - Number(b)
      ),
      [[ofOld, withheld("sec")], [ofNew, `job sec: run ${ofNew} printed ***`]],
    );
  });

  Deno.test(`api (${backend}): a read token reads no part of a job's env value that the output's cut split`, async () => {
    await using db = await freshDatabase(backend);
    await using api = await startApi(db);
    const body = { ...JOB, id: "cutsec", env: { SECRET_PW: "supersecretvalue123", DEBUG: "1" } };
    assertEquals((await api.call("POST", "/api/v1/jobs", { body })).status, 201);
    const stdout = `${"a".repeat(40)}supersecr${cutLine(100, 200)}etvalue123${"b".repeat(40)}`;
    const [run] = await api.store.claimRuns([{
      job_id: "cutsec",
      scheduled_at: Date.now(),
      status: "success",
      trigger: "schedule",
      stdout,
    }]);
    type Shown = { stdout: string };
    const asReader = await api.call("GET", `/api/v1/runs/${run}`, { token: READER });
    // 18 bytes (the value's 19, less one) go at either side, whatever they hold, and are counted.
    assertEquals(
      (asReader.body as Shown).stdout,
      `${"a".repeat(31)}${cutLine(136, 200)}${"b".repeat(32)}`,
    );
    assertEquals(((await api.call("GET", `/api/v1/runs/${run}`)).body as Shown).stdout, stdout);
  });

  Deno.test(`api (${backend}): run now, list and show runs, and the live stream of changes`, () =>
    withApi(backend, async (api) => {
      await api.call("POST", "/api/v1/jobs", { body: JOB });
      // A run that ended between the client's list and its stream still comes.
      const [early] = await api.store.claimRuns([
        { job_id: "nightly", scheduled_at: 1, status: "success", trigger: "schedule" },
      ]);
      await using stream = await readSse(api, "/api/v1/runs/stream?job=nightly&after=0");
      await using queuedOnly = await readSse(api, "/api/v1/runs/stream?job=nightly&status=queued");
      await stream.until((e) => (e.data as { id: number }).id === early);
      // After its first look the stream says every change from then on comes: the client
      // reads its list again once (what changed before that look is in it).
      await stream.until((e) => e.event === "ready");
      assertEquals(stream.events.map((e) => e.event), ["run", "ready"]);
      assertEquals(stream.events[1].data, { after: 0 });
      // Without `after`, what was there at its first look is the client's list to read: the
      // run queued below is a change only once that look is done.
      await queuedOnly.until((e) => e.event === "ready");
      const nobody = await api.call("POST", "/api/v1/jobs/nightly/run");
      assertEquals([nobody.status, nobody.body], [409, {
        error:
          "no live service uses this database, so nothing would run job 'nightly': pass \"queue\": true to leave it for the next service that starts",
      }]);
      const queued = await api.call("POST", "/api/v1/jobs/nightly/run", {
        body: { force: true, queue: true },
      });
      assertEquals(queued.status, 202);
      const run = queued.body as { id: number; status: string; forced: boolean; trigger: string };
      assertEquals([run.status, run.forced, run.trigger], ["queued", true, "manual"]);
      assertEquals(queued.headers.get("location"), `/api/v1/runs/${run.id}`);
      await stream.until((e) => (e.data as { id: number; status: string }).status === "queued");
      await queuedOnly.until((e) => (e.data as { id: number }).id === run.id);
      // The service would do this; the stream must show it.
      await api.store.updateRun(run.id, {
        status: "success",
        started_at: Date.now(),
        finished_at: Date.now(),
        exit_code: 0,
        stdout: "hi\n",
      });
      await stream.until((e) => (e.data as { status: string }).status === "success");
      // The queued-only stream sent it queued: it says, once, that it left that status.
      const left = await queuedOnly.until((e) =>
        e.event === "left" && (e.data as { id: number }).id === run.id
      );
      assertEquals((left as { status: string }).status, "success");
      assertEquals(stream.events.filter((e) => e.event !== "run").length, 1, "one ready");

      const shown = (await api.call("GET", `/api/v1/runs/${run.id}`)).body as { stdout: string };
      assertEquals(shown.stdout, "hi\n");
      const listed = await api.call(
        "GET",
        "/api/v1/runs?job=nightly&status=success&since=1h&limit=5",
      );
      assertEquals((listed.body as { id: number }[]).map((r) => r.id), [run.id]);
      // Lists leave the output out (up to 128 KiB a run): only the run itself carries it.
      assert(!("stdout" in (listed.body as object[])[0]), JSON.stringify(listed.body));
      assert(!("stderr" in (listed.body as object[])[0]), JSON.stringify(listed.body));
      assert(
        stream.events.every((e) => !("stdout" in (e.data as object))),
        JSON.stringify(stream.events),
      );
      assertEquals((await api.call("GET", "/api/v1/runs?status=failed")).body, []);
      const noRun = await api.call("GET", "/api/v1/runs/999999");
      assertEquals(noRun.status, 404);
      const noJob = await api.call("POST", "/api/v1/jobs/ghost/run");
      assertEquals(noJob.status, 404);
      const listing = (await api.call("GET", "/api/v1/jobs")).body as {
        last_run: { id: number };
      }[];
      assertEquals(listing[0].last_run.id, run.id);

      const waiting =
        (await api.call("POST", "/api/v1/jobs/nightly/run", { body: { queue: true } }))
          .body as { id: number };
      const cancel = await api.call("POST", `/api/v1/runs/${waiting.id}/cancel`, { token: READER });
      assertEquals(cancel.status, 403);
      const cancelled = await api.call("POST", `/api/v1/runs/${waiting.id}/cancel`);
      const { outcome, run: dropped } = cancelled.body as {
        outcome: string;
        run: { status: string; cancel_requested_by: string };
      };
      assertEquals([cancelled.status, outcome, dropped.status], [202, "dropped", "cancelled"]);
      assertEquals(dropped.cancel_requested_by, "admin token@127.0.0.1");
      const again = await api.call("POST", `/api/v1/runs/${waiting.id}/cancel`);
      assertEquals([again.status, again.body], [409, {
        error: `run ${waiting.id} has already ended (cancelled); there is nothing to cancel`,
      }]);
      // A run in a terminal: refused, saying what to do; with force, recorded interrupted.
      const [here] = await api.store.claimRuns([{
        job_id: "nightly",
        scheduled_at: Date.now(),
        status: "running",
        trigger: "manual",
        node_id: hereNode("box"),
      }]);
      const refused = await api.call("POST", `/api/v1/runs/${here}/cancel`);
      assertEquals(refused.status, 409);
      assertStringIncludes(
        (refused.body as { error: string }).error,
        `run ${here} runs in a terminal (\`jobsmanager job run --here\` on box), not in a service, and was not ended: end it there with Ctrl-C;`,
      );
      const forced = await api.call("POST", `/api/v1/runs/${here}/cancel?force=true`);
      const ended = forced.body as { outcome: string; run: { status: string; note: string } };
      assertEquals(
        [forced.status, ended.outcome, ended.run.status],
        [202, "ended", "interrupted"],
      );
      assertStringIncludes(ended.run.note, "with runs cancel --force");
      // A stream of queued runs only: runs that ended (success, cancelled) are not sent to
      // it; a queued one asked for after them is, so it has looked since they ended.
      const next = (await api.call("POST", "/api/v1/jobs/nightly/run", {
        body: { force: true, queue: true },
      })).body as { id: number };
      await queuedOnly.until((e) => (e.data as { id: number }).id === next.id);
      const statuses = queuedOnly.events.filter((e) => e.event === "run").map((e) =>
        (e.data as { status: string }).status
      );
      assert(statuses.every((s) => s === "queued"), `a queued-only stream sent ${statuses}`);
    }));

  Deno.test(`api (${backend}): logs with filters, and the live tail`, () =>
    withApi(backend, async (api) => {
      const now = Date.now();
      const row = (i: number, level: string, job?: string) => ({
        created_at: now + i,
        level,
        logger_name: "jobsmanager.runner",
        message: `line ${i}`,
        context: job ? { job } : {},
      });
      await api.store.insertLogs([row(1, "info", "a"), row(2, "error", "b"), row(3, "debug")]);
      const all = (await api.call("GET", "/api/v1/logs")).body as { message: string }[];
      assertEquals(all.map((r) => r.message), ["line 1", "line 2", "line 3"]);
      const errors = (await api.call("GET", "/api/v1/logs?level=warn")).body as {
        message: string;
      }[];
      assertEquals(errors.map((r) => r.message), ["line 2"]);
      const ofJob = (await api.call("GET", "/api/v1/logs?job=a&limit=10")).body as {
        message: string;
      }[];
      assertEquals(ofJob.map((r) => r.message), ["line 1"]);
      assertEquals((await api.call("GET", "/api/v1/logs?level=loud")).status, 400);

      await using tail = await readSse(api, "/api/v1/logs/stream?level=info");
      await tail.until((e) => (e.data as { message: string }).message === "line 2");
      await api.store.insertLogs([row(4, "warning", "a"), row(5, "debug")]);
      await tail.until((e) => (e.data as { message: string }).message === "line 4");
      assertEquals(tail.events.map((e) => (e.data as { message: string }).message), [
        "line 1",
        "line 2",
        "line 4",
      ]);
      // An EventSource reconnecting sends the id of the last event it had: the lines after it.
      const first = (tail.events[0].data as { id: number }).id;
      await using again = await readSse(api, "/api/v1/logs/stream?level=info", ADMIN, {
        "Last-Event-ID": String(first),
      });
      await again.until((e) => (e.data as { message: string }).message === "line 4");
      assertEquals(again.events.map((e) => (e.data as { message: string }).message), [
        "line 2",
        "line 4",
      ]);
      // An empty after= is not given, as for /runs/stream: the newest lines.
      await using empty = await readSse(api, "/api/v1/logs/stream?level=info&after=");
      await empty.until((e) => (e.data as { message: string }).message === "line 4");
    }));

  Deno.test(`api (${backend}): notification fields in and out; status lists silent jobs`, async () => {
    await using db = await freshDatabase(backend);
    await using api = await startApi(db);
    const added = await api.call("POST", "/api/v1/jobs", {
      body: {
        ...JOB,
        on_failure: "logger failed",
        on_failure_url: "https://hooks.example.com/jm",
        alert_after: "2h",
      },
    });
    assertEquals(added.status, 201);
    const job = added.body as Record<string, unknown>;
    assertEquals([job.on_failure, job.on_failure_url, job.on_recovery, job.alert_after], [
      "logger failed",
      "https://hooks.example.com/jm",
      null,
      7200,
    ]);
    const updated = await api.call("PATCH", "/api/v1/jobs/nightly", {
      body: { on_failure_url: null, alert_after: 60 },
    });
    const after = updated.body as Record<string, unknown>;
    assertEquals([after.on_failure_url, after.alert_after], [null, 60]);
    const bad = await api.call("PATCH", "/api/v1/jobs/nightly", {
      body: { on_recovery_url: "mailto:ops@example.com" },
    });
    assertEquals([bad.status, bad.body], [400, {
      error:
        "on_recovery_url: is not an http:// or https:// URL (the value is not shown: it may hold a secret)",
      field: "on_recovery_url",
    }]);
    const since = Date.now() - 120_000;
    await rawQuery(db, "UPDATE jm_jobs SET updated_at = ?", [since]);
    const status = (await api.call("GET", "/api/v1/status")).body as {
      silent_jobs: { job: string; since: string; alert_after: number }[];
    };
    assertEquals(status.silent_jobs, [
      { job: "nightly", since: new Date(since).toISOString(), alert_after: 60 },
    ]);
  });

  Deno.test(`api (${backend}): a job's user in and out: added, read, changed, null back to the service's, refused when malformed`, async () => {
    await using db = await freshDatabase(backend);
    await using api = await startApi(db);
    const added = await api.call("POST", "/api/v1/jobs", { body: { ...JOB, user: "www-data" } });
    assertEquals([added.status, (added.body as Record<string, unknown>).user], [201, "www-data"]);
    const read = await api.call("GET", "/api/v1/jobs/nightly");
    assertEquals((read.body as Record<string, unknown>).user, "www-data");
    const listed = (await api.call("GET", "/api/v1/jobs")).body as Record<string, unknown>[];
    assertEquals(listed.map((j) => j.user), ["www-data"]);
    const ad = await api.call("PATCH", "/api/v1/jobs/nightly", { body: { user: "jo@corp" } });
    assertEquals((ad.body as Record<string, unknown>).user, "jo@corp");
    const byUid = await api.call("PATCH", "/api/v1/jobs/nightly", { body: { user: "33" } });
    assertEquals((byUid.body as Record<string, unknown>).user, "33");
    const cleared = await api.call("PATCH", "/api/v1/jobs/nightly", { body: { user: null } });
    assertEquals((cleared.body as Record<string, unknown>).user, null);
    const bad = await api.call("PATCH", "/api/v1/jobs/nightly", { body: { user: "bob smith" } });
    assertEquals([bad.status, bad.body], [400, {
      error:
        `user: "bob smith" is not a user name or uid (allowed: a name of 1-64 characters of A-Z a-z 0-9 _ . - @ not starting with a digit, ., - or @, or a uid of a whole number from 0 to 4294967294; empty or NULL for the service's own user)`,
      field: "user",
    }]);
    assertEquals((await rawQuery(db, "SELECT `user` FROM jm_jobs")).map((r) => r.user), [null]);
  });

  Deno.test(`api (${backend}): status: services, markers, runs by minute, the database and its clock`, () =>
    withApi(backend, async (api) => {
      await api.call("POST", "/api/v1/jobs", { body: JOB });
      const now = Date.now();
      await api.store.claimRuns([
        { job_id: "nightly", scheduled_at: now - 120_000, status: "success", trigger: "schedule" },
        { job_id: "nightly", scheduled_at: now - 119_000, status: "failed", trigger: "schedule" },
        {
          job_id: "nightly",
          scheduled_at: now - 2 * 3_600_000,
          status: "failed",
          trigger: "schedule",
        },
      ]);
      const before = await api.store.databaseNow();
      const status = (await api.call("GET", "/api/v1/status")).body as {
        pending_markers: number;
        runs_last_hour: Record<string, number>;
        runs_per_minute: { minute: number; counts: Record<string, number> }[];
        next_fires: { job: string; timezone: string }[];
        database: { state: string };
        pending_notifications: {
          count: number;
          oldest: string | null;
          retrying: number;
          next_retry: string | null;
        };
        database_now: string;
      };
      assertEquals(status.pending_markers, 1);
      // The clock a dashboard ages heartbeats on (db_heartbeat_at), read with the answer.
      const [shown, after] = [Date.parse(status.database_now), await api.store.databaseNow()];
      assert(
        shown >= before - 1000 && shown <= after + 1000,
        `database_now ${status.database_now} is not the database's clock, between ${
          new Date(before).toISOString()
        } and ${new Date(after).toISOString()}`,
      );
      // The same clock alone, which the dashboard ages every time on.
      const clock = await api.call("GET", "/api/v1/clock", { token: READER });
      const ticked = Date.parse((clock.body as { database_now: string }).database_now);
      const afterClock = await api.store.databaseNow();
      assertEquals(clock.status, 200);
      assert(
        ticked >= after - 1000 && ticked <= afterClock + 1000,
        `/clock's database_now ${
          new Date(ticked).toISOString()
        } is not the database's clock, between ${new Date(after).toISOString()} and ${
          new Date(afterClock).toISOString()
        }`,
      );
      assertEquals(status.runs_last_hour, { success: 1, failed: 1 });
      assertEquals(status.runs_per_minute.length, 60);
      const counted = status.runs_per_minute.filter((m) => Object.keys(m.counts).length > 0);
      assertEquals(counted.flatMap((m) => Object.entries(m.counts)).sort(), [["failed", 1], [
        "success",
        1,
      ]]);
      assertEquals(status.next_fires.map((f) => [f.job, f.timezone]), [[
        "nightly",
        "Europe/Paris",
      ]]);
      assertEquals(status.database.state, "up");
      assertEquals(status.pending_notifications, {
        count: 0,
        oldest: null,
        retrying: 0,
        next_retry: null,
      });
      await api.store.claimNotification({
        job_id: "nightly",
        event: "failure",
        ref: 1,
        status: "failed",
        at: now - 60_000,
        node_id: "gone",
        minIntervalMs: null,
        payload: "{}",
      });
      const later = (await api.call("GET", "/api/v1/status")).body as typeof status;
      assertEquals(later.pending_notifications, {
        count: 1,
        oldest: new Date(now - 60_000).toISOString(),
        retrying: 0,
        next_retry: null,
      });
    }));
}

Deno.test("api: a refusal says what to give in the API's own fields and parameters, never a CLI flag", () =>
  withApi("sqlite", async (api) => {
    assertEquals((await api.call("POST", "/api/v1/jobs", { body: JOB })).status, 201);
    const SIX = '"second", "minute", "hour", "day", "month", "day_of_week"';
    const cases: [string, string, unknown, string][] = [
      [
        "POST",
        "/api/v1/jobs",
        { id: "x", cron: "@daily" },
        'command: missing (give "command": "shell command")',
      ],
      [
        "POST",
        "/api/v1/jobs",
        { id: "x", command: "true" },
        'schedule: missing (give "cron": "m h dom mon dow" or at least one of "second" "minute" "hour" "day" "month" "day_of_week", or "after_job": "JOB" for a job that runs only after another)',
      ],
      [
        "POST",
        "/api/v1/jobs",
        { id: "x", command: "true", cron: "@daily", minute: "1" },
        'cron: give either "cron" or the field options ("minute"), not both',
      ],
      [
        "POST",
        "/api/v1/jobs",
        {
          id: "x",
          command: "true",
          cron: "@daily",
          ...Object.fromEntries(
            ["second", "minute", "hour", "day", "month", "day_of_week"].map((f) => [f, ""]),
          ),
        },
        `schedule: give ${SIX} all "" or a schedule ("cron", "second" …), not both`,
      ],
      [
        "POST",
        "/api/v1/jobs",
        { id: "x", command: "true", cron: "@daily", retry_delay: 60, retry_max_delay: 30 },
        'retry_max_delay: 30 s is shorter than retry_delay (60 s); give "retry_max_delay" at least 60',
      ],
      [
        "POST",
        "/api/v1/jobs",
        { id: "x", command: "true", cron: "0 0 1 * 1" },
        'cron: \'0 0 1 * 1\' restricts both day-of-month and day-of-week, which crontab ORs (day 1 of the month or mon) but jobsmanager ANDs; schedule two jobs, or use "day" and "day_of_week" if you mean both at once',
      ],
      [
        "PATCH",
        "/api/v1/jobs/nightly",
        { command: " " },
        'command: is empty (give "command": "shell command")',
      ],
      [
        "POST",
        "/api/v1/schedule/preview",
        {},
        'schedule: missing (give "cron": "m h dom mon dow" or at least one of "second" "minute" "hour" "day" "month" "day_of_week")',
      ],
      [
        "POST",
        "/api/v1/schedule/preview",
        { cron: "@daily", hour: "1" },
        'cron: give either "cron" or the field options ("hour"), not both',
      ],
      [
        "GET",
        "/api/v1/jobs/nightly/next?from=soon",
        undefined,
        "from: 'soon' is not a date-time (expected e.g. 2026-03-29T01:30:00Z, 2026-03-29T02:30+02:00 or 2026-03-29 02:30 in the job's zone)",
      ],
      // A parameter misspelled or given twice is refused, not ignored.
      [
        "GET",
        "/api/v1/runs?state=failed",
        undefined,
        "GET /api/v1/runs takes no query parameter 'state' (it takes job, status, since, limit, before)",
      ],
      [
        "GET",
        "/api/v1/runs?status=failed&status=success",
        undefined,
        "query parameter 'status' is given 2 times; give it once",
      ],
      [
        "POST",
        "/api/v1/reload?now=1",
        undefined,
        "POST /api/v1/reload takes no query parameter 'now' (it takes none)",
      ],
      [
        "GET",
        "/api/v1/runs/stream?since=1h",
        undefined,
        "GET /api/v1/runs/stream takes no query parameter 'since' (it takes job, status, after)",
      ],
      ["GET", "/api/v1/logs/stream?after=abc", undefined, "after: 'abc' is not a log line id"],
      // The document and the metrics too: a scrape config's `params` would be ignored.
      [
        "GET",
        "/api/v1/openapi.json?version=3.0",
        undefined,
        "GET /api/v1/openapi.json takes no query parameter 'version' (it takes none)",
      ],
      [
        "GET",
        "/metrics?name[]=jobsmanager_runs_total",
        undefined,
        "GET /metrics takes no query parameter 'name[]' (it takes none)",
      ],
      [
        "POST",
        "/api/v1/jobs/nightly/disable",
        { junk: 1 },
        "POST /api/v1/jobs/nightly/disable takes no body; send the request without one",
      ],
    ];
    for (const [method, path, body, error] of cases) {
      const answer = await api.call(method, path, { body });
      assertEquals(
        [answer.status, (answer.body as { error: string }).error],
        [400, error],
        `${method} ${path} ${JSON.stringify(body)}`,
      );
    }
  }));

Deno.test("api: a timeout of null or \"\" is the default 60 s, as max_instances' is the service's", () =>
  withApi("sqlite", async (api) => {
    const added = await api.call("POST", "/api/v1/jobs", {
      body: { ...JOB, timeout: null, max_instances: null },
    });
    assertEquals([added.status, (added.body as { timeout: number }).timeout], [201, 60]);
    for (const cleared of [null, ""]) {
      await api.call("PATCH", "/api/v1/jobs/nightly", { body: { timeout: 5, max_instances: 2 } });
      const patched = await api.call("PATCH", "/api/v1/jobs/nightly", {
        body: { timeout: cleared, max_instances: cleared },
      });
      const job = patched.body as { timeout: number; max_instances: number | null };
      assertEquals([patched.status, job.timeout, job.max_instances], [200, 60, null], `${cleared}`);
    }
  }));

Deno.test("api: an unreachable database answers 503 with the CLI's message (status: what it knows), no password; the log says so once, as a warning", async () => {
  await using log = await captureLogs("debug");
  const store = openStore(
    resolveTarget({ ...defaultSettings(), "db.url": "mysql://root:S3cret-pw@127.0.0.1:1/nowhere" }),
  );
  const server = await startHttpServer(
    { ...defaultSettings(), "http.listen": "127.0.0.1:0" },
    {
      store,
      defaultZone: "UTC",
      heartbeatMs: 5000,
      metrics: new Metrics(),
      readiness: () =>
        Promise.resolve({
          database: { ok: false, detail: "down" },
          timetable: { ok: true, detail: "loaded" },
          run_guard: { ok: true, detail: "running" },
        }),
      redact: (t) => t,
      uid: NOBODY,
    },
  );
  try {
    const res = await fetch(`${server.url}/api/v1/jobs`);
    const body = await res.json();
    assertEquals(res.status, 503);
    assertStringIncludes(body.error, "127.0.0.1:1");
    assert(!JSON.stringify(body).includes("S3cret-pw"), "the password shows in an answer");
    const ready = await fetch(`${server.url}/readyz`);
    assertEquals([ready.status, (await ready.json()).status], [503, "degraded"]);
    // What status knows for sure is that the database is down: it says so rather than fail.
    const status = await fetch(`${server.url}/api/v1/status`);
    const known = await status.json();
    assertEquals([
      status.status,
      known.database.state,
      known.read_at,
      known.services,
      known.database_now,
    ], [200, "down", null, [], null]);
    assertStringIncludes(known.database.detail, "127.0.0.1:1");
    assert(!JSON.stringify(known).includes("S3cret-pw"), "the password shows in the status");
    for (let i = 0; i < 3; i++) await (await fetch(`${server.url}/api/v1/jobs`)).body?.cancel();
    const said = log.leveled().filter((line) => /^(warning|error|fatal)/.test(line));
    assertEquals(said.length, 1, said.join("\n"));
    assertMatch(
      said[0],
      /^warning: GET \/api\/v1\/jobs answered 503: .*127\.0\.0\.1:1.* \(requests answered 503 for this since it was last said: 1; said at most once a minute\)$/,
    );
  } finally {
    await server.close();
    await store.close();
  }
});

/** `store`, but while `down` every query fails as one to an unreachable database does. */
function awayWhenTold(store: Store): Store & { down: boolean } {
  const state = { down: false };
  return new Proxy(store, {
    get(target, name, receiver) {
      if (name === "down") return state.down;
      const value = Reflect.get(target, name, receiver);
      if (typeof value !== "function" || name === "close") return value;
      return (...args: unknown[]) =>
        state.down
          ? Promise.reject(
            new DatabaseError("the database at 127.0.0.1:3306 is unreachable (test)"),
          )
          : value.apply(target, args);
    },
    set(target, name, value, receiver) {
      if (name !== "down") return Reflect.set(target, name, value, receiver);
      state.down = value;
      return true;
    },
  }) as Store & { down: boolean };
}

Deno.test("api: /health counts the services by state and names the last reload; while the database is away, the last known", async () => {
  await using db = await freshDatabase("sqlite");
  const now = Date.now();
  await saveNodes(
    db,
    { ...serviceRow("node-a"), last_reload_at: now - 60_000, last_reload_ms: 12 },
    { ...serviceRow("node-b"), last_reload_at: now - 5_000, last_reload_ms: 40 },
    serviceRow("node-c", { agoMs: 60_000 }),
    {
      ...serviceRow("node-d", { agoMs: 600_000 }),
      declared_dead_at: now,
      declared_dead_by: "node-a",
    },
  );
  let store: (Store & { down: boolean }) | null = null;
  await using api = await startApi(db, {}, (real) => store = awayWhenTold(real));
  await api.call("POST", "/api/v1/reload");
  const up = await api.call("GET", "/api/v1/health", { token: READER });
  assertEquals(up.status, 200);
  const body = up.body as Record<string, unknown>;
  assertEquals(
    [body.services, body.last_reload, body.pending_markers, body.database],
    [
      { live: 2, stale: 1, dead: 1, leaving: 0, stopped: 0 },
      { at: new Date(now - 5_000).toISOString(), node: "node-b", ms: 40 },
      1,
      { state: "up", detail: "reachable" },
    ],
  );
  store!.down = true;
  const down = (await api.call("GET", "/api/v1/health")).body as Record<string, unknown>;
  assertEquals(
    [down.services, down.read_at, (down.database as { state: string }).state],
    [body.services, body.read_at, "down"],
  );
});

Deno.test("api: while the database is away, status gives the database's clock as this server puts it", async () => {
  await using db = await freshDatabase("sqlite");
  let store: (Store & { down: boolean }) | null = null;
  await using api = await startApi(db, {}, (real) => store = awayWhenTold(real));
  const read = async () =>
    (await api.call("GET", "/api/v1/status")).body as {
      database: { state: string };
      read_at: string;
      database_now: string;
    };
  const up = await read();
  store!.down = true;
  // Long enough for a clock that stood still at the last read to show.
  await waitFor(async () => await api.store.databaseNow() >= Date.parse(up.database_now) + 1500, {
    timeoutMs: 10_000,
    what: "the database's clock to move on 1.5 s",
  });
  const databaseBefore = await api.store.databaseNow();
  const down = await read();
  assertEquals([down.database.state, down.read_at], ["down", up.read_at]);
  assert(
    Date.parse(down.database_now) >= databaseBefore - 500,
    `database_now stood at ${down.database_now} (when up: ${up.database_now}; the database's clock since: ${
      new Date(databaseBefore).toISOString()
    })`,
  );
});

Deno.test("api: the 503s not said yet are said once the cause ends, at the first success of a request it refused", async () => {
  await using log = await captureLogs("debug");
  await using db = await freshDatabase("sqlite");
  const real = db.open();
  await real.migrate();
  const store = awayWhenTold(real);
  const server = await startHttpServer(
    { ...defaultSettings(), "http.listen": "127.0.0.1:0" },
    { ...serverDeps(store), uid: NOBODY },
  );
  const get = async (path: string) => {
    const res = await fetch(`${server.url}${path}`);
    await res.body?.cancel();
    return res.status;
  };
  const warnings = () => log.leveled().filter((line) => line.startsWith("warning"));
  try {
    store.down = true;
    assertEquals(await Promise.all([1, 2, 3].map(() => get("/api/v1/jobs"))), [503, 503, 503]);
    assertEquals(await get("/api/v1/runs"), 503);
    // A success that needs no database says nothing of it.
    assertEquals(await get("/api/v1/session"), 200);
    assertEquals(warnings().length, 1, warnings().join("\n"));
    store.down = false;
    assertEquals(await get("/api/v1/jobs"), 200);
    assertEquals(await get("/api/v1/runs"), 200);
    assertMatch(
      warnings().join("\n"),
      /\nwarning: GET \/api\/v1\/jobs answered 200 again; requests answered 503 since it was last said: 3 \(the last: .*unreachable \(test\)\)$/,
    );
    // The next outage, within the minute: counted, not said, as its end is; said as the server stops.
    store.down = true;
    assertEquals(await get("/api/v1/runs"), 503);
    assertEquals(await get("/api/v1/runs"), 503);
    store.down = false;
    assertEquals(await get("/api/v1/runs"), 200);
    let said = warnings();
    assertEquals(said.length, 2, said.join("\n"));
    await server.close();
    said = warnings();
    assertEquals(said.length, 3, said.join("\n"));
    assertMatch(
      said[2],
      /^warning: requests answered 503 since it was last said: 2 \(the last: .*\(test\)\); the HTTP server stops$/,
    );
  } finally {
    await server.close();
    await real.close();
  }
});

/** What a healthy node's heartbeat reports to the readiness checks; each test changes a part. */
const HEALTHY = HEALTHY_VITALS;
/** The same node with the database away for 2 s. */
const AWAY = { ...HEALTHY, databaseOnline: false, outageMs: 2000, currentOutageMs: 2000 };

Deno.test("readyz: with the database away, says whether this node keeps firing or holds, and why", () => {
  const vitals = { ...AWAY, databaseAway: "unreachable" as const };
  assertEquals(
    readinessOf({ ...vitals, holdingReason: null }).database.detail,
    "unreachable; jobs keep firing from the timetable in memory",
  );
  assertEquals(
    readinessOf({ ...vitals, holdingReason: "cluster.on_database_outage is hold" }).database.detail,
    "unreachable; this node holds its fires until it is back (cluster.on_database_outage is hold)",
  );
});

Deno.test("readyz: a claim unanswered is not called unreachable; once the ping answers, it says the database answers", () => {
  assertEquals(
    readinessOf({ ...AWAY, databaseAway: "unanswered" }).database.detail,
    "a claim got no answer in time (a lock wait, overload, or the network); jobs keep firing from the timetable in memory",
  );
  assertEquals(
    readinessOf({ ...AWAY, databaseAway: "answers" }).database.detail,
    "the database answers, but a claim got no answer in time (a lock wait, or overload); jobs keep firing from the timetable in memory",
  );
});

Deno.test("readyz: a run guard that does not run makes the node degraded, and says so", () => {
  const down = readinessOf({ ...HEALTHY, runGuardRunning: false });
  assertEquals(readyState(down), "degraded");
  assertEquals(
    down.run_guard.detail,
    "not running (it could not start, or exited; the log says why): runs go on, but would outlive this service if it died; it is started again until it runs",
  );
  assertEquals(readyState(readinessOf(HEALTHY)), "ready");
});

Deno.test("api: without tokens, only loopback names and same-origin writes", async () => {
  await using db = await freshDatabase("sqlite");
  // A service run as root refuses to start without a token (listen.ts).
  await using api = await startApi(db, { "http.tokens": [] }, undefined, NOBODY);
  const open = await api.call("GET", "/api/v1/session", { token: null });
  assertEquals(open.body, { role: "admin", auth: false });
  const port = new URL(api.url).port;
  // fetch() sets Host itself: a raw request says what a rebound name would.
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(port) });
  await conn.write(
    new TextEncoder().encode(
      `GET /api/v1/jobs HTTP/1.1\r\nHost: evil.example:${port}\r\nConnection: close\r\n\r\n`,
    ),
  );
  const answer = await new Response(conn.readable).text();
  assertStringIncludes(answer.split("\r\n")[0], " 403 ");
  assertStringIncludes(answer, "Host 'evil.example' refused");
  for (const [host, why] of [["[::1", "Invalid URL"], ["user@localhost", "Invalid host header"]]) {
    const raw = await Deno.connect({ hostname: "127.0.0.1", port: Number(port) });
    await raw.write(
      new TextEncoder().encode(
        `GET /api/v1/jobs HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
      ),
    );
    const broken = await new Response(raw.readable).text();
    assertStringIncludes(broken.split("\r\n")[0], " 400 ", broken);
    assertStringIncludes(broken, `the request cannot be read: ${why}`);
  }
  // No Host at all (HTTP/1.0, as a plain health check sends): taken as for the address listened on.
  const plain = await Deno.connect({ hostname: "127.0.0.1", port: Number(port) });
  await plain.write(new TextEncoder().encode("GET /api/v1/jobs HTTP/1.0\r\n\r\n"));
  const answered = await new Response(plain.readable).text();
  assertStringIncludes(answered.split("\r\n")[0], " 200 ", answered);
  const crossSite = await fetch(`${api.url}/api/v1/reload`, {
    method: "POST",
    headers: { Origin: "http://evil.example" },
  });
  assertEquals(crossSite.status, 403);
  await crossSite.body?.cancel();
  const sameSite = await fetch(`${api.url}/api/v1/reload`, {
    method: "POST",
    headers: { Origin: api.url },
  });
  assertEquals(sameSite.status, 202);
  await sameSite.body?.cancel();
});

Deno.test("api: every documented operation was called and answered as documented", () => {
  const documented = Object.entries(OPENAPI.paths).flatMap(([path, item]) =>
    Object.keys(item).filter((k) => k !== "parameters").map((m) => `${m.toUpperCase()} ${path}`)
  );
  assertEquals(documented.filter((op) => !covered.has(op)).sort(), []);
});

for (const backend of BACKENDS) {
  Deno.test(`api (${backend}): the live tail sends a line committed below the last one sent`, async () => {
    await using db = await freshDatabase(backend);
    await using api = await startApi(db);
    const line = (id: number) =>
      rawQuery(
        db,
        "INSERT INTO jm_syslog (id, created_at, level, logger_name, message, context) VALUES (?, 1, 'info', 'jobsmanager.test', ?, '{}')",
        [id, `line ${id}`],
      );
    await line(1);
    await using tail = await readSse(api, "/api/v1/logs/stream");
    await tail.until((e) => (e.data as { message: string }).message === "line 1");
    await line(10);
    await tail.until((e) => (e.data as { message: string }).message === "line 10");
    // Inserted before line 10, committed after it was sent (two nodes' batches on MySQL).
    await line(5);
    await tail.until((e) => (e.data as { message: string }).message === "line 5");
    assertEquals(tail.events.map((e) => (e.data as { message: string }).message), [
      "line 1",
      "line 10",
      "line 5",
    ]);
  });
}

for (const backend of BACKENDS) {
  Deno.test(`api (${backend}): a run stuck for hours is listed with its job, behind any skips, and counted in status`, () =>
    withApi(backend, async (api) => {
      assertEquals((await api.call("POST", "/api/v1/jobs", { body: JOB })).status, 201);
      const started = Date.now() - 3 * 3_600_000;
      const [stuck] = await api.store.claimRuns([{
        job_id: "nightly",
        scheduled_at: started,
        status: "running",
        trigger: "schedule",
      }]);
      await api.store.updateRun(stuck!, { started_at: started, node_id: "node-a" });
      await api.store.claimRuns([1, 2, 3, 4, 5].map((i) => ({
        job_id: "nightly",
        scheduled_at: started + i * 1000,
        status: "skipped" as const,
        trigger: "schedule" as const,
      })));
      const [listed] = (await api.call("GET", "/api/v1/jobs")).body as {
        last_run: { status: string };
        running: unknown[];
      }[];
      assertEquals(listed.last_run.status, "skipped");
      assertEquals(listed.running, [{
        id: stuck,
        status: "running",
        scheduled_at: new Date(started).toISOString(),
        started_at: new Date(started).toISOString(),
        node_id: "node-a",
        cancel_requested_at: null,
      }]);
      const shown = (await api.call("GET", "/api/v1/jobs/nightly")).body as {
        runs: { id: number }[];
        running: { id: number; status: string }[];
      };
      assertEquals(
        shown.runs.some((r) => r.id === stuck),
        false,
        "the 5 runs shown are skips",
      );
      assertEquals(shown.running.map((r) => [r.id, r.status]), [[stuck, "running"]]);
      const status = (await api.call("GET", "/api/v1/status")).body as { running: unknown };
      assertEquals(status.running, {
        count: 1,
        oldest: { id: stuck, job_id: "nightly", started_at: new Date(started).toISOString() },
      });
      // A copy read whole goes back whole, its running runs with it, even once they ended.
      await api.store.updateRun(stuck!, { status: "killed", finished_at: Date.now() });
      for (const copy of [listed, shown]) {
        const back = await api.call("PATCH", "/api/v1/jobs/nightly", { body: copy });
        assertEquals(back.status, 200, JSON.stringify(back.body));
      }
    }));
}

for (const backend of BACKENDS) {
  Deno.test(`api (${backend}): runs?before=ID is the next page of a list cut at its limit`, () =>
    withApi(backend, async (api) => {
      const ids = await api.store.claimRuns([1, 2, 3, 4, 5].map((i) => ({
        job_id: "paged",
        scheduled_at: i * 1000,
        status: "skipped" as const,
        trigger: "schedule" as const,
      })));
      const page = async (query: string) =>
        ((await api.call("GET", `/api/v1/runs?${query}`)).body as { id: number }[]).map((r) =>
          r.id
        );
      const first = await page("limit=2");
      assertEquals(first, [ids[4], ids[3]]);
      assertEquals(await page(`limit=2&before=${first[1]}`), [ids[2], ids[1]]);
      assertEquals(await page(`limit=2&before=${ids[1]}`), [ids[0]]);
      assertEquals((await api.call("GET", "/api/v1/runs?before=x")).status, 400);
    }));
}
