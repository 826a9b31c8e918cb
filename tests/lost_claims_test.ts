/**
 * LostClaims (lost_claims.ts) on its own: what it keeps is bounded, the
 * oldest forgotten first.
 */
import { assertEquals } from "./assert.ts";
import { LostClaims } from "../src/daemon/lost_claims.ts";
import { FakeClock } from "./fake_clock.ts";
import type { LostClaim } from "../src/store/store.ts";

Deno.test("lost claims: past 10,000 kept, the oldest are forgotten", () => {
  const ended: LostClaim[][] = [];
  const lost = new LostClaims(
    {
      missLostClaims: (claims) => {
        ended.push([...claims]);
        return Promise.resolve([]);
      },
    },
    new FakeClock(0),
    () => {},
  );
  const rows = Array.from({ length: 10_002 }, (_, i) => ({
    job_id: `j${i}`,
    scheduled_at: 1000,
    status: "running" as const,
    trigger: "schedule" as const,
    marker: `m${i}`,
  }));
  lost.keep(rows);
  assertEquals([lost.marker("j0", 1000), lost.marker("j1", 1000)], [undefined, undefined]);
  assertEquals([lost.marker("j2", 1000), lost.marker("j10001", 1000)], ["m2", "m10001"]);
  lost.end();
  assertEquals(ended.map((claims) => claims.length), [10_000]);
});
