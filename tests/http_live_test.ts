/**
 * What the live streams send, on every backend: every run added between
 * two looks, up to the most one look sends, and beyond it a word to list
 * again (never every run since an `after` of long ago); a log resumed
 * after a line it no longer has says so and sends its newest lines, as
 * `logs --follow` does.
 */
import { assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase } from "./helpers.ts";
import { ADMIN, type Api, readSse, startApi } from "./http_harness.ts";
import { STREAM_CATCH_UP } from "../src/http/api/runs.ts";
import { MAX_STREAM_LINES } from "../src/http/api/logs.ts";

async function withApi(backend: (typeof BACKENDS)[number], fn: (api: Api) => Promise<void>) {
  await using db = await freshDatabase(backend);
  await using api = await startApi(db);
  await fn(api);
}

/** More than the stream's window (200) of runs added at once. */
const BURST = 450;

for (const backend of BACKENDS) {
  Deno.test(`api (${backend}): the run stream sends every run of a burst larger than its window`, () =>
    withApi(backend, async (api) => {
      await api.call("POST", "/api/v1/jobs", {
        body: { id: "many", command: "true", cron: "0 0 1 1 *" },
      });
      await using stream = await readSse(api, "/api/v1/runs/stream?after=0");
      await stream.until((e) => e.event === "ready");
      const ids = await api.store.claimRuns(
        Array.from({ length: BURST }, (_, i) => ({
          job_id: "many",
          scheduled_at: i + 1,
          status: "success" as const,
          trigger: "schedule" as const,
        })),
      );
      const last = Math.max(...ids.map(Number));
      await stream.until((e) => (e.data as { id?: number }).id === last);
      const sent = stream.events.filter((e) => e.event === "run").map((e) =>
        (e.data as { id: number }).id
      );
      assertEquals(sent.length, BURST, `runs sent: ${sent.length} of ${BURST}`);
      assertEquals(new Set(sent), new Set(ids));
    }));
}

/** `count` finished runs of job `many`, scheduled from `from` on; their ids. */
async function addRuns(api: Api, count: number, from = 1): Promise<number[]> {
  const ids = await api.store.claimRuns(
    Array.from({ length: count }, (_, i) => ({
      job_id: "many",
      scheduled_at: from + i,
      status: "success" as const,
      trigger: "schedule" as const,
    })),
  );
  return ids.map(Number);
}

const runIds = (events: { event: string; data: unknown }[]) =>
  events.filter((e) => e.event === "run").map((e) => (e.data as { id: number }).id);

for (const backend of BACKENDS) {
  Deno.test(`api (${backend}): a run stream from an old after sends the most one look sends, beyond it relist`, () =>
    withApi(backend, async (api) => {
      await api.call("POST", "/api/v1/jobs", {
        body: { id: "many", command: "true", cron: "0 0 1 1 *" },
      });
      const ids = await addRuns(api, STREAM_CATCH_UP + 1);
      const newest = ids.at(-1)!;
      // As many new runs as one look sends: each of them, as before.
      const all = ids.slice(1);
      await using caught = await readSse(api, `/api/v1/runs/stream?after=${ids[0]}`);
      await caught.until((e) => e.event === "ready");
      assertEquals(runIds(caught.events), all);
      // One more (a tab left open long, a client that stopped reading): the client lists again.
      await using behind = await readSse(api, `/api/v1/runs/stream?after=${ids[0] - 1}`);
      await behind.until((e) => e.event === "ready");
      assertEquals(behind.events, [
        { event: "relist", data: { after: ids[0] - 1, newest } },
        { event: "ready", data: { after: ids[0] - 1 } },
      ]);
      // From there on, each new run and change comes.
      const [next] = await addRuns(api, 1, 10_000);
      await behind.until((e) => (e.data as { id?: number }).id === next);
      assertEquals(runIds(behind.events), [next]);
      // More than one look sends, added between two looks: the same word, from the newest sent.
      const burst = await addRuns(api, STREAM_CATCH_UP + 1, 20_000);
      const relist = await behind.until((e) => e.event === "relist" && e !== behind.events[0]);
      assertEquals(relist, { after: next, newest: burst.at(-1) });
      assertEquals(runIds(behind.events), [next]);
    }));
}

for (const backend of BACKENDS) {
  Deno.test(`api (${backend}): the log stream resumed past its newest line says reset, then the newest limit lines`, () =>
    withApi(backend, async (api) => {
      const row = (i: number) => ({
        created_at: Date.now(),
        level: "info",
        logger_name: "jobsmanager.test",
        message: `line ${i}`,
        context: {},
      });
      await api.store.insertLogs([1, 2, 3, 4, 5].map(row));
      const newest = (await api.store.listLogs({ limit: 1 }))[0].id!;
      // A client that read a log since emptied (its ids began again) comes back.
      await using tail = await readSse(api, `/api/v1/logs/stream?limit=2&after=${newest + 1000}`);
      await tail.until((e) => (e.data as { message?: string }).message === "line 5");
      await api.store.insertLogs([row(6)]);
      await tail.until((e) => (e.data as { message?: string }).message === "line 6");
      assertEquals(
        tail.events.map((e) => [e.event, (e.data as { message?: string }).message ?? e.data]),
        [
          ["reset", { last: newest + 1000, newest }],
          ["log", "line 4"],
          ["log", "line 5"],
          ["log", "line 6"],
        ],
      );
    }));
}

for (const backend of BACKENDS) {
  Deno.test(`api (${backend}): the log stream sends 10,000 lines first at most; a list of the log may take 100,000`, () =>
    withApi(backend, async (api) => {
      assertEquals(MAX_STREAM_LINES, 10_000);
      // The answer's status and, refused, its error; a stream taken is let go unread.
      const ask = async (limit: number) => {
        const res = await fetch(`${api.url}/api/v1/logs/stream?limit=${limit}`, {
          headers: { Authorization: `Bearer ${ADMIN}` },
        });
        if (res.ok) await res.body?.cancel();
        return [res.status, res.ok ? null : (await res.json()).error];
      };
      assertEquals(await ask(MAX_STREAM_LINES + 1), [
        400,
        "limit: '10001' is not valid (allowed: a whole number from 1 to 10000)",
      ]);
      assertEquals(await ask(MAX_STREAM_LINES), [200, null]);
      assertEquals((await api.call("GET", "/api/v1/logs?limit=100000")).status, 200);
    }));
}
