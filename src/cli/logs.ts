/** `jobsmanager logs`: read `jm_syslog`, optionally following new rows. */
import { validateId } from "../domain/job.ts";
import { LOG_LEVELS } from "../domain/log_row.ts";
import { LogFollower, type LogQuery, recentLogs } from "../app/logs.ts";
import type { LogRow } from "../domain/log_row.ts";
import type { Store } from "../store/store.ts";
import { type Identity, identityOf } from "../store/no_follow.ts";
import { writeErr, writeOut } from "./context.ts";
import { command, switched, valued } from "./command.ts";
import { logLine } from "./output.ts";
import { databaseSaid } from "./failure.ts";
import { printableLine } from "../domain/printable.ts";
import { parseCount, parseLevel, parseRunId, parseSince } from "../domain/input.ts";

const FOLLOW_POLL_MS = 1000;
/** The longest wait between tries while the database is away. */
const OUTAGE_POLL_MS = 5000;
/** The most lines one `logs` prints before following. */
const MAX_LINES = 100_000;

export function logsCommand() {
  return command({
    brief: "read the service's log from the database (jm_syslog)",
    options: {
      level: valued(`this level and above (${LOG_LEVELS.join(", ")})`, "level"),
      job: valued("only lines about this job", "id"),
      run: valued("only lines about this run", "run-id"),
      node: valued("only lines this service wrote (its id in `jobsmanager status`)", "id"),
      since: valued("only the last 90s, 15m, 2h, 7d, …", "duration"),
      limit: valued("at most this many lines (the newest)", "n", "100"),
      follow: switched(
        "keep printing new lines until Ctrl-C, through database outages (said on stderr)",
      ),
    },
    aliases: { f: "follow" },
    action: async (ctx, opts) => {
      const runId = opts.run === undefined ? undefined : parseRunId(opts.run, "--run");
      const query: LogQuery = {
        minLevel: opts.level === undefined ? undefined : parseLevel(opts.level, "--level"),
        job_id: opts.job === undefined ? undefined : validateId(opts.job, "--job"),
        run_id: runId,
        node_id: opts.node,
        since: opts.since === undefined ? undefined : parseSince(opts.since, Date.now(), "--since"),
      };
      const limit = parseCount(opts.limit, "--limit", MAX_LINES);
      const target = ctx.target;
      await ctx.withStore(async (store) => {
        // What the path names as the store has it open: the file followed.
        const file = target.kind === "sqlite"
          ? { path: target.path, identity: identityNamed(target.path), open: () => ctx.openStore() }
          : null;
        const rows = await recentLogs(store, query, limit);
        const read = rows.every((row) => writeOut(logLine(row, ctx.json)));
        // Said on stderr, so stdout stays log lines (JSON lines with --json).
        if (rows.length === 0) writeErr(`jobsmanager: ${nothingToShow(opts)}`);
        if (!opts.follow || !read) return;
        await follow(store, query, { shown: rows, limit, file }, ctx.json);
      });
    },
  });
}

/** A SQLite database file followed: its path, what the path named, and how to open what it names. */
interface FollowedFile {
  path: string;
  identity: Identity | null;
  open(): Store;
}

/** The file `path` names now (through links, as SQLite opens it); null when none. */
function identityNamed(path: string): Identity | null {
  try {
    return identityOf(Deno.statSync(path));
  } catch {
    return null;
  }
}

/**
 * Print new lines until Ctrl-C, or until stdout's reader has gone (`| head`,
 * seen as the next line is written), exit 0: through a database
 * outage (a line on stderr when it goes and when it is back) and a
 * `jm_syslog` emptied meanwhile (said, then its newest `limit` lines shown,
 * as at the start). A SQLite `file` deleted meanwhile is said, and once
 * the path names a file again (another moved over it, or a service made a
 * new one), that one is followed, said too, its newest `limit` lines
 * shown first: the file open was no longer the service's.
 */
async function follow(
  first: Store,
  query: LogQuery,
  { shown, limit, file }: { shown: LogRow[]; limit: number; file: FollowedFile | null },
  json: boolean,
) {
  const stop = new AbortController();
  let reading = false;
  const onInterrupt = () => {
    stop.abort();
    // A read the network holds gets no answer until the statement's timeout (30 s): Ctrl-C must
    // not wait for it. Every line read was written already (synchronously); nothing is lost.
    if (reading) Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", onInterrupt);
  /** The store on the file followed; null while the path names none. */
  let store: Store | null = first;
  /** A store opened here on the file the path names now (the first is the caller's to close). */
  let reopened: Store | null = null;
  try {
    let follower: LogFollower | null = null;
    let away: string | null = null;
    let wait = FOLLOW_POLL_MS;
    /** Show the newest `limit` lines of the file before following it (one newly followed). */
    let fresh = false;
    while (!stop.signal.aborted) {
      let more = false;
      const now = file === null ? null : identityNamed(file.path);
      if (file !== null && now !== file.identity) {
        // Let go of the old file at once: its space, when deleted, is freed only then, and a lock
        // held on its -shm would have the next file at the path take that index for its own.
        // The first store is closed again by the caller: a second close does nothing.
        await store?.close();
        store = reopened = null;
        follower = null;
        const was = file.identity;
        file.identity = now;
        if (now === null) {
          writeErr(
            `jobsmanager: sqlite:${file.path} was deleted; following on once the path names a database file again (a service started again makes one)`,
          );
        } else {
          writeErr(
            `jobsmanager: sqlite:${file.path} ${
              was === null
                ? "names a database file again"
                : "now names another file (one moved over it)"
            }; following that one, from its newest lines (--limit)`,
          );
          try {
            store = reopened = file.open();
            fresh = true;
          } catch (error) {
            // Tried again when the path names yet another file.
            writeErr(`jobsmanager: cannot read the log: ${printableLine(databaseSaid(error))}`);
          }
        }
      }
      if (store === null) {
        await sleep(FOLLOW_POLL_MS, stop.signal);
        continue;
      }
      reading = true;
      try {
        if (fresh) {
          const recent = await recentLogs(store, query, limit);
          fresh = false;
          shown = recent;
          if (!recent.every((row) => writeOut(logLine(row, json)))) return;
        }
        follower ??= await LogFollower.after(store, query, limit, shown);
        const found = await follower.poll();
        reading = false;
        if (away !== null) {
          writeErr("jobsmanager: the database answers again; following on");
          away = null;
          wait = FOLLOW_POLL_MS;
        }
        if (found.reset !== null) {
          writeErr(
            `jobsmanager: jm_syslog was emptied or its ids restarted (its newest line is ${found.reset.newest}, the last shown was ${found.reset.last}); showing its newest lines (--limit) and following on from there`,
          );
        }
        if (!found.rows.every((row) => writeOut(logLine(row, json)))) return;
        more = found.more;
      } catch (error) {
        reading = false;
        const why = databaseSaid(error);
        if (away === null) {
          writeErr(
            `jobsmanager: cannot read the log: ${
              printableLine(why)
            }; still following, trying again until Ctrl-C`,
          );
        }
        away = why;
        wait = Math.min(wait * 2, OUTAGE_POLL_MS);
      }
      if (!more) await sleep(wait, stop.signal);
    }
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
    await reopened?.close();
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

/** Why `logs` printed nothing: no line matches the filters given, named as typed. */
function nothingToShow(opts: Record<string, string | undefined>): string {
  const filters = (["level", "job", "run", "node", "since"] as const)
    .filter((name) => opts[name] !== undefined)
    .map((name) => `--${name} ${opts[name]}`);
  return filters.length === 0
    ? "no log lines in jm_syslog yet"
    : `no log lines match ${filters.join(" ")}`;
}
