/** The dashboard's stylesheet: one column on a phone, tables that scroll sideways inside their box. */
export const STYLE_CSS = `
:root {
  --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg: #f6f8fa; --card: #fff;
  --accent: #0969da; --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --info: #8250df;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; font-size: 15px;
}
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: var(--bg); }
header {
  display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1.25rem;
  padding: .6rem 1rem; background: #24292f; color: #fff;
}
header a { color: #fff; text-decoration: none; }
.brand { font-weight: 700; letter-spacing: .02em; }
nav { display: flex; gap: .25rem; flex-wrap: wrap; }
nav a { padding: .3rem .65rem; border-radius: 6px; color: #d0d7de; }
nav a.active, nav a:hover { background: #3d444d; color: #fff; }
#who { margin-left: auto; font-size: .85rem; color: #d0d7de; display: flex; gap: .5rem; align-items: center; }
.health {
  display: flex; flex-wrap: wrap; gap: .35rem .75rem; align-items: center; padding: .4rem 1rem;
  background: var(--card); border-bottom: 1px solid var(--line); font-size: .85rem;
}
time .tz { color: var(--muted); font-size: .85em; }
.health-title { font-weight: 600; }
main { max-width: 1200px; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.35rem; margin: .25rem 0 1rem; display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; }
h2 { font-size: 1.05rem; margin: 1.5rem 0 .5rem; }
/* An id of 191 characters or a description without a blank wraps rather than widening the page. */
h1, h2, td, dd, .alert { overflow-wrap: anywhere; }
a { color: var(--accent); }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 1rem; margin-bottom: 1rem; }
.scroll { overflow-x: auto; background: var(--card); border: 1px solid var(--line); border-radius: 8px; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; padding: .45rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--bg); font-weight: 600; white-space: nowrap; }
tr:last-child td { border-bottom: 0; }
tr.fresh td { animation: fresh 2s ease-out; }
@keyframes fresh { from { background: #fff8c5; } to { background: transparent; } }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.nowrap { white-space: nowrap; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .85rem; }
pre { background: #0d1117; color: #e6edf3; padding: .75rem; border-radius: 6px; overflow: auto; max-height: 28rem; white-space: pre-wrap; word-break: break-all; margin: 0; }
.muted { color: var(--muted); }
.small { font-size: .8rem; }
.badge { display: inline-block; padding: .05rem .5rem; border-radius: 999px; font-size: .78rem; font-weight: 600; color: #fff; background: var(--muted); white-space: nowrap; }
.badge.success, .badge.live, .badge.up, .badge.ready { background: var(--ok); }
.badge.failed, .badge.error, .badge.timeout, .badge.killed, .badge.lost, .badge.dead, .badge.down, .badge.fatal { background: var(--bad); }
.badge.running, .badge.info { background: var(--accent); }
.badge.skipped, .badge.missed, .badge.stale, .badge.warning, .badge.refuses, .badge.recovering { background: var(--warn); }
.badge.interrupted, .badge.cancelled { background: var(--info); }
.badge.debug, .badge.leaving, .badge.stopped, .badge.queued, .badge.disabled { background: #6e7781; }
.badge.last-known { background: #d0d7de; color: #424a53; }
button, .button {
  font: inherit; font-size: .85rem; padding: .35rem .8rem; border-radius: 6px; cursor: pointer;
  border: 1px solid var(--line); background: var(--card); color: var(--fg); text-decoration: none; display: inline-block;
}
button.primary { background: var(--ok); border-color: var(--ok); color: #fff; }
button.danger { color: var(--bad); }
button:disabled { opacity: .5; cursor: not-allowed; }
.actions { display: flex; flex-wrap: wrap; gap: .4rem; }
.filters { display: flex; flex-wrap: wrap; gap: .5rem; margin-bottom: .75rem; align-items: end; }
.filters label { display: flex; flex-direction: column; font-size: .8rem; color: var(--muted); gap: .15rem; }
input, select, textarea {
  font: inherit; font-size: .9rem; padding: .35rem .5rem; border: 1px solid var(--line); border-radius: 6px;
  background: #fff; color: var(--fg); max-width: 100%;
}
textarea { width: 100%; min-height: 4.5rem; font-family: ui-monospace, monospace; }
textarea.short { min-height: 2.2rem; }
form.job { display: grid; grid-template-columns: repeat(auto-fit, minmax(15rem, 1fr)); gap: .75rem 1rem; }
form.job .wide { grid-column: 1 / -1; }
form.job label { display: flex; flex-direction: column; gap: .2rem; font-weight: 600; font-size: .85rem; }
form.job label input, form.job label select, form.job label textarea { font-weight: 400; width: 100%; }
form.job label input[type=checkbox] { width: auto; align-self: flex-start; margin: .4rem 0; }
form.job h2 { margin: .5rem 0 0; padding-top: .75rem; border-top: 1px solid var(--line); font-size: .95rem; }
form.job .hint { font-weight: 400; color: var(--muted); font-size: .78rem; }
.fields6 { display: grid; grid-template-columns: repeat(6, minmax(3.2rem, 1fr)); gap: .3rem; }
.fields6 label { font-size: .72rem; }
.field-error { color: var(--bad); font-weight: 600; font-size: .8rem; }
.invalid input, .invalid textarea, .invalid select { border-color: var(--bad); outline: 1px solid var(--bad); }
.alert { border: 1px solid var(--bad); background: #ffebe9; color: var(--bad); padding: .6rem .8rem; border-radius: 6px; margin-bottom: .75rem; }
.alert.warning { border-color: var(--warn); background: #fff8c5; color: var(--warn); }
.note { border: 1px solid var(--line); background: var(--card); padding: .6rem .8rem; border-radius: 6px; margin-bottom: .75rem; }
/* minmax(0, …): a long value wraps in its column rather than widening the card past the page. */
dl.grid { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: .35rem 1rem; margin: 0; }
dl.grid dt { color: var(--muted); }
dl.grid dd { margin: 0; word-break: break-word; }
/* A command of several lines shows them. */
.env div, .prose, dl.grid dd code { white-space: pre-wrap; }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(10rem, 1fr)); gap: .75rem; margin-bottom: 1rem; }
.tile { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .75rem; }
.tile .value { font-size: 1.5rem; font-weight: 700; }
.tile .label { color: var(--muted); font-size: .8rem; }
.chart svg { width: 100%; height: 9rem; display: block; margin-top: .5rem; }
.chart .axis { display: flex; justify-content: space-between; margin-top: .2rem; }
.legend { display: flex; flex-wrap: wrap; gap: .75rem; font-size: .8rem; margin-top: .4rem; }
.legend span::before { content: ""; display: inline-block; width: .7rem; height: .7rem; border-radius: 2px; margin-right: .3rem; background: var(--c); vertical-align: -1px; }
.logs td { font-family: ui-monospace, monospace; font-size: .8rem; }
.login { max-width: 26rem; margin: 3rem auto; }
.login input { width: 100%; margin: .5rem 0 .75rem; }
.switch, .filters label.switch { display: inline-flex; flex-direction: row; align-items: center; gap: .35rem; cursor: pointer; }
@media (max-width: 700px) {
  main { padding: .6rem; }
  th, td { padding: .4rem .45rem; }
  .hide-narrow { display: none; }
  #who { margin-left: 0; width: 100%; }
  .fields6 { grid-template-columns: repeat(3, 1fr); }
  /* A field's name above its value: beside it, a name like misfire_grace_time leaves the value a third of a phone. */
  dl.grid { grid-template-columns: minmax(0, 1fr); gap: 0; }
  dl.grid dd { margin-bottom: .5rem; }
  /* An id of 191 characters wraps in lines of a readable width, not two letters a line. */
  #jobs td:first-child { min-width: 9rem; }
}
`;
