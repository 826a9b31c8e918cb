/**
 * Retention deletes read the index of the time column they bound, in its
 * order, and stop at the batch's end: ordered by id, a table of millions
 * was read whole (SQLite) or sorted (MariaDB) at every batch, which froze
 * a SQLite service for seconds each hour and made a MariaDB backlog
 * quadratic. Checked by the plan each database makes, not by timing.
 */
import { assert } from "./assert.ts";
import { BACKENDS, freshDatabase, rawQuery } from "./helpers.ts";
import { PROFILES } from "../src/store/driver.ts";
import { pruneStatement } from "../src/store/sql_status.ts";

const TABLES = ["jm_syslog", "jm_runs", "jm_notifications"] as const;

for (const backend of BACKENDS) {
  Deno.test(`store[${backend}]: retention deletes go by their time column's index, unsorted`, async () => {
    await using db = await freshDatabase(backend);
    // A migrated, empty database: the planner still names what it would read.
    await db.open().migrate();
    for (const table of TABLES) {
      const sql = pruneStatement(PROFILES[backend], table);
      const params = [Date.now(), 1000];
      if (backend === "sqlite") {
        const plan = (await rawQuery(db, `EXPLAIN QUERY PLAN ${sql}`, params))
          .map((r) => String(r.detail));
        // The inner SELECT searches the time index; nothing is scanned whole or sorted.
        assert(
          plan.some((d) =>
            /^SEARCH .* USING (COVERING )?INDEX jm_\w+_(created|scheduled)_at/.test(d)
          ),
          `${table}: ${plan.join(" | ")}`,
        );
        assert(!plan.some((d) => /^SCAN |TEMP B-TREE/.test(d)), `${table}: ${plan.join(" | ")}`);
      } else {
        const plan = await rawQuery(db, `EXPLAIN ${sql}`, params);
        const shown = JSON.stringify(plan);
        assert(
          plan.some((r) => /_(created|scheduled)_at$/.test(String(r.key))),
          `${table}: ${shown}`,
        );
        assert(!plan.some((r) => /filesort/i.test(String(r.Extra))), `${table}: ${shown}`);
      }
    }
  });
}
