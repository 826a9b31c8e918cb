/**
 * The dashboard in real Chromium on a machine whose clock is 10 min ahead
 * of the database's: every age it shows ("in 3 s", "2 min ago") and the
 * fires a job page drops as passed are measured on the database's clock,
 * learned from the API, not on the viewer's.
 */
import { assert, assertEquals } from "./assert.ts";
import {
  dashboardTest,
  intercept,
  openBrowser,
  screenshot,
  signIn,
  waitForText,
  waitUntil,
} from "./browser_harness.ts";

const AHEAD_MS = 10 * 60_000;

/** Run before the dashboard's script: the page's clock (Date.now(), new Date()) AHEAD_MS ahead. */
const VIEWER_AHEAD = `(() => {
  const Real = Date;
  class Ahead extends Real {
    constructor(...args) {
      if (args.length === 0) super(Real.now() + ${AHEAD_MS});
      else super(...args);
    }
    static now() {
      return Real.now() + ${AHEAD_MS};
    }
  }
  globalThis.Date = Ahead;
})()`;

/** The relative times of job `id`'s row on the jobs page: next fire, last run. */
const rowAges = (id: string) =>
  `[...document.querySelectorAll('#jobs tr[data-job="${id}"] [data-ago]')].map((el) => el.textContent)`;

dashboardTest(
  "dashboard: a viewer whose clock is 10 min ahead sees ages on the database's clock",
  async (api) => {
    const added = await api.call("POST", "/api/v1/jobs", {
      body: { id: "often", command: "true", second: "*/30" },
    });
    assertEquals(added.status, 201, JSON.stringify(added.body));
    const databaseNow = await api.store.databaseNow();
    await api.store.claimRuns([{
      job_id: "often",
      scheduled_at: databaseNow - 120_000,
      status: "success",
      trigger: "schedule",
      started_at: databaseNow - 120_000,
      finished_at: databaseNow - 119_000,
      exit_code: 0,
    }]);
    await using chromium = await openBrowser();
    const page = await chromium.page();
    await page.evaluateOnNewDocument(VIEWER_AHEAD);
    const net = await intercept(page);
    await signIn(page, api.url, "#/jobs");
    const ahead = await page.evaluate<number>("Date.now()") - Date.now();
    assert(
      ahead > AHEAD_MS - 60_000,
      `the page's clock is ${ahead} ms ahead, not about ${AHEAD_MS}`,
    );

    // Next fire within 30 s; last run 2 min ago (by the viewer's clock: 10 min ago and 12 min ago).
    await waitUntil(
      page,
      `(([next, last]) => /^(in [0-9]+ s|[0-9] s ago)$/.test(next) && last === "2 min ago")(${
        rowAges("often")
      })`,
      "the next fire within 30 s and the last run 2 min ago",
      rowAges("often"),
    );
    await screenshot(page, "jobs-viewer-clock-ahead");

    // The job page keeps the fires still to come on the database's clock: none passed yet.
    await page.goto(`${api.url}/#/jobs/often`);
    await waitForText(page, "#fires h2", "fires");
    const fires = `[document.querySelector("#fires h2").textContent,
      document.querySelector("#next-fires time")?.getAttribute("datetime")]`;
    const [title, first] = await page.evaluate<[string, string | undefined]>(fires);
    assertEquals(title, "Next 10 fires", `the page shows ${JSON.stringify([title, first])}`);
    const soon = Date.parse(first!) - await api.store.databaseNow();
    assert(soon > -2000 && soon <= 31_000, `the first fire shown, ${first}, is not the next one`);

    // Notifications waiting since 3 min ago by the database's clock.
    const status = (await api.call("GET", "/api/v1/status")).body as { database_now: string };
    const waiting = {
      ...status,
      pending_notifications: {
        count: 1,
        oldest: new Date(Date.parse(status.database_now) - 180_000).toISOString(),
        retrying: 1,
        next_retry: status.database_now,
      },
    };
    net.answer = (path) =>
      path === "/api/v1/status" ? { status: 200, body: JSON.stringify(waiting) } : null;
    await page.goto(`${api.url}/#/status`);
    await waitForText(page, "#main .tiles", "notifications waiting");
    const oldest = `[...document.querySelectorAll("#main .tile")]
      .find((t) => t.textContent.includes("notifications waiting"))?.textContent`;
    const said = "oldest 3 min ago; 1 for a webhook receiver that is down";
    await waitUntil(page, `${oldest}?.endsWith(${JSON.stringify(said)})`, said, oldest);
  },
);

dashboardTest(
  "dashboard: a slow answer of the database's clock is kept a moment only; a quick one replaces it",
  async (api) => {
    await using chromium = await openBrowser();
    const page = await chromium.page();
    await page.setRequestInterception(true);
    let first = true;
    page.on("request", (request) => {
      if (!first || new URL(request.url()).pathname !== "/api/v1/clock") {
        return void request.continue();
      }
      first = false;
      // As a busy server answers: the request waits 3 s in its queue, then the clock is read.
      setTimeout(() =>
        void request.respond({
          status: 200,
          contentType: "application/json",
          body: JSON.stringify({ database_now: new Date().toISOString() }),
        }), 3000);
    });
    await signIn(page, api.url, "#/jobs");
    // Read at the end of a 3 s round trip, it put the page 1.5 s ahead; taken for a minute, every
    // next fire less than 1.5 s away read "ago".
    await waitUntil(
      page,
      "databaseClock.readAt !== null && databaseClock.roundTrip < 1000 && Math.abs(databaseClock.offset) < 500",
      "a quick answer of the clock to replace the slow one",
      "JSON.stringify(databaseClock)",
      30_000,
    );
  },
);
