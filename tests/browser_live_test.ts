/**
 * The dashboard's refreshing pages in real Chromium when the API fails:
 * the status page and a running run's page keep what they showed, say
 * what failed, try again and recover; a refresh keeps focus.
 */
import { assertEquals } from "./assert.ts";
import { freshDatabase, serviceRow, waitFor } from "./helpers.ts";
import { startApi } from "./http_harness.ts";
import { NEVER_READ } from "../src/http/api/status.ts";
import {
  CHROMIUM,
  dashboardTest,
  HANG,
  intercept,
  type Interceptor,
  openBrowser,
  screenshot,
  signIn,
  takePageErrors,
  waitForText,
  waitUntil,
} from "./browser_harness.ts";
import type { Page } from "./browser_puppeteer.d.ts";

const OUTAGE = {
  status: 503,
  body: JSON.stringify({ error: "the database at 127.0.0.1:3306 is unreachable (test)" }),
};

/** Wait until the page asked for `path` `more` times more than it had. */
async function refreshed(seen: Interceptor["seen"], path: string, more = 2): Promise<void> {
  const from = seen.get(path) ?? 0;
  await waitFor(() => (seen.get(path) ?? 0) >= from + more, {
    timeoutMs: 20_000,
    what: `the page to ask for ${path} ${more} more times`,
    detail: () => `it asked ${(seen.get(path) ?? 0) - from} times`,
  });
}

const text = (page: Page, selector: string) =>
  page.evaluate<string>(`document.querySelector(${JSON.stringify(selector)})?.textContent ?? ""`);

const focused = `document.activeElement?.outerHTML ?? "nothing"`;

dashboardTest(
  "dashboard: the status page survives an outage, says so, keeps focus and recovers",
  async (api) => {
    const added = await api.call("POST", "/api/v1/jobs", {
      body: { id: "hourly", command: "true", cron: "0 * * * *" },
    });
    assertEquals(added.status, 201);
    await using chromium = await openBrowser();
    const page = await chromium.page();
    const net = await intercept(page);
    await signIn(page, api.url, "#/status");
    await waitForText(page, "#main", "hourly");
    await page.evaluate(`document.querySelector('#main a[href="#/jobs/hourly"]').focus()`);
    await refreshed(net.seen, "/api/v1/status", 1);
    assertEquals(await page.evaluate<string>(focused), '<a href="#/jobs/hourly">hourly</a>');

    net.answer = (path) => path === "/api/v1/status" ? OUTAGE : null;
    await waitForText(page, "#refresh-error", "unreachable (test)");
    await waitForText(page, ".tiles", "database", 1000);
    await screenshot(page, "status-outage");
    assertEquals(await page.evaluate<string>(focused), '<a href="#/jobs/hourly">hourly</a>');

    net.answer = () => null;
    await waitUntil(
      page,
      `document.querySelector("#refresh-error") === null`,
      "the banner to go once the API answers",
      `document.querySelector("#main").textContent.slice(0, 300)`,
    );
  },
);

dashboardTest(
  "dashboard: a status never read (the database down since the service started) shows nothing as zero",
  async (api) => {
    await using chromium = await openBrowser();
    const page = await chromium.page();
    const net = await intercept(page);
    // What /status answers then.
    const body = { ...NEVER_READ, database: { state: "down", detail: "cannot connect (test)" } };
    net.answer = (path) =>
      path === "/api/v1/status" ? { status: 200, body: JSON.stringify(body) } : null;
    await signIn(page, api.url, "#/status");
    await waitForText(page, "#database-down", "not known until it answers");
    await screenshot(page, "status-never-read");
    const tiles = await page.evaluate<string[]>(
      `[...document.querySelectorAll(".tile")].map((t) => t.querySelector(".label").textContent + ": " + t.querySelector(".value").textContent)`,
    );
    assertEquals(tiles.filter((t) => !t.startsWith("database")), [
      "live services: ?",
      "pending reload markers: ?",
      "notifications waiting: ?",
      "runs in the last hour: ?",
      "running now: ?",
    ]);
    assertEquals(await text(page, "#services tbody"), "not known until the database answers");
    assertEquals(await text(page, "#next-fires tbody"), "not known until the database answers");
  },
);

/** Each service's "… ago" under its last heartbeat (the fifth column) on the status page. */
const heartbeatAges = `Object.fromEntries([...document.querySelectorAll("#services tr[data-node]")]
  .map((tr) => [tr.dataset.node, tr.children[4].lastChild.textContent]))`;

dashboardTest(
  "dashboard: heartbeats are aged on the database's clock, not the services' nor the viewer's",
  async (api) => {
    const databaseNow = await api.store.databaseNow();
    // Beat 2 s ago by the database; their own clocks 5 min ahead and 5 min behind.
    for (const [id, skew] of [["ahead", 300_000], ["behind", -300_000]] as const) {
      await api.store.saveNode({
        ...serviceRow(id),
        started_at: databaseNow + skew - 600_000,
        heartbeat_at: databaseNow + skew - 2000,
        db_heartbeat_at: databaseNow - 2000,
        heartbeat_ms: 5000,
        skew_ms: skew,
      });
    }
    await using chromium = await openBrowser();
    const page = await chromium.page();
    const net = await intercept(page);
    await signIn(page, api.url, "#/status");
    // Aged on a service's clock they would be 5 min off, on the viewer's an hour: seconds tell
    // them apart. Written once, they age with the test, which a busy machine may take long over.
    const recent = `Object.values(${heartbeatAges}).every((t) => /^[0-9]+ s ago$/.test(t))`;
    await waitUntil(page, recent, "both heartbeats less than a minute old", heartbeatAges);

    // The same answers from a database whose clock is an hour behind the viewer's, each read
    // now on it. A fresh page: one that knew the real clock keeps it a while (core.ts `learnClock`).
    const real = (await api.call("GET", "/api/v1/status")).body as {
      services: Record<string, unknown>[];
    };
    const hourEarlier = (iso: unknown) => new Date(Date.parse(iso as string) - 3_600_000);
    const services = real.services.map((n) => ({
      ...n,
      db_heartbeat_at: hourEarlier(n.db_heartbeat_at),
      version: "shifted",
    }));
    net.answer = (path) => {
      const database_now = new Date(Date.now() - 3_600_000);
      if (path === "/api/v1/clock") return { status: 200, body: JSON.stringify({ database_now }) };
      if (path !== "/api/v1/status") return null;
      return { status: 200, body: JSON.stringify({ ...real, database_now, services }) };
    };
    await page.reload();
    await waitForText(page, "#services", "shifted");
    await waitUntil(page, recent, "both heartbeats less than a minute old", heartbeatAges);
    await screenshot(page, "status-skewed-clocks");
  },
);

dashboardTest(
  "dashboard: a heartbeat's age goes on counting while the status cannot be read",
  async (api) => {
    await api.store.saveNode({
      ...serviceRow("quiet"),
      db_heartbeat_at: await api.store.databaseNow() - 2000,
      heartbeat_ms: 5000,
      skew_ms: 0,
    });
    await using chromium = await openBrowser();
    const page = await chromium.page();
    const net = await intercept(page);
    await signIn(page, api.url, "#/status");
    const seconds = `Number(/^([0-9]+) s ago$/.exec(${heartbeatAges}.quiet)?.[1] ?? NaN)`;
    await waitUntil(page, `${seconds} >= 0`, "the heartbeat's age", heartbeatAges);
    net.answer = (path) => path === "/api/v1/status" ? OUTAGE : null;
    await waitForText(page, "#refresh-error", "unreachable (test)");
    const shown = await page.evaluate<number>(seconds);
    // Left as last read, "2 s ago" would say the service lives, however long the outage.
    await waitUntil(page, `${seconds} >= ${shown + 3}`, "the heartbeat to age on", heartbeatAges);
  },
);

/** A run as GET /runs/{id} answers it, `status` and output as told. */
function run(status: string, stdout: string): string {
  const final = status !== "running";
  return JSON.stringify({
    id: 7,
    job_id: "long",
    status,
    note: null,
    trigger: "schedule",
    forced: false,
    scheduled_at: "2026-01-01T00:00:00.000Z",
    started_at: "2026-01-01T00:00:00.100Z",
    finished_at: final ? "2026-01-01T00:00:09.000Z" : null,
    exit_code: final ? 0 : null,
    signal: null,
    node_id: "node-1",
    cancel_requested_at: null,
    cancel_requested_by: null,
    stdout,
    stderr: "",
  });
}

Deno.test({
  name:
    "dashboard: a running run's page survives an outage, keeps focus, and its title goes with it",
  ignore: CHROMIUM === null,
  async fn() {
    await using db = await freshDatabase("sqlite");
    await using api = await startApi(db);
    await using chromium = await openBrowser();
    const page = await chromium.page();
    const net = await intercept(page);
    let answer = { status: 200, body: run("running", "step 1\n") };
    net.answer = (path) => path === "/api/v1/runs/7" ? answer : null;
    await signIn(page, api.url, "#/runs/7");
    await waitForText(page, "#stdout", "step 1");
    assertEquals(await page.evaluate<string>(`document.title`), "run 7");
    await page.evaluate(`document.querySelector("[data-action=cancel]").focus()`);

    answer = OUTAGE;
    await waitForText(page, "#refresh-error", "unreachable (test)");
    assertEquals(await text(page, "#stdout"), "step 1\n", "what was read stays");
    answer = { status: 200, body: run("running", "step 1\nstep 2\n") };
    await waitForText(page, "#stdout", "step 2");
    assertEquals(
      await page.evaluate<boolean>(`document.querySelector("#refresh-error") === null`),
      true,
    );
    assertEquals(await page.evaluate<string>(`document.activeElement.dataset.action`), "cancel");
    await screenshot(page, "run-recovered");

    await page.goto(`${api.url}/#/jobs`);
    await waitForText(page, "#jobs", "no jobs yet");
    assertEquals(await page.evaluate<string>(`document.title`), "jobsmanager");
    assertEquals(takePageErrors(), []);
  },
});

const liveState =
  `document.querySelector("#live")?.dataset.state + ": " + document.querySelector("#live")?.textContent`;

dashboardTest(
  "dashboard: a live stream shows the server's refusal or error, not 'reconnecting' for ever",
  async (api) => {
    await using chromium = await openBrowser();
    const page = await chromium.page();
    const net = await intercept(page);

    // A bad filter is refused (400): the server's words, and no asking again.
    await signIn(page, api.url, "#/logs?job=foo%20bar");
    await waitUntil(
      page,
      `document.querySelector("#live")?.dataset.state === "refused"`,
      "the stream to be shown refused",
      liveState,
    );
    await waitForText(page, "#live", '"foo bar" has characters outside');
    await screenshot(page, "logs-refused");

    // Too many streams (503): the server's words while it tries again.
    net.answer = (path) =>
      path.startsWith("/api/v1/runs/stream")
        ? { status: 503, body: JSON.stringify({ error: "64 live streams are open (test)" }) }
        : null;
    await page.goto(`${api.url}/#/runs`);
    await waitForText(page, "#live", "64 live streams are open (test)");
    assertEquals(
      await page.evaluate<string>(`document.querySelector("#live").dataset.state`),
      "reconnecting",
    );

    // The database goes away while the stream is open: the server's error event says so.
    await page.evaluate(`window.seen = [];
      new MutationObserver(() => window.seen.push(${liveState}))
        .observe(document.querySelector("#live"), { subtree: true, attributes: true, childList: true, characterData: true });`);
    net.answer = (path) =>
      path.startsWith("/api/v1/runs/stream")
        ? {
          status: 200,
          contentType: "text/event-stream",
          body: 'event: error\ndata: {"error":"the database is away (test)"}\n\n',
        }
        : null;
    await waitUntil(
      page,
      `window.seen.some((s) => s.startsWith("failing: not live") && s.includes("the database is away (test)"))`,
      "the badge to say the stream is not live, and why",
      `window.seen`,
    );
    net.answer = () => null;
    await waitUntil(
      page,
      `document.querySelector("#live")?.dataset.state === "live"`,
      "the stream to be live again",
      liveState,
    );
  },
);

const JOB = { id: "long", command: "sleep 600", cron: "0 0 1 1 *" };

const runRows = `[...document.querySelectorAll("#runs tbody tr[data-run]")]
  .map((tr) => tr.dataset.run + " " + tr.dataset.status)`;

dashboardTest("dashboard: a run that ends leaves the table of running runs", async (api) => {
  assertEquals((await api.call("POST", "/api/v1/jobs", { body: JOB })).status, 201);
  const running = (at: number) => ({
    job_id: "long",
    scheduled_at: at,
    status: "running" as const,
    trigger: "schedule" as const,
    started_at: at,
  });
  const [first, second] = await api.store.claimRuns([running(1000), running(2000)]);
  await using chromium = await openBrowser();
  const page = await chromium.page();
  await signIn(page, api.url, "#/runs?status=running");
  await waitUntil(
    page,
    `document.querySelector("#live")?.dataset.state === "live" && ${runRows}.length === 2`,
    "both running runs, live",
    `[${liveState}, ${runRows}]`,
  );
  await api.store.updateRun(first!, {
    status: "success",
    finished_at: Date.now(),
    exit_code: 0,
  });
  await waitUntil(
    page,
    `${runRows}.join() === "${second} running"`,
    `run ${first} to leave once it ended`,
    runRows,
  );
});

/** A run as the stream sends it (no output). */
function listedRun(id: number, status: string) {
  return {
    id,
    job_id: "busy",
    status,
    note: null,
    trigger: "schedule",
    forced: false,
    attempt: 1,
    scheduled_at: new Date(1_767_225_600_000 + id * 1000).toISOString(),
    started_at: null,
    finished_at: null,
    exit_code: null,
    signal: null,
    node_id: "node-1",
  };
}

dashboardTest(
  "dashboard: the live runs table keeps the newest 1,000 runs, in order",
  async (api) => {
    await using chromium = await openBrowser();
    const page = await chromium.page();
    const net = await intercept(page);
    // 1,500 new runs, then a change to one shown and one to a run too old to be kept.
    const events = [
      ...Array.from({ length: 1500 }, (_, i) => listedRun(i + 1, "running")),
      listedRun(700, "success"),
      listedRun(3, "success"),
    ].map((run) => `event: run\ndata: ${JSON.stringify(run)}\n\n`);
    // Sent once: a stream that came back would replay them, and the table would churn while judged.
    net.answer = (path) =>
      path === "/api/v1/runs/stream?after=0"
        ? { status: 200, contentType: "text/event-stream", body: events.join("") }
        : path.startsWith("/api/v1/runs/stream")
        ? HANG
        : null;
    await signIn(page, api.url, "#/runs");
    const shown = `(() => { const rows = ${runRows};
      return { count: rows.length, first: rows[0], last: rows[rows.length - 1],
        sorted: rows.every((r, i) => i === 0 || parseInt(r) < parseInt(rows[i - 1])),
        run700: rows.find((r) => r.startsWith("700 ")), run3: rows.find((r) => r.startsWith("3 ")) }; })()`;
    await waitUntil(
      page,
      `(() => { const s = ${shown}; return s.count === 1000 && s.first === "1500 running" &&
        s.last === "501 running" && s.sorted && s.run700 === "700 success" && s.run3 === undefined; })()`,
      "the newest 1,000 runs, newest first, run 700 ended",
      shown,
      30_000,
    );
  },
);

/** A stream's answer of these events, and its end: the page comes back 2 s later. */
function sse(
  ...events: [string, unknown][]
): { status: number; contentType: string; body: string } {
  const body = events.map(([event, data]) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  return { status: 200, contentType: "text/event-stream", body: body.join("") };
}

for (
  const [where, stream, list] of [
    ["#/runs", "/api/v1/runs/stream?after=", "/api/v1/runs?&limit=100"],
    ["#/jobs/busy", "/api/v1/runs/stream?job=busy&after=", "/api/v1/runs?job=busy&limit=1"],
  ]
) {
  dashboardTest(
    `dashboard (${where}): a live runs stream that comes back resumes after the newest run shown; relist reads the list again`,
    async (api) => {
      const added = await api.call("POST", "/api/v1/jobs", {
        body: { id: "busy", command: "true", cron: "0 0 1 1 *" },
      });
      assertEquals(added.status, 201);
      await using chromium = await openBrowser();
      const page = await chromium.page();
      const net = await intercept(page);
      const newest = listedRun(5000, "success");
      // The first stream sends two runs and ends (a restart, a network drop); the next one,
      // from there, says more runs came than it sends at once; the list read again has them.
      net.answer = (path) => {
        if (path === `${stream}0`) {
          return sse(["run", listedRun(5, "success")], ["run", listedRun(7, "success")]);
        }
        if (path === `${stream}7`) return sse(["relist", { after: 7, newest: 5000 }]);
        if (path === `${stream}5000`) return HANG;
        if (path === list && net.seen.has(`${stream}7`)) {
          return { status: 200, body: JSON.stringify([newest]) };
        }
        return null;
      };
      await signIn(page, api.url, where);
      await waitUntil(
        page,
        `${runRows}.join() === "5000 success,7 success,5 success"`,
        "the runs streamed, then the newest of the list read again",
        runRows,
        20_000,
      );
      await waitFor(() => net.seen.has(`${stream}5000`), {
        timeoutMs: 20_000,
        what: "the stream to resume after the newest run the relist named",
        detail: () => JSON.stringify([...net.seen.keys()].filter((p) => p.includes("/runs"))),
      });
      assertEquals(
        [...net.seen.keys()].filter((p) => p.startsWith(stream)),
        [`${stream}0`, `${stream}7`, `${stream}5000`],
      );
    },
  );
}

const jobsShown = `({
  rows: [...document.querySelectorAll("#jobs tbody tr[data-job]")].filter((tr) => !tr.hidden)
    .map((tr) => tr.dataset.job + " " + tr.querySelector("label.switch").textContent),
  filter: document.querySelector("#filter")?.value,
  hash: location.hash,
  focused: document.activeElement?.outerHTML,
  added: window.rowsAdded,
})`;

Deno.test({
  name:
    "dashboard: the jobs filter hides rows, stays in the address; a switch or a refresh keeps filter and focus",
  ignore: CHROMIUM === null,
  async fn() {
    await using db = await freshDatabase("sqlite");
    await using api = await startApi(db);
    for (const id of ["alpha-1", "alpha-2", "beta"]) {
      const added = await api.call("POST", "/api/v1/jobs", {
        body: { id, command: "true", cron: "0 0 1 1 *", description: `job ${id}` },
      });
      assertEquals(added.status, 201);
    }
    await using chromium = await openBrowser();
    const page = await chromium.page();
    await signIn(page, api.url, "#/jobs");
    await waitForText(page, "#jobs", "beta");
    // Typing only hides rows: none is drawn again.
    await page.evaluate(`window.filterInput = document.querySelector("#filter");
      window.rowsAdded = 0;
      new MutationObserver((changes) => { for (const c of changes) window.rowsAdded += c.addedNodes.length; })
        .observe(document.querySelector("#jobs tbody"), { childList: true });`);
    await page.type("#filter", "alpha");
    await waitUntil(
      page,
      `(() => { const s = ${jobsShown}; return s.rows.join() === "alpha-1 on,alpha-2 on" &&
        s.hash === "#/jobs?q=alpha"; })()`,
      "the filter to leave the alpha jobs, and be in the address",
      jobsShown,
    );
    assertEquals(await page.evaluate<number>(`window.rowsAdded`), 0, "rows drawn again");

    // The switch changes its job and its row, not the page.
    await page.click('tr[data-job="alpha-1"] input[type=checkbox]');
    await waitUntil(
      page,
      `${jobsShown}.rows.join() === "alpha-1 off,alpha-2 on"`,
      "alpha-1 to be shown off",
      jobsShown,
    );
    const job = (await api.call("GET", "/api/v1/jobs/alpha-1")).body as { enabled: boolean };
    assertEquals(job.enabled, false);
    const after = await page.evaluate<Record<string, unknown>>(jobsShown);
    assertEquals([after.filter, after.hash], ["alpha", "#/jobs?q=alpha"]);
    assertEquals(
      after.focused,
      await page.evaluate<string>(
        `document.querySelector('tr[data-job="alpha-1"] input[type=checkbox]').outerHTML`,
      ),
    );
    assertEquals(await page.evaluate<boolean>(`window.filterInput.isConnected`), true);

    // A change made elsewhere shows by itself, in place.
    assertEquals((await api.call("POST", "/api/v1/jobs/alpha-2/disable")).status, 200);
    await waitUntil(
      page,
      `${jobsShown}.rows.join() === "alpha-1 off,alpha-2 off"`,
      "the page to show alpha-2 disabled elsewhere",
      jobsShown,
    );
    assertEquals(await page.evaluate<boolean>(`window.filterInput.isConnected`), true);
    assertEquals(await page.evaluate<string>(`document.querySelector("#filter").value`), "alpha");

    // Back from a job finds the list filtered as it was.
    await page.click('a[href="#/jobs/alpha-1"]');
    await waitForText(page, "#job-fields", "job alpha-1");
    await page.evaluate(`history.back()`);
    await waitUntil(
      page,
      `(() => { const s = ${jobsShown}; return s.filter === "alpha" && s.rows.length === 2; })()`,
      "the filter to be kept after Back",
      jobsShown,
    );
    assertEquals(takePageErrors(), []);
  },
});

dashboardTest(
  "dashboard: bidi and control characters are shown escaped, as the CLI prints them",
  async (api) => {
    const added = await api.call("POST", "/api/v1/jobs", {
      body: {
        id: "tricky",
        command: "echo \u202egnp.exe\x1b[2J",
        cron: "0 0 1 1 *",
        description: "fine\u2066 or\x07 not\u009b",
      },
    });
    assertEquals(added.status, 201, JSON.stringify(added.body));
    const [id] = await api.store.claimRuns([{
      job_id: "tricky",
      scheduled_at: 1000,
      status: "failed",
      trigger: "schedule",
      started_at: 1000,
      finished_at: 2000,
      exit_code: 1,
      note: "said \u202eno",
      stdout: "\x1b[31mred\x1b[0m\tcell\nline 2\r\n",
    }]);
    await using chromium = await openBrowser();
    const page = await chromium.page();
    await signIn(page, api.url, "#/jobs/tricky");
    await waitForText(page, "#job-fields", "gnp.exe");
    assertEquals(await text(page, "#job-fields code"), "echo \\u{202e}gnp.exe\\x1b[2J");
    assertEquals(await text(page, "#job-description"), "fine\\u{2066} or\\x07 not\\x9b");
    await page.goto(`${api.url}/#/jobs`);
    await waitForText(page, "#jobs", "tricky");
    assertEquals(
      await text(page, "#jobs tr[data-job] td:first-child .muted"),
      "fine\\u{2066} or\\x07 not\\x9b",
    );

    await page.goto(`${api.url}/#/runs/${id}`);
    await waitForText(page, "#stdout", "red");
    assertEquals(await text(page, "#stdout"), "\\x1b[31mred\\x1b[0m\tcell\nline 2\\x0d\n");
    assertEquals(
      await page.evaluate<string>(`document.querySelector("h1 .badge").title`),
      "said \\u{202e}no",
    );
  },
);

Deno.test({
  name:
    "dashboard: an action's error comes beside the job's own alert; a since from the address stays",
  ignore: CHROMIUM === null,
  async fn() {
    await using db = await freshDatabase("sqlite");
    await using api = await startApi(db);
    assertEquals((await api.call("POST", "/api/v1/jobs", { body: JOB })).status, 201);
    const job = (await api.call("GET", "/api/v1/jobs/long?count=20")).body as object;
    await using chromium = await openBrowser();
    const page = await chromium.page();
    const net = await intercept(page);
    // A job the service cannot schedule as stored (a hand-written row) says so in an alert.
    net.answer = (path) =>
      path === "/api/v1/jobs/long?count=20"
        ? {
          status: 200,
          body: JSON.stringify({ ...job, invalid: "timezone: no such zone (test)" }),
        }
        : null;
    await signIn(page, api.url, "#/jobs/long");
    await waitForText(page, ".alert", "no such zone (test)");
    // No service runs here: Run now is refused.
    await page.click("[data-action=run]");
    const alerts = `[...document.querySelectorAll("#main .alert")].map((a) => a.textContent)`;
    await waitUntil(
      page,
      `${alerts}.some((t) => t.includes("no live service")) && ${alerts}.some((t) => t.includes("no such zone (test)"))`,
      "the refusal beside the job's own alert",
      alerts,
    );

    await page.goto(`${api.url}/#/runs?since=2h`);
    await page.waitForSelector("#run-filters");
    assertEquals(await page.evaluate<string>(`document.querySelector("[name=since]").value`), "2h");
    await page.click("#run-filters button[type=submit]");
    await waitUntil(
      page,
      `location.hash === "#/runs?since=2h"`,
      "Apply to keep since=2h",
      `location.hash`,
    );
    assertEquals(takePageErrors(), []);
  },
});

dashboardTest(
  "dashboard: a job page's next fires move on as they pass, and follow the job changed elsewhere",
  async (api) => {
    const added = await api.call("POST", "/api/v1/jobs", {
      body: { id: "tick", command: "true", cron: "* * * * * *" },
    });
    assertEquals(added.status, 201);
    await using chromium = await openBrowser();
    const page = await chromium.page();
    await signIn(page, api.url, "#/jobs/tick");
    await page.waitForSelector("#next-fires time");
    const fires =
      `[...document.querySelectorAll("#next-fires time")].map((t) => t.getAttribute("datetime"))`;
    const shown = `({ title: document.querySelector("#fires h2")?.textContent, fires: ${fires} })`;
    const first = await page.evaluate<string[]>(fires);
    assertEquals(first.length, 10);

    // A fire each second: the first listed passes at once, and ten later ones come.
    await waitUntil(
      page,
      `(${fires}).length === 10 && (${fires})[0] > ${JSON.stringify(first[0])}`,
      `ten fires after ${first[0]}`,
      shown,
    );

    // Disabled and rescheduled by someone else: the page shows the job as it now is.
    assertEquals((await api.call("POST", "/api/v1/jobs/tick/disable")).status, 200);
    await waitForText(page, "#fires h2", "(once enabled)");
    const daily = await api.call("PATCH", "/api/v1/jobs/tick", { body: { cron: "0 0 3 * * *" } });
    assertEquals(daily.status, 200);
    await waitUntil(
      page,
      `(${fires}).length === 10 && Date.parse((${fires})[1]) - Date.parse((${fires})[0]) > 3600000`,
      "the daily fires",
      shown,
    );
  },
);
