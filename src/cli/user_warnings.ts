/**
 * The warnings of a write that stores jobs run as a user this host cannot
 * run them as: one it has no account of, an expired account, or a name
 * service that did not answer or failed. Said, not refused: the service
 * may run on another host, which has the account, or it may be made or
 * renewed before the first fire. `job add`/`job update --user`, `apply` and
 * `import crontab` say them alike, each with what it did with the jobs.
 */
import type { PlanEntry } from "../app/import/plan.ts";
import { type AccountAnswer, accountExpired, AccountLookups } from "../daemon/run_as.ts";
import { writeErr } from "./context.ts";

/**
 * How many accounts are looked up at once (a getent each): 400 users at
 * once under 1024 open files failed to spawn getent, and 6000 at once
 * took longer than their wait.
 */
export const LOOKUPS_AT_ONCE = 8;

/** The users named in a warning about those not looked up, before "and N more". */
const NAMED_UNASKED = 5;

/**
 * The warning about `user`'s account as `answer` found it, for the `jobs`
 * jobs of it a write stored as `stored` says ("stored all the same", or
 * what a plan would do); null where the account runs them. `waitMs` is how
 * long a lookup was waited for, `now` (ms) the day an expiry is judged on.
 */
export function userWarning(
  user: string,
  answer: AccountAnswer,
  jobs: number,
  stored: string,
  waitMs: number,
  now: number,
  host: string = Deno.hostname(),
): string | null {
  const runs = `a service here records each run of its ${
    jobs === 1 ? "job" : `${jobs} jobs`
  } as an error`;
  const check = `check with \`getent passwd ${user}\``;
  if (answer === null) {
    return `user '${user}' has no account on this host (${host}): ${stored}, as a service on a host that has it runs its jobs, but ${runs} until it exists; ${check}`;
  }
  if (answer === "hung") {
    return `user '${user}' could not be looked up on this host (${host}): its name service (getent passwd: LDAP, sssd, …) did not answer within ${
      waitMs / 1000
    } s; ${stored}, but ${runs} while it does not; ${check}`;
  }
  if ("failed" in answer) {
    return `${answer.failed}; ${stored}, but ${runs} while it fails; ${check}`;
  }
  const expired = accountExpired(answer, now);
  if (expired === null) return null;
  return `user '${user}' on this host (${host}), ${expired.whose}: ${stored}, but ${runs}, as cron runs no job of ${expired.rule}; ${expired.fix}`;
}

/**
 * The warnings about `users` (each with how many of the jobs written run
 * as it), in their order, looked up `LOOKUPS_AT_ONCE` at a time, each
 * waited for from when its own lookup starts. Once one did not answer, the
 * rest are not asked (a name service away would hold each for the whole
 * wait), and one warning names them.
 */
export async function userWarnings(
  users: ReadonlyMap<string, number>,
  stored: string,
  lookups: AccountLookups = new AccountLookups(),
  now: number = Date.now(),
): Promise<string[]> {
  const queue = [...users.keys()];
  const answers = new Map<string, AccountAnswer>();
  let hung: string | null = null;
  const lookUpNext = async () => {
    while (hung === null && queue.length > 0) {
      const user = queue.shift()!;
      const answer = await lookups.find(user);
      answers.set(user, answer);
      if (answer === "hung") hung ??= user;
    }
  };
  await Promise.all(Array.from({ length: Math.min(LOOKUPS_AT_ONCE, queue.length) }, lookUpNext));
  const host = Deno.hostname();
  const warnings = [...users].flatMap(([user, jobs]) => {
    const answer = answers.get(user);
    const warning = answer === undefined
      ? null
      : userWarning(user, answer, jobs, stored, lookups.waitMs, now, host);
    return warning === null ? [] : [warning];
  });
  const unasked = [...users.keys()].filter((user) => !answers.has(user));
  if (unasked.length > 0) {
    const named = unasked.slice(0, NAMED_UNASKED).map((user) => `'${user}'`).join(", ");
    const more = unasked.length - NAMED_UNASKED;
    warnings.push(
      `${unasked.length === 1 ? "user" : `${unasked.length} users`} ${named}${
        more > 0 ? ` and ${more} more` : ""
      } not looked up on this host (${host}), as its name service did not answer for '${hung}': ${stored}; check each with \`getent passwd NAME\``,
    );
  }
  return warnings;
}

/** Each of `users` warned about on stderr, as `userWarnings` says. */
export async function warnUsers(
  users: ReadonlyMap<string, number>,
  stored: string,
): Promise<void> {
  for (const warning of await userWarnings(users, stored)) {
    writeErr(`jobsmanager: warning: ${warning}`);
  }
}

/**
 * Each user a plan's write gives a job (with how many): a new job, or one
 * whose user it changes. A job it leaves as stored, or whose user stays,
 * was warned about when its user was written.
 */
export function usersWritten(entries: readonly PlanEntry[]): Map<string, number> {
  const users = new Map<string, number>();
  for (const { status, job, current } of entries) {
    const user = job?.user ?? null;
    const given = status === "new" || (status === "differs" && (current?.user ?? null) !== user);
    if (given && user !== null) users.set(user, (users.get(user) ?? 0) + 1);
  }
  return users;
}
