/**
 * The warnings of a write that stores jobs run as a user this host cannot
 * run them as: one it has no account of, an expired account, or a name
 * service that did not answer or failed. Said, not refused: the service
 * may run on another host, which has the account, or it may be made or
 * renewed before the first fire. `job add`/`job update --user`, `apply`,
 * `import crontab` (on stderr) and the API's job writes (in their answer)
 * say them alike, each with what it did with the jobs; "this host" is the
 * one the write was made on, named.
 *
 * The accounts are looked up by the entry point (daemon/run_as.ts
 * `AccountLookups`, judged by `accountExpired`, as a run's start judges
 * them), which app/ does not import.
 */
import type { PlanEntry } from "./import/plan.ts";
import type { JobChange } from "../store/store.ts";
import type { AccountAnswer, Expired } from "../domain/account.ts";

/**
 * How many accounts are looked up at once (a getent each): 400 users at
 * once under 1024 open files failed to spawn getent, and 6000 at once
 * took longer than their wait.
 */
export const LOOKUPS_AT_ONCE = 8;

/** The users named in a warning about those not looked up, before "and N more". */
const NAMED_UNASKED = 5;

/** This host's accounts, found as a run's start finds them (daemon/run_as.ts `AccountLookups`). */
export interface AccountFinder<A extends object> {
  /** How long one lookup is waited for (ms). */
  readonly waitMs: number;
  /** `user`'s account, waiting `waitMs` at most; never rejects (a failure is its answer). */
  find(user: string): Promise<AccountAnswer<A>>;
}

/** Why `account` runs no job at `now` (ms), null where it runs them (daemon/run_as.ts `accountExpired`). */
export type ExpiryRule<A> = (account: A, now: number) => Expired | null;

/**
 * The warning about `user`'s account as `answer` found it, for the `jobs`
 * jobs of it a write stored as `stored` says ("stored all the same", or
 * what a plan would do); null where the account runs them. `waitMs` is how
 * long a lookup was waited for, `now` (ms) the day `expired` judges on.
 */
export function userWarning<A extends object>(
  user: string,
  answer: AccountAnswer<A>,
  expired: ExpiryRule<A>,
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
  const why = expired(answer, now);
  if (why === null) return null;
  return `user '${user}' on this host (${host}), ${why.whose}: ${stored}, but ${runs}, as cron runs no job of ${why.rule}; ${why.fix}`;
}

/**
 * The warnings about `users` (each with how many of the jobs written run
 * as it), in their order, looked up `LOOKUPS_AT_ONCE` at a time, each
 * waited for from when its own lookup starts. Once one did not answer, the
 * rest are not asked (a name service away would hold each for the whole
 * wait), and one warning names them.
 */
export async function userWarnings<A extends object>(
  users: ReadonlyMap<string, number>,
  stored: string,
  lookups: AccountFinder<A>,
  expired: ExpiryRule<A>,
  now: number = Date.now(),
): Promise<string[]> {
  const queue = [...users.keys()];
  const answers = new Map<string, AccountAnswer<A>>();
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
      : userWarning(user, answer, expired, jobs, stored, lookups.waitMs, now, host);
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

/**
 * The warnings of one job's write (`job add`, `job update`, the API's POST
 * and PATCH): about the user it gave the job, new or changed from another;
 * none where the user stays, which was warned about when it was written.
 */
export async function userGivenWarnings<A extends object>(
  change: JobChange,
  lookups: AccountFinder<A>,
  expired: ExpiryRule<A>,
  now: number = Date.now(),
): Promise<string[]> {
  const user = change.after?.user ?? null;
  if (user === null || (change.before?.user ?? null) === user) return [];
  return await userWarnings(new Map([[user, 1]]), "stored all the same", lookups, expired, now);
}
