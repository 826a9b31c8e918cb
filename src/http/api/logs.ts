/**
 * `/api/v1/logs`: the service's log in `jm_syslog`, as `jobsmanager logs`,
 * and its live tail (`logs --follow`) as Server-Sent Events.
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { LogFollower, type LogQuery, recentLogs } from "../../app/logs.ts";
import { parseRunId } from "../../domain/input.ts";
import type { LogRow } from "../../domain/log_row.ts";
import { count, optionalJob, optionalLevel, optionalSince } from "../query.ts";
import { pollStream, type SseEvent } from "../sse.ts";
import { type ApiContext, type Env, json } from "./context.ts";
import { EnvMasks } from "./env_masks.ts";

const MAX_LINES = 100_000;
/**
 * The lines a live stream sends first, at most: it holds them until its
 * client has read them, and a client that never reads (of the 64 streams
 * a server keeps) would hold 100,000 lines, some 40 MB, for good.
 */
export const MAX_STREAM_LINES = 10_000;
const TAIL_POLL_MS = 1000;

function queryOf(c: Context): LogQuery {
  const run = c.req.query("run");
  return {
    minLevel: optionalLevel(c.req.query("level")),
    job_id: optionalJob(c.req.query("job")),
    run_id: run === undefined || run === "" ? undefined : parseRunId(run, "run"),
    node_id: c.req.query("node") || undefined,
    since: optionalSince(c.req.query("since"), Date.now()),
  };
}

export function logRoutes(api: ApiContext): Hono<Env> {
  const routes = new Hono<Env>();
  const { store } = api;
  /** `rows` as this caller may read them: without the env values of the jobs they are about. */
  const masked = async (c: Context<Env>, rows: LogRow[]) => {
    const masks = await EnvMasks.ofLogs(store, c.get("role"), rows, api.changeSettlesMs);
    return rows.map((row) => masks.log(row));
  };

  routes.get("/logs", async (c) => {
    const limit = count(c.req.query("limit"), "limit", MAX_LINES, 100);
    return json(c, await masked(c, await recentLogs(store, queryOf(c), limit)));
  });

  /**
   * The newest `limit` lines, then each new one as it is written; with
   * `after=ID`, or the Last-Event-ID an EventSource sends as it reconnects,
   * only the lines after that one. When the log has no line that high (it
   * was emptied, or its ids restarted), `event: reset` says so and the
   * newest `limit` lines follow, as at the start.
   */
  routes.get("/logs/stream", (c) => {
    const query = queryOf(c);
    // Empty is not given, as for /runs/stream.
    const after = c.req.query("after") || c.req.header("last-event-id") || undefined;
    const last = after === undefined ? null : parseRunId(after, "after", "log line id");
    let follower: LogFollower | null = null;
    const limit = count(c.req.query("limit"), "limit", MAX_STREAM_LINES, 100);
    return pollStream(c, {
      closing: api.closing,
      streams: api.streams,
      redact: api.redact,
      shown: c.get("shown"),
      intervalMs: TAIL_POLL_MS,
      poll: async () => {
        // As `logs --follow`: a line committed below one sent already is sent too.
        let rows: LogRow[] = [];
        const events: SseEvent[] = [];
        if (follower === null && last === null) {
          rows = await recentLogs(store, query, limit);
          follower = await LogFollower.after(store, query, limit, rows);
        } else {
          follower ??= await LogFollower.afterId(store, query, limit, last!);
          const found = await follower.poll();
          // As `logs --follow` says it: the lines that follow are the newest `limit`, not news.
          if (found.reset !== null) events.push({ event: "reset", data: found.reset });
          rows = found.rows;
        }
        for (const row of await masked(c, rows)) {
          events.push({ event: "log", data: row, id: String(row.id) });
        }
        return events;
      },
    });
  });

  return routes;
}
