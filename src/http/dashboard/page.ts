/**
 * The dashboard's one HTML page. Everything else is drawn by the script;
 * the page itself holds no data, so it is served without a token.
 */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>jobsmanager</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/app.css">
<script src="/assets/app.js" defer></script>
</head>
<body>
<header>
  <a class="brand" href="#/jobs">jobsmanager</a>
  <nav>
    <a href="#/jobs" data-page="jobs">Jobs</a>
    <a href="#/runs" data-page="runs">Runs</a>
    <a href="#/logs" data-page="logs">Logs</a>
    <a href="#/status" data-page="status">Status</a>
  </nav>
  <span id="who"></span>
</header>
<div id="health" class="health" role="status" aria-label="service health" hidden></div>
<main id="main"><p class="muted">Loading…</p></main>
<noscript>The dashboard needs JavaScript; the API is at /api/v1 (see /api/v1/openapi.json).</noscript>
</body>
</html>
`;
