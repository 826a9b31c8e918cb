/**
 * The reads a service makes of jm_runs as it runs go by an index to each
 * job's own rows, whatever the table holds: on a database of 5 M runs a
 * job's last success was read from every success of every job (SQLite,
 * 1.4 s a watched job, on the scheduler's thread) or from every run of
 * the job (MariaDB, 55-100 s for 5,000 watched jobs), and a node taking
 * jobs over read the whole table for their last fires (2-3 s of fires
 * held). Checked by the plan each database makes, not by timing.
 */
import { assert, assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase, mysqlTest, rawQuery, type TestDatabase } from "./helpers.ts";
import { silenceCandidatesSql } from "../src/store/sql_notify.ts";
import { PROFILES } from "../src/store/driver.ts";
import { FIRES_AHEAD_SQL, lastFiresSql, latestRunsSql } from "../src/store/sql_store.ts";
import { buildJob } from "../src/domain/job.ts";

/** What the database would read for `sql`: SQLite's plan lines, MariaDB's rows as JSON. */
async function planOf(db: TestDatabase, sql: string, params: unknown[]): Promise<string[]> {
  if (db.backend === "sqlite") {
    return (await rawQuery(db, `EXPLAIN QUERY PLAN ${sql}`, params)).map((r) => String(r.detail));
  }
  return (await rawQuery(db, `EXPLAIN ${sql}`, params)).map((r) =>
    JSON.stringify({ table: r.table, type: r.type, key: r.key, Extra: r.Extra })
  );
}

/** Two jobs, one watched, with runs of every kind, so that no plan is of an empty table. */
async function seed(db: TestDatabase): Promise<void> {
  const store = db.open();
  try {
    await store.migrate();
    for (const id of ["a", "b"]) {
      await store.changeJob(id, () => ({
        ...buildJob(id, { command: "true", cron: "* * * * *", alert_after: "1h" }, null, 0),
      }));
    }
    const runs = ["a", "b"].flatMap((job) =>
      [1, 2, 3].map((i) => ({
        job_id: job,
        scheduled_at: i * 60_000,
        status: "running" as const,
        trigger: "schedule" as const,
        node_id: "n1",
      }))
    );
    const ids = await store.claimRuns(runs);
    await store.updateRuns(
      ids.map((id, i) => ({
        id: id!,
        update: { status: i % 3 === 0 ? "failed" : "success", exit_code: 0 },
      })),
    );
  } finally {
    await store.close();
  }
}

for (const backend of BACKENDS) {
  Deno.test(`store[${backend}]: a job's last success and last fire are read from its own rows by index`, async () => {
    await using db = await freshDatabase(backend);
    await seed(db);
    const reads: [string, string, unknown[], RegExp][] = [
      ["last success", silenceCandidatesSql(PROFILES[backend]), [], /jm_runs_job\b/],
      // The unique key (job_id, scheduled_at, trigger): MySQL names it job_id.
      [
        "last fires",
        lastFiresSql(true),
        [Date.now()],
        backend === "sqlite" ? /sqlite_autoindex_jm_runs_1 / : /^job_id$/,
      ],
      ["fires ahead", FIRES_AHEAD_SQL, [Date.now(), 100], /jm_runs_scheduled_at/],
    ];
    for (const [what, sql, params, index] of reads) {
      const plan = await planOf(db, sql, params);
      const shown = `${what}: ${plan.join(" | ")}`;
      // Nothing read of jm_runs is sorted after (a silence check sorts a job's few notifications).
      if (backend === "sqlite") {
        assert(
          !plan.some((line, i) =>
            /TEMP B-TREE/.test(line) && i > 0 && /(jm_runs|\br) USING/.test(plan[i - 1])
          ),
          shown,
        );
      }
      const onRuns = plan.filter((line) =>
        /jm_runs\b|\br\b|"table":"r"|"table":"jm_runs"/.test(line)
      );
      assert(onRuns.length > 0, shown);
      for (const line of onRuns) {
        if (backend === "sqlite") {
          // Searched by an index, never scanned whole, nor sorted.
          assert(/^SEARCH .* USING (COVERING )?INDEX /.test(line), shown);
          assert(index.test(line), shown);
        } else {
          const row = JSON.parse(line);
          assert(row.type !== "ALL" && row.type !== "index", shown);
          assert(index.test(String(row.key)), shown);
          assert(!/filesort/i.test(String(row.Extra)), shown);
        }
      }
    }
  });
}

for (const backend of BACKENDS) {
  // What the dashboard's job list asks every 5 s: on SQLite, on the service's own thread.
  Deno.test(`store[${backend}]: each job's latest run is found by a look into its own rows, not by reading every run`, async () => {
    await using db = await freshDatabase(backend);
    await seed(db);
    const plan = await planOf(db, latestRunsSql(PROFILES[backend]), []);
    const shown = plan.join("\n");
    if (backend === "sqlite") {
      assert(!plan.some((line) => /^SCAN (jm_runs|r)\b/.test(line)), shown);
      assert(plan.some((line) => /^SEARCH r USING COVERING INDEX jm_runs_job/.test(line)), shown);
    } else {
      const onRuns = plan.map((line) => JSON.parse(line)).filter((row) =>
        row.table === "r" || row.table === "jm_runs"
      );
      assert(onRuns.length > 0 && onRuns.every((row) => row.type !== "ALL"), shown);
    }
  });
}

// MariaDB plans by statistics, sampled or stale after a bulk load: with jm_runs_job judged less
// selective than the unique key on the same first column, it read and sorted every run of each
// watched job (atk210: 3-6 s for 2,000 jobs of 500 runs, every 5 s). Statistics of this test's own
// database are made to say so (MariaDB drops them with it).
mysqlTest(
  "store[mysql]: a watched job's last success is read by jm_runs_job whatever the statistics say",
  async () => {
    await using db = await freshDatabase("mysql");
    await seed(db);
    await rawQuery(db, "ANALYZE TABLE jm_runs PERSISTENT FOR ALL");
    await rawQuery(
      db,
      "UPDATE mysql.index_stats SET avg_frequency = 5000 WHERE db_name = DATABASE() AND table_name = 'jm_runs' AND index_name = 'jm_runs_job' AND prefix_arity = 1",
    );
    await rawQuery(db, "FLUSH TABLES jm_runs");
    const plan = await planOf(db, silenceCandidatesSql(PROFILES.mysql), []);
    const [runs] = plan.map((line) => JSON.parse(line)).filter((row) => row.table === "r");
    assertEquals([runs.key, /filesort/i.test(runs.Extra)], ["jm_runs_job", false], plan.join("\n"));
  },
);
