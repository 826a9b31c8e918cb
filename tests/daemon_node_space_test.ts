/**
 * A service's pid is looked up only by a process of its boot and pid
 * namespace (jm_nodes.boot_id and pid_ns): a service in a container given
 * this host's name has pids this host does not know. Its node id is not
 * taken at a start while it beats, and `status` judges it by its
 * heartbeat; where the pid can be looked up, a gone one is dead at once.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { DaemonHarness, NODE_ID } from "./daemon_harness.ts";
import { BACKENDS, freshDatabase, serviceRow } from "./helpers.ts";
import { health } from "../src/app/status.ts";
import { hereSpace, serviceGone } from "../src/daemon/presence.ts";
import type { Node } from "../src/domain/node.ts";
import type { Store } from "../src/store/store.ts";

const HEARTBEAT_MS = 60_000;

/** A pid no process has any more. */
async function deadPid(): Promise<number> {
  const child = new Deno.Command("true").spawn();
  await child.status;
  return child.pid;
}

/** Another pid namespace of this boot: a container's. */
function containerSpace(): Pick<Node, "boot_id" | "pid_ns"> {
  const here = hereSpace();
  return { boot_id: here.boot_id, pid_ns: here.pid_ns! + 1 };
}

/**
 * `id`'s row as a service of `host` (the harness's by default) whose last
 * heartbeat is `agoMs` old.
 */
async function beating(
  store: Store,
  id: string,
  pid: number,
  space: Pick<Node, "boot_id" | "pid_ns">,
  { agoMs = 0, host = "test" } = {},
): Promise<Node> {
  const row: Node = {
    ...serviceRow(id),
    host,
    pid,
    ...space,
    db_heartbeat_at: await store.databaseNow() - agoMs,
    heartbeat_ms: HEARTBEAT_MS,
  };
  await store.saveNode(row);
  return row;
}

/** What the daemon's start threw; fails when it started. */
async function refusal(h: DaemonHarness): Promise<Error> {
  return await h.until(() => {
    try {
      if (h.ended || h.line(/^loaded \d+ enabled jobs/)) throw new Error("the daemon started");
      return null;
    } catch (error) {
      return error as Error;
    }
  }, "the start to be refused");
}

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: a service of another pid namespace with this host's name keeps its node id while it beats, though its pid is not running here`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    const pid = await deadPid();
    await beating(h.store, NODE_ID, pid, containerSpace());
    await h.start({ wait: false });
    const error = await refusal(h);
    assertMatch(
      error.message,
      new RegExp(
        `^node id "${NODE_ID}" is in use by a live service \\(pid ${pid} on test, last heartbeat \\d+ s ago; this process cannot look its pid up: it runs in another pid namespace \\(a container given this host's name\\); judged by its heartbeat, it is gone only once that is 180 s old\\); give each service on this database its own`,
      ),
    );
    const [row] = (await h.store.nodesAndNow()).nodes;
    assertEquals([row.pid, row.pid_ns], [pid, containerSpace().pid_ns], "its row is untouched");
  });

  Deno.test(`daemon[${backend}]: a row of an older release (no boot or pid namespace) with this host's name is judged by its heartbeat alone`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    const pid = await deadPid();
    await beating(h.store, NODE_ID, pid, { boot_id: null, pid_ns: null });
    await h.start({ wait: false });
    assertMatch(
      (await refusal(h)).message,
      /this process cannot look its pid up: its row does not say which boot and pid namespace it runs in \(an older release\); judged by its heartbeat/,
    );
  });

  Deno.test(`daemon[${backend}]: a live service of this pid namespace keeps its node id, and the refusal says how old its heartbeat is`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    // This process's own pid: one that runs.
    await beating(h.store, NODE_ID, Deno.pid, hereSpace(), { agoMs: 30_000 });
    await h.start({ wait: false });
    const { message } = await refusal(h);
    const said = message.match(
      new RegExp(
        `^node id "${NODE_ID}" is in use by a live service \\(pid ${Deno.pid} on test, last heartbeat (\\d+) s ago\\); give each service on this database its own: set jobsmanager.node_id in the config or JM_NODE_ID, or leave both empty for an automatic one$`,
      ),
    );
    assert(said !== null, message);
    // Saved 30 s old by the database's clock, read a moment later (a busy machine: some seconds).
    const age = Number(said[1]);
    assert(age >= 30 && age < 90, `heartbeat said ${age} s old: ${message}`);
  });

  Deno.test(`daemon[${backend}]: a crashed service of this boot and pid namespace gives up its node id at once, its heartbeat fresh`, async () => {
    await using h = await DaemonHarness.create(await freshDatabase(backend));
    await beating(h.store, NODE_ID, await deadPid(), hereSpace());
    await h.start();
    const [row] = (await h.store.nodesAndNow()).nodes;
    assertEquals([row.id, row.pid, row.boot_id, row.pid_ns], [
      NODE_ID,
      Deno.pid,
      hereSpace().boot_id,
      hereSpace().pid_ns,
    ]);
  });

  Deno.test(`status[${backend}]: a service whose pid is gone is dead at once where its boot and pid namespace are this process's; elsewhere, judged by its heartbeat`, async () => {
    await using db = await freshDatabase(backend);
    const store = db.open();
    try {
      await store.migrate();
      const pid = await deadPid();
      const host = Deno.hostname();
      await beating(store, "here", pid, hereSpace(), { host });
      await beating(store, "container", pid, containerSpace(), { host });
      // Two and a half heartbeats old: live by its heartbeat for half a heartbeat more.
      await beating(store, "older", pid, { boot_id: null, pid_ns: null }, {
        agoMs: 2.5 * HEARTBEAT_MS,
        host,
      });
      const { services } = await health(store, {
        now: Date.now(),
        heartbeatMs: HEARTBEAT_MS,
        presence: { gone: (node) => serviceGone(node) },
      });
      assertEquals(
        services.map((n) => [n.id, n.state, n.gone]).sort(),
        [["container", "live", false], ["here", "dead", true], ["older", "live", false]],
      );
    } finally {
      await store.close();
    }
  });
}
