/**
 * A run's output reaches jm_runs whole, on every backend: a NUL byte no
 * longer cuts it (SQLite reads text up to the first NUL), and bytes that
 * are not UTF-8 are kept as `\xNN` instead of lost to U+FFFD. In-process,
 * fake clock, a real process.
 */
import { assertEquals, assertMatch } from "./assert.ts";
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

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: a process that left its run's group is ended and named in the run's note`, async () => {
    const seconds = `300.${Math.floor(Math.random() * 100_000)}`;
    const ready = await Deno.makeTempFile();
    await Deno.remove(ready);
    await using h = await DaemonHarness.create(await freshDatabase(backend), { realRuns: true });
    // The job ends once the process has left its group.
    await h.job("escapes", {
      schedule: { second: "1" },
      command: `setsid sh -c 'touch ${ready}; exec sleep ${seconds}' >/dev/null 2>&1 &
        while [ ! -e ${ready} ]; do sleep 0.01; done; rm ${ready}; echo started`,
    });
    await h.start();
    await h.clock.set(T0 + 1000);
    const run = await h.run("escapes", T0 + 1000, "success");
    assertEquals(run.stdout, "started\n");
    // Found a little after the run's end, with the runs that end meanwhile.
    const noted = await h.until(
      async () => (await h.runs("escapes")).find((r) => r.note !== null),
      "the run's note to name the process that left its group",
    );
    assertMatch(
      noted.note!,
      new RegExp(
        `^1 process had left the run's process group and still ran after it: pid \\d+ \\(sleep ${
          seconds.replace(".", "\\.")
        }\\); ended with SIGTERM$`,
      ),
    );
  });
}

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: output of backslashes and empty lines at the largest output_cap is stored`, async () => {
    // mysql2 escapes each in the statement: two streams of 4 MiB were 16 MiB, over MySQL's packet.
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      realRuns: true,
      settings: { "jobsmanager.output_cap": 4 * 1024 * 1024 },
    });
    await h.job("escapes", {
      schedule: { second: "1" },
      command: String
        .raw`head -c 5000000 /dev/zero | tr '\0' '\\'; head -c 5000000 /dev/zero | tr '\0' '\n' >&2`,
    });
    await h.start();
    await h.clock.set(T0 + 1000);
    // 16 MiB in one statement: a few seconds alone, beyond the usual wait on a loaded machine (CI).
    const run = await h.until(
      async () => (await h.runs("escapes")).find((r) => r.status === "success"),
      "the run of escapes recorded success",
      90_000,
    );
    for (
      const [name, text, char] of [["stdout", run.stdout!, "\\"], ["stderr", run.stderr!, "\n"]]
    ) {
      assertMatch(text, /\[… jobsmanager cut \d+ bytes of 5000000 …\]/, name);
      // Each counts 2 as the statement carries it: half the cap kept.
      assertEquals(text.split(char).length - 1, 2 * 1024 * 1024 + (char === "\n" ? 2 : 0), name);
    }
  });
}
