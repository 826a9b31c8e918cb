/**
 * The jobs page as an operator opens it first: its polling costs a few
 * bytes while nothing changed.
 */
import { assertEquals } from "./assert.ts";
import { waitFor } from "./helpers.ts";
import { dashboardTest, openBrowser, signIn, waitUntil } from "./browser_harness.ts";

const rowsShown = `document.querySelectorAll("#jobs tbody tr[data-job]").length`;

dashboardTest(
  "dashboard: the jobs page reads the list again with its ETag; 304 keeps the rows, a change redraws",
  async (api) => {
    for (const id of ["alpha", "beta"]) {
      await api.call("POST", "/api/v1/jobs", { body: { id, command: "true", cron: "0 3 * * *" } });
    }
    await using chromium = await openBrowser();
    const page = await chromium.page();
    // Each list the page parses: 1.6 MB of JSON for 2,000 jobs, every 5 s, when not skipped.
    await page.evaluateOnNewDocument(`
    window.parsedJobs = 0;
    const json = Response.prototype.json;
    Response.prototype.json = function () {
      if (new URL(this.url).pathname === "/api/v1/jobs") window.parsedJobs++;
      return json.call(this);
    };
  `);
    const answers: { status: number; asked: string | undefined }[] = [];
    page.on("response", (response) => {
      if (new URL(response.url()).pathname !== "/api/v1/jobs") return;
      answers.push({
        status: response.status(),
        asked: response.request().headers()["if-none-match"],
      });
    });
    await signIn(page, api.url, "#/jobs");
    await waitUntil(page, `${rowsShown} === 2`, "the two jobs", rowsShown);
    // The page reads the list every 5 s: the next read sends the ETag back and is answered 304.
    await waitFor(() => answers.some((a) => a.status === 304 && a.asked?.startsWith('W/"')), {
      timeoutMs: 20_000,
      what: "a read of /api/v1/jobs answered 304 to its If-None-Match",
      detail: () => JSON.stringify(answers),
    });
    await waitUntil(page, `${rowsShown} === 2`, "the rows kept after a 304", rowsShown);
    const parsed = await page.evaluate<number>("window.parsedJobs");
    assertEquals(parsed, 1, `the page parsed the list ${parsed} times: again after a 304`);
    await api.call("POST", "/api/v1/jobs", {
      body: { id: "gamma", command: "true", cron: "0 4 * * *" },
    });
    await waitUntil(page, `${rowsShown} === 3`, "the job added since, shown", rowsShown, 20_000);
  },
);
