/**
 * The dashboard in real Chromium as an operator uses it during an
 * incident: a run stuck for hours shows on the jobs list, the job page and
 * the status page, with how long it has run and a Cancel, however many
 * skips came since.
 */
import { assert, assertEquals } from "./assert.ts";
import type { Api } from "./http_harness.ts";
import { saveNodes, serviceRow, waitFor } from "./helpers.ts";
import {
  dashboardTest,
  HANG,
  intercept,
  openBrowser,
  screenshot,
  signIn,
  waitForText,
  waitUntil,
} from "./browser_harness.ts";

const HOUR_MS = 3_600_000;

/** Job `stuck` with a run started `hours` ago, still running, and 5 skips since; its id. */
async function stuckJob(api: Api, hours = 3): Promise<number> {
  const added = await api.call("POST", "/api/v1/jobs", {
    body: { id: "stuck", command: "sleep 100000", cron: "*/10 * * * * *", timeout: 0 },
  });
  assertEquals(added.status, 201);
  const started = Date.now() - hours * HOUR_MS;
  const [id] = await api.store.claimRuns([{
    job_id: "stuck",
    scheduled_at: started,
    status: "running",
    trigger: "schedule",
  }]);
  await api.store.updateRun(id!, { started_at: started, node_id: "node-a" });
  await api.store.claimRuns([1, 2, 3, 4, 5].map((i) => ({
    job_id: "stuck",
    scheduled_at: Date.now() - i * 10_000,
    status: "skipped" as const,
    trigger: "schedule" as const,
    note: "max_instances (1) reached",
  })));
  return id!;
}

dashboardTest(
  "dashboard: a run stuck for hours shows on the jobs list, the job page and status, with a Cancel",
  async (api) => {
    const id = await stuckJob(api);
    await using chromium = await openBrowser();
    const page = await chromium.page();
    await signIn(page, api.url, "#/jobs");
    await waitForText(page, `tr[data-job="stuck"]`, "running for 3 h");
    await waitForText(page, `tr[data-job="stuck"]`, "skipped");
    await screenshot(page, "incident-jobs-stuck");

    await page.evaluate(`location.hash = "#/jobs/stuck"`);
    await waitForText(page, `#running-runs tr[data-run="${id}"]`, "3 h");
    // Listed before the runs table, whose 5 rows are the skips.
    assert(
      await page.evaluate<boolean>(
        `!!(document.querySelector("#running-runs").compareDocumentPosition(document.querySelector("#runs")) & Node.DOCUMENT_POSITION_FOLLOWING)`,
      ),
      "the running runs come before the others",
    );
    await screenshot(page, "incident-job-stuck");

    await page.evaluate(`location.hash = "#/status"`);
    await waitForText(page, "#oldest-running", `#${id} of stuck, running for 3 h`);

    await page.evaluate(`location.hash = "#/runs/${id}"`);
    await waitForText(page, "#duration", "running for 3 h");
    await waitForText(page, "#stdout-none", "recorded when the run ends");

    // Cancel from the jobs list: asked once, then the row says so.
    await page.evaluate(`location.hash = "#/jobs"`);
    await waitForText(page, `tr[data-job="stuck"]`, "running for 3 h");
    await page.evaluate(`window.confirm = (q) => { window.asked = q; return true; }`);
    await page.click(`tr[data-job="stuck"] button[data-action="cancel-run"]`);
    await waitForText(page, `tr[data-job="stuck"]`, "cancel asked");
    assertEquals(await page.evaluate<string>("window.asked"), `Cancel run #${id} of stuck?`);
    const run = await api.store.getRun(id);
    assert(run!.cancel_requested_at !== null, JSON.stringify(run));
  },
);

const OUTAGE = {
  status: 503,
  body: JSON.stringify({ error: "the database at 127.0.0.1:3306 is unreachable (test)" }),
};

dashboardTest(
  "dashboard: a page whose first load fails in an outage says so, tries again and loads",
  async (api) => {
    assertEquals(
      (await api.call("POST", "/api/v1/jobs", {
        body: { id: "every-min", command: "true", cron: "* * * * *" },
      })).status,
      201,
    );
    await using chromium = await openBrowser();
    const page = await chromium.page();
    const net = await intercept(page);
    const pages = [
      ["#/jobs", "/api/v1/jobs", `tr[data-job="every-min"]`],
      ["#/runs", "/api/v1/runs?", "#runs"],
      ["#/jobs/every-min", "/api/v1/jobs/every-min?", "#job-fields"],
    ];
    await signIn(page, api.url, "#/status");
    for (const [hash, path, drawn] of pages) {
      net.answer = (asked) => asked.startsWith(path) ? OUTAGE : null;
      await page.evaluate(`location.hash = ${JSON.stringify(hash)}`);
      await waitForText(page, "#refresh-error", "Not loaded: the database at 127.0.0.1:3306");
      await waitForText(page, "#refresh-error", "Trying again every");
      net.answer = () => null;
      await page.waitForSelector(drawn, { timeout: 15_000 }).catch(async () => {
        throw new Error(
          `${hash}: not drawn once the database answered; the page shows ${
            JSON.stringify(
              await page.evaluate<string>(`document.querySelector("main").textContent`),
            )
          }`,
        );
      });
      assertEquals(await page.evaluate<boolean>(`!document.getElementById("refresh-error")`), true);
    }
  },
);

dashboardTest(
  "dashboard: a run that does not exist says so once, not as an outage tried again forever",
  async (api) => {
    await using chromium = await openBrowser();
    const page = await chromium.page();
    const net = await intercept(page);
    await signIn(page, api.url, "#/runs/999999");
    await waitForText(page, "#main", "run 999999 does not exist");
    const shown = await page.evaluate<string>(`document.querySelector("main").textContent`);
    assert(!shown.includes("Trying again"), shown);
    assert(!shown.includes("Not refreshed"), shown);
    assertEquals(net.seen.get("/api/v1/runs/999999"), 1);
  },
);

dashboardTest(
  "dashboard: while the database hangs, the jobs page says since when it was read, and its times move on",
  async (api) => {
    assertEquals(
      (await api.call("POST", "/api/v1/jobs", {
        body: { id: "often", command: "true", cron: "*/5 * * * * *" },
      })).status,
      201,
    );
    await using chromium = await openBrowser();
    const page = await chromium.page();
    const net = await intercept(page);
    await signIn(page, api.url, "#/jobs");
    // On a busy machine the first read's next fire may have passed by the time it is drawn: the
    // page's next read (every 5 s) shows the one after. Under CI's load (four files at once,
    // two browsers) the first draw alone once took 25 s: a minute for both.
    await waitForText(page, `tr[data-job="often"]`, "in ", 60_000);
    // Read again at least once, so the last good read is a refresh's, not the first load's.
    const from = net.seen.get("/api/v1/jobs") ?? 0;
    await waitFor(() => (net.seen.get("/api/v1/jobs") ?? 0) > from, {
      timeoutMs: 15_000,
      what: "the jobs page to read the jobs again",
      detail: () => `it asked ${net.seen.get("/api/v1/jobs")} times`,
    });
    const hungAt = Date.now();
    net.answer = (path) => path === "/api/v1/jobs" ? HANG : null;
    // The next fire was at most 5 s ahead: with no answer since, it is said to have passed.
    await waitUntil(
      page,
      `Number((/(\\d+) s ago$/.exec(document.querySelector('tr[data-job="often"] td:nth-child(4)').textContent) || [0, 0])[1]) >= 3`,
      "the next fire to be said to have passed 3 s ago or more",
      `document.querySelector('tr[data-job="often"] td:nth-child(4)').textContent`,
    );
    await waitForText(page, "#refresh-error", "no answer within 8 s", 30_000);
    const since = await page.evaluate<number>(
      `Date.parse(/Not refreshed since (\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d)/.exec(document.getElementById("refresh-error").textContent)[1].replace(" ", "T"))`,
    );
    // The time of the last good read (before the hang), not of noticing it (8 s or more after).
    assert(
      since <= hungAt,
      `the banner says ${new Date(since).toISOString()}; the hang began at ${
        new Date(hungAt).toISOString()
      }`,
    );
    await waitForText(page, "#refresh-error", "what is shown below was read");
    net.answer = () => null;
    await page.waitForFunction(`!document.getElementById("refresh-error")`, { timeout: 30_000 });
  },
);

dashboardTest(
  "dashboard: Disable and Remove from a job page drawn before the job changed are refused, with a Reload",
  async (api) => {
    const add = (command: string) =>
      api.call("POST", "/api/v1/jobs", { body: { id: "victim", command, cron: "0 0 * * *" } });
    assertEquals((await add("echo first")).status, 201);
    await using chromium = await openBrowser();
    const page = await chromium.page();
    await signIn(page, api.url, "#/jobs/victim");
    await waitForText(page, "#job-fields", "echo first");
    // Removed and added again by someone else, as another job under the same id.
    assertEquals((await api.call("DELETE", "/api/v1/jobs/victim")).status, 200);
    assertEquals((await add("echo second")).status, 201);
    await page.click(`button[data-action="disable"]`);
    await waitForText(page, "#action-error", "changed since this page showed it");
    assertEquals((await api.store.getJob("victim"))!.enabled, true, "the new job was disabled");
    await page.click(`#action-error button[data-action="reload"]`);
    await waitForText(page, "#job-fields", "echo second");

    // Edited by a colleague: Remove would delete what they made.
    const edited = await api.call("PATCH", "/api/v1/jobs/victim", {
      body: { description: "edited meanwhile" },
    });
    assertEquals(edited.status, 200);
    await page.evaluate(`window.confirm = () => true`);
    await page.click(`button[data-action="remove"]`);
    await waitForText(page, "#action-error", "changed since this page showed it");
    assert((await api.store.getJob("victim")) !== null, "the edited job was removed");
  },
);

dashboardTest(
  "dashboard: the jobs list's switch acts on the job as its row shows it, says a refusal once, and names its job",
  async (api) => {
    const added = await api.call("POST", "/api/v1/jobs", {
      body: { id: "victim2", command: "true", cron: "0 0 * * *" },
    });
    assertEquals(added.status, 201);
    await using chromium = await openBrowser();
    const page = await chromium.page();
    const net = await intercept(page);
    await signIn(page, api.url, "#/jobs");
    const toggle = `tr[data-job="victim2"] input[type=checkbox]`;
    await page.waitForSelector(toggle);
    // The list is not read again meanwhile: the row still shows the job as it was.
    net.answer = (path) => path === "/api/v1/jobs" ? HANG : null;
    const edited = await api.call("PATCH", "/api/v1/jobs/victim2", {
      body: { command: "rm -rf /tmp/scratch" },
    });
    assertEquals(edited.status, 200);
    const refusals =
      `[...document.querySelectorAll("#main .alert")].filter((a) => a.textContent.includes("changed since")).length`;
    for (let i = 1; i <= 2; i++) {
      await page.click(toggle);
      await waitForText(page, "#action-error", "changed since this page showed it");
      await waitUntil(
        page,
        `document.querySelector(${JSON.stringify(toggle)}).checked`,
        `the switch back on after refusal ${i}`,
        `document.querySelector(${JSON.stringify(toggle)}).checked`,
      );
      assertEquals(await page.evaluate<number>(refusals), 1, `after click ${i}`);
    }
    assertEquals((await api.store.getJob("victim2"))!.enabled, true);
    // Reloaded, the row shows the job as it is, and the switch acts on it.
    net.answer = () => null;
    await page.click(`#action-error button[data-action="reload"]`);
    await waitForText(page, `tr[data-job="victim2"]`, "every day");
    await waitUntil(
      page,
      `document.querySelector(${JSON.stringify(toggle)}).dataset.version === String(${
        (await api.store.getJob("victim2"))!.updated_at
      })`,
      "the row to show the job as edited",
      `document.querySelector(${JSON.stringify(toggle)}).dataset.version`,
    );
    await page.click(toggle);
    await waitFor(async () => (await api.store.getJob("victim2"))!.enabled === false, {
      timeoutMs: 15_000,
      what: "the job to be disabled",
      detail: async () =>
        await page.evaluate<string>(`document.querySelector("main").textContent.slice(0, 300)`),
    });
    // Removed meanwhile: each click says so in the one box, without the CLI's hints.
    net.answer = (path) => path === "/api/v1/jobs" ? HANG : null;
    assertEquals((await api.call("DELETE", "/api/v1/jobs/victim2")).status, 200);
    const alerts =
      `[...document.querySelectorAll("#main .alert")].filter((a) => a.id !== "refresh-error").map((a) => a.textContent)`;
    for (let i = 1; i <= 2; i++) {
      await page.click(toggle);
      await waitForText(page, "#action-error", "This job was removed since this page showed it");
      await page.click(`tr[data-job="victim2"] button[data-action="run"]`);
      await waitForText(page, "#action-error", "does not exist");
      await waitUntil(
        page,
        `!document.querySelector('tr[data-job="victim2"] button[data-action="run"]').disabled`,
        `Run now to be clickable again after click ${i}`,
        alerts,
      );
    }
    assertEquals(await page.evaluate<string[]>(alerts), ["job 'victim2' does not exist"]);
    // Among a thousand rows, each says which job it acts on.
    assertEquals(
      await page.evaluate<string[]>(
        `[document.querySelector(${JSON.stringify(toggle)}).getAttribute("aria-label"),
          document.querySelector('tr[data-job="victim2"] button[data-action="run"]').getAttribute("aria-label")]`,
      ),
      ["enabled: victim2", "Run victim2 now"],
    );
  },
);

dashboardTest(
  "dashboard: Run now on a busy job says the run was queued, follows it, and offers Run anyway when it is skipped",
  async (api, db) => {
    const id = await stuckJob(api);
    // Live for the whole test, however long a busy machine makes it: a run request needs one.
    await saveNodes(db, {
      ...serviceRow("node-a"),
      db_heartbeat_at: await api.store.databaseNow(),
      heartbeat_ms: 3_600_000,
    });
    await using chromium = await openBrowser();
    const page = await chromium.page();
    const net = await intercept(page);
    await signIn(page, api.url, "#/jobs/stuck");
    await waitForText(page, "#running-runs", `#${id}`);

    // While the request is out, the button says so.
    net.answer = (path) => path === "/api/v1/jobs/stuck/run" ? HANG : null;
    await page.click(`button[data-action="run"]`);
    await waitUntil(
      page,
      `document.querySelector('button[data-action="run"]').getAttribute("aria-busy") === "true"`,
      "Run now to show it is busy",
      `document.querySelector('button[data-action="run"]').outerHTML`,
    );
    await waitForText(page, "#action-error", "no answer within 8 s", 20_000);
    net.answer = () => null;

    await page.click(`button[data-action="run"]`);
    await waitForText(page, "#run-request", "queued");
    const asked = (await api.call("GET", "/api/v1/runs?job=stuck&limit=1")).body as {
      id: number;
    }[];
    const runId = asked[0].id;
    await waitForText(page, "#run-request", `Run #${runId} of stuck queued`);
    // The service takes it and skips it: the job is still running.
    const note = "max_instances (1) reached: run #" + id +
      " is still running; force runs it anyway";
    await api.store.updateRun(runId, { status: "skipped", note, finished_at: Date.now() });
    await waitForText(page, "#run-request", `ended skipped: ${note}`);
    await page.evaluate(`window.confirm = (q) => { window.asked = q; return true; }`);
    await page.click(`#run-request button[data-action="run-anyway"]`);
    await waitFor(async () => {
      const [newest] = (await api.call("GET", "/api/v1/runs?job=stuck&limit=1")).body as {
        id: number;
        forced: boolean;
      }[];
      return newest.id > runId && newest.forced;
    }, { timeoutMs: 15_000, what: "a forced run of stuck" });
    await waitForText(page, "#run-request", "queued");
    assertEquals(
      await page.evaluate<string>("window.asked"),
      "Run stuck anyway, beside the run still going (max_instances not checked)?",
    );
  },
);

dashboardTest(
  "dashboard: the runs page says when it is cut at 100 and shows older ones on asking; an unknown job is said",
  async (api) => {
    const added = await api.call("POST", "/api/v1/jobs", {
      body: { id: "every-sec", command: "true", cron: "* * * * * *" },
    });
    assertEquals(added.status, 201);
    const now = Date.now();
    await api.store.claimRuns(Array.from({ length: 170 }, (_, i) => ({
      job_id: "every-sec",
      scheduled_at: now - 200_000 + i * 1000,
      status: "skipped" as const,
      trigger: "schedule" as const,
    })));
    await using chromium = await openBrowser();
    const page = await chromium.page();
    await signIn(page, api.url, "#/runs?since=24h");
    await waitForText(
      page,
      "#runs-more",
      "The newest 100 matching runs are shown; there are older ones.",
    );
    const rows = `document.querySelectorAll("#runs tbody tr[data-run]").length`;
    assertEquals(await page.evaluate<number>(rows), 100);
    await page.click(`#runs-more button[data-action="older-runs"]`);
    await waitForText(page, "#runs-more", "All 170 matching runs are shown.");
    assertEquals(await page.evaluate<number>(rows), 170);

    await page.evaluate(`location.hash = "#/runs?job=fail-every"`);
    await waitForText(page, "#runs", "no job named fail-every");
  },
);

dashboardTest(
  "dashboard: with the database down, or refusing reads, the status page gives each service's state as last known, not live",
  async (api, db) => {
    await saveNodes(db, serviceRow("node-a"));
    const read = (await api.call("GET", "/api/v1/status")).body as Record<string, unknown>;
    await using chromium = await openBrowser();
    const page = await chromium.page();
    const net = await intercept(page);
    await signIn(page, api.url, "#/status");
    await waitForText(page, `#services tr[data-node="node-a"]`, "live");
    const row = `document.querySelector('#services tr[data-node="node-a"]').textContent`;
    for (
      const database of [
        { state: "down", detail: "unreachable (test)", alert: "#database-down" },
        {
          state: "refuses reads",
          detail:
            "SELECT command denied to user 'jm'@'10.0.0.2' for table `jobs`.`jm_nodes`; GRANT SELECT (test)",
          alert: "#database-refuses-reads",
        },
      ]
    ) {
      net.answer = (path) =>
        path === "/api/v1/status"
          ? {
            status: 200,
            body: JSON.stringify({
              ...read,
              database: { state: database.state, detail: database.detail },
            }),
          }
          : null;
      await waitForText(page, `#services tr[data-node="node-a"]`, "last known: live");
      // The detail is shown: a person reads the GRANT to run there.
      await waitForText(page, ".tile", database.detail);
      await waitForText(page, database.alert, "what follows was read at");
      // Then read now again: live, no longer as last known.
      net.answer = () => null;
      await waitUntil(
        page,
        `!${row}.includes("last known")`,
        `the services read now again after "${database.state}"`,
        row,
      );
    }
  },
);

dashboardTest(
  "dashboard: opened while the server cannot answer, it says so and signs in once it can",
  async (api) => {
    await using chromium = await openBrowser();
    const page = await chromium.page();
    const net = await intercept(page);
    net.answer = (path) => path === "/api/v1/session" ? OUTAGE : null;
    await page.goto(`${api.url}/#/jobs`);
    await waitForText(page, "#refresh-error", "Not loaded: the database at 127.0.0.1:3306");
    net.answer = () => null;
    await page.waitForSelector("#login input[name=token]", { timeout: 15_000 });
  },
);
