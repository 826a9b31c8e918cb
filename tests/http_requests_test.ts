/**
 * What a request may hold, on every backend: a body in UTF-8 only, an
 * If-Match kept by every write of a job.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { BACKENDS, freshDatabase } from "./helpers.ts";
import { ADMIN, type Api, READER, startApi } from "./http_harness.ts";
import { candidatesFromFile } from "../src/app/jobs_file.ts";

async function withApi(backend: (typeof BACKENDS)[number], fn: (api: Api) => Promise<void>) {
  await using db = await freshDatabase(backend);
  await using api = await startApi(db);
  await fn(api);
}

/** A request whose body is `bytes` as they are, with the admin token. */
async function sendBytes(
  api: Api,
  method: string,
  path: string,
  bytes: Uint8Array<ArrayBuffer>,
) {
  const res = await fetch(`${api.url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" },
    body: bytes,
  });
  return { status: res.status, body: await res.json() };
}

for (const backend of BACKENDS) {
  Deno.test(`api (${backend}): a body that is not UTF-8 is refused, nothing stored`, () =>
    withApi(backend, async (api) => {
      const text = new TextEncoder().encode(
        '{"id":"latin","command":"echo caf\u0000","cron":"0 0 1 1 *"}',
      );
      // "café" in Latin-1: 0xE9 alone is no UTF-8.
      text[text.indexOf(0)] = 0xe9;
      const NOT_UTF8 =
        "the body is not UTF-8: JSON must be sent in UTF-8 (bytes that are not would be stored as U+FFFD, other text than was sent)";
      assertEquals(await sendBytes(api, "POST", "/api/v1/jobs", text), {
        status: 400,
        body: { error: NOT_UTF8 },
      });
      assertEquals(await api.store.getJob("latin"), null);
      await api.call("POST", "/api/v1/jobs", {
        body: { id: "latin", command: "echo café", cron: "0 0 1 1 *" },
      });
      const patch = new TextEncoder().encode('{"description":"caf\u0000"}');
      patch[patch.indexOf(0)] = 0xe9;
      assertEquals(await sendBytes(api, "PATCH", "/api/v1/jobs/latin", patch), {
        status: 400,
        body: { error: NOT_UTF8 },
      });
      assertEquals((await api.store.getJob("latin"))?.command, "echo café");
    }));
}

for (const backend of BACKENDS) {
  Deno.test(`api (${backend}): a key given twice in the body is refused at any depth, naming it, nothing stored`, () =>
    withApi(backend, async (api) => {
      const send = (method: string, path: string, text: string) =>
        sendBytes(api, method, path, new TextEncoder().encode(text));
      const job = '"id":"twice","command":"true","cron":"0 0 1 1 *"';
      // JSON.parse kept the last one silently; the list form of env, a jobs file, the CLI refuse it.
      assertEquals(await send("POST", "/api/v1/jobs", `{${job},"timeout":5,"timeout":600}`), {
        status: 400,
        body: {
          error: "timeout: key 'timeout' is given twice in one object; keep one",
          field: "timeout",
        },
      });
      assertEquals(
        await send("POST", "/api/v1/jobs", `{${job},"env":{"A":"s3cr3t","B":"x","A":"1"}}`),
        {
          status: 400,
          body: { error: "env: key 'A' is given twice in one object; keep one", field: "env" },
        },
      );
      assertEquals(await api.store.getJob("twice"), null);
      assertEquals((await send("POST", "/api/v1/jobs", `{${job},"env":{"A":"1"}}`)).status, 201);
      assertEquals(await send("PATCH", "/api/v1/jobs/twice", '{"env":{"A":"2","A":"2"}}'), {
        status: 400,
        body: { error: "env: key 'A' is given twice in one object; keep one", field: "env" },
      });
      assertEquals((await api.store.getJob("twice"))?.env, { A: "1" });
      // The same key in two objects is no repeat.
      const other = await send("PATCH", "/api/v1/jobs/twice", '{"env":{"env":"2"}}');
      assertEquals(other.status, 200, JSON.stringify(other.body));
      // Too deep for the parser that finds repeats: refused, not a 500.
      const deep = `{"env":${"[".repeat(100_000)}${"]".repeat(100_000)}}`;
      const tooDeep = {
        status: 400,
        body: {
          error: "the body nests arrays or objects too deeply to be read (more than 64 levels)",
        },
      };
      assertEquals(await send("PATCH", "/api/v1/jobs/twice", deep), tooDeep);
      // A body only read (a read token may send it) is refused before it is parsed, as one stored.
      const preview = `{"cron":${"[".repeat(100_000)}${"]".repeat(100_000)}}`;
      assertEquals(await send("POST", "/api/v1/schedule/preview", preview), tooDeep);
      // Brackets in a string are text, not nesting.
      const quoted = await send(
        "PATCH",
        "/api/v1/jobs/twice",
        `{"env":{"A":"${"[{".repeat(100)}\\\"${"[".repeat(100)}"}}`,
      );
      assertEquals(quoted.status, 200, JSON.stringify(quoted.body));
      assertEquals(
        (await api.store.getJob("twice"))?.env.A,
        `${"[{".repeat(100)}"${"[".repeat(100)}`,
      );
    }));
}

for (const backend of BACKENDS) {
  Deno.test(`api (${backend}): a key that is not a job field is named in the error's field, whatever its name`, () =>
    withApi(backend, async (api) => {
      const job = { id: "named", command: "true", cron: "0 0 1 1 *" };
      for (const key of ["bogus", "toString", "constructor", "hasOwnProperty", "valueOf"]) {
        const answer = await api.call("POST", "/api/v1/jobs", { body: { ...job, [key]: 1 } });
        const body = answer.body as { error: string; field?: string };
        assertEquals([answer.status, body.field], [400, key], JSON.stringify(body));
        assert(body.error.startsWith(`${key}: not a job field (known: `), body.error);
      }
      assertEquals(await api.store.getJob("named"), null);
    }));
}

for (const backend of BACKENDS) {
  Deno.test(`api (${backend}): null is a field's default and a uid may be a number, as in a jobs file; PATCH sets it back`, () =>
    withApi(backend, async (api) => {
      const nulls = { retries: null, retry_delay: null, enabled: null, retry_overlap: null };
      const JOB = { id: "nulls", command: "true", cron: "0 0 1 1 *" };
      const added = await api.call("POST", "/api/v1/jobs", {
        body: { ...JOB, ...nulls, user: 33 },
      });
      assertEquals(added.status, 201, JSON.stringify(added.body));
      const job = await api.store.getJob("nulls");
      // The job a jobs file with the same entry stores.
      const [fromFile] = candidatesFromFile(
        "jobs.json5",
        `{ jobs: [${JSON.stringify({ ...JOB, ...nulls, user: 33 })}] }`,
        job!.created_at,
      );
      assertEquals({ ...job, updated_at: 0 }, { ...fromFile.job, updated_at: 0 });
      assertEquals(
        [job!.retries, job!.retry_delay, job!.enabled, job!.retry_overlap, job!.user],
        [0, 10, true, false, "33"],
      );
      const set = { retries: 3, retry_delay: 30, enabled: false, retry_overlap: true };
      assertEquals((await api.call("PATCH", "/api/v1/jobs/nulls", { body: set })).status, 200);
      const reset = await api.call("PATCH", "/api/v1/jobs/nulls", { body: nulls });
      assertEquals(reset.status, 200, JSON.stringify(reset.body));
      const back = await api.store.getJob("nulls");
      assertEquals(
        [back!.retries, back!.retry_delay, back!.enabled, back!.retry_overlap],
        [0, 10, true, false],
      );
      // What neither takes, both refuse alike.
      const refused = await api.call("PATCH", "/api/v1/jobs/nulls", { body: { retries: true } });
      assertEquals(refused.body, {
        error: "retries: true is not valid (expected a whole number or null)",
        field: "retries",
      });
      assertEquals(
        (() => {
          try {
            candidatesFromFile(
              "j.json5",
              `{ jobs: [{ id: 'a', cron: '@daily', retries: true }] }`,
              0,
            );
          } catch (error) {
            return (error as Error).message;
          }
        })(),
        "j.json5 has 1 invalid job; nothing written:\nj.json5:1: job 'a': retries: true is not valid (expected a whole number or null)",
      );
    }));
}

for (const backend of BACKENDS) {
  Deno.test(`api (${backend}): If-Match is kept by every write of a job, not only PATCH`, () =>
    withApi(backend, async (api) => {
      const JOB = { id: "kept", command: "true", cron: "0 0 1 1 *" };
      await api.call("POST", "/api/v1/jobs", { body: JOB });
      const etag = async () => (await api.call("GET", "/api/v1/jobs/kept")).headers.get("etag")!;
      const stale = await etag();
      await api.call("PATCH", "/api/v1/jobs/kept", { body: { description: "changed meanwhile" } });
      const writes: [string, string, unknown][] = [
        ["POST", "/api/v1/jobs/kept/disable", undefined],
        ["POST", "/api/v1/jobs/kept/enable", undefined],
        ["POST", "/api/v1/jobs?replace=true", { ...JOB, command: "echo replaced" }],
        ["DELETE", "/api/v1/jobs/kept", undefined],
      ];
      for (const [method, path, body] of writes) {
        const refused = await api.call(method, path, { body, headers: { "If-Match": stale } });
        // 412 Precondition Failed (RFC 9110 §13.1.1), not the 409 of an id taken.
        assertEquals(refused.status, 412, `${method} ${path}`);
        assertMatch(
          (refused.body as { error: string }).error,
          /^job 'kept' was changed at .*, after the copy this change was made on; nothing written/,
        );
      }
      assertEquals((await api.store.getJob("kept"))?.description, "changed meanwhile");
      for (const [method, path, body] of writes) {
        const done = await api.call(method, path, { body, headers: { "If-Match": await etag() } });
        assertEquals(done.status, 200, `${method} ${path}`);
      }
      assertEquals(await api.store.getJob("kept"), null);
      // Removed since: a replace made on the copy read before is refused too.
      const gone = await api.call("POST", "/api/v1/jobs?replace=true", {
        body: JOB,
        headers: { "If-Match": stale },
      });
      assertEquals([gone.status, gone.body], [412, {
        error:
          "job 'kept' no longer exists: it was removed after the copy this change was made on; nothing written",
      }]);
      // So is every other write on it: the copy is stale (412), the id no typo (404).
      for (const [method, path, body] of writes.filter(([, path]) => path.includes("/kept"))) {
        const removed = await api.call(method, path, { body, headers: { "If-Match": stale } });
        assertEquals([removed.status, removed.body], [412, gone.body], `${method} ${path}`);
      }
      const patched = await api.call("PATCH", "/api/v1/jobs/kept", {
        body: { description: "x" },
        headers: { "If-Match": stale },
      });
      assertEquals([patched.status, patched.body], [412, gone.body]);
      // `If-Match: *` is false where there is no stored job (RFC 9110): no replace adds one.
      const none = await api.call("POST", "/api/v1/jobs?replace=true", {
        body: JOB,
        headers: { "If-Match": "*" },
      });
      assertEquals([none.status, none.body], [412, {
        error:
          "job 'kept' does not exist: If-Match: * names whichever copy is stored, and none is; nothing written (send it without If-Match to add it)",
      }]);
      assertEquals(await api.store.getJob("kept"), null);
      // The other conflicts stay 409.
      assertEquals((await api.call("POST", "/api/v1/jobs", { body: JOB })).status, 201);
      const taken = await api.call("POST", "/api/v1/jobs", {
        body: JOB,
        headers: { "If-Match": "*" },
      });
      assertEquals(taken.status, 409, JSON.stringify(taken.body));
      // A whole copy of a job removed and added again since: stale (412), before what in it
      // no longer matches (its created_at) is looked at.
      const copy = await api.call("GET", "/api/v1/jobs/kept");
      await api.call("DELETE", "/api/v1/jobs/kept");
      await api.call("POST", "/api/v1/jobs", { body: { ...JOB, command: "echo theirs" } });
      const whole = await api.call("PATCH", "/api/v1/jobs/kept", {
        body: copy.body,
        headers: { "If-Match": copy.headers.get("etag")! },
      });
      assertEquals(whole.status, 412, JSON.stringify(whole.body));
    }));
}

Deno.test("api: a switch in the query is true or false; anything else is refused, naming it", () =>
  withApi("sqlite", async (api) => {
    const JOB = { id: "flagged", command: "true", cron: "0 0 1 1 *" };
    await api.call("POST", "/api/v1/jobs", { body: JOB });
    for (const value of ["1", "yes", "banana", "TRUE"]) {
      const replace = await api.call("POST", `/api/v1/jobs?replace=${value}`, { body: JOB });
      assertEquals([replace.status, replace.body], [400, {
        error: `replace: "${value}" is not valid (expected true or false)`,
      }]);
      const cancel = await api.call("POST", `/api/v1/runs/1/cancel?force=${value}`);
      assertEquals([cancel.status, cancel.body], [400, {
        error: `force: "${value}" is not valid (expected true or false)`,
      }]);
    }
    assertEquals((await api.call("POST", "/api/v1/jobs?replace=false", { body: JOB })).status, 409);
    assertEquals((await api.call("POST", "/api/v1/jobs?replace=", { body: JOB })).status, 409);
    assertEquals((await api.call("POST", "/api/v1/jobs?replace=true", { body: JOB })).status, 200);
  }));

Deno.test("api: a refusal shows a long value shortened, not all of it", () =>
  withApi("sqlite", async (api) => {
    const huge = "x".repeat(500_000);
    const refused = await api.call("POST", "/api/v1/jobs", {
      body: { id: "big", command: "true", cron: "0 0 1 1 *", env: [huge, 1] },
    });
    assertEquals([refused.status, refused.body], [400, {
      error: `env: ${
        JSON.stringify([huge, 1]).slice(0, 60)
      }… is not valid (expected an object like { "NAME": "value" } or a list of "NAME=value")`,
      field: "env",
    }]);
  }));

Deno.test("api: removing a job others follow names them, as `job remove` warns", () =>
  withApi("sqlite", async (api) => {
    await api.call("POST", "/api/v1/jobs", {
      body: { id: "p1", command: "true", cron: "0 0 1 1 *" },
    });
    for (const id of ["p3", "p2"]) {
      const added = await api.call("POST", "/api/v1/jobs", {
        body: { id, command: "true", after_job: "p1", after_outcome: "success" },
      });
      assertEquals(added.status, 201, JSON.stringify(added.body));
    }
    const removed = await api.call("DELETE", "/api/v1/jobs/p1");
    assertEquals(removed.status, 200);
    assertEquals((removed.body as { id: string; followers: string[] }).id, "p1");
    assertEquals((removed.body as { followers: string[] }).followers, ["p2", "p3"]);
    const lone = await api.call("DELETE", "/api/v1/jobs/p2");
    assertEquals((lone.body as { followers: string[] }).followers, []);
  }));

Deno.test("api: a read token gets the 404 or 405 an admin gets, not 403, where no route is", () =>
  withApi("sqlite", async (api) => {
    const asked: [string, string][] = [
      ["OPTIONS", "/api/v1/jobs"],
      ["PUT", "/api/v1/jobs"],
      ["POST", "/api/v1/nonexistent"],
      ["POST", "/api/v1/jobs/"],
      ["DELETE", "/api/v1/runs"],
    ];
    // Not through api.call, which checks each answer against the OpenAPI document: none is in it.
    const ask = async (method: string, path: string, token: string) => {
      const res = await fetch(`${api.url}${path}`, {
        method,
        headers: { Authorization: `Bearer ${token}` },
      });
      return { status: res.status, body: await res.text() };
    };
    for (const [method, path] of asked) {
      const admin = await ask(method, path, ADMIN);
      const reader = await ask(method, path, READER);
      assertEquals([reader.status, reader.body], [admin.status, admin.body], `${method} ${path}`);
      assert([404, 405].includes(reader.status), `${method} ${path}: ${reader.status}`);
    }
    // A route that changes jobs is still refused to it.
    const write = await api.call("DELETE", "/api/v1/jobs/any", { token: READER });
    assertEquals(write.status, 403);
  }));
