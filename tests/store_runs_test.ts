/**
 * The store contract of RunStore's reads and bookkeeping (store.ts): getRun,
 * listRuns, queuedManualRuns, cancelRequests, endOrphans, latestRuns, lastFires,
 * countRuns, runningRuns.
 */
import { assertEquals } from "./assert.ts";
import { FINAL_STATUSES, type RunStatus } from "../src/domain/run.ts";
import { contract, fire, job, manualRequest, node } from "./store_contract.ts";
import type { Store } from "../src/store/store.ts";
import type { Job } from "../src/domain/job.ts";

/** Jobs `ids` in jm_jobs: lastFires reads the fires of the jobs there. */
async function jobs(store: Store, ...ids: string[]): Promise<void> {
  for (const id of ids) await store.changeJob(id, () => job(id));
}

/** lastFires' `enabledAt` of jobs `ids` added by `jobs`: when they were added. */
function addedEnabled(...ids: string[]): Map<string, number> {
  return new Map(ids.map((id) => [id, job(id).updated_at]));
}
import { rawQuery } from "./helpers.ts";

contract("getRun", "an unknown id is null", async ({ store }) => {
  const [id] = await store.claimRuns([fire("a", 1000)]);
  assertEquals(await store.getRun(id! + 1), null);
});

contract("getRun", "every column reads back as written", async ({ store }) => {
  const written = {
    job_id: "a",
    scheduled_at: 1_700_000_000_123,
    started_at: 1_700_000_000_200,
    finished_at: 1_700_000_060_000,
    status: "timeout",
    exit_code: 124,
    signal: "SIGKILL",
    stdout: "ünïcode ✓\nline 2",
    stderr: "",
    node_id: "host-a",
    trigger: "manual",
    note: "killed after 60 s",
    forced: true,
    cancel_requested_at: 1_700_000_030_000,
    cancel_requested_by: "root@host-b",
    pgid: 4_194_303,
    marker: "0b6c3f7e-1d2a-4c55-9e8f-123456789abc",
    attempt: 3,
    first_run_id: 17,
    parent_run_id: 12,
    job_updated_at: 1_699_999_999_999,
  } as const;
  const [id] = await store.claimRuns([written]);
  assertEquals(await store.getRun(id!), { id: id!, ...written });
});

contract("listRuns", "nothing when there is no run", async ({ store }) => {
  assertEquals(await store.listRuns({ limit: 10 }), []);
});

contract("listRuns", "newest first, at most limit", async ({ store }) => {
  const ids = [];
  for (const at of [3000, 1000, 2000]) ids.push((await store.claimRuns([fire("a", at)]))[0]);
  assertEquals((await store.listRuns({ limit: 10 })).map((r) => r.id), ids.toReversed());
  assertEquals((await store.listRuns({ limit: 2 })).map((r) => r.id), ids.toReversed().slice(0, 2));
});

contract("listRuns", "with output false, every column but stdout and stderr", async ({ store }) => {
  const [id] = await store.claimRuns([fire("a", 1000, { status: "success" })]);
  await store.updateRun(id!, { stdout: "out", stderr: "err" });
  const [whole] = await store.listRuns({ limit: 1 });
  assertEquals([whole.stdout, whole.stderr], ["out", "err"]);
  assertEquals(await store.listRuns({ limit: 1, output: false }), [
    { ...whole, stdout: null, stderr: null },
  ]);
});

contract(
  "listRuns",
  "filters by job, status and since (inclusive), together",
  async ({ store }) => {
    await store.claimRuns([
      fire("a", 1000, { status: "success" }),
      fire("a", 2000, { status: "failed" }),
      fire("a", 3000, { status: "success" }),
      fire("b", 3000, { status: "success" }),
    ]);
    const keys = async (filter: Parameters<typeof store.listRuns>[0]) =>
      (await store.listRuns(filter)).map((r) => `${r.job_id}@${r.scheduled_at}`);
    assertEquals(await keys({ job_id: "b", limit: 10 }), ["b@3000"]);
    assertEquals(await keys({ status: "failed", limit: 10 }), ["a@2000"]);
    assertEquals(await keys({ since: 2000, limit: 10 }), ["b@3000", "a@3000", "a@2000"]);
    assertEquals(
      await keys({ job_id: "a", status: "success", since: 1000, limit: 10 }),
      ["a@3000", "a@1000"],
    );
  },
);

contract("queuedManualRuns", "nothing when no request waits", async ({ store }) => {
  await store.claimRuns([fire("a", 1000)]);
  assertEquals(await store.queuedManualRuns(10), []);
});

contract(
  "queuedManualRuns",
  "only manual requests still queued and untaken, oldest first",
  async ({ store }) => {
    const [first, , , , second, , third] = await store.claimRuns([
      manualRequest("b", 1000),
      fire("a", 1000, { status: "queued" }), // a scheduled fire waiting for a worker
      { ...manualRequest("a", 2000), node_id: "n1" }, // taken by a service, not started yet
      { ...manualRequest("a", 3000), status: "running", node_id: "n1" },
      manualRequest("a", 500),
      { ...manualRequest("c", 4000), status: "success" },
      manualRequest("c", 5000),
    ]);
    const pending = await store.queuedManualRuns(10);
    assertEquals(pending.map((r) => r.id), [first, second, third]);
    assertEquals(pending.map((r) => [r.job_id, r.scheduled_at]), [["b", 1000], ["a", 500], [
      "c",
      5000,
    ]]);
  },
);

contract(
  "cancelRequests",
  "this node's running and queued runs someone asked to cancel, oldest first",
  async ({ store }) => {
    const asked = { cancel_requested_at: 5000, cancel_requested_by: "ops@host" };
    const [running, , queued] = await store.claimRuns([
      fire("a", 1000, { status: "running", node_id: "me", started_at: 1000, ...asked }),
      fire("b", 1000, { status: "running", node_id: "me", started_at: 1000 }), // nobody asked
      fire("c", 1000, { status: "queued", node_id: "me", ...asked }),
      fire("d", 1000, { status: "running", node_id: "other", started_at: 1000, ...asked }),
      { ...manualRequest("e", 1000), ...asked }, // no service took it: the CLI ends it itself
      fire("f", 1000, { status: "success", node_id: "me", finished_at: 2000, ...asked }),
    ]);
    const requests = await store.cancelRequests("me");
    assertEquals(requests.map((r) => r.id), [running, queued]);
    assertEquals(requests.map((r) => r.cancel_requested_by), ["ops@host", "ops@host"]);
  },
);

contract(
  "cancelRequests",
  "with lostAmong, also those of these runs marked lost on this node whose cancel was asked; no other lost row",
  async ({ store }) => {
    const asked = { cancel_requested_at: 5000, cancel_requested_by: "ops@host" };
    const lost = (jobId: string, nodeId: string, more = {}) =>
      fire(jobId, 1000, { status: "lost", node_id: nodeId, started_at: 1000, ...more });
    const [held, , notAmong, elsewhere, running] = await store.claimRuns([
      lost("a", "me", asked),
      lost("b", "me"), // held, nobody asked
      lost("c", "me", asked), // an earlier death's, not held
      lost("d", "other", asked), // another node's, its id given by mistake
      fire("e", 1000, { status: "running", node_id: "me", started_at: 1000, ...asked }),
    ]);
    const among = [held!, held! + 1, elsewhere!];
    assertEquals((await store.cancelRequests("me", among)).map((r) => r.id), [held, running]);
    assertEquals((await store.cancelRequests("me")).map((r) => r.id), [running]);
    // More ids than one statement takes.
    const many = [...Array.from({ length: 1200 }, (_, i) => 1_000_000 + i), notAmong!];
    assertEquals((await store.cancelRequests("me", many)).map((r) => r.id), [
      notAmong,
      running,
    ]);
  },
);

contract(
  "lostOf",
  "those of the given runs marked lost on this node, cancel asked or not; no other row",
  async ({ store }) => {
    const lost = (jobId: string, nodeId: string, more = {}) =>
      fire(jobId, 1000, { status: "lost", node_id: nodeId, started_at: 1000, ...more });
    const [asked, plain, notAmong, elsewhere, running] = await store.claimRuns([
      lost("a", "me", { cancel_requested_at: 5000, cancel_requested_by: "ops@host" }),
      lost("b", "me"),
      lost("c", "me"), // an earlier death's, not held
      lost("d", "other"), // another node's, its id given by mistake
      fire("e", 1000, { status: "running", node_id: "me", started_at: 1000 }),
    ]);
    const among = [asked!, plain!, elsewhere!, running!];
    assertEquals((await store.lostOf("me", among)).map((r) => r.id), [asked, plain]);
    // More ids than one statement takes.
    const many = [...Array.from({ length: 1200 }, (_, i) => 1_000_000 + i), notAmong!];
    assertEquals((await store.lostOf("me", many)).map((r) => r.id), [notAmong]);
    assertEquals(await store.lostOf("me", []), []);
  },
);

contract("cancelRequests", "nothing when nobody asked", async ({ store }) => {
  await store.claimRuns([fire("a", 1000, { status: "running", node_id: "me", started_at: 1 })]);
  assertEquals(await store.cancelRequests("me"), []);
});

contract("queuedManualRuns", "at most limit", async ({ store }) => {
  const ids = await store.claimRuns([
    manualRequest("a", 1000),
    manualRequest("b", 1000),
    manualRequest("c", 1000),
  ]);
  assertEquals((await store.queuedManualRuns(2)).map((r) => r.id), ids.slice(0, 2));
});

contract(
  "endOrphans",
  "runs left running or queued on this node become lost (a service that died), their ids returned",
  async ({ store }) => {
    const ids = await store.claimRuns([
      fire("a", 1000, { node_id: "me", started_at: 1000 }),
      fire("b", 1000, { node_id: "me", status: "queued" }),
      { ...manualRequest("c", 1000), node_id: "me" },
    ]);
    assertEquals(await store.endOrphans("me", 9000, null, "lost"), ids);
    for (const id of ids) {
      const run = await store.getRun(id!);
      assertEquals(
        [run?.status, run?.finished_at, run?.note],
        ["lost", 9000, "its service ended without recording how it ended (killed or crashed)"],
        `run ${id}`,
      );
    }
    assertEquals((await store.getRun(ids[0]!))?.started_at, 1000, "started_at is kept");
  },
);

contract(
  "endOrphans",
  "runs a service that stopped cleanly left behind become interrupted",
  async ({ store }) => {
    const [id] = await store.claimRuns([fire("a", 1000, { node_id: "me", started_at: 1000 })]);
    assertEquals(await store.endOrphans("me", 9000, null, "interrupted"), [id]);
    const run = await store.getRun(id!);
    assertEquals(
      [run?.status, run?.note],
      [
        "interrupted",
        "its service ended without recording how it ended (stopped, its record lost)",
      ],
    );
  },
);

contract(
  "endOrphans",
  "the runs end at the service's last heartbeat, or at their start (or fire) when later, saying so",
  async ({ store }) => {
    const [before, after, queued] = await store.claimRuns([
      fire("a", 1000, { node_id: "me", started_at: 1000 }),
      fire("b", 6000, { node_id: "me", started_at: 6500 }),
      fire("c", 7000, { node_id: "me", status: "queued" }),
    ]);
    assertEquals((await store.endOrphans("me", 9000, 5000, "lost")).length, 3);
    const runs = await Promise.all([before, after, queued].map((id) => store.getRun(id!)));
    assertEquals(runs.map((r) => [r?.status, r?.finished_at]), [
      ["lost", 5000],
      ["lost", 6500],
      ["lost", 7000],
    ]);
    assertEquals(
      runs[0]?.note,
      "its service ended without recording how it ended (killed or crashed); recorded as ended at its last heartbeat (1970-01-01T00:00:05.000Z), or at its start when later",
    );
    // A heartbeat after now (the clock was stepped back since): now.
    const [late] = await store.claimRuns([fire("d", 1000, { node_id: "me", started_at: 1000 })]);
    await store.endOrphans("me", 9000, 20_000, "lost");
    assertEquals((await store.getRun(late!))?.finished_at, 9000);
  },
);

contract(
  "endOrphans",
  "other nodes' runs, untaken requests and ended runs are left alone",
  async ({ store }) => {
    const ended = FINAL_STATUSES.map((status, i) => fire("done", i, { node_id: "me", status }));
    const others = [
      fire("a", 1000, { node_id: "other" }),
      fire("b", 1000, { node_id: "other", status: "queued" }),
      manualRequest("c", 1000),
    ];
    const ids = await store.claimRuns([...ended, ...others]);
    const before = await Promise.all(ids.map((id) => store.getRun(id!)));
    assertEquals(await store.endOrphans("me", 9000, null, "lost"), []);
    assertEquals(await Promise.all(ids.map((id) => store.getRun(id!))), before);
  },
);

contract("latestRuns", "empty when nothing ran", async ({ store }) => {
  assertEquals(await store.latestRuns(), new Map());
});

contract(
  "latestRuns",
  "the newest run of each job in jm_jobs, whatever its trigger",
  async ({ store }) => {
    await jobs(store, "a", "b");
    const [, , b1, a3] = await store.claimRuns([
      fire("a", 1000),
      fire("a", 2000),
      fire("b", 500),
      manualRequest("a", 1500),
      // A job removed since: no job of the list is its.
      fire("gone", 3000),
    ]);
    const latest = await store.latestRuns();
    assertEquals([...latest.entries()].map(([job, run]) => [job, run.id]).sort(), [
      ["a", a3],
      ["b", b1],
    ]);
    await store.updateRun(a3!, { stdout: "out", stderr: "err" });
    // Without its output: a list of every job's last run must not read megabytes of it.
    assertEquals((await store.latestRuns()).get("a"), {
      ...(await store.getRun(a3!))!,
      stdout: null,
      stderr: null,
    });
  },
);

contract("lastFires", "empty when no job has fired", async ({ store }) => {
  assertEquals(await store.lastFires(10_000), {
    fires: new Map(),
    enabledAt: new Map(),
    ahead: [],
  });
});

contract(
  "lastFires",
  "the latest scheduled fire of each job, whatever became of it",
  async ({ store }) => {
    await jobs(store, "a", "b");
    await store.claimRuns([
      fire("a", 1000, { status: "success" }),
      fire("a", 3000, { status: "missed" }),
      fire("a", 2000, { status: "failed" }),
      fire("b", 500, { status: "skipped" }),
    ]);
    assertEquals(await store.lastFires(10_000), {
      fires: new Map([["a", 3000], ["b", 500]]),
      enabledAt: addedEnabled("a", "b"),
      ahead: [],
    });
  },
);

contract("lastFires", "manual runs are not fires of the schedule", async ({ store }) => {
  await jobs(store, "a", "only-manual");
  await store.claimRuns([
    fire("a", 1000, { status: "success" }),
    { ...manualRequest("a", 9000), status: "success" },
    manualRequest("only-manual", 9000),
  ]);
  assertEquals(await store.lastFires(10_000), {
    fires: new Map([["a", 1000]]),
    enabledAt: addedEnabled("a", "only-manual"),
    ahead: [],
  });
});

contract(
  "lastFires",
  "fires recorded beyond the instant asked are not the last: they are listed apart, by fire",
  async ({ store }) => {
    await jobs(store, "a", "b", "c", "d");
    const year2099 = Date.UTC(2099, 0, 1);
    const [far, near, , farB] = await store.claimRuns([
      fire("a", year2099, { status: "success" }),
      fire("a", 10_001, { status: "success" }),
      fire("a", 2000, { status: "success" }),
      fire("b", year2099, { status: "success" }),
      { ...manualRequest("c", year2099), status: "success" },
      fire("d", 10_000, { status: "success" }),
    ]);
    assertEquals(await store.lastFires(10_000), {
      // "b" fired only beyond: it has no last fire; a manual run is none ("c").
      fires: new Map([["a", 2000], ["d", 10_000]]),
      enabledAt: addedEnabled("a", "b", "c", "d"),
      ahead: [
        { id: near!, job_id: "a", scheduled_at: 10_001 },
        { id: far!, job_id: "a", scheduled_at: year2099 },
        { id: farB!, job_id: "b", scheduled_at: year2099 },
      ],
    });
  },
);

contract("countRuns", "empty when no run is that recent", async ({ store }) => {
  await store.claimRuns([fire("a", 1000, { status: "success" })]);
  assertEquals(await store.countRuns(1001), {});
});

contract("countRuns", "runs scheduled at or after since, by status", async ({ store }) => {
  const at = (job: string, scheduled_at: number, status: RunStatus) =>
    fire(job, scheduled_at, { status });
  await store.claimRuns([
    at("a", 999, "failed"),
    at("a", 1000, "success"),
    at("b", 1000, "failed"),
    at("a", 2000, "success"),
    at("c", 2000, "running"),
    { ...manualRequest("d", 3000), status: "success" },
  ]);
  assertEquals(await store.countRuns(1000), { success: 3, failed: 1, running: 1 });
});

contract(
  "dueQueuedRuns",
  "retries and follow-up runs still queued, untaken and due by now, earliest first",
  async ({ store }) => {
    const queued = (job_id: string, at: number, trigger: "retry" | "after", extra = {}) => ({
      job_id,
      scheduled_at: at,
      status: "queued" as const,
      trigger,
      ...extra,
    });
    const [later, , first, , , , , second] = await store.claimRuns([
      queued("a", 2000, "retry", { attempt: 2, first_run_id: 1 }),
      queued("a", 9000, "retry"), // not due yet
      queued("b", 1000, "after", { parent_run_id: 7 }),
      queued("c", 1000, "retry", { node_id: "n1" }), // taken by a service
      queued("d", 1000, "retry", { status: "skipped" }), // dropped
      manualRequest("e", 500), // a `job run` request: queuedManualRuns
      fire("f", 500, { status: "queued" }), // a fire waiting for a worker
      queued("g", 2000, "after"),
    ]);
    const due = await store.dueQueuedRuns(5000, 10);
    assertEquals(due.map((r) => r.id), [first, later, second]);
    assertEquals(
      due.map((r) => [r.attempt, r.first_run_id, r.parent_run_id]),
      [[1, null, 7], [2, 1, null], [1, null, null]],
    );
    assertEquals((await store.dueQueuedRuns(1500, 10)).map((r) => r.id), [first]);
    assertEquals((await store.dueQueuedRuns(5000, 1)).map((r) => r.id), [first]);
  },
);

contract(
  "activeRunsElsewhere",
  "runs running or queued on other nodes that neither stopped nor died (stopping ones count)",
  async ({ store }) => {
    await store.saveNode(node("here"));
    await store.saveNode(node("live"));
    await store.saveNode(node("leaving", { leaving_at: 2000 }));
    await store.saveNode(node("stopped", { stopped_at: 2000 }));
    await store.saveNode(node("dead", { declared_dead_at: 2000, declared_dead_by: "live" }));
    const [running, queued, , , , , ending] = await store.claimRuns([
      fire("a", 1000, { node_id: "live" }),
      fire("b", 1000, { node_id: "live", status: "queued" }),
      fire("c", 1000, { node_id: "live", status: "success" }),
      fire("d", 1000, { node_id: "here" }),
      fire("e", 1000, { node_id: "stopped" }),
      fire("f", 1000, { node_id: "dead" }),
      // Ending its runs as it stops: they still run.
      fire("i", 1000, { node_id: "leaving" }),
      // A node with no row (removed by hand) holds nothing: its runs would hold their jobs for ever.
      fire("g", 1000, { node_id: "gone" }),
      // A `job run` request no node took.
      manualRequest("h", 1000),
    ]);
    assertEquals(await store.activeRunsElsewhere("here"), [
      { id: running!, job_id: "a", node_id: "live" },
      { id: queued!, job_id: "b", node_id: "live" },
      { id: ending!, job_id: "i", node_id: "leaving" },
    ]);
    assertEquals(await store.activeRunsElsewhere("here", [queued!, queued! + 1]), [
      { id: queued!, job_id: "b", node_id: "live" },
    ]);
  },
);

contract(
  "listRuns",
  "an integer beyond 2^53 loads, its time at the latest a Date holds",
  async ({ db, store }) => {
    await store.claimRuns([fire("a", 1000, { status: "success", finished_at: 2000 })]);
    await rawQuery(db, "UPDATE jm_runs SET scheduled_at = 9223372036854775000");
    const [run] = await store.listRuns({ limit: 10 });
    assertEquals([run.job_id, run.scheduled_at, run.finished_at], [
      "a",
      8_640_000_000_000_000,
      2000,
    ]);
    assertEquals((await store.getRun(run.id))?.scheduled_at, 8_640_000_000_000_000);
  },
);

contract("lastFires", "the fires of a job no longer in jm_jobs are not read", async ({ store }) => {
  await jobs(store, "a");
  await store.claimRuns([fire("a", 1000), fire("gone", 2000)]);
  assertEquals(await store.lastFires(10_000), {
    fires: new Map([["a", 1000]]),
    enabledAt: addedEnabled("a"),
    ahead: [],
  });
});

contract(
  "lastFires",
  "when each job's schedule applies from: set by the write that adds it enabled or enables it, kept by one that disables it or changes its command",
  async ({ store }) => {
    const at = (t: number) => ({ updated_at: t });
    await store.changeJob("a", () => job("a", at(1000)));
    await store.changeJob("off", () => job("off", { ...at(1000), enabled: false }));
    await store.changeJob("b", () => job("b", { ...at(1000), enabled: false }));
    await store.changeJob("b", (b) => ({ ...b!, ...at(2000), enabled: true }));
    await store.changeJob("b", (b) => ({ ...b!, ...at(3000), command: "echo changed" }));
    await store.changeJob("a", (a) => ({ ...a!, ...at(4000), enabled: false }));
    assertEquals((await store.lastFires(10_000)).enabledAt, new Map([["a", 1000], ["b", 2000]]));
    // Through changeJobs (apply, import) alike.
    await store.changeJobs((current) => ({
      put: [
        ...current.map((j) => ({ ...j, ...at(5000), enabled: j.id !== "b" })),
        job("c", at(5000)),
      ],
      remove: [],
    }));
    assertEquals(
      (await store.lastFires(10_000)).enabledAt,
      new Map([["a", 5000], ["b", 2000], ["c", 5000], ["off", 5000]]),
    );
  },
);

contract(
  "lastFires",
  "when each job's schedule applies from: set by a write that gives an enabled job other fire times, kept by one that changes anything else or a disabled job's schedule",
  async ({ store }) => {
    const at = (t: number) => ({ updated_at: t });
    const appliesFrom = async () => (await store.lastFires(0)).enabledAt;
    await store.changeJob("w", () => job("w", at(1000)));
    await store.changeJob("off", () => job("off", { ...at(1000), enabled: false }));
    // What it runs, how, and what it says do not decide when it fires.
    await store.changeJob("w", (w) => ({
      ...w!,
      ...at(2000),
      command: "echo changed",
      description: "changed",
      timeout: 5,
      misfire_grace_time: 60,
      coalesce: true,
      max_instances: 3,
      env: { A: "1" },
      retries: 2,
    }));
    assertEquals(await appliesFrom(), new Map([["w", 1000]]));
    // Each field of its schedule does, and its zone.
    const changes: Partial<Job>[] = [
      { second: "30" },
      { minute: "*/10" },
      { hour: "1" },
      { day: "2" },
      { month: "3" },
      { day_of_week: "1" },
      { timezone: "Europe/Berlin" },
      { timezone: null },
    ];
    for (const [i, change] of changes.entries()) {
      const t = 3000 + i * 1000;
      await store.changeJob("w", (w) => ({ ...w!, ...change, ...at(t) }));
      assertEquals(await appliesFrom(), new Map([["w", t]]), JSON.stringify(change));
    }
    // A disabled job's schedule applies from when it is enabled.
    await store.changeJob("off", (off) => ({ ...off!, minute: "1", ...at(20_000) }));
    assertEquals(await appliesFrom(), new Map([["w", 10_000]]));
    // Through changeJobs (apply, import) alike.
    await store.changeJobs((current) => ({
      put: current.map((j) =>
        j.id === "w" ? { ...j, hour: "5", ...at(30_000) } : { ...j, hour: "6", ...at(30_000) }
      ),
      remove: [],
    }));
    assertEquals(await appliesFrom(), new Map([["w", 30_000]]));
    await store.changeJobs((current) => ({
      put: current.map((j) => ({ ...j, description: "again", ...at(40_000) })),
      remove: [],
    }));
    assertEquals(await appliesFrom(), new Map([["w", 30_000]]));
  },
);

contract(
  "lastFires",
  "a schedule applies from the time its writer gave, not from an updated_at a clock ahead left in the future",
  async ({ store }) => {
    const hour = 3_600_000;
    const appliesFrom = async () => (await store.lastFires(0)).enabledAt;
    // Added by a CLI whose clock was an hour ahead; every later write is by right clocks.
    await store.changeJob("a", () => job("a", { updated_at: 10 * hour }));
    await store.changeJob("b", () => job("b", { updated_at: 10 * hour }));
    await store.changeJob("a", (a) => ({ ...a!, enabled: false, updated_at: 9 * hour + 60_000 }));
    await store.changeJob("a", (a) => ({ ...a!, enabled: true, updated_at: 9 * hour + 120_000 }));
    // Its updated_at stays after the stored one (an If-Match names each version)...
    assertEquals((await store.getJob("a"))!.updated_at, 10 * hour + 2);
    // ...but its schedule applies from the enable, not from an hour later.
    assertEquals((await appliesFrom()).get("a"), 9 * hour + 120_000);
    await store.changeJobs((current) => ({
      put: current.filter((j) => j.id === "b").map((b) => ({
        ...b,
        minute: "7",
        updated_at: 9 * hour + 180_000,
      })),
      remove: [],
    }));
    assertEquals((await store.getJob("b"))!.updated_at, 10 * hour + 1);
    assertEquals((await appliesFrom()).get("b"), 9 * hour + 180_000);
  },
);

contract(
  "runningRuns",
  "only the running ones, oldest first, without output",
  async ({ store }) => {
    const [a1, a2, b1, a3] = await store.claimRuns([
      fire("a", 1000, { status: "queued" }),
      fire("a", 2000, { status: "skipped" }),
      fire("b", 500, { status: "queued" }),
      fire("a", 3000, { status: "queued" }),
    ]);
    assertEquals(await store.runningRuns(), []);
    await store.updateRun(a3!, { status: "running", started_at: 3001, stdout: "out" });
    await store.updateRun(a1!, { status: "running", started_at: 1001 });
    await store.updateRun(b1!, { status: "running", started_at: 501 });
    assertEquals((await store.runningRuns()).map((r) => r.id), [a1, b1, a3]);
    assertEquals((await store.runningRuns()).at(-1), {
      ...(await store.getRun(a3!))!,
      stdout: null,
      stderr: null,
    });
    await store.updateRun(a1!, { status: "success", finished_at: 4000 });
    assertEquals((await store.runningRuns()).map((r) => r.id), [b1, a3]);
    assertEquals(a2 !== undefined, true);
  },
);
