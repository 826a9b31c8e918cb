/**
 * The warnings about the users of jobs a write stores (src/app/user_warnings.ts):
 * one rendering of every lookup answer, lookups bounded in flight, and
 * only the users a write gives a job.
 */
import { assert, assertEquals } from "./assert.ts";
import { type Account, accountExpired, AccountLookups } from "../src/daemon/run_as.ts";
import {
  LOOKUPS_AT_ONCE,
  usersWritten,
  userWarning,
  userWarnings,
} from "../src/app/user_warnings.ts";
import type { PlanEntry } from "../src/app/import/plan.ts";
import { buildJob, type Job } from "../src/domain/job.ts";

const NOW = Date.UTC(2026, 11, 6);
const DAY = 86_400_000;

Deno.test("every lookup answer is said one way, with what the write did: none, hung, failed, expired", () => {
  const say = (answer: Parameters<typeof userWarning<Account>>[1], jobs = 1) =>
    userWarning("bob", answer, accountExpired, jobs, "applied all the same", 5000, NOW, "h1");
  const check = "check with `getent passwd bob`";
  assertEquals(
    say(null, 2),
    `user 'bob' has no account on this host (h1): applied all the same, as a service on a host that has it runs its jobs, but a service here records each run of its 2 jobs as an error until it exists; ${check}`,
  );
  assertEquals(
    say("hung"),
    `user 'bob' could not be looked up on this host (h1): its name service (getent passwd: LDAP, sssd, …) did not answer within 5 s; applied all the same, but a service here records each run of its job as an error while it does not; ${check}`,
  );
  assertEquals(
    say({ failed: "could not look up the account of user 'bob': getent passwd failed" }),
    `could not look up the account of user 'bob': getent passwd failed; applied all the same, but a service here records each run of its job as an error while it fails; ${check}`,
  );
  const bob: Account = { name: "bob", uid: 1000, gid: 1000, home: "/home/bob" };
  assertEquals(say(bob), null);
  assertEquals(say({ ...bob, expiresOn: NOW / DAY + 1 }), null);
  assertEquals(
    say({ ...bob, expiresOn: NOW / DAY }),
    "user 'bob' on this host (h1), whose account bob expired on 2026-12-06 (its shadow expiry date, as `chage -l bob` shows): applied all the same, but a service here records each run of its job as an error, as cron runs no job of an expired account; renew it (chage -E -1 bob)",
  );
});

/** A lookup that answers none after a macrotask, counting the lookups under way. */
function countingLookUp() {
  const seen = { inFlight: 0, most: 0, asked: [] as string[] };
  const lookUp = async (user: string): Promise<Account | null> => {
    seen.asked.push(user);
    seen.most = Math.max(seen.most, ++seen.inFlight);
    await new Promise((resolve) => setTimeout(resolve, 20));
    seen.inFlight--;
    return null;
  };
  return { seen, lookUp };
}

Deno.test("users are looked up a few at a time, each waited for from its own start", async () => {
  const { seen, lookUp } = countingLookUp();
  // 60 rounds of 20 ms: longer than the wait, which each lookup alone is far within.
  const users = new Map(Array.from({ length: LOOKUPS_AT_ONCE * 60 }, (_, i) => [`u${i}`, 1]));
  const warnings = await userWarnings(
    users,
    "stored",
    new AccountLookups(lookUp, 1000),
    accountExpired,
    NOW,
  );
  assert(
    seen.most <= LOOKUPS_AT_ONCE && seen.most > 1,
    `${seen.most} lookups at once, not 2 to ${LOOKUPS_AT_ONCE}`,
  );
  assertEquals(seen.asked.length, users.size);
  const hung = warnings.filter((w) => w.includes("did not answer"));
  assertEquals(hung, [], `${hung.length} lookups said to hang`);
  assertEquals(warnings.length, users.size);
  assert(warnings[0].startsWith("user 'u0' has no account on this host ("), warnings[0]);
});

Deno.test("once a lookup hangs, the users not yet asked are not asked, and one warning names them", async () => {
  const asked: string[] = [];
  const lookUp = (user: string): Promise<Account | null> => {
    asked.push(user);
    // u3's name service never answers; the others say there is no such account, each after a
    // timer due before u3's wait ends: those started by then are the only ones asked.
    return user === "u3"
      ? new Promise(() => {})
      : new Promise((resolve) => setTimeout(() => resolve(null), 20));
  };
  const users = new Map(Array.from({ length: 40 }, (_, i) => [`u${i}`, 1]));
  const warnings = await userWarnings(
    users,
    "stored",
    new AccountLookups(lookUp, 50),
    accountExpired,
    NOW,
  );
  const unasked = users.size - asked.length;
  assert(unasked > 0 && asked.length >= 4, `asked ${asked.join(" ")}`);
  assertEquals(warnings.filter((w) => w.includes("did not answer within 0.05 s")).length, 1);
  const last = warnings.at(-1)!;
  assertEquals(
    last,
    `${unasked} users ${
      [...users.keys()].filter((u) => !asked.includes(u)).slice(0, 5).map((u) => `'${u}'`)
        .join(", ")
    } and ${
      unasked - 5
    } more not looked up on this host (${Deno.hostname()}), as its name service did not answer for 'u3': stored; check each with \`getent passwd NAME\``,
  );
  assertEquals(warnings.length, asked.length + 1);
});

function job(id: string, user: string | null): Job {
  return buildJob(id, { command: "true", cron: "0 3 * * *", user: user ?? undefined }, null, NOW);
}

function entry(status: PlanEntry["status"], after: Job | null, before: Job | null): PlanEntry {
  return {
    status,
    id: (after ?? before)!.id,
    source: "test",
    job: after,
    current: before,
    changes: [],
    notes: [],
    problem: null,
  };
}

Deno.test("the users a write gives a job: new jobs and changed users, not jobs left as they were", () => {
  const users = usersWritten([
    entry("new", job("a", "ann"), null),
    entry("new", job("b", "ann"), null),
    entry("new", job("c", null), null),
    entry("same", job("d", "dan"), job("d", "dan")),
    entry("differs", job("e", "eve"), job("e", "dan")),
    entry("differs", { ...job("f", "fay"), command: "false" }, job("f", "fay")),
    entry("kept", job("g", "gus"), job("g", "gus")),
    entry("remove", null, job("h", "hal")),
    entry("stale", null, job("i", "ida")),
  ]);
  assertEquals([...users], [["ann", 2], ["eve", 1]]);
});
