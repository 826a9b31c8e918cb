/**
 * What an operator opening the dashboard in an incident sees at a glance:
 * whether the services are alive (the health strip), which zone each time
 * is in, and, on a phone, pages that fit its width.
 */
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { saveNodes, serviceRow } from "./helpers.ts";
import { hereSpace } from "../src/daemon/presence.ts";
import {
  dashboardTest,
  openBrowser,
  screenshot,
  signIn,
  waitForText,
  waitUntil,
} from "./browser_harness.ts";

dashboardTest(
  "dashboard: the strip under the header says how many services are live, stale and dead, the database and the last reload",
  async (api, db) => {
    await using chromium = await openBrowser();
    const page = await chromium.page();
    await signIn(page, api.url, "#/jobs");
    // Written once the page shows, read at its next look (every 5 s): written before, node-a
    // was stale by then on a loaded machine (CI at d44f7c6), 15 s of heartbeats on.
    const now = Date.now();
    await saveNodes(
      db,
      { ...serviceRow("node-a"), last_reload_at: now - 120_000, last_reload_ms: 37 },
      serviceRow("node-b", { agoMs: 60_000 }),
      {
        ...serviceRow("node-c", { agoMs: 600_000 }),
        declared_dead_at: now,
        declared_dead_by: "node-a",
      },
    );
    await waitForText(page, "#health", "1 live");
    const strip = await page.evaluate<string>(`document.querySelector("#health").textContent`);
    for (
      const said of ["1 live", "1 stale", "1 dead", "database up", "last reload 2 min ago (37 ms)"]
    ) {
      assertStringIncludes(strip, said);
    }
    await screenshot(page, "health-strip");
    // Every page has it: on a run's or the log's page, a service dying shows too.
    await page.goto(`${api.url}/#/logs`);
    await waitForText(page, "#health", "1 dead");
  },
);

dashboardTest(
  "dashboard: the status page says of a stale service whose process still runs on this host that it does, and what a restart loses",
  async (api) => {
    // A process of this host that runs: the service, beating no more.
    const child = new Deno.Command("sleep", { args: ["300"], stdout: "null", stderr: "null" })
      .spawn();
    try {
      await api.store.saveNode({
        ...serviceRow("hung"),
        host: Deno.hostname(),
        pid: child.pid,
        // Written after its process started, as a service writes its row.
        started_at: Date.now(),
        ...hereSpace(),
        db_heartbeat_at: await api.store.databaseNow() - 60_000,
        heartbeat_ms: 2000,
      });
      await using chromium = await openBrowser();
      const page = await chromium.page();
      await signIn(page, api.url, "#/status");
      await waitForText(
        page,
        `#services [data-note="hung"]`,
        `stopped sending heartbeats, but its process still runs on this host: its log says why (a database that refuses writes, such as a full disk, is said there and at /readyz; a suspended process says nothing: kill -CONT ${child.pid}); a restart loses the run records it holds unwritten`,
      );
    } finally {
      child.kill();
      await child.status;
    }
  },
);

dashboardTest(
  "dashboard: every time says its zone (the viewer's offset), with UTC and the job's zone on hover",
  async (api) => {
    await api.call("POST", "/api/v1/jobs", {
      body: { id: "ny", command: "echo ny", cron: "0 3 * * *", timezone: "America/New_York" },
    });
    await api.call("POST", "/api/v1/jobs/ny/run", { body: { queue: true } });
    await api.store.insertLogs([{
      created_at: Date.now(),
      level: "info",
      logger_name: "test",
      message: "a line",
      context: {},
    }]);
    await using chromium = await openBrowser();
    const page = await chromium.page();
    await page.emulateTimezone("Asia/Kolkata");
    await signIn(page, api.url, "#/jobs");
    await waitForText(page, "#jobs", "ny");
    const next = `document.querySelector("#jobs tr[data-job=ny] time")`;
    await waitUntil(
      page,
      `${next} !== null`,
      "the next fire",
      `document.querySelector("#jobs").outerHTML`,
    );
    assertStringIncludes(await page.evaluate<string>(`${next}.textContent`), "UTC+5:30");
    const hover = await page.evaluate<string>(`${next}.title`);
    assertStringIncludes(hover, "America/New_York");
    assertStringIncludes(hover, "Z (UTC)");
    const unlabelled = `[...document.querySelectorAll("main time")]
    .filter((t) => !/UTC[+-]5:30$/.test(t.textContent)).map((t) => t.outerHTML)`;
    for (const hash of ["#/jobs", "#/jobs/ny", "#/runs", "#/logs"]) {
      await page.goto(`${api.url}/${hash}`);
      await waitUntil(
        page,
        `document.querySelectorAll("main time").length > 0`,
        `times on ${hash}`,
        `document.querySelector("main").textContent`,
      );
      assertEquals(
        await page.evaluate<string[]>(unlabelled),
        [],
        `times on ${hash} without their zone`,
      );
    }
  },
);

/**
 * Elements that reach past a phone's right edge (390 CSS pixels: a page too
 * wide makes a phone zoom out, and the window with it), but for those in a
 * box that scrolls.
 */
const SIDEWAYS = `[...document.querySelectorAll("body *")]
  .filter((el) => !el.closest(".scroll") && el.getBoundingClientRect().right > 390)
  .map((el) => el.tagName + (el.id ? "#" + el.id : "") + "." + el.className + " right " +
    Math.round(el.getBoundingClientRect().right))
  .concat(document.documentElement.scrollWidth > 390
    ? ["the page is " + document.documentElement.scrollWidth + " px wide"] : [])`;

dashboardTest(
  "dashboard: on a phone (390x844) the jobs list and a job's page fit its width",
  async (api) => {
    const long = "a".repeat(120) + ".nightly-export";
    await api.call("POST", "/api/v1/jobs", {
      body: {
        id: long,
        command: "/usr/local/bin/export --target=" + "x".repeat(150) + " && echo done",
        cron: "0 3 * * *",
        timezone: "America/Argentina/ComodRivadavia",
        description: "exports " + "y".repeat(100),
        env: { LONG_VARIABLE_NAME_WITHOUT_BLANKS: "z".repeat(120) },
      },
    });
    await api.call("POST", `/api/v1/jobs/${long}/run`, { body: { queue: true } });
    await using chromium = await openBrowser();
    const phone = await chromium.page({ width: 390, height: 844, mobile: true });
    await signIn(phone, api.url, "#/jobs");
    await waitForText(phone, "#jobs", long);
    await waitForText(phone, "#health", "database up");
    assertEquals(
      await phone.evaluate<string[]>(SIDEWAYS),
      [],
      "the jobs list is wider than a phone",
    );
    const idWidth = await phone.evaluate<number>(
      `document.querySelector("#jobs td").getBoundingClientRect().width`,
    );
    assert(idWidth >= 120, `the long id wraps in a column ${idWidth} px wide`);
    await screenshot(phone, "glance-jobs-phone");
    await phone.goto(`${api.url}/#/jobs/${long}`);
    await waitForText(phone, "#job-fields", "echo done");
    assertEquals(
      await phone.evaluate<string[]>(SIDEWAYS),
      [],
      "the job page is wider than a phone",
    );
    await screenshot(phone, "glance-job-phone");
    for (const [hash, selector] of [["#/runs", "#runs"], ["#/runs/1", "dl"], ["#/logs", "#logs"]]) {
      await phone.goto(`${api.url}/${hash}`);
      await phone.waitForSelector(selector);
      assertEquals(await phone.evaluate<string[]>(SIDEWAYS), [], `${hash} is wider than a phone`);
      await screenshot(phone, `glance-${hash.slice(2).replace("/", "-")}-phone`);
    }
  },
);
