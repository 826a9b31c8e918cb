/**
 * The log filters on a large jm_syslog: `db migrate` from schema 12 (its
 * index build), `logs --job/--run` after it, and retention's batches
 * before and after the migration.
 */
import { MIGRATIONS, versionTable } from "../src/store/migrations.ts";
import { openStore } from "../src/store/open.ts";
import { type Backend, cli, freshDb, median, ms, query } from "./common.ts";

/** Lines the log holds. */
export const LOG_LINES = 2_000_000;
/**
 * Lines of the job `rare`, written after the first 1 %: retention's batches delete those
 * (created_at = seq), 10,000 before the migration and 10,000 after it, and leave `rare`.
 */
const RARE_AT = LOG_LINES / 100;

/**
 * `n` numbers from 0 as a SELECT of `seq`, from a product of digits: the same SQL in SQLite,
 * MariaDB and MySQL (whose recursive CTEs stop at 1,000 rows).
 */
function sequence(n: number): string {
  const places = Math.ceil(Math.log10(n));
  const digits = "SELECT 0 AS n UNION ALL " +
    Array.from({ length: 9 }, (_, i) => `SELECT ${i + 1}`).join(" UNION ALL ");
  const from = Array.from({ length: places }, (_, i) => `(${digits}) d${i}`).join(", ");
  const seq = Array.from({ length: places }, (_, i) => `d${i}.n * ${10 ** i}`).join(" + ");
  return `SELECT * FROM (SELECT ${seq} AS seq FROM ${from}) s WHERE seq < ${n}`;
}

/** Of a filter: how it is run, from `logs`. */
const FILTERS: [string, string[]][] = [
  ["--job rare (10 lines)", ["--job", "rare"]],
  ["--job job.7 (1,400 lines)", ["--job", "job.7"]],
  ["--run 100000 (7 lines)", ["--run", "100000"]],
  ["--job none (no line)", ["--job", "none"]],
  ["no filter (the command's start-up)", []],
];

export async function logFilter(backend: Backend): Promise<(string | number)[][]> {
  const db = await freshDb(backend);
  try {
    await query(db, versionTable(backend));
    for (const m of MIGRATIONS.filter((m) => m.version <= 12)) {
      for (const statement of m.statements[backend]) await query(db, statement);
      await query(
        db,
        `INSERT INTO jm_schema_version (version, name, applied_at) VALUES (${m.version}, 'bench', 0)`,
      );
    }
    // 70 % of lines name one of 1,000 jobs and a run of 10 lines; the others, none.
    const concat = (...parts: string[]) =>
      backend === "mysql" ? `CONCAT(${parts.join(", ")})` : parts.join(" || ");
    const div = (a: string, b: number) => backend === "mysql" ? `${a} DIV ${b}` : `${a} / ${b}`;
    const job = `CASE WHEN seq >= ${RARE_AT} AND seq < ${RARE_AT + 10} THEN 'rare' ELSE ${
      concat("'job.'", `(${div("seq", 10)}) % 1000`)
    } END`;
    const context = concat(
      '\'{"job":"\'',
      job,
      '\'","run":\'',
      div("seq", 10),
      "',\"pid\":'",
      "seq",
      "'}'",
    );
    await query(
      db,
      `INSERT INTO jm_syslog (created_at, level, logger_name, message, context, node_id) SELECT seq, 'info', 'jobsmanager.runner', ${
        concat("'run '", div("seq", 10), "' ended'")
      }, CASE WHEN seq % 10 < 7 THEN ${context} ELSE '{}' END, 'n1' FROM (${
        sequence(LOG_LINES)
      }) q`,
    );
    const prune = async () => {
      const store = openStore(db.target);
      try {
        const times: number[] = [];
        for (let i = 0; i < 10; i++) {
          const t0 = performance.now();
          await store.pruneOlderThan("jm_syslog", RARE_AT, 1000);
          times.push(performance.now() - t0);
        }
        return median(times);
      } finally {
        await store.close();
      }
    };
    const pruneBefore = await prune();
    const migrate = await cli(db, ["db", "migrate"]);
    const rows: (string | number)[][] = [
      [backend, "db migrate, 12 → 13", ms(migrate), ""],
      [
        backend,
        "retention batch of 1,000 (median of 10), schema 12 / 13",
        `${ms(pruneBefore)} / ${ms(await prune())}`,
        "",
      ],
    ];
    for (const [what, args] of FILTERS) {
      const times: number[] = [];
      for (let i = 0; i < 3; i++) times.push(await cli(db, ["logs", ...args]));
      rows.push([backend, `logs ${what}`, ms(median(times)), times.map(ms).join(" / ")]);
    }
    return rows;
  } finally {
    await db.drop();
  }
}
