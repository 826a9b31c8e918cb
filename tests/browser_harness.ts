/**
 * Real headless Chromium for the dashboard tests, driven by puppeteer-core.
 * Without a Chromium binary the browser tests are skipped, with one line
 * saying how to run them; screenshots go to test-output/screenshots/.
 */
// @ts-types="./browser_puppeteer.d.ts"
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { ADMIN, type Api, startApi } from "./http_harness.ts";
import { freshDatabase, type TestDatabase } from "./helpers.ts";
import { assertEquals } from "./assert.ts";

function findChromium(): string | null {
  const candidates = [
    Deno.env.get("JM_CHROMIUM"),
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
  ];
  for (const path of candidates) {
    if (!path) continue;
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // Not there; try the next one.
    }
  }
  return null;
}

export const CHROMIUM = findChromium();

/** How to run the browser tests, for the one line a run without Chromium shows. */
export const WITH_CHROMIUM = "apt-get install -y chromium, or set JM_CHROMIUM=/path/to/chromium";

export const SCREENSHOTS = new URL("../test-output/screenshots/", import.meta.url).pathname;

export interface TestBrowser extends AsyncDisposable {
  browser: Browser;
  /** A new page of `width`×`height` CSS pixels (a laptop unless told). */
  page(size?: { width: number; height: number; mobile?: boolean }): Promise<Page>;
}

/** Launch headless Chromium with a fresh profile, removed on dispose. */
export async function openBrowser(): Promise<TestBrowser> {
  const profile = await Deno.makeTempDir({ prefix: "jm-chromium-" });
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM!,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      `--user-data-dir=${profile}`,
    ],
  });
  return {
    browser,
    async page(size = { width: 1280, height: 800 }) {
      const page = await browser.newPage();
      await page.setViewport({
        width: size.width,
        height: size.height,
        isMobile: size.mobile ?? false,
        hasTouch: size.mobile ?? false,
        deviceScaleFactor: 1,
      });
      // A script error on the page (or a policy violation) is a failed test, not a silent one.
      page.on("pageerror", (error) => pageErrors.push(String(error)));
      page.on("console", (message) => {
        // An API answer of 400 or 401 is what some steps expect; the tests check those.
        const expected = message.text().startsWith("Failed to load resource: the server responded");
        if (message.type() === "error" && !expected) pageErrors.push(message.text());
      });
      return page;
    },
    async [Symbol.asyncDispose]() {
      await browser.close();
      await Deno.remove(profile, { recursive: true });
    },
  };
}

/** Errors thrown or logged by page scripts since the last `takePageErrors()`. */
const pageErrors: string[] = [];

export function takePageErrors(): string[] {
  return pageErrors.splice(0);
}

export async function screenshot(page: Page, name: string): Promise<void> {
  await Deno.mkdir(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: `${SCREENSHOTS}${name}.png`, fullPage: true });
}

/** Wait until `selector` shows text containing `text`; on timeout, say what it showed. */
export async function waitForText(
  page: Page,
  selector: string,
  text: string,
  timeoutMs = 15_000,
): Promise<void> {
  const find = `[...document.querySelectorAll(${JSON.stringify(selector)})]`;
  try {
    await page.waitForFunction(
      `${find}.some((el) => el.textContent.includes(${JSON.stringify(text)}))`,
      { timeout: timeoutMs },
    );
  } catch {
    const shown = await page.evaluate<string>(`${find}.map((el) => el.textContent).join(" | ")`);
    const body = await page.evaluate<string>(`document.querySelector("main").textContent`);
    throw new Error(
      `waited ${timeoutMs} ms for ${selector} to show ${JSON.stringify(text)}; it shows ${
        JSON.stringify(shown)
      }; the page shows ${JSON.stringify(body.slice(0, 500))}`,
    );
  }
}

/** Set a form control's value as a person would: clear it, then type. */
/**
 * A dashboard test against the API alone on a fresh SQLite database
 * (skipped without Chromium); the pages it opened must have raised no
 * script error.
 */
export function dashboardTest(
  name: string,
  fn: (api: Api, db: TestDatabase) => Promise<void>,
): void {
  Deno.test({
    name,
    ignore: CHROMIUM === null,
    async fn() {
      await using db = await freshDatabase("sqlite");
      await using api = await startApi(db);
      await fn(api, db);
      assertEquals(takePageErrors(), []);
    },
  });
}

/** Open the dashboard at `hash` and sign in with the admin token. */
export async function signIn(page: Page, url: string, hash = "#/jobs"): Promise<void> {
  await page.goto(`${url}/${hash}`);
  await page.waitForSelector("#login input[name=token]");
  await page.type("#login input[name=token]", ADMIN);
  await page.click("#login button[type=submit]");
  await waitForText(page, "#who", "admin");
}

export async function fill(page: Page, selector: string, text: string): Promise<void> {
  await page.evaluate(`document.querySelector(${JSON.stringify(selector)}).value = ""`);
  await page.type(selector, text);
}

/**
 * Wait until the page expression `test` is true; on timeout, fail with
 * `what` and the value of the page expression `state` (what it showed).
 */
export async function waitUntil(
  page: Page,
  test: string,
  what: string,
  state: string,
  timeoutMs = 15_000,
): Promise<void> {
  try {
    await page.waitForFunction(test, { timeout: timeoutMs });
  } catch {
    const shown = await page.evaluate<unknown>(state);
    throw new Error(`waited ${timeoutMs} ms for ${what}; the page shows ${JSON.stringify(shown)}`);
  }
}

/** A canned answer for a request the page makes. */
export interface Canned {
  status: number;
  body: string;
  contentType?: string;
  /** Never answer: a server held up by a database that hangs (the page gives up on its own). */
  hang?: boolean;
}

/** A request left unanswered, as a server waiting on a database that hangs leaves it. */
export const HANG: Canned = { status: 0, body: "", hang: true };

export interface Interceptor {
  /** Answer requests to /api/v1 paths for which this gives an answer; the rest go through. */
  answer: (path: string) => Canned | null;
  /** Requests seen per API path (with its query). */
  seen: Map<string, number>;
}

/** Let the test answer some of the page's API requests itself (an outage, a refusal). */
export async function intercept(page: Page): Promise<Interceptor> {
  const interceptor: Interceptor = { answer: () => null, seen: new Map() };
  await page.setRequestInterception(true);
  page.on("request", (request) => {
    const url = new URL(request.url());
    const path = url.pathname + url.search;
    interceptor.seen.set(path, (interceptor.seen.get(path) ?? 0) + 1);
    const canned = url.pathname.startsWith("/api/v1/") ? interceptor.answer(path) : null;
    if (canned === null) return void request.continue();
    if (canned.hang) return;
    void request.respond({
      status: canned.status,
      contentType: canned.contentType ?? "application/json",
      body: canned.body,
    });
  });
  return interceptor;
}
