/** The store contract of JobStore (store.ts): listJobs, jobsInChunks, getJob, changeJob. */
import { assert, assertEquals, assertRejects, assertThrows } from "./assert.ts";
import { type Job, jobProblem, validateJob } from "../src/domain/job.ts";
import { ConflictError, ValidationError } from "../src/errors.ts";
import type { Store } from "../src/store/store.ts";
import { markerRows, rawQuery } from "./helpers.ts";
import { contract, countRows, job } from "./store_contract.ts";

contract("listJobs", "an empty catalogue lists nothing", async ({ store }) => {
  assertEquals(await store.listJobs(), []);
});

contract(
  "listJobs",
  "every job, ordered by id whatever the order they came in",
  async ({ store }) => {
    for (const id of ["b", "a", "Z", "c.1"]) await store.changeJob(id, () => job(id));
    assertEquals((await store.listJobs()).map((j) => j.id), ["Z", "a", "b", "c.1"]);
  },
);

contract(
  "listJobs",
  "a row broken by hand still loads, so validation can name the fix",
  async ({ db, store }) => {
    await rawQuery(
      db,
      "INSERT INTO jm_jobs (id, command, minute, env, max_instances) VALUES ('broken', 'true', '*/10', 'not json', 0)",
    );
    const [broken] = await store.listJobs();
    assertEquals(broken.id, "broken");
    assertThrows(
      () => validateJob({ ...broken, max_instances: 1 }),
      ValidationError,
      `env: is text, not an object of NAME: "value" strings (fix the row`,
    );
    assertThrows(
      () => validateJob({ ...broken, env: {} }),
      ValidationError,
      "max_instances: 0 is not valid",
    );
  },
);

/** Every chunk `jobsInChunks(size)` yields, as ids; `between` runs before each next one. */
async function chunkIds(
  store: Store,
  size: number,
  between: (chunk: number) => Promise<void> = () => Promise.resolve(),
): Promise<string[][]> {
  const chunks: string[][] = [];
  for await (const jobs of store.jobsInChunks(size)) {
    chunks.push(jobs.map((j) => j.command === `echo ${j.id}` ? j.id : `${j.id}: ${j.command}`));
    await between(chunks.length);
  }
  return chunks;
}

contract(
  "jobsInChunks",
  "every job once, ordered by id, in chunks of the size",
  async ({ store }) => {
    assertEquals(await chunkIds(store, 2), []);
    for (const id of ["e", "b", "a", "Z", "c.1", "d"]) await store.changeJob(id, () => job(id));
    assertEquals(await chunkIds(store, 2), [["Z", "a"], ["b", "c.1"], ["d", "e"]]);
    assertEquals(await chunkIds(store, 4), [["Z", "a", "b", "c.1"], ["d", "e"]]);
    assertEquals(await chunkIds(store, 6), [["Z", "a", "b", "c.1", "d", "e"]]);
    assertEquals((await Array.fromAsync(store.jobsInChunks(5))).flat(), await store.listJobs());
  },
);

contract(
  "jobsInChunks",
  "a job there throughout is read once, as it was when its chunk was read",
  async ({ store }) => {
    for (const id of ["a", "b", "c", "d", "e", "f"]) await store.changeJob(id, () => job(id));
    const chunks = await chunkIds(store, 2, async (chunk) => {
      if (chunk !== 1) return;
      // Rows before the next chunks come and go: none of theirs moves, repeats or goes missing.
      await store.changeJob("a", () => null);
      await store.changeJob("0", () => job("0"));
      await store.changeJob("e", (e) => ({ ...e!, command: "echo changed" }));
    });
    assertEquals(chunks, [["a", "b"], ["c", "d"], ["e: echo changed", "f"]]);
  },
);

contract(
  "jobsInChunks",
  "a chunk asked for ahead fails unheard when no one reads it",
  async ({ db, store }) => {
    for (const id of ["a", "b", "c"]) await store.changeJob(id, () => job(id));
    for await (const jobs of store.jobsInChunks(1)) {
      assertEquals(jobs.map((j) => j.id), ["a"]);
      await rawQuery(db, "DROP TABLE jm_jobs");
      break;
    }
  },
);

contract("getJob", "an unknown id is null", async ({ store }) => {
  await store.changeJob("alpha", () => job("alpha"));
  assertEquals(await store.getJob("beta"), null);
});

contract("getJob", "ids are compared exactly, case included", async ({ store }) => {
  await store.changeJob("alpha", () => job("alpha"));
  assertEquals(await store.getJob("Alpha"), null);
  assertEquals((await store.getJob("alpha"))?.id, "alpha");
});

contract("getJob", "every field reads back as written", async ({ store }) => {
  const full = job("full", {
    command: "printf '%s' \"ünïcode ✓\"",
    second: "30",
    minute: "*/2",
    hour: "1-5",
    day: "1,15",
    month: "jan-jun",
    day_of_week: "mon-fri",
    timezone: "Asia/Hong_Kong",
    timeout: 0,
    enabled: false,
    max_instances: 3,
    coalesce: false,
    misfire_grace_time: 0,
    env: { B: "2", A: "x=y" },
    cwd: "/srv/jobs",
    description: "every field set",
    user: "www-data",
    created_at: 1_700_000_000_123,
    updated_at: 1_700_000_000_456,
  });
  const bare = job("bare");
  await store.changeJob("full", () => full);
  await store.changeJob("bare", () => bare);
  assertEquals(await store.getJob("full"), full);
  assertEquals(await store.getJob("bare"), bare);
});

contract(
  "getJob",
  "a row written by hand with the SQL defaults reads back",
  async ({ db, store }) => {
    await rawQuery(
      db,
      "INSERT INTO jm_jobs (id, command, minute) VALUES ('hand.made', 'true', '*/10')",
    );
    const hand = await store.getJob("hand.made");
    assert(hand !== null);
    const { created_at, updated_at, ...rest } = hand;
    assertEquals(rest, {
      id: "hand.made",
      command: "true",
      second: "*",
      minute: "*/10",
      hour: "*",
      day: "*",
      month: "*",
      day_of_week: "*",
      timezone: null,
      timeout: 60,
      enabled: true,
      max_instances: null,
      coalesce: null,
      misfire_grace_time: null,
      env: {},
      cwd: null,
      description: null,
      retries: 0,
      retry_delay: 10,
      retry_max_delay: 3600,
      retry_on: "failed,timeout,error,lost",
      retry_overlap: false,
      after_job: null,
      after_outcome: null,
      on_failure: null,
      on_failure_url: null,
      on_recovery: null,
      on_recovery_url: null,
      on_success: null,
      on_success_url: null,
      alert_after: null,
      user: null,
    });
    assert(Math.abs(created_at - Date.now()) < 60_000, `created_at ${created_at} is now, in ms`);
    assert(Math.abs(updated_at - Date.now()) < 60_000, `updated_at ${updated_at} is now, in ms`);
  },
);

contract(
  "changeJob",
  "a new job is inserted with one pending marker holding it",
  async ({ db, store }) => {
    const a = job("alpha");
    let seen: Job | null | undefined;
    const change = await store.changeJob("alpha", (current) => {
      seen = current;
      return a;
    });
    assertEquals(seen, null, "mutate sees no current job");
    assertEquals([change.before, change.after], [null, a]);
    assert(change.markerId !== null);
    assertEquals(await store.getJob("alpha"), a);
    assertEquals(
      (await markerRows(db)).map((
        m,
      ) => [m.id, m.updated, m.jobs_before_update, m.jobs_after_update]),
      [[change.markerId, false, [], [a]]],
    );
  },
);

contract(
  "changeJob",
  "an update writes the new state and a marker with both snapshots",
  async ({ db, store }) => {
    const a = job("alpha");
    await store.changeJob("alpha", () => a);
    const changed = {
      ...a,
      command: "echo changed",
      env: { B: "2", A: "1" },
      updated_at: a.updated_at + 5,
    };
    let seen: Job | null | undefined;
    const change = await store.changeJob("alpha", (current) => {
      seen = current;
      return changed;
    });
    assertEquals(seen, a, "mutate sees the stored job");
    assertEquals([change.before, change.after], [a, changed]);
    assertEquals(await store.getJob("alpha"), changed);
    const [, marker] = await markerRows(db);
    assertEquals(
      [marker.id, marker.updated, marker.jobs_before_update, marker.jobs_after_update],
      [change.markerId, false, [a], [changed]],
    );
  },
);

contract(
  "changeJob",
  "a change stamped no later than the stored job is stored 1 ms after it",
  async ({ store }) => {
    const a = job("alpha");
    await store.changeJob("alpha", () => a);
    // Two writers whose clocks read the same ms, or the later one's earlier.
    for (const at of [a.updated_at, a.updated_at - 1_000]) {
      const stored = (await store.getJob("alpha"))!;
      const change = await store.changeJob("alpha", (cur) => ({
        ...cur!,
        command: `echo ${at}`,
        updated_at: at,
      }));
      assertEquals(change.after?.updated_at, stored.updated_at + 1);
      assertEquals((await store.getJob("alpha"))?.updated_at, stored.updated_at + 1);
    }
  },
);

contract(
  "changeJobs",
  "a job replaced with a time no later than the stored one is stored 1 ms after it",
  async ({ store }) => {
    const a = job("alpha");
    await store.changeJob("alpha", () => a);
    const change = await store.changeJobs(() => ({
      put: [{ ...a, command: "echo changed" }, job("beta", { updated_at: 7 })],
      remove: [],
    }));
    assertEquals(change.after.map((j) => [j.id, j.updated_at]), [
      ["alpha", a.updated_at + 1],
      ["beta", 7],
    ]);
    assertEquals((await store.getJob("alpha"))?.updated_at, a.updated_at + 1);
  },
);

contract("changeJob", "a change of env alone is a change", async ({ store }) => {
  await store.changeJob("alpha", () => job("alpha", { env: { A: "1" } }));
  const change = await store.changeJob("alpha", (cur) => ({ ...cur!, env: { A: "2" } }));
  assert(change.markerId !== null);
  assertEquals((await store.getJob("alpha"))?.env, { A: "2" });
});

contract(
  "changeJob",
  "returning null deletes the job, with a marker holding it",
  async ({ db, store }) => {
    const a = job("alpha");
    await store.changeJob("alpha", () => a);
    const change = await store.changeJob("alpha", () => null);
    assertEquals([change.before, change.after], [a, null]);
    assertEquals(await store.getJob("alpha"), null);
    const [, marker] = await markerRows(db);
    assertEquals(
      [marker.id, marker.jobs_before_update, marker.jobs_after_update],
      [change.markerId, [a], []],
    );
  },
);

contract(
  "changeJob",
  "deleting a job that does not exist writes nothing",
  async ({ db, store }) => {
    const change = await store.changeJob("ghost", () => null);
    assertEquals(change, { before: null, after: null, markerId: null });
    assertEquals(await countRows(db, "jm_update_info"), 0);
  },
);

contract(
  "changeJob",
  "an unchanged job writes nothing and inserts no marker",
  async ({ db, store }) => {
    const a = job("same");
    await store.changeJob("same", () => a);
    // updated_at alone is no change: `job update` with the same values must not reload.
    const change = await store.changeJob("same", (cur) => ({ ...cur!, updated_at: 42 }));
    assertEquals(change, { before: a, after: a, markerId: null });
    assertEquals(await store.getJob("same"), a);
    assertEquals(await countRows(db, "jm_update_info"), 1);
  },
);

contract(
  "changeJob",
  "a mutation that throws writes neither job nor marker",
  async ({ db, store }) => {
    const a = job("alpha");
    await store.changeJob("alpha", () => a);
    const refuse = () => {
      throw new Error("refused");
    };
    await assertRejects(() => store.changeJob("alpha", refuse), Error, "refused");
    await assertRejects(() => store.changeJob("beta", refuse), Error, "refused");
    assertEquals(await store.listJobs(), [a]);
    assertEquals(await countRows(db, "jm_update_info"), 1);
  },
);

contract("changeJob", "a failing marker insert rolls the job write back", async ({ db, store }) => {
  const a = job("alpha");
  await store.changeJob("alpha", () => a);
  await rawQuery(db, "ALTER TABLE jm_update_info RENAME TO jm_update_info_away");
  try {
    await assertRejects(() => store.changeJob("beta", () => job("beta")));
    await assertRejects(() => store.changeJob("alpha", (cur) => ({ ...cur!, command: "new" })));
    await assertRejects(() => store.changeJob("alpha", () => null));
  } finally {
    await rawQuery(db, "ALTER TABLE jm_update_info_away RENAME TO jm_update_info");
  }
  assertEquals(await store.listJobs(), [a]);
  assertEquals(await countRows(db, "jm_update_info"), 1);
});

contract("changeJob", "two stores adding the same id at once: exactly one wins", async ({ db }) => {
  const [s1, s2] = [db.open(), db.open()];
  try {
    const add = (store: Store) =>
      store.changeJob("race", (cur) => {
        if (cur) throw new Error("exists");
        return job("race");
      });
    const results = await Promise.allSettled([add(s1), add(s2)]);
    assertEquals(results.map((r) => r.status).sort(), ["fulfilled", "rejected"]);
    const lost = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    assertEquals(lost.reason.message, "exists", "the loser saw the winner's row");
    assertEquals(await countRows(db, "jm_jobs"), 1);
    assertEquals(await countRows(db, "jm_update_info"), 1);
  } finally {
    await s1.close();
    await s2.close();
  }
});

contract(
  "getJob",
  "retry and follow-up fields read back, a job without a schedule included (migration 6)",
  async ({ store }) => {
    await store.changeJob("up", () => job("up"));
    const follower = job("follower", {
      second: "",
      minute: "",
      hour: "",
      day: "",
      month: "",
      day_of_week: "",
      retries: 3,
      retry_delay: 5,
      retry_max_delay: 60,
      retry_on: "failed,killed",
      retry_overlap: true,
      after_job: "up",
      after_outcome: "always",
    });
    await store.changeJob("follower", () => follower);
    assertEquals(await store.getJob("follower"), follower);
    assertEquals((await store.getJob("up"))?.retries, 0);
  },
);

/** Job `id`'s row, read as listJobs reads it, and what validation says of it. */
async function problemOf(store: Store, id: string): Promise<string | null> {
  const found = (await store.listJobs()).find((j) => j.id === id);
  assert(found !== undefined, `job '${id}' is listed`);
  return jobProblem(found);
}

contract(
  "listJobs",
  "an integer beyond 2^53 loads, and validation names its column and the fix",
  async ({ db, store }) => {
    await store.changeJob("ok", () => job("ok"));
    await store.changeJob("far", () => job("far"));
    await rawQuery(db, "UPDATE jm_jobs SET updated_at = 9223372036854775000 WHERE id = 'far'");
    assertEquals(await problemOf(store, "ok"), null);
    assertEquals(
      await problemOf(store, "far"),
      `updated_at: "9223372036854775000" is not a time (allowed: ms since the epoch, a whole number from 0 to 8640000000000000); fix the row, e.g. UPDATE jm_jobs SET updated_at = created_at WHERE id = 'far'`,
    );
    await rawQuery(db, "UPDATE jm_jobs SET created_at = -9223372036854775000 WHERE id = 'far'");
    assertEquals(
      await problemOf(store, "far"),
      `created_at: "-9223372036854775000" is not a time (allowed: ms since the epoch, a whole number from 0 to 8640000000000000); fix the row, e.g. UPDATE jm_jobs SET created_at = 0 WHERE id = 'far'`,
    );
    assert(await store.getJob("far") !== null);
  },
);

contract(
  "listJobs",
  "a user written as '' in SQL reads as none, the service's own user, as --user '' sets it",
  async ({ db, store }) => {
    await store.changeJob("u", () => job("u"));
    await rawQuery(db, "UPDATE jm_jobs SET `user` = '' WHERE id = 'u'");
    assertEquals((await store.getJob("u"))?.user, null);
    assertEquals(await problemOf(store, "u"), null);
    await rawQuery(db, "UPDATE jm_jobs SET `user` = 'john.doe@corp' WHERE id = 'u'");
    assertEquals((await store.getJob("u"))?.user, "john.doe@corp");
  },
);

contract(
  "listJobs",
  "flags written as neither 0 nor 1 are named, not guessed",
  async ({ backend, db, store }) => {
    if (backend !== "sqlite") return; // MySQL refuses 'false' in a TINYINT column.
    await store.changeJob("t", () => job("t"));
    await rawQuery(db, "UPDATE jm_jobs SET enabled = 'false' WHERE id = 't'");
    assertEquals(
      await problemOf(store, "t"),
      `enabled: "false" is not 0 or 1; fix the row, e.g. UPDATE jm_jobs SET enabled = 0 WHERE id = 't'`,
    );
    await rawQuery(db, "UPDATE jm_jobs SET enabled = '', coalesce = 'false' WHERE id = 't'");
    assertEquals(
      await problemOf(store, "t"),
      `enabled: "" is not 0 or 1; fix the row, e.g. UPDATE jm_jobs SET enabled = 1 WHERE id = 't' (1 for true, 0 for false)`,
    );
    await rawQuery(db, "UPDATE jm_jobs SET enabled = 1 WHERE id = 't'");
    assertEquals(
      await problemOf(store, "t"),
      `coalesce: "false" is not 0 or 1, or NULL for the service default; fix the row, e.g. UPDATE jm_jobs SET coalesce = 0 WHERE id = 't'`,
    );
    await rawQuery(db, "UPDATE jm_jobs SET coalesce = 0, timeout = '' WHERE id = 't'");
    assertEquals(
      await problemOf(store, "t"),
      `timeout: "" is not valid (allowed: a whole number from 0 to 31536000)`,
    );
  },
);

contract(
  "listJobs",
  "a BLOB of UTF-8 text reads as that text; other bytes are named",
  async ({ backend, db, store }) => {
    if (backend !== "sqlite") return; // MySQL's TEXT columns hold text.
    await store.changeJob("b", () => job("b"));
    await rawQuery(
      db,
      "UPDATE jm_jobs SET command = CAST('echo héllo' AS BLOB), second = X'30', enabled = X'30' WHERE id = 'b'",
    );
    const [read] = await store.listJobs();
    assertEquals([read.command, read.second, read.enabled], ["echo héllo", "0", false]);
    assertEquals(jobProblem(read), null);
    await rawQuery(db, "UPDATE jm_jobs SET command = X'FF00' WHERE id = 'b'");
    assertEquals(
      await problemOf(store, "b"),
      "command: is a BLOB whose bytes are not UTF-8 text; fix the row, writing it as text (UPDATE jm_jobs SET command = '…' WHERE id = 'b')",
    );
  },
);

contract(
  "listJobs",
  "a row that export would refuse (a schedule on no date, a reserved variable) is invalid when read",
  async ({ db, store }) => {
    await store.changeJob("feb", () => job("feb"));
    await store.changeJob("spoof", () => job("spoof"));
    await rawQuery(db, "UPDATE jm_jobs SET day = '31', month = '2' WHERE id = 'feb'");
    await rawQuery(
      db,
      `UPDATE jm_jobs SET env = '{"JM_JOB_ID":"spoof","A":"1"}' WHERE id = 'spoof'`,
    );
    assertEquals(
      await problemOf(store, "feb"),
      "schedule: day '31', month '2' and day_of_week '*' never fall on one date, so the job would never fire; check those fields",
    );
    assertEquals(
      await problemOf(store, "spoof"),
      `env: JM_JOB_ID is set by jobsmanager for every run and cannot be overridden; remove it (fix the row, e.g. UPDATE jm_jobs SET env = JSON_REMOVE(env, '$.JM_JOB_ID') WHERE id = 'spoof')`,
    );
  },
);

contract(
  "changeJob",
  "an id with trailing spaces written in SQL is named where the database takes it for the bare id",
  async ({ backend, db, store }) => {
    await rawQuery(db, "INSERT INTO jm_jobs (id, command, minute) VALUES ('zz ', 'true', '*/10')");
    assertEquals(await store.getJob("zz"), null);
    if (backend === "sqlite") {
      // SQLite compares ids exactly: they are two jobs.
      await store.changeJob("zz", () => job("zz"));
      assertEquals((await store.listJobs()).map((j) => j.id), ["zz", "zz "]);
      return;
    }
    const message =
      "job 'zz ' (its id ends in spaces, written in SQL) stands for 'zz': the database compares ids ignoring trailing spaces; remove it (DELETE FROM jm_jobs WHERE id = 'zz ') or give it another id (UPDATE jm_jobs SET id = '…' WHERE id = 'zz '), then run this again";
    await assertRejects(() => store.changeJob("zz", () => job("zz")), ConflictError, message);
    await assertRejects(
      () => store.changeJobs(() => ({ put: [job("zz")], remove: [] })),
      ConflictError,
      message,
    );
    await rawQuery(db, "DELETE FROM jm_jobs WHERE id = 'zz '");
    await store.changeJob("zz", () => job("zz"));
    assertEquals((await store.listJobs()).map((j) => j.id), ["zz"]);
  },
);
