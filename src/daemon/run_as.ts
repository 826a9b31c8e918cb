/**
 * A job with a `user` runs as that user, as cron runs a crontab line:
 * with the user's uid, primary gid and supplementary groups (initgroups),
 * HOME, LOGNAME and USER set to theirs, of the service's environment only
 * PATH, the locale and TZ (`envForAnotherUser`), and in their home when
 * the job names no cwd, or in its cwd, entered as them (`inCwd`). The switch is util-linux's `setpriv`, exec'd
 * between the spawn and the shell: posix_spawn cannot change a uid, and a
 * well-kept tool does it rather than privilege code of our own. setpriv
 * execs the shell in its own process, so the run's group, its pid, its
 * pipes and its armed stdin are those of a run without a user.
 *
 * The account is looked up as runs need it (`getent passwd`, which asks
 * NSS: LDAP and sssd accounts too), with its expiry date (`getent
 * shadow`), and its answer kept for `KEEP_MS`: an account made or changed
 * after the job was written counts within that. An expired account (its
 * expiry date, or its password's maximum age and inactive period passed)
 * runs none of its jobs, as cron (PAM's account check) runs none; a locked
 * password (`!` in shadow) stops no job, as it stops none of cron's.
 */
import type { AccountAnswer as AnswerOf, Expired } from "../domain/account.ts";
import { closeInheritedOnExec } from "./inheritance.ts";

/** An account as `getent passwd` gives it, with its expiry as `getent shadow` gives it. */
export interface Account {
  name: string;
  uid: number;
  gid: number;
  home: string;
  /**
   * The day (since 1970-01-01, UTC) from which the account is expired
   * (shadow's 8th field, `chage -E`); absent where it never expires, or
   * where this host has no shadow entry of it that the service may read
   * (LDAP or sssd without shadow, a service not run as root).
   */
  expiresOn?: number;
  /**
   * Its password's aging, as shadow gives it (days; -1 for an empty
   * field): the last change (3rd field), the maximum age (5th) and the
   * inactive period after it (7th). Absent where the maximum age or the
   * inactive period is empty, with which PAM expires no account.
   */
  password?: { changedOn: number; maxDays: number; inactiveDays: number };
}

/** What a run with a user needs: the program and arguments in front of its shell, and its environment. */
export interface RunAs {
  /** Put in front of `/bin/sh -c …`; empty when the service is that user already. */
  prefix: string[];
  /** HOME, LOGNAME and USER, under the job's own env. */
  env: Record<string, string>;
  /** The directory the shell changes to before the command, when the job names no cwd. */
  home: string;
}

/** Who runs the service, and where: what `runAsPlan` judges a job's user against. */
export interface ServiceIdentity {
  uid: number;
  host: string;
  /** util-linux's setpriv; null where it is not installed. */
  setpriv: string | null;
  /** It holds CAP_SETUID and CAP_SETGID, which a switch of user needs (see `canSwitchUser`). */
  canSwitch: boolean;
}

/**
 * This process holds CAP_SETUID (bit 7) and CAP_SETGID (bit 6) in its
 * effective set, as `status` (/proc/self/status) says: a root service run
 * with them dropped (`setpriv --bounding-set=-setuid,-setgid`, a unit's
 * CapabilityBoundingSet) cannot switch. True where it does not say.
 */
export function canSwitchUser(status: string): boolean {
  const hex = /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(status)?.[1];
  if (hex === undefined) return true;
  const both = (1n << 6n) | (1n << 7n);
  return (BigInt(`0x${hex}`) & both) === both;
}

/** The service's own identity, for `runAsPlan`; `setpriv` where it is installed. */
export function thisService(setpriv: string | null): ServiceIdentity {
  let status = "";
  try {
    status = Deno.readTextFileSync("/proc/self/status");
  } catch {
    // No /proc: the switch is tried, and setpriv says what it lacks.
  }
  return {
    uid: Deno.uid() ?? -1,
    host: Deno.hostname(),
    setpriv,
    canSwitch: canSwitchUser(status),
  };
}

/** A day in ms: shadow counts its dates in days since 1970-01-01 (UTC). */
const DAY_MS = 86_400_000;

/**
 * How a run of job `jobId` runs as `user` at `now` (ms), or why it cannot
 * (the run's `error` note, saying what to do). Pure: `account` is the
 * user's entry, null when this host has none.
 */
export function runAsPlan(
  jobId: string,
  user: string,
  account: Account | null,
  service: ServiceIdentity,
  now: number,
): RunAs | { error: string } {
  const who = `job ${jobId} runs as '${user}'`;
  if (account === null) {
    return {
      error:
        `${who}, who has no account on host ${service.host}: create it, or change the job's user (jobsmanager job update ${jobId} --user NAME, or --user '' for the service's own)`,
    };
  }
  const expired = accountExpired(account, now);
  if (expired !== null) {
    return {
      error:
        `${who}, ${expired.whose}: as cron, jobsmanager runs no job of ${expired.rule}; ${expired.fix}, or remove the job's user (jobsmanager job update ${jobId} --user '')`,
    };
  }
  const env = { HOME: account.home, LOGNAME: account.name, USER: account.name };
  if (account.uid === service.uid) return { prefix: [], env, home: account.home };
  if (service.uid !== 0) {
    return {
      error:
        `${who} (uid ${account.uid}), but this service runs as uid ${service.uid}: only a service run as root can run a job as another user: run serve as root (User=root in its systemd unit) or remove the job's user (jobsmanager job update ${jobId} --user '')`,
    };
  }
  if (!service.canSwitch) {
    return {
      error:
        `${who}, but this service runs without CAP_SETUID and CAP_SETGID, which running a job as another user needs (its unit's CapabilityBoundingSet or PrivateUsers, or setpriv --bounding-set, took them): give serve both back, or remove the job's user (jobsmanager job update ${jobId} --user '')`,
    };
  }
  if (service.setpriv === null) {
    return {
      error:
        `${who}, and running a job as another user needs util-linux's setpriv (/usr/bin/setpriv), which host ${service.host} lacks: install util-linux, or remove the job's user (jobsmanager job update ${jobId} --user '')`,
    };
  }
  return {
    prefix: [
      service.setpriv,
      `--reuid=${account.uid}`,
      `--regid=${account.gid}`,
      "--init-groups",
      "--",
    ],
    env,
    home: account.home,
  };
}

/**
 * Whether `account` is expired at `now` (ms), as PAM's pam_unix (cron's
 * account check) judges it, and why: its expiry date came (expired from
 * that day on), or its password's maximum age and inactive period ran
 * out. Null when it is not: a run of it may start.
 */
export function accountExpired(account: Account, now: number): Expired | null {
  const today = Math.floor(now / DAY_MS);
  const day = (days: number) => new Date(days * DAY_MS).toISOString().slice(0, 10);
  const name = account.name;
  if (account.expiresOn !== undefined && today >= account.expiresOn) {
    return {
      whose: `whose account ${name} expired on ${
        day(account.expiresOn)
      } (its shadow expiry date, as \`chage -l ${name}\` shows)`,
      rule: "an expired account",
      fix: `renew it (chage -E -1 ${name})`,
    };
  }
  if (account.password !== undefined && passwordInactiveExpired(account.password, today)) {
    const { changedOn, maxDays, inactiveDays } = account.password;
    return {
      whose: `whose password expired on ${
        day(changedOn + maxDays)
      } and the inactive period of ${inactiveDays} days after it ran out (its shadow password aging, as \`chage -l ${name}\` shows)`,
      rule: "an account PAM counts expired",
      fix: `change its password (chage -d ${
        day(today)
      } ${name}, or passwd ${name}), end its inactive period (chage -I -1 ${name})`,
    };
  }
  return null;
}

/**
 * The account is expired on day `today` for its password's age: pam_unix's
 * check_shadow_expiry, word for word (PAM_ACCT_EXPIRED). A last change of
 * 0 (the password must be changed) and a password merely past its maximum
 * age ask for a new password (PAM_NEW_AUTHTOK_REQD), which stops no job
 * of cron's; a last change after today expires none.
 */
export function passwordInactiveExpired(
  password: NonNullable<Account["password"]>,
  today: number,
): boolean {
  const { changedOn, maxDays, inactiveDays } = password;
  if (changedOn === 0 || today < changedOn) return false;
  const age = today - changedOn;
  return age > maxDays && age > inactiveDays && age > maxDays + inactiveDays &&
    maxDays !== -1 && inactiveDays !== -1;
}

/** The `passwd` line's account; null for a line that is not one. */
export function parsePasswd(line: string): Account | null {
  const f = line.trim().split(":");
  if (f.length < 7 || !/^[0-9]+$/.test(f[2]) || !/^[0-9]+$/.test(f[3])) return null;
  return { name: f[0], uid: Number(f[2]), gid: Number(f[3]), home: f[5] };
}

const GETENT = ["/usr/bin/getent", "/bin/getent"];

/** How long a run's account may take to be found before its run is given up. */
export const LOOKUP_WAIT_MS = 5000;

/**
 * How long an account's answer is kept: 200 runs as one user at one
 * instant would otherwise run getent 200 times (8 ms each), and lose fires.
 */
export const KEEP_MS = 30_000;

/** What a user's account was found to be (domain/account.ts). */
export type AccountAnswer = AnswerOf<Account>;

/**
 * Lookups one `AccountLookups` runs at once, each up to two getent
 * processes (passwd and shadow): a name service that hangs would
 * otherwise hold as many as distinct users were asked for in `KEEP_MS`.
 */
export const LOOKUPS_AT_ONCE = 8;

/** A lookup asked for, running or waiting its turn. */
interface Lookup {
  answer: Promise<Account | null>;
  stop: AbortController;
  /** When its last waiter stops waiting (`now()`): one that has not started by then never does. */
  deadline: number;
  /** Starts it. */
  begin: () => void;
  /** Gives it up before it started: its waiters are answered "hung". */
  drop: () => void;
}

/**
 * The lookups of one thread's runs, made off it (a service's lanes): NSS
 * that waits for an LDAP server away, made on the thread that starts runs,
 * would hold every run of it. Each waits `waitMs` at most; a name asked
 * again while its lookup is under way (or waits its turn) shares it, and
 * an account found (or found to be none) is the answer for `keepMs`
 * after. At most `atOnce` run at once; the others wait their turn, in
 * the order asked, and one whose waiters have all stopped waiting by its
 * turn is dropped unstarted: they were answered "hung", as of a name
 * service that does not answer, and the next ask asks anew. A lookup
 * under way for `keepMs` (a getent that never ends) is given up by a
 * timer of its own (its signal aborts, which kills its getent) and
 * forgotten, its turn given to the next: the next ask asks anew, as the
 * name service may answer again. Given up then, not when its last waiter
 * gives up at `waitMs`: a name service slower than that still answers the
 * next ask; and given up whether or not the name is asked again, or each
 * write naming another user would leave its getent processes for good.
 */
export class AccountLookups {
  private readonly asking = new Map<string, Lookup>();
  private readonly kept = new Map<string, { account: Account | null; until: number }>();
  /** Lookups asked for while `atOnce` ran, oldest first. */
  private readonly waiting: Lookup[] = [];
  private running = 0;

  constructor(
    private readonly lookUp: (user: string, signal: AbortSignal) => Promise<Account | null> = (
      user,
      signal,
    ) => lookUpAccountAsync(user, getentAsync, SHADOW_WAIT_MS, signal),
    readonly waitMs = LOOKUP_WAIT_MS,
    private readonly keepMs = KEEP_MS,
    private readonly now: () => number = () => performance.now(),
    private readonly atOnce = LOOKUPS_AT_ONCE,
  ) {}

  /** `user`'s account, waiting `waitMs` at most; never rejects (a failure is its answer). */
  find(user: string): Promise<AccountAnswer> {
    const kept = this.kept.get(user);
    if (kept !== undefined && this.now() < kept.until) return Promise.resolve(kept.account);
    const deadline = this.now() + this.waitMs;
    let asked = this.asking.get(user);
    if (asked === undefined) {
      asked = this.ask(user, deadline);
    } else {
      asked.deadline = Math.max(asked.deadline, deadline);
    }
    const { answer, stop } = asked;
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve("hung"), this.waitMs);
      answer.then(
        (account) => resolve(account),
        (error) =>
          // Given up for one asked anew, or dropped before its turn: it did not answer.
          resolve(
            stop.signal.aborted ? "hung" : {
              failed: `could not look up the account of user '${user}': ${
                error instanceof Error ? error.message : String(error)
              }`,
            },
          ),
      ).finally(() => clearTimeout(timer));
    });
  }

  /** A lookup of `user`, started now if fewer than `atOnce` run, else when its turn comes. */
  private ask(user: string, deadline: number): Lookup {
    const stop = new AbortController();
    const answered = Promise.withResolvers<Account | null>();
    const forget = () => {
      if (this.asking.get(user) === made) this.asking.delete(user);
    };
    const made: Lookup = {
      answer: answered.promise,
      stop,
      deadline,
      begin: () => {
        this.running++;
        let done = false;
        // Its turn is given back once, whichever comes first: its answer, or its giving up.
        const over = () => {
          if (done) return;
          done = true;
          this.running--;
          this.next();
        };
        const giveUp = setTimeout(() => {
          stop.abort();
          forget();
          over();
        }, this.keepMs);
        // A service with nothing else to do need not wait on a lookup that hangs.
        Deno.unrefTimer(giveUp);
        this.lookUp(user, stop.signal).then(answered.resolve, answered.reject).finally(() => {
          clearTimeout(giveUp);
          over();
        });
      },
      drop: () => {
        stop.abort();
        answered.reject(stop.signal.reason);
      },
    };
    answered.promise.then((account) => {
      this.kept.set(user, { account, until: this.now() + this.keepMs });
    }, () => {}).finally(forget);
    this.asking.set(user, made);
    if (this.running < this.atOnce) made.begin();
    else this.waiting.push(made);
    return made;
  }

  /** Start the lookups whose turn came; drop those no one waits for any more. */
  private next(): void {
    while (this.running < this.atOnce && this.waiting.length > 0) {
      const lookup = this.waiting.shift()!;
      if (this.now() < lookup.deadline) lookup.begin();
      else lookup.drop();
    }
  }
}

/**
 * The note of a run not started because its user's account was not found
 * (`answer` hung, or failed); null for an account, or none, which the run's
 * start judges (runAsPlan). `alone`: it was the only run (`job run --here`).
 */
export function lookupNote(
  answer: AccountAnswer,
  jobId: string,
  user: string,
  waitMs = LOOKUP_WAIT_MS,
  alone = false,
): string | null {
  if (answer === "hung") return lookupHungNote(jobId, user, waitMs, alone);
  if (answer !== null && "failed" in answer) {
    return `could not start the command: job ${jobId}: ${answer.failed}; nothing ran`;
  }
  return null;
}

/**
 * The note of a run not started because its user's account could not be
 * found in time; `alone`: it was the only run (`job run --here`).
 */
export function lookupHungNote(
  jobId: string,
  user: string,
  waitMs = LOOKUP_WAIT_MS,
  alone = false,
): string {
  return `could not start the command: job ${jobId} runs as '${user}', whose account this host's name service (getent passwd: LDAP, sssd, …) did not find within ${
    waitMs / 1000
  } s; nothing ran${alone ? "" : ", and the other runs went on"}`;
}

/**
 * What held a run past its grace when its user's account took `ms` to be
 * found (a slow name service), for its `missed` note.
 */
export function lookupSlowNote(user: string, ms: number): string {
  return `the lookup of account '${user}' took ${
    (ms / 1000).toFixed(1)
  } s (this host's name service: getent passwd and shadow)`;
}

/**
 * How long a shadow entry may take after the account's passwd entry came:
 * it only ever refuses a run, so one not given by then counts as one that
 * cannot be read (no expiry), and holds no run.
 */
export const SHADOW_WAIT_MS = 1000;

/** `getent DATABASE KEY`, killed when `signal` aborts; null where getent is not installed. */
export type Getent = (
  database: "passwd" | "shadow",
  key: string,
  signal?: AbortSignal,
) => Promise<Deno.CommandOutput | null>;

/**
 * As `lookUpAccount`, with getent run off this thread. A name's shadow
 * entry is asked with its passwd entry, a uid's once passwd named it; it
 * is waited for `shadowWaitMs` after passwd answered at most: a name
 * service that answers passwd and not shadow refuses no run, and one that
 * takes a while answers both in the time of one. `signal` gives it up:
 * its getent are killed.
 */
export async function lookUpAccountAsync(
  user: string,
  run: Getent = getentAsync,
  shadowWaitMs = SHADOW_WAIT_MS,
  signal?: AbortSignal,
): Promise<Account | null> {
  const stop = new AbortController();
  const giveUp = () => stop.abort(signal!.reason);
  signal?.addEventListener("abort", giveUp, { once: true });
  try {
    const byName = /^[0-9]+$/.test(user) ? null : shadowOf(user, run, stop.signal);
    const passwd = await run("passwd", user, stop.signal);
    const account = passwd === null
      ? accountInPasswd(user, await Deno.readTextFile("/etc/passwd"))
      : accountOf(passwd);
    if (account === null) return null;
    const shadow = byName ?? shadowOf(account.name, run, stop.signal);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<null>((resolve) =>
      timer = setTimeout(() => resolve(null), shadowWaitMs)
    );
    try {
      return withExpiry(account, await Promise.race([shadow, late]));
    } finally {
      clearTimeout(timer);
    }
  } finally {
    signal?.removeEventListener("abort", giveUp);
    stop.abort();
  }
}

/**
 * `name`'s shadow line, by getent, or /etc/shadow where getent is not
 * installed; null for none, and for any failure: an entry that cannot be
 * read refuses no run.
 */
async function shadowOf(name: string, run: Getent, signal: AbortSignal): Promise<string | null> {
  try {
    const out = await run("shadow", name, signal);
    return out === null ? lineOf(name, await shadowFile()) : shadowLine(out);
  } catch {
    return null;
  }
}

/**
 * `user`'s account on this host (a name, or a uid), as NSS knows it, with
 * its expiry; null when there is none. Where getent is missing, from
 * /etc/passwd. Holding this thread: the expiry is read from /etc/shadow
 * alone, which no name service holds (an LDAP shadow is not seen here;
 * the services and `job run --here` look up with `lookUpAccountAsync`).
 */
export function lookUpAccount(user: string): Account | null {
  const passwd = getentSync(user);
  const account = passwd === null
    ? accountInPasswd(user, Deno.readTextFileSync("/etc/passwd"))
    : accountOf(passwd);
  if (account === null) return null;
  return withExpiry(account, lineOf(account.name, shadowFileSync()));
}

/** `getent DATABASE KEY`'s output; null where getent is not installed. */
async function getentAsync(
  database: "passwd" | "shadow",
  key: string,
  signal?: AbortSignal,
): Promise<Deno.CommandOutput | null> {
  for (const path of GETENT) {
    try {
      return await getent(path, database, key, signal).output();
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  return null;
}

/** `getent passwd KEY`'s output, holding this thread; null where getent is not installed. */
function getentSync(key: string): Deno.CommandOutput | null {
  for (const path of GETENT) {
    try {
      return getent(path, "passwd", key).outputSync();
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  return null;
}

/** `getent DATABASE KEY` at `path`. */
function getent(
  path: string,
  database: "passwd" | "shadow",
  key: string,
  signal?: AbortSignal,
): Deno.Command {
  // As for a run's own Deno.Command spawn: no descriptor this process inherited reaches getent.
  closeInheritedOnExec();
  return new Deno.Command(path, {
    args: [database, key],
    signal,
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  });
}

/** /etc/shadow's text; empty where this process may not read it (not root), or it is not there. */
async function shadowFile(): Promise<string> {
  try {
    return await Deno.readTextFile("/etc/shadow");
  } catch {
    return "";
  }
}

/** As `shadowFile`, holding this thread. */
function shadowFileSync(): string {
  try {
    return Deno.readTextFileSync("/etc/shadow");
  } catch {
    return "";
  }
}

/**
 * The shadow line getent answered; null for none. Not only "no such key"
 * (2): the shadow entry only ever refuses a run, so one this host's name
 * service cannot give (LDAP or sssd without shadow, a service not run as
 * root) refuses none, as an account with no expiry.
 */
function shadowLine(out: Deno.CommandOutput): string | null {
  return out.success ? new TextDecoder().decode(out.stdout).split("\n")[0] : null;
}

/** The line of `name` among the lines of a passwd or shadow file; null where none is. */
function lineOf(name: string, file: string): string | null {
  return file.split("\n").find((line) => line.startsWith(`${name}:`)) ?? null;
}

/**
 * `account` with the expiry its `shadow` line gives (its 8th field, days
 * since 1970-01-01; empty or -1: none), and its password's aging where it
 * has a maximum age and an inactive period. The password (2nd field) is
 * not read: a locked one (`!`) stops no job, as it stops none of cron's.
 */
export function withExpiry(account: Account, shadow: string | null): Account {
  if (shadow === null) return account;
  const f = shadow.split(":");
  // As getspnam reads a field: empty is -1.
  const days = (field: string | undefined) =>
    field === undefined || field === "" ? -1 : /^-?[0-9]+$/.test(field) ? Number(field) : null;
  const expiry = days(f[7]);
  const [changedOn, maxDays, inactiveDays] = [days(f[2]), days(f[4]), days(f[6])];
  return {
    ...account,
    ...(expiry !== null && expiry >= 0 ? { expiresOn: expiry } : {}),
    ...(changedOn !== null && maxDays !== null && maxDays !== -1 && inactiveDays !== null &&
        inactiveDays !== -1
      ? { password: { changedOn, maxDays, inactiveDays } }
      : {}),
  };
}

/**
 * The account getent answered; null for its "no such key" (2). Any other
 * failure (1: bad arguments, 3: no passwd database) is not the account's
 * absence: it throws, naming the exit status.
 */
export function accountOf(out: Deno.CommandOutput): Account | null {
  if (out.success) return parsePasswd(new TextDecoder().decode(out.stdout).split("\n")[0]);
  if (out.code === GETENT_NO_SUCH_KEY) return null;
  throw new Error(
    `getent passwd failed with exit status ${out.code}${
      out.signal === null ? "" : ` (${out.signal})`
    }, not its 2 for no such account: see that this host's name service (nsswitch.conf's passwd) answers`,
  );
}

/** getent's exit status for a key its database does not have. */
const GETENT_NO_SUCH_KEY = 2;

/** `user`'s account (a name, or a uid) among the lines of a passwd file; null where none is. */
function accountInPasswd(user: string, passwd: string): Account | null {
  const numeric = /^[0-9]+$/.test(user);
  for (const line of passwd.split("\n")) {
    const account = parsePasswd(line);
    if (account !== null && (numeric ? account.uid === Number(user) : account.name === user)) {
      return account;
    }
  }
  return null;
}

/** Variables of the service's environment a run as another user is given, as cron gives its jobs. */
const KEPT_FOR_ANOTHER_USER = new Set(["PATH", "LANG", "LANGUAGE", "TZ"]);

/**
 * What a run as another user keeps of the service's environment `base`:
 * PATH, the locale (LANG, LANGUAGE, LC_*) and TZ, no more. The rest is the
 * service's own (a root's AWS_SECRET_ACCESS_KEY, SSH_AUTH_SOCK, its
 * JM_DATABASE_URL), which another user's job must not be handed.
 */
export function envForAnotherUser(base: Record<string, string>): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [name, value] of Object.entries(base)) {
    if (KEPT_FOR_ANOTHER_USER.has(name) || name.startsWith("LC_")) kept[name] = value;
  }
  return kept;
}

/** The script that changes to the user's home, as cron does, before `command`; `/` where it cannot. */
export function inHome(command: string): string {
  // One line, before the command's first: its line numbers stay a plain shell's. As the
  // user, so a home they cannot enter is not entered; `/` as cron, whose cwd it is.
  return `cd -- "$HOME" 2>/dev/null || cd /; ${command}`;
}

/** Exit status of a run as another user whose shell could not enter its cwd: nothing ran. */
export const CWD_REFUSED_EXIT = 126;

/** The note (and the line on stderr) of a run as `user` that could not enter `cwd`. */
export function cwdRefusedNote(jobId: string, user: string, cwd: string): string {
  return `job ${jobId} runs as '${user}', who cannot enter its cwd ${cwd}; nothing ran: give '${user}' the search (x) permission on it and on each directory above it, or change the job's cwd (jobsmanager job update ${jobId} --cwd DIR)`;
}

/**
 * The script that changes to the job's `cwd` before `command`, as the user:
 * the service (root) entering it would let the user's command read, by
 * relative paths, a directory they cannot reach. One that they cannot
 * enter ends the shell with CWD_REFUSED_EXIT and `cwdRefusedNote` on
 * stderr, right after `mark` (`refusalMark`): stderr's first bytes,
 * which are not kept (capture.ts MarkedCapture), and which no command is
 * given. So the note is told whatever the output cap, and a command that
 * prints the same line and exits 126 is not taken for it. The mark is in
 * the shell's command line, which /proc shows its own user: a command
 * that reads it there (/proc/$$/cmdline in its text) can fake its own
 * run's note, and no other's, each shell having its own mark.
 */
export function inCwd(
  jobId: string,
  user: string,
  cwd: string,
  command: string,
  mark: string,
): string {
  const quoted = (text: string) => `'${text.replaceAll("'", "'\\''")}'`;
  const refused = quoted(`${mark}jobsmanager: ${cwdRefusedNote(jobId, user, cwd)}`);
  // One line, as inHome's.
  return `cd -- ${
    quoted(cwd)
  } 2>/dev/null || { printf '%s\\n' ${refused} >&2; exit ${CWD_REFUSED_EXIT}; }; ${command}`;
}

/** A new mark for `inCwd`, one per shell: random, and in no command's environment (in its shell's command line). */
export function refusalMark(): string {
  return `jobsmanager-${crypto.randomUUID()}:`;
}
