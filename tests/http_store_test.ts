/** The store query behind the dashboard's chart, on every backend. */
import { assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase } from "./helpers.ts";

for (const backend of BACKENDS) {
  Deno.test(`countRunsByMinute (${backend}): runs by the minute they were scheduled in, and status`, async () => {
    await using db = await freshDatabase(backend);
    const store = db.open();
    try {
      await store.migrate();
      const m = 60_000;
      const base = 1_700_000_040_000; // a whole minute
      await store.claimRuns([
        { job_id: "a", scheduled_at: base - 1, status: "success", trigger: "schedule" },
        { job_id: "a", scheduled_at: base, status: "success", trigger: "schedule" },
        { job_id: "b", scheduled_at: base + m - 1, status: "success", trigger: "schedule" },
        { job_id: "c", scheduled_at: base + 5, status: "failed", trigger: "schedule" },
        { job_id: "a", scheduled_at: base + 3 * m, status: "skipped", trigger: "schedule" },
      ]);
      assertEquals(await store.countRunsByMinute(base), [
        { minute: base, counts: { success: 2, failed: 1 } },
        { minute: base + 3 * m, counts: { skipped: 1 } },
      ]);
      assertEquals(await store.countRunsByMinute(base + 4 * m), []);
    } finally {
      await store.close();
    }
  });
}
