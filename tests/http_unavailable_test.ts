/**
 * The 503 log (src/http/unavailable.ts) on an injected clock: a warning
 * at most once a minute for each kind, and the end of its cause said
 * at most once a minute too, however often the cause comes and goes.
 */
import { assertEquals, assertMatch } from "./assert.ts";
import { captureLogs } from "./helpers.ts";
import { UnavailableLog } from "../src/http/unavailable.ts";

Deno.test("503 log: a cause that comes and goes each second for two minutes says at most two lines a minute, and every 503", async () => {
  await using log = await captureLogs("debug");
  let now = 0;
  const unavailable = new UnavailableLog(() => now);
  const refused = { method: "GET", path: "/api/v1/events", error: "too many live streams" };
  for (let s = 0; s < 120; s++) {
    now = s * 1000;
    unavailable.refused("StreamCapError", refused);
    now += 500;
    unavailable.answered("GET", "/api/v1/events", 200);
  }
  unavailable.stopped();
  const said = log.leveled().filter((line) => line.startsWith("warning"));
  // At 0 s the first 503; at 1.5 s the end of the one at 1 s; at 60 s the 503s since;
  // at 61.5 s the end of the one at 61 s; as the server stops, the rest.
  assertEquals(said.length, 5, said.join("\n"));
  const counts = said.map((line) => Number(/since it was last said: (\d+)/.exec(line)![1]));
  assertEquals(counts, [1, 1, 59, 1, 58], said.join("\n"));
  assertMatch(said[1], /^warning: GET \/api\/v1\/events answered 200 again; /);
});
