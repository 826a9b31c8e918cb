/**
 * The warnings about the users of the jobs a command stored
 * (app/user_warnings.ts), on stderr, each looked up as a run's start
 * looks it up on this host.
 */
import { userGivenWarnings, userWarnings } from "../app/user_warnings.ts";
import type { JobChange } from "../store/store.ts";
import { accountExpired, AccountLookups } from "../daemon/run_as.ts";
import { writeErr } from "./context.ts";

/** Each of `users` warned about on stderr, as `userWarnings` says. */
export async function warnUsers(
  users: ReadonlyMap<string, number>,
  stored: string,
): Promise<void> {
  for (const warning of await userWarnings(users, stored, new AccountLookups(), accountExpired)) {
    writeErr(`jobsmanager: warning: ${warning}`);
  }
}

/** The user a job's write gave it, warned about on stderr where this host cannot run it as that user. */
export async function warnUserGiven(change: JobChange): Promise<void> {
  for (const warning of await userGivenWarnings(change, new AccountLookups(), accountExpired)) {
    writeErr(`jobsmanager: warning: ${warning}`);
  }
}
