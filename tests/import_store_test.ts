/**
 * The import path against real databases: `JobStore.changeJobs`, the
 * original's table read from this database, and plan vs apply. On every
 * backend.
 */
import { assert, assertEquals, assertMatch, assertRejects } from "./assert.ts";
import { buildJob, type Job } from "../src/domain/job.ts";
import { NotFoundError, RuntimeError, UsageError } from "../src/errors.ts";
import { readApschedulerTable } from "../src/store/legacy.ts";
import type { Store } from "../src/store/store.ts";
import type { ServiceDefaults } from "../src/app/import/apscheduler.ts";
import { apschedulerCandidates, importJobs } from "../src/app/import/sources.ts";
import { countStatuses, NAMED_ONLY, namedOnly } from "../src/app/import/plan.ts";
import { candidatesFromCrontab, crontabScope } from "../src/app/import/crontab_file.ts";
import { BACKENDS, freshDatabase, markerRows, rawQuery, type TestDatabase } from "./helpers.ts";
import {
  insertLegacyRow,
  loadSeed,
  SEED_IDS,
  seedBlob,
  seedJob,
  seedRows,
} from "./fixtures/seed.ts";

const TABLE = "jm_jobs_apscheduler";
const DEFAULTS: ServiceDefaults = {
  zone: { name: "Asia/Hong_Kong", source: "configured" },
  coalesce: false,
};

function job(id: string, extra: Partial<Job> = {}): Job {
  return { ...buildJob(id, { command: `echo ${id}`, cron: "*/5 * * * *" }, null, 1_000), ...extra };
}

async function counts(db: TestDatabase): Promise<{ jobs: number; markers: number }> {
  const [j] = await rawQuery(db, "SELECT COUNT(*) AS n FROM jm_jobs");
  const [m] = await rawQuery(db, "SELECT COUNT(*) AS n FROM jm_update_info");
  return { jobs: Number(j.n), markers: Number(m.n) };
}

async function importSeed(
  store: Store,
  db: TestDatabase,
  apply: boolean,
  now = 5_000,
  scope = NAMED_ONLY,
) {
  const candidates = await apschedulerCandidates(
    { target: db.target, table: TABLE },
    DEFAULTS,
    now,
  );
  return await importJobs(store, candidates, apply, scope);
}

for (const backend of BACKENDS) {
  Deno.test(`import store[${backend}]`, async (t) => {
    await using db = await freshDatabase(backend);
    const store = db.open();
    try {
      await store.migrate();

      await t.step("changeJobs writes many jobs with one marker, or nothing", async () => {
        const first = await store.changeJobs(() => ({ put: [job("a"), job("b")], remove: [] }));
        assertEquals(await counts(db), { jobs: 2, markers: 1 });
        assertEquals(first.after.map((j) => j.id), ["a", "b"]);
        const [marker] = await markerRows(db);
        assertEquals([
          marker.id,
          marker.jobs_before_update,
          (marker.jobs_after_update as []).length,
        ], [
          first.markerId,
          [],
          2,
        ]);
        const seen: string[][] = [];
        const second = await store.changeJobs((current) => {
          seen.push(current.map((j) => j.id));
          return { put: [job("a"), job("b", { command: "echo changed" })], remove: ["a", "zz"] };
        });
        assertEquals(seen, [["a", "b"]]);
        assertEquals(second.before.map((j) => j.id), ["b", "a"]);
        assertEquals(second.after.map((j) => j.command), ["echo changed"]);
        assertEquals(await counts(db), { jobs: 1, markers: 2 });
        const same = await store.changeJobs((current) => ({ put: current, remove: [] }));
        assertEquals([same.markerId, await counts(db)], [null, { jobs: 1, markers: 2 }]);
        // The second "c" breaks the primary key after the first was inserted.
        await assertRejects(() =>
          store.changeJobs(() => ({ put: [job("c"), job("c")], remove: ["b"] }))
        );
        await assertRejects(() =>
          store.changeJobs(() => {
            throw new UsageError("no");
          })
        );
        assertEquals(await counts(db), { jobs: 1, markers: 2 });
        await store.changeJobs((current) => ({ put: [], remove: current.map((j) => j.id) }));
      });

      await t.step(
        "changeJobs: hundreds of jobs added, changed and removed, each one",
        async () => {
          const ids = Array.from({ length: 250 }, (_, i) => `many.${String(i).padStart(3, "0")}`);
          const { markers } = await counts(db);
          // Its marker's snapshots, 150 kB, are kept whole.
          const unicode = "echo 'héllo ✓ 🚀'";
          const added = await store.changeJobs(() => ({
            put: ids.map((id, i) => job(id, i === 7 ? { command: unicode } : {})),
            remove: [],
          }));
          assertEquals(await counts(db), { jobs: 250, markers: markers + 1 });
          const marker = (await markerRows(db)).find((m) => m.id === added.markerId)!;
          const snapshot = marker.jobs_after_update as Job[];
          assert(JSON.stringify(snapshot).length > 65_536, "a marker of 250 jobs is long");
          assertEquals([snapshot.length, snapshot[7].command], [250, unicode]);
          const change = await store.changeJobs(() => ({
            put: ids.slice(0, 120).map((id) => job(id, { command: `echo ${id} again` })),
            remove: ids.slice(120),
          }));
          assertEquals([change.before.length, change.after.length], [250, 120]);
          const kept = await store.listJobs();
          assertEquals(
            kept.map((j) => [j.id, j.command]),
            ids.slice(0, 120).map((id) => [id, `echo ${id} again`]),
          );
          await store.changeJobs((current) => ({ put: [], remove: current.map((j) => j.id) }));
          assertEquals(await counts(db), { jobs: 0, markers: markers + 3 });
        },
      );

      await t.step(
        "changeJobs: a change whose snapshots would outgrow a 16 MiB packet is written, its marker naming the jobs",
        async () => {
          // 150 commands of 60,000 characters, before and after: 18 MB of snapshots.
          const ids = Array.from({ length: 150 }, (_, i) => `big.${String(i).padStart(3, "0")}`);
          const long = (c: string) => `echo ${c.repeat(60_000)}`;
          await store.changeJobs(() => ({
            put: ids.map((id) => job(id, { command: long("a") })),
            remove: [],
          }));
          const changed = await store.changeJobs(() => ({
            put: ids.map((id) => job(id, { command: long("b") })),
            remove: [],
          }));
          const marker = (await markerRows(db)).find((m) => m.id === changed.markerId)!;
          const named = ids.map((id) => ({ id }));
          assertEquals([marker.jobs_before_update, marker.jobs_after_update], [named, named]);
          assertEquals((await store.getJob("big.149"))?.command, long("b"));
          await store.changeJobs((current) => ({ put: [], remove: current.map((j) => j.id) }));
        },
      );

      await t.step(
        "changeJobs: jobs of long texts, more than a 16 MiB packet at 100 to a statement",
        async () => {
          // A quote is escaped twice as long: 100 jobs of 120,000 quotes are 24 MB of SQL.
          const quotes = "'".repeat(60_000);
          const ids = Array.from({ length: 100 }, (_, i) => `long.${String(i).padStart(3, "0")}`);
          await store.changeJobs(() => ({
            put: ids.map((id) => job(id, { command: `echo ${quotes}`, description: quotes })),
            remove: [],
          }));
          const stored = await store.listJobs();
          assertEquals(stored.map((j) => j.id), ids);
          assert(stored.every((j) => j.command === `echo ${quotes}` && j.description === quotes));
          await store.changeJobs((current) => ({ put: [], remove: current.map((j) => j.id) }));
        },
      );

      await t.step("the original's table is read as it is, in id order", async () => {
        await loadSeed(db, TABLE);
        const rows = await readApschedulerTable(db.target, TABLE);
        assertEquals(rows, seedRows().toSorted((a, b) => a.id < b.id ? -1 : 1));
        assertEquals(rows.find((r) => r.id === "paused")!.next_run_time, null);
        assertEquals(rows.find((r) => r.id === "backup")!.next_run_time, 1796063400);
      });

      await t.step("a missing or foreign table, or a bad name, is refused", async () => {
        const missing = await assertRejects(() => readApschedulerTable(db.target, "nope"));
        assert(missing instanceof NotFoundError);
        assertMatch(
          missing.message,
          /^table nope does not exist in .*; name the original's table with --table/,
        );
        const foreign = await assertRejects(() => readApschedulerTable(db.target, "jm_runs"));
        assert(foreign instanceof RuntimeError);
        assertMatch(
          foreign.message,
          /is not an APScheduler job table \(it has no next_run_time or job_state column\); name the original's table with --table/,
        );
        // After an import, --from-database on the original's database reads jm_jobs by default,
        // which is then jobsmanager's own.
        const ours = await assertRejects(() => readApschedulerTable(db.target, "jm_jobs"));
        assert(ours instanceof RuntimeError);
        assertEquals(
          ours.message,
          `table jm_jobs in ${store.description} is not an APScheduler job table (it has no next_run_time or job_state column): it is jobsmanager's own jobs table; name the original's table with --table (after the rename jobsmanager asks for it is jm_jobs_apscheduler)`,
        );
        const bad = await assertRejects(() =>
          readApschedulerTable(db.target, "x; DROP TABLE jm_jobs")
        );
        assert(bad instanceof UsageError);
      });

      await t.step("without apply: every job new, nothing written", async () => {
        const before = await counts(db);
        const preview = await importSeed(store, db, false);
        assertEquals(preview.markerId, null);
        assertEquals(
          preview.entries.map((e) => [e.id, e.status]),
          SEED_IDS.toSorted().map((id) => [id, "new"]),
        );
        assertEquals(await counts(db), before);
      });

      await t.step("apply: every field of every job, one marker", async () => {
        const markers = (await counts(db)).markers;
        const applied = await importSeed(store, db, true);
        assert(applied.markerId !== null);
        assertEquals(await counts(db), { jobs: 8, markers: markers + 1 });
        for (const id of SEED_IDS) assertEquals(await store.getJob(id), seedJob(id, 5_000), id);
        const marker = (await markerRows(db)).find((m) => m.id === applied.markerId)!;
        assertEquals((marker.jobs_after_update as []).length, 8);
      });

      await t.step("re-import: every job the same, nothing written", async () => {
        const before = await counts(db);
        const again = await importSeed(store, db, true, 9_000);
        assertEquals(countStatuses(again.entries).same, 8);
        assertEquals([again.markerId, await counts(db)], [null, before]);
      });

      await t.step("a job changed since: kept, and with update put back", async () => {
        await store.changeJob("backup", (j) => ({ ...j!, timeout: 5, updated_at: 6_000 }));
        const kept = await importSeed(store, db, true, 9_000);
        const backup = kept.entries.find((e) => e.id === "backup")!;
        assertEquals([backup.status, backup.changes, kept.markerId], [
          "kept",
          ["timeout: 5 → 600"],
          null,
        ]);
        assertEquals((await store.getJob("backup"))!.timeout, 5);
        const preview = await importSeed(store, db, false, 9_000, namedOnly(true));
        const differs = preview.entries.find((e) => e.id === "backup")!;
        assertEquals([differs.status, differs.changes], ["differs", ["timeout: 5 → 600"]]);
        const applied = await importSeed(store, db, true, 9_000, namedOnly(true));
        assertEquals(countStatuses(applied.entries), {
          new: 0,
          same: 7,
          differs: 1,
          kept: 0,
          remove: 0,
          stale: 0,
          "cannot import": 0,
        });
        assertEquals(await store.getJob("backup"), {
          ...seedJob("backup", 5_000),
          updated_at: 9_000,
        });
      });

      await t.step(
        "a truncated blob, a foreign class and no blob at all: a line each, nothing written",
        async () => {
          const blob = seedBlob("backup");
          const hostile = Uint8Array.from(
            String.fromCharCode(...blob).replace(
              "\x8c\x07logging\x94\x8c\x09getLogger",
              "\x8c\x02os\x94\x8c\x06system",
            ),
            (c) => c.charCodeAt(0),
          );
          await insertLegacyRow(db, TABLE, {
            id: "truncated",
            next_run_time: 1,
            job_state: blob.slice(0, 50),
          });
          await insertLegacyRow(db, TABLE, { id: "hostile", next_run_time: 1, job_state: hostile });
          // A BLOB column of MySQL hands any value back as bytes: only NULL is no blob there.
          if (db.backend === "mysql") {
            await rawQuery(db, `ALTER TABLE \`${TABLE}\` MODIFY job_state BLOB NULL`);
          }
          const noBlob = db.backend === "mysql" ? null : "a text";
          await insertLegacyRow(db, TABLE, { id: "no-blob", next_run_time: 1, job_state: noBlob });
          const before = await counts(db);
          const applied = await importSeed(store, db, true, 5_000);
          const refused = applied.entries.filter((e) => e.status === "cannot import");
          assertEquals(refused.map((e) => [e.id, e.problem]), [
            [
              "hostile",
              "its job_state cannot be decoded: byte 996: names os.system, which is not part of an APScheduler 3 job state; refused without running anything",
            ],
            [
              "no-blob",
              `its job_state holds ${
                db.backend === "mysql" ? "NULL" : "text"
              }, not a pickled job state (a BLOB)`,
            ],
            [
              "truncated",
              "its job_state cannot be decoded: byte 49: truncated: needs 21 more bytes, the blob ends at 50",
            ],
          ]);
          assertEquals([applied.markerId, await counts(db)], [null, before]);
        },
      );

      await t.step("an empty table: no candidates, nothing written", async () => {
        await loadSeed(db, "jm_jobs_empty", { rows: false });
        const before = await counts(db);
        const candidates = await apschedulerCandidates(
          { target: db.target, table: "jm_jobs_empty" },
          DEFAULTS,
          1,
        );
        assertEquals(candidates, []);
        assertEquals((await importJobs(store, candidates, true)).markerId, null);
        assertEquals(await counts(db), before);
      });

      await t.step(
        "a HOME= line removed: the cwd it made goes with --update, one set since stays, and the plan says which",
        async () => {
          const UTC = { system: "UTC", service: { name: "UTC", source: "configured" as const } };
          const crontab = (text: string) => {
            const source = { text, name: "home", system: false, owner: null };
            return candidatesFromCrontab(source, UTC, 7_000);
          };
          const update = crontabScope(
            { text: "", name: "home", system: false, owner: null },
            false,
            true,
          );
          const ids = ["home.run-sh", "home.other-sh"];
          await importJobs(
            store,
            crontab("HOME=/srv/app\n0 1 * * * ./run.sh\n0 2 * * * ./other.sh\n"),
            true,
            update,
          );
          await store.changeJob(ids[1], (j) => ({ ...j!, cwd: "/opt/other", updated_at: 7_500 }));
          const removed = crontab("0 1 * * * ./run.sh\n0 2 * * * ./other.sh\n");
          const applied = await importJobs(store, removed, true, update);
          const [run, other] = ids.map((id) => applied.entries.find((e) => e.id === id)!);
          assertEquals([run.status, run.changes], [
            "differs",
            ["env: HOME removed", 'cwd: "/srv/app" → (default)'],
          ]);
          assertEquals([other.status, other.changes], ["differs", ["env: HOME removed"]]);
          const cwds = await Promise.all(ids.map(async (id) => (await store.getJob(id))!.cwd));
          assertEquals(cwds, [null, "/opt/other"]);
          const ranIn = (notes: string[]) => notes.filter((n) => n.startsWith("cron ran it in"));
          assertEquals(ranIn(run.notes), [
            "cron ran it in the crontab owner's home directory; jobsmanager runs it in the service's working directory (`job update --cwd DIR` sets another)",
          ]);
          assertEquals(ranIn(other.notes), [
            "cron ran it in the crontab owner's home directory; jobsmanager runs it in /opt/other, the working directory stored (`job update --cwd ''` runs it in the service's)",
          ]);
          await store.changeJobs(() => ({ put: [], remove: ids }));
        },
      );
    } finally {
      await store.close();
    }
  });
}
