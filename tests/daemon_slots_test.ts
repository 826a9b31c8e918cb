/** The slot gate on its own: skip, wait or start, from max_instances and max_workers. */
import { assert, assertEquals, assertThrows } from "./assert.ts";
import { SlotGate } from "../src/daemon/slots.ts";

Deno.test("slots: max_instances slots per job, then null; a release frees one", () => {
  const gate = new SlotGate(10);
  const a1 = gate.tryAcquire("a", 2)!;
  const a2 = gate.tryAcquire("a", 2)!;
  assertEquals(gate.tryAcquire("a", 2), null);
  assert(gate.tryAcquire("b", 1) !== null, "another job has slots of its own");
  assertEquals([gate.held("a"), gate.held("b"), gate.working], [2, 1, 3]);
  a1.release();
  assertEquals(gate.held("a"), 1);
  assert(gate.tryAcquire("a", 2) !== null);
  a2.release();
  a2.release();
  assertEquals([gate.held("a"), gate.working], [1, 2], "a second release changes nothing");
});

Deno.test("slots: beyond max_workers a slot waits, and takes a worker once one is free", () => {
  const gate = new SlotGate(1);
  const first = gate.tryAcquire("a", 1)!;
  const second = gate.tryAcquire("b", 1)!;
  assertEquals([first.working, second.working, gate.workerFree], [true, false, false]);
  // A waiting slot still counts against max_instances.
  assertEquals(gate.tryAcquire("b", 1), null);
  assertEquals(second.work(), false);
  first.release();
  assert(gate.workerFree);
  assertEquals(second.work(), true);
  assertEquals([second.working, gate.working, gate.workerFree], [true, 1, false]);
  second.release();
  assertEquals([gate.working, gate.held("b")], [0, 0]);
});

Deno.test("slots: a waiting slot released gives back no worker it did not have", () => {
  const gate = new SlotGate(1);
  const running = gate.tryAcquire("a", 5)!;
  const waiting = gate.tryAcquire("a", 5)!;
  waiting.release();
  assertEquals([gate.working, gate.held("a")], [1, 1]);
  assertThrows(() => waiting.work(), Error, "a released slot of job a cannot take a worker");
  running.release();
  assertEquals(gate.working, 0);
});

Deno.test("slots: Infinity (a forced run) ignores max_instances but holds a slot", () => {
  const gate = new SlotGate(5);
  gate.tryAcquire("a", 1);
  const forced = gate.tryAcquire("a", Infinity)!;
  assertEquals([forced.working, gate.held("a")], [true, 2]);
  assertEquals(gate.tryAcquire("a", 1), null);
});
