/**
 * Notifications (issue 13), in-process on a fake clock, every backend: the
 * jobs' runs are fake, their hooks real `/bin/sh` commands (they write what
 * they got to files the test reads) and a loopback webhook receiver.
 * Nothing waits a fixed time: each test waits for the files, requests or
 * rows it expects.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import {
  type Backend,
  BACKENDS,
  freshDatabase,
  mysqlTest,
  rawQuery,
  serviceRow,
  type TestDatabase,
} from "./helpers.ts";
import type { Store } from "../src/store/store.ts";
import { DatabaseError } from "../src/errors.ts";
import { ClusterHarness, DaemonHarness, NODE_ID, T0, throughProxy } from "./daemon_harness.ts";
import { proxyFor } from "./tcp_proxy.ts";
import { status } from "../src/app/status.ts";
import { mailText, type NotifyPayload, runPayload } from "../src/daemon/notify_message.ts";
import { buildJob } from "../src/domain/job.ts";
import { AS_FIELDS } from "../src/domain/option_names.ts";
import { updateJob } from "../src/app/jobs.ts";
import { Metrics } from "../src/http/metrics.ts";
import {
  appendStdin,
  failurePayload,
  jsonLines,
  leftPending,
  outcomes,
  readIfThere,
  tempDir,
  touched,
} from "./notify_fixtures.ts";

/** A store of `db` that adds to `looks` the time of each look for held-back notifications (T0 + ms). */
function countingLooks(db: TestDatabase, looks: number[]): Store {
  const store = db.open();
  const takeHeld = store.takeHeld.bind(store);
  store.takeHeld = (now, minIntervalMs, nodeId) => {
    looks.push(now - T0);
    return takeHeld(now, minIntervalMs, nodeId);
  };
  return store;
}

/**
 * When the job was last notified: a held-back notification, when the look
 * that took it ran (a fake time; its hook's own run takes real time).
 */
async function lastSent(h: DaemonHarness, jobId: string): Promise<number> {
  const rows = await rawQuery(h.db, "SELECT last_sent_at FROM jm_notify_state WHERE job_id = ?", [
    jobId,
  ]);
  return Number(rows[0].last_sent_at);
}

/** Move the fake clock a second at a time until the notifier has looked for held-back ones `n` times. */
async function looked(h: DaemonHarness, looks: number[], n: number): Promise<void> {
  await h.stepUntil(
    () => looks.length >= n,
    `look ${n} for held-back notifications`,
    { to: T0 + 300_000 },
  );
}

/** Fail the runs of job `flapping` at T0 + each of `seconds`, each claimed before the next. */
async function failures(h: DaemonHarness, seconds: number[]): Promise<number[]> {
  const ids: number[] = [];
  for (const s of seconds) {
    await h.clock.set(T0 + s * 1000);
    (await h.started("flapping", T0 + s * 1000)).finish({ status: "failed", exitCode: s });
    const id = (await h.run("flapping", T0 + s * 1000, "failed")).id;
    ids.push(id);
    // Claimed before the clock moves on, so that each is claimed at its own instant.
    await h.until(async () => (await claims(h, "failure")).includes(id), `run ${id} claimed`);
  }
  return ids;
}

async function claims(h: DaemonHarness, event: string): Promise<number[]> {
  const rows = await rawQuery(
    h.db,
    "SELECT ref FROM jm_notifications WHERE event = ? ORDER BY ref",
    [event],
  );
  return rows.map((r) => Number(r.ref));
}

/**
 * A service whose job "sync", with a webhook to `port`'s /hook, fails its
 * fire at T0+1s.
 */
async function syncFailed(backend: Backend, port: number, metrics: Metrics) {
  const h = await DaemonHarness.create(await freshDatabase(backend), { observer: metrics });
  await h.job("sync", {
    schedule: { second: "1", minute: "0", hour: "0" },
    on_failure_url: `http://127.0.0.1:${port}/hook`,
  });
  await h.start();
  await h.clock.set(T0 + 1000);
  (await h.started("sync", T0 + 1000)).finish({ status: "failed", exitCode: 1 });
  return h;
}

Deno.test("notify: the last attempt of a job that retries says no retry is left; a job without retries says nothing of attempts", () => {
  const job = buildJob("flaky", { command: "true", cron: "* * * * *", retries: "2" }, null, T0);
  const run = {
    id: 9,
    job_id: "flaky",
    status: "failed" as const,
    exit_code: 1,
    signal: null,
    scheduled_at: T0,
    started_at: T0,
    finished_at: T0 + 1000,
    node_id: "n1",
    trigger: "retry" as const,
    note: null,
    stdout: "x\n",
    stderr: null,
    attempt: 3,
  };
  const last = runPayload("failure", job, run);
  assertEquals(last.attempt, { number: 3, of: 3, next_try_at: null });
  assertEquals(
    last.summary,
    "job flaky failed (exit 1), run 9 on n1; attempt 3 of 3, no retry left",
  );
  const mail = mailText("ops@example.com", last);
  assert(mail.includes("\nattempt: attempt 3 of 3, no retry left\n"), mail);
  assert(mail.includes("\nwhole output: jobsmanager runs show 9\n"), mail);
  const once = runPayload("failure", { ...job, retries: 0 }, { ...run, attempt: 1 });
  assertEquals([once.attempt, once.summary], [null, "job flaky failed (exit 1), run 9 on n1"]);
});

for (const backend of BACKENDS) {
  Deno.test(`notify[${backend}]: a failed attempt that is to be retried notifies too (the next fire may drop the retry)`, async () => {
    await using dir = await tempDir();
    const d = dir.path;
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("flaky", {
      schedule: { second: "*" },
      retries: "2",
      retry_delay: "5",
      on_failure: `cat > '${d}/stdin.tmp' && mv '${d}/stdin.tmp' '${d}/stdin.json'`,
    });
    await h.start();
    await h.clock.set(T0 + 1000);
    (await h.started("flaky", T0 + 1000)).finish({ status: "failed", exitCode: 1 });
    const run = await h.run("flaky", T0 + 1000, "failed");
    const payload = await h.until(async () => {
      const text = await readIfThere(`${d}/stdin.json`);
      return text === null ? null : JSON.parse(text) as NotifyPayload;
    }, "the on_failure hook of the first attempt");
    assertEquals([payload.event, payload.status, payload.run_id], ["failure", "failed", run.id]);
    // It says a retry comes, when, and where the whole output is.
    assertEquals([payload.attempt?.number, payload.attempt?.of], [1, 3]);
    const next = Date.parse(payload.attempt!.next_try_at!);
    assert(next >= T0 + 6000 && next <= T0 + 6500, payload.attempt!.next_try_at!);
    assertMatch(payload.summary, /; attempt 1 of 3, next try at 2030-01-01T00:00:06\.\d{3}Z$/);
    assertEquals(payload.full_output, `jobsmanager runs show ${run.id}`);
  });

  Deno.test(`notify[${backend}]: a run's end notifies the hook its job has then, not the one it started with`, async () => {
    await using dir = await tempDir();
    const d = dir.path;
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("backup", {
      schedule: { second: "1", minute: "0", hour: "0" },
      on_failure: `echo ran > '${d}/old'`,
    });
    await h.start();
    await h.clock.set(T0 + 1000);
    const running = await h.started("backup", T0 + 1000);
    const repointed = await h.job("backup", { on_failure: `echo ran > '${d}/new'` });
    await h.clock.set(T0 + 2000);
    await h.until(
      async () => (await h.markers()).find((m) => m.id === repointed)?.updated,
      "the change to be applied",
    );
    running.finish({ status: "failed", exitCode: 1 });
    const run = await h.run("backup", T0 + 1000, "failed");
    await h.until(() => readIfThere(`${d}/new`), "the hook the job has now to run");
    assertEquals(await readIfThere(`${d}/old`), null, "the hook it had when it started ran too");
    assertEquals(await claims(h, "failure"), [run.id]);
  });

  Deno.test(`notify[${backend}]: on_failure gets the run as JSON on stdin and in JM_* variables; mailto mails it`, async () => {
    await using dir = await tempDir();
    const d = dir.path;
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: {
        "notify.mailto": "ops@example.com",
        "notify.sendmail": `cat > '${d}/mail.tmp' && mv '${d}/mail.tmp' '${d}/mail.txt'`,
      },
    });
    await h.job("backup", {
      schedule: { second: "1", minute: "0", hour: "0" },
      description: "nightly backup",
      on_failure:
        `cat > '${d}/stdin.tmp' && env > '${d}/env.tmp' && mv '${d}/env.tmp' '${d}/env.txt' && mv '${d}/stdin.tmp' '${d}/stdin.json'`,
    });
    await h.start();
    await h.clock.set(T0 + 1000);
    (await h.started("backup", T0 + 1000)).finish({
      status: "failed",
      exitCode: 3,
      stdout: "copying\n",
      stderr: "disk full\n",
    });
    const run = await h.run("backup", T0 + 1000, "failed");
    const payload = await h.until(
      async () => {
        const text = await readIfThere(`${d}/stdin.json`);
        return text === null ? null : JSON.parse(text) as NotifyPayload;
      },
      "the on_failure hook to write its stdin",
    );
    assertEquals(
      [payload.event, payload.job_id, payload.description, payload.status, payload.run_id],
      ["failure", "backup", "nightly backup", "failed", run.id],
    );
    assertEquals([payload.exit_code, payload.scheduled_at, payload.node_id, payload.trigger], [
      3,
      new Date(T0 + 1000).toISOString(),
      "test-node",
      "schedule",
    ]);
    assertEquals(payload.output_tail, "copying\n\ndisk full\n");
    assertEquals(payload.held_back, null);
    const env = new Map(
      (await Deno.readTextFile(`${d}/env.txt`)).split("\n").filter((l) => /^JM_[A-Z_]+=/.test(l))
        .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
    assertEquals(
      ["JM_JOB_ID", "JM_RUN_ID", "JM_STATUS", "JM_EXIT_CODE", "JM_SCHEDULED_AT", "JM_NODE_ID"]
        .map((k) => env.get(k)),
      ["backup", String(run.id), "failed", "3", new Date(T0 + 1000).toISOString(), "test-node"],
    );
    assertEquals(env.get("JM_DURATION"), "0.000");
    assertEquals(env.get("JM_STARTED_AT"), new Date(T0 + 1000).toISOString());
    const mail = await h.until(() => readIfThere(`${d}/mail.txt`), "the mail to be sent");
    assert(mail.startsWith("To: ops@example.com\n"), mail);
    assert(mail.includes(`Subject: jobsmanager: job backup failed (exit 3), run ${run.id}`), mail);
    assert(mail.includes("output (end):\ncopying\n\ndisk full\n"), mail);
    assertEquals(await claims(h, "failure"), [run.id]);
  });

  Deno.test(`notify[${backend}]: a mail sendmail refused is logged with sendmail's program, no password of its command or its stderr`, async () => {
    await using dir = await tempDir();
    const d = dir.path;
    const program = `${d}/fake-sendmail`;
    await Deno.writeTextFile(
      program,
      '#!/bin/sh\necho "msmtp: relay smtps://mailer:pw-in-stderr@mail.example.com/?key=q-s3cret refused; $1" >&2\nexit 75\n',
    );
    await Deno.chmod(program, 0o755);
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: {
        "notify.mailto": "ops@example.com",
        "notify.sendmail": `${program} --password=cmd-s3cret-pw -t`,
      },
    });
    await h.job("backup", { schedule: { second: "1", minute: "0", hour: "0" } });
    await h.start();
    await h.clock.set(T0 + 1000);
    (await h.started("backup", T0 + 1000)).finish({ status: "failed", exitCode: 3 });
    const line = await h.until(
      () => h.line(/^job backup: failure mail/),
      "the mail's outcome logged",
    );
    assertEquals(
      line,
      `job backup: failure mail to ops@example.com not sent: ${program} ended failed (exit 75): msmtp: relay smtps://***@mail.example.com/?*** refused; --password=***`,
    );
    const log = h.lines.join("\n");
    for (const secret of ["pw-in-stderr", "q-s3cret", "cmd-s3cret-pw"]) {
      assert(!log.includes(secret), `the log shows ${secret}:\n${log}`);
    }
    assert(!/mailed to/.test(log), log);
  });

  Deno.test(`notify[${backend}]: a webhook gets the same JSON, signed; URLs' secrets never reach the log`, async () => {
    const secret = "webhook-signing-key";
    const received: { body: string; signature: string | null; event: string | null }[] = [];
    await using server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      async (request) => {
        received.push({
          body: await request.text(),
          signature: request.headers.get("x-jobsmanager-signature"),
          event: request.headers.get("x-jobsmanager-event"),
        });
        return new Response("ok");
      },
    );
    // Nothing listens on port 9 (discard), unlike a port freed for another test to take: the POST
    // fails, and its error must not show the URL's secrets.
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "notify.webhook_secret": secret, "notify.webhook_retries": 0 },
    });
    await h.job("sync", {
      schedule: { second: "1", minute: "0", hour: "0" },
      on_failure_url:
        `http://hook:pa55word-in-url@127.0.0.1:${server.addr.port}/hooks/jm?token=query-s3cret`,
    });
    await h.job("orphan", {
      schedule: { second: "1", minute: "0", hour: "0" },
      on_failure_url:
        `http://hook:pa55word-in-url@127.0.0.1:9/services/T0/B0/path-s3cret?token=query-s3cret`,
    });
    await h.start();
    await h.clock.set(T0 + 1000);
    (await h.started("sync", T0 + 1000)).finish({ status: "failed", exitCode: 1 });
    (await h.started("orphan", T0 + 1000)).finish({ status: "timeout", exitCode: null });
    const run = await h.run("sync", T0 + 1000, "failed");
    const request = await h.until(() => received[0], "the webhook to be POSTed");
    const payload = JSON.parse(request.body) as NotifyPayload;
    assertEquals([payload.event, payload.job_id, payload.status, payload.run_id], [
      "failure",
      "sync",
      "failed",
      run.id,
    ]);
    assertEquals(request.event, "failure");
    const key = await crypto.subtle.importKey(
      "raw",
      new TextEncoder().encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["verify"],
    );
    assert(request.signature?.startsWith("sha256="), String(request.signature));
    const hex = request.signature!.slice("sha256=".length);
    const signature = new Uint8Array(hex.match(/../g)!.map((b) => parseInt(b, 16)));
    assert(
      await crypto.subtle.verify("HMAC", key, signature, new TextEncoder().encode(request.body)),
      "the signature is the body's HMAC-SHA256 under notify.webhook_secret",
    );
    await h.until(() => h.line(/^job orphan: failure webhook .* failed/), "the failed POST logged");
    await h.until(() => h.line(/^job sync: failure webhook .* answered 200/), "the POST logged");
    assertEquals(received.length, 1);
    const log = h.lines.join("\n");
    for (const secretPart of ["pa55word-in-url", "query-s3cret", "path-s3cret", secret]) {
      assert(!log.includes(secretPart), `the log shows ${secretPart}:\n${log}`);
    }
    assert(
      log.includes(`http://***@127.0.0.1:${server.addr.port}/***?***`),
      `the log names the URL, redacted:\n${log}`,
    );
  });

  Deno.test(`notify[${backend}]: a webhook answered 503 is tried again after a delay, and counted once sent`, async () => {
    const answers = [503, 200];
    const received: number[] = [];
    await using server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      async (request) => {
        await request.body?.cancel();
        const status = answers[Math.min(received.length, answers.length - 1)];
        received.push(status);
        return new Response(null, { status });
      },
    );
    const metrics = new Metrics();
    await using h = await syncFailed(backend, server.addr.port, metrics);
    await h.until(() => received.length === 1, "the first POST");
    // The retry waits on the service's clock: move it until the second POST comes.
    await h.stepUntil(
      () => received.length === 2,
      "the POST tried again",
      { to: T0 + 30_000, step: 250 },
    );
    await h.until(() => h.line(/^job sync: failure webhook .* answered 200/), "the POST logged");
    assertEquals(received, [503, 200]);
    const text = await metrics.text();
    assert(
      text.includes('jobsmanager_notifications_total{channel="webhook",outcome="sent"} 1'),
      text,
    );
    assert(!text.includes('outcome="failed"'), text);
  });

  Deno.test(`notify[${backend}]: a webhook answered with a redirect is not followed: it failed, and says where to`, async () => {
    const requests: string[] = [];
    await using server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      async (request) => {
        await request.body?.cancel();
        requests.push(`${request.method} ${new URL(request.url).pathname}`);
        return new Response(null, { status: 307, headers: { location: "/elsewhere?token=x" } });
      },
    );
    const metrics = new Metrics();
    await using h = await syncFailed(backend, server.addr.port, metrics);
    await h.until(
      () =>
        h.line(
          /^job sync: failure webhook http:\/\/127\.0\.0\.1:\d+\/\*\*\* failed \(try 1\): HTTP 307 Temporary Redirect: a redirect to http:\/\/127\.0\.0\.1:\d+\/\*\*\*\?\*\*\*, not followed; /,
        ),
      "the redirect logged as a failure",
    );
    // Followed, the signed payload would have gone to /elsewhere.
    assertEquals(requests, ["POST /hook"]);
    assert((await metrics.text()).includes('outcome="failed"'));
    // Its claim says so too: not `sent`.
    const outcome = async () =>
      (await rawQuery(h.db, "SELECT outcome FROM jm_notifications WHERE job_id = 'sync'"))
        .map((r) => r.outcome);
    await h.until(async () => (await outcome())[0] === "failed", "the claim's outcome: failed");
  });

  Deno.test(`notify[${backend}]: a webhook host that hangs holds one turn, not everyone's; each post names its delivery`, async () => {
    await using dir = await tempDir();
    const requests: string[] = [];
    const deliveries: string[] = [];
    const { promise: released, resolve: release } = Promise.withResolvers<void>();
    await using server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      async (request) => {
        requests.push(new URL(request.url).pathname);
        deliveries.push(request.headers.get("x-jobsmanager-delivery") ?? "none");
        await request.body?.cancel();
        // Never answered while the test looks: as a receiver whose process hangs.
        await released;
        return new Response(null, { status: 200 });
      },
    );
    try {
      await using h = await DaemonHarness.create(await freshDatabase(backend));
      const schedule = { second: "1", minute: "0", hour: "0" };
      const hung = ["h1", "h2", "h3", "h4", "h5", "h6"];
      for (const id of hung) {
        await h.job(id, { schedule, on_failure_url: `http://127.0.0.1:${server.addr.port}/${id}` });
      }
      await h.job("local", { schedule, on_failure: `cat > '${dir.path}/local.json'` });
      await h.start();
      await h.clock.set(T0 + 1000);
      for (const id of [...hung, "local"]) {
        (await h.started(id, T0 + 1000)).finish({ status: "failed", exitCode: 1 });
      }
      // Six posts to a hung host took all four turns (notify.max_concurrent) before.
      await h.until(() => readIfThere(`${dir.path}/local.json`), "local's hook to run");
      await h.until(() => requests.length === 1, "the first post to the hung host");
      assertEquals(requests.length, 1, "the host's posts go one at a time");
      assertMatch(deliveries[0], /^[0-9a-f]{32}$/);
    } finally {
      release();
    }
  });

  Deno.test(`notify[${backend}]: a hook killed at notify.timeout is logged in words, not as an exit code`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "notify.timeout": 1 },
    });
    await h.job("slow", {
      schedule: { second: "1", minute: "0", hour: "0" },
      on_failure: "exec sleep 60",
    });
    await h.start();
    await h.clock.set(T0 + 1000);
    (await h.started("slow", T0 + 1000)).finish({ status: "failed", exitCode: 1 });
    const line = await h.until(
      () => h.line(/^job slow: failure hook command /),
      "the hook's end logged",
    );
    assertEquals(
      line,
      "job slow: failure hook command timed out: killed after notify.timeout (1 s) with SIGTERM: (no output)",
    );
  });

  Deno.test(`notify[${backend}]: a hook ended by a real-time signal is logged as a hook killed by it`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await h.job("rt", {
      schedule: { second: "1", minute: "0", hour: "0" },
      on_failure: "cat > /dev/null; kill -34 $$",
    });
    await h.start();
    await h.clock.set(T0 + 1000);
    (await h.started("rt", T0 + 1000)).finish({ status: "failed", exitCode: 1 });
    const line = await h.until(
      () => h.line(/^job rt: failure hook command /) ?? h.line(/notification not sent/),
      "the failed hook logged",
    );
    assertEquals(line, "job rt: failure hook command was killed by SIGRTMIN: (no output)");
  });

  Deno.test(`notify[${backend}]: a hook that fails is logged with its exit code and output, and counted`, async () => {
    const metrics = new Metrics();
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      observer: metrics,
    });
    await h.job("broken", {
      schedule: { second: "1", minute: "0", hour: "0" },
      on_failure: "cat > /dev/null; echo 'pager unreachable' >&2; exit 7",
    });
    await h.start();
    await h.clock.set(T0 + 1000);
    (await h.started("broken", T0 + 1000)).finish({ status: "failed", exitCode: 1 });
    const line = await h.until(
      () => h.line(/^job broken: failure hook command ended/),
      "the failed hook logged",
    );
    assertEquals(line, "job broken: failure hook command ended failed (exit 7): pager unreachable");
    const text = await metrics.text();
    assert(
      text.includes('jobsmanager_notifications_total{channel="command",outcome="failed"} 1'),
      text,
    );
  });

  Deno.test({
    name:
      `notify[${backend}]: a job with a user has its hook command run as that user; one whose user has no account is a failed hook saying so`,
    ignore: Deno.uid() !== 0,
    fn: async () => {
      await using dir = await tempDir();
      const d = dir.path;
      await Deno.chmod(d, 0o777);
      await using h = await DaemonHarness.create(await freshDatabase(backend));
      await h.job("as-nobody", {
        schedule: { second: "1", minute: "0", hour: "0" },
        user: "nobody",
        on_failure:
          `cat > /dev/null; echo "$(id -u) $HOME" > '${d}/who.tmp' && mv '${d}/who.tmp' '${d}/who.txt'`,
      });
      await h.job("as-ghost", {
        schedule: { second: "1", minute: "0", hour: "0" },
        user: "jm-no-such-user",
        on_failure: `cat > /dev/null; touch '${d}/ghost-ran'`,
      });
      await h.start();
      await h.clock.set(T0 + 1000);
      (await h.started("as-nobody", T0 + 1000)).finish({ status: "failed", exitCode: 1 });
      (await h.started("as-ghost", T0 + 1000)).finish({ status: "failed", exitCode: 1 });
      const who = await h.until(() => readIfThere(`${d}/who.txt`), "the hook as nobody to run");
      assertEquals(who, "65534 /nonexistent\n");
      const line = await h.until(
        () => h.line(/^job as-ghost: failure hook command/),
        "the hook of the user without an account logged",
      );
      assertEquals(
        line,
        `job as-ghost: failure hook command did not start: job as-ghost runs as 'jm-no-such-user', who has no account on host ${Deno.hostname()}: create it, or change the job's user (jobsmanager job update as-ghost --user NAME, or --user '' for the service's own)`,
      );
      assertEquals(await readIfThere(`${d}/ghost-ran`), null, "nothing ran");
    },
  });

  Deno.test({
    name:
      `notify[${backend}]: the config's default hook command runs as the service, for a job with a user too`,
    ignore: Deno.uid() !== 0,
    fn: async () => {
      await using dir = await tempDir();
      const d = dir.path;
      await using h = await DaemonHarness.create(await freshDatabase(backend), {
        settings: {
          "notify.on_failure":
            `cat > /dev/null; echo "$(id -u) $JM_JOB_ID" > '${d}/who.tmp' && mv '${d}/who.tmp' '${d}/who.txt'`,
        },
      });
      await h.job("as-nobody", {
        schedule: { second: "1", minute: "0", hour: "0" },
        user: "nobody",
      });
      await h.start();
      await h.clock.set(T0 + 1000);
      (await h.started("as-nobody", T0 + 1000)).finish({ status: "failed", exitCode: 1 });
      const who = await h.until(() => readIfThere(`${d}/who.txt`), "the default hook to run");
      assertEquals(who, "0 as-nobody\n");
    },
  });

  Deno.test(`notify[${backend}]: a failed hook's output is logged without a URL's credentials or the service's secrets`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "notify.webhook_secret": "HookSigningKey42" },
    });
    await h.job("paging", {
      schedule: { second: "1", minute: "0", hour: "0" },
      on_failure:
        "cat > /dev/null; echo 'no answer from https://admin:HookPass12345@alerts.example.com/x?key=k3y-v4lue signed HookSigningKey42' >&2; exit 4",
    });
    await h.start();
    await h.clock.set(T0 + 1000);
    (await h.started("paging", T0 + 1000)).finish({ status: "failed", exitCode: 1 });
    const line = await h.until(
      () => h.line(/^job paging: failure hook command ended/),
      "the failed hook logged",
    );
    assertEquals(
      line,
      "job paging: failure hook command ended failed (exit 4): no answer from https://***@alerts.example.com/***?*** signed ***",
    );
    const log = h.lines.join("\n");
    for (const secret of ["HookPass12345", "k3y-v4lue", "HookSigningKey42"]) {
      assert(!log.includes(secret), `the log shows ${secret}:\n${log}`);
    }
  });

  Deno.test(`notify[${backend}]: a missed fire and a run lost with a dead node notify on_failure`, async () => {
    await using dir = await tempDir();
    const file = `${dir.path}/failure.jsonl`;
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "notify.min_interval": 0 },
    });
    await h.job("late", {
      schedule: { second: "1", minute: "0", hour: "0" },
      on_failure: appendStdin(file),
    });
    await h.job("elsewhere", {
      schedule: { second: "0", minute: "0", hour: "12" },
      on_failure: appendStdin(file),
    });
    // A node that stopped beating a minute ago, with a run of "elsewhere" still running there.
    const databaseNow = await h.store.databaseNow();
    await h.store.saveNode({
      ...serviceRow("dead-node"),
      db_heartbeat_at: databaseNow - 60_000,
      heartbeat_ms: 1000,
    });
    const [lostId] = await h.store.claimRuns([{
      job_id: "elsewhere",
      scheduled_at: T0 - 60_000,
      started_at: T0 - 60_000,
      status: "running",
      trigger: "schedule",
      node_id: "dead-node",
    }]);
    await h.start();
    // 4 s after its fire, beyond misfire_grace_time (1 s): missed.
    await h.clock.set(T0 + 5000);
    const missed = await h.run("late", T0 + 1000, "missed");
    const got = await h.stepUntil(
      async () => {
        const lines = await jsonLines(file);
        return lines.length === 2 ? lines : null;
      },
      "on_failure of the missed fire and of the lost run",
      { to: T0 + 30_000, step: 500 },
    );
    assertEquals(
      got.map((p) => [p.job_id, p.status, p.run_id]).sort(),
      [["elsewhere", "lost", lostId], ["late", "missed", missed.id]],
    );
  });

  Deno.test(`notify[${backend}]: on_recovery runs on the first success after a failure, not on the next`, async () => {
    await using dir = await tempDir();
    const d = dir.path;
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "notify.min_interval": 0 },
    });
    await h.job("flaky", {
      schedule: { second: "1,2,3", minute: "0", hour: "0" },
      on_recovery: appendStdin(`${d}/recovery.jsonl`),
      on_success: appendStdin(`${d}/success.jsonl`),
    });
    await h.start();
    await h.clock.set(T0 + 1000);
    (await h.started("flaky", T0 + 1000)).finish({ status: "failed", exitCode: 1 });
    await h.run("flaky", T0 + 1000, "failed");
    await h.clock.set(T0 + 2000);
    (await h.started("flaky", T0 + 2000)).finish();
    const second = await h.run("flaky", T0 + 2000, "success");
    const recovery = await h.until(
      async () => (await jsonLines(`${d}/recovery.jsonl`))[0],
      "the on_recovery hook",
    );
    assertEquals([recovery.event, recovery.status, recovery.run_id], [
      "recovery",
      "success",
      second.id,
    ]);
    await h.clock.set(T0 + 3000);
    (await h.started("flaky", T0 + 3000)).finish();
    const third = await h.run("flaky", T0 + 3000, "success");
    // The recovery of a run is decided before its on_success runs.
    await h.until(
      async () => (await jsonLines(`${d}/success.jsonl`)).some((p) => p.run_id === third.id),
      "on_success of the third run",
    );
    assertEquals(await claims(h, "recovery"), [second.id]);
    assertEquals((await jsonLines(`${d}/recovery.jsonl`)).length, 1);
  });

  Deno.test(`notify[${backend}]: a job silent for alert_after alerts once, and again only after a success`, async () => {
    await using dir = await tempDir();
    const file = `${dir.path}/failure.jsonl`;
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "notify.min_interval": 0 },
    });
    await h.job("heartbeat", {
      schedule: { second: "30", minute: "0", hour: "0" },
      alert_after: "3s",
      on_failure: appendStdin(file),
    });
    await h.job("disabled", {
      schedule: { second: "30", minute: "0", hour: "0" },
      alert_after: "3s",
      enabled: false,
      on_failure: appendStdin(file),
    });
    await h.start();
    const silent = async () =>
      (await status(h.store, { now: h.clock.now(), heartbeatMs: 5000, defaultZone: "UTC" }))
        .silentJobs.map((j) => [j.job_id, j.since - T0]);
    assertEquals(await silent(), []);
    // The silence is looked for every few seconds: move on until it is found.
    const first = await h.stepUntil(
      async () => {
        const lines = await jsonLines(file);
        return lines[0];
      },
      "the silence alert",
      { to: T0 + 25_000 },
    );
    assertEquals([first.event, first.job_id, first.status, first.run_id], [
      "silent",
      "heartbeat",
      "silent",
      null,
    ]);
    assertEquals(await silent(), [["heartbeat", 0]]);
    await h.clock.set(T0 + 30_000);
    (await h.started("heartbeat", T0 + 30_000)).finish();
    await h.run("heartbeat", T0 + 30_000, "success");
    assertEquals(await silent(), []);
    const second = await h.stepUntil(
      async () => {
        const lines = await jsonLines(file);
        return lines[1];
      },
      "the second silence alert, after the success",
      { to: T0 + 55_000 },
    );
    assertEquals([second.job_id, second.status], ["heartbeat", "silent"]);
    assertEquals(await claims(h, "silent"), [T0, T0 + 30_000]);
    assertEquals((await jsonLines(file)).length, 2);
    assertEquals(await silent(), [["heartbeat", 30_000]]);
  });

  Deno.test(`notify[${backend}]: a job that runs only after another's runs alerts when silent too`, async () => {
    await using dir = await tempDir();
    const file = `${dir.path}/failure.jsonl`;
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "notify.min_interval": 0 },
    });
    await h.job("nightly", { schedule: { second: "30", minute: "0", hour: "0" } });
    await h.job("report", { after: "nightly", alert_after: "3s", on_failure: appendStdin(file) });
    await h.start();
    const alert = await h.stepUntil(
      async () => {
        const lines = await jsonLines(file);
        return lines[0];
      },
      "the follower's silence alert",
      { to: T0 + 25_000 },
    );
    assertEquals([alert.event, alert.job_id], ["silent", "report"]);
  });

  Deno.test(`notify[${backend}]: an edit of a job alerted for silence does not re-arm the alert; it stays silent`, async () => {
    await using dir = await tempDir();
    const file = `${dir.path}/failure.jsonl`;
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "notify.min_interval": 0 },
    });
    await h.job("heartbeat", {
      schedule: { second: "30", minute: "0", hour: "0" },
      alert_after: "3s",
      on_failure: appendStdin(file),
    });
    await h.start();
    await h.stepUntil(
      async () => {
        const lines = await jsonLines(file);
        return lines[0];
      },
      "the silence alert",
      { to: T0 + 25_000 },
    );
    const alertedAt = h.clock.now();
    // As `job update --description` does: the job's updated_at moves on.
    await updateJob(h.store, "heartbeat", { description: "edited" }, h.clock.now(), AS_FIELDS);
    // Past alert_after from the edit, and a few looks more.
    await h.stepUntil(
      () => h.clock.now() >= alertedAt + 15_000,
      "15 s after the edit",
      { to: alertedAt + 15_000 },
    );
    const silent =
      (await status(h.store, { now: h.clock.now(), heartbeatMs: 5000, defaultZone: "UTC" }))
        .silentJobs.map((j) => [j.job_id, j.since - T0]);
    assertEquals(silent, [["heartbeat", 0]]);
    assertEquals(await claims(h, "silent"), [T0]);
    assertEquals((await jsonLines(file)).length, 1);
  });

  Deno.test(`notify[${backend}]: one notification per min_interval; what was held back follows, summarised`, async () => {
    await using dir = await tempDir();
    const file = `${dir.path}/failure.jsonl`;
    const db = await freshDatabase(backend);
    const looks: number[] = [];
    await using h = await DaemonHarness.create(db, {
      settings: { "notify.min_interval": 30 },
      store: () => countingLooks(db, looks),
    });
    await h.job("flapping", {
      schedule: { second: "11,12,13,14", minute: "0", hour: "0" },
      on_failure: appendStdin(file),
    });
    await h.start();
    // The first look for held-back ones finds none: the next would be a minute on.
    await looked(h, looks, 1);
    const ids = await failures(h, [11, 12, 13, 14]);
    const first = await h.until(async () => (await jsonLines(file))[0], "the first notification");
    assertEquals([first.run_id, first.held_back], [ids[0], null]);
    await h.until(
      async () =>
        (await rawQuery(h.db, "SELECT held_count FROM jm_notify_state"))[0]?.held_count == 3,
      "three failures held back",
    );
    assertEquals((await jsonLines(file)).length, 1);
    const next = await h.stepUntil(
      async () => {
        const lines = await jsonLines(file);
        return lines[1];
      },
      "the held-back notification once min_interval has passed",
      { to: T0 + 90_000 },
    );
    assertEquals([next.run_id, next.exit_code], [ids[3], 14]);
    assertEquals(next.held_back, {
      count: 2,
      since: new Date(T0 + 12_000).toISOString(),
      statuses: { failed: 2 },
    });
    // Due at T0+41 s; taken by the look then (this node held it), not a minute after the last.
    const takenAt = await lastSent(h, "flapping") - T0;
    // The bound says "not the 60 s fallback", with room for looks slowed by a busy machine.
    assert(takenAt >= 41_000 && takenAt <= 56_000, `taken at T0+${takenAt}`);
  });

  Deno.test(`notify[${backend}]: a notification held while a look for held-back ones is under way goes when due`, async () => {
    await using dir = await tempDir();
    const file = `${dir.path}/failure`;
    const db = await freshDatabase(backend);
    const looks: number[] = [];
    const gate = Promise.withResolvers<void>();
    await using h = await DaemonHarness.create(db, {
      settings: { "notify.min_interval": 30 },
      store: () => {
        const store = countingLooks(db, looks);
        const takeHeld = store.takeHeld.bind(store);
        // Each look answers only once the gate is open (its query is made at once).
        store.takeHeld = async (now, minIntervalMs, nodeId) => {
          const found = await takeHeld(now, minIntervalMs, nodeId);
          await gate.promise;
          return found;
        };
        return store;
      },
    });
    await h.job("flapping", {
      schedule: { second: "11,12", minute: "0", hour: "0" },
      on_failure: appendStdin(file),
    });
    await h.start();
    await looked(h, looks, 1);
    await failures(h, [11, 12]);
    // The second failure is held (due at T0+41 s) while the first look, which found none, waits.
    await h.until(() => h.line(/notification held back/), "the second failure held back");
    gate.resolve();
    await h.stepUntil(
      async () => {
        const sent = (await jsonLines(file)).length;
        return sent >= 2;
      },
      "the held-back notification",
      { to: T0 + 90_000 },
    );
    const takenAt = await lastSent(h, "flapping") - T0;
    assert(
      takenAt >= 41_000 && takenAt <= 56_000,
      `taken at T0+${takenAt}; looked at T0+${looks.join(", T0+")} ms`,
    );
  });

  Deno.test(`notify[${backend}]: a look for held-back notifications that fails is made again at the next check`, async () => {
    const db = await freshDatabase(backend);
    const looks: number[] = [];
    let failedAt: number | null = null;
    await using h = await DaemonHarness.create(db, {
      settings: { "notify.min_interval": 30 },
      store: () => {
        const store = countingLooks(db, looks);
        const takeHeld = store.takeHeld.bind(store);
        // The first look fails; the others are counted in `looks`.
        store.takeHeld = (now, minIntervalMs, nodeId) => {
          if (failedAt !== null) return takeHeld(now, minIntervalMs, nodeId);
          failedAt = now - T0;
          return Promise.reject(
            new DatabaseError("Lock wait timeout exceeded", { unreachable: false }),
          );
        };
        return store;
      },
    });
    await h.start();
    await looked(h, looks, 1);
    // At a next check (5 s), not a minute on; with room for checks slowed by a busy machine.
    assert(looks[0] - failedAt! <= 20_000, `failed at T0+${failedAt}, looked at T0+${looks[0]} ms`);
  });

  Deno.test(`notify[${backend}]: held-back notifications are looked for once a minute while none is known; one another service held, then left, goes when due`, async () => {
    await using dir = await tempDir();
    const file = `${dir.path}/failure`;
    const db = await freshDatabase(backend);
    const looks: number[] = [];
    await using h = await DaemonHarness.create(db, {
      settings: { "notify.min_interval": 90 },
      store: () => countingLooks(db, looks),
    });
    await h.job("elsewhere", {
      schedule: { second: "0", minute: "0", hour: "12" },
      on_failure: appendStdin(file),
    });
    await h.start();
    await looked(h, looks, 2);
    // At start, then a minute on: not every NOTIFY_CHECK_MS.
    assert(looks[1] - looks[0] >= 60_000, `looked at T0+${looks.join(", T0+")} ms`);

    // Another service sent one of the job's notifications, held the next one, and left.
    const heldAt = h.clock.now();
    for (const ref of [1, 2]) {
      await h.store.claimNotification({
        job_id: "elsewhere",
        event: "failure",
        ref,
        status: "failed",
        at: heldAt,
        node_id: "gone",
        minIntervalMs: 90_000,
        payload: JSON.stringify(failurePayload("elsewhere", ref, "gone")),
      });
    }
    await h.store.notificationDone("elsewhere", "failure", 1, "sent");
    const sent = await h.stepUntil(
      async () => {
        const lines = await jsonLines(file);
        return lines[0];
      },
      "the notification the other service held back",
      { to: heldAt + 180_000 },
    );
    assertEquals([sent.run_id, sent.held_back], [2, null]);
    // The look after it was held found it not due yet, and when it would be.
    const late = await lastSent(h, "elsewhere") - (heldAt + 90_000);
    assert(
      late >= 0 && late <= 20_000,
      `taken ${late} ms after it was due; looked at T0+${looks.join(", T0+")} ms`,
    );
  });
}

for (const backend of BACKENDS) {
  Deno.test(`notify[${backend}]: what a stop cut short, or left waiting for a turn, the next start sends`, async () => {
    await using dir = await tempDir();
    const d = dir.path;
    const db = await freshDatabase(backend);
    const settings = { "notify.max_concurrent": 1, "notify.min_interval": 0 };
    // The first hook to run waits for `go`, which comes after the stop; the other waits for its turn.
    const hook = `touch '${d}/started.'$$; test -e '${d}/go' || sleep 600; ${
      appendStdin(`${d}/failure`)
    }`;
    await using first = await DaemonHarness.create(db, { settings });
    first.owner = false;
    for (const id of ["a", "b"]) {
      await first.job(id, { schedule: { second: "1", minute: "0", hour: "0" }, on_failure: hook });
    }
    await first.start();
    await first.clock.set(T0 + 1000);
    (await first.started("a", T0 + 1000)).finish({ status: "failed", exitCode: 1 });
    (await first.started("b", T0 + 1000)).finish({ status: "failed", exitCode: 2 });
    await first.until(
      async () =>
        Object.keys(await outcomes(first)).length === 2 && await touched(`${d}/started`) === 1,
      "both failures claimed, one hook running",
    );
    await first.stop();
    await first.until(async () => {
      if (!first.ended) await first.clock.advance(1000);
      return first.ended;
    }, "the first service to stop");
    assert(
      first.line(/^1 deliveries waiting for a turn are not made by this service, which stops/),
      first.lines.join("\n"),
    );
    assertEquals(Object.values(await outcomes(first)), ["pending", "pending"]);
    assertEquals(await jsonLines(`${d}/failure`), []);

    await Deno.writeTextFile(`${d}/go`, "");
    await using second = await DaemonHarness.create(db, { settings });
    await second.start();
    const sent = await second.stepUntil(
      async () => {
        const got = await jsonLines(`${d}/failure`);
        return got.length === 2 ? got : null;
      },
      "both notifications sent by the next service",
      { to: T0 + 120_000 },
    );
    assertEquals(sent.map((p) => p.exit_code).sort(), [1, 2]);
    await second.until(
      async () => Object.values(await outcomes(second)).every((o) => o === "sent"),
      "both marked sent",
    );
    assertEquals(second.count(/claimed before and not sent yet: sending it now/), 2);
  });

  Deno.test(`notify[${backend}]: a held-back notification taken when due, then cut short by a stop, is sent by the next start`, async () => {
    await using dir = await tempDir();
    const d = dir.path;
    const file = `${d}/failure`;
    const db = await freshDatabase(backend);
    const settings = { "notify.min_interval": 30 };
    // The notification that carries what was held back waits for `go`, which comes after the stop.
    const hook =
      `p=$(cat); case "$p" in *'"held_back":{'*) touch '${d}/started.'$$; test -e '${d}/go' || sleep 600;; esac; printf '%s' "$p" > '${file}.tmp.'$$ && mv '${file}.tmp.'$$ '${file}.'$(date +%s%N).$$`;
    await using first = await DaemonHarness.create(db, { settings });
    first.owner = false;
    await first.job("flapping", {
      schedule: { second: "11,12,13", minute: "0", hour: "0" },
      on_failure: hook,
    });
    await first.start();
    const [, , last] = await failures(first, [11, 12, 13]);
    await first.stepUntil(
      async () => await touched(`${d}/started`) === 1,
      "the held-back notification taken when due, its hook running",
      { to: T0 + 90_000 },
    );
    await first.stop();
    await first.until(async () => {
      if (!first.ended) await first.clock.advance(1000);
      return first.ended;
    }, "the first service to stop");
    assertEquals((await outcomes(first))[last], "pending");
    assertEquals((await jsonLines(file)).length, 1, "only the first failure went out");

    await Deno.writeTextFile(`${d}/go`, "");
    await using second = await DaemonHarness.create(db, { settings });
    await second.start();
    const sent = await second.stepUntil(
      async () => {
        const got = await jsonLines(file);
        return got.length === 2 ? got[1] : null;
      },
      "the held-back notification sent by the next service",
      { to: T0 + 120_000 },
    );
    assertEquals([sent.run_id, sent.held_back?.count], [last, 1]);
    await second.until(async () => (await outcomes(second))[last] === "sent", "marked sent");
  });

  Deno.test(`notify[${backend}]: a node that died with a notification pending leaves it to another, once`, async () => {
    await using dir = await tempDir();
    const file = `${dir.path}/failure`;
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "notify.min_interval": 0 },
    });
    await h.job("elsewhere", {
      schedule: { second: "0", minute: "0", hour: "12" },
      on_failure: appendStdin(file),
    });
    await h.start();
    // What a node that claimed a notification, then died, left.
    const claimedAt = h.clock.now();
    await leftPending(h.store, { job: "elsewhere", ref: 7, at: claimedAt, node: "gone" });
    const [sent] = await h.stepUntil(
      async () => {
        const got = await jsonLines(file);
        return got.length > 0 ? got : null;
      },
      "the notification the dead node claimed",
      { to: claimedAt + 120_000 },
    );
    assertEquals([sent.run_id, sent.node_id], [7, "gone"]);
    assert(h.clock.now() - claimedAt >= 30_000, `taken over ${h.clock.now() - claimedAt} ms after`);
    await h.until(async () => (await outcomes(h))[7] === "sent", "marked sent");
    const [row] = await rawQuery(h.db, "SELECT node_id FROM jm_notifications WHERE ref = 7");
    assertEquals(row.node_id, NODE_ID);
    assert(h.line(/claimed by node gone, which stopped before it went out: sending it now/));
    // Not sent again.
    await h.clock.advance(30_000);
    await h.until(() => h.count(/^job elsewhere: failure hook command ran/) === 1, "one hook run");
    assertEquals((await jsonLines(file)).length, 1);
  });
}

for (const backend of BACKENDS) {
  Deno.test(`notify[${backend}]: a live node's pending notification is its own: no other node sends it`, async () => {
    await using dir = await tempDir();
    const file = `${dir.path}/failure`;
    await using c = await ClusterHarness.create(await freshDatabase(backend), ["n1", "n2"], {
      settings: { "notify.min_interval": 0 },
    });
    await c.start();
    await c.nodes[0].job("elsewhere", {
      schedule: { second: "0", minute: "0", hour: "12" },
      on_failure: appendStdin(file),
    });
    await c.load(1);
    // n2 claimed it a while ago and has not sent it yet; its clock stands still meanwhile (it is
    // busy), for less than would make it dead.
    const n1 = c.node("n1");
    const n2 = c.freeze("n2");
    await leftPending(c.store, { job: "elsewhere", ref: 7, at: c.now() - 60_000, node: "n2" });
    const from = c.now();
    await n1.until(async () => {
      await c.set(c.now() + 1000);
      return c.now() >= from + 60_000;
    }, "a minute on n1's clock");
    assertEquals(await jsonLines(file), [], n1.lines.join("\n"));
    assertEquals(n1.count(/notification \(of 7\)/), 0, n1.lines.join("\n"));
    await c.thaw("n2");
    const [sent] = await n2.until(async () => {
      const got = await jsonLines(file);
      if (got.length === 0 && c.now() < from + 180_000) await c.set(c.now() + 1000);
      return got.length > 0 ? got : null;
    }, "n2 to send its own notification");
    assertEquals(sent.run_id, 7);
    assert(n2.line(/claimed before and not sent yet: sending it now/), n2.lines.join("\n"));
  });
}

mysqlTest(
  "notify[mysql]: a run that failed while the database was away notifies once its record is written",
  async () => {
    await using dir = await tempDir();
    const file = `${dir.path}/failure`;
    const db = await freshDatabase("mysql");
    await using proxy = proxyFor(db);
    await using h = await DaemonHarness.create(db, {
      store: throughProxy(db, proxy),
      settings: { "notify.min_interval": 0 },
    });
    await h.job("tick", {
      schedule: { second: "2", minute: "0", hour: "0" },
      on_failure: appendStdin(file),
    });
    await h.start();
    proxy.cut();
    await h.clock.set(T0 + 2000);
    const run = await h.started("tick", T0 + 2000);
    assertEquals(run.spec.env.JM_RUN_ID, "", "the run started without a row");
    run.finish({ status: "failed", exitCode: 5 });
    proxy.restore();
    // The database's health probe finds it back, the record is written, the notifier looks.
    const [payload] = await h.stepUntil(
      async () => {
        const got = await jsonLines(file);
        return got.length > 0 ? got : null;
      },
      "the notification of the run that failed during the outage",
      // Ten minutes of fake time: the probe's backoff, not the real time a reconnect takes, counts.
      { to: T0 + 600_000, step: 500 },
    );
    const row = await h.run("tick", T0 + 2000, "failed");
    assertEquals([payload.status, payload.exit_code, payload.run_id], ["failed", 5, row.id]);
  },
);
