/**
 * What a service says of how its runs start: nothing where they start
 * natively (native_spawn.ts); where they cannot, that they go through
 * util-linux's setsid, and why.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { freshDatabase } from "./helpers.ts";
import { DaemonHarness, T0 } from "./daemon_harness.ts";
import { forgoNativeSpawn, nativeSpawnMissing } from "../src/daemon/native_spawn.ts";

const SAID = /runs start through util-linux's setsid/;

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
