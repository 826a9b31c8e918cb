/** Finding a run's processes in /proc: real processes, short ones. */
import { assertEquals } from "./assert.ts";
import {
  bootTicks,
  endedState,
  endRun,
  MARKER_VARIABLE,
  parseStat,
  processStart,
  ProcessTable,
  startIn,
} from "../src/daemon/processes.ts";
import { detachedSleep, waitFor } from "./helpers.ts";

/** A long sleep in a group of its own, carrying run marker `marker`. */
function markedSleep(marker: string): Deno.ChildProcess {
  return detachedSleep({ [MARKER_VARIABLE]: marker });
}

Deno.test("one pass answers queries that share a group id, each by its own marker", async () => {
  const marker = crypto.randomUUID();
  const child = markedSleep(marker);
  try {
    const table = new ProcessTable();
    // A run that ended a while ago, whose group id the new one's shell got since.
    const [old, current] = await Promise.all([
      table.find({ pgid: child.pid, marker: crypto.randomUUID() }),
      table.find({ pgid: child.pid, marker }),
    ]);
    assertEquals(old.map((p) => [p.pid, p.marked]), [[child.pid, false]]);
    assertEquals(current.map((p) => [p.pid, p.marked]), [[child.pid, true]]);
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
});

Deno.test("a process started before a run's first one is not taken for the run's by its marker", async () => {
  const marker = crypto.randomUUID();
  const before = bootTicks();
  const child = markedSleep(marker);
  try {
    // A tick (1/100 s) on from when it had surely started: a run starting now comes after it.
    const started = bootTicks();
    const after = await waitFor(() => bootTicks() > started ? bootTicks() : null, {
      timeoutMs: 5000,
      what: "the boot clock to tick on",
      detail: () => [started, bootTicks()],
    });
    const table = new ProcessTable();
    assertEquals(await table.find({ pgid: null, marker, since: after }), [], "its marker read");
    const found = await table.find({ pgid: null, marker, since: before });
    assertEquals(found.map((p) => [p.pid, p.marked]), [[child.pid, true]]);
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
});

Deno.test("a group that was a run's is not signalled once none of the run's processes is in it", async () => {
  // An unrelated group holding the id of one the run's setsid'd shell led, emptied since:
  // what endRun keeps of such a group when that id is reused within its grace.
  const unrelated = markedSleep(crypto.randomUUID());
  try {
    const run = { marker: crypto.randomUUID(), pgid: null, ownGroup: false };
    const ended = await endRun({ ...run, groups: new Set([unrelated.pid]) }, 200);
    assertEquals([ended.found, ended.killed], [[], false]);
    assertEquals(processStart(unrelated.pid) !== null, true, "the unrelated group was signalled");
  } finally {
    // A zombie (ended, not reaped yet) reads null: only a live one is killed.
    if (processStart(unrelated.pid) !== null) unrelated.kill("SIGKILL");
    await unrelated.status;
  }
});

Deno.test("a process dead (X) or a zombie (Z) has no start, as presence judges it ended; a sleeping one has", () => {
  // A /proc/PID/stat line whose name holds a space and parentheses; start (field 22) 4242.
  const stat = (state: string) =>
    `123 (a (b) c) ${state} 1 123 123 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 4242 1 2 3`;
  const starts = ["S", "R", "D", "Z", "X"].map((state) => {
    const fields = parseStat(stat(state));
    return [state, startIn(fields), endedState(fields[0])];
  });
  assertEquals(starts, [
    ["S", 4242, false],
    ["R", 4242, false],
    ["D", 4242, false],
    ["Z", null, true],
    ["X", null, true],
  ]);
});
