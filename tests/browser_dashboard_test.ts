/**
 * The dashboard in real Chromium against the API on a real store: sign in,
 * add a job through the form (a bad schedule refused beside its field),
 * open it, see a run appear live and read its output, disable the job,
 * follow the log tail, read the status page; on a laptop and on a phone.
 * Screenshots of each page go to test-output/screenshots/.
 */
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { freshDatabase } from "./helpers.ts";
import { ADMIN, startApi } from "./http_harness.ts";
import {
  CHROMIUM,
  fill,
  openBrowser,
  screenshot,
  takePageErrors,
  waitForText,
} from "./browser_harness.ts";
import type { Page } from "./browser_puppeteer.d.ts";

async function signIn(page: Page, url: string, hash = "#/jobs"): Promise<void> {
  await page.goto(`${url}/${hash}`);
  await page.waitForSelector("#login input[name=token]");
  await page.type("#login input[name=token]", ADMIN);
  await page.click("#login button[type=submit]");
  await waitForText(page, "#who", "admin");
}

const text = (page: Page, selector: string) =>
  page.evaluate<string>(`document.querySelector(${JSON.stringify(selector)})?.textContent ?? ""`);

Deno.test({
  name: "dashboard: add a job, watch its run, read the output, disable it, tail the log",
  ignore: CHROMIUM === null,
  async fn() {
    await using db = await freshDatabase("sqlite");
    await using api = await startApi(db);
    await using chromium = await openBrowser();
    const page = await chromium.page();
    page.on("dialog", (dialog) => dialog.accept());
    await signIn(page, api.url);
    await waitForText(page, "#jobs", "no jobs yet");

    await page.click("#add-job");
    await page.waitForSelector("#job-form");
    await page.type("#job-form [name=id]", "backup");
    await page.type("#job-form [name=command]", "echo saved; echo careful >&2");
    await page.type("#job-form [name=cron]", "61 2 * * *");
    await page.click("#save");
    await waitForText(page, "[data-error=cron]", "minute");
    const refused = await text(page, "[data-error=cron]");
    await screenshot(page, "job-form-refused");
    const cli = await api.call("POST", "/api/v1/jobs", {
      body: { id: "x", command: "true", cron: "61 2 * * *" },
    });
    assertEquals(
      refused,
      (cli.body as { error: string }).error,
      "the CLI's message, beside the field",
    );

    await fill(page, "#job-form [name=cron]", "30 2 * * *");
    await page.type("#job-form [name=timezone]", "Europe/Paris");
    await page.click("#preview-button");
    await waitForText(page, "#preview", "at 02:30 every day");
    await page.click("#save");
    await waitForText(page, "#job-fields", "echo saved");
    await waitForText(page, "#next-fires", "Europe/Paris");
    assertEquals(
      await page.evaluate<number>(`document.querySelectorAll("#next-fires li").length`),
      10,
    );

    // What a service does with a fire; the page must show it without a reload.
    const now = Date.now();
    const [runId] = await api.store.claimRuns([{
      job_id: "backup",
      scheduled_at: now,
      status: "running",
      trigger: "schedule",
      started_at: now,
      node_id: "node-1",
    }]);
    await waitForText(page, `#runs [data-run="${runId}"]`, "running");
    await api.store.updateRun(runId!, {
      status: "success",
      finished_at: now + 42,
      exit_code: 0,
      stdout: "saved\n",
      stderr: "careful\n",
    });
    await waitForText(page, `#runs [data-run="${runId}"]`, "success");
    await screenshot(page, "job");

    await page.click(`#runs [data-run="${runId}"] a`);
    await waitForText(page, "#stdout", "saved");
    assertEquals(await text(page, "#stderr"), "careful\n");
    await screenshot(page, "run");

    await page.goto(`${api.url}/#/jobs`);
    await waitForText(page, "#jobs", "backup");
    assertStringIncludes(await text(page, "#jobs [data-job=backup]"), "success");
    await page.click("#jobs [data-job=backup] input[data-action=disable]");
    await waitForText(page, "#jobs [data-job=backup]", "off");
    const stored = await api.call("GET", "/api/v1/jobs/backup");
    assertEquals((stored.body as { enabled: boolean }).enabled, false);
    await screenshot(page, "jobs");

    await api.store.insertLogs([{
      created_at: Date.now(),
      level: "info",
      logger_name: "jobsmanager.runner",
      message: "run of backup ended: success",
      context: { job: "backup", run: runId },
    }]);
    await page.goto(`${api.url}/#/logs`);
    await waitForText(page, "#logs", "run of backup ended");
    await api.store.insertLogs([{
      created_at: Date.now(),
      level: "error",
      logger_name: "jobsmanager.runner",
      message: "a line written after the page opened",
      context: { job: "backup" },
    }]);
    await waitForText(page, "#logs", "a line written after the page opened");
    await screenshot(page, "logs");

    await page.goto(`${api.url}/#/runs`);
    await waitForText(page, "#runs", "backup");
    await screenshot(page, "runs");

    await page.goto(`${api.url}/#/status`);
    await waitForText(page, "#chart", "Runs per minute");
    const bars = await page.evaluate<number>(`document.querySelectorAll("#chart rect").length`);
    assert(bars >= 1, "the chart has a bar for the run");
    await screenshot(page, "status");

    const phone = await chromium.page({ width: 390, height: 844, mobile: true });
    await signIn(phone, api.url, "#/jobs");
    await waitForText(phone, "#jobs", "backup");
    const overflow = await phone.evaluate<number>(
      `document.documentElement.scrollWidth - document.documentElement.clientWidth`,
    );
    assertEquals(overflow, 0, "the page fits a phone's width (wide tables scroll in their box)");
    await screenshot(phone, "jobs-phone");
    await phone.goto(`${api.url}/#/jobs/backup`);
    await waitForText(phone, "#job-fields", "echo saved");
    await screenshot(phone, "job-phone");
    assertEquals(takePageErrors(), []);
  },
});
