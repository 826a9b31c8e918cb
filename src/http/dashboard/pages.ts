/**
 * The dashboard's pages as browser JavaScript: jobs, a job, runs (live), a
 * run, logs (live tail) and status with its runs-per-minute chart.
 */
import { MAX_SKEW_MS } from "../../domain/node.ts";

export const PAGES_JS = String.raw`
const enc = encodeURIComponent;
const FIELDS = ["second", "minute", "hour", "day", "month", "day_of_week"];
const RUN_STATUSES = ["queued", "running", "success", "failed", "timeout", "killed", "interrupted",
  "skipped", "missed", "lost", "error", "cancelled"];
const FINAL = (status) => status !== "queued" && status !== "running";
/** How far a run has come: it never goes back (a list read before an event may be older). */
const STAGE = (status) => status === "queued" ? 0 : status === "running" ? 1 : 2;

/**
 * A job's oldest running run, how long it has run and a Cancel: its last
 * run is most often a skip beside it. Morphed in place, so the button reads
 * the run it cancels from what it shows at the click.
 */
function runningCell(job, running, refresh) {
  const oldest = running[0];
  const cancel = oldest.cancel_requested_at ? h("span", { class: "muted small" }, " cancel asked")
    : action("Cancel", () => api("POST", "/runs/" + cancel.dataset.run + "/cancel"), {
      class: "danger", name: "cancel-run",
      confirm: () => "Cancel run #" + cancel.dataset.run + " of " + job.id + "?",
      after: () => refresh().catch(() => {}),
    });
  if (cancel.nodeName === "BUTTON") {
    cancel.dataset.run = String(oldest.id);
    cancel.setAttribute("aria-label", "Cancel run #" + oldest.id + " of " + job.id);
  }
  return h("div", { class: "running", "data-running": oldest.id },
    h("a", { href: "#/runs/" + oldest.id }, badge("running"), " ", runningFor(oldest, "span", "for ")),
    running.length > 1 ? h("span", { class: "muted small" }, " (+" + (running.length - 1) + " more)") : null,
    " ", cancel);
}

/** A row of the jobs table; after a change from its switch, refresh() reads the jobs again. */
function jobRow(job, refresh) {
  const last = job.last_run;
  const running = job.running || [];
  const toggle = h("input", {
    type: "checkbox", checked: job.enabled, disabled: !isAdmin(), "aria-label": "enabled: " + job.id,
    "data-action": job.enabled ? "disable" : "enable",
    // Read at the change (morphed in place): the version of the job the row shows now.
    "data-version": msOf(job.updated_at),
    title: isAdmin() ? (job.enabled ? "disable" : "enable") : "needs an admin token",
  });
  // Not disabled while its call is out: a disabled switch would lose the focus.
  let busy = false;
  toggle.addEventListener("click", (event) => { if (busy) event.preventDefault(); });
  toggle.addEventListener("change", async () => {
    busy = true;
    try {
      await api("POST", "/jobs/" + enc(job.id) + (toggle.checked ? "/enable" : "/disable"), undefined,
        ifMatch(Number(toggle.dataset.version)));
    } catch (e) {
      toggle.checked = !toggle.checked;
      if (e.status !== 401) actionError(e, () => refresh().catch(() => {}));
      return;
    } finally {
      busy = false;
    }
    // The row changes in place (on/off, next fire): the page, its filter and focus stay.
    // A failed read says so in the banner of the next periodic one.
    await refresh().catch(() => {});
  });
  return h("tr", { "data-job": job.id },
    h("td", {}, h("a", { href: "#/jobs/" + enc(job.id) }, job.id),
      job.description ? h("div", { class: "muted small" }, job.description) : null),
    h("td", {}, job.invalid ? h("div", { class: "field-error" }, job.invalid) : job.schedule_words,
      h("div", { class: "mono muted small" }, job.schedule)),
    h("td", { class: "hide-narrow" }, job.zone),
    h("td", {}, job.next_fire ? [when(job.next_fire, job.zone), agoText(job.next_fire)]
      : h("span", { class: "muted" }, "-")),
    h("td", {}, running.length ? runningCell(job, running, refresh) : null,
      last ? h("a", { href: "#/runs/" + last.id }, badge(last.status), " ",
        agoText(last.scheduled_at, "span", "small")) : h("span", { class: "muted" }, "never")),
    h("td", {}, h("label", { class: "switch" }, toggle, job.enabled ? "on" : "off")),
    h("td", {}, runNowButton(job.id)),
  );
}

/** How often the health strip under the header is read again. */
const HEALTH_REFRESH_MS = 5000;
let healthAbort = null;

/**
 * The strip under the header, on every page once signed in: are the
 * services alive (live, stale, dead), the database, the last reload; from
 * GET /health, three small reads whatever the number of jobs, every
 * HEALTH_REFRESH_MS. An answer that does not come says so, in place of the
 * last good one.
 */
function keepHealth() {
  if (healthAbort !== null) return;
  healthAbort = new AbortController();
  const signal = healthAbort.signal;
  const strip = document.getElementById("health");
  strip.hidden = false;
  (async () => {
    while (!signal.aborted) {
      let parts;
      try {
        parts = healthParts(await api("GET", "/health"));
      } catch (e) {
        if (signal.aborted || e.status === 401) return;
        parts = [h("span", { class: "badge down", "data-health": "unknown" }, "health unknown"), " ",
          h("span", { class: "small" }, e.message)];
      }
      if (!signal.aborted) morphChildren(strip, parts);
      await sleep(HEALTH_REFRESH_MS, signal);
    }
  })();
}

/** Signed out: the strip goes, and is read no more. */
function stopHealth() {
  if (healthAbort === null) return;
  healthAbort.abort();
  healthAbort = null;
  const strip = document.getElementById("health");
  strip.hidden = true;
  strip.replaceChildren();
}

/**
 * The database's states in which /status and /health give the rest as last read
 * (read_at), not now: why, for a title.
 */
const LAST_KNOWN = {
  down: "the database is down",
  "refuses reads": "the database refuses this server's reads",
};

/** What the strip shows of a GET /health answer: the services' states that have any, then the rest. */
function healthParts(x) {
  const s = x.services;
  const count = (state, n, look) => n > 0 ? h("span", { class: "badge " + look, "data-health": state }, n + " " + state) : null;
  const services = s === null ? [h("span", { class: "badge last-known", "data-health": "services" }, "services unknown")]
    : [s.live > 0 ? count("live", s.live, "live") : h("span", { class: "badge down", "data-health": "live" }, "no live service"),
      count("stale", s.stale, "stale"), count("dead", s.dead, "dead")];
  const reload = x.last_reload;
  return [
    h("a", { href: "#/status", class: "health-title" }, "Services"),
    services,
    h("span", { class: "badge " + x.database.state, "data-health": "database", title: x.database.detail },
      "database " + x.database.state),
    reload === null ? h("span", { class: "muted" }, "no reload yet")
      : h("span", { "data-health": "reload" }, "last reload ",
        h("time", { datetime: reload.at, title: "by " + reload.node + "; " + zoneTitle(reload.at) }, ago(reload.at)),
        reload.ms === null ? "" : " (" + reload.ms + " ms)"),
    x.pending_markers > 0 ? h("span", { class: "badge stale", "data-health": "pending" },
      x.pending_markers + " pending reload" + (x.pending_markers === 1 ? "" : "s")) : null,
    LAST_KNOWN[x.database.state] && x.read_at !== null
      ? h("span", { class: "muted small" }, "as read " + ago(x.read_at)) : null,
  ].flat().filter((part) => part !== null);
}

/** How often the box of a run asked for reads it again until it ends. */
const RUN_FOLLOW_MS = 1000;

/**
 * Run now: asks for a run of jobId (force: past max_instances) and follows
 * it in a box above the page until it ends; a run skipped (the job busy)
 * says why and offers to run it anyway. Nothing is redrawn meanwhile.
 */
function runNowButton(jobId) {
  return action("Run now", () => askRun(jobId, false), {
    name: "run", label: "Run " + jobId + " now", busy: "Asking…", after: (run) => followRun(run, pageAbort.signal),
  });
}

function askRun(jobId, force) {
  return api("POST", "/jobs/" + enc(jobId) + "/run", force ? { force: true } : {});
}

/** The box of the run last asked for on this page. */
function runBox() {
  const box = document.getElementById("run-request") || h("div", { class: "card", id: "run-request", role: "status" });
  if (!box.isConnected) main().prepend(box);
  return box;
}

async function followRun(run, signal) {
  const box = runBox();
  // A newer request owns the box: this one stops following.
  const mine = String(run.id);
  box.dataset.run = mine;
  while (!signal.aborted && box.dataset.run === mine) {
    drawRunBox(box, run, signal);
    if (FINAL(run.status)) return;
    await sleep(RUN_FOLLOW_MS, signal);
    try {
      run = await api("GET", "/runs/" + run.id);
    } catch (e) {
      // A run removed since is not waited for; an outage is tried again.
      if (e.status !== 0 && e.status < 500) return;
    }
  }
}

function drawRunBox(box, run, signal) {
  const link = h("a", { href: "#/runs/" + run.id }, "Run #" + run.id);
  const said = run.status === "queued" ? [link, " of " + run.job_id + " queued: waiting for a service to start it."]
    : run.status === "running" ? [link, " of " + run.job_id + " ", runningFor(run), "."]
    : [link, " of " + run.job_id + " ended ", badge(run.status), run.note ? ": " + run.note : "", "."];
  const anyway = run.status === "skipped" ? action("Run anyway", () => askRun(run.job_id, true), {
    name: "run-anyway", busy: "Asking…",
    confirm: "Run " + run.job_id + " anyway, beside the run still going (max_instances not checked)?",
    after: (next) => followRun(next, signal),
  }) : null;
  box.dataset.status = run.status;
  box.replaceChildren(h("span", {}, said), ...(anyway ? [" ", anyway] : []));
}

/** How often the jobs page reads the jobs again while it is shown. */
const JOBS_REFRESH_MS = 5000;
/** How long the filter waits for typing to pause before it hides rows. */
const FILTER_PAUSE_MS = 150;

/**
 * The jobs: each row is drawn once and changed in place when its job
 * changes, and the filter only hides rows, so neither a refresh nor a
 * keystroke rebuilds thousands of rows, or loses focus, filter or scroll.
 */
page(/^\/jobs$/, async (_, query, signal) => {
  let lastRead = Date.now();
  const readJobs = pollable("/jobs");
  let jobs = await firstLoad(signal, JOBS_REFRESH_MS, () => {
    lastRead = Date.now();
    return readJobs();
  });
  if (jobs === undefined) return;
  const filter = h("input", {
    type: "search", id: "filter", value: query.get("q") || "",
    placeholder: "filter by id, command, description", "aria-label": "filter",
  });
  const count = h("span", { class: "muted small", id: "job-count" });
  const box = table(["Job", "Schedule", { text: "Zone", class: "hide-narrow" }, "Next fire",
    "Last run", "Enabled", ""], [], { id: "jobs" });
  const body = box.querySelector("tbody");
  const none = h("td", { colspan: 7, class: "muted" });
  const noneRow = h("tr", { class: "empty" }, none);
  // By job id: its row, what it was drawn from, and the text the filter looks in.
  const drawn = new Map();
  const hide = () => {
    const q = filter.value.trim().toLowerCase();
    let shown = 0;
    for (const d of drawn.values()) {
      const hidden = q !== "" && !d.text.includes(q);
      if (d.row.hidden !== hidden) d.row.hidden = hidden;
      if (!hidden) shown++;
    }
    none.textContent = jobs.length ? "no job matches" : "no jobs yet";
    noneRow.hidden = shown > 0;
  };
  const draw = () => {
    const ids = jobs.map((j) => j.id);
    for (const job of jobs) {
      const drawing = JSON.stringify(job);
      const d = drawn.get(job.id);
      if (d === undefined) {
        drawn.set(job.id, { drawing, row: jobRow(job, refresh),
          text: (job.id + " " + job.command + " " + (job.description || "")).toLowerCase() });
      } else if (d.drawing !== drawing) {
        morph(d.row, jobRow(job, refresh));
        d.drawing = drawing;
        d.text = (job.id + " " + job.command + " " + (job.description || "")).toLowerCase();
      }
    }
    const kept = new Set(ids);
    for (const id of [...drawn.keys()]) if (!kept.has(id)) drawn.delete(id);
    const rows = ids.map((id) => drawn.get(id).row);
    // Rows move only when jobs came or went; what had focus keeps it.
    if (rows.length !== body.children.length - 1 || rows.some((row, i) => body.children[i] !== row)) {
      const focused = document.activeElement;
      body.replaceChildren(...rows, noneRow);
      if (focused && focused !== document.activeElement && focused.isConnected) focused.focus();
    }
    count.textContent = jobs.length + " in all";
    refreshAgo(body);
    hide();
  };
  async function refresh() {
    const read = await readJobs();
    // Unchanged (304): the rows show it already.
    if (read === jobs) return;
    jobs = read;
    if (!signal.aborted) draw();
  }
  let pause = null;
  filter.addEventListener("input", () => {
    clearTimeout(pause);
    pause = setTimeout(() => {
      if (signal.aborted) return;
      hide();
      // In the address too, without a new page: Back to this list finds the same filter.
      const q = filter.value.trim();
      history.replaceState(null, "", "#/jobs" + (q ? "?q=" + enc(q) : ""));
    }, FILTER_PAUSE_MS);
  });
  draw();
  show(signal,
    h("h1", {}, "Jobs", count,
      isAdmin() ? h("a", { class: "button", href: "#/add-job", id: "add-job" }, "Add job") : null),
    h("div", { class: "filters" }, filter),
    box);
  while (!signal.aborted) {
    await sleep(JOBS_REFRESH_MS, signal);
    if (signal.aborted) return;
    knowClock();
    // What an answer shows is as fresh as the asking: a read asked before a hang began is not after it.
    const asked = Date.now();
    try {
      await refresh();
      lastRead = asked;
      const banner = document.getElementById("refresh-error");
      if (banner) banner.remove();
    } catch (e) {
      if (signal.aborted || e.status === 401) return;
      notRefreshed(signal, lastRead, JOBS_REFRESH_MS, e, true);
    }
  }
});

/** Why a run exists, with its attempt or the run it follows (as the CLI shows it). */
function triggerText(run) {
  if (run.trigger === "retry") return "retry " + run.attempt + " of #" + run.first_run_id;
  if (run.trigger === "after") return "after #" + run.parent_run_id;
  return run.trigger;
}

/** The most rows a live table of runs keeps (the newest), as the log tail keeps 1,000 lines. */
const MAX_RUN_ROWS = 1000;

/**
 * A live table of runs: rows are added and updated as events come; with
 * options.status, a run that no longer has that status leaves it.
 */
function runsTable(runs, options) {
  const o = options || {};
  const withJob = !o.hideJob;
  const box = table(["Run", withJob ? "Job" : null, "Scheduled", "Status",
    { text: "Exit", class: "hide-narrow" }, "Duration", { text: "Trigger", class: "hide-narrow" },
    { text: "Node", class: "hide-narrow" }, o.cancel ? "" : null].filter((x) => x !== null),
    [], { id: o.id || "runs" });
  const body = box.querySelector("tbody");
  const rows = new Map();
  const row = (run, fresh) => h("tr", { "data-run": run.id, "data-status": run.status, class: fresh ? "fresh" : null },
    h("td", {}, h("a", { href: "#/runs/" + run.id }, "#" + run.id)),
    withJob ? h("td", {}, h("a", { href: "#/jobs/" + enc(run.job_id) }, run.job_id)) : null,
    h("td", {}, when(run.scheduled_at)),
    h("td", {}, badge(run.status, run.note)),
    h("td", { class: "hide-narrow num" }, run.exit_code !== null ? run.exit_code : run.signal || "-"),
    h("td", { class: "num" }, duration(run)),
    h("td", { class: "hide-narrow" }, triggerText(run)),
    h("td", { class: "hide-narrow muted small" }, run.node_id || "-"),
    o.cancel ? h("td", {}, FINAL(run.status) || run.cancel_requested_at ? null
      : action("Cancel", () => api("POST", "/runs/" + run.id + "/cancel"), {
        class: "danger", name: "cancel-run", confirm: "Cancel run #" + run.id + " of " + run.job_id + "?",
      })) : null);
  // Newest first, as the rows are shown: where a run goes is a binary search, not a sort.
  const order = [];
  const place = (id) => {
    let lo = 0, hi = order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (order[mid] > id) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  // Each run's last status, to refuse a stale one: kept a while after its row went.
  const statuses = new Map();
  const forget = () => {
    if (statuses.size <= 2 * MAX_RUN_ROWS) return;
    for (const id of statuses.keys()) {
      if (statuses.size <= MAX_RUN_ROWS) break;
      if (!rows.has(id)) statuses.delete(id);
    }
  };
  const drop = (id) => {
    const old = rows.get(id);
    if (!old) return;
    old.remove();
    rows.delete(id);
    order.splice(place(id), 1);
    if (rows.size === 0 && o.empty) body.append(empty = noRows());
  };
  const noRows = () => h("tr", { class: "empty" }, h("td", { colspan: 9, class: "muted" }, o.empty || "no runs yet"));
  let empty = null;
  box.upsert = (run, fresh) => {
    // A list read while an event came may be older than it: a run does not go back.
    const was = statuses.get(run.id);
    if (was !== undefined && STAGE(run.status) < STAGE(was)) return;
    // A full table keeps the newest runs: an older one would go at once.
    if (!rows.has(run.id) && order.length >= MAX_RUN_ROWS && run.id < order[order.length - 1]) return;
    statuses.set(run.id, run.status);
    forget();
    if (o.status && run.status !== o.status) return drop(run.id);
    const next = row(run, fresh);
    const old = rows.get(run.id);
    rows.set(run.id, next);
    if (old) old.replaceWith(next);
    else {
      const at = place(run.id);
      if (at < order.length) body.insertBefore(next, rows.get(order[at]));
      else body.append(next);
      order.splice(at, 0, run.id);
      while (order.length > MAX_RUN_ROWS) drop(order[order.length - 1]);
    }
    if (empty) {
      empty.remove();
      empty = null;
    }
  };
  /**
   * The list read again once the stream looked (fresh, of at most limit
   * runs): a run listed before, up to id after, that it no longer has
   * ended before the stream's first look, so no event will say so.
   */
  box.relist = (fresh, limit, after) => {
    for (const run of fresh) box.upsert(run, false);
    if (!o.status) return;
    const ids = new Set(fresh.map((r) => r.id));
    const floor = fresh.length < limit ? 0 : Math.min(...ids);
    for (const id of [...rows.keys()]) if (id <= after && id >= floor && !ids.has(id)) drop(id);
  };
  for (const run of runs) box.upsert(run, false);
  if (runs.length === 0) body.append(empty = noRows());
  return box;
}

/** How often a page whose first read failed (an outage) tries again. */
const RUNS_RETRY_MS = 2000;

function runFilterQuery(params) {
  const q = new URLSearchParams();
  for (const key of ["job", "status", "since"]) if (params.get(key)) q.set(key, params.get(key));
  return q;
}

/** How many runs the runs page reads at a time. */
const RUNS_PAGE = 100;

/**
 * Below a list cut at RUNS_PAGE runs: says so, and reads the next older
 * page on asking, until none is left or the table holds its most.
 */
function moreRuns(box, runs, filters, signal) {
  const line = h("p", { class: "muted small", id: "runs-more" });
  let oldest = runs.length ? runs[runs.length - 1].id : null;
  let shown = runs.length;
  const say = (full) => {
    if (!full) return line.replaceChildren(shown > RUNS_PAGE ? "All " + shown + " matching runs are shown." : "");
    if (shown >= MAX_RUN_ROWS) {
      return line.replaceChildren("The newest " + shown + " matching runs are shown, the most this page keeps; narrow the filters (job, status, time) to see older ones.");
    }
    line.replaceChildren("The newest " + shown + " matching runs are shown; there are older ones. ", older);
  };
  const older = action("Show " + RUNS_PAGE + " older", async () => {
    const page = await api("GET", "/runs?" + filters + "&limit=" + RUNS_PAGE + "&before=" + oldest);
    if (signal.aborted) return;
    for (const run of page) box.upsert(run, false);
    if (page.length) oldest = page[page.length - 1].id;
    shown += page.length;
    say(page.length === RUNS_PAGE);
  }, { name: "older-runs", read: true, after: () => {} });
  say(runs.length === RUNS_PAGE);
  return line;
}

page(/^\/runs$/, async (_, query, signal) => {
  const filters = runFilterQuery(query);
  const runs = await firstLoad(signal, RUNS_RETRY_MS, () => api("GET", "/runs?" + filters + "&limit=" + RUNS_PAGE));
  if (runs === undefined) return;
  const jobInput = h("input", { name: "job", value: filters.get("job") || "", placeholder: "any job" });
  const status = h("select", { name: "status" }, h("option", { value: "" }, "any status"),
    RUN_STATUSES.map((s) => h("option", { value: s, selected: s === filters.get("status") }, s)));
  const sinces = [["", "any time"], ["15m", "last 15 min"], ["1h", "last hour"], ["24h", "last day"], ["7d", "last week"]];
  // A since written in the address (2h) is one of the choices, so Apply keeps it.
  const asked = filters.get("since") || "";
  if (!sinces.some(([v]) => v === asked)) sinces.push([asked, "last " + asked]);
  const since = h("select", { name: "since" }, sinces.map(([v, t]) =>
    h("option", { value: v, selected: v === asked }, t)));
  const apply = h("form", { class: "filters", id: "run-filters" },
    h("label", {}, "Job", jobInput), h("label", {}, "Status", status), h("label", {}, "Scheduled", since),
    h("button", { type: "submit" }, "Apply"));
  apply.addEventListener("submit", (event) => {
    event.preventDefault();
    const q = new URLSearchParams();
    if (jobInput.value.trim()) q.set("job", jobInput.value.trim());
    if (status.value) q.set("status", status.value);
    if (since.value) q.set("since", since.value);
    location.hash = "#/runs" + (String(q) ? "?" + q : "");
  });
  // No runs under a job id no job has: most often a typo, which "no runs yet" would hide.
  let empty = null;
  const jobAsked = filters.get("job");
  if (runs.length === 0 && jobAsked) {
    empty = await api("GET", "/jobs/" + enc(jobAsked)).then(() => null,
      (e) => e.status === 404 ? "no job named " + jobAsked + " (and no runs recorded under that id)" : null);
  }
  const box = runsTable(runs, { status: filters.get("status"), empty });
  const live = liveBadge();
  show(signal, h("h1", {}, "Runs", live), apply, box, moreRuns(box, runs, filters, signal));
  const stream = new URLSearchParams(filters);
  stream.delete("since");
  // The newest run the page has: a stream that comes back resumes after it, not after the first list's.
  let after = runs.length ? runs[0].id : 0;
  follow(() => {
    stream.set("after", String(after));
    return "/runs/stream?" + stream;
  }, async (event, data) => {
    if (event === "run" || event === "left") {
      box.upsert(data, true);
      after = Math.max(after, data.id);
    }
    // More new runs than the stream sends at once (the page was away long): the newest are read.
    if (event === "relist") after = Math.max(after, data.newest);
    // The stream sends every change from here on: what changed before (or during a gap) is read once.
    if (event === "ready" || event === "relist") {
      // The runs the page had before the list is read: one that came during the read is not in it.
      const had = after;
      box.relist(await api("GET", "/runs?" + filters + "&limit=" + RUNS_PAGE), RUNS_PAGE, had);
    }
  }, signal, live.set);
});

page(/^\/runs\/(\d+)$/, ([id], _, signal) => poll(signal, 1000, () => api("GET", "/runs/" + id), (run) => {
  // The service records a run's output as it ends: until then, none is not "(empty)".
  const output = (name, text) => [h("h2", {}, name), text ? h("pre", { id: name }, text)
    : h("p", { class: "muted", id: name + "-none" }, FINAL(run.status) ? "(empty)"
      : "recorded when the run ends")];
  document.title = FINAL(run.status) ? "jobsmanager" : "run " + run.id;
  return [
    h("h1", {}, "Run #" + run.id, badge(run.status, run.note),
      FINAL(run.status) || run.cancel_requested_at ? null : action("Cancel", () => api("POST", "/runs/" + run.id + "/cancel"), {
        class: "danger", confirm: "Cancel run #" + run.id + "?",
      })),
    h("div", { class: "card" }, h("dl", { class: "grid" },
      h("dt", {}, "job"), h("dd", {}, h("a", { href: "#/jobs/" + enc(run.job_id) }, run.job_id)),
      h("dt", {}, "trigger"), h("dd", {}, run.trigger + (run.forced ? " (forced)" : "")),
      h("dt", {}, "scheduled"), h("dd", {}, when(run.scheduled_at)),
      h("dt", {}, "started"), h("dd", {}, when(run.started_at)),
      h("dt", {}, "finished"), h("dd", {}, when(run.finished_at)),
      h("dt", {}, "duration"), h("dd", { id: "duration" }, run.status === "running" ? runningFor(run) : duration(run)),
      h("dt", {}, "exit code"), h("dd", {}, run.exit_code === null ? "-" : run.exit_code),
      h("dt", {}, "signal"), h("dd", {}, run.signal || "-"),
      h("dt", {}, "node"), h("dd", {}, run.node_id || "-"),
      h("dt", {}, "note"), h("dd", {}, run.note || "-"),
      run.cancel_requested_at ? [h("dt", {}, "cancel asked"), h("dd", {}, when(run.cancel_requested_at), " by " + run.cancel_requested_by)] : null)),
    output("stdout", run.stdout), output("stderr", run.stderr)];
}, (run) => FINAL(run.status)));

const LEVELS = ["debug", "info", "warning", "error", "fatal"];

page(/^\/logs$/, async (_, query, signal) => {
  const level = h("select", { name: "level" }, h("option", { value: "" }, "all levels"),
    LEVELS.map((l) => h("option", { value: l, selected: l === query.get("level") }, l + " and above")));
  const jobInput = h("input", { name: "job", value: query.get("job") || "", placeholder: "any job" });
  const followBox = h("input", { type: "checkbox", checked: true, name: "follow" });
  const form = h("form", { class: "filters", id: "log-filters" },
    h("label", {}, "Level", level), h("label", {}, "Job", jobInput),
    h("button", { type: "submit" }, "Apply"),
    h("label", { class: "switch" }, followBox, "scroll to new lines"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const q = new URLSearchParams();
    if (level.value) q.set("level", level.value);
    if (jobInput.value.trim()) q.set("job", jobInput.value.trim());
    location.hash = "#/logs" + (String(q) ? "?" + q : "");
  });
  const box = table(["Time", "Level", { text: "Logger", class: "hide-narrow" }, "Message"], [], { id: "logs", class: "logs" });
  box.style.maxHeight = "70vh";
  box.style.overflowY = "auto";
  const body = box.querySelector("tbody");
  const live = liveBadge();
  show(signal, h("h1", {}, "Logs", live), form, box);
  const filters = new URLSearchParams();
  if (query.get("level")) filters.set("level", query.get("level"));
  if (query.get("job")) filters.set("job", query.get("job"));
  let last = null;
  follow(() => {
    const q = new URLSearchParams(filters);
    if (last !== null) q.set("after", last);
    return "/logs/stream?" + q;
  }, (event, row) => {
    if (event !== "log") return;
    last = row.id;
    const context = Object.entries(row.context || {}).map(([k, v]) => k + "=" + (typeof v === "string" ? v : JSON.stringify(v))).join(" ");
    body.append(h("tr", { "data-log": row.id, "data-level": row.level },
      h("td", { class: "nowrap" }, when(row.created_at)),
      h("td", {}, badge(row.level)),
      h("td", { class: "hide-narrow muted" }, row.logger_name),
      h("td", {}, row.message, context ? h("div", { class: "muted small" }, context) : null)));
    while (body.children.length > 1000) body.firstElementChild.remove();
    if (followBox.checked) box.scrollTop = box.scrollHeight;
  }, signal, live.set);
});

const CHART_GROUPS = [
  ["success", ["success"], "#1a7f37"],
  ["failed", ["failed", "error", "timeout", "killed", "lost"], "#cf222e"],
  ["skipped or missed", ["skipped", "missed"], "#9a6700"],
  ["other", ["queued", "running", "interrupted", "cancelled"], "#8c959f"],
];

function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c);
  return el;
}

/** Runs per minute over the last hour, stacked by status group; labels in HTML so they stay readable on a phone. */
function chart(perMinute) {
  const W = 600, H = 150;
  const totals = perMinute.map((m) => Object.values(m.counts).reduce((a, b) => a + b, 0));
  const max = Math.max(1, ...totals);
  const bar = W / perMinute.length;
  const g = svg("g", {});
  perMinute.forEach((m, i) => {
    let y = H;
    for (const [name, statuses, color] of CHART_GROUPS) {
      const n = statuses.reduce((a, s) => a + (m.counts[s] || 0), 0);
      if (n === 0) continue;
      const height = (H - 4) * n / max;
      y -= height;
      g.append(svg("rect", { x: i * bar + 0.5, y, width: Math.max(1, bar - 1), height, fill: color },
        svg("title", {}, fmt(m.minute) + ": " + n + " " + name)));
    }
  });
  const line = svg("line", { x1: 0, x2: W, y1: H - 0.5, y2: H - 0.5, stroke: "#d1d9e0" });
  return h("div", { class: "card chart", id: "chart" },
    h("strong", {}, "Runs per minute, last hour"),
    h("span", { class: "muted small" }, " (highest: " + Math.max(0, ...totals) + ")"),
    svg("svg", { viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", role: "img", "aria-label": "runs per minute by status" }, line, g),
    h("div", { class: "axis muted small" }, ["-60 min", "-45", "-30", "-15", "now"].map((t) => h("span", {}, t))),
    h("div", { class: "legend" }, CHART_GROUPS.map(([name, , color]) => {
      const item = h("span", {}, name);
      item.style.setProperty("--c", color);
      return item;
    })));
}

/** A node clock further than this from the database's is shown in red. */
const MAX_SKEW_MS = ${MAX_SKEW_MS};

/** The services that are not live, by state: "1 stale, 2 stopped". */
function notLive(services) {
  const counts = {};
  for (const n of services) if (n.state !== "live") counts[n.state] = (counts[n.state] || 0) + 1;
  return Object.entries(counts).map(([state, n]) => n + " " + state).join(", ");
}

/**
 * A service's last heartbeat on the database's clock: as the database
 * wrote it, else its own clock's corrected by its skew, else as it is.
 */
function heartbeatOnDatabaseClock(n) {
  if (n.db_heartbeat_at != null) return msOf(n.db_heartbeat_at);
  return msOf(n.heartbeat_at) - (n.skew_ms ?? 0);
}

/** The status, and the database's clock learned from its answer (each age is measured on it). */
async function readStatus() {
  const sentAt = Date.now();
  const s = await api("GET", "/status");
  if (s.database_now != null) learnClock(s.database_now, sentAt);
  return s;
}

page(/^\/status$/, (_, __, signal) => poll(signal, 5000, readStatus, (s) => {
  const live = s.services.filter((n) => n.state === "live").length;
  const total = Object.values(s.runs_last_hour).reduce((a, b) => a + b, 0);
  const failed = ["failed", "error", "timeout", "killed", "lost"].reduce((a, k) => a + (s.runs_last_hour[k] || 0), 0);
  const tile = (label, value, extra) => h("div", { class: "tile" }, h("div", { class: "value" }, value), h("div", { class: "label" }, label), extra || null);
  const known = s.read_at === null ? null : "what follows was read at " + fmt(s.read_at);
  // Never read (the database was down since this service started): the counts are not zeros.
  const unread = s.read_at === null;
  const lastKnown = LAST_KNOWN[s.database.state];
  const count = (value) => unread ? "?" : value;
  const none = (text, columns) => h("td", { colspan: columns, class: "muted" }, unread ? "not known until the database answers" : text);
  return [
    h("h1", {}, "Status"),
    s.database.state === "down" ? h("div", { class: "alert", id: "database-down" }, "The database is down: " +
      (known || "services, runs and fires are not known until it answers") + ".") : null,
    s.database.state === "refuses reads" ? h("div", { class: "alert", id: "database-refuses-reads" },
      "The database refuses this server's reads: " + (known || "services, runs and fires are not known until it lets it read") + ".",
      h("div", { class: "small" }, s.database.detail)) : null,
    h("div", { class: "tiles" },
      tile("live services", count(live), s.services.length > live ? h("div", { class: "small muted" }, notLive(s.services)) : null),
      tile("database", badge(s.database.state), h("div", { class: "small muted" }, s.database.detail)),
      tile("pending reload markers", count(s.pending_markers)),
      tile("notifications waiting", count(s.pending_notifications.count), s.pending_notifications.oldest === null ? null : h("div", { class: "small muted" }, "oldest " + ago(s.pending_notifications.oldest) + (s.pending_notifications.retrying ? "; " + s.pending_notifications.retrying + " for a webhook receiver that is down" : ""))),
      tile("runs in the last hour", count(total), failed ? h("div", { class: "small field-error" }, failed + " failed") : null),
      tile("running now", count(s.running ? s.running.count : 0), s.running && s.running.oldest ? h("div", { class: "small muted", id: "oldest-running" },
        "oldest: ", h("a", { href: "#/runs/" + s.running.oldest.id }, "#" + s.running.oldest.id), " of ",
        h("a", { href: "#/jobs/" + enc(s.running.oldest.job_id) }, s.running.oldest.job_id), ", ",
        runningFor({ started_at: s.running.oldest.started_at, scheduled_at: s.running.oldest.started_at })) : null)),
    chart(s.runs_per_minute),
    h("h2", {}, "Services"),
    table(["Node", "State", { text: "PID", class: "hide-narrow" }, { text: "Version", class: "hide-narrow" }, "Last heartbeat", "Jobs", "Share", { text: "Marker", class: "hide-narrow" }, { text: "Skew", class: "hide-narrow" }, { text: "Last reload", class: "hide-narrow" }],
      s.services.length ? s.services.map((n) => h("tr", { "data-node": n.id },
        h("td", {}, n.id, h("div", { class: "muted small" }, n.host)),
        // The database down, or refusing reads: each state is as last read, and may no longer be true.
        h("td", {}, lastKnown ? h("span", { class: "badge last-known", title: "as read at " + fmt(s.read_at) + "; " + lastKnown }, "last known: " + n.state)
          : badge(n.state), n.state === "dead" ? h("div", { class: "muted small" }, n.gone ? "pid " + n.pid + " is not running" : "by " + n.declared_dead_by + ", " + ago(n.declared_dead_at)) : null,
          // A stale one: whether its process still runs on this server's host, and what to do.
          n.note ? h("div", { class: "small", "data-note": n.id }, n.note) : null),
        h("td", { class: "hide-narrow" }, n.pid),
        h("td", { class: "hide-narrow" }, n.version),
        // Kept current each second: a status that cannot be read leaves no heartbeat "2 s ago".
        h("td", {}, when(heartbeatOnDatabaseClock(n)), agoText(heartbeatOnDatabaseClock(n))),
        h("td", { class: "num" }, n.jobs_loaded),
        h("td", { class: "num" }, n.state === "live" && n.jobs_owned !== null ? n.jobs_owned : "-"),
        h("td", { class: "hide-narrow num" }, n.applied_marker === null ? "-" : n.applied_marker < s.latest_marker ? n.applied_marker + " (" + (s.latest_marker - n.applied_marker) + " behind)" : n.applied_marker),
        h("td", { class: "hide-narrow num" + (Math.abs(n.skew_ms ?? 0) > MAX_SKEW_MS ? " field-error" : "") }, n.skew_ms === null ? "-" : (n.skew_ms >= 0 ? "+" : "-") + (Math.abs(n.skew_ms) / 1000).toFixed(1) + " s"),
        h("td", { class: "hide-narrow" }, n.last_reload_at === null ? "-" : [when(n.last_reload_at), " (" + n.last_reload_ms + " ms)"])))
        : [h("tr", {}, none("no service has ever run on this database", 10))], { id: "services" }),
    h("h2", {}, "Next fires"),
    table(["At", "Job"], s.next_fires.length ? s.next_fires.map((f) => h("tr", {},
      h("td", {}, when(f.at, f.timezone)), h("td", {}, h("a", { href: "#/jobs/" + enc(f.job) }, f.job))))
      : [h("tr", {}, none("none", 2))], { id: "next-fires" })];
}));
`;
