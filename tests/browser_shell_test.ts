/**
 * The dashboard shell in real Chromium: the page, its script and styles
 * load under the Content-Security-Policy, a wrong token is refused on the
 * sign-in form, a right one signs in and shows its role.
 */
import { assertEquals } from "./assert.ts";
import { freshDatabase } from "./helpers.ts";
import { READER, startApi } from "./http_harness.ts";
import {
  CHROMIUM,
  fill,
  openBrowser,
  screenshot,
  takePageErrors,
  waitForText,
  WITH_CHROMIUM,
} from "./browser_harness.ts";

// The one line a run without Chromium prints: every browser test is then ignored.
if (CHROMIUM === null) {
  Deno.test({
    name: `Chromium not found: browser tests skipped (${WITH_CHROMIUM})`,
    ignore: true,
    fn() {},
  });
}

Deno.test({
  name: "dashboard: sign in with a token; a wrong one is refused",
  ignore: CHROMIUM === null,
  async fn() {
    await using db = await freshDatabase("sqlite");
    await using api = await startApi(db, { "http.tokens": [{ token: READER, role: "read" }] });
    await using chromium = await openBrowser();
    const page = await chromium.page();
    await page.goto(`${api.url}/#/status`);
    await page.waitForSelector("#login input[name=token]");
    await page.type("#login input[name=token]", "wrong-token-0123456789abcdef");
    await page.click("#login button[type=submit]");
    await waitForText(page, "#login .alert", "the bearer token is not the one from http.tokens");
    await screenshot(page, "login-refused");
    await fill(page, "#login input[name=token]", READER);
    await page.click("#login button[type=submit]");
    await waitForText(page, "#who", "read");
    assertEquals(takePageErrors(), []);
  },
});
