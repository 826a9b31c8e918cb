/**
 * The dashboard shell in real Chromium: the page, its script and styles
 * load under the Content-Security-Policy, a wrong token is refused on the
 * sign-in form, a right one signs in and shows its role.
 */
import { assertEquals } from "./assert.ts";
import { defaultSettings } from "../src/config/config.ts";
import { Metrics } from "../src/http/metrics.ts";
import { startHttpServer } from "../src/http/server.ts";
import {
  CHROMIUM,
  fill,
  openBrowser,
  screenshot,
  takePageErrors,
  waitForText,
} from "./browser_harness.ts";

const READER = "read-token-0123456789abcdef";

Deno.test({
  name: "dashboard: sign in with a token; a wrong one is refused",
  ignore: CHROMIUM === null,
  async fn() {
    const server = await startHttpServer(
      {
        ...defaultSettings(),
        "http.listen": "127.0.0.1:0",
        "http.token": "",
        "http.tokens": [{ token: READER, role: "read" }],
      },
      { metrics: new Metrics(), readiness: () => ({ ready: true, checks: {} }), redact: (t) => t },
    );
    try {
      await using chromium = await openBrowser();
      const page = await chromium.page();
      await page.goto(`${server.url}/#/status`);
      await page.waitForSelector("#login input[name=token]");
      await page.type("#login input[name=token]", "wrong-token-0123456789abcdef");
      await page.click("#login button[type=submit]");
      await waitForText(page, "#login .alert", "the bearer token is not one of http.tokens");
      await screenshot(page, "login-refused");
      await fill(page, "#login input[name=token]", READER);
      await page.click("#login button[type=submit]");
      await waitForText(page, "#who", "read");
      assertEquals(takePageErrors(), []);
    } finally {
      await server.close();
    }
  },
});
