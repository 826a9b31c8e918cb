/**
 * A node whose id another service took while it sent no heartbeat (it was
 * paused, then resumed: atk214 ran both, one job twice at once, and rows
 * left `running` for good) stops at once when it looks again: it
 * interrupts its runs, recorded so, writes neither its heartbeat nor its
 * stop over the other's row, and says why. In-process, fake clock, both
 * backends.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { BACKENDS, freshDatabase, rawQuery } from "./helpers.ts";
import { DaemonHarness, T0 } from "./daemon_harness.ts";

const at = (s: number) => T0 + s * 1000;

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: a node whose id another service took stops at once, ends its runs, and writes nothing over the other's`, async () => {
    const db = await freshDatabase(backend);
    await using h = await DaemonHarness.create(db);
    // Once a minute: no other fire comes while the node looks.
    await h.job("tick", { schedule: { second: "1" } });
    await h.start();
    await h.clock.set(at(1));
    const run = await h.started("tick", at(1));
    // Another service registers the id, as one does once this one counts as dead.
    await h.sql("UPDATE jm_nodes SET pid = 4242, host = 'elsewhere', started_at = ? WHERE id = ?", [
      at(1),
      h.nodeId,
    ]);
    await h.until(async () => {
      if (!h.line(/was taken by another service/)) await h.clock.advance(1000);
      return h.line(/was taken by another service/);
    }, "the node to find its id taken");
    await h.until(() => Promise.resolve(!run.running || null), "its run to be ended");
    let error: unknown = null;
    await h.until(() => {
      try {
        return Promise.resolve(h.ended || null);
      } catch (e) {
        error = e;
        return Promise.resolve(true);
      }
    }, "the daemon to stop");
    assertMatch(
      String(error),
      /node id "[^"]+" was taken by another service \(pid 4242 on elsewhere, started .*\) while this one sent no heartbeat \(paused, or cut off from the database\); this one stopped: start it again only once that one has stopped/,
    );
    assertMatch(
      h.line(/was taken by another service/)!,
      /: this one stops at once, interrupting its runs, so that no job runs twice under one node id$/,
    );
    assert(h.line(/^stopping: 1 runs running, interrupted now$/), h.lines.join("\n"));
    const [row] = await rawQuery(db, "SELECT pid, host, stopped_at, leaving_at FROM jm_nodes");
    assertEquals(
      [Number(row.pid), row.host, row.stopped_at, row.leaving_at],
      [4242, "elsewhere", null, null],
      "the other service's row was written over",
    );
    // Interrupted at once, not given shutdown_timeout; no fire since.
    assertEquals((await h.runs("tick")).map((r) => [r.scheduled_at - T0, r.status]), [
      [1000, "interrupted"],
    ]);
  });
}

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: a node whose row an older service wrote over (the one it took the id from) keeps its id and writes its row back`, async () => {
    const db = await freshDatabase(backend);
    await using h = await DaemonHarness.create(db);
    await h.job("tick", { schedule: { second: "1" } });
    await h.start();
    const [own] = await rawQuery(db, "SELECT started_at FROM jm_nodes");
    // The service this one took the id from, resumed, its look failed: its heartbeat over this one's.
    await h.sql("UPDATE jm_nodes SET pid = 4242, host = 'elsewhere', started_at = ? WHERE id = ?", [
      Number(own.started_at) - 60_000,
      h.nodeId,
    ]);
    await h.until(async () => {
      const [row] = await rawQuery(db, "SELECT pid FROM jm_nodes");
      if (Number(row.pid) === 4242) await h.clock.advance(1000);
      return Number(row.pid) !== 4242;
    }, "the node to write its row back");
    assertEquals(h.line(/was taken by another service/), undefined);
    // It fires on: its fire at 1 s, which the clock passed meanwhile.
    await h.started("tick", at(1));
  });
}
