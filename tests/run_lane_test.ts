/** A runner lane on its own: how much of a turn of the event loop its starts may hold. */
import { assert, assertEquals } from "./assert.ts";
import { type FromRunLane, RunLane, type ToRunLane } from "../src/daemon/run_lane.ts";
import { waitFor } from "./helpers.ts";
import { checkSlowNote, type DirectoryCheck } from "../src/daemon/directory_check.ts";
import {
  type Account,
  AccountLookups,
  lookupHungNote,
  lookupSlowNote,
} from "../src/daemon/run_as.ts";

const PATH = Deno.env.get("PATH") ?? "/usr/bin:/bin";

function starts(n: number): ToRunLane[] {
  return Array.from({ length: n }, (_, id) => ({
    type: "start" as const,
    id,
    spec: {
      command: "true",
      env: { PATH, JM_JOB_ID: "lane" },
      timeoutMs: 10_000,
      killGraceMs: 500,
      outputCap: 1024,
    },
    startBy: Infinity,
  }));
}

/**
 * The runs started in the lane's first turn: what its first batch back
 * says (its outbox sends at the first timer after the first start, which
 * comes before the lane's own next turn), then every run's end.
 */
async function firstTurn(turnMs?: number): Promise<number> {
  const batches: FromRunLane[][] = [];
  const lane = new RunLane((batch) => batches.push(batch), (e) => {
    throw e;
  }, turnMs);
  try {
    lane.receive(starts(3));
    const all = () => batches.flat();
    await waitFor(() => all().filter((m) => m.type === "done").length === 3 || null, {
      timeoutMs: 10_000,
      what: "the 3 runs to end",
      detail: () => JSON.stringify(all()),
    });
    return batches[0].filter((m) => m.type === "started").length;
  } finally {
    lane.close();
  }
}

Deno.test("lane: without a turn budget a turn starts several runs; with none left, one run a turn", async () => {
  assertEquals(await firstTurn(), 3);
  assertEquals(await firstTurn(0), 1);
});

Deno.test("lane: each armed run of a batch is judged late or not just before its release", async () => {
  const dir = await Deno.makeTempDir();
  const spec = (job: string, runId?: number) => ({
    command: `touch "${dir}/$JM_JOB_ID"`,
    env: { PATH, JM_JOB_ID: job, ...(runId === undefined ? {} : { JM_RUN_ID: `${runId}` }) },
    timeoutMs: 10_000,
    killGraceMs: 500,
    outputCap: 1024,
  });
  const startBy = Date.now() + 60_000;
  // The second release is judged after its grace: as if the first one's write had taken that long.
  const times = [Date.now(), startBy + 1];
  const { lane, batches } = laneAt(() => times.shift() ?? Date.now(), {});
  try {
    lane.receive([
      { type: "arm", id: 0, spec: spec("first") },
      { type: "arm", id: 1, spec: spec("second") },
    ]);
    lane.receive([
      { type: "start", id: 10, spec: spec("first", 10), startBy, armed: 0 },
      { type: "start", id: 11, spec: spec("second", 11), startBy, armed: 1 },
    ]);
    const all = () => batches.flat();
    await waitFor(() => all().some((m) => m.type === "done" && m.id === 10) || null, {
      timeoutMs: 10_000,
      what: "the first run to end",
      detail: () => JSON.stringify(all()),
    });
    assertEquals(
      all().filter((m) => m.type === "started" || m.type === "late").map((m) =>
        `${m.type} ${m.id}`
      ),
      ["started 10", "late 11"],
    );
    assertEquals((await Deno.stat(`${dir}/first`)).isFile, true);
  } finally {
    lane.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lane: a run whose user's account is not found in time (a name service away) ends error, saying so; the others run", async () => {
  const batches: FromRunLane[][] = [];
  const asked: string[] = [];
  // An LDAP server away: the lookup of `ghost` never answers; `nobody`'s does at once.
  const accounts = new AccountLookups((user) => {
    asked.push(user);
    return user === "ghost"
      ? new Promise(() => {})
      : Promise.resolve({ name: user, uid: 65534, gid: 65534, home: "/nonexistent" });
  }, 200);
  const lane = new RunLane(
    (batch) => batches.push(batch),
    (e) => {
      throw e;
    },
    Infinity,
    Date.now,
    accounts,
  );
  try {
    const [plain, ghost, again, nobody] = starts(4);
    const as = (run: ToRunLane, name: string) =>
      ({
        ...run,
        spec: { ...(run as { spec: object }).spec, user: { job: "lane", name } },
      }) as ToRunLane;
    lane.receive([plain, as(ghost, "ghost"), as(again, "ghost"), as(nobody, "nobody")]);
    const done = () =>
      new Map(
        batches.flat().flatMap((m) => m.type === "done" ? [[m.id, m.result] as const] : []),
      );
    await waitFor(() => done().size === 4 || null, {
      timeoutMs: 20_000,
      what: "the 4 runs to end",
      detail: () => JSON.stringify(batches.flat()),
    });
    const ended = done();
    assertEquals(ended.get(0)?.status, "success");
    for (const id of [1, 2]) {
      assertEquals([ended.get(id)?.status, ended.get(id)?.note], [
        "error",
        lookupHungNote("lane", "ghost", 200),
      ]);
    }
    // Root runs it as nobody; anyone else is refused it, saying why: either way it did not wait.
    assert(ended.get(3)?.note !== lookupHungNote("lane", "nobody", 200), ended.get(3)?.note ?? "");
    assertEquals(asked.sort(), ["ghost", "nobody"], "one lookup of a name asked twice at once");
  } finally {
    lane.close();
  }
});

/** A lane whose grace is judged on `clock`, and the batches it sent. */
function laneAt(
  clock: () => number,
  { accounts, directories }: {
    accounts?: AccountLookups;
    directories?: ConstructorParameters<typeof RunLane>[5];
  },
): { lane: RunLane; batches: FromRunLane[][] } {
  const batches: FromRunLane[][] = [];
  const lane = new RunLane(
    (batch) => batches.push(batch),
    (e) => {
      throw e;
    },
    Infinity,
    clock,
    accounts,
    directories,
  );
  return { lane, batches };
}

Deno.test("lane: a run its account's slow lookup held past its grace is late, saying so; one late before it asked is not put on the lookup", async () => {
  const answer = Promise.withResolvers<Account | null>();
  let clock = 1000;
  const { lane, batches } = laneAt(() => clock, {
    accounts: new AccountLookups(() => answer.promise, 60_000),
  });
  const asSlow = (run: ToRunLane, startBy: number) =>
    ({
      ...run,
      startBy,
      spec: { ...(run as { spec: object }).spec, user: { job: "lane", name: "slow" } },
    }) as ToRunLane;
  const late = () => batches.flat().filter((m) => m.type === "late");
  try {
    const [held, after] = starts(2);
    lane.receive([asSlow(held, 2000)]);
    clock = 4200;
    answer.resolve({ name: "slow", uid: 65534, gid: 65534, home: "/nonexistent" });
    await waitFor(() => late().length === 1 || null, {
      timeoutMs: 10_000,
      what: "the held run to be late",
      detail: () => JSON.stringify(batches.flat()),
    });
    // Its account is known now: this one was late before the lookup answered at once.
    lane.receive([asSlow(after, 3000)]);
    await waitFor(() => late().length === 2 || null, {
      timeoutMs: 10_000,
      what: "the second run to be late",
      detail: () => JSON.stringify(batches.flat()),
    });
    assertEquals(late(), [
      {
        type: "late",
        id: 0,
        at: 4200,
        heldBy: lookupSlowNote("slow", 3200),
      },
      { type: "late", id: 1, at: 4200, heldBy: null },
    ]);
    assertEquals(
      lookupSlowNote("slow", 3200),
      "the lookup of account 'slow' took 3.2 s (this host's name service: getent passwd and shadow)",
    );
  } finally {
    lane.close();
  }
});

Deno.test("lane: a run the slow check of its cwd held past its grace is late, saying so; one late before the check began is not blamed on it", async () => {
  const answer = Promise.withResolvers<DirectoryCheck>();
  let clock = 1000;
  const { lane, batches } = laneAt(() => clock, { directories: { check: () => answer.promise } });
  const inMount = (run: ToRunLane, startBy: number) =>
    ({
      ...run,
      startBy,
      spec: { ...(run as { spec: object }).spec, cwd: "/mnt/slow" },
    }) as ToRunLane;
  const late = () => batches.flat().filter((m) => m.type === "late");
  try {
    const [held, before] = starts(2);
    lane.receive([inMount(held, 2000), inMount(before, 500)]);
    clock = 4200;
    answer.resolve({ id: "1:2" });
    await waitFor(() => late().length === 2 || null, {
      timeoutMs: 10_000,
      what: "both runs to be late",
      detail: () => JSON.stringify(batches.flat()),
    });
    assertEquals(late(), [
      { type: "late", id: 0, at: 4200, heldBy: checkSlowNote("/mnt/slow", 3200) },
      { type: "late", id: 1, at: 4200, heldBy: null },
    ]);
    assertEquals(
      checkSlowNote("/mnt/slow", 3200),
      "the check of its working directory /mnt/slow took 3.2 s (a slow mount?)",
    );
  } finally {
    lane.close();
  }
});
