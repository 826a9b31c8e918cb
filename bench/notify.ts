/**
 * Notification benchmark (issue 13): the firing lag of 100 every-second
 * jobs that all fail, without hooks, with an on_failure hook throttled as
 * configured by default (notify.min_interval 300 s), and with the hook run
 * for every failure (min_interval 0): hooks must not delay fires. Counts
 * what was claimed, held back and actually run.
 */
import {
  type Backend,
  EVERY_SECOND,
  freshDb,
  makeJobs,
  ms,
  quantile,
  query,
  seed,
  serve,
} from "./common.ts";

const JOBS = 100;

async function failingWith(
  backend: Backend,
  seconds: number,
  hooks: "none" | "throttled" | "every failure",
): Promise<(string | number)[]> {
  const db = await freshDb(backend);
  try {
    const ran = `${db.dir}/hooks.txt`;
    await seed(db, makeJobs(JOBS, EVERY_SECOND, "exit 1"));
    const notify = hooks === "none" ? {} : {
      notify: {
        on_failure: `echo "$JM_RUN_ID" >> ${ran}`,
        ...(hooks === "every failure" ? { min_interval: 0 } : {}),
      },
    };
    const s = await serve(db, {}, notify);
    const from = Math.ceil(Date.now() / 1000) * 1000 + 1000;
    const to = from + seconds * 1000;
    await new Promise((r) => setTimeout(r, to - Date.now() + 500));
    await s.stop();
    const runs = await query(
      db,
      `SELECT scheduled_at, started_at FROM jm_runs WHERE scheduled_at >= ${from} AND scheduled_at < ${to}`,
    );
    const lags = runs.filter((r) => r.started_at !== null).map((r) =>
      Number(r.started_at) - Number(r.scheduled_at)
    );
    const claims = await query(
      db,
      "SELECT outcome, COUNT(*) AS n FROM jm_notifications GROUP BY outcome ORDER BY outcome",
    );
    const hooksRun = (await Deno.readTextFile(ran).catch(() => "")).split("\n").filter(Boolean);
    return [
      backend,
      hooks,
      runs.length,
      ms(quantile(lags, 0.5)),
      ms(quantile(lags, 0.99)),
      claims.map((c) => `${c.outcome} ${c.n}`).join(", ") || "-",
      hooksRun.length,
    ];
  } finally {
    await db.drop();
  }
}

export async function notifyLag(backend: Backend, seconds: number): Promise<(string | number)[][]> {
  const rows: (string | number)[][] = [];
  for (const hooks of ["none", "throttled", "every failure"] as const) {
    rows.push(await failingWith(backend, seconds, hooks));
  }
  return rows;
}
