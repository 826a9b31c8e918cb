/**
 * What a service says of how its runs start: nothing where they start
 * natively (native_spawn.ts); where they cannot, that they go through
 * util-linux's setsid, and why.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { freshDatabase, withTestAccount } from "./helpers.ts";
import { DaemonHarness, T0 } from "./daemon_harness.ts";
import {
  forgoNativeSpawn,
  type Libc,
  loadLibc,
  nativeSpawnMissing,
  processLimitHint,
  Spawner,
  SYS_PIDFD_OPEN,
  withProcessLimitHint,
} from "../src/daemon/native_spawn.ts";
import { HeadTailCapture } from "../src/daemon/capture.ts";

const SAID = /runs start through util-linux's setsid/;

/** A temporary directory, removed with the test. */
async function tempDir(): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir({ prefix: "jm_spawn_" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

// The line says nothing of the store: one backend is enough.
Deno.test("daemon: a start says so where runs cannot start natively, and why", async () => {
  {
    await using h = await DaemonHarness.create(await freshDatabase("sqlite"));
    await h.start();
    await h.until(() => h.line(/starting on/), "the start");
    const missing = nativeSpawnMissing();
    if (missing === null) assertEquals(h.line(SAID), undefined);
    else assert(h.line(SAID)?.endsWith(`: ${missing.why}`), h.line(SAID));
  }
  forgoNativeSpawn();
  await using h = await DaemonHarness.create(await freshDatabase("sqlite"));
  await h.start();
  await h.until(() => h.line(/starting on/), "the start");
  assertMatch(
    h.line(SAID) ?? "",
    /^runs start through util-linux's setsid, which costs about a third more CPU a run than the native spawn: forgone$/,
  );
});

// The line is the daemon's; the note is the same on every backend.
Deno.test("daemon: a run that could not start logs why, as its note says", async () => {
  await using h = await DaemonHarness.create(await freshDatabase("sqlite"));
  await h.job("tick", { schedule: { second: "*" } });
  await h.start();
  const at = T0 + 1000;
  await h.clock.set(at);
  const why = "could not start /bin/sh: Resource temporarily unavailable (os error 11)";
  (await h.started("tick", at)).finish({ status: "error", exitCode: null, note: why });
  const run = await h.run("tick", at, "error");
  assertEquals(run.note, why);
  const said = await h.until(() => h.line(/^job tick run \d+ ended error/), "the end's line");
  assertMatch(
    said,
    /^job tick run \d+ ended error \(exit null\) after 0 ms, 0 bytes of output: could not start \/bin\/sh: Resource temporarily unavailable \(os error 11\)$/,
  );
});

/** What `nativeSpawnMissing()` says with `free` descriptors left, and after they are back. */
async function withNoFilesLeft(free: number): Promise<{ full: unknown; later: unknown }> {
  const script = new URL(`./fixtures/no_files_left.ts?free=${free}`, import.meta.url);
  const out = await new Deno.Command("prlimit", {
    args: ["--nofile=256", Deno.execPath(), "run", "--allow-all", "--quiet", script.href],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert(out.success, `${text}${new TextDecoder().decode(out.stderr)}`);
  return JSON.parse(text);
}

Deno.test("native spawn: no descriptor free at its start says so, with the limit to raise, and it is tried again", async () => {
  const { full, later } = await withNoFilesLeft(0);
  assertEquals(full, {
    why:
      "pidfd_open failed: Too many open files (os error 24): the service has as many files open as it may; raise its limit (LimitNOFILE= in the systemd unit, ulimit -n); tried again every 1 s",
    forNow: true,
  });
  assertEquals(later, null, "the native spawn once files are free again");
});

Deno.test("native spawn: an epoll set it cannot make says why, with the limit to raise", async () => {
  const { full, later } = await withNoFilesLeft(1);
  assertEquals(full, {
    why:
      "could not make an epoll set: Too many open files (os error 24): the service has as many files open as it may; raise its limit (LimitNOFILE= in the systemd unit, ulimit -n); tried again every 1 s",
    forNow: true,
  });
  assertEquals(later, null, "the native spawn once files are free again");
});

Deno.test("native spawn: EAGAIN names the process limits, where another job may hold them, and the fix", () => {
  const hint =
    ": no process could be made: the service's user (jobs) runs as many processes and threads as it may (ulimit -u, LimitNPROC= in the systemd unit), or its cgroup as many tasks as pids.max allows (TasksMax= in the systemd unit); another job may hold them (ps -u jobs; systemctl status jobsmanager shows Tasks:): end those, or raise the limit";
  assertEquals(processLimitHint("jobs"), hint);
  const refused = "Failed to spawn '/bin/sh': Resource temporarily unavailable (os error 11)";
  assertEquals(withProcessLimitHint(refused), `${refused}${processLimitHint()}`);
  const missing = "Failed to spawn '/bin/sh': No such file or directory (os error 2)";
  assertEquals(withProcessLimitHint(missing), missing);
});

// RLIMIT_NPROC holds every account but root: the fixture runs as an account of its own.
Deno.test({
  name:
    "native spawn and Deno.Command at the process limit (RLIMIT_NPROC) say which limit, and the fix",
  ignore: Deno.uid() !== 0,
  fn: () =>
    withTestAccount(async (account) => {
      // Deno and its cache may lie where the account cannot read (root's home): its own copies.
      await using dir = await tempDir();
      await Deno.chmod(dir.path, 0o755);
      const deno = `${dir.path}/deno`;
      // Copied by cp, not by this process: a process this one forks meanwhile (another test's)
      // would inherit the copy's open descriptor, and the exec of it fail "Text file busy".
      const copied = await new Deno.Command("cp", { args: [Deno.execPath(), deno] }).output();
      assert(copied.success, new TextDecoder().decode(copied.stderr));
      await Deno.chmod(deno, 0o755);
      const cache = `${dir.path}/cache`;
      await Deno.mkdir(cache);
      await new Deno.Command("chown", { args: [account, cache] }).output();
      // The limit is set by the fixture once Deno is up: Deno starts threads of its own at first,
      // and panics where it cannot ("unable to create worker threads", seen once in CI).
      const script = new URL("./fixtures/no_processes_left.ts?nproc=64", import.meta.url).href;
      const out = await new Deno.Command("setpriv", {
        args: [
          `--reuid=${account}`,
          `--regid=${account}`,
          "--clear-groups",
          "env",
          `DENO_DIR=${cache}`,
          `HOME=${cache}`,
          deno,
          "run",
          "--allow-all",
          "--quiet",
          script,
        ],
        cwd: "/",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      assert(out.success, `${text}${new TextDecoder().decode(out.stderr)}`);
      const said = JSON.parse(text);
      const limit = `Resource temporarily unavailable (os error 11)${processLimitHint(account)}`;
      assertEquals(said.native, `could not start the command: /bin/sh: ${limit}`, text);
      // Through util-linux's setsid where it is there, else /bin/sh.
      assert(
        said.command.startsWith("could not start the command: Failed to spawn ") &&
          said.command.endsWith(`: ${limit}`),
        text,
      );
    }),
});

/** `promise`'s value, or a failure naming `what` after 10 s. */
async function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not heard after 10 s`)), 10_000);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

// The child's pipe ends are closed just before its pidfd_open, which always finds those two free
// in this thread: only another thread taking them (EMFILE), a system full (ENFILE) or the kernel
// (ENOMEM) fails it there, none on purpose; so a libc whose pidfd_open fails does.
Deno.test({
  name:
    "native spawn: a child whose pidfd cannot be opened is watched all the same: its output read, its end heard, a kill reaching it",
  ignore: nativeSpawnMissing() !== null,
  fn: async () => {
    const libc = loadLibc();
    const failing: Libc = {
      ...libc,
      syscall: (n, a, b) => n === SYS_PIDFD_OPEN ? -1n : libc.syscall(n, a, b),
    };
    const spawner = new Spawner(failing, null);
    try {
      const child = spawner.spawn({
        program: "/bin/sh",
        args: ["-c", "echo out; exit 3"],
        env: {},
        stdin: "null",
      });
      const stdout = new HeadTailCapture(1024);
      await within(
        child.readOutput(stdout, new HeadTailCapture(1024), new AbortController().signal),
        "the end of its output",
      );
      assertEquals(await within(child.status, "its end"), {
        success: false,
        code: 3,
        signal: null,
      });
      assertEquals(stdout.text(), "out\n");
      const sleeping = spawner.spawn({
        program: "/bin/sh",
        args: ["-c", "exec sleep 60"],
        env: {},
        stdin: "null",
      });
      sleeping.drop();
      sleeping.kill("SIGTERM");
      assertEquals(await within(sleeping.status, "its end after SIGTERM"), {
        success: false,
        code: 143,
        signal: "SIGTERM",
      });
    } finally {
      await spawner.close();
    }
  },
});
