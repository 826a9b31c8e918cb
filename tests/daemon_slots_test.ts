/** The slot gate on its own: skip, wait or start, from max_instances and max_workers. */
import { assert, assertEquals, assertThrows } from "./assert.ts";
import { SlotGate } from "../src/daemon/slots.ts";

Deno.test("slots: max_instances slots per job, then null; a release frees one", () => {
  const gate = new SlotGate(10);
  const a1 = gate.tryAcquire("a", 2)!;
  const a2 = gate.tryAcquire("a", 2)!;
  assertEquals(gate.tryAcquire("a", 2), null);
  assert(gate.tryAcquire("b", 1) !== null, "another job has slots of its own");
  assertEquals([gate.held("a"), gate.held("b")], [2, 1]);
  a1.release();
  assertEquals(gate.held("a"), 1);
  assert(gate.tryAcquire("a", 2) !== null);
  a2.release();
  a2.release();
  assertEquals(gate.held("a"), 1, "a second release changes nothing");
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
  assertEquals([second.working, gate.workerFree], [true, false]);
  second.release();
  assertEquals([gate.workerFree, gate.held("b")], [true, 0]);
});

Deno.test("slots: a waiting slot released gives back no worker it did not have", () => {
  const gate = new SlotGate(1);
  const running = gate.tryAcquire("a", 5)!;
  const waiting = gate.tryAcquire("a", 5)!;
  waiting.release();
  assertEquals([gate.workerFree, gate.held("a")], [false, 1]);
  assertThrows(() => waiting.work(), Error, "a released slot of job a cannot take a worker");
  running.release();
  assert(gate.workerFree);
});

Deno.test("slots: Infinity (a forced run) ignores max_instances but holds a slot", () => {
  const gate = new SlotGate(5);
  gate.tryAcquire("a", 1);
  const forced = gate.tryAcquire("a", Infinity)!;
  assertEquals([forced.working, gate.held("a")], [true, 2]);
  assertEquals(gate.tryAcquire("a", 1), null);
});
