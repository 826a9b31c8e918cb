/**
 * A run's output reaches jm_runs whole, on every backend: a NUL byte no
 * longer cuts it (SQLite reads text up to the first NUL), and bytes that
 * are not UTF-8 are kept as `\xNN` instead of lost to U+FFFD. In-process,
 * fake clock, a real process.
 */
import { assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase } from "./helpers.ts";
import { DaemonHarness, T0 } from "./daemon_harness.ts";

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: output with NUL and bytes that are not UTF-8 is stored whole`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), { realRuns: true });
    await h.job("bytes", {
      schedule: { second: "1" },
      command: String.raw`printf 'a\000b\377c\n'; printf 'x\000y' >&2`,
    });
    await h.start();
    await h.clock.set(T0 + 1000);
    const run = await h.run("bytes", T0 + 1000, "success");
    assertEquals([run.stdout, run.stderr], ["a\\x00b\\xffc\n", "x\\x00y"]);
  });
}
