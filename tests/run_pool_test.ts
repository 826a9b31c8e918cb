/** The service's runner lanes: real processes, started from the scheduler's thread or worker threads. */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { RunPool } from "../src/daemon/run_pool.ts";
import { statFields } from "../src/daemon/processes.ts";
import type { Launch, LaunchSpec, Started } from "../src/daemon/runner.ts";
import { alive, livePidsMatching, waitFor } from "./helpers.ts";
import { hungMount, hungMountPossible } from "./hung_mount.ts";
import { hungNote } from "../src/daemon/directory_check.ts";
import { PIDS_ROOT, PidsCgroup, pidsSkipLine } from "./pids_cgroup.ts";

pidsSkipLine("a pool held at its process limit");

function spec(command: string, extra: Partial<LaunchSpec> = {}): LaunchSpec {
  return {
    command,
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", JM_JOB_ID: "pooled" },
    timeoutMs: 10_000,
    killGraceMs: 500,
    outputCap: 1024,
    ...extra,
  };
}

const anyTime = { now: Date.now, startBy: Infinity };

/** The start of `launch`; null when it came too late to start. */
async function startedOf(launch: Launch): Promise<Started | null> {
  const started = await launch.started;
  return "late" in started ? null : started;
}

/**
 * Until the run's shell leads its own group (setsid has run): before,
 * its group cannot be signalled, and a run ended then lives on.
 */
async function inItsGroup(launch: Launch): Promise<void> {
  const pid = (await startedOf(launch))?.pid;
  await waitFor(() => Number(statFields(pid!)?.[2]) === pid || null, {
    timeoutMs: 10_000,
    what: `pid ${pid} to lead its group`,
  });
}

Deno.test("pool: a run starts in a group of its own, with its variables over the base environment; its output and end come back", async () => {
  const pool = new RunPool({ baseEnv: { BASE: "base", JM_JOB_ID: "from the base" } });
  try {
    const launch = pool.launch(
      spec('echo "$BASE $JM_JOB_ID $JM_RUN_MARKER"; cut -d" " -f5 /proc/$$/stat; exit 4'),
      anyTime,
    );
    const started = await startedOf(launch);
    assert(started !== null && started.pid !== null, `started: ${JSON.stringify(started)}`);
    const result = await launch.done;
    assertEquals(
      [result.status, result.exitCode, result.stdout],
      ["failed", 4, `base pooled ${started.marker}\n${started.pid}\n`],
    );
    assert(started.startedAt <= result.finishedAt, JSON.stringify([started, result]));
    assertEquals(await launch.escaped, null);
  } finally {
    pool.close();
  }
});

Deno.test("pool: a run its thread gets to after its start-by time never starts", async () => {
  const dir = await Deno.makeTempDir();
  // One thread: what it takes next comes after the late run.
  const pool = new RunPool({ threads: 1, localRuns: 0 });
  try {
    const late = pool.launch(spec(`touch ${dir}/late`), {
      now: Date.now,
      startBy: Date.now() - 1,
    });
    const next = pool.launch(spec(`touch ${dir}/next`), anyTime);
    assertEquals(await late.started, { late: true, heldBy: null });
    assertEquals((await next.done).status, "success");
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["next"]);
  } finally {
    pool.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pool: times come on the service's clock, never before the run was handed out", async () => {
  const pool = new RunPool();
  try {
    // A clock an hour ahead of this machine's, standing still.
    const hourAhead = Date.now() + 3_600_000;
    const launch = pool.launch(spec("true"), { now: () => hourAhead, startBy: hourAhead + 1000 });
    const started = await startedOf(launch);
    const result = await launch.done;
    assertEquals([started?.startedAt, result.startedAt, result.finishedAt], [
      hourAhead,
      hourAhead,
      hourAhead,
    ]);
  } finally {
    pool.close();
  }
});

Deno.test("pool: a timeout and an interrupt end the run's whole group", async () => {
  const pool = new RunPool();
  try {
    const timedOut = pool.launch(spec("sleep 30 & sleep 30", { timeoutMs: 300 }), anyTime);
    const interrupted = pool.launch(spec("sleep 30"), anyTime);
    const pid = (await startedOf(interrupted))?.pid;
    interrupted.interrupt();
    const [a, b] = await Promise.all([timedOut.done, interrupted.done]);
    assertEquals([a.status, b.status], ["timeout", "interrupted"], JSON.stringify([a, b]));
    assert(pid && !alive(pid), `pid ${pid} still alive`);
  } finally {
    pool.close();
  }
});

Deno.test("pool: a few runs at a time start in the scheduler's thread; more go to a worker thread", async () => {
  const pool = new RunPool({ threads: 1, localRuns: 2 });
  try {
    const local = [pool.launch(spec("sleep 30"), anyTime), pool.launch(spec("sleep 30"), anyTime)];
    await Promise.all(local.map((l) => l.started));
    assertEquals(pool.running, 0, "worker threads for two runs");
    const third = pool.launch(spec("echo third"), anyTime);
    assertEquals(pool.running, 1, "worker threads for a third run");
    const result = await third.done;
    assertEquals([result.status, result.stdout], ["success", "third\n"]);
    for (const l of local) l.interrupt();
    const ended = await Promise.all(local.map((l) => l.done));
    assertEquals(ended.map((r) => r.status), ["interrupted", "interrupted"]);
    // Once they are over, the next run is the scheduler's thread's again.
    await Promise.all(local.map((l) => l.escaped));
    await third.escaped;
    const pid = (await startedOf(pool.launch(spec("true"), anyTime)))?.pid;
    assert(pid, "the next run started");
    assertEquals(pool.running, 1, "the idle worker thread is still there, unused");
  } finally {
    pool.close();
  }
});

/**
 * A bug's stand-in in the lane of `pool`'s next run: a run the lane cannot
 * even read, released to a shell armed for it (the lane reads the run's id
 * to release the shell), throws in the lane.
 */
async function breakLane(pool: RunPool): Promise<{ mark: string; pid: number }> {
  const mark = `true armed-${crypto.randomUUID()}`;
  const armed = pool.arm(spec(mark));
  const [pid] = await waitFor(() => {
    const pids = livePidsMatching(mark);
    return pids.length === 1 ? pids : null;
  }, {
    timeoutMs: 10_000,
    what: "the shell armed",
  });
  pool.launch(undefined as unknown as LaunchSpec, { ...anyTime, armed });
  return { mark, pid };
}

/** Process `pid` is a zombie: it ended and no one reaped it. */
function zombie(pid: number): boolean {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1]?.[0] === "Z";
  } catch {
    return false;
  }
}

/**
 * A bug in the lane of `pool`'s first run (a launch it cannot read) ends
 * that run as an error, its group killed; the next run succeeds, with
 * `workerThreads` running then.
 */
async function laneFailureEndsItsRuns(pool: RunPool, workerThreads: number): Promise<void> {
  try {
    const running = pool.launch(spec("sleep 30"), anyTime);
    const pid = (await startedOf(running))?.pid;
    assert(pid, "the first run started");
    await inItsGroup(running);
    const armed = await breakLane(pool);
    const result = await running.done;
    assertEquals(result.status, "error");
    assertMatch(
      result.note ?? "",
      /^the thread that ran it failed \(.+\): its process group was killed/,
    );
    await waitFor(() => !alive(pid) || null, {
      timeoutMs: 5000,
      what: `the group of pid ${pid} to end`,
    });
    // The shell armed in the failed lane is not left waiting for a release.
    await waitFor(() => livePidsMatching(armed.mark).length === 0 || null, {
      timeoutMs: 5000,
      what: "the failed lane's armed shell to exit",
      detail: () => livePidsMatching(armed.mark),
    });
    // Reaped, both: not zombies until the service exits.
    await waitFor(() => (!zombie(pid) && !zombie(armed.pid)) || null, {
      timeoutMs: 5000,
      what: `the killed run (pid ${pid}) and the armed shell (pid ${armed.pid}) to be reaped`,
      detail: () => JSON.stringify({ runZombie: zombie(pid), armedZombie: zombie(armed.pid) }),
    });
    assertEquals((await pool.launch(spec("true"), anyTime).done).status, "success");
    assertEquals(pool.running, workerThreads, "worker threads");
  } finally {
    pool.close();
  }
}

Deno.test("pool: a bug in the scheduler's thread's lane ends its runs as errors, not the service; the next run gets a new lane", async () => {
  await laneFailureEndsItsRuns(new RunPool(), 0);
});

Deno.test("pool: a thread that fails ends its runs as errors, killing their groups; the next run gets a new thread", async () => {
  await laneFailureEndsItsRuns(new RunPool({ threads: 1, localRuns: 0 }), 1);
});

for (
  const [where, options, threads] of [
    ["the scheduler's thread", {}, 0],
    ["a worker thread", { threads: 1, localRuns: 0 }, 1],
  ] as const
) {
  Deno.test(`pool: closed, ${where}'s armed shells exit having run nothing`, async () => {
    const dir = await Deno.makeTempDir();
    const pool = new RunPool(options);
    try {
      pool.arm(spec(`touch ${dir}/ran`, { marker: "closed" }));
      await waitFor(() => livePidsMatching(`${dir}/ran`).length === 1, {
        timeoutMs: 10_000,
        what: "armed",
      });
      assertEquals(pool.running, threads, "worker threads");
      pool.close();
      await waitFor(() => livePidsMatching(`${dir}/ran`).length === 0 || null, {
        timeoutMs: 10_000,
        what: "the armed shell to exit",
        detail: () => livePidsMatching(`${dir}/ran`),
      });
      assertEquals([...Deno.readDirSync(dir)], []);
    } finally {
      pool.close();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("pool: a worker thread that ends closes every descriptor it held, its children's included", async () => {
  // In a process of its own: the test modules run beside this one open descriptors too.
  const script = `import { RunPool } from ${
    JSON.stringify(import.meta.resolve("../src/daemon/run_pool.ts"))
  };
const links = () => Object.fromEntries([...Deno.readDirSync("/proc/self/fd")].map((e) => {
  try {
    return [e.name, Deno.readLinkSync("/proc/self/fd/" + e.name)];
  } catch {
    return [e.name, "gone"];
  }
}));
const fds = () => [...Deno.readDirSync("/proc/self/fd")].length;
const pool = new RunPool({ threads: 1, localRuns: 0 });
const spec = { command: "echo out; echo err >&2", env: { PATH: "/usr/bin:/bin" }, timeoutMs: 10000, killGraceMs: 500, outputCap: 100 };
const turn = () => new Promise((resolve) => setTimeout(resolve, 10));
const until = Date.now() + 60000;
const cycle = async () => {
  // A shell armed, and one released: a child of each kind.
  pool.arm(spec);
  const launch = pool.launch(spec, { now: Date.now, startBy: Infinity, armed: pool.arm(spec) });
  await launch.done;
  pool.close();
  while (pool.running > 0 && Date.now() < until) await turn();
};
// A few first: the runtime opens some descriptors of its own for good on a thread's first uses.
for (let i = 0; i < 5; i++) await cycle();
// Still open then: what the fifth thread had open as it ended, many more than one thread leaks.
const before = fds();
const openBefore = links();
for (let i = 0; i < 20; i++) await cycle();
while (fds() > before && Date.now() < until) await turn();
const openAfter = links();
const added = Object.entries(openAfter).filter(([fd, to]) => openBefore[fd] !== to);
console.log(JSON.stringify({ before, after: fds(), added }));`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert(out.success, new TextDecoder().decode(out.stderr));
  const { before, after, added } = JSON.parse(text);
  // A thread that leaks leaks with each of the twenty: its pipes and its shells'. On a busy
  // machine the runtime may open one or two of its own for good meanwhile (CI at 7c6c06b: 20
  // after five threads, 22 after twenty more), which is not a thread's leak.
  assert(
    after <= before + 3,
    `descriptors open: ${before} after five threads, ${after} after twenty more; new or changed: ${
      JSON.stringify(added)
    }`,
  );
});

Deno.test("pool: a thread with no run for a while ends; the next run starts one again", async () => {
  const pool = new RunPool({ threads: 1, localRuns: 0, idleMs: 50 });
  try {
    assertEquals(pool.running, 0);
    const first = pool.launch(spec("true"), anyTime);
    assertEquals(pool.running, 1);
    await first.done;
    await first.escaped;
    await waitFor(() => pool.running === 0 || null, {
      timeoutMs: 5000,
      what: "the idle thread to end",
      detail: () => pool.running,
    });
    assertEquals((await pool.launch(spec("true"), anyTime).done).status, "success");
    await waitFor(() => pool.running === 0 || null, {
      timeoutMs: 5000,
      what: "the idle thread to end again",
      detail: () => pool.running,
    });
  } finally {
    pool.close();
  }
});

Deno.test("pool: one thread for runs one at a time; a burst starts the second", async () => {
  const pool = new RunPool({ threads: 2, localRuns: 0 });
  try {
    for (let i = 0; i < 3; i++) await pool.launch(spec("true"), anyTime).done;
    assertEquals(pool.running, 1);
    const burst = Array.from({ length: 20 }, () => pool.launch(spec("true"), anyTime));
    assertEquals(pool.running, 2);
    const results = await Promise.all(burst.map((l) => l.done));
    assertEquals(results.filter((r) => r.status !== "success"), []);
  } finally {
    pool.close();
  }
});

Deno.test("pool: a run interrupted while it waits in its thread's queue never starts", async () => {
  const pool = new RunPool({ threads: 1, localRuns: 0 });
  try {
    // Its thread takes 8 at a time: the ninth waits in the queue.
    const ahead = Array.from({ length: 8 }, () => pool.launch(spec("true"), anyTime));
    const queued = pool.launch(spec("sleep 30"), anyTime);
    queued.interrupt();
    const result = await queued.done;
    assertEquals([result.status, result.note, (await startedOf(queued))?.pid], [
      "interrupted",
      "the service stopped before it started",
      null,
    ]);
    await Promise.all(ahead.map((l) => l.done));
  } finally {
    pool.close();
  }
});

Deno.test("pool: a launch given an armed shell releases it; a disarmed one runs nothing", async () => {
  const dir = await Deno.makeTempDir();
  const pool = new RunPool({ baseEnv: { BASE: "base" } });
  try {
    const armedSpec = (id: string, file: string) =>
      spec(
        `touch ${dir}/${file}; echo "$BASE $JM_RUN_ID $JM_RUN_MARKER"; cut -d" " -f5 /proc/$$/stat`,
        {
          env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", JM_RUN_ID: id },
          marker: `marker-${file}`,
        },
      );
    const released = pool.arm(armedSpec("", "released"));
    const dropped = pool.arm(armedSpec("", "dropped"));
    // The shells exist (waiting) before the launch.
    await waitFor(
      () =>
        livePidsMatching(`${dir}/released`).length + livePidsMatching(`${dir}/dropped`).length ===
          2,
      {
        timeoutMs: 10_000,
        what: "both shells armed",
      },
    );
    const [armedPid] = livePidsMatching(`${dir}/released`);
    dropped.disarm();
    const launch = pool.launch(armedSpec("9", "released"), { ...anyTime, armed: released });
    const started = await startedOf(launch);
    const result = await launch.done;
    assertEquals([started?.pid, started?.marker], [armedPid, "marker-released"]);
    assertEquals(result.stdout, `base 9 marker-released\n${armedPid}\n`);
    await waitFor(() => livePidsMatching(`${dir}/dropped`).length === 0, {
      timeoutMs: 10_000,
      what: "the disarmed shell to exit",
    });
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["released"]);
  } finally {
    pool.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pool: flushed, the runs handed out start at once, not at the next turn of the event loop", async () => {
  const dir = await Deno.makeTempDir();
  const pool = new RunPool({ baseEnv: {} });
  try {
    const armedSpec = (id: string) =>
      spec(`touch ${dir}/ran`, {
        env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", JM_RUN_ID: id },
      });
    const shell = pool.arm(armedSpec(""));
    await waitFor(() => livePidsMatching(`${dir}/ran`).length === 1 || null, {
      timeoutMs: 10_000,
      what: "the shell armed",
    });
    const launch = pool.launch(armedSpec("1"), { ...anyTime, armed: shell });
    pool.flush();
    const flushed = Date.now();
    // A later release would be stamped after this (no turn of the event loop comes before it).
    while (Date.now() <= flushed);
    const started = await startedOf(launch);
    assert(
      started !== null && started.startedAt <= flushed,
      `started at ${started?.startedAt}, flushed at ${flushed}`,
    );
    assertEquals((await launch.done).status, "success");
  } finally {
    pool.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pool: an armed run launched after its start-by never runs", async () => {
  const dir = await Deno.makeTempDir();
  const pool = new RunPool();
  try {
    const late = spec(`touch ${dir}/late`, { marker: "late" });
    const armed = pool.arm(late);
    await waitFor(() => livePidsMatching(`${dir}/late`).length === 1, {
      timeoutMs: 10_000,
      what: "armed",
    });
    const launch = pool.launch(late, { now: Date.now, startBy: Date.now() - 1, armed });
    assertEquals(await launch.started, { late: true, heldBy: null });
    await waitFor(() => livePidsMatching(`${dir}/late`).length === 0, {
      timeoutMs: 10_000,
      what: "the shell to exit",
    });
    assertEquals([...Deno.readDirSync(dir)], []);
  } finally {
    pool.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pool: a run whose shell was armed in a thread that failed since starts in a new one", async () => {
  const pool = new RunPool({ threads: 1, localRuns: 0 });
  try {
    const token = crypto.randomUUID();
    const armedSpec = spec(`echo ${token}`, { marker: token });
    const armed = pool.arm(armedSpec);
    await waitFor(() => livePidsMatching(token).length === 1, { timeoutMs: 10_000, what: "armed" });
    const running = pool.launch(spec("sleep 30"), anyTime);
    await breakLane(pool);
    assertEquals((await running.done).status, "error");
    const result = await pool.launch(armedSpec, { ...anyTime, armed }).done;
    assertEquals([result.status, result.stdout], ["success", `${token}\n`]);
  } finally {
    pool.close();
  }
});

for (
  const [where, options] of [
    ["the scheduler's thread", {}],
    ["a worker thread", { threads: 1, localRuns: 0 }],
  ] as const
) {
  Deno.test(`pool: a shell released in the batch that broke ${where}'s lane is recorded started, killed and reaped, not left running unwatched`, async () => {
    const pool = new RunPool(options);
    try {
      const token = crypto.randomUUID();
      const command = `sleep 30; : released-${token}`;
      const released = pool.arm(spec(command));
      const other = pool.arm(spec(`true other-${token}`));
      await waitFor(() => livePidsMatching(token).length === 2 || null, {
        timeoutMs: 10_000,
        what: "both shells armed",
      });
      const [shell] = livePidsMatching(`released-${token}`);
      // One batch: the first shell is released, then the lane fails on the second launch.
      const run = pool.launch(spec(command), { ...anyTime, armed: released });
      pool.launch(undefined as unknown as LaunchSpec, { ...anyTime, armed: other });
      assertEquals((await startedOf(run))?.pid, shell, "the released shell's start");
      const result = await run.done;
      assertEquals(result.status, "error");
      assertMatch(
        result.note ?? "",
        /^the thread that ran it failed \(.+\): its process group was killed/,
      );
      await waitFor(() => (livePidsMatching(token).length === 0 && !zombie(shell)) || null, {
        timeoutMs: 5000,
        what: `the released shell (pid ${shell}) and the other to end, reaped`,
        detail: () => JSON.stringify({ live: livePidsMatching(token), zombie: zombie(shell) }),
      });
    } finally {
      pool.close();
    }
  });
}

for (const bug of ["timer", "promise"]) {
  Deno.test(`pool: a bug in a worker thread's own ${bug} fails the thread as a bug in its lane does: its run ends as an error, killed and reaped`, async () => {
    const worker = new URL(`./fixtures/buggy_run_worker.ts?bug=${bug}`, import.meta.url);
    const pool = new RunPool({ threads: 1, localRuns: 0, worker });
    try {
      const running = pool.launch(spec("sleep 30; : plant-bug"), anyTime);
      const pid = (await startedOf(running))?.pid;
      assert(pid, "the run started");
      const result = await running.done;
      assertEquals(result.status, "error");
      // The start reached the pool before the failure: a rejection is reported before the
      // outbox's timer goes, so the lane's close sent what it had heard.
      assertMatch(
        result.note ?? "",
        new RegExp(
          `^the thread that ran it failed \\(a bug planted in a ${bug}\\): its process group was killed`,
        ),
      );
      await waitFor(() => (!alive(pid) && !zombie(pid)) || null, {
        timeoutMs: 5000,
        what: `the run (pid ${pid}) to end, reaped`,
        detail: () => JSON.stringify({ alive: alive(pid), zombie: zombie(pid) }),
      });
      assertEquals((await pool.launch(spec("true"), anyTime).done).status, "success");
      assertEquals(pool.running, 1, "worker threads");
    } finally {
      pool.close();
    }
  });
}

Deno.test("pool: an instant's shells, all disarmed, do not idle out a thread a run holds", async () => {
  const dir = await Deno.makeTempDir();
  const pool = new RunPool({ threads: 1, localRuns: 0, idleMs: 100 });
  const witness = new RunPool({ threads: 1, localRuns: 0, idleMs: 100 });
  try {
    // The thread has no run left (heard to its end, what left its group included).
    await pool.launch(spec("true"), anyTime).escaped;
    // The shells of an instant, none of which runs here (the claims went elsewhere).
    const shells = [1, 2, 3].map(() => pool.arm(spec("true")));
    for (const shell of shells) shell.disarm();
    const run = pool.launch(
      spec(`while [ ! -e ${dir}/go ]; do sleep 0.05; done; echo finished`),
      anyTime,
    );
    assert(await startedOf(run), "the run started");
    // A thread that idled out after the disarms: any idle timer they left has fired too.
    await witness.launch(spec("true"), anyTime).done;
    await waitFor(() => witness.running === 0, {
      timeoutMs: 10_000,
      what: "the witness thread to idle out",
    });
    assertEquals(pool.running, 1, "the thread of a running run was ended");
    await Deno.writeTextFile(`${dir}/go`, "");
    const result = await run.done;
    assertEquals([result.status, result.stdout], ["success", "finished\n"]);
  } finally {
    pool.close();
    witness.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "pool: a run whose cwd does not answer (a hung mount) holds up no other run of its thread; it ends an error naming the path and the wait",
  ignore: !hungMountPossible(),
  fn: async () => {
    // Ended after 20 s whatever holds the runner thread: a stat made there (the bug) waits until then.
    await using mount = await hungMount(20_000);
    const cwd = `${mount.path}/srv`;
    const dir = await Deno.makeTempDir();
    // One worker thread: a stat or a spawn that waits there would hold every run behind it.
    const pool = new RunPool({ threads: 1, localRuns: 0 });
    try {
      const armed = pool.arm(spec("true", { cwd }));
      const hung = pool.launch(spec("true", { cwd }), { ...anyTime, armed });
      const queuedHung = pool.launch(spec("true", { cwd }), anyTime);
      const others = [pool.launch(spec(`touch ${dir}/a`), anyTime)];
      const ended: string[] = [];
      others[0].done.then((r) => ended.push(r.status));
      await waitFor(() => ended.length === 1 || null, {
        timeoutMs: 10_000,
        what: "the run after those in the hung directory to end",
        detail: () => JSON.stringify(ended),
      });
      // Armed while the check of the hung one still waits: armed and released as ever.
      const shell = pool.arm(spec(`touch ${dir}/b`, { cwd: dir }));
      const released = pool.launch(spec(`touch ${dir}/b`, { cwd: dir }), {
        ...anyTime,
        armed: shell,
      });
      assertEquals((await released.done).status, "success");
      for (const run of [hung, queuedHung]) {
        assertEquals((await startedOf(run))?.pid, null);
        const result = await run.done;
        assertEquals([result.status, result.note], ["error", hungNote(cwd)]);
        assertMatch(result.note!, new RegExp(`${cwd} did not answer within 2 s`));
      }
      assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["a", "b"]);
    } finally {
      pool.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/**
 * A pool whose one lane is full, and two runs given it once a connection
 * comes: their statuses, or what their launch threw.
 */
const FULL_POOL = `
import { RunPool } from "${new URL("../src/daemon/run_pool.ts", import.meta.url).href}";
const pool = new RunPool({ threads: 1, localRuns: 1 });
const spec = { command: "true", env: {}, timeoutMs: 10000, killGraceMs: 500, outputCap: 1024 };
const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
console.log("ready " + listener.addr.port);
(await listener.accept()).close();
try {
  const launches = [1, 2].map(() => pool.launch(spec, { now: Date.now, startBy: Infinity }));
  const ends = await Promise.all(launches.map((l) => l.done));
  console.log("ended " + ends.map((e) => e.status).join(" "));
} catch (e) {
  console.log("threw " + e);
}
pool.close();
`;

Deno.test({
  name:
    "pool: at the process limit, a run for a thread that cannot be made goes to the running lane, and ends an error there",
  ignore: PIDS_ROOT === null,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "jm-pool-limit-" });
    try {
      await Deno.writeTextFile(`${dir}/child.ts`, FULL_POOL);
      await using cgroup = PidsCgroup.create();
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-all",
          "--quiet",
          "--config",
          new URL("../deno.json", import.meta.url).pathname,
          `${dir}/child.ts`,
        ],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      cgroup.add(child.pid);
      const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let out = "";
      while (!/ready \d+\n/.test(out)) {
        const { value, done } = await lines.read();
        if (done) break;
        out += value;
      }
      const port = out.match(/ready (\d+)/)?.[1];
      if (port === undefined) {
        throw new Error(`the child said: ${out}\n${await new Response(child.stderr).text()}`);
      }
      cgroup.fill();
      (await Deno.connect({ hostname: "127.0.0.1", port: Number(port) })).close();
      for (;;) {
        const { value, done } = await lines.read();
        if (done) break;
        out += value;
      }
      const { code } = await child.status;
      const stderr = await new Response(child.stderr).text();
      assertEquals([code, out.trim().split("\n").slice(1)], [0, ["ended error error"]], stderr);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
