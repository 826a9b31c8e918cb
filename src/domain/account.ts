/**
 * What a lookup of a job's user found, and why an account runs no job:
 * shared by the runs that judge it (daemon/run_as.ts) and the writes that
 * warn of it (app/user_warnings.ts).
 */

/**
 * What a user's account was found to be: the account `A`, null where this
 * host has none, "hung" where NSS did not answer within the wait (an LDAP
 * server away), `failed` where getent failed otherwise (the run's note).
 */
export type AccountAnswer<A> = A | null | "hung" | { failed: string };

/** Why an account runs no job: `whose` it is and what ran out, the `rule`, and the `fix`. */
export interface Expired {
  /** "whose account bob expired on 2026-12-06 (its shadow expiry date, …)" */
  whose: string;
  /** "an expired account" */
  rule: string;
  /** "renew it (chage -E -1 bob)" */
  fix: string;
}
