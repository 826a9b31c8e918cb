/**
 * The dashboard's edit form in real Chromium against the in-process API:
 * a change made on a copy someone else replaced is refused with the API's
 * message and a way to reload, env and description come back exactly as
 * they were unless changed, and what a save warns of is shown after it.
 */
import { assertEquals } from "./assert.ts";
import { rawQuery } from "./helpers.ts";
import type { Api } from "./http_harness.ts";
import { JOB_FIELDS, RUN_POLICY_FIELDS } from "../src/domain/job.ts";
import { FIELD_NAMES } from "../src/cron/grammar.ts";
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
  "dashboard: env values with newlines, tabs and blanks, a description and a hook, come back exact",
  async (api) => {
    const env = {
      ML: "line1\nline2",
      PAD: "  padded  ",
      TAB: "a\tb",
      QUOTED: '"as typed"',
      PLAIN: "x=1 y",
    };
    const onFailure = "cat > /tmp/failed.json\nmail -s failed ops < /tmp/failed.json";
    await addJob(api, { id: "envy", env, description: "  spaced out  ", on_failure: onFailure });
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
    assertEquals(
      [job.timeout, job.env, job.description, job.on_failure],
      [30, env, "  spaced out  ", onFailure],
    );

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
  "dashboard: a cwd with a line end and a blank, a URL with a line end and a CR come back exact",
  async (api) => {
    // Each accepted by the API; an input drops a line end, a box reads a CR as one, a trim the blank.
    const odd = {
      cwd: "/srv/two\nlines ",
      on_failure_url: "https://hooks.example/failed\n?job=odd",
      description: "dos\r\nline",
    };
    await addJob(api, { id: "odd", ...odd });
    await using chromium = await openBrowser();
    const page = await chromium.page();
    await signIn(page, api.url, "#/jobs/odd/edit");
    await page.waitForSelector("#job-form [name=timeout]");
    await fill(page, "#job-form [name=timeout]", "30");
    await page.click("#save");
    await waitForText(page, "#job-fields", "30 s");
    const job = await stored(api, "odd");
    assertEquals(
      [job.timeout, job.cwd, job.on_failure_url, job.description],
      [30, odd.cwd, odd.on_failure_url, odd.description],
    );
    const shown = `document.querySelector("[data-field=cwd]")?.innerText`;
    await waitUntil(page, `${shown} === ${JSON.stringify(odd.cwd)}`, "the cwd's two lines", shown);

    // Typed: a line end kept, a relative path refused beside the field.
    await page.goto(`${api.url}/#/jobs/odd/edit`);
    await page.waitForSelector("#job-form [name=cwd]");
    await fill(page, "#job-form [name=cwd]", "/srv/new\ndir");
    await page.click("#save");
    await waitForText(page, "#job-fields", "/srv/new");
    assertEquals((await stored(api, "odd")).cwd, "/srv/new\ndir");
    await page.goto(`${api.url}/#/jobs/odd/edit`);
    await page.waitForSelector("#job-form [name=cwd]");
    await fill(page, "#job-form [name=cwd]", "srv");
    await page.click("#save");
    await waitForText(page, "[data-error=cwd]", "is not an absolute path");
    assertEquals((await stored(api, "odd")).cwd, "/srv/new\ndir");
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
    assertEquals(
      await page.evaluate<number[]>(sideways),
      [0, 0, 0],
      "the job page, its running runs and its runs",
    );
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

/** A stored value as the job page shows it (a boolean as coalesce's). */
function shownAs(value: unknown): string {
  return typeof value === "string" ? value : String(value);
}

dashboardTest(
  "dashboard: a job's page shows every field, retries, follow-up and hooks included",
  async (api) => {
    await addJob(api, { id: "parent" });
    await addJob(api, {
      id: "child",
      retries: 3,
      retry_delay: 5,
      retry_max_delay: 60,
      retry_on: "failed,killed",
      retry_overlap: true,
      after_job: "parent",
      after_outcome: "failure",
      on_failure: "mail -s failed ops",
      on_failure_url: "https://hooks.example/failed",
      on_recovery: "mail -s recovered ops",
      on_recovery_url: "https://hooks.example/recovered",
      on_success: "touch /tmp/ok",
      on_success_url: "https://hooks.example/ok",
      alert_after: 7200,
      timezone: "Europe/Paris",
      max_instances: 2,
      coalesce: false,
      misfire_grace_time: 30,
      env: { A: "1" },
      cwd: "/srv",
      description: "the child",
      user: "www-data",
    });
    const job = await stored(api, "child");
    await using chromium = await openBrowser();
    const page = await chromium.page();
    await signIn(page, api.url, "#/jobs/child");
    await waitForText(page, "#job-fields", "the child");
    const shown = await page.evaluate<Record<string, string>>(
      `Object.fromEntries([...document.querySelectorAll("#job-fields dd[data-field]")]
        .map((dd) => [dd.dataset.field, dd.textContent]))`,
    );
    const times = await page.evaluate<Record<string, string>>(
      `Object.fromEntries([...document.querySelectorAll("#job-fields dd[data-field] time")]
        .map((t) => [t.parentElement.dataset.field, t.getAttribute("datetime")]))`,
    );
    const wrong: string[] = [];
    for (const field of JOB_FIELDS) {
      const value = job[field];
      const text = (FIELD_NAMES as readonly string[]).includes(field)
        ? shown.schedule
        : field === "id" || field === "enabled"
        ? await page.evaluate<string>(`document.querySelector("h1").textContent`)
        : shown[field];
      const ok = field === "created_at" || field === "updated_at"
        ? times[field] === value
        : field === "env"
        ? text?.includes("A=1")
        : field === "enabled"
        ? text?.includes("enabled")
        : text?.includes(shownAs(value));
      if (!ok) wrong.push(`${field}: ${JSON.stringify(value)} shown as ${JSON.stringify(text)}`);
    }
    assertEquals(wrong, [], "fields the job page does not show as stored");
    await screenshot(page, "job-every-field");

    const phone = await chromium.page({ width: 390, height: 844, mobile: true });
    await signIn(phone, api.url, "#/jobs/child");
    await waitForText(phone, "#job-fields", "the child");
    const sideways = `document.documentElement.scrollWidth - document.documentElement.clientWidth`;
    assertEquals(await phone.evaluate<number>(sideways), 0, "the job page fits a phone");
    await phone.goto(`${api.url}/#/jobs/child/edit`);
    await phone.waitForSelector("#job-form [name=alert_after]");
    assertEquals(await phone.evaluate<number>(sideways), 0, "the form fits a phone");
    await screenshot(phone, "job-form-phone");
  },
);

/** The retry, follow-up and notification fields as the form sets them, and as they are stored. */
const POLICY_TYPED: Record<string, string> = {
  retries: "2",
  retry_delay: "30",
  retry_max_delay: "600",
  retry_on: "failed,timeout",
  after_job: "parent",
  on_failure: "echo failed",
  on_failure_url: "https://hooks.example/f",
  on_recovery: "echo recovered",
  on_recovery_url: "https://hooks.example/r",
  on_success: "echo ok",
  on_success_url: "https://hooks.example/s",
  alert_after: "2h",
};

dashboardTest(
  "dashboard: the form sets and clears retries, the follow-up link and the hooks, errors beside each",
  async (api) => {
    await addJob(api, { id: "parent" });
    await addJob(api, { id: "child" });
    const defaults = await stored(api, "child");
    await using chromium = await openBrowser();
    const page = await chromium.page();
    await signIn(page, api.url, "#/jobs/child/edit");
    await page.waitForSelector("#job-form [name=alert_after]");
    const missing = await page.evaluate<string[]>(
      `${JSON.stringify(JOB_FIELDS)}.filter((f) => f !== "created_at" && f !== "updated_at" &&
        document.querySelector("#job-form [data-field=" + f + "]") === null)`,
    );
    assertEquals(missing, [], "fields the form has no place for");

    // Set every one, and drop the schedule: the job then runs only after its parent's failures.
    for (const [name, value] of Object.entries(POLICY_TYPED)) {
      await fill(page, `#job-form [name=${name}]`, value);
    }
    await page.click("#job-form [name=retry_overlap]");
    await page.select("#job-form [name=after_outcome]", "failure");
    for (const f of FIELD_NAMES) await fill(page, `#job-form [aria-label=${f}]`, "");
    await page.click("#save");
    await waitForText(page, "#job-fields", "2 h");
    const set = await stored(api, "child");
    assertEquals(
      Object.fromEntries(RUN_POLICY_FIELDS.map((f) => [f, set[f]])),
      {
        ...POLICY_TYPED,
        retries: 2,
        retry_delay: 30,
        retry_max_delay: 600,
        retry_overlap: true,
        after_outcome: "failure",
        alert_after: 7200,
      },
    );
    assertEquals(set.schedule, "", "the schedule was dropped");

    // A bad value of each is refused with the API's message, beside its field.
    const bad: [string, string, string][] = [
      ["retries", "many", "retries:"],
      ["retry_max_delay", "5", "retry_max_delay: 5 s is shorter than retry_delay"],
      ["retry_on", "failed,nope", 'names "nope"'],
      ["after_job", "ghost", "job 'ghost' does not exist"],
      ["on_failure_url", "ftp://x", "on_failure_url: is not an http"],
      ["alert_after", "soon", "alert_after:"],
    ];
    await page.goto(`${api.url}/#/jobs/child/edit`);
    await page.waitForSelector("#job-form [name=alert_after]");
    for (const [name, value, message] of bad) {
      await fill(page, `#job-form [name=${name}]`, value);
      await page.click("#save");
      await waitForText(page, `[data-error=${name}]`, message);
      await fill(page, `#job-form [name=${name}]`, POLICY_TYPED[name]);
    }
    await screenshot(page, "job-form-policy");

    // Emptied, each goes back to what a job added without it has; the link needs a schedule then.
    for (const name of Object.keys(POLICY_TYPED)) await fill(page, `#job-form [name=${name}]`, "");
    await page.click("#job-form [name=retry_overlap]");
    await page.click("#save");
    await waitForText(page, "[data-error=cron]", "schedule: missing");
    await fill(page, "#job-form [aria-label=hour]", "4");
    await page.click("#save");
    await waitForText(page, "#job-fields", "never");
    const cleared = await stored(api, "child");
    assertEquals(
      Object.fromEntries(RUN_POLICY_FIELDS.map((f) => [f, cleared[f]])),
      Object.fromEntries(RUN_POLICY_FIELDS.map((f) => [f, defaults[f]])),
    );
    assertEquals(cleared.hour, "4");

    // The add form sets them too: a job that only follows another.
    await page.goto(`${api.url}/#/add-job`);
    await page.waitForSelector("#job-form [name=after_job]");
    await fill(page, "#job-form [name=id]", "follower");
    await fill(page, "#job-form [name=command]", "true");
    await fill(page, "#job-form [name=after_job]", "parent");
    await fill(page, "#job-form [name=retries]", "1");
    await page.click("#save");
    await waitForText(page, "#job-fields", "after 'parent' ends: success");
    const added = await stored(api, "follower");
    assertEquals([added.after_job, added.after_outcome, added.retries], ["parent", "success", 1]);
  },
);

dashboardTest(
  "dashboard: a job whose env column was broken by hand shows, with what is wrong, and can be edited",
  async (api, db) => {
    await addJob(api, { id: "nulled" });
    await addJob(api, { id: "number" });
    await rawQuery(db, "UPDATE jm_jobs SET env = 'null' WHERE id = 'nulled'");
    await rawQuery(db, `UPDATE jm_jobs SET env = '{"A":1}' WHERE id = 'number'`);
    await using chromium = await openBrowser();
    const page = await chromium.page();
    await signIn(page, api.url, "#/jobs/nulled");
    await waitForText(page, ".alert", `env: is null, not an object of NAME: "value" strings`);
    await page.goto(`${api.url}/#/jobs/number`);
    await waitForText(page, ".alert", `env.A: is a number; quote it ("…")`);
    await waitForText(page, "#job-env", "A=1");
    await page.goto(`${api.url}/#/jobs/nulled/edit`);
    await page.waitForSelector("#job-form [name=env]");
    await fill(page, "#job-form [name=env]", "B=2");
    await page.click("#save");
    await waitUntil(
      page,
      `location.hash === "#/jobs/nulled"`,
      "the saved job's page",
      "location.hash",
    );
    assertEquals((await stored(api, "nulled")).env, { B: "2" });
  },
);

dashboardTest(
  "dashboard: a save that gives a job a user this host has no account of shows the API's warning on the job's page",
  async (api) => {
    await addJob(api, { id: "elsewhere" });
    await using chromium = await openBrowser();
    const page = await chromium.page();
    await signIn(page, api.url, "#/jobs/elsewhere/edit");
    await page.waitForSelector("#job-form [name=user]");
    await fill(page, "#job-form [name=user]", "jm-no-such-user");
    await page.click("#save");
    await waitForText(
      page,
      "#save-warnings",
      `user 'jm-no-such-user' has no account on this host (${Deno.hostname()}): stored all the same`,
    );
    await screenshot(page, "job-saved-with-warning");
    assertEquals((await stored(api, "elsewhere")).user, "jm-no-such-user");
    // Said once, for that save: the page drawn again says nothing of it. The list drawn first,
    // or the job's page still shown is read (CI at d4dbc9f).
    await page.goto(`${api.url}/#/jobs`);
    await waitUntil(
      page,
      `location.hash === "#/jobs" && document.querySelector("#job-fields") === null`,
      "the jobs list drawn in place of the job's page",
      "location.hash",
    );
    await page.goto(`${api.url}/#/jobs/elsewhere`);
    await waitForText(page, "#job-fields", "jm-no-such-user");
    assertEquals(
      await page.evaluate<boolean>(`document.querySelector("#save-warnings") === null`),
      true,
    );
  },
);
