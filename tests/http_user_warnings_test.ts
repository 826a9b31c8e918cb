/**
 * The API's job writes say what `job add`/`job update --user` say on
 * stderr of a user this server's host cannot run jobs as (no account, an
 * expired one, a name service that does not answer): in the answer's
 * `warnings`, and a Warning header each, its text UTF-8. The job is stored
 * all the same; a write that leaves the user as it was says nothing.
 */
import { assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase, withExpiredAccount } from "./helpers.ts";
import { type Api, startApi } from "./http_harness.ts";
import { type Account, AccountLookups } from "../src/daemon/run_as.ts";

const JOB = { id: "nightly", command: "true", cron: "0 3 * * *" };

/** The CLI's warning about `user`, which this host has no account of, for one job stored. */
function noAccount(user: string): string {
  return `user '${user}' has no account on this host (${Deno.hostname()}): stored all the same, as a service on a host that has it runs its jobs, but a service here records each run of its job as an error until it exists; check with \`getent passwd ${user}\``;
}

/** A write's status, warnings and Warning headers. */
async function write(
  api: Api,
  method: string,
  path: string,
  body: unknown,
): Promise<[number, unknown, string | null]> {
  const res = await api.call(method, path, { body });
  return [res.status, (res.body as { warnings?: unknown }).warnings, res.headers.get("warning")];
}

for (const backend of BACKENDS) {
  Deno.test(`api (${backend}): a job given a user this host has no account of is stored, with the CLI's warning`, async () => {
    await using db = await freshDatabase(backend);
    await using api = await startApi(db);
    const user = "jm-no-such-user";
    const warning = noAccount(user);
    assertEquals(await write(api, "POST", "/api/v1/jobs", { ...JOB, user }), [
      201,
      [warning],
      `299 - "${warning}"`,
    ]);
    assertEquals(
      ((await api.call("GET", "/api/v1/jobs/nightly")).body as { user: string }).user,
      user,
    );
    // The user stays: said when it was given, not at each change.
    const kept = await api.call("PATCH", "/api/v1/jobs/nightly", { body: { timeout: 30 } });
    assertEquals([kept.status, (kept.body as { warnings: unknown }).warnings], [200, []]);
    assertEquals(kept.headers.get("warning"), null);
    // A write's answer may be sent back, its warnings with it: they set nothing.
    const back = await api.call("PATCH", "/api/v1/jobs/nightly", { body: kept.body });
    assertEquals(back.status, 200, JSON.stringify(back.body));
    const other = "jm-no-such-user-2";
    assertEquals(await write(api, "PATCH", "/api/v1/jobs/nightly", { user: other }), [
      200,
      [noAccount(other)],
      `299 - "${noAccount(other)}"`,
    ]);
    // Replaced with the service's own user: nothing to say.
    assertEquals(
      await write(api, "POST", "/api/v1/jobs?replace=true", { ...JOB, user: null }),
      [200, [], null],
    );
  });
}

for (const backend of BACKENDS) {
  Deno.test({
    name:
      `api (${backend}): a job given an expired account is stored, with the CLI's warning naming its expiry day and the fix`,
    ignore: Deno.uid() !== 0,
    fn: async () => {
      await using db = await freshDatabase(backend);
      await using api = await startApi(db);
      await withExpiredAccount(async (name, warningOf) => {
        const warning = warningOf("stored all the same").replace(/^jobsmanager: warning: /, "");
        assertEquals(await write(api, "POST", "/api/v1/jobs", { ...JOB, user: name }), [
          201,
          [warning],
          `299 - "${warning}"`,
        ]);
        await api.call("PATCH", "/api/v1/jobs/nightly", { body: { user: null } });
        assertEquals(
          (await write(api, "PATCH", "/api/v1/jobs/nightly", { user: name })).slice(0, 2),
          [200, [warning]],
        );
      });
    },
  });
}

Deno.test("api: a user whose name service does not answer is stored, warned of whole: in warnings, and as UTF-8 in its header", async () => {
  await using db = await freshDatabase("sqlite");
  // LDAP away: the lookup never answers, and is waited for 50 ms.
  const hung = new AccountLookups(() => new Promise<Account | null>(() => {}), 50);
  await using api = await startApi(db, {}, undefined, Deno.uid(), { accounts: hung });
  const user = "ldap-user";
  const warning =
    `user '${user}' could not be looked up on this host (${Deno.hostname()}): its name service (getent passwd: LDAP, sssd, …) did not answer within 0.05 s; stored all the same, but a service here records each run of its job as an error while it does not; check with \`getent passwd ${user}\``;
  const [status, warnings, header] = await write(api, "POST", "/api/v1/jobs", { ...JOB, user });
  assertEquals([status, warnings], [201, [warning]]);
  // A header holds bytes: they are the text's UTF-8, which a client decodes as such.
  const bytes = Uint8Array.from(header ?? "", (c) => c.charCodeAt(0));
  assertEquals(new TextDecoder().decode(bytes), `299 - "${warning}"`);
});
