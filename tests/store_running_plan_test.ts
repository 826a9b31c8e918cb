/**
 * The running runs (on every `GET /jobs`, each job page and the status
 * page, every few seconds per viewer) are read on the status index, in its
 * order: a scan of jm_runs would read millions of ended runs each time.
 * Checked by the plan each database makes, not by timing.
 */
import { assert } from "./assert.ts";
import { BACKENDS, freshDatabase, rawQuery } from "./helpers.ts";
import { RUNNING_RUNS } from "../src/store/sql_store.ts";

for (const backend of BACKENDS) {
  Deno.test(`store[${backend}]: the running runs are read on the status index, unsorted`, async () => {
    await using db = await freshDatabase(backend);
    await db.open().migrate();
    if (backend === "sqlite") {
      const plan = (await rawQuery(db, `EXPLAIN QUERY PLAN ${RUNNING_RUNS}`, []))
        .map((r) => String(r.detail));
      assert(plan.some((d) => /^SEARCH .* USING INDEX jm_runs_status/.test(d)), plan.join(" | "));
      assert(!plan.some((d) => /^SCAN |TEMP B-TREE/.test(d)), plan.join(" | "));
    } else {
      const plan = await rawQuery(db, `EXPLAIN ${RUNNING_RUNS}`, []);
      const shown = JSON.stringify(plan);
      assert(plan.some((r) => String(r.key) === "jm_runs_status"), shown);
      assert(!plan.some((r) => /filesort/i.test(String(r.Extra))), shown);
    }
  });
}
