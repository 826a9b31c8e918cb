/**
 * kill(2) with signal 0 (src/daemon/presence.ts): a process that is gone
 * is told from one this process may signal. (One it may not, another
 * user's, needs another user: `other` is not tested here.) A service's
 * pid is its own only if the process that has it started no later than
 * the service did: a pid taken after the service died is another's. A
 * zombie (killed, not reaped yet) has its pid and runs nothing.
 */
import { assertEquals } from "./assert.ts";
import { hereSpace, presence, serviceGone, serviceRuns } from "../src/daemon/presence.ts";
import { zombie } from "./zombie.ts";

Deno.test("presence: this process is ours; an ended child's pid and an empty group are gone", async () => {
  assertEquals(presence(Deno.pid), "ours");
  const child = new Deno.Command("true").spawn();
  await child.status;
  assertEquals(presence(child.pid), "gone");
  // Its own group, ended with it.
  assertEquals(presence(-child.pid), "gone");
  assertEquals([presence(0), presence(-1)], ["unknown", "unknown"]);
});

Deno.test("presence: a service runs only if the process with its pid started no later than it did", async () => {
  const here = hereSpace();
  assertEquals(serviceRuns({ pid: Deno.pid, started_at: Date.now(), ...here }), "runs");
  // A process started after the service (an hour ago): the pid was taken after it died.
  const child = new Deno.Command("sleep", { args: ["300"], stdout: "null", stderr: "null" })
    .spawn();
  try {
    assertEquals(
      serviceRuns({ pid: child.pid, started_at: Date.now() - 3_600_000, ...here }),
      "no",
    );
  } finally {
    child.kill();
    await child.status;
  }
});

Deno.test("presence: a service killed and not reaped yet (a zombie) is gone, and does not run", async () => {
  await using killed = await zombie();
  // Its row written after its process started: were it not a zombie, it would run.
  const node = { pid: killed.pid, started_at: Date.now(), ...hereSpace() };
  assertEquals(presence(killed.pid), "ours", "kill(2) still finds a zombie");
  assertEquals([serviceGone(node), serviceRuns(node)], [true, "no"]);
});
