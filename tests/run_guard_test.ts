/**
 * The run guard (run_guard.ts): when the service dies, or at its close,
 * it ends the groups and the marked processes still listed, and only
 * those. Real processes, each in a session of its own as a run's shell.
 */
import { assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { RunGuard } from "../src/daemon/run_guard.ts";
import { MARKER_VARIABLE, newMarker } from "../src/daemon/processes.ts";
import { captureLogs, detachedSleep as sleeper, waitFor } from "./helpers.ts";

/** Group ids past the largest pid Linux allows (2^22): killing them can reach no process. */
const NO_SUCH_GROUP = 4_194_305;

/** How `child` ended, waiting for it no longer than a state should take. */
async function ending(child: Deno.ChildProcess, what: string): Promise<Deno.CommandStatus> {
  let status: Deno.CommandStatus | null = null;
  child.status.then((s) => status = s);
  return await waitFor(() => status, {
    timeoutMs: 10_000,
    what: `${what} (pid ${child.pid}) to end`,
  });
}

/** The guard's pid, once its shell has set its traps and become awk. */
async function guardPid(guard: RunGuard): Promise<number> {
  return await waitFor(() => {
    try {
      return Deno.readTextFileSync(`/proc/${guard.pid}/comm`).trim() === "awk" ? guard.pid : null;
    } catch {
      return null;
    }
  }, { timeoutMs: 10_000, what: `the guard (pid ${guard.pid}) to run awk` });
}

/** Whether `pid` ended: gone, or a zombie its new parent has not reaped. */
function ended(pid: number): boolean {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1]?.[0] === "Z";
  } catch {
    return true;
  }
}

async function end(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch {
    // Already ended.
  }
  await child.status;
}

Deno.test("run guard: at its end it kills what carries a watched marker, in no listed group; not an unwatched one", async () => {
  const guard = RunGuard.start();
  const [watched, unwatched] = [crypto.randomUUID(), crypto.randomUUID()];
  const carrying = sleeper({ [MARKER_VARIABLE]: watched });
  const done = sleeper({ [MARKER_VARIABLE]: unwatched });
  const other = sleeper({});
  try {
    guard.watch(watched);
    guard.watch(unwatched);
    guard.unwatch(unwatched);
    await guard.close();
    const marked = await ending(carrying, "the watched marker's process");
    assertEquals(marked.signal, "SIGKILL", "the watched marker's process");
    // The others live on: ended here, by the test, with a signal of its own.
    for (const child of [done, other]) child.kill("SIGTERM");
    assertEquals(
      [(await done.status).signal, (await other.status).signal],
      ["SIGTERM", "SIGTERM"],
      "the unwatched marker's process and a stranger",
    );
  } finally {
    for (const child of [carrying, done, other]) await end(child);
  }
});

Deno.test("run guard: at its end it kills the groups still listed, not those removed", async () => {
  const guard = RunGuard.start();
  const listed = sleeper({});
  const removed = sleeper({});
  try {
    guard.add(listed.pid);
    guard.add(removed.pid);
    guard.remove(removed.pid);
    await guard.close();
    assertEquals((await ending(listed, "the listed group")).signal, "SIGKILL", "the listed group");
    removed.kill("SIGTERM");
    assertEquals((await removed.status).signal, "SIGTERM", "the removed group");
  } finally {
    for (const child of [listed, removed]) await end(child);
  }
});

Deno.test("run guard: 600 runs listed and ended in any order, then one left: it is killed, promptly", async () => {
  // With 600 runs at once (max_workers 600), each line costs the guard a loop over the list, not its square.
  const guard = RunGuard.start();
  const marker = crypto.randomUUID();
  const left = sleeper({ [MARKER_VARIABLE]: marker });
  try {
    const ended = Array.from({ length: 600 }, (_, i) => ({
      marker: crypto.randomUUID(),
      pgid: NO_SUCH_GROUP + i,
    }));
    for (const run of ended) {
      guard.watch(run.marker);
      guard.add(run.pgid);
    }
    guard.watch(marker);
    for (const run of ended.toSorted(() => Math.random() - 0.5)) {
      guard.unwatch(run.marker);
      guard.remove(run.pgid);
    }
    const closed = guard.close();
    assertEquals((await ending(left, "the run left listed")).signal, "SIGKILL");
    await closed;
  } finally {
    await end(left);
  }
});

Deno.test("run guard: a signal that would end the service (INT, TERM, HUP) leaves it listening", async () => {
  const guard = RunGuard.start();
  const listed = sleeper({});
  try {
    guard.add(listed.pid);
    const pid = await guardPid(guard);
    for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) Deno.kill(pid, signal);
    await guard.close();
    assertEquals((await ending(listed, "the listed group")).signal, "SIGKILL");
  } finally {
    await end(listed);
  }
});

Deno.test("run guard: thousands of markers and groups left, most of them gone: the live ones are killed", async () => {
  // More than one shell argument holds (128 KiB), were they one command line.
  const guard = RunGuard.start();
  const marker = crypto.randomUUID();
  const marked = sleeper({ [MARKER_VARIABLE]: marker });
  const grouped = sleeper({});
  try {
    for (let i = 0; i < 3000; i++) guard.watch(crypto.randomUUID());
    guard.watch(marker);
    for (let i = 0; i < 1500; i++) guard.add(NO_SUCH_GROUP + i);
    guard.add(grouped.pid);
    await guard.close();
    assertEquals((await ending(marked, "the marked process")).signal, "SIGKILL");
    assertEquals((await ending(grouped, "the listed group")).signal, "SIGKILL");
  } finally {
    for (const child of [marked, grouped]) await end(child);
  }
});

for (const signal of ["KILL", "40"]) {
  // 40, a real-time signal: Deno's status of the guard rejected it, and the rejection, unheard,
  // ended the service (atk218).
  Deno.test(`run guard: one that exits before its service closes it (SIG${signal}) says so, and is started again, told the runs going`, async () => {
    await using log = await captureLogs("info");
    const guard = RunGuard.start();
    const listed = sleeper({});
    try {
      guard.add(listed.pid);
      const first = await guardPid(guard);
      const killed = await new Deno.Command("kill", { args: [`-${signal}`, String(first)] })
        .output();
      assertEquals(killed.success, true, new TextDecoder().decode(killed.stderr));
      const said = await waitFor(
        () => log.messages().find((m) => m.startsWith("the run guard exited")),
        { timeoutMs: 10_000, what: "the guard's exit to be logged" },
      );
      assertStringIncludes(said, "is awk installed?");
      await waitFor(() => guard.running && guard.pid !== first, {
        timeoutMs: 10_000,
        what: `the guard to be started again (${log.messages().join("; ")})`,
      });
      assertEquals(
        log.messages().at(-1),
        "the run guard runs again: told of 1 groups and 0 markers",
      );
      await guard.close();
      assertEquals((await ending(listed, "the listed group")).signal, "SIGKILL");
    } finally {
      await end(listed);
    }
  });
}

Deno.test("run guard: one that cannot start says why, is started again until it runs, then told the runs going", async () => {
  await using log = await captureLogs("info");
  const dir = await Deno.makeTempDir();
  // No shell there yet: its start fails, as with a full process table (EAGAIN).
  const shell = `${dir}/sh`;
  const guard = RunGuard.start({ shell });
  const marker = crypto.randomUUID();
  const marked = sleeper({ [MARKER_VARIABLE]: marker });
  const listed = sleeper({});
  try {
    assertEquals(guard.running, false, "a guard whose shell is missing");
    assertMatch(
      log.leveled().join("\n"),
      /^error: the run guard could not start .*\/sh: .*: the runs are not ended if this service dies until it runs; started again in 1 s, then up to every 60 s$/,
    );
    guard.add(listed.pid);
    guard.watch(marker);
    await Deno.symlink("/bin/sh", shell);
    await guardPid(guard);
    assertEquals(log.messages().at(-1), "the run guard runs again: told of 1 groups and 1 markers");
    assertEquals(
      log.leveled().filter((m) => m.startsWith("error")).length,
      1,
      log.leveled().join("\n"),
    );
    await guard.close();
    assertEquals((await ending(listed, "the listed group")).signal, "SIGKILL");
    assertEquals((await ending(marked, "the marked process")).signal, "SIGKILL");
  } finally {
    for (const child of [listed, marked]) await end(child);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("run guard: when its service dies, whatever carries one of its markers is killed, told of or not, with the group it leads; another's is not", async () => {
  // The runner's thread may start a run before the service's busy thread tells the guard of
  // it: a kill -9 in between left the run going (CI at 1a9e38a). A member of a group that left
  // the run's (setsid) and dropped the marker ended with its leader only at the next start
  // (atk219).
  const outer = crypto.randomUUID();
  const service = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      "--quiet",
      new URL("./fixtures/guarded_service.ts", import.meta.url).href,
    ],
    // Started by a job of another service (atk219: that one's death killed this guard).
    env: { [MARKER_VARIABLE]: outer },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = service.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let said = "";
  let pids: Record<"guard" | "untold" | "stranger" | "leader" | "member", number> | null = null;
  try {
    while (!said.includes("\n")) {
      const read = await output.read();
      if (read.done) throw new Error(`the service ended before it said its pids: ${said}`);
      said += read.value;
    }
    pids = JSON.parse(said);
    const { guard, untold, stranger, leader, member } = pids!;
    await waitFor(() => Deno.readTextFileSync(`/proc/${guard}/comm`).trim() === "awk", {
      timeoutMs: 10_000,
      what: `the guard (pid ${guard}) to run awk`,
    });
    assertEquals(
      Deno.readTextFileSync(`/proc/${guard}/environ`).split("\0").filter((v) =>
        v.startsWith(`${MARKER_VARIABLE}=`)
      ),
      [],
      "the guard's environment: the marker of the run that started its service",
    );
    service.kill("SIGKILL");
    await service.status;
    // Its grep over /proc is slow on a machine busy with many processes.
    const state = () =>
      `untold ${ended(untold)}, leader ${ended(leader)}, member ${ended(member)}, guard ${
        ended(guard)
      } (ended?)`;
    await waitFor(() => ended(untold) && ended(leader) && ended(member) && ended(guard), {
      timeoutMs: 30_000,
      what:
        "what carries the dead service's markers, the group one leads, and then its guard to end",
      detail: state,
    });
    assertEquals(ended(stranger), false, "another service's run");
  } finally {
    await output.cancel().catch(() => {});
    await service.stderr.cancel().catch(() => {});
    try {
      service.kill("SIGKILL");
    } catch {
      // Already killed.
    }
    await service.status;
    for (const pid of pids === null ? [] : [pids.untold, pids.stranger, pids.leader, pids.member]) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // Already ended.
      }
    }
  }
});

Deno.test("run guard: at its service's stop it leaves what carries a marker of that service it was not told of", async () => {
  // Not the service's runs: another daemon of the same process (a test's) may have started it.
  const guard = RunGuard.start();
  const untold = sleeper({ [MARKER_VARIABLE]: newMarker() });
  try {
    await guard.close();
    assertEquals(ended(untold.pid), false, "the process it was not told of, once the guard ended");
  } finally {
    await end(untold);
  }
});
