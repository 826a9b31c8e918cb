/**
 * The dashboard script's core, as plain browser JavaScript in a string (the
 * binary embeds it; nothing is read from disk): a DOM builder that never
 * parses HTML (so no value from the database can become markup), the API
 * client with the bearer token, a Server-Sent Events reader over fetch (so
 * the token goes in a header, never in a URL), times in the viewer's zone
 * and aged on the database's clock, and the hash router. Pages are in
 * pages.ts and forms.ts.
 */
import { CONTROL } from "../../domain/printable.ts";

export const CORE_JS = String.raw`"use strict";
const TOKEN_KEY = "jobsmanager.token";
const session = { token: sessionStorage.getItem(TOKEN_KEY) || "", role: null, auth: false };
let pageAbort = new AbortController();
const main = () => document.getElementById("main");

/** As the CLI prints (src/domain/printable.ts): controls but newline and tab, and bidi marks. */
const CONTROL = new RegExp(${JSON.stringify(CONTROL.source)});
const CONTROLS = new RegExp(CONTROL.source, "g");

/**
 * Text as it is safe to show: each control or bidi character as \xNN or
 * \u{NNNN}, so a U+202E cannot reverse the rest of a line, nor an ESC hide.
 */
function printable(text) {
  if (!CONTROL.test(text)) return text;
  return text.replace(CONTROLS, (c) => {
    const code = c.charCodeAt(0);
    return code < 0x100 ? "\\x" + code.toString(16).padStart(2, "0") : "\\u{" + code.toString(16) + "}";
  });
}

/**
 * An element; every text in it and its title go through printable(), so
 * what the database holds is shown, never acted on. Form values are left
 * exact: an edit sends back what was stored.
 */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "text") el.textContent = printable(String(v));
    else if (k === "value" || k === "checked" || k === "selected") el[k] = v;
    else if (k === "title") el.title = printable(String(v));
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : printable(String(c)));
  }
  return el;
}

class ApiError extends Error {
  constructor(status, body) {
    // The API speaks as the CLI does; a "(see \`jobsmanager job list\`)" means nothing here.
    super(((body && body.error) || "the server answered " + status).replace(/ \(see \`jobsmanager [^\`]*\`\)/g, ""));
    this.status = status;
    this.field = body && body.field;
    this.body = body;
  }
}

function authHeaders(extra) {
  const headers = Object.assign({}, extra);
  if (session.token) headers.Authorization = "Bearer " + session.token;
  return headers;
}

/**
 * How long an API call may take: a database that hangs holds the answer,
 * and a page that waits on it looks fresh while it is not. A change given
 * up on may still be made: the page's next read shows it.
 */
const API_TIMEOUT_MS = 8000;

/** What api() gives back for a 304: the answer the caller had (its If-None-Match) is current. */
const NOT_MODIFIED = Symbol("not modified");

/** An API call: its JSON answer; answered, tells seen(response) first (its headers). */
async function api(method, path, body, extraHeaders, seen) {
  const headers = authHeaders(Object.assign({ Accept: "application/json" }, extraHeaders));
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res, data;
  try {
    res = await fetch("/api/v1" + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(API_TIMEOUT_MS),
    });
    if (seen) seen(res);
    if (res.status === 304) return NOT_MODIFIED;
    data = await res.json().catch((e) => { if (e.name === "TimeoutError") throw e; return null; });
  } catch (e) {
    const why = e.name === "TimeoutError" ? "no answer within " + API_TIMEOUT_MS / 1000 + " s" : e.message;
    throw new ApiError(0, { error: "the server did not answer: " + why });
  }
  if (res.status === 401) {
    showLogin(data && data.error);
    throw new ApiError(401, data);
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

/**
 * A list read again every few seconds (GET /jobs: 1.6 MB for 2,000 jobs):
 * each read sends the last answer's ETag as If-None-Match, and while the
 * server answers 304 (unchanged) it gives back that same answer, the same
 * object, so a page may skip drawing it again.
 */
function pollable(path) {
  let last = null;
  return async () => {
    let tag = null;
    const data = await api("GET", path, undefined, last ? { "If-None-Match": last.tag } : undefined,
      (res) => { tag = res.headers.get("ETag"); });
    if (data === NOT_MODIFIED) return last.data;
    last = tag ? { tag, data } : null;
    return data;
  };
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

/**
 * Follow a Server-Sent Events stream until signal aborts, reconnecting
 * after a failure; pathOf() is asked again on each connection so the
 * stream resumes after the last event seen. onState(state, message) hears
 * "live", "failing" (the server's error event: it goes on trying itself),
 * "reconnecting" (and why) and "refused" (a 4xx: asking again would not help).
 */
async function follow(pathOf, onEvent, signal, onState) {
  while (!signal.aborted) {
    let problem = "the stream ended";
    try {
      const res = await fetch("/api/v1" + pathOf(), {
        headers: authHeaders({ Accept: "text/event-stream" }),
        signal,
      });
      if (res.status === 401) return showLogin();
      if (!res.ok) {
        const body = await res.json().catch(() => null);
        const message = (body && body.error) || "the server answered " + res.status;
        if (res.status >= 400 && res.status < 500) return onState("refused", message);
        throw new Error(message);
      }
      onState("live");
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = "message";
          let data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) event = line.slice(6).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trim();
          }
          if (data === "") continue;
          const parsed = JSON.parse(data);
          if (event === "error") onState("failing", parsed.error);
          else if (event === "resumed") onState("live");
          else onEvent(event, parsed);
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      problem = e.message;
    }
    onState("reconnecting", problem);
    await sleep(2000, signal);
  }
}

const STREAM_STATES = {
  live: ["live", "live"],
  failing: ["down", "not live"],
  reconnecting: ["stale", "reconnecting"],
  refused: ["down", "refused"],
};

/** Whether a live stream is live, and if not, the server's word why. */
function liveBadge() {
  const word = h("span", { class: "badge queued", text: "connecting" });
  const why = h("span", { class: "small field-error", id: "live-why" });
  const box = h("span", { id: "live", "data-state": "connecting" }, word, " ", why);
  box.set = (state, message) => {
    const [look, text] = STREAM_STATES[state];
    box.dataset.state = state;
    word.className = "badge " + look;
    word.textContent = text;
    why.textContent = state === "live" ? "" : printable(message || "");
  };
  return box;
}

const two = (n) => String(n).padStart(2, "0");
const VIEWER_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone;

/** An instant as the API writes it (ISO 8601) or as ms, in ms. */
function msOf(value) {
  return typeof value === "number" ? value : Date.parse(value);
}

/** An instant in the viewer's zone, YYYY-MM-DD HH:MM:SS, without its zone (see fmt, when). */
function stamp(ms) {
  const d = new Date(ms);
  return d.getFullYear() + "-" + two(d.getMonth() + 1) + "-" + two(d.getDate()) + " " +
    two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds());
}

const OFFSET_FORMAT = new Intl.DateTimeFormat("en-US", { timeZoneName: "shortOffset" });

/**
 * The viewer's offset from UTC at an instant, "UTC+1", "UTC-4", "UTC+5:30",
 * "UTC": a label that is right on either side of a DST change, where a name
 * like "CET" depends on the language and means different zones to different people.
 */
function offsetOf(ms) {
  const name = OFFSET_FORMAT.formatToParts(new Date(ms)).find((p) => p.type === "timeZoneName");
  return name ? name.value.replace(/^GMT/, "UTC").replace(/^UTC[+-]0$/, "UTC") : VIEWER_ZONE;
}

/** An instant in the viewer's zone with its offset: YYYY-MM-DD HH:MM:SS UTC+1. */
function fmt(value) {
  if (value === null || value === undefined) return "-";
  const ms = msOf(value);
  return stamp(ms) + " " + offsetOf(ms);
}

// One formatter per zone: making one costs more than drawing a row of a table with it.
const ZONE_FORMATS = new Map();

function inZone(ms, zone) {
  let format = ZONE_FORMATS.get(zone);
  if (!format) {
    format = new Intl.DateTimeFormat("sv-SE", {
      timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    });
    ZONE_FORMATS.set(zone, format);
  }
  return format.format(new Date(ms)) + " " + zone;
}

/** What hovering a time shows: the instant in the job's zone (when given) and in UTC. */
function zoneTitle(value, zone) {
  const ms = msOf(value);
  return (zone ? inZone(ms, zone) + "\n" : "") + new Date(ms).toISOString() + " (UTC)";
}

/**
 * A time element. Every instant on every page is in the viewer's zone
 * (one zone to compare rows in, next fires included), labelled with its
 * offset; the job's zone and UTC on hover.
 */
function when(value, zone) {
  if (value === null || value === undefined) return h("span", { class: "muted" }, "-");
  const ms = msOf(value);
  return h("time", { datetime: new Date(ms).toISOString(), title: zoneTitle(ms, zone), class: "nowrap" },
    stamp(ms), " ", h("span", { class: "tz" }, offsetOf(ms)));
}

/**
 * The database's clock minus the viewer's, in ms (0 until known). Jobs,
 * runs and services write their times on the database's clock, or on
 * clocks kept in step with it, so their ages are measured on it: a viewer
 * whose clock is minutes off would see a next fire "5 min ago".
 */
const databaseClock = { offset: 0, readAt: null, reading: null, roundTrip: Infinity };
/** How long a known offset is kept: the viewer's clock may be set while a page stays open. */
const CLOCK_KEPT_MS = 60000;
/**
 * An answer slower than this tells the offset only within half its round
 * trip: one that waited seconds in a busy server's queue put every time on
 * the page seconds off (a next fire "4 s ago" for a minute). It is kept
 * this long only, and a later, quicker one replaces it.
 */
const CLOCK_SLOW_MS = 1000;
const CLOCK_SLOW_KEPT_MS = 5000;
/** How long a page waits to learn the offset before it is drawn without it. */
const CLOCK_WAIT_MS = 2000;

/** Now on the database's clock (as last learned), in ms. */
function databaseNow() {
  return Date.now() + databaseClock.offset;
}

/** Learn the offset from the database's clock as an answer gave it, asked at sentAt and read at Date.now(). */
function learnClock(databaseNowValue, sentAt) {
  const roundTrip = Date.now() - sentAt;
  // A slower answer than the one known, while that is kept, tells less.
  if (clockFresh() && roundTrip > databaseClock.roundTrip) return;
  databaseClock.offset = msOf(databaseNowValue) - (sentAt + Date.now()) / 2;
  databaseClock.readAt = performance.now();
  databaseClock.roundTrip = roundTrip;
}

/** Whether the offset known is still kept: a while, or only a moment when its answer was slow. */
function clockFresh() {
  const kept = databaseClock.roundTrip > CLOCK_SLOW_MS ? CLOCK_SLOW_KEPT_MS : CLOCK_KEPT_MS;
  return databaseClock.readAt !== null && performance.now() - databaseClock.readAt < kept;
}

/** Ask the database's clock unless it was learned in the last CLOCK_KEPT_MS; a failure keeps what was known. */
function knowClock() {
  if (clockFresh()) return Promise.resolve();
  if (databaseClock.reading === null) {
    const sentAt = Date.now();
    databaseClock.reading = api("GET", "/clock")
      .then((c) => learnClock(c.database_now, sentAt), () => {})
      .finally(() => { databaseClock.reading = null; });
  }
  return databaseClock.reading;
}

/** A relative time that refreshAgo() keeps current: "in 2 s" does not stay for a minute. */
function agoText(value, tag, className) {
  return h(tag || "div", { class: className || "muted small", "data-ago": new Date(msOf(value)).toISOString() }, ago(value));
}

/** Bring every relative time under root up to now. */
function refreshAgo(root) {
  for (const el of root.querySelectorAll("[data-ago]")) {
    const text = ago(el.dataset.ago);
    if (el.textContent !== text) el.textContent = text;
  }
  for (const el of root.querySelectorAll("[data-since]")) {
    const text = (el.dataset.prefix || "") + span(databaseNow() - msOf(el.dataset.since));
    if (el.textContent !== text) el.textContent = text;
  }
}

/**
 * Every relative time on the page, brought up to now each second, whether
 * or not its page could read anything since: with the database hanging, a
 * next fire "in 8 s" becomes "14 s ago", not a fire still to come.
 */
const AGO_TICK_MS = 1000;
setInterval(() => {
  const root = main();
  if (root) refreshAgo(root);
}, AGO_TICK_MS);

/** A length of time as ages are said: "12 s", "5 min", "3 h", "2 d". */
function span(ms) {
  const a = Math.abs(Math.round(ms / 1000));
  return a < 60 ? a + " s" : a < 3600 ? Math.round(a / 60) + " min" : a < 86400
    ? Math.round(a / 3600) + " h" : Math.round(a / 86400) + " d";
}

/** How long before now, on the database's clock, value was, or how long after. */
function ago(value) {
  const ms = databaseNow() - msOf(value);
  return Math.round(ms / 1000) >= 0 ? span(ms) + " ago" : "in " + span(ms);
}

/** The run's start (or, not started yet, when it was due). */
function runStart(run) {
  return run.started_at !== null && run.started_at !== undefined ? run.started_at : run.scheduled_at;
}

/**
 * "running for 3 h", on the database's clock, kept current by refreshAgo():
 * a run stuck for hours says so, whatever the viewer's clock says.
 */
function runningFor(run, tag, prefix) {
  const start = runStart(run);
  if (start === null || start === undefined) return h(tag || "span", { class: "muted" }, "-");
  const since = new Date(msOf(start)).toISOString();
  const head = prefix === undefined ? "running for " : prefix;
  return h(tag || "span", { class: "running-for", "data-since": since, "data-prefix": head },
    head + span(databaseNow() - msOf(since)));
}

/** How long a run took; a run not ended yet, how long it has been running. */
function duration(run) {
  if (run.status === "running" && run.finished_at === null) return runningFor(run, "span", "");
  if (run.started_at === null || run.finished_at === null) return "-";
  const ms = msOf(run.finished_at) - msOf(run.started_at);
  return ms < 10000 ? ms + " ms" : (ms / 1000).toFixed(1) + " s";
}

function badge(word, extra) {
  return h("span", { class: "badge " + word, title: extra || null }, word);
}

function table(headers, rows, options) {
  const o = options || {};
  return h("div", { class: "scroll" }, h("table", { class: o.class || null, id: o.id || null },
    h("thead", {}, h("tr", {}, headers.map((x) =>
      typeof x === "string" ? h("th", {}, x) : h("th", { class: x.class }, x.text)))),
    h("tbody", {}, rows)));
}

function errorBox(error) {
  return h("div", { class: "alert", role: "alert" }, error.message);
}

function isAdmin() {
  return session.role === "admin";
}

/** A button that runs an API call, shows its error beside the page title, and refreshes. */
function action(label, run, options) {
  const o = options || {};
  // o.read: it changes nothing (reads more), so a read token may use it too.
  const allowed = o.read || isAdmin();
  const button = h("button", {
    class: o.class || null,
    disabled: !allowed,
    title: allowed ? o.title || null : "needs an admin token",
    "data-action": o.name || label.toLowerCase(),
    // Beside a thousand others (a row's Run now), what it acts on: "Run nightly now".
    "aria-label": o.label || null,
  }, label);
  button.addEventListener("click", async () => {
    // A function: asked at the click, of what the button shows then (a row morphed since).
    const question = typeof o.confirm === "function" ? o.confirm() : o.confirm;
    if (question && !confirm(question)) return;
    button.disabled = true;
    // While the call is out (up to API_TIMEOUT_MS with a database that hangs), it says so.
    button.setAttribute("aria-busy", "true");
    button.textContent = o.busy || label + "…";
    const idle = () => {
      button.removeAttribute("aria-busy");
      button.textContent = label;
    };
    try {
      const result = await run();
      idle();
      if (o.after) o.after(result);
      else route();
    } catch (e) {
      idle();
      if (e.status === 401) return;
      actionError(e, o.reload || route);
      button.disabled = false;
    }
  });
  return button;
}

/** The version of a job a change is made on, as If-Match: a job changed since is refused (412), not changed. */
function ifMatch(updatedAt) {
  return { "If-Match": '"' + msOf(updatedAt) + '"' };
}

/**
 * Say why an action failed, in one box above the page (clicked again, it
 * says it again, not once more); the page's alerts (a job's "invalid")
 * stay. A 412 (If-Match) says the job changed since the page drew it, and
 * offers reload() to see it as it is.
 */
function actionError(e, reload) {
  const place = document.getElementById("action-error") || h("div", { class: "alert", role: "alert", id: "action-error" });
  if (e.status === 412) {
    // The API's words (app/jobs.ts refuseStale): a job removed since, or changed since.
    const what = /no longer exists/.test(e.message) ? "was removed" : "changed";
    place.replaceChildren("This job " + what + " since this page showed it (another tab, a colleague, the CLI); nothing was done. ",
      h("button", { type: "button", "data-action": "reload", onclick: () => { place.remove(); reload(); } }, "Reload"));
    place.title = printable(e.message);
  } else {
    place.replaceChildren(printable(e.message));
    place.removeAttribute("title");
  }
  if (!place.isConnected) main().prepend(place);
}

function showLogin(message) {
  pageAbort.abort();
  stopHealth();
  session.role = null;
  renderWho();
  const input = h("input", {
    type: "password", name: "token", autocomplete: "off", placeholder: "bearer token",
    "aria-label": "token",
  });
  const form = h("form", { class: "card login", id: "login" },
    h("h1", {}, "Sign in"),
    h("p", { class: "muted" },
      "Paste a token from http.tokens, a token_file of it, or JM_HTTP_TOKEN (role read to look, admin to change)."),
    message && session.token ? h("div", { class: "alert", role: "alert" }, message) : null,
    input,
    h("button", { class: "primary", type: "submit" }, "Sign in"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    session.token = input.value.trim();
    sessionStorage.setItem(TOKEN_KEY, session.token);
    route();
  });
  main().replaceChildren(form);
  input.focus();
}

function renderWho() {
  const who = document.getElementById("who");
  if (!session.role) return who.replaceChildren();
  who.replaceChildren(
    h("span", { title: "times are in your zone, labelled with its offset from UTC; hover a time for UTC and the job's zone" }, VIEWER_ZONE),
    badge(session.role),
    session.auth ? h("button", {
      id: "signout",
      onclick: () => {
        session.token = "";
        sessionStorage.removeItem(TOKEN_KEY);
        showLogin();
      },
    }, "Sign out") : h("span", { class: "muted" }, "no auth (loopback)"),
  );
}

const ROUTES = [];
function page(pattern, render) {
  ROUTES.push([pattern, render]);
}

async function route() {
  pageAbort.abort();
  document.title = "jobsmanager";
  pageAbort = new AbortController();
  const signal = pageAbort.signal;
  const hash = location.hash || "#/jobs";
  const [path, query] = hash.slice(1).split("?");
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("active", path.startsWith("/" + a.dataset.page));
  }
  if (!session.role) {
    try {
      // A server not up yet (restarting) is asked again, as a page's first read is.
      const me = await firstLoad(signal, 2000, () => api("GET", "/session"));
      if (me === undefined) return;
      session.role = me.role;
      session.auth = me.auth;
      renderWho();
      keepHealth();
    } catch (e) {
      if (e.status !== 401) main().replaceChildren(errorBox(e));
      return;
    }
  }
  // Before the page is drawn: its first ages are on the database's clock too. Waited for only
  // when never learned, and then at most CLOCK_WAIT_MS: a database that hangs holds no page.
  const reading = knowClock();
  if (databaseClock.readAt === null) {
    await Promise.race([reading, new Promise((resolve) => setTimeout(resolve, CLOCK_WAIT_MS))]);
  }
  if (signal.aborted) return;
  for (const [pattern, render] of ROUTES) {
    const match = pattern.exec(path);
    if (!match) continue;
    try {
      await render(match.slice(1).map(decodeURIComponent), new URLSearchParams(query || ""), signal);
    } catch (e) {
      if (!signal.aborted && e.status !== 401) main().replaceChildren(errorBox(e));
    }
    return;
  }
  main().replaceChildren(errorBox(new Error("no such page: " + hash)));
}

/** Replace the page, unless the viewer has moved on meanwhile. */
function show(signal, ...children) {
  if (!signal.aborted) main().replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

/**
 * Make old (a node on the page) look like next (a fresh drawing of it),
 * keeping every node that is still there: focus, text selection and scroll
 * survive a refresh. Listeners stay those of the first drawing, so a page
 * drawn this way binds only what its refreshes do not change.
 */
function morph(old, next) {
  if (old.nodeType !== next.nodeType || old.nodeName !== next.nodeName) return old.replaceWith(next);
  if (old.nodeType === Node.TEXT_NODE) {
    if (old.nodeValue !== next.nodeValue) old.nodeValue = next.nodeValue;
    return;
  }
  if (old.nodeType !== Node.ELEMENT_NODE) return;
  for (const a of [...old.attributes]) if (!next.hasAttribute(a.name)) old.removeAttribute(a.name);
  for (const a of next.attributes) if (old.getAttribute(a.name) !== a.value) old.setAttribute(a.name, a.value);
  // A checkbox's state is a property, not an attribute: a change made elsewhere shows too.
  if (old.nodeName === "INPUT" && old.checked !== next.checked) old.checked = next.checked;
  morphChildren(old, [...next.childNodes]);
}

function morphChildren(parent, nodes) {
  const old = [...parent.childNodes];
  nodes.forEach((node, i) => i < old.length ? morph(old[i], node) : parent.append(node));
  for (const extra of old.slice(nodes.length)) extra.remove();
}

/**
 * Say above the page that it was not refreshed since its last good read
 * (lastRead, ms; null: never loaded), and why (once shown: what is below
 * is older).
 */
function notRefreshed(signal, lastRead, everyMs, error, shown) {
  const banner = h("div", { class: "alert", role: "alert", id: "refresh-error" },
    (lastRead === null ? "Not loaded" : "Not refreshed since " + fmt(lastRead)) + ": " + error.message +
    ". Trying again every " + everyMs / 1000 + " s",
    shown && lastRead !== null ? ["; what is shown below was read ",
      agoText(lastRead + databaseClock.offset, "span", "read-ago"), "."] : ".");
  const place = document.getElementById("refresh-error");
  if (place) place.replaceWith(banner);
  else if (shown) main().prepend(banner);
  else show(signal, banner);
}

/** Whether asking again may answer otherwise: no answer, a time out, a server or database down. */
function passing(error) {
  return error.status === 0 || error.status === 408 || error.status === 429 || error.status >= 500;
}

/** Say that the server refused (a 4xx), in place of the page or, once shown, above it; no retry. */
function refused(signal, error, shown) {
  const box = h("div", { class: "alert", role: "alert", id: "refresh-error" }, error.message);
  const place = document.getElementById("refresh-error");
  if (place) place.replaceWith(box);
  else if (shown) main().prepend(box);
  else show(signal, box);
}

/**
 * A page's first read: during an outage it says so and tries again every
 * everyMs (as poll() does) until it answers; a refusal (4xx) is thrown, to
 * be shown as the page's error. Undefined once signal aborts.
 */
async function firstLoad(signal, everyMs, load) {
  while (!signal.aborted) {
    try {
      const data = await load();
      const banner = document.getElementById("refresh-error");
      if (banner && !signal.aborted) banner.remove();
      return data;
    } catch (e) {
      if (signal.aborted || e.status === 401 || !passing(e)) throw e;
      notRefreshed(signal, null, everyMs, e, false);
      await sleep(everyMs, signal);
    }
  }
  return undefined;
}

/**
 * Draw a page from load() now and every everyMs until signal aborts or
 * until(data). A failed load keeps what was shown, says what failed and
 * since when in a banner, and tries again; the next answer clears it.
 */
async function poll(signal, everyMs, load, draw, until) {
  let shown = false;
  let lastRead = null;
  while (!signal.aborted) {
    let data;
    knowClock();
    const asked = Date.now();
    try {
      data = await load();
    } catch (e) {
      if (signal.aborted || e.status === 401) return;
      // A refusal (no such run) is not an outage: asking again would not change it.
      if (!passing(e)) return refused(signal, e, shown);
      notRefreshed(signal, lastRead, everyMs, e, shown);
      await sleep(everyMs, signal);
      continue;
    }
    if (signal.aborted) return;
    // As fresh as the asking, not the answer: a read asked before a hang began is not after it.
    lastRead = asked;
    const children = draw(data).flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false);
    const banner = document.getElementById("refresh-error");
    if (banner) banner.remove();
    if (shown) morphChildren(main(), children);
    else show(signal, children);
    shown = true;
    if (until && until(data)) return;
    await sleep(everyMs, signal);
  }
}

window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", route);
`;
