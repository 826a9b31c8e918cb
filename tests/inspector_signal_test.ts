/**
 * When the inspector's SIGUSR1 handler is looked for (daemon/inspector_signal.ts):
 * Deno installs it 500 ms after its start, later in a busy one; until the
 * next look replaces it with an ignore, the signal opens the inspector.
 */
import { assert, assertEquals } from "./assert.ts";
import { nextLookIn } from "../src/daemon/inspector_signal.ts";

Deno.test("inspector signal: looks come 2 ms apart from 400 ms to 1.5 s after the start, 100 ms apart elsewhere", () => {
  // Far before: 100 ms apart, but never past the close stretch's start.
  assertEquals([nextLookIn(5), nextLookIn(350)], [100, 50]);
  for (let age = 400; age < 1500; age += 7) {
    assert(nextLookIn(age) <= 2, `${nextLookIn(age)} ms between looks at ${age} ms`);
  }
  assertEquals([nextLookIn(1500), nextLookIn(9000)], [100, 100]);
});
