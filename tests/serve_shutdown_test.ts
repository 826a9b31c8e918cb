/**
 * How `jobsmanager serve` stops and starts again, as a process, on every
 * backend: SIGTERM lets a short run finish and exits 0; after kill -9 the
 * next start marks the orphaned run interrupted and nothing fires twice;
 * SQLite refuses a second service. The stop's rules (shutdown_timeout,
 * kill_grace, the deadline) are tested in-process (daemon_shutdown_test.ts).
 */
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { BACKENDS, freshDatabase, type TestDatabase, waitFor } from "./helpers.ts";
import {
  jm,
  killLeftovers,
  pgrep,
  ran,
  ready,
  runs,
  runsDetail,
  Serve,
  started,
  startServe,
  stoppingAt,
  stoppingLogged,
  uniqueSeconds,
  writeConfig,
} from "./serve_helpers.ts";

const regex = (s: string) => s.replaceAll(".", "\\.");

for (const backend of BACKENDS) {
  Deno.test(`serve[${backend}]: SIGTERM lets a running run finish, then exits 0`, async () => {
    await using db = await freshDatabase(backend);
    // Every run waits for DIR/release, so SIGTERM surely arrives while the
    // first one runs (the fires after it are skipped: max_instances 1).
    const release = `${db.dir}/release`;
    await jm(
      db,
      "job",
      "add",
      "short",
      "--second",
      "*",
      "--command",
      `while [ ! -e '${release}' ]; do sleep 0.05; done; echo done`,
    );
    await using serve = await startServe(db, { shutdown_timeout: 60 });
    const detail = runsDetail(db);
    const run = await waitFor(
      // Started, not only claimed: see `started`.
      async () => (await runs(db, "short")).find((r) => r.status === "running" && started(r)),
      { timeoutMs: 20_000, what: "a run to start", detail },
    );
    serve.signal("SIGTERM");
    await waitFor(() => stoppingLogged(serve), {
      timeoutMs: 10_000,
      what: "serve to log that it is stopping",
      detail: () => serve.stderr,
    });
    await Deno.writeTextFile(release, "");
    // Far below shutdown_timeout: serve exits once the run has ended.
    const status = await serve.exit(20_000, "serve to exit once its run ended");
    assertEquals(status.code, 0, serve.stderr);

    const rows = await runs(db, "short");
    const after = rows.find((r) => r.id === run.id)!;
    assertEquals([after.status, after.stdout], ["success", "done\n"], await detail());
    // A busy machine may rightly skip or miss fires (`ran` checks each says why): what ran succeeded.
    assert(rows.filter((r) => ran(r, rows)).every((r) => r.status === "success"), await detail());
    const stopping = stoppingAt(serve);
    assert(
      rows.every((r) => r.scheduled_at <= stopping),
      `fired after stopping:\n${await detail()}`,
    );
  });

  Deno.test(`serve[${backend}]: after kill -9 a restart marks the old run lost, fires once`, async () => {
    await using db = await freshDatabase(backend);
    const secs = uniqueSeconds(30);
    const pattern = `^sleep ${regex(secs)}$`;
    const firesFile = `${db.dir}/fires.txt`;
    try {
      await jm(db, "job", "add", "long", "--second", "*", "--command", `sleep ${secs}`);
      await jm(
        db,
        "job",
        "add",
        "tick",
        "--second",
        "*",
        "--command",
        `echo "$JM_SCHEDULED_AT" >> ${firesFile}`,
      );
      const config = await writeConfig(db);
      const detail = runsDetail(db);
      let orphan: number;
      {
        await using first = new Serve(db, config);
        // Started, not only claimed: the claim writes the row `running`, with a started_at, and
        // on a busy machine the runner may get to it past its grace and record it missed.
        const run = await waitFor(
          async () => (await runs(db, "long")).find((r) => r.status === "running" && started(r)),
          { timeoutMs: 20_000, what: "the long run to start", detail },
        );
        orphan = run.id;
        await waitFor(async () => (await runs(db, "tick")).filter(started).length >= 2, {
          timeoutMs: 20_000,
          what: "two ticks",
          detail,
        });
        first.signal("SIGKILL");
        assertEquals((await first.exit(10_000)).signal, "SIGKILL");
      }
      const killedAt = Date.now();
      {
        await using second = new Serve(db, config);
        await waitFor(
          async () => (await runs(db, "long")).find((r) => r.id === orphan)?.status !== "running",
          { timeoutMs: 20_000, what: "the orphaned run to be closed", detail },
        );
        await waitFor(
          async () =>
            (await runs(db, "tick")).filter((r) =>
              r.status === "success" && r.started_at! > killedAt
            )
              .length >= 2,
          { timeoutMs: 20_000, what: "two ticks after the restart", detail },
        );
        assertEquals((await second.terminate()).status.code, 0, second.stderr);
      }

      const rows = await runs(db);
      const old = rows.find((r) => r.id === orphan)!;
      assertEquals(old.status, "lost", `run ${orphan} is ${old.status}:\n${await detail()}`);
      assert(
        old.note?.startsWith(
          "its service ended without recording how it ended (killed or crashed)",
        ),
        old.note ?? "no note",
      );
      // jm_runs' unique key keeps one row per fire; what the command itself
      // saw shows each fire instant executed at most once.
      const executed = (await Deno.readTextFile(firesFile)).trim().split("\n");
      assertEquals(new Set(executed).size, executed.length, `fires executed:\n${executed}`);
      for (const r of rows.filter((r) => r.job_id === "tick" && r.status === "success")) {
        assert(executed.includes(new Date(r.scheduled_at).toISOString()), `tick run ${r.id}`);
      }
    } finally {
      // Should the guard that ends a killed service's runs fail, end this
      // test's by pid.
      await killLeftovers(pattern);
    }
  });
}

Deno.test("serve[sqlite]: kill -9 of the service ends its runs, children of the shell included", async () => {
  await using db = await freshDatabase("sqlite");
  const secs = uniqueSeconds(30);
  const pattern = `sleep ${regex(secs)}`;
  try {
    // Two commands: the shell stays, and sleep is its child, not the shell itself.
    await jm(db, "job", "add", "long", "--second", "*", "--command", `sleep ${secs}; echo after`);
    await using serve = new Serve(db, await writeConfig(db));
    const detail = async () => `${serve.stderr}\n${await runsDetail(db)()}`;
    await waitFor(async () => (await pgrep(`^sleep ${regex(secs)}$`)).length > 0, {
      timeoutMs: 20_000,
      what: "the run's sleep to start",
      detail,
    });
    serve.signal("SIGKILL");
    assertEquals((await serve.exit(10_000)).signal, "SIGKILL");
    // The guard kills the group it was told of at once; a run it knew only by its marker is
    // found by a grep over /proc, slow on a machine busy with many processes (CI at 80653a6).
    await waitFor(async () => (await pgrep(pattern)).length === 0, {
      timeoutMs: 30_000,
      what: "the run's shell and sleep to be ended with the service",
      detail: async () => `left: ${await pgrep(pattern)}\n${await detail()}`,
    });
  } finally {
    await killLeftovers(pattern);
  }
});

Deno.test("serve[sqlite]: kill -9 of the service ends its notification hooks too, what left their group included", async () => {
  await using db = await freshDatabase("sqlite");
  const secs = uniqueSeconds(60);
  const pattern = `sleep ${regex(secs)}`;
  try {
    await jm(
      db,
      "job",
      "add",
      "fails",
      "--second",
      "*",
      "--command",
      "exit 1",
      "--on-failure",
      `setsid sh -c 'sleep ${secs}' >/dev/null 2>&1 & sleep ${secs}`,
    );
    await using serve = new Serve(db, await writeConfig(db));
    const detail = async () =>
      `left: ${await pgrep(pattern)}
${serve.stderr}`;
    await waitFor(async () => (await pgrep(`^sleep ${regex(secs)}$`)).length >= 2, {
      timeoutMs: 20_000,
      what: "the hook's two sleeps to run",
      detail,
    });
    serve.signal("SIGKILL");
    assertEquals((await serve.exit(10_000)).signal, "SIGKILL");
    await waitFor(async () => (await pgrep(pattern)).length === 0, {
      timeoutMs: 10_000,
      what: "the guard to end the hook, the sleep that left its group included",
      detail,
    });
  } finally {
    await killLeftovers(pattern);
  }
});

Deno.test("serve[sqlite]: kill -9 of the service alone: its guard also ends what left the run's group", async () => {
  await using db = await freshDatabase("sqlite");
  const { alive, leftovers } = await addJobLeavingTwoSleeps(db);
  try {
    await using serve = new Serve(db, await writeConfig(db));
    const detail = async () => `left: ${await alive()}\n${serve.stderr}\n${await runsDetail(db)()}`;
    await waitFor(async () => (await alive()).length === 2, {
      timeoutMs: 20_000,
      what: "both sleeps to run",
      detail,
    });
    serve.signal("SIGKILL");
    assertEquals((await serve.exit(10_000)).signal, "SIGKILL");
    await waitFor(async () => (await alive()).length === 0, {
      timeoutMs: 10_000,
      what: "the guard to end both sleeps, the one that left the group included",
      detail,
    });
  } finally {
    await leftovers();
  }
});

Deno.test("serve[sqlite]: kill -9 of the service while it looks for what left an ended run's group: the guard ends it", async () => {
  await using db = await freshDatabase("sqlite");
  const secs = uniqueSeconds(60);
  const pattern = `^sleep ${regex(secs)}$`;
  try {
    // The run ends once what it left is out of its group (before, the
    // group's SIGTERM at the run's end would end it on a busy machine); what
    // it left ignores SIGTERM, so the runner's search holds it for
    // kill_grace before SIGKILL: the window of the kill.
    await jm(
      db,
      "job",
      "add",
      "quick",
      "--second",
      "*",
      "--command",
      `[ -e ran ] && exit 0; touch ran; setsid sh -c 'trap "" TERM; touch out; sleep ${secs}' >/dev/null 2>&1 & while [ ! -e out ]; do sleep 0.01; done`,
    );
    await using serve = new Serve(db, await writeConfig(db, { kill_grace: 60 }));
    const detail = async () =>
      `left: ${await pgrep(pattern)}\n${serve.stderr}\n${await runsDetail(db)()}`;
    await waitFor(
      async () =>
        (await pgrep(pattern)).length === 1 &&
        (await runs(db, "quick")).some((r) => r.status === "success"),
      { timeoutMs: 20_000, what: "the run ended, what it left still running", detail },
    );
    serve.signal("SIGKILL");
    assertEquals((await serve.exit(10_000)).signal, "SIGKILL");
    await waitFor(async () => (await pgrep(pattern)).length === 0, {
      timeoutMs: 10_000,
      what: "the guard to end what the ended run left",
      detail,
    });
  } finally {
    await killLeftovers(`sleep ${regex(secs)}`);
  }
});

/**
 * Add job `long`, every second but doing its work once: it leaves one
 * sleep in the run's group and one outside it (setsid, ignoring SIGTERM).
 * `alive` lists the pids of both still running; `leftovers` kills them.
 */
async function addJobLeavingTwoSleeps(db: TestDatabase) {
  const [group, escaped] = [uniqueSeconds(60), uniqueSeconds(60)];
  const patterns = [group, escaped].map((secs) => `^sleep ${regex(secs)}$`);
  await jm(
    db,
    "job",
    "add",
    "long",
    "--second",
    "*",
    "--command",
    `[ -e ran ] && exit 0; touch ran; setsid sh -c 'trap "" TERM; sleep ${escaped}' >/dev/null 2>&1 & sleep ${group}`,
  );
  return {
    alive: async () => (await Promise.all(patterns.map(pgrep))).flat(),
    leftovers: async () => {
      for (const pattern of patterns) await killLeftovers(pattern);
    },
  };
}

function cmdline(pid: number): string {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).replaceAll("\0", " ");
  } catch {
    return "";
  }
}

/** The pids whose parent is `parent`. */
function childrenOf(parent: number): number[] {
  return [...Deno.readDirSync("/proc")].filter((e) => /^\d+$/.test(e.name)).map((e) =>
    Number(e.name)
  )
    .filter((pid) => {
      try {
        const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
        return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === parent;
      } catch {
        return false;
      }
    });
}

for (const backend of BACKENDS) {
  Deno.test(`serve[${backend}]: after kill -9 of serve and its guard, the restart ends the run's processes first`, async () => {
    await using db = await freshDatabase(backend);
    const { alive, leftovers } = await addJobLeavingTwoSleeps(db);
    try {
      const config = await writeConfig(db);
      const detail = runsDetail(db);
      let orphan: number;
      {
        await using first = new Serve(db, config);
        // Started, not only claimed (see `started`).
        orphan = (await waitFor(
          async () => (await runs(db, "long")).find((r) => r.status === "running" && started(r)),
          { timeoutMs: 20_000, what: "the run to start", detail },
        )).id;
        await waitFor(async () => (await alive()).length === 2, {
          timeoutMs: 10_000,
          what: "both sleeps to run",
          detail,
        });
        // As if the guard had died too (the OOM killer, a kill of the user's processes).
        const guard = childrenOf(first.pid).filter((pid) =>
          cmdline(pid).includes("delete groups[$2]")
        );
        assertEquals(guard.length, 1, "serve's guard");
        // The guard first: killed after serve, it could still end the groups as serve died.
        for (const pid of guard) Deno.kill(pid, "SIGKILL");
        first.signal("SIGKILL");
        assertEquals((await first.exit(10_000)).signal, "SIGKILL");
      }
      assertEquals((await alive()).length, 2, "the leftovers did not outlive the service");
      {
        await using second = new Serve(db, config);
        await waitFor(async () => (await alive()).length === 0, {
          timeoutMs: 20_000,
          what: "the restart to end both sleeps",
          detail: async () => `left: ${await alive()}\n${second.stderr}`,
        });
        await waitFor(
          async () => (await runs(db, "long")).find((r) => r.id === orphan)?.status === "lost",
          { timeoutMs: 10_000, what: "the orphaned run to be lost", detail },
        );
        assertStringIncludes(
          second.stderr,
          "left running by a previous service: ended its processes",
        );
        assertEquals((await second.terminate()).status.code, 0, second.stderr);
      }
    } finally {
      await leftovers();
    }
  });
}

Deno.test("serve[sqlite]: a second serve on the same file refuses to start", async () => {
  await using db = await freshDatabase("sqlite");
  await jm(db, "job", "add", "idle", "--command", "true", "--cron", "0 0 1 1 *");
  const config = await writeConfig(db);
  await using serve = new Serve(db, config);
  await ready(db, serve);
  await using second = new Serve(db, config);
  const status = await second.exit(20_000, "the second serve to give up");
  assertEquals(status.code, 1, second.stderr);
  assertStringIncludes(
    second.stderr,
    `another jobsmanager serve already runs on sqlite:${db.dir}/jobs.db`,
  );
  assert(serve.running, "the first serve stopped");
  assertEquals((await serve.terminate()).status.code, 0, serve.stderr);
});
