/**
 * `job run` with no service, `--wait --timeout`, and `runs cancel` (issue 8,
 * point 5), through the real CLI on every backend: a request that nothing
 * would take is refused unless `--queue`; a wait that expires leaves the run
 * as it is and names it; a queued run is dropped with who asked, a running
 * one gets the request recorded for its service, an ended one is refused.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import {
  BACKENDS,
  cli,
  cliEnv,
  CliProcess,
  type CliResult,
  freshDatabase,
  livePidsMatching,
  MAIN,
  mysqlTest,
  rawQuery,
  saveNodes,
  serviceRow,
  type TestDatabase,
  waitFor,
} from "./helpers.ts";
import { proxyFor } from "./tcp_proxy.ts";
import { DatabaseSync } from "node:sqlite";
import { hereSpace } from "../src/daemon/presence.ts";

const ADD = ["job", "add", "a", "--command", "echo a", "--cron", "0 0 1 1 *"];

/** A service's row that stays live for 30 minutes of a test, however busy the machine. */
function liveFor30Minutes(id: string) {
  return { ...serviceRow(id), db_heartbeat_at: Date.now(), heartbeat_ms: 600_000 };
}

function jm(db: TestDatabase, ...args: string[]): Promise<CliResult> {
  return cli(["--database", db.url, ...args], { cwd: db.dir, env: { USER: "tester" } });
}

async function runRows(db: TestDatabase): Promise<Record<string, unknown>[]> {
  const rows = await rawQuery(
    db,
    "SELECT id, status, note, finished_at, cancel_requested_at, cancel_requested_by FROM jm_runs ORDER BY id",
  );
  return rows.map((r) => ({
    ...r,
    id: Number(r.id),
    finished_at: r.finished_at === null ? null : Number(r.finished_at),
    cancel_requested_at: r.cancel_requested_at === null ? null : Number(r.cancel_requested_at),
  }));
}

/** Job `a`, a live service svc-1, and a row saying svc-1 runs a run of `a`: that run. */
async function runningOnLiveNode(db: TestDatabase) {
  assertEquals((await jm(db, ...ADD)).code, 0);
  await saveNodes(db, liveFor30Minutes("svc-1"));
  await rawQuery(
    db,
    "INSERT INTO jm_runs (job_id, scheduled_at, status, `trigger`, node_id, started_at) VALUES ('a', 1000, 'running', 'schedule', 'svc-1', 1000)",
  );
  const [run] = await runRows(db);
  return run;
}

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: job run with no live service refuses, unless --queue; --wait --timeout gives up`, async () => {
    await using db = await freshDatabase(backend);
    assertEquals((await jm(db, ...ADD)).code, 0);
    const noService =
      "no live service uses this database, so nothing would run job 'a': run it in this process with `jobsmanager job run --here a`, or pass --queue to leave it for the next service that starts";
    for (const args of [["job", "run", "a"], ["job", "run", "a", "--wait"]]) {
      assertEquals(await jm(db, ...args), {
        code: 1,
        stdout: "",
        stderr: `jobsmanager: ${noService}\n`,
      }, args.join(" "));
    }
    assertEquals(await jm(db, "--json", "job", "run", "a"), {
      code: 1,
      stdout: "",
      stderr: `${
        JSON.stringify({ error: { kind: "refused", message: noService, exit_code: 1 } })
      }\n`,
    });
    assertEquals(await runRows(db), [], "a refused request writes no run");

    const queued = JSON.parse((await jm(db, "--json", "job", "run", "a", "--queue")).stdout);
    assertEquals([queued.status, queued.trigger], ["queued", "manual"]);

    const waited = await jm(db, "job", "run", "a", "--queue", "--wait", "--timeout", "1");
    const [left] = (await runRows(db)).slice(-1);
    assertEquals([waited.code, waited.stdout], [1, ""]);
    assertEquals(
      waited.stderr,
      `jobsmanager: run ${left.id} did not end within 1 s and is left queued: see it with \`jobsmanager runs show ${left.id}\`, or cancel it with \`jobsmanager runs cancel ${left.id}\`\n`,
    );
    assertEquals(left.status, "queued");

    for (
      const [args, error] of [
        [
          ["job", "run", "a", "--queue", "--timeout", "5"],
          "--timeout: it limits --wait; give --wait too (see `jobsmanager job run --help`)",
        ],
        [
          ["job", "run", "a", "--queue", "--here"],
          "queue: --queue leaves the run for a service, --here runs it now; give one",
        ],
        [
          ["job", "run", "a", "--queue", "--wait", "--timeout", "0"],
          "--timeout: '0' is not valid (allowed: a whole number from 1 to 31536000) (see `jobsmanager job run --help`)",
        ],
      ] as const
    ) {
      assertEquals(await jm(db, ...args), {
        code: 2,
        stdout: "",
        stderr: `jobsmanager: ${error}\n`,
      });
    }
    assertEquals((await runRows(db)).length, 2, "a refused option writes no run");
  });

  Deno.test(`cli[${backend}]: runs cancel drops a queued run, records a request for a running one, refuses an ended one`, async () => {
    await using db = await freshDatabase(backend);
    assertEquals((await jm(db, ...ADD)).code, 0);
    const queued = JSON.parse((await jm(db, "--json", "job", "run", "a", "--queue")).stdout);
    const before = Date.now();
    const dropped = await jm(db, "runs", "cancel", String(queued.id));
    assertEquals(dropped, {
      code: 0,
      stdout: `cancelled run ${queued.id} of 'a': it was queued and will not run\n`,
      stderr: "",
    });
    const [row] = await runRows(db);
    const by = `tester@${Deno.hostname()}`;
    assertEquals([row.status, row.cancel_requested_by], ["cancelled", by]);
    const at = row.cancel_requested_at as number;
    assert(
      at >= before - 1000 && at <= Date.now(),
      `cancel_requested_at ${at} is when it was asked`,
    );
    assertEquals([row.finished_at, row.note], [
      at,
      `cancelled by ${by} at ${new Date(at).toISOString()}`,
    ]);

    const ended = await jm(db, "runs", "cancel", String(queued.id));
    assertEquals(ended, {
      code: 1,
      stdout: "",
      stderr:
        `jobsmanager: run ${queued.id} has already ended (cancelled); there is nothing to cancel\n`,
    });

    // A run a service holds: the request is recorded for it, the status left to it.
    await rawQuery(
      db,
      "INSERT INTO jm_runs (job_id, scheduled_at, status, `trigger`, node_id, started_at) VALUES ('a', 1000, 'running', 'schedule', 'svc-1', 1000)",
    );
    const [, running] = await runRows(db);
    const asked = JSON.parse((await jm(db, "--json", "runs", "cancel", String(running.id))).stdout);
    assertEquals([asked.outcome, asked.run.status, asked.run.cancel_requested_by], [
      "requested",
      "running",
      by,
    ]);
    const human = await jm(db, "runs", "cancel", String(running.id));
    assertEquals(
      human.stdout,
      `asked the service to end run ${running.id} of 'a' (running on svc-1); it records the run cancelled when it has ended it, or, if it does not run it (a row restored from a backup or left by an earlier service), records it cancelled saying so (\`runs cancel --wait\` waits for that answer)\n`,
    );
    const [, after] = await runRows(db);
    assertEquals(after.status, "running");
    assertMatch(String(after.cancel_requested_by), /^tester@/);

    assertEquals(await jm(db, "runs", "cancel", "999"), {
      code: 1,
      stdout: "",
      stderr: "jobsmanager: run 999 does not exist (see `jobsmanager runs`)\n",
    });
    // A number too large to be exact is no run number (it was shown as "run 1e+23").
    assertEquals(await jm(db, "runs", "show", "99999999999999999999999"), {
      code: 2,
      stdout: "",
      stderr:
        "jobsmanager: run id: '99999999999999999999999' is not a run number (too large to be one)\n",
    });
  });

  Deno.test(`cli[${backend}]: runs cancel without $USER or $LOGNAME names the account it runs as`, async () => {
    await using db = await freshDatabase(backend);
    assertEquals((await jm(db, ...ADD)).code, 0);
    const queued = JSON.parse((await jm(db, "--json", "job", "run", "a", "--queue")).stdout);
    // As cron, a systemd unit or `docker exec` run it: neither variable set.
    const env = cliEnv();
    delete env.USER;
    delete env.LOGNAME;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", "--quiet", MAIN, "--database", db.url]
        .concat(["runs", "cancel", String(queued.id)]),
      cwd: db.dir,
      env,
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
    // The account's name as the system's user database gives it, not `uid N`.
    const passwd = await new Deno.Command("getent", { args: ["passwd", String(Deno.uid())] })
      .output();
    const name = new TextDecoder().decode(passwd.stdout).split(":")[0];
    assert(name !== "", `uid ${Deno.uid()} has a name here`);
    const [row] = await runRows(db);
    assertEquals(row.cancel_requested_by, `${name}@${Deno.hostname()}`);
  });

  Deno.test(`cli[${backend}]: runs cancel --wait prints the service's answer`, async () => {
    await using db = await freshDatabase(backend);
    const restored = await runningOnLiveNode(db);
    const waiting = jm(db, "runs", "cancel", "--wait", "--timeout", "60", String(restored.id));
    // The service's answer, once the request is there: it did not know the run.
    await waitFor(async () => (await runRows(db))[0].cancel_requested_at !== null || null, {
      timeoutMs: 30_000,
      what: "the cancel request to be recorded",
    });
    const note =
      "cancelled by tester at 2030-01-01T00:00:00.000Z; it was not running in the service on svc-1, though its row said running: the row was restored from a backup or written by hand while the service ran, or left by an earlier service on that node; nothing was ended";
    await rawQuery(
      db,
      "UPDATE jm_runs SET status = 'cancelled', finished_at = 2000, note = ? WHERE id = ?",
      [note, restored.id],
    );
    assertEquals(await waiting, {
      code: 0,
      stdout: `run ${restored.id} of 'a' ended cancelled: ${note}\n`,
      stderr: "",
    });
    assertEquals((await jm(db, "runs", "cancel", "--timeout", "5", "1")).code, 2);
  });

  Deno.test(`cli[${backend}]: runs cancel --wait --timeout on a database that hangs gives up at the timeout and its margin, the cancel not confirmed written`, async () => {
    await using db = await freshDatabase(backend);
    const run = await runningOnLiveNode(db);
    // SQLite: another connection holds the write lock; MariaDB: no byte moves to or from it.
    const holder = db.target.kind === "sqlite" ? new DatabaseSync(db.target.path) : null;
    await using proxy = db.target.kind === "mysql" ? proxyFor(db) : null;
    let url = db.url;
    if (proxy !== null) {
      const proxied = new URL(db.url);
      proxied.port = String(proxy.port);
      url = proxied.toString();
      proxy.blackhole();
    }
    try {
      holder?.exec("BEGIN IMMEDIATE");
      // Without the bound, it ended at the driver's timeout (10 s), with its error.
      const r = await cli(
        ["--database", url, "--json", "runs", "cancel", String(run.id), "--wait", "--timeout", "1"],
        { cwd: db.dir, env: { USER: "tester" } },
      );
      assertEquals([r.code, r.stdout, JSON.parse(r.stderr)], [1, "", {
        error: {
          kind: "unavailable",
          message:
            `the database did not answer within 3 s (the wait and 2 s to write the request), so the cancel of run ${run.id} is not confirmed written: it may still be once the database answers; see the run with \`jobsmanager runs show ${run.id}\`, and cancel it again if it has no cancel request`,
          exit_code: 1,
        },
      }]);
    } finally {
      if (holder?.isTransaction) holder.exec("ROLLBACK");
      holder?.close();
      proxy?.restore();
    }
  });

  Deno.test(`cli[${backend}]: runs cancel --wait of a run whose service is not live answers at once, the request recorded`, async () => {
    await using db = await freshDatabase(backend);
    assertEquals((await jm(db, ...ADD)).code, 0);
    // A lone service killed with SIGKILL: no other node declares it dead; its heartbeat stops.
    // On this host, its pid tells at once, before the heartbeat goes stale.
    const ended = new Deno.Command("true").spawn();
    await ended.status;
    await saveNodes(db, serviceRow("killed", { agoMs: 3_600_000 }), {
      ...liveFor30Minutes("killed-here"),
      pid: ended.pid,
      ...hereSpace(),
    });
    const cases = [
      ["killed", "its heartbeat has stopped: see `jobsmanager status`"],
      ["killed-here", "its process is gone: see `jobsmanager status`"],
      ["unknown", "it has no row in jm_nodes"],
    ];
    for (const [i, [node, why]] of cases.entries()) {
      await rawQuery(
        db,
        "INSERT INTO jm_runs (job_id, scheduled_at, status, `trigger`, node_id, started_at) VALUES ('a', ?, 'running', 'schedule', ?, 1000)",
        [1000 * (i + 1), node],
      );
      const id = (await runRows(db)).at(-1)!.id;
      // Without the check, this waited out its timeout (without --timeout, for ever).
      const r = await jm(db, "runs", "cancel", String(id), "--wait", "--timeout", "60");
      assertEquals(r, {
        code: 1,
        stdout: "",
        stderr:
          `jobsmanager: service ${node}, which holds run ${id} (running), is not live (${why}), so nothing would end the run now: the cancel request is recorded, and that service answers it when it starts again on its node; see the run with \`jobsmanager runs show ${id}\`\n`,
      });
      const row = (await runRows(db)).at(-1)!;
      assertEquals([row.status, row.cancel_requested_by], ["running", `tester@${Deno.hostname()}`]);
    }
  });

  Deno.test(`cli[${backend}]: job run --here shows the output as it comes, and records it`, async () => {
    await using db = await freshDatabase(backend);
    // The job prints, then waits for the test to see that line before it goes on.
    const command =
      `echo one; echo err >&2; while [ ! -e '${db.dir}/go' ]; do sleep 0.05; done; echo two`;
    const add = await jm(db, "job", "add", "live", "--command", command, "--cron", "0 0 1 1 *");
    assertEquals(add.code, 0, add.stderr);
    await using run = new CliProcess(["--database", db.url, "job", "run", "live", "--here"], {
      cwd: db.dir,
    });
    await waitFor(() => run.stdout.includes("one\n") && run.stderr.includes("err\n"), {
      timeoutMs: 20_000,
      what: "the job's first lines while it still runs",
      detail: () => `stdout: ${run.stdout}\nstderr: ${run.stderr}`,
    });
    assert(run.running, "the job ended before the test let it");
    await Deno.writeTextFile(`${db.dir}/go`, "");
    assertEquals((await run.exit(20_000)).code, 0, run.stderr);
    assertMatch(run.stdout, /^one\ntwo\nrun +\d+\njob +live\nstatus +success\n/);
    assert(!run.stdout.includes("--- stdout ---"), "the output was printed twice");
    const [row] = await rawQuery(db, "SELECT status, stdout, stderr FROM jm_runs");
    assertEquals({ ...row }, { status: "success", stdout: "one\ntwo\n", stderr: "err\n" });
  });

  Deno.test(`cli[${backend}]: job run --here escapes the job's output on a terminal, and passes its bytes as they are to a pipe`, async () => {
    await using db = await freshDatabase(backend);
    // A retitle (OSC) on stdout, a clear screen (CSI) and a C1 CSI (U+009B) on stderr.
    const command = String.raw`printf 'a\033]0;PWN\007b\n'; printf 'c\033[2Jd\302\233e\n' >&2`;
    const add = await jm(db, "job", "add", "loud", "--command", command, "--cron", "0 0 1 1 *");
    assertEquals(add.code, 0, add.stderr);
    const args = ["--database", db.url, "job", "run", "loud", "--here"];
    // Both streams of a terminal come on its stdout.
    const shown = await cli(args, { cwd: db.dir, terminal: true });
    assertEquals(shown.code, 0, shown.stdout);
    for (const raw of ["\x1b", "\x07", "\u009b"]) {
      assert(!shown.stdout.includes(raw), JSON.stringify(shown.stdout));
    }
    for (const text of [String.raw`a\x1b]0;PWN\x07b`, String.raw`c\x1b[2Jd\x9be`]) {
      assert(shown.stdout.includes(text), `${text} in ${JSON.stringify(shown.stdout)}`);
    }
    const piped = await cli(args, { cwd: db.dir });
    assertEquals(piped.code, 0, piped.stderr);
    assert(piped.stdout.startsWith("a\x1b]0;PWN\x07b\n"), JSON.stringify(piped.stdout));
    assertEquals(piped.stderr, "c\x1b[2Jd\u009be\n");
  });

  Deno.test(`cli[${backend}]: a job that runs the CLI reaches the database of JM_DATABASE_URL, not a new one where it runs`, async () => {
    await using db = await freshDatabase(backend);
    const env = { JM_DATABASE_URL: db.url, USER: "tester" };
    const work = `${db.dir}/work`;
    await Deno.mkdir(work);
    const followUp = [Deno.execPath(), "run", "--allow-all", "--quiet", MAIN, "job", "add"]
      .concat(["followup", "--command", "'echo later'", "--cron", "'0 3 * * *'"]).join(" ");
    const add = await cli(
      ["job", "add", "caller", "--command", followUp, "--cron", "0 0 1 1 *", "--cwd", work],
      { cwd: db.dir, env },
    );
    assertEquals(add.code, 0, add.stderr);
    const run = await cli(["job", "run", "caller", "--here"], { cwd: db.dir, env });
    assertEquals(run.code, 0, `${run.stdout}${run.stderr}`);
    const show = await cli(["job", "show", "followup"], { cwd: db.dir, env });
    assertEquals(show.code, 0, `${run.stdout}${show.stderr}`);
    assertEquals([...Deno.readDirSync(work)], [], "the job made a database where it ran");
  });

  Deno.test(`cli[${backend}]: job run --here piped into head goes on reading the job's output, and records its own end`, async () => {
    await using db = await freshDatabase(backend);
    // 1.2 MB, far beyond a pipe's room: the job blocked on it once head had gone, and was killed
    // at its timeout.
    const add = await jm(
      db,
      "job",
      "add",
      "loud",
      "--command",
      "seq 1 200000",
      "--cron",
      "0 0 1 1 *",
    );
    assertEquals(add.code, 0, add.stderr);
    await jm(db, "job", "update", "loud", "--timeout", "60");
    const cli = [Deno.execPath(), "run", "--allow-all", "--quiet", MAIN, "--database", db.url];
    const piped = await new Deno.Command("bash", {
      args: [
        "-c",
        `"$@" job run loud --here | head -2; echo "exit \${PIPESTATUS[0]}" >&2`,
        "bash",
        ...cli,
      ],
      cwd: db.dir,
      env: cliEnv(),
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const [stdout, stderr] = [piped.stdout, piped.stderr].map((b) => new TextDecoder().decode(b));
    assertEquals(stdout, "1\n2\n");
    const [row] = await runRows(db);
    assertEquals([row.status, row.note], ["success", "run in the CLI with --here"], stderr);
    assertMatch(
      stderr,
      new RegExp(
        `^\\njobsmanager: stdout cannot be written \\(Broken pipe \\(os error 32\\)\\): the run's output is no longer shown, and is still recorded \\(jobsmanager runs show ${row.id}\\)\\nexit 0\\n$`,
      ),
    );
    const [{ length }] = await rawQuery(db, "SELECT LENGTH(stdout) AS length FROM jm_runs");
    assert(Number(length) > 0, "the output is recorded");
  });

  for (
    const [signal, why] of [
      ["SIGINT", "jobsmanager job run --here was interrupted (SIGINT: Ctrl-C)"],
      ["SIGHUP", "the terminal of jobsmanager job run --here closed (SIGHUP)"],
    ] as const
  ) {
    Deno.test(`cli[${backend}]: job run --here ended by ${signal} ends the command's whole group and records it interrupted, saying why`, async () => {
      await using db = await freshDatabase(backend);
      // A child of the shell, told apart by its own argument.
      const sleep = `sleep 30.${crypto.getRandomValues(new Uint32Array(1))[0]}`;
      const command = `echo started; ${sleep}; echo ended`;
      const add = await jm(db, "job", "add", "held", "--command", command, "--cron", "0 0 1 1 *");
      assertEquals(add.code, 0, add.stderr);
      await using run = new CliProcess(["--database", db.url, "job", "run", "held", "--here"], {
        cwd: db.dir,
      });
      await waitFor(
        () => run.stdout.includes("started\n") && livePidsMatching(sleep).length > 0,
        {
          timeoutMs: 20_000,
          what: "the job to start its sleep",
          detail: () => `stdout: ${run.stdout}\nstderr: ${run.stderr}`,
        },
      );
      run.signal(signal);
      await run.exit(20_000);
      await waitFor(() => livePidsMatching(sleep).length === 0 || null, {
        timeoutMs: 30_000,
        what: `the command's ${sleep} to end`,
        detail: () => livePidsMatching(sleep),
      });
      const [row] = await rawQuery(db, "SELECT status, note FROM jm_runs");
      assertEquals(
        { ...row },
        { status: "interrupted", note: `run in the CLI with --here; killed: ${why}` },
      );
    });
  }

  Deno.test(`cli[${backend}]: a job run --here whose CLI was killed with SIGKILL is ended by runs cancel on its host, with what it left running`, async () => {
    await using db = await freshDatabase(backend);
    // A child of the shell, told apart by its own argument: it outlives the shell's pdeathsig.
    const sleep = `sleep 30.${crypto.getRandomValues(new Uint32Array(1))[0]}`;
    const command = `echo started; ${sleep}; echo ended`;
    const add = await jm(db, "job", "add", "held", "--command", command, "--cron", "0 0 1 1 *");
    assertEquals(add.code, 0, add.stderr);
    await using run = new CliProcess(["--database", db.url, "job", "run", "held", "--here"], {
      cwd: db.dir,
    });
    const recorded = async () =>
      (await rawQuery(db, "SELECT id, status, pgid, marker, note FROM jm_runs"))[0];
    await waitFor(
      async () =>
        run.stdout.includes("started\n") && livePidsMatching(sleep).length > 0 &&
        (await recorded())?.pgid != null,
      {
        timeoutMs: 20_000,
        what: "the job to start its sleep, its group recorded",
        detail: async () => `row: ${JSON.stringify(await recorded())}\nstderr: ${run.stderr}`,
      },
    );
    const id = Number((await recorded()).id);
    const host = Deno.hostname();
    // While the CLI lives, the run is its to end.
    assertEquals(await jm(db, "runs", "cancel", String(id)), {
      code: 1,
      stdout: "",
      stderr:
        `jobsmanager: run ${id} runs in a terminal (\`jobsmanager job run --here\`, pid ${run.pid} on ${host}), not in a service, and was not ended: the CLI process that runs it (pid ${run.pid} on ${host}) still runs: end it there with Ctrl-C\n`,
    });
    run.signal("SIGKILL");
    await run.exit(20_000);
    assertEquals((await recorded()).status, "running", "the CLI recorded an end it cannot have");
    const cancel = await jm(db, "runs", "cancel", String(id));
    assertEquals(cancel, {
      code: 0,
      stdout:
        `ended run ${id} of 'held': the CLI process that ran it (\`job run --here\`) is gone; recorded interrupted\n`,
      stderr: "",
    });
    assertEquals(livePidsMatching(sleep), [], "what the run left running was not ended");
    const row = await recorded();
    assertEquals(row.status, "interrupted");
    assertMatch(
      String(row.note),
      new RegExp(
        `^run in the CLI with --here; the CLI process that ran it \\(pid ${run.pid} on ${host}\\) ended \\(killed, or it crashed\\) without recording how the run ended; ended what it left running: (.*, )?\\d+ \\(${sleep}\\)$`,
      ),
    );
  });

  Deno.test(`cli[${backend}]: job run --here starts its report on a line of its own after output without a last newline`, async () => {
    await using db = await freshDatabase(backend);
    await jm(db, "job", "add", "bare", "--command", "printf 'no end'", "--cron", "0 0 1 1 *");
    const run = await jm(db, "job", "run", "bare", "--here");
    assertEquals(run.code, 0, run.stderr);
    assertMatch(run.stdout, /^no end\nrun +\d+\njob +bare\n/);
    const [row] = await rawQuery(db, "SELECT stdout FROM jm_runs");
    assertEquals(row.stdout, "no end", "the newline is the terminal's, not the job's");
    // Ended on stderr without a newline: the line is ended there; stdout's output did end.
    await jm(
      db,
      "job",
      "add",
      "err",
      "--command",
      "echo out; printf oops >&2",
      "--cron",
      "0 0 1 1 *",
    );
    const errRun = await jm(db, "job", "run", "err", "--here");
    assertEquals(errRun.stderr, "oops\n");
    assertMatch(errRun.stdout, /^out\nrun +\d+\n/);
    // Its stdout unended, then a whole line on stderr: stdout (a pipe here) still gets its newline.
    await jm(
      db,
      "job",
      "add",
      "both",
      "--command",
      "printf nonl; sleep 0.1; echo err >&2",
      "--cron",
      "0 0 1 1 *",
    );
    const bothRun = await jm(db, "job", "run", "both", "--here");
    assertEquals(bothRun.stderr, "err\n");
    assertMatch(bothRun.stdout, /^nonl\nrun +\d+\n/);
  });

  Deno.test(`cli[${backend}]: job run --here of a command ended by a real-time signal records it killed, named, and exits as for any killed run`, async () => {
    await using db = await freshDatabase(backend);
    await jm(
      db,
      "job",
      "add",
      "rt",
      "--command",
      "echo before; kill -34 $$",
      "--cron",
      "0 0 1 1 *",
    );
    const run = await jm(db, "job", "run", "rt", "--here");
    assertEquals([run.code, run.stderr], [1, ""], run.stdout);
    assertMatch(run.stdout, /^before\nrun +\d+\njob +rt\nstatus +killed\n/);
    assertStringIncludes(run.stdout, "\nsignal       SIGRTMIN\n");
    const rows = await rawQuery(db, "SELECT status, exit_code, `signal`, note FROM jm_runs");
    assertEquals(
      rows.map((r) => [r.status, r.exit_code, r.signal, r.note]),
      [[
        "killed",
        null,
        "SIGRTMIN",
        "run in the CLI with --here; ended by SIGRTMIN, not sent by jobsmanager",
      ]],
    );
  });
}

mysqlTest(
  "cli[mysql]: job run --wait --timeout gives up at its timeout when the database stops answering",
  async () => {
    await using db = await freshDatabase("mysql");
    assertEquals((await jm(db, ...ADD)).code, 0);
    await using proxy = proxyFor(db);
    const url = new URL(db.url);
    url.port = String(proxy.port);
    await using wait = new CliProcess(
      ["--database", url.toString(), "job", "run", "a", "--queue", "--wait", "--timeout", "4"],
      { cwd: db.dir },
    );
    // Queued (no service), and looked at again and again; then every byte to the database held:
    // its next look hangs.
    await waitFor(async () => (await runRows(db)).length === 1, {
      timeoutMs: 20_000,
      what: "the run to be queued",
      detail: () => wait.stderr,
    });
    const sent = proxy.chunksFromClients;
    await waitFor(() => proxy.chunksFromClients >= sent + 3, {
      timeoutMs: 20_000,
      what: "the wait to look at the run",
      detail: () => `${proxy.chunksFromClients - sent} chunks sent; stderr: ${wait.stderr}`,
    });
    proxy.blackhole();
    // A statement's timeout is 30 s: without the bound, the wait gave up then, with the driver's error.
    const status = await wait.exit(25_000, "the wait to give up at its timeout");
    const [run] = await runRows(db);
    assertEquals([status.code, wait.stderr], [
      1,
      `jobsmanager: run ${run.id} did not end within 4 s and is left queued: see it with \`jobsmanager runs show ${run.id}\`, or cancel it with \`jobsmanager runs cancel ${run.id}\`\n`,
    ]);
    proxy.restore();
  },
);
