/**
 * A job with a `user` runs as that user, as cron runs a crontab line:
 * with the user's uid, primary gid and supplementary groups (initgroups),
 * HOME, LOGNAME and USER set to theirs (PATH as it was), and in their home
 * when the job names no cwd. The switch is util-linux's `setpriv`, exec'd
 * between the spawn and the shell: posix_spawn cannot change a uid, and a
 * well-kept tool does it rather than privilege code of our own. setpriv
 * execs the shell in its own process, so the run's group, its pid, its
 * pipes and its armed stdin are those of a run without a user.
 *
 * The account is looked up at every run (`getent passwd`, which asks NSS:
 * LDAP and sssd accounts too), as cron does: an account made or changed
 * after the job was written counts at its next run.
 */
import { closeInheritedOnExec } from "./inheritance.ts";

/** An account as `getent passwd` gives it. */
export interface Account {
  name: string;
  uid: number;
  gid: number;
  home: string;
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
}

/**
 * How a run of job `jobId` runs as `user`, or why it cannot (the run's
 * `error` note, saying what to do). Pure: `account` is the user's entry,
 * null when this host has none.
 */
export function runAsPlan(
  jobId: string,
  user: string,
  account: Account | null,
  service: ServiceIdentity,
): RunAs | { error: string } {
  const who = `job ${jobId} runs as '${user}'`;
  if (account === null) {
    return {
      error:
        `${who}, who has no account on host ${service.host}: create it, or change the job's user (jobsmanager job update ${jobId} --user NAME, or --user '' for the service's own)`,
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

/** The `passwd` line's account; null for a line that is not one. */
export function parsePasswd(line: string): Account | null {
  const f = line.trim().split(":");
  if (f.length < 7 || !/^[0-9]+$/.test(f[2]) || !/^[0-9]+$/.test(f[3])) return null;
  return { name: f[0], uid: Number(f[2]), gid: Number(f[3]), home: f[5] };
}

const GETENT = ["/usr/bin/getent", "/bin/getent"];

/**
 * `user`'s account on this host (a name, or a uid), as NSS knows it; null
 * when there is none. Where getent is missing, from /etc/passwd.
 */
export function lookUpAccount(user: string): Account | null {
  for (const getent of GETENT) {
    let out;
    // As for a run's own Deno.Command spawn: no descriptor this process inherited reaches getent.
    closeInheritedOnExec();
    try {
      out = new Deno.Command(getent, {
        args: ["passwd", user],
        stdin: "null",
        stdout: "piped",
        stderr: "null",
      }).outputSync();
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue;
      throw error;
    }
    // 2: no such key; anything else is no answer either.
    return out.success ? parsePasswd(new TextDecoder().decode(out.stdout).split("\n")[0]) : null;
  }
  const numeric = /^[0-9]+$/.test(user);
  for (const line of Deno.readTextFileSync("/etc/passwd").split("\n")) {
    const account = parsePasswd(line);
    if (account !== null && (numeric ? account.uid === Number(user) : account.name === user)) {
      return account;
    }
  }
  return null;
}

/** The script that changes to the user's home, as cron does, before `command`; `/` where it cannot. */
export function inHome(command: string): string {
  // One line, before the command's first: its line numbers stay a plain shell's. As the
  // user, so a home they cannot enter is not entered; `/` as cron, whose cwd it is.
  return `cd -- "$HOME" 2>/dev/null || cd /; ${command}`;
}
