/**
 * `jobsmanager serve` end to end, on every backend: a job with a user runs
 * as that user (the service runs as root here, as it must for that), and
 * one whose user this host has no account of is an error saying so.
 */
import { assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase, waitFor } from "./helpers.ts";
import { jm, ready, runs, runsDetail, startServe } from "./serve_helpers.ts";

for (const backend of BACKENDS) {
  Deno.test({
    name:
      `serve[${backend}]: a job with --user nobody runs as uid 65534; one with an unknown user is an error saying so`,
    ignore: Deno.uid() !== 0,
    fn: async () => {
      await using db = await freshDatabase(backend);
      const never = ["--cron", "0 0 1 1 *"];
      await jm(
        db,
        "job",
        "add",
        "as-nobody",
        ...never,
        "--user",
        "nobody",
        "--command",
        'echo "$(id -u) $USER $(pwd)"',
      );
      await jm(
        db,
        "job",
        "add",
        "as-ghost",
        ...never,
        "--user",
        "jm-no-such-user",
        "--command",
        "true",
      );
      await using serve = await startServe(db);
      await ready(db, serve);
      await jm(db, "job", "run", "as-nobody");
      await jm(db, "job", "run", "as-ghost");
      const ended = await waitFor(async () => {
        const all = await runs(db);
        return all.length === 2 && all.every((r) => r.finished_at !== null) ? all : undefined;
      }, { timeoutMs: 20_000, what: "both runs to end", detail: runsDetail(db) });
      const [nobody, ghost] = ["as-nobody", "as-ghost"].map((id) =>
        ended.find((r) => r.job_id === id)!
      );
      assertEquals([nobody.status, nobody.stdout, nobody.note], [
        "success",
        "65534 nobody /\n",
        null,
      ]);
      assertEquals([ghost.status, ghost.note], [
        "error",
        `job as-ghost runs as 'jm-no-such-user', who has no account on host ${Deno.hostname()}: create it, or change the job's user (jobsmanager job update as-ghost --user NAME, or --user '' for the service's own)`,
      ]);
      assertEquals((await serve.terminate()).status.code, 0, serve.stderr);
    },
  });
}
