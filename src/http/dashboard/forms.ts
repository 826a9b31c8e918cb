/**
 * The dashboard's job page and the add/edit form, as browser JavaScript.
 * The form sends what was typed, as typed: the API validates with the
 * CLI's rules and its message is shown beside the field it names.
 */
import {
  AFTER_OUTCOMES,
  DEFAULT_RETRY_DELAY,
  DEFAULT_RETRY_MAX_DELAY,
  DEFAULT_RETRY_ON,
  RETRYABLE_STATUSES,
} from "../../domain/job.ts";
import { HOOK_COMMANDS, HOOK_URLS } from "../../domain/notify.ts";

/** The hooks in the order of jm_jobs' columns: each command, then its URL. */
const HOOKS = HOOK_COMMANDS.flatMap((command, i) => [command, HOOK_URLS[i]]);

export const FORMS_JS = String.raw`
/** A job's hooks, each command then its URL; null = the service's notify.* of that name. */
const HOOKS = ${JSON.stringify(HOOKS)};
const AFTER_OUTCOMES = ${JSON.stringify(AFTER_OUTCOMES)};
const RETRYABLE_STATUSES = ${JSON.stringify(RETRYABLE_STATUSES)};
/** What an emptied retry field goes back to: what a job added without it gets. */
const RETRY_DEFAULTS = ${
  JSON.stringify({
    retries: "0",
    retry_delay: String(DEFAULT_RETRY_DELAY),
    retry_max_delay: String(DEFAULT_RETRY_MAX_DELAY),
    retry_on: DEFAULT_RETRY_ON,
  })
};

/** on_failure_url → "On failure, POST to". */
function hookLabel(name) {
  const when = name.replace(/_url$/, "").replace("on_", "On ");
  return when + (name.endsWith("_url") ? ", POST to" : ", run");
}

/** Seconds as given, and in the largest unit that divides them: "7200 s (2 h)". */
function seconds(n) {
  const unit = [[604800, "w"], [86400, "d"], [3600, "h"], [60, "min"]].find(([s]) => n >= s && n % s === 0);
  return n + " s" + (unit ? " (" + n / unit[0] + " " + unit[1] + ")" : "");
}

/** Characters a value cannot show as is on one line of the env box: line ends, tabs, controls, bidi. */
const ENV_QUOTED = /[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]|^\s|\s$|^"/;

/**
 * An env value as the env box shows it: as is, or as a JSON string when a
 * newline, a tab, a control or a blank at either end would be lost or
 * hidden (ML="line1\nline2"). envPairs() reads either back, exactly.
 */
function envText(value) {
  if (!ENV_QUOTED.test(value)) return value;
  return JSON.stringify(value).replace(/[\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g,
    (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}

/**
 * A job's variables as [name, value] pairs. An env column broken by hand
 * (null, text, a number for a value) shows what there is, each value as
 * text; the page's alert says what is wrong with it.
 */
function envEntries(env) {
  if (env === null || typeof env !== "object" || Array.isArray(env)) return [];
  return Object.entries(env).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]);
}

/** The env box's lines as NAME=value strings for the API (it names a bad line), values exact. */
function envPairs(text) {
  const pairs = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const eq = line.indexOf("=");
    if (eq < 0) { pairs.push(line); continue; }
    const name = line.slice(0, eq).trim();
    const raw = line.slice(eq + 1);
    let value = raw;
    if (raw.startsWith('"')) {
      try {
        value = JSON.parse(raw);
      } catch (e) {
        value = null;
      }
      if (typeof value !== "string") {
        throw Object.assign(new Error("env: " + name + ": a value that starts with \" is a JSON string, as in " +
          name + '="line1\\nline2"; ' + raw + " is not one"), { field: "env" });
      }
    }
    pairs.push(name + "=" + value);
  }
  return pairs;
}

/** How many next fires a job page lists. */
const NEXT_FIRES = 10;
/** How many it reads: twice as many, so that the list stays full while fires pass between reads. */
const FIRES_READ = 2 * NEXT_FIRES;
/** The soonest a job page reads its next fires again after the last read: a job firing each second costs a request every 10 s. */
const FIRES_READ_MS = 5000;
/** The longest a job page goes without reading them: a change made elsewhere (the CLI, another tab) shows within this. */
const FIRES_STALE_MS = 30000;

/**
 * Keep a job page's next fires true as time passes: each fire read is
 * dropped once it has passed, the first NEXT_FIRES of the rest are shown,
 * and the job is read again once fewer than that are left (no sooner than
 * FIRES_READ_MS after the last read) or FIRES_STALE_MS after the last read.
 * A job changed since the page was drawn (edited, enabled, disabled or
 * removed elsewhere) is drawn anew; else only its fires are.
 */
async function keepFires(signal, shown, draw) {
  let next = shown.next;
  // Fires pass on the database's clock, on which the API computed them, not the viewer's.
  let readAt = databaseNow();
  let passed = false;
  while (!signal.aborted) {
    const now = databaseNow();
    const gone = next.filter((at) => Date.parse(at) <= now).length;
    if (gone > 0) {
      next = next.slice(gone);
      passed = true;
      draw(next.slice(0, NEXT_FIRES));
    }
    const short = passed && next.length < NEXT_FIRES;
    const readDue = readAt + (short ? FIRES_READ_MS : FIRES_STALE_MS);
    if (now >= readDue) {
      readAt = now;
      try {
        const d = await api("GET", "/jobs/" + enc(shown.id) + "?count=" + FIRES_READ);
        if (signal.aborted) return;
        if (d.updated_at !== shown.updated_at) return route();
        next = d.next;
        passed = false;
        draw(next.slice(0, NEXT_FIRES));
      } catch (e) {
        if (signal.aborted || e.status === 401) return;
        if (e.status === 404) return route();
      }
      continue;
    }
    const firstFire = next.length > 0 ? Date.parse(next[0]) : Infinity;
    await sleep(Math.min(firstFire, readDue) - now, signal);
  }
}

/** How often a job page whose first read failed (an outage) tries again. */
const JOB_RETRY_MS = 2000;

/**
 * What the form's last save warned of (a user this server's host has no
 * account of, …), for the job page it goes to: { id, warnings }, shown
 * once there, or null.
 */
let saveWarnings = null;

/** The warnings of the save of job id that led here, taken: a later visit shows none. */
function takeSaveWarnings(id) {
  const said = saveWarnings !== null && saveWarnings.id === id ? saveWarnings.warnings : [];
  saveWarnings = null;
  return said;
}

page(/^\/add-job$/, (_, query, signal) => jobForm(null, signal));
page(/^\/jobs\/(.+)\/edit$/, async ([id], _, signal) => {
  const job = await firstLoad(signal, JOB_RETRY_MS, () => api("GET", "/jobs/" + enc(id)));
  if (job !== undefined) jobForm(job, signal);
});

page(/^\/jobs\/(.+)$/, async ([id], _, signal) => {
  const d = await firstLoad(signal, JOB_RETRY_MS, () => api("GET", "/jobs/" + enc(id) + "?count=" + FIRES_READ));
  if (d === undefined) return;
  const job = d;
  const warned = takeSaveWarnings(id);
  const row = (label, ...value) => [h("dt", {}, label), h("dd", { "data-field": label }, value)];
  const orDefault = (v, what) => v === null ? h("span", { class: "muted" }, "service default" + (what ? " (" + what + ")" : "")) : String(v);
  const env = envEntries(job.env);
  const runs = runsTable(d.runs, { hideJob: true });
  // First, however many skips came since: the 5 runs below may all be newer than a run stuck for hours.
  const running = runsTable(d.running || [], { hideJob: true, status: "running", cancel: true, id: "running-runs", empty: "none now" });
  const live = liveBadge();
  const firesOf = (next) => h("div", { id: "fires" },
    h("h2", {}, "Next " + next.length + " fires", job.enabled ? null : h("span", { class: "muted small" }, " (once enabled)")),
    h("ol", { id: "next-fires" }, next.map((at) => h("li", {}, when(at, d.zone), " ", h("span", { class: "muted small" }, inZone(Date.parse(at), d.zone))))));
  const fires = firesOf(d.next.slice(0, NEXT_FIRES));
  show(signal,
    h("h1", {}, job.id, h("span", { class: "badge " + (job.enabled ? "live" : "disabled") }, job.enabled ? "enabled" : "disabled"),
      h("span", { class: "actions" },
        isAdmin() ? h("a", { class: "button", href: "#/jobs/" + enc(job.id) + "/edit", id: "edit" }, "Edit") : null,
        // On the version drawn: a job re-created or edited since is not the one the viewer meant.
        action(job.enabled ? "Disable" : "Enable", () => api("POST", "/jobs/" + enc(job.id) + (job.enabled ? "/disable" : "/enable"),
          undefined, ifMatch(job.updated_at))),
        runNowButton(job.id),
        action("Remove", () => api("DELETE", "/jobs/" + enc(job.id), undefined, ifMatch(job.updated_at)), {
          class: "danger", confirm: "Remove job " + job.id + "? Its runs stay.", after: () => { location.hash = "#/jobs"; },
        }))),
    job.invalid ? h("div", { class: "alert" }, job.invalid) : null,
    // Stored all the same: what the save warned of, as the CLI's stderr would have.
    warned.length ? h("div", { class: "alert warning", role: "status", id: "save-warnings" },
      h("strong", {}, "Saved, with a warning:"), warned.map((w) => h("div", { class: "warning-line" }, w))) : null,
    h("h2", {}, "Running now"),
    running,
    h("div", { class: "card" }, h("dl", { class: "grid", id: "job-fields" },
      row("command", h("code", {}, job.command)),
      row("schedule", job.schedule_words, job.schedule === "" ? null : h("div", { class: "mono muted small" },
        job.schedule + "   (second minute hour day month day_of_week)")),
      row("timezone", job.timezone === null ? h("span", {}, d.zone, h("span", { class: "muted" }, " (service default)")) : job.timezone),
      row("timeout", job.timeout === 0 ? "none" : job.timeout + " s"),
      row("max_instances", orDefault(job.max_instances)),
      row("coalesce", orDefault(job.coalesce)),
      row("misfire_grace_time", job.misfire_grace_time === null ? orDefault(null) : job.misfire_grace_time + " s"),
      row("env", env.length ? h("div", { class: "mono env", id: "job-env" }, env.map(([k, v]) => h("div", { "data-env": k }, k + "=" + envText(v))))
        : h("span", { class: "muted" }, "none")),
      row("cwd", job.cwd !== null ? h("code", {}, job.cwd) : job.user === null ? orDefault(null) : h("span", { class: "muted" }, "the user's home")),
      row("user", job.user === null ? h("span", { class: "muted" }, "the service's own") : h("code", {}, job.user)),
      row("description", job.description ? h("div", { class: "prose", id: "job-description" }, job.description) : h("span", { class: "muted" }, "none")),
      row("retries", job.retries === 0 ? h("span", { class: "muted" }, "none") : String(job.retries)),
      row("retry_delay", job.retry_delay + " s", h("span", { class: "muted" }, " (doubled per attempt)")),
      row("retry_max_delay", job.retry_max_delay + " s"),
      row("retry_on", h("code", {}, job.retry_on)),
      row("retry_overlap", String(job.retry_overlap)),
      row("after_job", job.after_job === null ? h("span", { class: "muted" }, "none")
        : h("a", { href: "#/jobs/" + enc(job.after_job) }, job.after_job)),
      row("after_outcome", job.after_outcome === null ? h("span", { class: "muted" }, "-") : job.after_outcome),
      HOOKS.map((name) => row(name, job[name] === null ? orDefault(null, "notify." + name) : h("code", {}, job[name]))),
      row("alert_after", job.alert_after === null ? h("span", { class: "muted" }, "never") : seconds(job.alert_after)),
      row("created_at", when(job.created_at)),
      row("updated_at", when(job.updated_at)))),
    fires,
    h("h2", {}, "Runs ", live, " ", h("a", { class: "small", href: "#/runs?job=" + enc(job.id) }, "all runs")),
    runs);
  keepFires(signal, d, (next) => morph(fires, firesOf(next)));
  // The newest run the page has: a stream that comes back resumes after it, not after the first read's.
  let after = d.runs.length ? d.runs[0].id : 0;
  follow(() => "/runs/stream?job=" + enc(job.id) + "&after=" + after, async (event, data) => {
    if (event === "run") {
      runs.upsert(data, true);
      running.upsert(data, true);
      after = Math.max(after, data.id);
    }
    if (event === "relist") after = Math.max(after, data.newest);
    // What changed before the stream looked (a run that ended meanwhile, or more runs than it
    // sends at once) is read once.
    if (event === "ready" || event === "relist") {
      // The runs the page had before the list is read: one that came during the read is not in it.
      const had = after;
      for (const r of await api("GET", "/runs?job=" + enc(job.id) + "&limit=" + Math.max(d.runs.length, 1))) runs.upsert(r, false);
      running.relist(await api("GET", "/runs?job=" + enc(job.id) + "&status=running&limit=100"), 100, had);
    }
  }, signal, live.set);
});

/** Add (job null) or edit a job. */
function jobForm(job, signal) {
  const editing = job !== null;
  const errors = new Map();
  const field = (name, label, control, hint, wide) => {
    const error = h("span", { class: "field-error", "data-error": name });
    errors.set(name, error);
    return h("label", { class: wide ? "wide" : null, "data-field": name }, label, control, hint ? h("span", { class: "hint" }, hint) : null, error);
  };
  const input = (name, value, attrs) => h("input", Object.assign({ name, value: value === null || value === undefined ? "" : String(value) }, attrs || {}));
  const id = input("id", editing ? job.id : "", { disabled: editing, placeholder: "e.g. nightly-backup", autocomplete: "off" });
  const command = h("textarea", { name: "command", value: editing ? job.command : "", placeholder: "/usr/local/bin/backup --all" });
  const cron = input("cron", "", { placeholder: editing ? "leave empty to keep the fields below" : "e.g. */5 * * * *  or  @daily", class: "mono" });
  const fieldInputs = FIELDS.map((f) => input(f, editing ? job[f] : "", { placeholder: editing ? "" : f === "second" ? "0" : "*", class: "mono", "aria-label": f }));
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  const timezone = input("timezone", editing ? job.timezone : "", { list: "zones", placeholder: "service default" });
  const timeout = input("timeout", editing ? job.timeout : "", { inputmode: "numeric", placeholder: "60" });
  const maxInstances = input("max_instances", editing ? job.max_instances : "", { inputmode: "numeric", placeholder: "service default" });
  const grace = input("misfire_grace_time", editing ? job.misfire_grace_time : "", { inputmode: "numeric", placeholder: "service default" });
  const coalesce = h("select", { name: "coalesce" }, [["", "service default"], ["true", "yes"], ["false", "no"]].map(([v, t]) =>
    h("option", { value: v, selected: editing && String(job.coalesce) === v || (!editing || job.coalesce === null) && v === "" }, t)));
  const enabled = h("input", { type: "checkbox", name: "enabled", checked: editing ? job.enabled : true });
  const envBefore = editing ? envEntries(job.env).map(([k, v]) => k + "=" + envText(v)).join("\n") : "";
  const env = h("textarea", { name: "env", value: envBefore, placeholder: "NAME=value, one per line" });
  // A box, not an input: a path may hold a line end, which an input would drop.
  const cwd = h("textarea", { name: "cwd", value: editing && job.cwd !== null ? job.cwd : "", placeholder: "the service's", rows: 1, class: "short mono" });
  const user = input("user", editing ? job.user : "", { placeholder: "the service's own", class: "mono", autocomplete: "off" });
  const description = h("textarea", { name: "description", value: editing && job.description !== null ? job.description : "", rows: 2 });
  const retryInputs = Object.entries(RETRY_DEFAULTS).map(([name, fallback]) => input(name, editing ? job[name] : "",
    { placeholder: fallback, inputmode: name === "retry_on" ? null : "numeric", class: name === "retry_on" ? "mono" : null }));
  const [retries, retryDelay, retryMaxDelay, retryOn] = retryInputs;
  const retryOverlap = h("input", { type: "checkbox", name: "retry_overlap", checked: editing && job.retry_overlap });
  const afterJob = input("after_job", editing ? job.after_job : "", { placeholder: "none", autocomplete: "off" });
  const afterOutcome = h("select", { name: "after_outcome" }, AFTER_OUTCOMES.map((o) =>
    h("option", { value: o, selected: (editing && job.after_outcome !== null ? job.after_outcome : "success") === o }, o)));
  // Which ends start the job means nothing while it follows none.
  const followsNone = () => { afterOutcome.disabled = afterJob.value.trim() === ""; };
  afterJob.addEventListener("input", followsNone);
  followsNone();
  // A command in a box that keeps its line ends (an input would drop them, and a save would store that).
  const hooks = HOOKS.map((name) => name.endsWith("_url")
    ? input(name, editing ? job[name] : "", { placeholder: "notify." + name, class: "mono", autocomplete: "off" })
    : h("textarea", { name, value: editing && job[name] !== null ? job[name] : "", placeholder: "notify." + name, rows: 1, class: "short" }));
  const alertAfter = input("alert_after", editing ? job.alert_after : "", { placeholder: "never" });
  /**
   * Each box as drawn: one left so is not sent, so a value no box holds as
   * is (a CR, which a box reads as a line end; a line end in an input)
   * stays as stored through a save of other fields.
   */
  const drawn = new Map([command, timezone, timeout, maxInstances, grace, cwd, user, description, ...retryInputs, ...hooks, alertAfter]
    .map((el) => [el, el.value]));
  const preview = h("div", { class: "small", id: "preview" });
  const formError = h("div", { id: "form-error" });

  const scheduleBody = () => {
    if (cron.value.trim() !== "") return { cron: cron.value.trim() };
    const out = {};
    // All six emptied: the job keeps no schedule of its own (it runs after another's runs).
    if (editing && job.schedule !== "" && fieldInputs.every((i) => i.value.trim() === "")) {
      for (const f of FIELDS) out[f] = "";
      return out;
    }
    FIELDS.forEach((f, i) => {
      const v = fieldInputs[i].value.trim();
      if (v !== "" && (!editing || v !== job[f])) out[f] = v;
    });
    return out;
  };
  const body = () => {
    const b = Object.assign({}, scheduleBody());
    const put = (el, value, old) => {
      if (editing && el.value === drawn.get(el)) return;
      if (!editing || value !== (old === null || old === undefined ? "" : String(old))) b[el.name] = value;
    };
    if (!editing) b.id = id.value.trim();
    put(command, command.value, editing ? job.command : undefined);
    put(timezone, timezone.value.trim(), editing ? job.timezone : undefined);
    if (timeout.value.trim() !== "" || editing) put(timeout, timeout.value.trim(), editing ? job.timeout : undefined);
    if (maxInstances.value.trim() !== "" || editing) put(maxInstances, maxInstances.value.trim(), editing ? job.max_instances : undefined);
    if (grace.value.trim() !== "" || editing) put(grace, grace.value.trim(), editing ? job.misfire_grace_time : undefined);
    const coalesceWas = editing && job.coalesce !== null ? String(job.coalesce) : "";
    if (coalesce.value !== coalesceWas) b.coalesce = coalesce.value === "" ? null : coalesce.value === "true";
    if (!editing || enabled.checked !== job.enabled) b.enabled = enabled.checked;
    // Env only when its box changed, and then only the variables that did: values never trimmed.
    if (env.value !== envBefore) {
      const pairs = envPairs(env.value);
      if (editing) {
        const kept = new Set(pairs.map((p) => p.split("=")[0]));
        const was = new Map(envEntries(job.env));
        const gone = [...was.keys()].filter((k) => !kept.has(k));
        if (gone.length) b.unset_env = gone;
        const changed = pairs.filter((p) => {
          const eq = p.indexOf("=");
          return eq < 0 || was.get(p.slice(0, eq)) !== p.slice(eq + 1);
        });
        if (changed.length) b.env = changed;
      } else if (pairs.length) b.env = pairs;
    }
    // A path as typed: blanks at an end are a path's too (a blank box is the service's).
    put(cwd, cwd.value.trim() === "" ? "" : cwd.value, editing ? job.cwd : undefined);
    put(user, user.value.trim(), editing ? job.user : undefined);
    put(description, description.value, editing ? job.description : undefined);
    // An emptied retry field is the default its placeholder shows.
    for (const el of retryInputs) put(el, el.value.trim() || (editing ? RETRY_DEFAULTS[el.name] : ""), editing ? job[el.name] : undefined);
    if (editing ? retryOverlap.checked !== job.retry_overlap : retryOverlap.checked) b.retry_overlap = retryOverlap.checked;
    // The link is one thing: its job and outcome go together, an emptied job drops it.
    const follows = afterJob.value.trim();
    const followed = editing ? [job.after_job || "", job.after_job === null ? "" : job.after_outcome] : ["", ""];
    const following = [follows, follows === "" ? "" : afterOutcome.value];
    if (following[0] !== followed[0] || following[1] !== followed[1]) {
      b.after_job = follows === "" ? null : follows;
      if (follows !== "") b.after_outcome = afterOutcome.value;
    }
    for (const el of hooks) put(el, el.value, editing ? job[el.name] : undefined);
    put(alertAfter, alertAfter.value.trim(), editing ? job.alert_after : undefined);
    if (!editing) for (const k of Object.keys(b)) if (b[k] === "") delete b[k];
    return b;
  };
  const clearErrors = () => {
    for (const el of errors.values()) el.textContent = "";
    for (const el of document.querySelectorAll(".invalid")) el.classList.remove("invalid");
    formError.replaceChildren();
  };
  /** Show an API error beside its field, or above the form when it names none we show. */
  const showError = (e) => {
    const name = FIELDS.includes(e.field) && cron.value.trim() !== "" ? "cron" : e.field === "schedule" ? "cron" : e.field;
    const place = errors.get(name);
    if (place) {
      place.textContent = printable(e.message);
      place.parentElement.classList.add("invalid");
      place.parentElement.scrollIntoView({ block: "center" });
    } else {
      formError.replaceChildren(errorBox(e));
    }
  };
  /** Someone changed the job since this form was filled: say so, and offer the new copy. */
  const showConflict = (e) => {
    formError.replaceChildren(h("div", { class: "alert", role: "alert", id: "conflict" }, e.message, " ",
      h("button", { type: "button", id: "reload-job", onclick: route }, "Reload the job (your changes here are lost)")));
    formError.scrollIntoView({ block: "center" });
  };
  const previewSchedule = async () => {
    clearErrors();
    preview.replaceChildren();
    const s = editing && cron.value.trim() === "" ? Object.fromEntries(FIELDS.map((f, i) => [f, fieldInputs[i].value.trim() || "*"])) : scheduleBody();
    try {
      const p = await api("POST", "/schedule/preview", Object.assign({}, s, { timezone: timezone.value.trim() || undefined, count: 5 }));
      preview.replaceChildren(h("div", { class: "muted" }, p.schedule_words + " (" + p.timezone + "):"),
        h("ol", {}, p.next.map((at) => h("li", {}, when(at, p.timezone)))));
    } catch (e) {
      if (e.status !== 401) showError(e);
    }
  };
  const form = h("form", { class: "job card", id: "job-form", novalidate: true },
    field("id", "Id", id, editing ? "cannot change" : "1-191 characters of A-Z a-z 0-9 . _ : -"),
    field("command", "Command", command, "run with /bin/sh -c", true),
    field("cron", "Schedule (crontab line)", cron, "m h dom mon dow, with seconds first, or @daily …; or the six fields" +
      (editing ? " (all six empty: none of its own, for a job that follows another):" : ":"), true),
    h("div", { class: "wide fields6" }, FIELDS.map((f, i) => field(f, f, fieldInputs[i]))),
    h("div", { class: "wide actions" }, h("button", { type: "button", onclick: previewSchedule, id: "preview-button" }, "Preview next fires"), preview),
    field("timezone", "Time zone", timezone, "IANA name, e.g. Europe/Paris"),
    field("timeout", "Timeout (s)", timeout, "0 = never; default 60"),
    field("max_instances", "Max instances", maxInstances),
    field("misfire_grace_time", "Misfire grace time (s)", grace),
    field("coalesce", "Coalesce late fires", coalesce),
    field("enabled", "Enabled", enabled),
    field("env", "Environment", env, 'NAME=value per line; a value with a newline, a tab or blanks at an end as a JSON string: NAME="line1\\nline2"', true),
    field("cwd", "Working directory", cwd, "absolute path; empty = the service's, or with a user, the user's home"),
    field("user", "Run as user", user, "user name or uid, as cron's user column; needs the service run as root; empty = the service's own"),
    field("description", "Description", description, null, true),
    h("h2", { class: "wide" }, "When a run fails"),
    field("retries", "Retries", retries, "attempts after a failed one; 0 = none"),
    field("retry_delay", "Retry delay (s)", retryDelay, "before the first retry; doubled for each next one"),
    field("retry_max_delay", "Longest retry delay (s)", retryMaxDelay),
    field("retry_on", "Retry on", retryOn, "comma-separated, of: " + RETRYABLE_STATUSES.join(", ")),
    field("retry_overlap", "Keep a pending retry when the next fire comes", retryOverlap),
    h("h2", { class: "wide" }, "Follow another job"),
    field("after_job", "After job", afterJob, "the job whose runs' ends start this one; empty = none"),
    field("after_outcome", "After its", afterOutcome, "success, failure (any failed end) or always"),
    h("h2", { class: "wide" }, "Notifications"),
    HOOKS.map((name, i) => field(name, hookLabel(name), hooks[i], name.endsWith("_url")
      ? "http(s) URL POSTed the run as JSON; empty = the service's"
      : "shell command, the run as JSON on stdin; empty = the service's")),
    field("alert_after", "Alert after", alertAfter, "without a success for this long, on_failure fires: seconds or 90s, 15m, 2h, 7d; empty = never"),
    h("datalist", { id: "zones" }, zones.map((z) => h("option", { value: z }))),
    h("div", { class: "wide actions" },
      h("button", { class: "primary", type: "submit", id: "save" }, editing ? "Save changes" : "Add job"),
      h("a", { class: "button", href: editing ? "#/jobs/" + enc(job.id) : "#/jobs" }, "Cancel")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    try {
      // The copy this form was made on: a job changed since (another tab) is refused, not merged.
      const saved = editing
        ? await api("PATCH", "/jobs/" + enc(job.id), body(), { "If-Match": '"' + msOf(job.updated_at) + '"' })
        : await api("POST", "/jobs", body());
      saveWarnings = { id: saved.id, warnings: saved.warnings || [] };
      location.hash = "#/jobs/" + enc(saved.id);
    } catch (e) {
      // 412: the If-Match above failed (RFC 9110 §13.1.1).
      if (e.status === 412 && editing) showConflict(e);
      else if (e.status !== 401) showError(e);
    }
  });
  show(signal, h("h1", {}, editing ? "Edit " + job.id : "Add a job"), formError, form);
}
`;
