/**
 * The dashboard in real Chromium as an operator uses it during an
 * incident: a run stuck for hours shows on the jobs list, the job page and
 * the status page, with how long it has run and a Cancel, however many
 * skips came since.
 */
import { assert, assertEquals } from "./assert.ts";
import type { Api } from "./http_harness.ts";
import { dashboardTest, openBrowser, screenshot, signIn, waitForText } from "./browser_harness.ts";

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
