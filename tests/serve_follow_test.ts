/**
 * Two `jobsmanager serve` on one MariaDB database (issue 13): each end of a
 * parent run starts one follow-up run, and each failed run one retry,
 * cluster-wide. The follow-up and retry commands append their run id to a
 * file, so one that ran twice shows even where jm_runs would hide it.
 */
import { assert, assertEquals } from "./assert.ts";
import { freshDatabase, mysqlTest, type TestDatabase, waitFor } from "./helpers.ts";
import { jm, Serve, sql, writeConfig } from "./serve_helpers.ts";

/** Parents firing every second; each has a follower; `flaky` fails and is retried once. */
const PARENTS = 4;

async function applyJobs(db: TestDatabase, file: string): Promise<void> {
  const jobs = [
    ...Array.from({ length: PARENTS }, (_, i) => [
      { id: `p${i}`, second: "*", command: "true" },
      {
        id: `f${i}`,
        command: `echo "$JM_JOB_ID $JM_RUN_ID" >> ${file}`,
        after_job: `p${i}`,
        after_outcome: "success",
      },
    ]).flat(),
    {
      id: "flaky",
      second: "*/2",
      command: `echo "$JM_JOB_ID $JM_RUN_ID" >> ${file}; exit 1`,
      retries: 1,
      retry_delay: 0,
    },
  ];
  await Deno.writeTextFile(`${db.dir}/jobs.json`, JSON.stringify({ jobs }));
  await jm(db, "apply", `${db.dir}/jobs.json`);
}

interface Row {
  id: number;
  job_id: string;
  status: string;
  trigger: string;
  node_id: string | null;
  first_run_id: number | null;
  parent_run_id: number | null;
}

async function rows(db: TestDatabase): Promise<Row[]> {
  return (await sql(
    db,
    "SELECT id, job_id, status, `trigger`, node_id, first_run_id, parent_run_id FROM jm_runs ORDER BY id",
  )).map((r) => ({
    id: Number(r.id),
    job_id: String(r.job_id),
    status: String(r.status),
    trigger: String(r.trigger),
    node_id: r.node_id === null ? null : String(r.node_id),
    first_run_id: r.first_run_id === null ? null : Number(r.first_run_id),
    parent_run_id: r.parent_run_id === null ? null : Number(r.parent_run_id),
  }));
}

mysqlTest(
  "cluster: two services start one follow-up run per parent run and one retry per failed run",
  async () => {
    await using db = await freshDatabase("mysql");
    const file = `${db.dir}/ran.txt`;
    await applyJobs(db, file);
    const config = await writeConfig(db, { heartbeat_interval: 1 });
    const services = [new Serve(db, config), new Serve(db, config)];
    try {
      // Enough parent runs ended, and some follow-ups ran on each node.
      await waitFor(async () => {
        for (const s of services) if (!s.running) throw new Error(`serve exited:\n${s.stderr}`);
        const all = await rows(db);
        const followers = all.filter((r) => r.trigger === "after" && r.status === "success");
        const nodes = new Set(all.filter((r) => r.status === "success").map((r) => r.node_id));
        return followers.length >= 20 && nodes.size === 2 &&
          all.filter((r) => r.trigger === "retry" && r.status === "failed").length >= 3;
      }, {
        timeoutMs: 60_000,
        what: "20 follow-up runs and 3 retries ended, runs on both nodes",
        detail: async () =>
          JSON.stringify(await rows(db)).slice(-3000) + services.map((s) => s.stderr).join("\n"),
      });
    } finally {
      for (const s of services) if (s.running) await s.terminate();
    }
    const all = await rows(db);
    const byParent = new Map<number, Row[]>();
    for (const r of all.filter((r) => r.trigger === "after")) {
      byParent.set(r.parent_run_id!, [...byParent.get(r.parent_run_id!) ?? [], r]);
    }
    const twice = [...byParent].filter(([, children]) => children.length > 1);
    assertEquals(twice, [], "a parent run with more than one follow-up row");
    for (const [parent, [child]] of byParent) {
      const p = all.find((r) => r.id === parent)!;
      assertEquals([p.status, p.job_id.replace("p", "f")], ["success", child.job_id]);
    }
    const retries = all.filter((r) => r.trigger === "retry");
    const retried = retries.map((r) => r.first_run_id);
    assertEquals(retried.length, new Set(retried).size, "a run retried twice");
    for (const r of retries) {
      assertEquals(all.find((f) => f.id === r.first_run_id)?.status, "failed");
    }
    // Every command that ran wrote its run id once: nothing ran twice.
    const lines = (await Deno.readTextFile(file)).split("\n").filter(Boolean);
    assertEquals(lines.length, new Set(lines).size, "a run whose command ran twice");
    // Each ended run's command wrote its line; a run the shutdown interrupted may have too.
    const recorded = (statuses: string[]) =>
      all.filter((r) =>
        (r.trigger === "after" || r.job_id === "flaky") && statuses.includes(r.status)
      ).map((r) => `${r.job_id} ${r.id}`);
    const started = new Set(recorded(["success", "failed", "interrupted"]));
    for (const line of recorded(["success", "failed"])) assert(lines.includes(line), line);
    for (const line of lines) assert(started.has(line), `${line} ran with no run that started`);
  },
);
