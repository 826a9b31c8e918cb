/**
 * The service's real clock follows the system's wall clock: a clock
 * stepped while the service runs moves its fires with it. Date.now is
 * replaced here (this file's isolate only) to stand for a stepped clock.
 */
import { systemClock } from "../src/daemon/clock.ts";
import { assert } from "./assert.ts";

const realNow = Date.now;

async function withWallClockOff<T>(offsetMs: number, body: () => Promise<T> | T): Promise<T> {
  Date.now = () => realNow() + offsetMs;
  try {
    return await body();
  } finally {
    Date.now = realNow;
  }
}

for (const offset of [600_000, -120_000]) {
  Deno.test(`systemClock: a wall clock stepped by ${offset / 1000} s is the time read at once`, async () => {
    const read = await withWallClockOff(offset, () => systemClock.now());
    const expected = realNow() + offset;
    // Read a moment apart: the step, not those moments, is what is compared.
    assert(
      Math.abs(read - expected) < 1000,
      `read ${new Date(read).toISOString()}, the stepped wall clock says ${
        new Date(expected).toISOString()
      }`,
    );
  });
}

Deno.test("systemClock: a precise sleep ends no earlier than its end on the wall clock", async () => {
  // A wall clock slewed slower than the monotonic one (NTP bringing it
  // back): the fire's instant is the wall clock's.
  const from = realNow();
  Date.now = () => Math.floor(from + (realNow() - from) * 0.85);
  try {
    for (let i = 0; i < 5; i++) {
      const end = Date.now() + 20;
      await systemClock.sleep(20, undefined, true);
      const at = Date.now();
      assert(at >= end, `woke at ${at}, ${end - at} ms before the instant it slept for (${end})`);
    }
  } finally {
    Date.now = realNow;
  }
});
