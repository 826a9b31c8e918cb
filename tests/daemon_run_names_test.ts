/**
 * How log lines name a run that started while the database was away, in-process
 * with a fake clock, on every backend: before its row exists, by its job and fire
 * time ("no row yet"), never by its provisional id; the line that writes its row
 * ties the two; every line after names the row's id.
 */
import { assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase } from "./helpers.ts";
import { cuttable, DaemonHarness, T0 } from "./daemon_harness.ts";
import { cancelRun } from "../src/app/runs.ts";

const at = (s: number) => T0 + s * 1000;
const iso = (ms: number) => new Date(ms).toISOString();

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: a run started during an outage is named by its fire time till its row is written, by the row's id after`, async () => {
    const db = await freshDatabase(backend);
    const link = { down: false };
    await using h = await DaemonHarness.create(db, { store: cuttable(db, link) });
    await h.job("long", { schedule: { second: "1" } });
    await h.job("brief", { schedule: { second: "2" } });
    await h.start();
    link.down = true;
    // long starts and goes on, brief starts and ends, both before their rows exist.
    await h.clock.set(at(1));
    const long = await h.started("long", at(1));
    await h.until(() => h.line(/^the database is unreachable/), "the outage to be seen");
    await h.clock.set(at(2));
    (await h.started("brief", at(2))).finish();
    const noRow = (job: string, s: number) => `job ${job} run fired at ${iso(at(s))} (no row yet)`;
    await h.until(() => h.line(/^job brief run .*ended success/), "brief's end to be logged");
    const said = (text: string) => h.lines.some((l) => l.endsWith(`: ${text}`));
    for (
      const text of [
        `${noRow("long", 1)} started, 0 ms after its fire time`,
        `${noRow("brief", 2)} started, 0 ms after its fire time`,
        `${noRow("brief", 2)} ended success (exit 0) after 0 ms, 0 bytes of output`,
      ]
    ) assertEquals(said(text), true, `${text}\n--- lines:\n${h.lines.join("\n")}`);
    // Back: the rows are written, each line that does so names the id its run got.
    link.down = false;
    await h.databaseBack();
    const longRow = await h.run("long", at(1), "running");
    const briefRow = await h.run("brief", at(2), "success");
    const tie = (job: string, s: number, id: number) =>
      `job ${job}: its run fired at ${iso(at(s))} (no row yet) is run ${id}: its row is written`;
    await h.until(
      () => said(tie("long", 1, longRow.id)) && said(tie("brief", 2, briefRow.id)),
      `the rows' ids ${longRow.id} and ${briefRow.id} to be said`,
    );
    // A cancel and the end after it name long's row.
    const asked = h.clock.now();
    await cancelRun(h.store, longRow.id, { by: "ops@box", now: asked });
    await h.until(async () => {
      if (long.interrupted) return true;
      await h.clock.advance(1000);
      return false;
    }, "long to be ended");
    await h.run("long", at(1), "cancelled");
    for (
      const text of [
        `job long run ${longRow.id}: cancelled by ops@box at ${iso(asked)}; ending it`,
        `job long run ${longRow.id} ended cancelled`,
      ]
    ) {
      await h.until(
        () => h.lines.some((l) => l.startsWith(`runner: ${text}`)),
        `"${text}" to be logged; lines:\n${h.lines.join("\n")}`,
      );
    }
    const provisional = h.lines.filter((l) => /\brun -\d/.test(l));
    assertEquals(provisional, [], "no line names a provisional id");
  });
}
