/**
 * The service on a SQLite database whose filesystem fills up, for real (a
 * tmpfs, so root only): jobs keep firing, the refusal is logged once, with
 * the file and the fix, not at every fire; the run records wait and are
 * written once space is freed. In-process, fake clock.
 */
import { assert, assertEquals } from "./assert.ts";
import { DaemonHarness, T0 } from "./daemon_harness.ts";
import { ROOT, skipLine, TinyFilesystem } from "./tiny_filesystem.ts";

const at = (s: number) => T0 + s * 1000;
const FULL = /the filesystem holding \S+ is full .*; free space on it/;
const WRITTEN = /^wrote \d+ run records the database had refused$/;

skipLine("the service on a full filesystem");

Deno.test({
  name:
    "daemon[sqlite]: a full disk is logged once, and the runs fired meanwhile are written once space is freed",
  ignore: !ROOT,
  async fn() {
    await using fs = await TinyFilesystem.mount();
    await using h = await DaemonHarness.create(fs.database());
    await h.job("tick", { schedule: { second: "*" } });
    await h.start();
    await h.clock.set(at(1));
    (await h.started("tick", at(1))).finish();
    await h.run("tick", at(1), "success");
    await fs.fill();
    for (let s = 2; s <= 5; s++) {
      await h.clock.set(at(s));
      (await h.started("tick", at(s))).finish();
    }
    await h.until(() => h.count(FULL) > 0, "the full disk to be logged");
    const errors = h.lines.filter((_, i) => h.logs[i].level === "error");
    assertEquals(errors.length, 1, h.lines.join("\n"));
    assert(FULL.test(errors[0]), errors[0]);
    await fs.free();
    // The refused records are retried after 1 s, 2 s, 4 s …
    await h.until(async () => {
      if (!h.line(WRITTEN)) await h.clock.advance(1000);
      return h.line(WRITTEN);
    }, "the waiting run records to be written");
    for (let s = 2; s <= 5; s++) await h.run("tick", at(s), "success");
  },
});
