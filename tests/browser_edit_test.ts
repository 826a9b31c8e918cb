/**
 * The dashboard's edit form in real Chromium against the in-process API:
 * a change made on a copy someone else replaced is refused with the API's
 * message and a way to reload, and env and description come back exactly
 * as they were unless changed.
 */
import { assertEquals } from "./assert.ts";
import type { Api } from "./http_harness.ts";
import {
  dashboardTest,
  fill,
  openBrowser,
  screenshot,
  signIn,
  waitForText,
  waitUntil,
} from "./browser_harness.ts";

async function addJob(api: Api, body: Record<string, unknown>): Promise<void> {
  const added = await api.call("POST", "/api/v1/jobs", {
    body: { command: "true", cron: "0 3 * * *", ...body },
  });
  assertEquals(added.status, 201, JSON.stringify(added.body));
}

async function stored(api: Api, id: string): Promise<Record<string, unknown>> {
  return (await api.call("GET", `/api/v1/jobs/${id}`)).body as Record<string, unknown>;
}

const valueOf = (selector: string) => `document.querySelector(${JSON.stringify(selector)})?.value`;

dashboardTest(
  "dashboard: a save on a copy another tab replaced is refused, with a way to reload",
  async (api) => {
    await addJob(api, { id: "twice", description: "first" });
    await using chromium = await openBrowser();
    const page = await chromium.page();
    await signIn(page, api.url, "#/jobs/twice/edit");
    await page.waitForSelector("#job-form [name=description]");

    // The other tab saves first.
    const other = await api.call("PATCH", "/api/v1/jobs/twice", { body: { hour: "4" } });
    assertEquals(other.status, 200);
    await fill(page, "#job-form [name=description]", "from this tab");
    await page.click("#save");
    await waitForText(page, "#conflict", "was changed at");
    await screenshot(page, "job-form-conflict");
    const kept = await stored(api, "twice");
    assertEquals([kept.hour, kept.description], ["4", "first"], "the other tab's change stays");

    await page.click("#reload-job");
    const hour = `#job-form [aria-label=hour]`;
    await waitUntil(
      page,
      `${valueOf(hour)} === "4"`,
      "the form to show the other tab's hour",
      valueOf(hour),
    );
    await fill(page, "#job-form [name=description]", "from this tab");
    await page.click("#save");
    await waitForText(page, "#job-fields", "from this tab");
    const saved = await stored(api, "twice");
    assertEquals([saved.hour, saved.description], ["4", "from this tab"]);
  },
);

dashboardTest(
  "dashboard: env values with newlines, tabs and blanks, and a description, come back exact",
  async (api) => {
    const env = {
      ML: "line1\nline2",
      PAD: "  padded  ",
      TAB: "a\tb",
      QUOTED: '"as typed"',
      PLAIN: "x=1 y",
    };
    await addJob(api, { id: "envy", env, description: "  spaced out  " });
    await using chromium = await openBrowser();
    const page = await chromium.page();
    await signIn(page, api.url, "#/jobs/envy");
    await waitForText(page, "#job-env", "ML=");
    const shown = await page.evaluate<string[]>(
      `[...document.querySelectorAll("#job-env [data-env]")].map((el) => el.innerText)`,
    );
    assertEquals(shown, [
      'ML="line1\\nline2"',
      'PAD="  padded  "',
      'TAB="a\\tb"',
      'QUOTED="\\"as typed\\""',
      "PLAIN=x=1 y",
    ]);

    // A change to another field leaves env and description exactly as they were.
    await page.goto(`${api.url}/#/jobs/envy/edit`);
    await page.waitForSelector("#job-form [name=timeout]");
    await fill(page, "#job-form [name=timeout]", "30");
    await page.click("#save");
    await waitForText(page, "#job-fields", "30 s");
    let job = await stored(api, "envy");
    assertEquals([job.timeout, job.env, job.description], [30, env, "  spaced out  "]);

    // Typed values are kept as typed, blanks included; a JSON string may hold a newline.
    await page.goto(`${api.url}/#/jobs/envy/edit`);
    await page.waitForSelector("#job-form [name=env]");
    await fill(
      page,
      "#job-form [name=env]",
      'ML="one\\ntwo"\nPAD=  typed \nTAB="a\\tb"\nPLAIN=x=1 y',
    );
    await page.click("#save");
    await waitForText(page, "#job-fields", "typed");
    job = await stored(api, "envy");
    assertEquals(job.env, { ML: "one\ntwo", PAD: "  typed ", TAB: "a\tb", PLAIN: "x=1 y" });
    await screenshot(page, "job-env");

    await page.goto(`${api.url}/#/jobs/envy/edit`);
    await page.waitForSelector("#job-form [name=env]");
    await fill(page, "#job-form [name=env]", 'BAD="unclosed');
    await page.click("#save");
    await waitForText(page, "[data-error=env]", "is a JSON string");
  },
);

dashboardTest(
  "dashboard: a 191-character id and a description without blanks wrap, not widen the page",
  async (api) => {
    const id = "x".repeat(191);
    await addJob(api, { id, description: "d".repeat(1000) });
    await using chromium = await openBrowser();
    const page = await chromium.page();
    await signIn(page, api.url, `#/jobs/${id}`);
    await waitForText(page, "#job-fields", "ddd");
    const sideways = `[document.documentElement.scrollWidth - document.documentElement.clientWidth,
      ...[...document.querySelectorAll(".scroll")].map((el) => el.scrollWidth - el.clientWidth)]`;
    assertEquals(await page.evaluate<number[]>(sideways), [0, 0], "the job page and its runs");
    await page.goto(`${api.url}/#/jobs`);
    await waitForText(page, "#jobs", "ddd");
    assertEquals(await page.evaluate<number[]>(sideways), [0, 0], "the jobs page and its table");
  },
);

dashboardTest(
  "dashboard: an emptied Timeout is the default 60 s, as its hint says, on add and on edit",
  async (api) => {
    await addJob(api, { id: "slow", timeout: 600, max_instances: 3, misfire_grace_time: 30 });
    await using chromium = await openBrowser();
    const page = await chromium.page();
    await signIn(page, api.url, "#/jobs/slow/edit");
    await page.waitForSelector("#job-form [name=timeout]");
    // Max instances and the grace time emptied too: each back to the service's.
    for (const name of ["timeout", "max_instances", "misfire_grace_time"]) {
      await fill(page, `#job-form [name=${name}]`, "");
    }
    await page.click("#save");
    await waitForText(page, "#job-fields", "60 s");
    const edited = await stored(api, "slow");
    assertEquals(
      [edited.timeout, edited.max_instances, edited.misfire_grace_time],
      [60, null, null],
    );

    await page.goto(`${api.url}/#/add-job`);
    await page.waitForSelector("#job-form [name=id]");
    await fill(page, "#job-form [name=id]", "fresh");
    await fill(page, "#job-form [name=command]", "true");
    await fill(page, "#job-form [name=cron]", "0 3 * * *");
    await page.click("#save");
    await waitForText(page, "#job-fields", "60 s");
    assertEquals((await stored(api, "fresh")).timeout, 60);
  },
);
