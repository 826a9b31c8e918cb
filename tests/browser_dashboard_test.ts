/**
 * The dashboard in real Chromium against a real `jobsmanager serve`: sign
 * in, add a job through the form (a bad schedule refused beside its field,
 * with the CLI's message), watch it fire and its run appear live, read the
 * run's output, disable the job, follow the log tail, read the status
 * page; on a laptop and on a phone. Screenshots of each page go to
 * test-output/screenshots/.
 */
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { cli, freshDatabase } from "./helpers.ts";
import { ADMIN, serveWithHttp } from "./http_harness.ts";
import {
  CHROMIUM,
  fill,
  openBrowser,
  screenshot,
  signIn,
  takePageErrors,
  waitForText,
} from "./browser_harness.ts";
import type { Page } from "./browser_puppeteer.d.ts";

const text = (page: Page, selector: string) =>
  page.evaluate<string>(`document.querySelector(${JSON.stringify(selector)})?.textContent ?? ""`);

Deno.test({
  name: "dashboard: a job may be called new: its page is its own, not the add form",
  ignore: CHROMIUM === null,
  async fn() {
    await using db = await freshDatabase("sqlite");
    const add = await cli(
      ["--database", db.url, "job", "add", "new", "--command", "echo from-new", "--hour", "3"],
    );
    assertEquals(add.code, 0, add.stderr);
    await using served = await serveWithHttp(db, {}, { JM_HTTP_TOKEN: ADMIN });
    await using chromium = await openBrowser();
    const page = await chromium.page();
    await signIn(page, served.url, "#/jobs/new");
    await waitForText(page, "#job-fields", "echo from-new");
    assertEquals(
      await page.evaluate<boolean>(`document.querySelector("#job-form") !== null`),
      false,
      "the add form was shown for job 'new'",
    );
    await page.goto(`${served.url}/#/jobs`);
    await page.waitForSelector("#add-job");
    await page.click("#add-job");
    await page.waitForSelector("#job-form");
    assertEquals(takePageErrors(), []);
  },
});

Deno.test({
  name: "dashboard: add a job, watch it fire, read the output, disable it, tail the log",
  ignore: CHROMIUM === null,
  async fn() {
    await using db = await freshDatabase("sqlite");
    await using served = await serveWithHttp(db, {}, { JM_HTTP_TOKEN: ADMIN });
    await using chromium = await openBrowser();
    const page = await chromium.page();
    await signIn(page, served.url);
    await waitForText(page, "#jobs", "no jobs yet");

    await page.click("#add-job");
    await page.waitForSelector("#job-form");
    await page.type("#job-form [name=id]", "backup");
    await page.type("#job-form [name=command]", "echo saved; echo careful >&2");
    await page.type("#job-form [name=cron]", "61 2 * * *");
    await page.click("#save");
    await waitForText(page, "[data-error=cron]", "minute");
    const refused = await text(page, "[data-error=cron]");
    const byCli = await cli([
      "--database",
      db.url,
      "job",
      "add",
      "x",
      "--command",
      "true",
      "--cron",
      "61 2 * * *",
    ]);
    assertEquals(
      `jobsmanager: ${refused}`,
      byCli.stderr.trim(),
      "the CLI's message, beside the field",
    );
    await screenshot(page, "job-form-refused");

    // Every second, so it fires while the page is open.
    await fill(page, "#job-form [name=cron]", "* * * * * *");
    await page.type("#job-form [name=description]", "copies the data");
    await page.click("#preview-button");
    await waitForText(page, "#preview", "every second");
    await page.click("#save");
    await waitForText(page, "#job-fields", "echo saved");
    assertEquals(
      await page.evaluate<number>(`document.querySelectorAll("#next-fires li").length`),
      10,
    );
    // No reload: the run comes on the live stream once the service has fired.
    await waitForText(page, "#runs [data-status=success]", "success", 30_000);
    await screenshot(page, "job");

    await page.click("#runs [data-status=success] a");
    await waitForText(page, "#stdout", "saved");
    assertEquals(await text(page, "#stderr"), "careful\n");
    await screenshot(page, "run");

    await page.goto(`${served.url}/#/jobs/backup/edit`);
    await page.waitForSelector("#job-form [name=timeout]");
    await fill(page, "#job-form [name=timeout]", "soon");
    await page.click("#save");
    await waitForText(page, "[data-error=timeout]", "timeout:");
    await screenshot(page, "job-form-edit-refused");
    await fill(page, "#job-form [name=timeout]", "30");
    await page.click("#save");
    await waitForText(page, "#job-fields", "30 s");

    await page.goto(`${served.url}/#/jobs`);
    await waitForText(page, "#jobs [data-job=backup]", "success");
    await page.click("#jobs [data-job=backup] input[data-action=disable]");
    await waitForText(page, "#jobs [data-job=backup]", "off");
    const stored = await fetch(`${served.url}/api/v1/jobs/backup`, {
      headers: { Authorization: `Bearer ${ADMIN}` },
    });
    assertEquals((await stored.json()).enabled, false);
    await screenshot(page, "jobs");

    await page.goto(`${served.url}/#/logs`);
    await waitForText(page, "#logs", "run");
    // A reload asked for now is logged by the service while the page follows.
    const reload = await fetch(`${served.url}/api/v1/reload`, {
      method: "POST",
      headers: { Authorization: `Bearer ${ADMIN}` },
    });
    const { marker_id } = await reload.json();
    // Markers that come together are applied together: "markers 2-3".
    await waitForText(page, "#logs", `-${marker_id}: `, 20_000);
    await screenshot(page, "logs");

    await page.goto(`${served.url}/#/runs?job=backup`);
    await waitForText(page, "#runs", "backup");
    await screenshot(page, "runs");

    await page.goto(`${served.url}/#/status`);
    await waitForText(page, "#services", "live");
    const bars = await page.evaluate<number>(`document.querySelectorAll("#chart rect").length`);
    assert(bars >= 1, "the chart has a bar for the runs");
    assertStringIncludes(await text(page, ".tiles"), "reachable");
    assertStringIncludes(await text(page, ".tiles"), "0notifications waiting");
    await screenshot(page, "status");

    const phone = await chromium.page({ width: 390, height: 844, mobile: true });
    await signIn(phone, served.url, "#/jobs");
    await waitForText(phone, "#jobs", "backup");
    const overflow = await phone.evaluate<number>(
      `document.documentElement.scrollWidth - document.documentElement.clientWidth`,
    );
    assertEquals(overflow, 0, "the page fits a phone's width (wide tables scroll in their box)");
    await screenshot(phone, "jobs-phone");
    await phone.goto(`${served.url}/#/jobs/backup`);
    await waitForText(phone, "#job-fields", "echo saved");
    await screenshot(phone, "job-phone");
    await phone.goto(`${served.url}/#/status`);
    await waitForText(phone, "#services", "live");
    await screenshot(phone, "status-phone");
    assertEquals(takePageErrors(), []);
    const { status } = await served.serve.terminate(20_000);
    assertEquals(status.code, 0, served.serve.stderr);
  },
});
