/**
 * `jobsmanager status` on a cluster's rows: each node's state in the words
 * the API and the dashboard use (live, stale, dead, stopped), its share,
 * how far behind its marker is, and a clock that is off, or a live node of
 * an older release, said plainly.
 */
import { assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { BACKENDS, cli, freshDatabase, serviceRow } from "./helpers.ts";
import type { Node } from "../src/domain/node.ts";
import { hereSpace } from "../src/daemon/presence.ts";

/**
 * The rows' heartbeat interval: a minute, so that the rows written live stay live (3 intervals)
 * while a loaded machine starts the CLI twice (CI at 2 s: both read stale 10 s later).
 */
const HEARTBEAT_MS = 60_000;

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: status lists the cluster: live, stale, dead, stopped, share, marker, skew`, async () => {
    await using db = await freshDatabase(backend);
    const store = db.open();
    try {
      await store.migrate();
      await store.insertMarker([], []);
      const latest = await store.insertMarker([], []);
      const databaseNow = await store.databaseNow();
      const row = (id: string, dbAgoMs: number, extra: Partial<Node> = {}) => ({
        ...serviceRow(id),
        db_heartbeat_at: databaseNow - dbAgoMs,
        heartbeat_ms: HEARTBEAT_MS,
        applied_marker: latest,
        skew_ms: 100,
        jobs_owned: 2,
        ...extra,
      });
      for (
        const node of [
          row("alpha", 0, { skew_ms: 5240, applied_marker: latest - 1, jobs_owned: 3 }),
          row("beta", 0, { skew_ms: -300 }),
          row("gamma", 4 * HEARTBEAT_MS),
          row("delta", 4 * HEARTBEAT_MS, {
            declared_dead_at: databaseNow,
            declared_dead_by: "alpha",
          }),
          row("omega", 0, { stopped_at: Date.now() }),
          // Of a release before schema version 17: live, and stopped.
          row("old", 0, { schema_version: null }),
          row("older", 0, { schema_version: null, stopped_at: Date.now() }),
          // Its clock 2 min ahead: up 10 min and beating now, on the database's clock.
          row("ahead", 0, {
            skew_ms: 120_000,
            started_at: Date.now() + 120_000 - 600_000,
            heartbeat_at: Date.now() + 120_000,
          }),
        ]
      ) {
        await store.saveNode(node);
      }
    } finally {
      await store.close();
    }
    const status = await cli(["--database", db.url, "status"], { cwd: db.dir });
    assertEquals(status.code, 0, status.stderr);
    const line = (id: string) => status.stdout.split("\n").find((l) => l.startsWith(`${id} `));
    assertMatch(line("alpha")!, /^alpha +live +.* 3 +1 \(1 behind\) +\+5\.2 s \(off\) /);
    assertMatch(line("beta")!, /^beta +live +.* 2 +2 +-0\.3 s /);
    assertMatch(line("gamma")!, /^gamma +stale +.* - +2 +\+0\.1 s /);
    assertMatch(line("delta")!, /^delta +dead \(by alpha\) /);
    // The share of a node not live is no one's: shown as none, in JSON too (the API's status).
    const json = await cli(["--database", db.url, "status", "--json"], { cwd: db.dir });
    const shares = Object.fromEntries(
      (JSON.parse(json.stdout).services as { id: string; jobs_owned: number | null }[])
        .map((n) => [n.id, n.jobs_owned]),
    );
    assertEquals(
      [shares.alpha, shares.beta, shares.gamma, shares.delta, shares.omega],
      [3, 2, null, null, null],
      json.stdout,
    );
    assertMatch(line("omega")!, /^omega +stopped /);
    // Ages on the database's clock, not the node's 2 min ahead: seconds, as long as the CLI took to start.
    assertMatch(line("ahead")!, /^ahead +live +\d+ +\S+ +(9m 5\ds|10m \ds) +\d s ago /);
    assertMatch(
      status.stdout,
      /^node alpha: its clock is \+5\.2 s off the database's \(more than 2 s\); it takes no share of the jobs while another node's clock is in step: fix its time sync \(NTP\)$/m,
    );
    assertEquals(status.stdout.match(/its clock is/g)?.length, 2, status.stdout);
    assertMatch(
      status.stdout,
      /^node old: runs an older release of jobsmanager \(its row names no schema_version\), which runs a job that has a user as its own user, root typically \(jobs given one before still are; no job is given one while it is live\): upgrade or stop it$/m,
    );
    assertEquals(status.stdout.match(/an older release/g)?.length, 1, status.stdout);
    // Stale by each node's own interval, not by this command's configuration (5 s by default).
    assertStringIncludes(
      status.stdout,
      `no heartbeat for 3 intervals of ${HEARTBEAT_MS / 1000} s;`,
    );
  });
}

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: status with only a stale service says it did not stop, and how to go on`, async () => {
    await using db = await freshDatabase(backend);
    const store = db.open();
    try {
      await store.migrate();
      const databaseNow = await store.databaseNow();
      await store.saveNode({
        ...serviceRow("gamma"),
        db_heartbeat_at: databaseNow - 4 * HEARTBEAT_MS,
        heartbeat_ms: HEARTBEAT_MS,
      });
    } finally {
      await store.close();
    }
    const status = await cli(["--database", db.url, "status"], { cwd: db.dir });
    const row = serviceRow("gamma");
    assertEquals([status.code, status.stderr], [
      1,
      `jobsmanager: no live jobsmanager service on this database: gamma (pid ${row.pid} on ${row.host}) stopped sending heartbeats without stopping (hung, suspended, or killed): see its log, and restart it (\`systemctl restart jobsmanager\` where systemd runs it)\n`,
    ]);
  });
}

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: status of a stale service whose process still runs on this host says so, and what a restart loses`, async () => {
    await using db = await freshDatabase(backend);
    // A process of this host that runs: the service, beating no more (its database refusing writes).
    const child = new Deno.Command("sleep", { args: ["300"], stdout: "null", stderr: "null" })
      .spawn();
    try {
      const store = db.open();
      try {
        await store.migrate();
        const databaseNow = await store.databaseNow();
        await store.saveNode({
          ...serviceRow("vm"),
          host: Deno.hostname(),
          pid: child.pid,
          // Written after its process started, as a service writes its row.
          started_at: Date.now(),
          ...hereSpace(),
          db_heartbeat_at: databaseNow - 4 * HEARTBEAT_MS,
          heartbeat_ms: HEARTBEAT_MS,
        });
      } finally {
        await store.close();
      }
      const status = await cli(["--database", db.url, "status"], { cwd: db.dir });
      assertMatch(status.stdout, /^vm +stale /m, status.stdout);
      assertEquals([status.code, status.stderr], [
        1,
        `jobsmanager: no live jobsmanager service on this database: vm (pid ${child.pid} on ${Deno.hostname()}) stopped sending heartbeats, but its process still runs on this host: its log says why (a database that refuses writes, such as a full disk, is said there and at /readyz; a suspended process says nothing: kill -CONT ${child.pid}); a restart loses the run records it holds unwritten: fix the cause, and it writes them and beats again by itself\n`,
      ]);
    } finally {
      child.kill();
      await child.status;
    }
  });
}

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: status of a service of this host killed with SIGKILL says at once that its pid is gone`, async () => {
    await using db = await freshDatabase(backend);
    // A pid no process has any more.
    const child = new Deno.Command("true").spawn();
    await child.status;
    const store = db.open();
    try {
      await store.migrate();
      const databaseNow = await store.databaseNow();
      // Its last heartbeat a second ago, of this boot and pid namespace (the CLI's): judged by its
      // heartbeat, the service would be live for 3 intervals more.
      await store.saveNode({
        ...serviceRow("killed"),
        host: Deno.hostname(),
        pid: child.pid,
        ...hereSpace(),
        db_heartbeat_at: databaseNow - 1000,
        heartbeat_ms: HEARTBEAT_MS,
      });
      await store.claimRuns([{
        job_id: "j",
        scheduled_at: Date.now(),
        status: "running",
        trigger: "schedule",
        node_id: "killed",
      }]);
    } finally {
      await store.close();
    }
    const status = await cli(["--database", db.url, "status"], { cwd: db.dir });
    const line = status.stdout.split("\n").find((l) => l.startsWith("killed "));
    assertMatch(
      line!,
      new RegExp(`^killed +dead \\(pid ${child.pid} is not running\\) +${child.pid} `),
    );
    assertStringIncludes(
      status.stdout,
      "\nruns recorded running on a service that is not running: 1 (marked lost when it starts again)\n",
    );
    assertEquals([status.code, status.stderr], [
      1,
      `jobsmanager: no live jobsmanager service on this database: killed (pid ${child.pid} on ${Deno.hostname()}) is not running and did not stop (killed or crashed): see its log, and restart it (\`systemctl restart jobsmanager\` where systemd runs it)\n`,
    ]);
    // One with this host's name and a pid this host does not know, that beats: a service in
    // another pid namespace (a container given the host's name) is live.
    const again = db.open();
    try {
      await again.saveNode({
        ...serviceRow("elsewhere"),
        host: Deno.hostname(),
        pid: child.pid,
        boot_id: hereSpace().boot_id,
        pid_ns: hereSpace().pid_ns! + 1,
        db_heartbeat_at: await again.databaseNow(),
        heartbeat_ms: HEARTBEAT_MS,
      });
    } finally {
      await again.close();
    }
    const second = await cli(["--database", db.url, "status"], { cwd: db.dir });
    assertMatch(
      second.stdout.split("\n").find((l) => l.startsWith("elsewhere "))!,
      /^elsewhere +live /,
      second.stdout,
    );
  });
}
