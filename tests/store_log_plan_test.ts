/**
 * The log filters by job and by run (`logs --job/--run`, `GET /logs?job=&run=`,
 * and their follows) go by an index to the matching lines: on a database
 * of 10-20 M log lines they read every line's context, 9.6-21.9 s for
 * `logs --job` and 40-76 s for `GET /logs?job=`. Checked by the plan each
 * database makes, not by timing.
 */
import { assert } from "./assert.ts";
import { BACKENDS, freshDatabase, rawQuery, type TestDatabase } from "./helpers.ts";
import { logsQuery } from "../src/store/sql_status.ts";
import type { LogFilter, LogRow } from "../src/domain/log_row.ts";

/** What the database would read for `sql`: SQLite's plan lines, MariaDB's rows as JSON. */
async function planOf(db: TestDatabase, sql: string, params: unknown[]): Promise<string[]> {
  if (db.backend === "sqlite") {
    return (await rawQuery(db, `EXPLAIN QUERY PLAN ${sql}`, params)).map((r) => String(r.detail));
  }
  return (await rawQuery(db, `EXPLAIN ${sql}`, params)).map((r) =>
    JSON.stringify({ table: r.table, type: r.type, key: r.key, Extra: r.Extra })
  );
}

for (const backend of BACKENDS) {
  Deno.test(`store[${backend}]: log lines of a job or a run are read by index, unsorted`, async () => {
    await using db = await freshDatabase(backend);
    const store = db.open();
    try {
      await store.migrate();
      // 40 jobs of 5 runs each, with lines of the service between, so that no plan is of a
      // table so small that reading it whole costs as little.
      const rows: LogRow[] = [];
      for (let i = 0; i < 2000; i++) {
        rows.push({
          created_at: i,
          level: i % 7 === 0 ? "warning" : "info",
          logger_name: "jobsmanager.runner",
          message: `line ${i}`,
          context: i % 5 === 0 ? { count: i } : { job: `job.${i % 40}`, run: i % 200 },
        });
      }
      await store.insertLogs(rows);
      const filters: [string, LogFilter, RegExp][] = [
        ["--job", { job_id: "job.7", limit: 100 }, /jm_syslog_job_id/],
        ["--run", { run_id: 47, limit: 100 }, /jm_syslog_run_id/],
        [
          "--job --level --since",
          { job_id: "job.7", minLevel: "warning", since: 10, limit: 100 },
          /jm_syslog_job_id/,
        ],
        // A follow resumes after the last line shown, which may be far back for a quiet job.
        ["--job -f", { job_id: "job.7", afterId: 5, limit: 3000 }, /jm_syslog_job_id/],
        ["--run -f", { run_id: 47, afterId: 5, limit: 3000 }, /jm_syslog_run_id/],
      ];
      for (const [what, filter, index] of filters) {
        const { sql, params } = logsQuery(filter);
        const plan = await planOf(db, sql, params);
        const shown = `${what}: ${plan.join(" | ")}`;
        assert(plan.length > 0, shown);
        for (const line of plan) {
          if (backend === "sqlite") {
            // Searched by the index, never scanned whole, nor sorted.
            assert(/^SEARCH jm_syslog USING INDEX /.test(line), shown);
            assert(index.test(line), shown);
          } else {
            const row = JSON.parse(line);
            assert(row.type !== "ALL" && row.type !== "index", shown);
            assert(index.test(String(row.key)), shown);
            assert(!/filesort/i.test(String(row.Extra)), shown);
          }
        }
      }
    } finally {
      await store.close();
    }
  });
}
