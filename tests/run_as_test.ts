/**
 * How a run with a user runs (run_as.ts), judged for any service: one not
 * run as root, one without setpriv, one that is the user already. The
 * runs themselves, as root, are in runner_test.ts.
 */
import { assertEquals, assertRejects, assertThrows } from "./assert.ts";
import { waitFor } from "./helpers.ts";
import {
  type Account,
  AccountLookups,
  accountOf,
  canSwitchUser,
  envForAnotherUser,
  type Getent,
  KEEP_MS,
  lookUpAccount,
  lookUpAccountAsync,
  lookupHungNote,
  lookupNote,
  LOOKUPS_AT_ONCE,
  parsePasswd,
  passwordInactiveExpired,
  runAsPlan,
  SHADOW_WAIT_MS,
  withExpiry,
} from "../src/daemon/run_as.ts";

const BOB: Account = { name: "bob", uid: 1001, gid: 1002, home: "/home/bob" };
const BOB_ENV = { HOME: "/home/bob", LOGNAME: "bob", USER: "bob" };
/** 2026-12-06T12:00:00Z: day 20793 of shadow's (days since 1970-01-01). */
const NOW = Date.UTC(2026, 11, 6, 12);

/** What a script run in a process of its own printed as JSON, once it ended cleanly, saying nothing on stderr. */
function printed(out: Deno.CommandOutput): unknown {
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  assertEquals([out.code, text(out.stderr)], [0, ""]);
  return JSON.parse(text(out.stdout));
}
Deno.test("a service run as root switches to the user with setpriv: uid, gid and initgroups", () => {
  assertEquals(
    runAsPlan("backup", "bob", BOB, {
      uid: 0,
      host: "web-1",
      setpriv: "/usr/bin/setpriv",
      canSwitch: true,
    }, NOW),
    {
      prefix: ["/usr/bin/setpriv", "--reuid=1001", "--regid=1002", "--init-groups", "--"],
      env: BOB_ENV,
      home: "/home/bob",
    },
  );
});

Deno.test("a service that is the job's user already runs it as itself, with the user's HOME, without setpriv", () => {
  for (const setpriv of ["/usr/bin/setpriv", null]) {
    assertEquals(
      runAsPlan("backup", "1001", BOB, { uid: 1001, host: "web-1", setpriv, canSwitch: true }, NOW),
      { prefix: [], env: BOB_ENV, home: "/home/bob" },
    );
  }
});

Deno.test("a service not run as root refuses a job of another user, saying to run it as root or drop the user", () => {
  assertEquals(
    runAsPlan("backup", "bob", BOB, {
      uid: 998,
      host: "web-1",
      setpriv: "/usr/bin/setpriv",
      canSwitch: true,
    }, NOW),
    {
      error:
        "job backup runs as 'bob' (uid 1001), but this service runs as uid 998: only a service run as root can run a job as another user: run serve as root (User=root in its systemd unit) or remove the job's user (jobsmanager job update backup --user '')",
    },
  );
});

Deno.test("a user without an account, or a host without setpriv, is refused saying what to do", () => {
  assertEquals(
    runAsPlan(
      "backup",
      "bob",
      null,
      { uid: 0, host: "web-1", setpriv: null, canSwitch: true },
      NOW,
    ),
    {
      error:
        "job backup runs as 'bob', who has no account on host web-1: create it, or change the job's user (jobsmanager job update backup --user NAME, or --user '' for the service's own)",
    },
  );
  assertEquals(
    runAsPlan("backup", "bob", BOB, { uid: 0, host: "web-1", setpriv: null, canSwitch: true }, NOW),
    {
      error:
        "job backup runs as 'bob', and running a job as another user needs util-linux's setpriv (/usr/bin/setpriv), which host web-1 lacks: install util-linux, or remove the job's user (jobsmanager job update backup --user '')",
    },
  );
});

Deno.test("an expired account runs no job, from its expiry day on, as PAM's account check says; a locked password stops none", () => {
  const service = { uid: 0, host: "web-1", setpriv: "/usr/bin/setpriv", canSwitch: true };
  const expired = {
    error:
      "job backup runs as 'bob', whose account bob expired on 2026-12-06 (its shadow expiry date, as `chage -l bob` shows): as cron, jobsmanager runs no job of an expired account; renew it (chage -E -1 bob), or remove the job's user (jobsmanager job update backup --user '')",
  };
  assertEquals(runAsPlan("backup", "bob", { ...BOB, expiresOn: 20793 }, service, NOW), expired);
  assertEquals(
    runAsPlan("backup", "bob", { ...BOB, expiresOn: 20794 }, service, NOW),
    runAsPlan("backup", "bob", BOB, service, NOW),
    "the day before its expiry it runs",
  );
  // The shadow's 8th field; its 2nd (a locked `!`) is not read.
  assertEquals(withExpiry(BOB, "bob:!$6$salt$hash:20000:0:99999:7::20793:"), {
    ...BOB,
    expiresOn: 20793,
  });
  assertEquals(withExpiry(BOB, "bob:$6$salt$hash:20000:0:99999:7::0:"), { ...BOB, expiresOn: 0 });
  for (const line of ["bob:!:20000:0:99999:7:::", "bob:*:20000:0:99999:7::-1:", null]) {
    assertEquals(withExpiry(BOB, line), BOB, String(line));
  }
});

Deno.test("a password past its maximum age and its inactive period expires the account, as pam_unix counts it; one merely past its maximum age runs", () => {
  const service = { uid: 0, host: "web-1", setpriv: "/usr/bin/setpriv", canSwitch: true };
  // Changed on 2026-10-01 (20727), 30 days' maximum age, 5 days inactive: refused from 20727 + 36.
  const line = "bob:$6$salt$hash:20727:0:30:7:5::";
  const aged = withExpiry(BOB, line);
  assertEquals(aged, { ...BOB, password: { changedOn: 20727, maxDays: 30, inactiveDays: 5 } });
  assertEquals(runAsPlan("backup", "bob", aged, service, NOW), {
    error:
      "job backup runs as 'bob', whose password expired on 2026-10-31 and the inactive period of 5 days after it ran out (its shadow password aging, as `chage -l bob` shows): as cron, jobsmanager runs no job of an account PAM counts expired; change its password (chage -d 2026-12-06 bob, or passwd bob), end its inactive period (chage -I -1 bob), or remove the job's user (jobsmanager job update backup --user '')",
  });
  // pam_unix's check_shadow_expiry, at its edges: [last change, max, inactive, today, expired].
  const cases: [number, number, number, number, boolean][] = [
    [20000, 30, 5, 20035, false],
    [20000, 30, 5, 20036, true],
    [20000, 30, 40, 20070, false], // past max + inactive, but that many days must pass
    [20000, 30, 40, 20071, true],
    [20000, 30, 0, 20030, false], // merely past its maximum age: a new password is asked, no more
    [20000, 30, 0, 20031, true],
    [20000, 0, 0, 20001, true],
    [0, 30, 5, 20793, false], // 0: must be changed (PAM_NEW_AUTHTOK_REQD)
    [-1, 30, 5, 34, false], // an empty last change is -1, as getspnam reads it
    [-1, 30, 5, 35, true],
    [20800, 30, 5, 20793, false], // changed in the future
    [20000, -1, 5, 20793, false],
    [20000, 30, -1, 20793, false],
  ];
  for (const [changedOn, maxDays, inactiveDays, today, expired] of cases) {
    assertEquals(
      passwordInactiveExpired({ changedOn, maxDays, inactiveDays }, today),
      expired,
      `${changedOn}:${maxDays}:${inactiveDays} on day ${today}`,
    );
  }
  // An empty maximum age or inactive period (chage -M -1, -I -1) expires none: not kept.
  for (const none of ["bob:x:20000:0::7:5::", "bob:x:20000:0:30:7:::", "bob:x:20000:0:30:7:-1::"]) {
    assertEquals(withExpiry(BOB, none), BOB, none);
  }
  assertEquals(withExpiry(BOB, "bob:x::0:30:7:5::").password, {
    changedOn: -1,
    maxDays: 30,
    inactiveDays: 5,
  });
});

Deno.test("a passwd line is an account; anything else is none", () => {
  assertEquals(parsePasswd("bob:x:1001:1002:Bob,,,:/home/bob:/bin/bash\n"), BOB);
  for (const line of ["", "bob:x:1001", "bob:x:one:1002:Bob:/home/bob:/bin/sh"]) {
    assertEquals(parsePasswd(line), null, line);
  }
});

Deno.test("accounts are looked up by name and by uid; an unknown one is none", () => {
  const root = { name: "root", uid: 0, gid: 0, home: "/root" };
  assertEquals([lookUpAccount("root"), lookUpAccount("0")], [root, root]);
  assertEquals(lookUpAccount("jm-no-such-user"), null);
  assertEquals(lookUpAccount("4294967290"), null);
});

Deno.test({
  name:
    "a service not run as root records a run of another user's job as an error saying so; nothing ran",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    // The runner in a Deno run as nobody: its own binary and cache, which nobody can read.
    const dir = { path: await Deno.makeTempDir({ prefix: "jm-test-" }) };
    try {
      await Deno.chmod(dir.path, 0o755);
      await Deno.copyFile(Deno.execPath(), `${dir.path}/deno`);
      await Deno.mkdir(`${dir.path}/cache`, { mode: 0o777 });
      await Deno.chmod(`${dir.path}/cache`, 0o777);
      const runner = new URL("../src/daemon/runner.ts", import.meta.url).href;
      await Deno.writeTextFile(
        `${dir.path}/run.ts`,
        `import { startRun } from ${JSON.stringify(runner)};
const r = await startRun({ command: "touch ${dir.path}/cache/ran", env: {}, timeoutMs: 10000,
  killGraceMs: 500, outputCap: 100, user: { job: "backup", name: "root" } }).done;
console.log(JSON.stringify([r.status, r.note]));`,
      );
      const out = await new Deno.Command("setpriv", {
        args: [
          "--reuid=65534",
          "--regid=65534",
          "--clear-groups",
          "--",
          `${dir.path}/deno`,
          "run",
          "--allow-all",
          "--no-config",
          "--quiet",
          `${dir.path}/run.ts`,
        ],
        cwd: dir.path,
        env: {
          DENO_DIR: `${dir.path}/cache`,
          HOME: dir.path,
          NO_COLOR: "1",
          PATH: "/usr/bin:/bin",
        },
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assertEquals(printed(out), [
        "error",
        "job backup runs as 'root' (uid 0), but this service runs as uid 65534: only a service run as root can run a job as another user: run serve as root (User=root in its systemd unit) or remove the job's user (jobsmanager job update backup --user '')",
      ]);
      assertEquals([...Deno.readDirSync(`${dir.path}/cache`)].some((e) => e.name === "ran"), false);
    } finally {
      await Deno.remove(dir.path, { recursive: true });
    }
  },
});

Deno.test("a root service without CAP_SETUID and CAP_SETGID refuses a job of another user, saying how to give them back", () => {
  // CapEff as /proc/self/status gives it: all of root's, then without setuid (bit 7), setgid (bit 6).
  assertEquals(canSwitchUser("Name:\tdeno\nCapEff:\t000001ffffffffff\n"), true);
  assertEquals(canSwitchUser("CapEff:\t000001ffffffff7f\n"), false);
  assertEquals(canSwitchUser("CapEff:\t000001ffffffffbf\n"), false);
  assertEquals(canSwitchUser("CapEff:\t00000000000000c0\n"), true);
  assertEquals(canSwitchUser("Name:\tdeno\n"), true, "a status that does not say: tried");
  assertEquals(
    runAsPlan("backup", "bob", BOB, {
      uid: 0,
      host: "web-1",
      setpriv: "/usr/bin/setpriv",
      canSwitch: false,
    }, NOW),
    {
      error:
        "job backup runs as 'bob', but this service runs without CAP_SETUID and CAP_SETGID, which running a job as another user needs (its unit's CapabilityBoundingSet or PrivateUsers, or setpriv --bounding-set, took them): give serve both back, or remove the job's user (jobsmanager job update backup --user '')",
    },
  );
  // The service's own user needs no switch.
  assertEquals(
    runAsPlan("backup", "root", { name: "root", uid: 0, gid: 0, home: "/root" }, {
      uid: 0,
      host: "web-1",
      setpriv: "/usr/bin/setpriv",
      canSwitch: false,
    }, NOW),
    { prefix: [], env: { HOME: "/root", LOGNAME: "root", USER: "root" }, home: "/root" },
  );
});

Deno.test({
  name:
    "a root service whose bounding set lacks setuid and setgid records a run of another user's job as an error saying so",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    const runner = new URL("../src/daemon/runner.ts", import.meta.url).href;
    const out = await new Deno.Command("setpriv", {
      args: [
        "--bounding-set=-setuid,-setgid",
        "--",
        Deno.execPath(),
        "eval",
        "--quiet",
        `import { startRun } from ${JSON.stringify(runner)};
const r = await startRun({ command: "echo ran", env: {}, timeoutMs: 10000,
  killGraceMs: 500, outputCap: 100, user: { job: "backup", name: "nobody" } }).done;
console.log(JSON.stringify([r.status, r.exitCode, r.stdout, r.note]));`,
      ],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(printed(out), [
      "error",
      null,
      "",
      "job backup runs as 'nobody', but this service runs without CAP_SETUID and CAP_SETGID, which running a job as another user needs (its unit's CapabilityBoundingSet or PrivateUsers, or setpriv --bounding-set, took them): give serve both back, or remove the job's user (jobsmanager job update backup --user '')",
    ]);
  },
});

Deno.test("an account's answer is kept 30 s, none too; then looked up again", async () => {
  let at = 0;
  const asked: string[] = [];
  const lookups = new AccountLookups(
    (user) => {
      asked.push(user);
      return Promise.resolve(user === "bob" ? BOB : null);
    },
    5000,
    KEEP_MS,
    () => at,
  );
  assertEquals(await lookups.find("bob"), BOB);
  assertEquals(await lookups.find("ghost"), null);
  at = KEEP_MS - 1;
  assertEquals([await lookups.find("bob"), await lookups.find("ghost")], [BOB, null]);
  assertEquals(asked, ["bob", "ghost"], "kept");
  at = KEEP_MS;
  assertEquals(await lookups.find("bob"), BOB);
  assertEquals(asked, ["bob", "ghost", "bob"], "asked again once its answer is 30 s old");
  assertEquals(KEEP_MS, 30_000);
});

Deno.test("a lookup under way for keepMs is given up, its getent killed, and the account asked anew", async () => {
  const asked: AbortSignal[] = [];
  const lookups = new AccountLookups(
    (_user, signal) => {
      asked.push(signal);
      // The first never answers (an LDAP server away); the next, once it is back, does.
      if (asked.length === 1) {
        return new Promise((_, reject) =>
          signal.addEventListener("abort", () => reject(signal.reason))
        );
      }
      return Promise.resolve(BOB);
    },
    10,
    200,
  );
  assertEquals(await lookups.find("bob"), "hung");
  const shared = await lookups.find("bob");
  assertEquals([shared, asked.length], ["hung", 1], "shared while under way");
  await waitFor(() => asked[0].aborted, {
    timeoutMs: 10_000,
    what: "the hung lookup given up at keepMs",
  });
  const [before, after] = [lookups.find("bob"), lookups.find("bob")];
  assertEquals([await before, await after], [BOB, BOB], "asked anew once given up");
  assertEquals(asked.map((s) => s.aborted), [true, false], "the hung one given up, once");
});

Deno.test("hung lookups of users never asked again are given up at keepMs: their getent processes end", async () => {
  // A name service that hangs: each getent a process that never ends (until killed).
  const children: Deno.ChildProcess[] = [];
  const hanging: Getent = async (_database, _key, signal) => {
    const child = new Deno.Command("sleep", {
      args: ["300"],
      stdout: "null",
      stderr: "null",
      signal,
    }).spawn();
    children.push(child);
    await child.status;
    throw signal?.reason ?? new Error("getent ended");
  };
  const lookups = new AccountLookups(
    (user, signal) => lookUpAccountAsync(user, hanging, SHADOW_WAIT_MS, signal),
    10,
    200,
  );
  const ended = new Set<number>();
  try {
    // One write each, as many users: each answered "hung", none asked again.
    for (const user of ["ann", "bea", "cid"]) assertEquals(await lookups.find(user), "hung");
    for (const child of children) child.status.then(() => ended.add(child.pid));
    await waitFor(() => ended.size === 6, {
      timeoutMs: 10_000,
      what: "every getent (passwd and shadow of 3 users) killed",
      detail: () => `still running: ${children.filter((c) => !ended.has(c.pid)).map((c) => c.pid)}`,
    });
  } finally {
    for (const child of children.filter((c) => !ended.has(c.pid))) {
      child.kill();
      await child.status;
    }
  }
});

Deno.test("many users asked at once while the name service hangs: 8 lookups run (16 getent), the others, not started within their wait, never start and answer 'hung'", async () => {
  // A name service that hangs: each getent a process that never ends (until killed).
  const children: Deno.ChildProcess[] = [];
  const ended = new Set<number>();
  let most = 0;
  const hanging: Getent = async (_database, _key, signal) => {
    const child = new Deno.Command("sleep", {
      args: ["300"],
      stdout: "null",
      stderr: "null",
      signal,
    }).spawn();
    children.push(child);
    most = Math.max(most, children.filter((c) => !ended.has(c.pid)).length);
    child.status.then(() => ended.add(child.pid));
    await child.status;
    throw signal?.reason ?? new Error("getent ended");
  };
  // Each waits 50 ms; the ones running are given up after 1 s, when the others' wait is long over.
  const lookups = new AccountLookups(
    (user, signal) => lookUpAccountAsync(user, hanging, SHADOW_WAIT_MS, signal),
    50,
    1000,
  );
  const users = Array.from({ length: 20 }, (_, i) => `user${i}`);
  try {
    // 20 jobs written at once, each naming another user.
    const answers = await Promise.all(users.map((user) => lookups.find(user)));
    assertEquals(answers, users.map(() => "hung"));
    assertEquals(LOOKUPS_AT_ONCE, 8);
    assertEquals(
      [children.length, most],
      [2 * LOOKUPS_AT_ONCE, 2 * LOOKUPS_AT_ONCE],
      "getent processes started, and running at once: passwd and shadow of 8 users",
    );
    await waitFor(() => children.every((c) => ended.has(c.pid)), {
      timeoutMs: 15_000,
      what: "every getent killed at keepMs",
      detail: () => `still running: ${children.filter((c) => !ended.has(c.pid)).map((c) => c.pid)}`,
    });
    assertEquals(
      children.length,
      2 * LOOKUPS_AT_ONCE,
      "a lookup no one waited for any more started",
    );
  } finally {
    for (const child of children.filter((c) => !ended.has(c.pid))) {
      child.kill();
      await child.status;
    }
  }
});

Deno.test("a lookup waiting its turn starts when one ends, if its wait has not passed; else it is dropped, and the next ask asks anew", async () => {
  let at = 0;
  const asked: string[] = [];
  const answers = new Map<string, PromiseWithResolvers<Account | null>>();
  const lookups = new AccountLookups(
    (user) => {
      asked.push(user);
      const answer = Promise.withResolvers<Account | null>();
      answers.set(user, answer);
      return answer.promise;
    },
    20,
    60_000,
    () => at,
    2,
  );
  const account = (name: string): Account => ({ ...BOB, name });
  // The waits (20 ms) are long over by then: an answer is seen as kept.
  const kept = (user: string) =>
    waitFor(async () => {
      const found = await lookups.find(user);
      return found === "hung" ? null : { found };
    }, { timeoutMs: 10_000, what: `${user}'s answer kept` });
  const waits = ["ann", "bea", "cid"].map((user) => lookups.find(user));
  at = 10;
  waits.push(lookups.find("dan"));
  assertEquals(asked, ["ann", "bea"], "two at once");
  assertEquals(await Promise.all(waits), ["hung", "hung", "hung", "hung"]);
  // Ann's lookup ends at 25: cid's wait (to 20) has passed, dan's (to 30) has not.
  at = 25;
  answers.get("ann")!.resolve(account("ann"));
  assertEquals(await kept("ann"), { found: account("ann") });
  assertEquals(asked, ["ann", "bea", "dan"], "dan's started in its turn, cid's dropped");
  answers.get("dan")!.resolve(account("dan"));
  assertEquals(await kept("dan"), { found: account("dan") });
  const again = lookups.find("cid");
  assertEquals(asked, ["ann", "bea", "dan", "cid"], "cid asked anew");
  answers.get("cid")!.resolve(null);
  answers.get("bea")!.resolve(account("bea"));
  assertEquals(await again, null);
  assertEquals(await kept("bea"), { found: account("bea") });
});

Deno.test("a lookup given up kills its getent", async () => {
  const signals: (AbortSignal | undefined)[] = [];
  const run: Getent = (_database, _key, signal) => {
    signals.push(signal);
    return new Promise((_, reject) =>
      signal!.addEventListener("abort", () => reject(signal!.reason))
    );
  };
  const stop = new AbortController();
  const lookup = lookUpAccountAsync("bob", run, SHADOW_WAIT_MS, stop.signal);
  stop.abort();
  await assertRejects(() => lookup);
  assertEquals(signals.length, 2, "passwd and shadow asked");
  assertEquals(signals.map((s) => s?.aborted), [true, true]);
});

/** getent's output: `stdout` with status 0, or none with `code`. */
function output(code: number, stdout = ""): Deno.CommandOutput {
  return {
    success: code === 0,
    code,
    signal: null,
    stdout: new TextEncoder().encode(stdout),
    stderr: new Uint8Array(),
  };
}

/**
 * A getent whose passwd answers `passwd` once `passwdAnswers` resolves and
 * whose shadow never answers (until the lookup gives it up); `asked` says
 * what was asked, in order, and whether passwd had answered by then.
 */
function shadowNeverAnswers(passwd: string, passwdAnswers: Promise<void>) {
  const asked: string[] = [];
  let answered = false;
  const run: Getent = async (database, key, signal) => {
    asked.push(`${database} ${key}${answered ? " (after passwd)" : ""}`);
    if (database === "passwd") {
      await passwdAnswers;
      answered = true;
      return output(0, passwd);
    }
    return await new Promise((_, reject) =>
      signal!.addEventListener("abort", () => reject(signal!.reason))
    );
  };
  return { run, asked };
}

Deno.test("a shadow entry that never comes holds and refuses no run: passwd and shadow are asked at once by name, shadow after passwd by uid", async () => {
  const line = "bob:x:1001:1002:Bob:/home/bob:/bin/sh\n";
  const byName = shadowNeverAnswers(line, Promise.resolve());
  const lookups = new AccountLookups((user) => lookUpAccountAsync(user, byName.run));
  assertEquals(await lookups.find("bob"), BOB, "found, with no expiry, within the lookup's wait");
  assertEquals(
    byName.asked,
    ["shadow bob", "passwd bob"],
    "a name's shadow is asked with its passwd",
  );
  const byUid = shadowNeverAnswers(line, Promise.resolve());
  assertEquals(await lookUpAccountAsync("1001", byUid.run), BOB);
  assertEquals(
    byUid.asked,
    ["passwd 1001", "shadow bob (after passwd)"],
    "a uid's shadow once passwd named it",
  );
  // A passwd that never answers is what the run's note names: getent passwd, not shadow.
  const never = shadowNeverAnswers(line, new Promise(() => {}));
  const hung = new AccountLookups((user) => lookUpAccountAsync(user, never.run), 50);
  const answer = await hung.find("bob");
  assertEquals(lookupNote(answer, "backup", "bob", 50), lookupHungNote("backup", "bob", 50));
});

Deno.test("getent's failure is not 'no account': its note names the exit status; only its 2 is none", async () => {
  assertEquals(accountOf(output(0, "bob:x:1001:1002:Bob:/home/bob:/bin/sh\n")), BOB);
  assertEquals(accountOf(output(2)), null);
  const failure =
    "getent passwd failed with exit status 3, not its 2 for no such account: see that this host's name service (nsswitch.conf's passwd) answers";
  assertThrows(() => accountOf(output(3)), Error, failure);
  // Not kept: the next run asks again.
  let calls = 0;
  const lookups = new AccountLookups(() => {
    calls++;
    return Promise.reject(new Error(failure));
  });
  const answer = await lookups.find("bob");
  assertEquals(answer, { failed: `could not look up the account of user 'bob': ${failure}` });
  assertEquals(
    lookupNote(answer, "backup", "bob"),
    `could not start the command: job backup: could not look up the account of user 'bob': ${failure}; nothing ran`,
  );
  await lookups.find("bob");
  assertEquals(calls, 2);
});

Deno.test("a run as another user keeps of the service's environment PATH, the locale and TZ only", () => {
  assertEquals(
    envForAnotherUser({
      PATH: "/usr/bin:/bin",
      LANG: "C.UTF-8",
      LANGUAGE: "en",
      LC_TIME: "de_DE.UTF-8",
      TZ: "Europe/Berlin",
      AWS_SECRET_ACCESS_KEY: "k",
      SSH_AUTH_SOCK: "/tmp/agent",
      JM_DATABASE_URL: "sqlite:/var/lib/jobsmanager/jobs.db",
      HOME: "/root",
      LCX: "x",
    }),
    {
      PATH: "/usr/bin:/bin",
      LANG: "C.UTF-8",
      LANGUAGE: "en",
      LC_TIME: "de_DE.UTF-8",
      TZ: "Europe/Berlin",
    },
  );
});
