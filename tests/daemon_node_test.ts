/**
 * What the daemon's heartbeat tells the CLI in jm_nodes: the zone it fires
 * jobs without a zone in, so `job list` shows them in that zone.
 */
import { assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase } from "./helpers.ts";
import { DaemonHarness } from "./daemon_harness.ts";
import { openStore } from "../src/store/open.ts";

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: the heartbeat reports the zone of jobs without one`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "jobsmanager.timezone": "Asia/Tokyo" },
    });
    await h.start();
    const node = await h.until(
      async () => (await h.store.listNodes()).find((n) => n.timezone !== null),
      "a heartbeat with a zone",
    );
    assertEquals(node.timezone, "Asia/Tokyo");
  });
}

Deno.test("daemon[sqlite]: a service that creates its database says so; one that opens it, not", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-new-db-" });
  const path = `${dir}/new.db`;
  const created = /^created a new, empty database/;
  try {
    for (const expected of [true, false]) {
      await using h = await DaemonHarness.create(await freshDatabase("sqlite"), {
        store: () => openStore({ kind: "sqlite", path }),
      });
      await h.start();
      assertEquals(
        h.line(created),
        expected
          ? `created a new, empty database sqlite:${path}; add jobs with \`jobsmanager job add --database sqlite:${path} …\``
          : undefined,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
