/**
 * The dashboard at `/`: one page, a stylesheet and a script, embedded in
 * the binary. They hold no data, so they need no token; the script asks
 * for one when the API does. A strict Content-Security-Policy allows only
 * these files, so nothing injected could run.
 */
import { Hono } from "hono";
import { etag } from "hono/etag";
import { createHash } from "node:crypto";
import { CORE_JS } from "./core.ts";
import { FORMS_JS } from "./forms.ts";
import { PAGE_HTML } from "./page.ts";
import { PAGES_JS } from "./pages.ts";
import { STYLE_CSS } from "./style.ts";

interface Asset {
  body: string;
  type: string;
  etag: string;
}

function asset(body: string, type: string): Asset {
  return { body, type, etag: `"${createHash("sha256").update(body).digest("hex").slice(0, 16)}"` };
}

const ASSETS: Record<string, Asset> = {
  "/": asset(PAGE_HTML, "text/html; charset=utf-8"),
  "/assets/app.css": asset(STYLE_CSS, "text/css; charset=utf-8"),
  "/assets/app.js": asset(CORE_JS + PAGES_JS + FORMS_JS, "text/javascript; charset=utf-8"),
};

const SECURITY_HEADERS = {
  "Content-Security-Policy":
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
};

export function dashboardRoutes(): Hono {
  const routes = new Hono();
  for (const [path, { body, type, etag: tag }] of Object.entries(ASSETS)) {
    // Compressed, an asset's ETag goes out weak (W/"…"): the middleware matches it either way.
    routes.use(path, etag());
    routes.get(path, (c) => {
      const headers = {
        ...SECURITY_HEADERS,
        "Content-Type": type,
        ETag: tag,
        "Cache-Control": "no-cache",
      };
      return c.body(body, 200, headers);
    });
  }
  return routes;
}
