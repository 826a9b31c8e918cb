/**
 * The store contract of NotifyStore (store.ts): a notification claimed
 * once, held back within min_interval and handed over after, held-back
 * ones taken by one caller, the questions asked of jm_runs, and retention.
 */
import { assertEquals } from "./assert.ts";
import type { NotificationClaim, Store } from "../src/store/store.ts";
import { FAILURE_STATUSES } from "../src/domain/notify.ts";
import { contract, countRows, fire, job } from "./store_contract.ts";
import { rawQuery } from "./helpers.ts";

const MINUTE = 60_000;

function claim(ref: number, at: number, extra: Partial<NotificationClaim> = {}): NotificationClaim {
  return {
    job_id: "a",
    event: "failure",
    ref,
    status: "failed",
    at,
    node_id: "n1",
    minIntervalMs: MINUTE,
    payload: JSON.stringify({ ref }),
    ...extra,
  };
}

contract(
  "claimNotification",
  "one claim per job, event and run, whoever asks",
  async ({ store }) => {
    assertEquals(await store.claimNotification(claim(1, 1000)), { send: true, heldBack: null });
    assertEquals(await store.claimNotification(claim(1, 1000, { node_id: "n2" })), null);
    // Another event of the same run is another notification (on_success is never held).
    assertEquals(
      await store.claimNotification(claim(1, 1000, { event: "success", minIntervalMs: null })),
      { send: true, heldBack: null },
    );
  },
);

contract(
  "claimNotification",
  "within min_interval it holds; after, it sends with what was held",
  async ({ db, store }) => {
    await store.claimNotification(claim(1, 1000));
    // Held till a minute after the last one sent.
    assertEquals(await store.claimNotification(claim(2, 2000)), {
      send: false,
      dueAt: 1000 + MINUTE,
    });
    assertEquals(
      await store.claimNotification(claim(3, 3000, { status: "timeout" })),
      { send: false, dueAt: 1000 + MINUTE },
    );
    assertEquals(await countRows(db, "jm_notifications", "outcome = 'held'"), 2);
    assertEquals(await store.claimNotification(claim(4, 1000 + MINUTE)), {
      send: true,
      heldBack: { count: 2, since: 2000, statuses: { failed: 1, timeout: 1 } },
    });
    assertEquals(await store.claimNotification(claim(5, 2000 + MINUTE)), {
      send: false,
      dueAt: 1000 + 2 * MINUTE,
    });
  },
);

contract(
  "claimNotification",
  "claims committed out of the order of their `at` are held only within min_interval of each other",
  async ({ db, store }) => {
    // Another node's clock, read before its transaction, is ahead: its claim of a later `at` commits first.
    assertEquals(await store.claimNotification(claim(2, 5000, { minIntervalMs: 0 })), {
      send: true,
      heldBack: null,
    });
    // With notify.min_interval 0 nothing is held, whatever the order.
    assertEquals(await store.claimNotification(claim(1, 4000, { minIntervalMs: 0 })), {
      send: true,
      heldBack: null,
    });
    assertEquals(await countRows(db, "jm_notifications", "outcome = 'held'"), 0);
    // The later one stays the last sent: the hold after it is not shortened.
    const [state] = await rawQuery(
      db,
      "SELECT last_sent_at FROM jm_notify_state WHERE job_id = 'a'",
    );
    assertEquals(Number(state.last_sent_at), 5000);
    // With an interval, one earlier by less than it is held, one earlier by more is not.
    assertEquals(await store.claimNotification(claim(3, 5000 - MINUTE + 1)), {
      send: false,
      dueAt: 5000 + MINUTE,
    });
    assertEquals(await store.claimNotification(claim(4, 5000 - MINUTE)), {
      send: true,
      heldBack: { count: 1, since: 5000 - MINUTE + 1, statuses: { failed: 1 } },
    });
  },
);

/** The pending notifications `mine` may send: its own, and others' claimed at `orphanBefore` or before. */
function pending(
  store: Store,
  mine: string,
  orphanBefore: number,
  more: { writing?: string[]; afterId?: number; limit?: number } = {},
) {
  return store.pendingNotifications({
    mine,
    orphanBefore,
    writing: more.writing ?? [],
    afterId: more.afterId ?? 0,
    limit: more.limit ?? 10,
  });
}

contract(
  "pendingNotifications",
  "a claim to send stays pending, with its payload, until done: for its node at once, for others once old",
  async ({ db, store }) => {
    await store.claimNotification(claim(1, 1000));
    const expected = {
      job_id: "a",
      event: "failure",
      ref: 1,
      node_id: "n1",
      attempt: 0,
      payload: JSON.stringify({ ref: 1 }),
      heldBack: null,
      created_at: 1000,
      tries: 0,
      channels: null,
      retry_at: null,
    };
    const [row] = await pending(store, "n1", 0);
    assertEquals({ ...row, id: 0 }, { ...expected, id: 0 });
    // Another node's: only once claimed at or before `orphanBefore`, and its node no longer writes.
    assertEquals(await pending(store, "n2", 999), []);
    assertEquals((await pending(store, "n2", 1000)).map((p) => p.ref), [1]);
    assertEquals(await pending(store, "n2", 1000, { writing: ["n1", "n2"] }), []);
    await store.notificationDone("a", "failure", 1, "sent");
    assertEquals(await pending(store, "n1", 5000), []);
    assertEquals(
      await countRows(db, "jm_notifications", "outcome = 'sent' AND payload IS NULL"),
      1,
    );
    // Done once: a late second answer does not change it.
    await store.notificationDone("a", "failure", 1, "failed");
    assertEquals(await countRows(db, "jm_notifications", "outcome = 'sent'"), 1);
  },
);

contract(
  "retryNotification",
  "one whose receiver was unreachable waits till its retry, only its post left; given up, it is counted until one sent tells",
  async ({ db, store }) => {
    await store.claimNotification(claim(1, 1000, { minIntervalMs: null }));
    const [first] = await pending(store, "n1", 0);
    assertEquals(first.retry_at, null);
    await store.retryNotification("a", "failure", 1, 20_000, "webhook");
    const [again] = await pending(store, "n1", 0);
    assertEquals(
      [again.tries, again.channels, again.created_at, again.retry_at],
      [1, "webhook", 1000, 20_000],
    );
    // A look that read it before cannot take it.
    assertEquals(await store.takeNotification(first.id, first.attempt, "n1", 20_000), false);
    assertEquals(await store.notificationsPending(), {
      count: 1,
      oldest: 1000,
      retrying: 1,
      nextRetry: 20_000,
    });
    assertEquals(await store.givenUp("a"), 0);
    await store.notificationDone("a", "failure", 1, "given_up");
    // Done once: a second word changes nothing.
    await store.notificationDone("a", "failure", 1, "given_up");
    assertEquals(await countRows(db, "jm_notifications", "outcome = 'given_up'"), 1);
    assertEquals(await store.givenUp("a"), 1);
    assertEquals((await store.notificationsPending()).retrying, 0);
    await store.claimNotification(claim(2, 2000, { minIntervalMs: null }));
    await store.notificationDone("a", "failure", 2, "sent", 1);
    assertEquals(await store.givenUp("a"), 0);
  },
);

contract(
  "claimNotification",
  "with maxPending, a job with that many of the event pending holds the next; takeHeld leaves it held until one is done",
  async ({ db, store }) => {
    const busy = (ref: number, at: number) => claim(ref, at, { minIntervalMs: 0, maxPending: 2 });
    assertEquals(await store.claimNotification(busy(1, 1000)), { send: true, heldBack: null });
    assertEquals(await store.claimNotification(busy(2, 2000)), { send: true, heldBack: null });
    assertEquals(await store.claimNotification(busy(3, 3000)), {
      send: false,
      dueAt: 2000,
      backlog: true,
    });
    // Another event has its own backlog.
    assertEquals(
      await store.claimNotification(claim(3, 3000, { event: "recovery", minIntervalMs: null })),
      { send: true, heldBack: null },
    );
    const full = await store.takeHeld(4000, 0, "n1", 2);
    assertEquals([full.taken, full.lost], [[], []]);
    assertEquals(await countRows(db, "jm_notifications", "outcome = 'held'"), 1);
    await store.notificationDone("a", "failure", 1, "sent");
    const { taken } = await store.takeHeld(5000, 0, "n1", 2);
    assertEquals(taken.map((t) => [t.ref, t.heldBack]), [[3, null]]);
  },
);

contract(
  "dropNotifications",
  "a removed job's pending and held notifications are done with, counted",
  async ({ db, store }) => {
    await store.claimNotification(claim(1, 1000));
    await store.claimNotification(claim(2, 2000));
    await store.claimNotification(claim(3, 1000, { job_id: "b" }));
    assertEquals(await store.dropNotifications("a"), 2);
    assertEquals(await countRows(db, "jm_notifications", "outcome IN ('pending', 'held')"), 1);
    assertEquals(await countRows(db, "jm_notify_state", "job_id = 'a'"), 0);
  },
);

contract(
  "pendingNotifications",
  "a held one is not pending; the one sent after it carries what was held; read a page at a time",
  async ({ store }) => {
    await store.claimNotification(claim(1, 1000));
    await store.notificationDone("a", "failure", 1, "failed");
    assertEquals(await store.claimNotification(claim(2, 2000)), {
      send: false,
      dueAt: 1000 + MINUTE,
    });
    assertEquals(await pending(store, "n1", 0), []);
    await store.claimNotification(claim(3, 1000 + MINUTE, { status: "timeout" }));
    await store.claimNotification(claim(4, 1000, { job_id: "b", minIntervalMs: null }));
    const all = await pending(store, "n1", 0);
    assertEquals(all.map((p) => [p.job_id, p.ref, p.heldBack]), [
      ["a", 3, { count: 1, since: 2000, statuses: { failed: 1 } }],
      ["b", 4, null],
    ]);
    const [first] = await pending(store, "n1", 0, { limit: 1 });
    assertEquals(first.ref, 3);
    assertEquals((await pending(store, "n1", 0, { afterId: first.id })).map((p) => p.ref), [4]);
  },
);

contract(
  "takeNotification",
  "one taker of each attempt; a row taken is young again for the others",
  async ({ store }) => {
    await store.claimNotification(claim(1, 1000));
    const [{ id }] = await pending(store, "n1", 0);
    // Its own node, restarted, and another that saw it stop, both as read at attempt 0.
    assertEquals(await store.takeNotification(id, 0, "n1", 50_000), true);
    assertEquals(await store.takeNotification(id, 0, "n2", 50_000), false);
    assertEquals((await pending(store, "n1", 0)).map((p) => [p.node_id, p.attempt]), [["n1", 1]]);
    // Claimed long ago but taken at 50 s: not another's before then.
    assertEquals(await pending(store, "n2", 49_999), []);
    assertEquals((await pending(store, "n2", 50_000)).map((p) => p.ref), [1]);
    assertEquals(await store.takeNotification(id, 1, "n2", 60_000), true);
    await store.notificationDone("a", "failure", 1, "sent");
    assertEquals(await store.takeNotification(id, 2, "n3", 70_000), false);
  },
);

contract(
  "pruneOlderThan",
  "jm_notifications: a notification still pending is kept, however old",
  async ({ db, store }) => {
    await store.claimNotification(claim(1, 1000, { minIntervalMs: null }));
    await store.claimNotification(claim(2, 1000, { minIntervalMs: null, job_id: "b" }));
    await store.notificationDone("b", "failure", 2, "sent");
    assertEquals(await store.pruneOlderThan("jm_notifications", 3000, 100), 1);
    assertEquals(await countRows(db, "jm_notifications", "outcome = 'pending'"), 1);
  },
);

contract(
  "takeHeld",
  "a held notification whose claim was deleted is said lost, not taken",
  async ({ db, store }) => {
    await store.claimNotification(claim(1, 1000));
    await store.claimNotification(claim(2, 2000));
    await rawQuery(db, "DELETE FROM jm_notifications WHERE ref = 2");
    assertEquals(await store.takeHeld(1000 + MINUTE, MINUTE, "n1"), {
      taken: [],
      nextDueAt: null,
      lost: ["a"],
    });
  },
);

contract(
  "takeHeld",
  "held ones are taken once, after min_interval: the latest made pending, with what came before",
  async ({ db, store }) => {
    await store.claimNotification(claim(1, 1000));
    await store.notificationDone("a", "failure", 1, "sent");
    await store.claimNotification(claim(2, 2000));
    await store.claimNotification(claim(3, 3000, { status: "timeout" }));
    await store.claimNotification(claim(4, 4000));
    // Not due yet: when it will be.
    assertEquals(await store.takeHeld(1000 + MINUTE - 1, MINUTE, "n2"), {
      taken: [],
      nextDueAt: 1000 + MINUTE,
      lost: [],
    });
    const { taken, nextDueAt } = await store.takeHeld(1000 + MINUTE, MINUTE, "n2");
    assertEquals(nextDueAt, null);
    assertEquals(taken.map((t) => ({ ...t, id: 0 })), [{
      id: 0,
      job_id: "a",
      event: "failure",
      ref: 4,
      node_id: "n2",
      attempt: 0,
      payload: JSON.stringify({ ref: 4 }),
      // The one taken stands for itself: two more were held before it.
      heldBack: { count: 2, since: 2000, statuses: { failed: 1, timeout: 1 } },
      created_at: 4000,
      tries: 0,
      channels: null,
      retry_at: null,
    }]);
    assertEquals(await store.takeHeld(1000 + MINUTE, MINUTE, "n3"), {
      taken: [],
      nextDueAt: null,
      lost: [],
    });
    // Pending as any other, n2's, until done.
    assertEquals((await pending(store, "n2", 0)).map((p) => [p.ref, p.heldBack?.count]), [[4, 2]]);
    assertEquals(await countRows(db, "jm_notifications", "outcome = 'held'"), 2);
    await store.notificationDone("a", "failure", 4, "sent");
    assertEquals(await pending(store, "n2", 0), []);
    // Taken means notified then: the next one within min_interval of it is held.
    assertEquals(await store.claimNotification(claim(5, 2000 + MINUTE)), {
      send: false,
      dueAt: 1000 + 2 * MINUTE,
    });
  },
);

contract(
  "takeHeld",
  "takes the held claim whose payload was kept, whichever was inserted last",
  async ({ db, store }) => {
    await store.claimNotification(claim(1, 1000));
    await store.claimNotification(claim(2, 2000, { status: "timeout" }));
    await store.claimNotification(claim(3, 3000));
    // Two claims whose inserts and holds interleaved (MySQL, two services): the
    // first inserted was held last, so the state keeps its payload.
    const [second] = await rawQuery(db, "SELECT id FROM jm_notifications WHERE ref = 2");
    await rawQuery(db, "UPDATE jm_notify_state SET held_id = ?, held_payload = ?", [
      second.id,
      JSON.stringify({ ref: 2 }),
    ]);
    const { taken } = await store.takeHeld(1000 + MINUTE, MINUTE, "n1");
    assertEquals(taken.map((t) => [t.ref, t.payload, t.heldBack]), [[
      2,
      JSON.stringify({ ref: 2 }),
      { count: 1, since: 2000, statuses: { failed: 1 } },
    ]]);
  },
);

contract(
  "takeHeld",
  "the due ones of several jobs are taken; the first of the others says when it is due",
  async ({ store }) => {
    for (const [jobId, at] of [["late", 5000], ["early", 1000], ["none", 1000]] as const) {
      await store.claimNotification(claim(1, at, { job_id: jobId }));
      if (jobId !== "none") await store.claimNotification(claim(2, at + 10, { job_id: jobId }));
    }
    const { taken, nextDueAt } = await store.takeHeld(1000 + MINUTE, MINUTE, "n1");
    assertEquals(taken.map((t) => [t.job_id, t.ref, t.heldBack]), [["early", 2, null]]);
    assertEquals(nextDueAt, 5000 + MINUTE);
    const later = await store.takeHeld(5000 + MINUTE, MINUTE, "n1");
    assertEquals(later.taken.map((t) => [t.job_id, t.payload]), [[
      "late",
      JSON.stringify({ ref: 2 }),
    ]]);
    assertEquals(later.nextDueAt, null);
  },
);

contract(
  "failingBefore",
  "the decisive run that ended last before, or a silence alert with no success since",
  async ({ store }) => {
    const ended = (id: number | null, at: number) => ({ id: id!, finished_at: at });
    const [ok, failed, skipped, later] = await store.claimRuns([
      fire("a", 1000, { status: "success", finished_at: 1000 }),
      fire("a", 2000, { status: "failed", finished_at: 2000 }),
      fire("a", 3000, { status: "skipped", finished_at: 3000 }),
      fire("a", 4000, { status: "success", finished_at: 4000 }),
    ]);
    assertEquals(await store.failingBefore("a", ended(ok, 1000), FAILURE_STATUSES), false);
    assertEquals(await store.failingBefore("a", ended(failed, 2000), FAILURE_STATUSES), false);
    // Skipped is not decisive: the failure before it is.
    assertEquals(await store.failingBefore("a", ended(later, 4000), FAILURE_STATUSES), true);
    assertEquals(await store.failingBefore("a", ended(skipped, 3000), FAILURE_STATUSES), true);
    // Overlapping runs (max_instances 2): a long run started first fails last.
    const [, quick, after] = await store.claimRuns([
      fire("a", 5000, { status: "failed", finished_at: 7000 }),
      fire("a", 5500, { status: "success", finished_at: 6000 }),
      fire("a", 6500, { status: "success", finished_at: 8000 }),
    ]);
    assertEquals(await store.failingBefore("a", ended(quick, 6000), FAILURE_STATUSES), false);
    assertEquals(await store.failingBefore("a", ended(after, 8000), FAILURE_STATUSES), true);
    const [next] = await store.claimRuns([
      fire("a", 9000, { status: "success", finished_at: 9500 }),
    ]);
    assertEquals(await store.failingBefore("a", ended(next, 9500), FAILURE_STATUSES), false);
    await store.claimNotification(claim(4000, 8500, { event: "silent", status: "silent" }));
    assertEquals(await store.failingBefore("a", ended(next, 9500), FAILURE_STATUSES), true);
  },
);

contract(
  "silenceCandidates",
  "enabled jobs with alert_after, silent since their last success or change",
  async ({ store }) => {
    await store.changeJob("quiet", () => job("quiet", { alert_after: 60, updated_at: 500 }));
    await store.changeJob("ran", () => job("ran", { alert_after: 30, updated_at: 500 }));
    await store.changeJob("off", () => job("off", { alert_after: 30, enabled: false }));
    await store.changeJob("plain", () => job("plain"));
    await store.claimRuns([
      fire("ran", 1000, { status: "success", finished_at: 1200 }),
      fire("ran", 2000, { status: "failed", finished_at: 2100 }),
    ]);
    assertEquals(await store.silenceCandidates(), [
      { job_id: "quiet", alert_after: 60, since: 500 },
      { job_id: "ran", alert_after: 30, since: 1200 },
    ]);
  },
);

contract(
  "silenceCandidates",
  "an alert claimed before the job was created (a job of that id, removed) is not the job's: silent since its creation",
  async ({ store }) => {
    await store.changeJob("z", () => job("z", { alert_after: 60, updated_at: 500 }));
    await store.claimNotification(
      claim(500, 1000, { job_id: "z", event: "silent", status: "silent", minIntervalMs: null }),
    );
    assertEquals(await store.silenceCandidates(), [{ job_id: "z", alert_after: 60, since: 500 }]);
    await store.changeJob("z", () => null);
    await store.changeJob(
      "z",
      () => job("z", { alert_after: 60, created_at: 90_000, updated_at: 90_000 }),
    );
    assertEquals(await store.silenceCandidates(), [{
      job_id: "z",
      alert_after: 60,
      since: 90_000,
    }]);
  },
);

contract("pruneOlderThan", "jm_notifications by created_at", async ({ db, store }) => {
  await store.claimNotification(claim(1, 1000, { minIntervalMs: null }));
  await store.claimNotification(claim(2, 5000, { minIntervalMs: null }));
  for (const ref of [1, 2]) await store.notificationDone("a", "failure", ref, "sent");
  assertEquals(await store.pruneOlderThan("jm_notifications", 3000, 100), 1);
  assertEquals(await countRows(db, "jm_notifications"), 1);
});
