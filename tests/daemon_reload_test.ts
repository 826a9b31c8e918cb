/**
 * Reload markers reaching the daemon, in-process with a fake clock, on
 * every backend: each poll applies only the difference (an unchanged job
 * keeps its timer: no gap, no repeat), marks exactly the markers it read,
 * picks up SQL written by hand and a marker that commits after a newer
 * one; `reload()` (SIGHUP) applies at once; a fire due during a long
 * reload is claimed before the reload goes on.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { DatabaseError } from "../src/errors.ts";
import { BACKENDS, freshDatabase, markerTimesNullable } from "./helpers.ts";
import {
  type DaemonHarness,
  DaemonHarness as Harness,
  describeRun,
  storeWith,
  T0,
} from "./daemon_harness.ts";
import { settle } from "./fake_clock.ts";
import { buildJob } from "../src/domain/job.ts";
import type { NewRun } from "../src/domain/run.ts";
import type { Store } from "../src/store/store.ts";

const at = (s: number) => T0 + s * 1000;
const iso = (s: number) => new Date(at(s)).toISOString();
const RELOADED = /^reload applied markers (\d+)-(\d+): (.*) in \d+ ms$/;

/** Move to second `s`, let each of `jobs` fire there and end it. */
async function second(h: DaemonHarness, s: number, ...jobs: string[]): Promise<void> {
  await h.clock.set(at(s));
  for (const job of jobs) (await h.started(job, at(s))).finish();
  for (const job of jobs) await h.run(job, at(s), "success");
}

/** Wait until `marker` is applied in the database and logged; return the log's counts. */
async function applied(h: DaemonHarness, marker: number): Promise<string> {
  await h.until(
    async () => (await h.markers()).find((m) => m.id === marker)?.updated,
    `marker ${marker} to be applied`,
  );
  return await h.until(() => counts(h, marker), `the reload of marker ${marker} to be logged`);
}

/**
 * `store`, telling `events` of each chunk of jobs it reads and of each
 * claim; from the first chunk read by a reload of more than one, after
 * calling `onLongReload`. Each claim takes 20 turns of the event loop, as
 * one does on MySQL, where it is real I/O.
 */
function observed(store: Store, events: string[], onLongReload: () => void): Store {
  let recording = false;
  return new Proxy(store, {
    get(target, key) {
      if (key === "jobsInChunks") {
        return async function* (size: number) {
          for await (const jobs of target.jobsInChunks(size)) {
            if (!recording && jobs.length === size) {
              recording = true;
              onLongReload();
            }
            if (recording) events.push(`read ${jobs.length}`);
            yield jobs;
          }
        };
      }
      if (key === "claimRuns") {
        return async (runs: NewRun[]) => {
          if (recording) events.push(`claim ${runs.map((r) => r.job_id).join(", ")}`);
          for (let i = 0; i < 20; i++) await settle();
          const ids = await target.claimRuns(runs);
          if (recording) events.push("claimed");
          return ids;
        };
      }
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** Empty jm_update_info as a DBA would, its ids starting over. */
async function emptyMarkers(h: DaemonHarness, backend: string): Promise<void> {
  if (backend === "mysql") return await h.sql("TRUNCATE jm_update_info");
  await h.sql("DELETE FROM jm_update_info");
  await h.sql("DELETE FROM sqlite_sequence WHERE name = 'jm_update_info'");
}

/** What the reload that applied `marker` logged: "1 added, 0 changed, …". */
function counts(h: DaemonHarness, marker: number): string | undefined {
  for (const line of h.lines) {
    const m = line.replace(/^reload: /, "").match(RELOADED);
    if (m && Number(m[1]) <= marker && marker <= Number(m[2])) return m[3];
  }
}

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: each poll applies only what changed; an unchanged job keeps firing`, async () => {
    await using h = await Harness.create(await freshDatabase(backend));
    await h.job("steady", { schedule: { second: "*" } });
    await h.job("victim", { schedule: { second: "*" } });
    await h.start();
    await second(h, 1, "steady", "victim");

    // Polls come every reload_interval (2 s): at 2 s, 4 s, 6 s. A job added
    // at 1 s is owed its fire at 2 s, which the poll then finds due: late, it runs.
    const added = await h.job("added", { schedule: { second: "*" }, command: "echo v1" });
    await second(h, 2, "steady", "victim");
    assertEquals(await applied(h, added), "1 added, 0 changed, 0 removed, 2 unchanged");
    (await h.started("added", at(2))).finish();
    await second(h, 3, "steady", "victim", "added");

    const changed = await h.job("added", { command: "echo v2" });
    // The fire at 4 s comes before that poll: it still runs v1.
    await second(h, 4, "steady", "victim", "added");
    assertEquals(await applied(h, changed), "0 added, 1 changed, 0 removed, 2 unchanged");
    await second(h, 5, "steady", "victim", "added");

    const disabled = await h.job("added", { enabled: false });
    const removed = await h.removeJob("victim");
    await second(h, 6, "steady", "victim", "added");
    await applied(h, disabled);
    assertEquals(await applied(h, removed), "0 added, 0 changed, 2 removed, 1 unchanged");
    await second(h, 7, "steady");
    await second(h, 8, "steady");

    const commands = h.runner.of("added").map((r) => `${r.scheduledAt - T0} ${r.spec.command}`);
    assertEquals(commands, [
      "2000 echo v1",
      "3000 echo v1",
      "4000 echo v1",
      "5000 echo v2",
      "6000 echo v2",
    ]);
    assertEquals(h.runner.of("victim").map((r) => r.scheduledAt), [1, 2, 3, 4, 5, 6].map(at));
    assertEquals(h.runner.of("steady").map((r) => r.scheduledAt), [1, 2, 3, 4, 5, 6, 7, 8].map(at));
    const rows = await h.runs("steady");
    assertEquals(rows.map((r) => r.scheduled_at), [1, 2, 3, 4, 5, 6, 7, 8].map(at));
    assert((await h.markers()).every((m) => m.updated), JSON.stringify(await h.markers()));
  });

  Deno.test(`daemon[${backend}]: back from a pause, the changes written meanwhile apply before the fires it left due`, async () => {
    await using h = await Harness.create(await freshDatabase(backend));
    await h.job("tick", { schedule: { second: "*" } });
    await h.job("steady", { schedule: { second: "*" } });
    await h.start();
    await second(h, 1, "tick", "steady");
    // Paused (SIGSTOP, a suspended VM) for half a minute, while tick was disabled.
    const disabled = await h.job("tick", { enabled: false });
    await h.clock.set(at(31));
    await applied(h, disabled);
    // The fires it left due are decided: steady's, as late ones are (missed, run late, skipped).
    await h.until(
      async () => (await h.runs("steady")).some((r) => r.scheduled_at === at(31)),
      "steady's fire at 31 s to be decided",
    );
    assertEquals(h.runner.of("tick").map((r) => r.scheduledAt), [at(1)]);
    assertEquals(
      (await h.runs("tick")).map((r) => `${r.status} @${(r.scheduled_at - T0) / 1000}`),
      ["success @1"],
      "a disabled job neither runs nor is missed",
    );
  });

  Deno.test(`daemon[${backend}]: back from a pause, a database that does not answer holds the fires 0.5 s at most`, async () => {
    const db = await freshDatabase(backend);
    let stall: Promise<void> | null = null;
    const answer = Promise.withResolvers<void>();
    await using h = await Harness.create(db, {
      // Polls wait on `stall` while it is set, as on a database that stopped answering.
      store: () =>
        new Proxy(db.open(), {
          get(target, key) {
            if (key === "pollState") {
              return async (nodeId: string, markerId?: number) => {
                await stall;
                return await target.pollState(nodeId, markerId);
              };
            }
            const value = Reflect.get(target, key, target);
            return typeof value === "function" ? value.bind(target) : value;
          },
        }),
    });
    await h.job("tick", { schedule: { second: "*" } });
    await h.start();
    await second(h, 1, "tick");
    stall = answer.promise;
    try {
      await h.clock.set(at(31));
      await h.until(() => h.clock.wakeUps.includes(at(31) + 500), "the loop to wait for the poll");
      assertEquals(h.runner.of("tick").map((r) => r.scheduledAt), [at(1)], "nothing fired yet");
      await h.clock.set(at(31) + 500);
      // Half a second late, within its grace: it runs.
      (await h.started("tick", at(31))).finish();
    } finally {
      stall = null;
      answer.resolve();
    }
  });

  Deno.test(`daemon[${backend}]: a job and a marker written in SQL by hand are applied`, async () => {
    await using h = await Harness.create(await freshDatabase(backend));
    await h.job("idle", { cron: "0 12 15 6 *" });
    await h.start();
    await h.sql("INSERT INTO jm_jobs (id, command, `second`) VALUES ('hand', 'echo hand', '*')");
    await h.sql(
      "INSERT INTO jm_update_info (jobs_before_update, jobs_after_update) VALUES ('[]', '[]')",
    );
    await h.clock.set(at(2));
    await h.until(async () => (await h.markers()).every((m) => m.updated), "every marker applied");
    // Written without a time of change (updated_at 0): not known to be recent,
    // it is owed the fires of its grace before the poll (1 s): the one at 2 s.
    const run = await h.started("hand", at(2));
    assertEquals(run.spec.command, "echo hand");
  });

  Deno.test(`daemon[${backend}]: a marker written by hand with no insert_time is applied, and the next poll does not take the table for emptied`, async () => {
    await using h = await Harness.create(await freshDatabase(backend));
    // A table made by hand, which lets insert_time be NULL.
    await markerTimesNullable(h.db);
    await h.job("idle", { cron: "0 12 15 6 *" });
    await h.start();
    await h.sql(
      "INSERT INTO jm_update_info (insert_time, jobs_before_update, jobs_after_update) VALUES (NULL, '[]', '[]')",
    );
    await h.clock.set(at(2));
    await h.until(async () => (await h.markers()).every((m) => m.updated), "every marker applied");
    // The poll that finds the next change asks after the marker with no time.
    await h.job("next", { schedule: { second: "*" } });
    await h.clock.set(at(4));
    await h.until(() => h.runner.of("next")[0], "a run of next");
    assertEquals(
      h.count(/^reload marker \d+, the last one applied here, is gone/),
      0,
      h.lines.join("\n"),
    );
  });

  Deno.test(`daemon[${backend}]: jm_update_info emptied by hand: markers apply from the first again, and a change whose marker went with it applies`, async () => {
    await using h = await Harness.create(await freshDatabase(backend));
    for (const id of ["a", "b", "c"]) await h.job(id, { cron: "0 12 15 6 *" });
    await h.start();
    // Added, then its marker emptied away with the others before a poll read it.
    await h.job("late", { schedule: { second: "*" }, command: "echo late" });
    await emptyMarkers(h, backend);
    await h.clock.set(at(2));
    await h.until(
      () =>
        Promise.resolve(
          h.line(
            /^reload marker 3, the last one applied here, is gone or was inserted again \(the newest is 0\)/,
          ),
        ),
      "the log to say the markers went back",
    );
    // Owed its fire at 2 s, within its grace (or the one at 1 s, where a busy machine let a poll
    // read its marker before the table was emptied: the test's writes wake the service).
    (await h.until(() => h.runner.of("late")[0], "the runner to start late")).finish();
    // New markers, their ids from 1 again, apply as any.
    const next = await h.job("next", { schedule: { second: "*" } });
    assertEquals(next, 1);
    await h.clock.set(at(4));
    await h.until(async () => (await h.markers()).every((m) => m.updated), "every marker applied");
    await h.clock.set(at(5));
    await h.until(() => h.runner.of("next")[0], "a run of next");
    assertEquals(h.count(/^reload marker \d+, the last one applied here, is gone/), 1, "said once");
  });

  Deno.test(`daemon[${backend}]: jm_update_info emptied, and new markers reach the old ids before a poll: they apply`, async () => {
    await using h = await Harness.create(await freshDatabase(backend));
    await h.start();
    await h.job("a", { cron: "0 12 15 6 *" });
    await h.job("b", { cron: "0 12 15 6 *" });
    await h.clock.set(at(1));
    await h.until(async () => {
      const markers = await h.markers();
      return markers.length === 2 && markers.every((m) => m.updated);
    }, "markers 1 and 2 applied");
    await emptyMarkers(h, backend);
    // Ids 1 and 2 again, before the service looks.
    assertEquals(await h.job("late", { schedule: { second: "*" } }), 1);
    assertEquals(await h.job("b", { cron: "0 13 15 6 *" }), 2);
    await h.clock.set(at(3));
    await h.until(
      () => h.runner.of("late")[0],
      "a run of the job added after the table was emptied",
    );
    await h.until(async () => (await h.markers()).every((m) => m.updated), "every marker applied");
    assertEquals(
      h.count(/^reload marker 2, the last one applied here, is gone or was inserted again/),
      1,
    );
  });

  Deno.test(`daemon[${backend}]: jm_update_info emptied while a reload applies its markers: said once, not undone by that reload`, async () => {
    const db = await freshDatabase(backend);
    let stall: Promise<void> | null = null;
    const reading = Promise.withResolvers<void>();
    await using h = await Harness.create(db, {
      // A reload's read of the jobs waits on `stall` while it is set.
      store: () =>
        new Proxy(db.open(), {
          get(target, key) {
            if (key === "jobsInChunks") {
              return async function* (size: number) {
                if (stall) reading.resolve();
                await stall;
                yield* target.jobsInChunks(size);
              };
            }
            const value = Reflect.get(target, key, target);
            return typeof value === "function" ? value.bind(target) : value;
          },
        }),
    });
    await h.job("a", { cron: "0 12 15 6 *" });
    await h.start();
    // Marker 2, which a reload asked for at once (SIGHUP) takes; it stalls in its read.
    await h.job("b", { cron: "0 12 15 6 *" });
    const answer = Promise.withResolvers<void>();
    stall = answer.promise;
    h.daemon.reload();
    await reading.promise;
    await emptyMarkers(h, backend);
    await h.clock.set(at(2));
    await h.until(
      () => Promise.resolve(h.line(/^reload marker 1, the last one applied here, is gone/)),
      "the poll to see the markers went back",
    );
    stall = null;
    answer.resolve();
    // The polls after it find nothing gone: the reload under way did not put marker 2 back as the last.
    for (const s of [4, 6, 8]) {
      await h.clock.set(at(s));
      await h.until(() => h.clock.wakeUps.some((w) => w > at(s)), `the loop to go on past ${s} s`);
    }
    const next = await h.job("c", { schedule: { second: "*" } });
    assertEquals(next, 1);
    await h.clock.set(at(10));
    await h.until(() => h.runner.of("c")[0], "a run of the job added after");
    assertEquals(h.count(/^reload marker \d+, the last one applied here, is gone/), 1, "said once");
  });

  Deno.test(`daemon[${backend}]: a job made invalid in SQL by hand stops firing, as the log says, old definition and all`, async () => {
    await using h = await Harness.create(await freshDatabase(backend));
    await h.job("tick", { schedule: { second: "*" }, command: "echo old" });
    await h.job("steady", { schedule: { second: "*" } });
    await h.start();
    await second(h, 1, "tick", "steady");
    await h.sql(
      "UPDATE jm_jobs SET command = 'echo new', timezone = 'Bad/Zone' WHERE id = 'tick'",
    );
    await h.sql(
      "INSERT INTO jm_update_info (jobs_before_update, jobs_after_update) VALUES ('[]', '[]')",
    );
    // The poll at 2 s applies it; tick's fire at 2 s may come before.
    await h.clock.set(at(2));
    (await h.started("steady", at(2))).finish();
    await h.until(async () => (await h.markers()).every((m) => m.updated), "every marker applied");
    assert(h.line(/^job "?tick"? is invalid and is not scheduled: timezone: /), "the log says so");
    for (const run of h.runner.of("tick")) run.finish();
    await second(h, 3, "steady");
    await second(h, 4, "steady");
    assertEquals(
      h.runner.of("tick").filter((r) => r.scheduledAt > at(2)).map((r) => r.spec.command),
      [],
    );
    assertEquals(
      h.runner.of("tick").map((r) => r.spec.command).filter((c) => c !== "echo old"),
      [],
    );
  });

  Deno.test(`daemon[${backend}]: a job added between two polls is owed its fires since: missed beyond its grace, late within it`, async () => {
    await using h = await Harness.create(await freshDatabase(backend), {
      settings: { "jobsmanager.reload_interval": 5 },
    });
    await h.job("idle", { cron: "0 12 15 6 *" });
    await h.start();
    await h.clock.set(T0 + 500);
    const marker = await h.job("fresh", { schedule: { second: "*" } });
    // The poll at 5 s finds it: its fires at 1-3 s are past their grace (1 s), the one at 4 s is not.
    await h.clock.set(at(5));
    await applied(h, marker);
    const late = await h.started("fresh", at(4));
    late.finish();
    const rows = await h.until(async () => {
      const runs = await h.runs("fresh");
      const both = runs.some((r) => r.status === "missed") &&
        runs.some((r) => r.status === "success");
      return both ? runs : null;
    }, "fresh's missed fires and its late run recorded");
    assertEquals(
      rows.filter((r) => r.scheduled_at <= at(4)).map((
        r,
      ) => [r.scheduled_at - T0, r.status, r.note]),
      [
        [
          3000,
          "missed",
          `3 fires from ${iso(1)} to ${iso(3)} came later than misfire_grace_time (1 s)`,
        ],
        [4000, "success", null],
      ],
    );
  });

  Deno.test(`daemon[${backend}]: a job enabled by hand in SQL is not owed the fires of while it was disabled`, async () => {
    await using h = await Harness.create(await freshDatabase(backend));
    await h.job("tick", { schedule: { second: "*" }, enabled: false });
    await h.job("idle", { cron: "0 12 15 6 *" });
    await h.start();
    await h.clock.set(at(20));
    await h.sql("UPDATE jm_jobs SET enabled = 1 WHERE id = 'tick'");
    await h.sql(
      "INSERT INTO jm_update_info (jobs_before_update, jobs_after_update) VALUES ('[]', '[]')",
    );
    await h.clock.set(at(22));
    await h.until(async () => (await h.markers()).every((m) => m.updated), "every marker applied");
    (await h.started("tick", at(22))).finish();
    await h.run("tick", at(22), "success");
    assertEquals(
      (await h.runs("tick")).map((r) => [r.scheduled_at - T0, r.status]),
      [[22000, "success"]],
    );
  });

  Deno.test(`daemon[${backend}]: a marker that commits after a newer one is still applied`, async () => {
    await using h = await Harness.create(await freshDatabase(backend));
    await h.job("idle", { cron: "0 12 15 6 *" });
    await h.start();
    // Two writers at once on MySQL: id 1000 commits and is applied first…
    await h.sql(
      "INSERT INTO jm_update_info (id, jobs_before_update, jobs_after_update) VALUES (1000, '[]', '[]')",
    );
    await h.clock.set(at(2));
    await applied(h, 1000);
    // …then the other writer's lower id commits, with its job.
    await h.sql("INSERT INTO jm_jobs (id, command, `second`) VALUES ('late', 'echo late', '*')");
    await h.sql(
      "INSERT INTO jm_update_info (id, jobs_before_update, jobs_after_update) VALUES (500, '[]', '[]')",
    );
    await h.clock.set(at(4));
    assertEquals(await applied(h, 500), "1 added, 0 changed, 0 removed, 1 unchanged");
    // Written without a time of change: owed the fires of its grace before the poll.
    await h.started("late", at(4));
  });

  Deno.test(`daemon[${backend}]: reload() (SIGHUP) applies at once; the start marks what is pending`, async () => {
    await using h = await Harness.create(await freshDatabase(backend), {
      settings: { "jobsmanager.reload_interval": 30 },
    });
    const before = await h.job("idle", { cron: "0 12 15 6 *" });
    await h.start({ early: (daemon) => daemon.reload() });
    assertEquals(await h.markers(), [{ id: before, updated: true }]);
    const marker = await h.job("hup", { schedule: { second: "*" } });
    // An early reload() (before the start) did nothing; this one applies
    // without a poll (the clock stays at T0, the next poll is at 30 s).
    h.daemon.reload();
    await applied(h, marker);
    await h.clock.set(at(1));
    await h.started("hup", at(1));
    assertEquals(h.count(RELOADED), 1, (await h.runs()).map(describeRun).join("\n"));
  });

  Deno.test(`daemon[${backend}]: reload() (SIGHUP) re-reads a job changed by hand without a marker`, async () => {
    await using h = await Harness.create(await freshDatabase(backend), {
      settings: { "jobsmanager.reload_interval": 30 },
    });
    await h.job("edited", { schedule: { second: "*" }, command: "echo v1" });
    await h.start();
    await h.sql("UPDATE jm_jobs SET command = 'echo v2' WHERE id = 'edited'");
    h.daemon.reload();
    await h.until(
      () => h.lines.find((l) => l.startsWith("reload: reload re-read every job")),
      "the re-read to be logged",
    );
    assertEquals(
      h.lines.filter((l) => l.startsWith("reload: reload re-read every job")).map((l) =>
        l.replace(/ in \d+ ms$/, "")
      ),
      ["reload: reload re-read every job (no marker pending): 0 added, 1 changed, 0 removed, 0 unchanged"],
    );
    await h.clock.set(at(1));
    assertEquals((await h.started("edited", at(1))).spec.command, "echo v2");
  });

  Deno.test(`daemon[${backend}]: a SIGHUP re-read that fails is made once the database answers, not dropped`, async () => {
    const db = await freshDatabase(backend);
    let refuse = false;
    await using h = await Harness.create(db, {
      settings: { "jobsmanager.reload_interval": 2 },
      store: storeWith(db, {
        jobsInChunks: (s) => (size) => {
          if (!refuse) return s.jobsInChunks(size);
          refuse = false;
          throw new DatabaseError("a refusal of the re-read", { unreachable: false });
        },
      }),
    });
    await h.job("edited", { schedule: { second: "50" }, command: "echo v1" });
    await h.start();
    await h.sql("UPDATE jm_jobs SET command = 'echo v2' WHERE id = 'edited'");
    refuse = true;
    h.daemon.reload();
    await h.until(
      () => h.line(/^reload failed, keeping the current timetable: .*a refusal of the re-read/),
      "the re-read to fail",
    );
    assertMatch(
      h.line(/^reload failed/)!,
      /every job is re-read \(as SIGHUP asked\) at a poll 30 s on/,
    );
    const failedAt = h.clock.now();
    // A poll 30 s on or later makes it, with no marker pending.
    await h.until(async () => {
      if (!h.line(/^reload re-read every job/)) await h.clock.advance(1000);
      return h.line(/^reload re-read every job/);
    }, "the re-read made again");
    assert(h.clock.now() - failedAt >= 30_000, `re-read ${h.clock.now() - failedAt} ms after`);
    await h.clock.set(T0 + 50_000);
    assertEquals((await h.started("edited", T0 + 50_000)).spec.command, "echo v2");
  });

  Deno.test(`daemon[${backend}]: a fire due during a long reload is claimed before it reads on`, async () => {
    const db = await freshDatabase(backend);
    const events: string[] = [];
    await using h = await Harness.create(db, {
      // The reload's first chunk read, the next second comes: its fire is due meanwhile.
      store: () => observed(db.open(), events, () => h.clock.pass(1000)),
    });
    await h.job("tick", { schedule: { second: "*" } });
    await h.start();
    await second(h, 1, "tick");
    h.runner.endAll();
    const many = Array.from(
      { length: 600 },
      (_, i) => buildJob(`many.${i}`, { command: "true", cron: "0 12 15 6 *" }, null, T0),
    );
    const { markerId } = await h.store.changeJobs(() => ({ put: many, remove: [] }));
    // The poll at 2 s reloads, in chunks of 500 jobs.
    await h.clock.set(at(2));
    assertEquals(await applied(h, markerId!), "600 added, 0 changed, 0 removed, 1 unchanged");
    await h.run("tick", at(3), "success");
    assertEquals(events, ["read 500", "claim tick", "claimed", "read 101"]);
  });
}
