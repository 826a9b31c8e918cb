/**
 * Retention deletes read the index of the time column they bound, in its
 * order, and stop at the batch's end: ordered by id, a table of millions
 * was read whole (SQLite) or sorted (MariaDB) at every batch, which froze
 * a SQLite service for seconds each hour and made a MariaDB backlog
 * quadratic. Checked by the plan each database makes, not by timing.
 */
import { assert } from "./assert.ts";
import { BACKENDS, freshDatabase, markerTimesNullable, rawQuery } from "./helpers.ts";
import { PROFILES } from "../src/store/driver.ts";
import { pruneStatement } from "../src/store/sql_status.ts";
import { MARKERS_TO_PRUNE } from "../src/store/sql_store.ts";

/** A cutoff as jm_update_info's insert_time holds it. */
const CUTOFF_TEXT = "2026-01-01 00:00:00.000";

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

// Also where insert_time may be NULL (a table made by hand), which the
// statement then looks for: a planner may drop that test where the column cannot be.
for (const backend of BACKENDS) {
  for (const nullable of [false, true]) {
    Deno.test(`store[${backend}]: the retention of reload markers reads its batch from the (updated, id) index, unsorted${nullable ? ", insert_time nullable" : ""}`, async () => {
      await using db = await freshDatabase(backend);
      const store = db.open();
      try {
        await store.migrate();
        if (nullable) await markerTimesNullable(db);
        // Rows, applied and not: MariaDB's plan of an empty table reads nothing at all.
        const ids = [];
        for (let i = 0; i < 20; i++) ids.push(await store.insertMarker([], []));
        await store.markApplied(ids.slice(0, 15));
        if (nullable) {
          await rawQuery(db, `UPDATE jm_update_info SET insert_time = NULL WHERE id < ${ids[10]}`);
        }
      } finally {
        await store.close();
      }
      if (backend === "sqlite") {
        const plan = (await rawQuery(db, `EXPLAIN QUERY PLAN ${MARKERS_TO_PRUNE}`, [
          CUTOFF_TEXT,
          CUTOFF_TEXT,
          1000,
        ]))
          .map((r) => String(r.detail));
        assert(
          plan.some((d) =>
            /^SEARCH jm_update_info USING (COVERING )?INDEX jm_update_info_updated/.test(d)
          ),
          plan.join(" | "),
        );
        assert(!plan.some((d) => /^SCAN jm_update_info|TEMP B-TREE/.test(d)), plan.join(" | "));
      } else {
        const plan = await rawQuery(db, `EXPLAIN ${MARKERS_TO_PRUNE}`, [
          CUTOFF_TEXT,
          CUTOFF_TEXT,
          1000,
        ]);
        const shown = JSON.stringify(plan);
        assert(
          plan.some((r) => r.table === "jm_update_info" && r.key === "jm_update_info_updated"),
          shown,
        );
        assert(!plan.some((r) => /filesort/i.test(String(r.Extra))), shown);
      }
    });
  }
}
