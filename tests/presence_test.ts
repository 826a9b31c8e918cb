/**
 * kill(2) with signal 0 (src/daemon/presence.ts): a process that is gone
 * is told from one this process may signal. (One it may not, another
 * user's, needs another user: `other` is not tested here.)
 */
import { assertEquals } from "./assert.ts";
import { presence } from "../src/daemon/presence.ts";

Deno.test("presence: this process is ours; an ended child's pid and an empty group are gone", async () => {
  assertEquals(presence(Deno.pid), "ours");
  const child = new Deno.Command("true").spawn();
  await child.status;
  assertEquals(presence(child.pid), "gone");
  // Its own group, ended with it.
  assertEquals(presence(-child.pid), "gone");
  assertEquals([presence(0), presence(-1)], ["unknown", "unknown"]);
});
