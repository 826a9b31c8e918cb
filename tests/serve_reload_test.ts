/**
 * Changes reaching a running `jobsmanager serve` through reload markers,
 * on every backend: CLI writes take effect while an unchanged job keeps
 * firing without a gap; markers written while a reload runs are applied
 * by the next one; every marker ends up applied; SIGHUP re-reads every job,
 * marker or not. The reload rules themselves are tested in-process
 * (daemon_reload_test.ts).
 * Each waits for the change's effect with a deadline well past the
 * promise (reload_interval + 1 s); a loaded machine may be slower than the
 * promise without the change being lost.
 */
import { assert, assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase, type TestDatabase, waitFor } from "./helpers.ts";
import {
  jm,
  jmMarker,
  markers,
  ran,
  ready,
  type RunRow,
  runs,
  runsDetail,
  sql,
  started,
  startServe,
} from "./serve_helpers.ts";

const RELOAD_MS = 500;
/** The promise: a change takes effect within reload_interval + 1 s. */
const EFFECT_MS = RELOAD_MS + 1000;

/** Wait until marker `id` is applied, within `timeoutMs`; return when that was seen. */
async function markerApplied(
  db: TestDatabase,
  id: number,
  timeoutMs = EFFECT_MS + 10_000,
): Promise<number> {
  await waitFor(async () => (await markers(db)).find((m) => m.id === id)?.updated === 1, {
    timeoutMs,
    what: `marker ${id} to be applied`,
    intervalMs: 50,
    detail: async () => JSON.stringify(await markers(db)),
  });
  return Date.now();
}

/** Wait until `jobId` has `count` fires scheduled after `after` (real time passing, by events). */
async function firesAfter(db: TestDatabase, jobId: string, after: number, count: number) {
  await waitFor(
    async () => (await runs(db, jobId)).filter((r) => r.scheduled_at > after).length >= count,
    {
      timeoutMs: count * 1000 + 10_000,
      what: `${count} fires of ${jobId}`,
      detail: runsDetail(db),
    },
  );
}

function lastFire(rows: RunRow[]): number {
  return Math.max(...rows.map((r) => r.scheduled_at));
}

for (const backend of BACKENDS) {
  Deno.test(`serve[${backend}]: CLI changes take effect while serve runs`, async () => {
    await using db = await freshDatabase(backend);
    await jm(db, "job", "add", "steady", "--second", "*", "--command", "echo steady");
    await jm(db, "job", "add", "victim", "--second", "*", "--command", "echo victim");
    await using serve = await startServe(db, { reload_interval: RELOAD_MS / 1000 });
    await ready(db, serve);
    await firesAfter(db, "victim", 0, 1);
    const detail = runsDetail(db);

    // Add: the job fires.
    await jmMarker(db, "job", "add", "added", "--second", "*", "--command", "echo v1");
    await waitFor(async () => (await runs(db, "added")).find(started), {
      timeoutMs: EFFECT_MS + 10_000,
      what: "the first run of the added job",
      detail,
    });

    // Change the command: the new one runs, the old one never again.
    await jmMarker(db, "job", "update", "added", "--command", "echo v2");
    const changed = await waitFor(
      async () => (await runs(db, "added")).find((r) => r.stdout === "v2\n"),
      { timeoutMs: EFFECT_MS + 10_000, what: "a run of the changed command", detail },
    );

    // Disable one job and remove another: no fire of either once the markers are applied.
    const disabled = await jmMarker(db, "job", "disable", "added");
    const removed = await jmMarker(db, "job", "remove", "victim");
    const applied = Math.max(
      await markerApplied(db, disabled),
      await markerApplied(db, removed),
    );
    await firesAfter(db, "steady", applied, 2);

    assertEquals((await serve.terminate()).status.code, 0, serve.stderr);
    const added = await runs(db, "added");
    const victim = await runs(db, "victim");
    assert(lastFire(added) <= applied, `disabled job fired after its marker was applied`);
    assert(lastFire(victim) <= applied, `removed job fired after its marker was applied`);
    const v2From = changed.scheduled_at;
    for (const r of added.filter((r) => ran(r, added))) {
      assertEquals(r.stdout, r.scheduled_at < v2From ? "v1\n" : "v2\n", `run ${r.id} of added`);
    }

    // The unchanged job fired every second across all four reloads.
    const steady = await runs(db, "steady");
    assert(steady.length >= 5, `steady ran ${steady.length} times`);
    for (let i = 1; i < steady.length; i++) {
      assertEquals(
        steady[i].scheduled_at - steady[i - 1].scheduled_at,
        1000,
        `steady has a gap or a repeat after run ${steady[i - 1].id}:\n${await detail()}`,
      );
    }
    assert(
      steady.filter((r) => ran(r, steady)).every((r) => r.status === "success"),
      `steady:\n${await detail()}`,
    );
    assert((await markers(db)).every((m) => m.updated === 1), "a marker was left unapplied");
  });

  Deno.test(`serve[${backend}]: markers written while a reload runs are applied, not lost`, async () => {
    await using db = await freshDatabase(backend);
    await jm(db, "db", "migrate");
    // 20,000 disabled jobs make each reload read for a while (about 0.2 s),
    // and a poll every 0.1 s starts the next one soon after while markers
    // are pending: the writes below, back to back, land while reloads run.
    const digits = Array.from({ length: 10 }, (_, d) => `SELECT ${d} AS d`).join(" UNION ALL ");
    const name = backend === "mysql" ? "CONCAT('filler', n)" : "'filler' || n";
    await sql(
      db,
      `INSERT INTO jm_jobs (id, command, enabled) SELECT ${name}, 'true', 0 FROM (SELECT a.d * 10000 + b.d * 1000 + c.d * 100 + e.d * 10 + f.d AS n FROM (${digits}) a, (${digits}) b, (${digits}) c, (${digits}) e, (${digits}) f WHERE a.d < 2) seq`,
    );
    await sql(
      db,
      `INSERT INTO jm_update_info (jobs_before_update, jobs_after_update) VALUES ('[]', '[]')`,
    );
    await using serve = await startServe(db, { reload_interval: 0.1 });
    await ready(db, serve, 20_000);
    const ids = Array.from({ length: 24 }, (_, i) => `late${i}`);
    for (const id of ids) {
      await sql(db, "INSERT INTO jm_jobs (id, command, `second`) VALUES (?, 'true', '*')", [id]);
      await sql(
        db,
        "INSERT INTO jm_update_info (jobs_before_update, jobs_after_update) VALUES ('[]', '[]')",
      );
    }
    await waitFor(async () => {
      const ran = new Set((await runs(db)).filter(started).map((r) => r.job_id));
      return ids.every((id) => ran.has(id));
    }, {
      timeoutMs: EFFECT_MS + 10_000,
      what: "every job written during the reloads to fire",
      detail: async () => {
        const ran = new Set((await runs(db)).map((r) => r.job_id));
        return `never fired: ${ids.filter((id) => !ran.has(id))}`;
      },
    });
    await waitFor(async () => (await markers(db)).every((m) => m.updated === 1), {
      timeoutMs: EFFECT_MS + 10_000,
      what: "every marker to be applied",
      detail: async () => JSON.stringify(await markers(db)),
    });
    assertEquals((await serve.terminate()).status.code, 0, serve.stderr);
  });

  Deno.test(`serve[${backend}]: SIGHUP re-reads a job edited by hand, without a marker`, async () => {
    await using db = await freshDatabase(backend);
    await jm(db, "job", "add", "edited", "--second", "*", "--command", "echo v1");
    // The next poll comes 30 s after the start, and no marker is written:
    // only SIGHUP can bring the edit in.
    await using serve = await startServe(db, { reload_interval: 30 });
    await ready(db, serve);
    await sql(db, "UPDATE jm_jobs SET command = 'echo v2' WHERE id = 'edited'");
    serve.signal("SIGHUP");
    await waitFor(async () => (await runs(db, "edited")).some((r) => r.stdout === "v2\n"), {
      timeoutMs: 20_000,
      what: "a run of the edited command",
      detail: runsDetail(db),
    });
    assert(Date.now() - serve.startedAt < 30_000, "the poll, not SIGHUP, may have applied it");
    assertEquals((await serve.terminate()).status.code, 0, serve.stderr);
  });
}
