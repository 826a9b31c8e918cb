/**
 * `jobsmanager import apscheduler|crontab`: bring jobs in from the original
 * JobsManager's table or from a crontab. Prints the plan; writes only with
 * `--apply` (one transaction, one reload marker). Also the plan's rendering,
 * which `apply` shares.
 */
import { RuntimeError, UsageError } from "../errors.ts";
import {
  apschedulerCandidates,
  importJobs,
  legacyTarget,
  ORIGINAL_TABLE,
  RENAMED_TABLE,
  serviceDefaults,
} from "../app/import/sources.ts";
import {
  candidatesFromCrontab,
  crontabScope,
  crontabSource,
  isSystemCrontab,
} from "../app/import/crontab_file.ts";
import {
  type Candidate,
  countStatuses,
  namedOnly,
  type Outcome,
  type PlanEntry,
  type Scope,
} from "../app/import/plan.ts";
import { describeTarget, secretsOf } from "../store/target.ts";
import { systemTimezone } from "../domain/time.ts";
import { addSecret, type CommandContext, writeErr } from "./context.ts";
import { command, either, group, repeated, switched, valued } from "./command.ts";
import { withServiceLine } from "./output.ts";
import type { DefaultZone } from "../app/zone.ts";
import { warnUsers } from "./user_warnings.ts";
import { usersWritten } from "../app/user_warnings.ts";

function entryLines(entry: PlanEntry): string[] {
  const head = `${entry.status.padEnd(13)}  ${entry.id}  (${entry.source})`;
  const details = entry.problem !== null ? [entry.problem] : [...entry.changes, ...entry.notes];
  return [head, ...details.map((d) => `    ${d.replaceAll("\n", "\n    ")}`)];
}

/**
 * The plan as people read it: each entry that is not the same as stored,
 * with its changes, notes or problem beneath, then the tally. `preview`
 * says how to write it, when nothing was written.
 */
export function planText(outcome: Outcome, what: string, preview: string | null): string {
  const counts = countStatuses(outcome.entries);
  const writes = counts.new + counts.differs + counts.remove;
  const tally = [
    `${counts.new} new`,
    `${counts.same} same`,
    `${counts.differs} differ${counts.differs === 1 ? "s" : ""}`,
    ...(counts.kept > 0 ? [`${counts.kept} kept as stored (--update takes the source's)`] : []),
    ...(counts.remove > 0 ? [`${counts.remove} to remove`] : []),
    ...(counts.stale > 0 ? [`${counts.stale} stale (still stored and firing)`] : []),
    ...(counts["cannot import"] > 0 ? [`${counts["cannot import"]} cannot be imported`] : []),
  ].join(", ");
  const outcomeLine = writes === 0
    ? "nothing to write"
    : preview !== null
    ? `nothing written: ${preview}`
    : `changed ${writes} job${writes === 1 ? "" : "s"} (reload marker ${outcome.markerId})`;
  if (outcome.entries.length === 0) return `${what}: no jobs found; ${outcomeLine}`;
  return [
    `${what}:`,
    ...outcome.entries.filter((e) => e.status !== "same").flatMap(entryLines),
    `${tally}; ${outcomeLine}`,
  ].join("\n");
}

/** The plan for --json: every entry with its job, and the counts. */
export function planData(
  outcome: Outcome,
  applied: boolean,
  source: string,
): Record<string, unknown> {
  return {
    source,
    applied: applied && outcome.markerId !== null,
    marker_id: outcome.markerId,
    counts: countStatuses(outcome.entries),
    entries: outcome.entries.map((e) => ({
      status: e.status,
      id: e.id,
      source: e.source,
      changes: e.changes,
      notes: e.notes,
      problem: e.problem,
      job: e.job,
    })),
  };
}

/**
 * Read the source with the zone jobs without one fire in (as `job list`
 * resolves it: configured, else a live service's, else this machine's),
 * then preview or apply its plan.
 */
async function report(
  ctx: CommandContext,
  read: (zone: DefaultZone) => Promise<Candidate[]> | Candidate[],
  apply: boolean,
  what: string,
  scope: Scope,
  ignored: readonly string[] = [],
): Promise<void> {
  // A plan writes nothing, not even the tables of a new database: as `apply --dry-run`, it plans
  // against no jobs and says the database is not there yet. --apply creates it.
  const { outcome, live, missing } = apply
    ? await ctx.withStore(async (store) => {
      const live = await ctx.liveServices(store);
      const candidates = await read(ctx.zoneAmong(live));
      return { outcome: await importJobs(store, candidates, true, scope), live, missing: null };
    }, { creates: true })
    : await ctx.withDatabase(async (store, missing) => {
      const live = store === null ? [] : await ctx.liveServices(store);
      const candidates = await read(ctx.zoneAmong(live));
      const check = store === null
        ? undefined
        : ctx.planCheck(store, "a plan: nothing written, and --apply would be refused");
      return { outcome: await importJobs(store, candidates, false, scope, check), live, missing };
    });
  // A user the host cannot run jobs as is imported all the same: the service may run elsewhere.
  await warnUsers(
    usersWritten(outcome.entries),
    apply ? "imported all the same" : "--apply would import them all the same",
  );
  const preview = apply ? null : `run again with --apply to write them`;
  const plan = planText(outcome, what, preview) +
    (missing === null ? "" : `\n${missing.what} yet: --apply creates ${missing.it}`);
  ctx.print(
    () => withServiceLine(plan, outcome.markerId, live, ctx.databaseName),
    {
      ...planData(outcome, apply, what),
      database_exists: missing === null,
      live_services: live.map((n) => n.id),
    },
  );
  // A migration that left jobs behind must not pass for done in a script, but for those the
  // operator has seen to (--ignore): an @reboot line can never be imported.
  const unimported = outcome.entries.filter((e) => e.status === "cannot import");
  for (const id of ignored.filter((id) => !unimported.some((e) => e.id === id))) {
    writeErr(
      `jobsmanager: --ignore ${id}: no job of ${what} is listed as \`cannot import\` by that id`,
    );
  }
  const left = unimported.filter((e) => !ignored.includes(e.id)).length;
  if (apply && left > 0) {
    throw new RuntimeError(
      `${left} job${
        left === 1 ? "" : "s"
      } of ${what} could not be imported (listed as \`cannot import\`, with why): add ${
        left === 1 ? "it" : "them"
      } with \`jobsmanager job add\`, or fix the source and import again, or once seen to, \`--ignore ID\` each; the rest are imported`,
    );
  }
}

/**
 * A file's text (`-`: standard input). Text that is not UTF-8 is refused,
 * naming its first such line: decoded anyway, its bytes would become U+FFFD
 * in the commands stored.
 */
export async function readText(path: string): Promise<string> {
  let bytes: Uint8Array;
  try {
    bytes = path === "-"
      ? await new Response(Deno.stdin.readable).bytes()
      : await Deno.readFile(path);
  } catch (error) {
    throw new UsageError(`cannot read ${path}: ${(error as Error).message}`);
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    const lines = new TextDecoder("latin1").decode(bytes).split("\n");
    let line = 0;
    let from = 0;
    for (; line < lines.length; line++) {
      const to = from + lines[line].length;
      try {
        new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(from, to));
      } catch {
        break;
      }
      from = to + 1;
    }
    throw new UsageError(
      `${path === "-" ? "standard input" : path}:${
        line + 1
      }: is not UTF-8 text; convert it (e.g. \`iconv -f latin1 -t utf-8\`) and try again`,
    );
  }
}

const APPLY = switched("write the plan (one transaction, one reload marker)");
/** `--ignore`, `seen` saying what a job seen to is, in the words of the source. */
function ignore(seen: string) {
  return repeated(
    `a job listed as \`cannot import\` that you have seen to (${seen}): it no longer makes --apply exit 1 (repeatable)`,
    "id",
  );
}
const UPDATE = switched(
  "also change the jobs already stored to what the source says (default: they are kept, and listed as `kept` where the source differs)",
);

export function importCommand() {
  const apscheduler = command({
    brief: "import the original JobsManager's APScheduler job table",
    options: {
      table: valued(
        `the table (default: ${RENAMED_TABLE}, or ${ORIGINAL_TABLE} with --from-database)`,
        "name",
      ),
      fromDatabase: valued(
        "read it from this database (mysql://… or sqlite:PATH) instead of jobsmanager's",
        "url",
      ),
      apply: APPLY,
      update: UPDATE,
      ignore: ignore(
        "a row whose trigger has no cron schedule, added by hand with `jobsmanager job add`",
      ),
    },
    action: async (ctx, opts) => {
      const table = opts.table ??
        (opts.fromDatabase === undefined ? RENAMED_TABLE : ORIGINAL_TABLE);
      const target = opts.fromDatabase === undefined
        ? ctx.target
        : legacyTarget(opts.fromDatabase, table);
      secretsOf(target).forEach(addSecret);
      await report(
        ctx,
        (zone) =>
          apschedulerCandidates(
            { target, table },
            serviceDefaults(ctx.config.settings, zone),
            Date.now(),
          ),
        opts.apply === true,
        `table ${table} in ${describeTarget(target)}`,
        namedOnly(opts.update === true),
        opts.ignore,
      );
    },
  });

  const crontab = command({
    brief: "import a crontab: a user crontab, /etc/crontab or an /etc/cron.d file",
    args: [{ name: "file", brief: "the crontab file, or - for standard input" }],
    options: {
      system: either(
        "lines have a user column (default for /etc/crontab and /etc/cron.d/*); --no-system: they have none (default for other files)",
      ),
      name: valued(
        "prefix of the generated ids (default: the file's name; required for standard input or a pipe): give each crontab its own, or one's jobs replace another's",
        "name",
      ),
      prune: switched(
        "also remove the stored jobs with this crontab's id prefix (NAME.) that no line makes any more",
      ),
      user: valued(
        "the user a user crontab's lines run as, as cron ran them: its owner (default: none, the service's own user, root under a service run as root); refused with a system crontab, whose lines name theirs",
        "name",
      ),
      apply: APPLY,
      update: UPDATE,
      ignore: ignore("an @reboot line started by a systemd unit"),
    },
    action: async (ctx, opts, file: string) => {
      const text = await readText(file);
      // Where the file really is: `./x` in /etc/cron.d, or a link to it, is read as cron reads it.
      const system = opts.system ??
        (file !== "-" && [file, await realPath(file)].some(isSystemCrontab));
      const isFile = file !== "-" && (await Deno.stat(file)).isFile;
      const source = crontabSource(file, text, system, opts.name, isFile, opts.user);
      await report(
        ctx,
        (zone) =>
          candidatesFromCrontab(source, { system: systemTimezone(), service: zone }, Date.now()),
        opts.apply === true,
        `crontab ${file === "-" ? "(stdin)" : file}`,
        crontabScope(source, opts.prune === true, opts.update === true),
        opts.ignore,
      );
    },
  });

  return group(
    "bring jobs in from the original JobsManager or a crontab (prints the plan; --apply writes it)",
    { apscheduler, crontab },
  );
}

/** Where `path` leads, absolute; itself where that is no file (a pipe: `<(crontab -l)`, /dev/stdin). */
async function realPath(path: string): Promise<string> {
  try {
    return await Deno.realPath(path);
  } catch {
    return path;
  }
}
