/**
 * Jobs added at once on MySQL (`POST /api/v1/jobs` from a deploy script
 * running 8 at a time): each transaction locks a missing id (a gap lock)
 * and then inserts it, and InnoDB picks some of them as deadlock victims.
 * They run again, and every job is added.
 */
import { assertEquals } from "./assert.ts";
import { BACKENDS, onFreshStore } from "./helpers.ts";
import { addJob } from "../src/app/jobs.ts";
import { API_NAMES } from "../src/http/input_names.ts";
import { buildJob } from "../src/domain/job.ts";

const JOBS = 40;
const AT_ONCE = 8;

for (const backend of BACKENDS) {
  Deno.test(`app jobs[${backend}]: ${JOBS} jobs added ${AT_ONCE} at a time are all added`, () =>
    onFreshStore(backend, async (store) => {
      const ids = Array.from({ length: JOBS }, (_, i) => `par${i + 1}`);
      const failures: string[] = [];
      let next = 0;
      const worker = async () => {
        while (next < ids.length) {
          const id = ids[next++];
          const job = buildJob(id, { command: "true", cron: "0 0 1 1 *" }, null, Date.now());
          try {
            await addJob(store, job, { replace: false, names: API_NAMES });
          } catch (error) {
            failures.push(`${id}: ${(error as Error).message}`);
          }
        }
      };
      await Promise.all(Array.from({ length: AT_ONCE }, worker));
      assertEquals(failures, []);
      assertEquals((await store.listJobs()).length, JOBS);
    }));
}
