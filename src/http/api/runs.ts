/**
 * `/api/v1/runs`: what happened to each fire, as `jobsmanager runs`; and a
 * live stream of new and changed runs for the dashboard.
 */
import { Hono } from "hono";
import { cancelAndAwait, cancelRun, showRun } from "../../app/runs.ts";
import type { Run } from "../../domain/run.ts";
import { FINAL_STATUSES } from "../../domain/run.ts";
import { parseRunId } from "../../domain/input.ts";
import { count, flag, given, optionalJob, optionalSince, optionalStatus } from "../query.ts";
import { HttpError, httpErrorMessage } from "../errors.ts";
import { remoteAddress } from "../remote.ts";
import { pollStream, type SseEvent } from "../sse.ts";
import { type ApiContext, type Env, json } from "./context.ts";
import { EnvMasks } from "./env_masks.ts";
import { API_NAMES } from "../input_names.ts";

/** The most runs one answer lists, as `runs --limit`. */
const MAX_RUNS = 100_000;
/**
 * Newest runs the stream compares each second; a page of this many at a
 * time, back to the newest run of the look before, when more were added.
 */
const STREAM_WINDOW = 200;
/**
 * New runs one look sends at most (as many as a dashboard table keeps):
 * beyond, it sends `relist` instead. Paging back to an `after` of long ago
 * (a tab left open for a day) held every run since in memory: 600,000
 * runs took the service from 104 MB to 689 MB.
 */
export const STREAM_CATCH_UP = 1000;
/** Runs still open that the stream re-reads each second once they left the window. */
const MAX_FOLLOWED = 100;
const STREAM_POLL_MS = 1000;
/**
 * The longest `POST /runs/{id}/cancel?wait=`, in seconds: proxies between
 * close a request quiet much longer. A client that waits longer asks again,
 * or reads the run (GET /runs/{id}).
 */
export const MAX_CANCEL_WAIT_S = 300;
/** How often a cancel's wait reads its run: one row, twice a second, a waiting client. */
const CANCEL_POLL_MS = 500;

/** More new runs than STREAM_CATCH_UP since `after`: the stream goes on after `newest`. */
interface Skipped {
  after: number;
  newest: number;
}

/** What a change of a run shows in: its status and times. */
function stateOf(run: Run): string {
  return `${run.status}|${run.started_at}|${run.finished_at}`;
}

function ended(state: string): boolean {
  return FINAL_STATUSES.includes(state.split("|")[0] as Run["status"]);
}

/** A run as lists show it: its output is the run's own answer's (GET /runs/{id}). */
function listed(run: Run): Omit<Run, "stdout" | "stderr"> {
  const { stdout: _stdout, stderr: _stderr, ...rest } = run;
  return rest;
}

export function runRoutes(api: ApiContext): Hono<Env> {
  const routes = new Hono<Env>();
  const { store } = api;

  routes.get("/runs", async (c) => {
    const runs = await store.listRuns({
      job_id: optionalJob(c.req.query("job")),
      status: optionalStatus(c.req.query("status")),
      since: optionalSince(c.req.query("since"), Date.now()),
      limit: count(c.req.query("limit"), "limit", MAX_RUNS, 50),
      // The next page of a list cut at its limit: the runs older than its last.
      beforeId: c.req.query("before")
        ? count(c.req.query("before"), "before", Number.MAX_SAFE_INTEGER, 0)
        : undefined,
      output: false,
    });
    const masks = await EnvMasks.of(
      store,
      c.get("role"),
      runs.map((r) => r.job_id),
      api.changeSettlesMs,
    );
    return json(c, runs.map((run) => masks.run(listed(run))));
  });

  routes.get("/runs/stream", (c) => {
    const filter = {
      job_id: optionalJob(c.req.query("job")),
      status: optionalStatus(c.req.query("status")),
      limit: STREAM_WINDOW,
      output: false,
    };
    const seen = new Map<number, string>();
    // The client has the runs up to `after` (from GET /runs): newer ones it has not seen.
    const after = c.req.query("after");
    const known = after === undefined || after === "" ? Infinity : parseRunId(after, "after");
    let first = true;
    // The newest id the look before read: runs above it are new, each one to send.
    let newest = Number.isFinite(known) ? known : null;
    /**
     * The newest runs, page by page back to `newest`: more may come between
     * two looks than one page holds. More than STREAM_CATCH_UP new runs
     * (`skipped`) are not read: only the newest page is, from which the
     * stream goes on.
     */
    const newRuns = async (): Promise<{ runs: Run[]; skipped: Skipped | null }> => {
      const runs = await store.listRuns(filter);
      const window = runs.length;
      let skipped: Skipped | null = null;
      for (let page = runs; page.length === filter.limit && newest !== null;) {
        const oldest = page[page.length - 1].id;
        if (oldest <= newest + 1) break;
        if (runs.length >= STREAM_CATCH_UP) {
          // A run between the last page and `newest`: more are new than one look sends.
          const [below] = await store.listRuns({ ...filter, beforeId: oldest, limit: 1 });
          if (below !== undefined && below.id > newest) {
            runs.splice(window);
            skipped = { after: newest, newest: runs[0].id };
          }
          break;
        }
        page = await store.listRuns({ ...filter, beforeId: oldest });
        runs.push(...page);
      }
      if (runs.length > 0) newest = Math.max(newest ?? 0, runs[0].id);
      return { runs, skipped };
    };
    return pollStream(c, {
      closing: api.closing,
      streams: api.streams,
      redact: api.redact,
      shown: c.get("shown"),
      intervalMs: STREAM_POLL_MS,
      poll: async () => {
        const { runs, skipped } = await newRuns();
        const inWindow = new Set(runs.map((r) => r.id));
        const events: SseEvent[] = [];
        if (skipped) {
          // The client lists again: the runs it reads are not news, their changes from here on are.
          for (const run of runs) seen.set(run.id, stateOf(run));
          events.push({ event: "relist", data: skipped });
        }
        // A long run that dropped out of the window still ends on the page.
        const open = [...seen].filter(([id, state]) => !inWindow.has(id) && !ended(state))
          .slice(0, MAX_FOLLOWED);
        for (const [id] of open) {
          const run = await store.getRun(id);
          if (run) runs.push(run);
        }
        for (const run of runs.sort((a, b) => a.id - b.id)) {
          const state = stateOf(run);
          if (filter.status !== undefined && run.status !== filter.status) {
            // A run followed past the filter's status (it ended, or started) is no longer one
            // the client asked for: it is told so once, so its list does not keep it as it was.
            events.push({ event: "left", data: listed(run), id: String(run.id) });
            seen.delete(run.id);
            continue;
          }
          if (seen.get(run.id) !== state && (!first || run.id > known)) {
            events.push({ event: "run", data: listed(run), id: String(run.id) });
          }
          seen.set(run.id, state);
        }
        const ofRuns = events.filter((e) => e.event === "run" || e.event === "left");
        const shown = ofRuns.map((e) => (e.data as Run).job_id);
        const masks = await EnvMasks.of(store, c.get("role"), shown, api.changeSettlesMs);
        for (const e of ofRuns) e.data = masks.run(e.data as Run);
        // An ended run that left the window cannot come back into it.
        for (const [id, state] of seen) if (!inWindow.has(id) && ended(state)) seen.delete(id);
        // Every change from here on is sent: what changed between the client's list and now
        // (a run that ended meanwhile) it reads again once, on this word.
        if (first) {
          events.push({ event: "ready", data: { after: Number.isFinite(known) ? known : null } });
        }
        first = false;
        return events;
      },
    });
  });

  routes.get("/runs/:id", async (c) => {
    const run = await showRun(store, parseRunId(c.req.param("id"), "run id"), API_NAMES);
    return json(
      c,
      (await EnvMasks.of(store, c.get("role"), [run.job_id], api.changeSettlesMs)).run(run),
    );
  });

  /**
   * As `runs cancel`: the run records who asked, here the token's role and
   * the client's address. A run in a terminal is ended only with `force`:
   * this server cannot look at the processes of the host it runs on. With
   * `wait` (seconds), as `runs cancel --wait --timeout`: 200 once the run
   * has ended (the service's answer), 202 with the run as it stands when it
   * has not (`waited` says why: `database_lost`, with the database's
   * `detail`, when the database failed during the wait, the request
   * written). A wait holds its request open as a live
   * stream does, counted among them, and gives up its slot at the door.
   */
  routes.post("/runs/:id/cancel", async (c) => {
    const id = parseRunId(c.req.param("id"), "run id");
    const by = `${c.get("role")} token@${remoteAddress(c) ?? "unknown"}`;
    const force = flag(c.req.query("force"), "force");
    const wait = c.req.query("wait");
    if (!given(wait)) {
      return json(
        c,
        await cancelRun(store, id, { by, now: Date.now(), force, names: API_NAMES }),
        202,
      );
    }
    const waitS = count(wait, "wait", MAX_CANCEL_WAIT_S, 0);
    if (api.streams.open >= api.streams.max) {
      throw new HttpError(
        503,
        `${api.streams.open} live streams and waits are open, the most this server keeps; cancel without wait and read the run (GET /api/v1/runs/{id}), or try again later`,
        5,
      );
    }
    api.streams.open++;
    try {
      c.get("leaveDoor")?.();
      const answer = await cancelAndAwait(store, id, {
        by,
        now: Date.now(),
        force,
        names: API_NAMES,
        wait: {
          heartbeatMs: api.heartbeatMs,
          timeoutMs: waitS * 1000,
          // The server stopping, or the client gone, ends the wait.
          signal: AbortSignal.any([api.closing, c.req.raw.signal]),
          pollMs: CANCEL_POLL_MS,
        },
      });
      const { outcome, run, waited } = answer;
      // The request is written: a database lost during the wait is said beside it, not as a 503.
      const detail = waited?.outcome === "database_lost"
        ? { detail: api.redact(httpErrorMessage(waited.error)) }
        : {};
      return json(
        c,
        { outcome, run, waited: waited?.outcome ?? null, ...detail },
        FINAL_STATUSES.includes(run.status) ? 200 : 202,
      );
    } finally {
      api.streams.open--;
    }
  });

  return routes;
}
