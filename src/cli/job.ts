/**
 * `jobsmanager job …`: define, inspect and change jobs. The flags become
 * the input of a use case in `app/jobs.ts`; its result becomes text or JSON.
 */
import { UsageError, ValidationError } from "../errors.ts";
import {
  buildJob,
  checkUpdate,
  hasSchedule,
  type JobOptions,
  nextFires,
  validateId,
  zoneOf,
} from "../domain/job.ts";
import { FIELD_NAMES, type FieldName } from "../cron/grammar.ts";
import type { JobChange, Store } from "../store/store.ts";
import type { Node } from "../domain/node.ts";
import {
  addJob,
  listJobs,
  previewFires,
  previewJob,
  removeJob,
  retryOnUnused,
  setEnabled,
  showJob,
  storedJobId as storedId,
  type UpcomingFires,
  upcomingFires,
  updateJob,
} from "../app/jobs.ts";
import { readableSchedule } from "../cron/fields.ts";
import { type CommandContext, outputWidth, writeErr } from "./context.ts";
import {
  command,
  either,
  type Flags,
  group,
  type Options,
  repeated,
  switched,
  valued,
} from "./command.ts";
import { jobRunCommand } from "./job_run.ts";
import {
  defaultZoneText,
  fireLines,
  followsText,
  jobDetails,
  jobsTable,
  printable,
  withServiceLine,
  zoneNote,
} from "./output.ts";
import type { DefaultZone } from "../app/zone.ts";
import { parseCount } from "../domain/input.ts";
import { idWord } from "../domain/shell.ts";
import { warnUserGiven } from "./user_warnings.ts";
import { CLI_NAMES } from "./input_names.ts";

/** The most fires `job show -n` and `job next -n` print. */
const MAX_FIRES = 1000;

/** A schedule field's option, as stricli keys it: `day_of_week` → `dayOfWeek` (typed `--day-of-week`). */
function optionOf(field: FieldName): string {
  return field.replace(/_(\w)/g, (_, c: string) => c.toUpperCase());
}

/** The schedule options: `--cron`, or the six fields. */
function scheduleOptions(): Flags {
  const flags: Flags = {
    cron: valued("crontab schedule: 'm h dom mon dow' or with seconds first, or @daily …", "expr"),
  };
  for (const field of FIELD_NAMES) {
    flags[optionOf(field)] = valued(`schedule field ${field} (APScheduler cron syntax)`, "expr");
  }
  return flags;
}

const TIMEZONE_HELP = "IANA time zone of the schedule (default: the service's)";

/** The options `job add` and `job update` share. */
function jobOptions(forUpdate: boolean): Flags {
  return {
    command: valued("shell command, run with /bin/sh -c", "cmd"),
    ...scheduleOptions(),
    timeout: valued("kill the run after this many seconds; 0 = never (default 60)", "seconds"),
    timezone: valued(TIMEZONE_HELP, "tz"),
    maxInstances: valued("concurrent runs of this job (default: the service's)", "n"),
    misfireGraceTime: valued(
      "how late a fire may start, in whole seconds; 0 counts as 0.25 s (default: the service's)",
      "seconds",
    ),
    coalesce: either("run several late fires once (--no-coalesce: every late fire within grace)"),
    env: repeated("environment variable for the command (repeatable)", "NAME=VALUE"),
    cwd: valued("absolute working directory for the command", "dir"),
    description: valued("free text shown by job show", "text"),
    user: valued(
      "run the command as this user (name or uid), as cron's user column does; needs serve run as root; '' = the service's own user",
      "name",
    ),
    disabled: switched("store the job without scheduling it"),
    // Notifications (issue 13): '' sets one back to the service's notify.* default.
    onFailure: valued("shell command run when a run fails (the run as JSON on stdin)", "cmd"),
    onFailureUrl: valued("URL POSTed the run as JSON when a run fails", "url"),
    onRecovery: valued("shell command run on the first success after a failure", "cmd"),
    onRecoveryUrl: valued("URL POSTed on the first success after a failure", "url"),
    onSuccess: valued("shell command run after every successful run", "cmd"),
    onSuccessUrl: valued("URL POSTed after every successful run", "url"),
    alertAfter: valued(
      "run on_failure (status silent) when no run succeeded for this long: 90s, 2h, 1d; '' = never",
      "duration",
    ),
    ...(forUpdate
      ? {
        enabled: switched("schedule the job again"),
        unsetEnv: repeated("drop an environment variable (repeatable)", "NAME"),
        serviceCoalesce: switched(
          "follow the service's jobsmanager.coalesce again (undoes --coalesce or --no-coalesce)",
        ),
      }
      : {}),
    ...retryOptions(forUpdate),
  };
}

function retryOptions(forUpdate: boolean): Flags {
  return {
    retries: valued("run a failed run again up to n times (default 0)", "n"),
    retryDelay: valued(
      "wait before the first retry; doubles each time, plus up to 10% jitter (default 10)",
      "seconds",
    ),
    retryMaxDelay: valued("no retry waits longer (default 3600)", "seconds"),
    retryOn: valued(
      "outcomes that retry, comma-separated: failed,timeout,error,lost,killed (default failed,timeout,error,lost)",
      "outcomes",
    ),
    retryOverlap: either(
      "keep a pending retry when the next scheduled fire comes (--no-retry-overlap: drop it, the default)",
    ),
    after: valued(
      `run when a run of JOB ends: success (default), failure or always${
        forUpdate ? "; '' drops the link" : "; with no schedule, only then"
      }`,
      "job[:outcome]",
    ),
    ...(forUpdate
      ? { noSchedule: switched("drop the schedule: the job runs only --after JOB") }
      : {}),
  };
}

function retryOptionsOf(opts: Options): JobOptions {
  return {
    retries: opts.retries,
    retry_delay: opts.retryDelay,
    retry_max_delay: opts.retryMaxDelay,
    retry_on: opts.retryOn,
    retry_overlap: opts.retryOverlap,
    after: opts.after,
    no_schedule: opts.noSchedule,
  };
}

/** The schedule fields given as options (`--day-of-week` → day_of_week). */
function scheduleOf(opts: Options): Partial<Record<FieldName, string>> {
  const schedule: Partial<Record<FieldName, string>> = {};
  for (const field of FIELD_NAMES) {
    if (opts[optionOf(field)] !== undefined) schedule[field] = opts[optionOf(field)];
  }
  return schedule;
}

function toJobOptions(opts: Options): JobOptions {
  const schedule = scheduleOf(opts);
  if (opts.enabled && opts.disabled) {
    throw new UsageError("enabled: give --enabled or --disabled, not both");
  }
  if (opts.serviceCoalesce && opts.coalesce !== undefined) {
    throw new UsageError(
      `coalesce: give --${opts.coalesce ? "" : "no-"}coalesce or --service-coalesce, not both`,
    );
  }
  return {
    command: opts.command,
    cron: opts.cron,
    schedule,
    timeout: opts.timeout,
    timezone: opts.timezone,
    enabled: opts.disabled ? false : opts.enabled ? true : undefined,
    max_instances: opts.maxInstances,
    coalesce: opts.serviceCoalesce ? null : opts.coalesce,
    misfire_grace_time: opts.misfireGraceTime,
    env: opts.env,
    unset_env: opts.unsetEnv,
    cwd: opts.cwd,
    description: opts.description,
    user: opts.user,
    ...retryOptionsOf(opts),
    // Notifications (issue 13).
    on_failure: opts.onFailure,
    on_failure_url: opts.onFailureUrl,
    on_recovery: opts.onRecovery,
    on_recovery_url: opts.onRecoveryUrl,
    on_success: opts.onSuccess,
    on_success_url: opts.onSuccessUrl,
    alert_after: opts.alertAfter,
  };
}

/** A job field's error, carrying the option it was given by as typed (`--max-instances`). */
class OptionValidationError extends ValidationError {
  override readonly option: string;

  constructor(error: ValidationError, option: string) {
    super(error.field, error.message);
    this.option = option;
    this.stack = error.stack;
  }
}

/**
 * Run `fn`, a job's options checked or written; a job field's error of
 * one given as an option (`timeout` of `--timeout abc`) carries that
 * option, as typed, as an option's own value errors do: a script reads
 * `option` and `field` alike. A field not given as an option (a row
 * broken by hand that `job update` read, a schedule missing) has none.
 */
async function optionsOfFields<T>(opts: Options, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (!(error instanceof ValidationError) || error.option !== undefined) throw error;
    const key = error.field.replace(/_(\w)/g, (_, c: string) => c.toUpperCase());
    const given = opts[key];
    if (!Object.hasOwn(opts, key) || given === undefined || given === false) throw error;
    if (Array.isArray(given) && given.length === 0) throw error;
    throw new OptionValidationError(error, `--${error.field.replaceAll("_", "-")}`);
  }
}

/** A job write and the services live after it, which apply it. */
interface Written<C extends JobChange = JobChange> {
  change: C;
  live: Node[];
}

/**
 * The live services are read before the write (one read serves `write` and
 * the line that names who applies it): a service that starts in between
 * loads every job at its start anyway.
 */
async function writeJob<C extends JobChange>(
  ctx: CommandContext,
  write: (store: Store, live: Node[]) => Promise<C>,
  options: { creates?: boolean } = {},
): Promise<Written<C>> {
  return await ctx.withStore(async (store) => {
    const live = await ctx.liveServices(store);
    return { change: await write(store, live), live };
  }, options);
}

/** Print what a write did: `text`, then who applies it; --json: the same as fields. */
function printWrite(
  ctx: CommandContext,
  { change, live }: Written,
  text: string,
  extra: Record<string, unknown> = {},
): void {
  ctx.print(
    () => withServiceLine(text, change.markerId, live, ctx.databaseName),
    {
      job: change.after ?? change.before,
      marker_id: change.markerId,
      ...extra,
      live_services: live.map((n) => n.id),
    },
  );
}

/**
 * Check the id of a command on a stored job (show, remove, enable,
 * disable): a valid one, or one a row written by hand in SQL holds, which
 * the service skips but these commands must still reach. An id neither
 * valid nor stored fails as invalid; a valid one is checked before the
 * database is opened, as every id is.
 */
async function storedJobId(ctx: CommandContext, id: string): Promise<void> {
  try {
    validateId(id);
  } catch (error) {
    if (!ctx.databaseExists()) throw error;
    await ctx.withStore((store) => storedId(store, id));
  }
}

const ID = { name: "id", brief: "job id: 1-191 characters of A-Z a-z 0-9 . _ : -" };

/** `job enable` or `job disable`. */
function enableCommand(name: "enable" | "disable", enabled: boolean) {
  return command({
    brief: `${name} a job`,
    args: [ID],
    action: async (ctx, _opts, id: string) => {
      await storedJobId(ctx, id);
      const written = await writeJob(
        ctx,
        (store) => setEnabled(store, id, enabled, Date.now()),
      );
      printWrite(
        ctx,
        written,
        written.change.markerId === null
          ? `job '${id}' is already ${name}d`
          : `${name}d job '${id}' (reload marker ${written.change.markerId})`,
      );
    },
  });
}

function warnRetryOnAlone(retryOn: unknown, change: JobChange): void {
  const warning = retryOnUnused(retryOn !== undefined, change.after, CLI_NAMES, change.before);
  if (warning !== null) writeErr(`jobsmanager: warning: ${warning}`);
}

export function jobCommand() {
  const add = command({
    brief: "add a job",
    args: [ID],
    options: { ...jobOptions(false), replace: switched("replace the job if the id exists") },
    action: (ctx, opts, id: string) =>
      optionsOfFields(opts, async () => {
        // Built, and so validated, before the database is touched.
        const built = buildJob(id, toJobOptions(opts), null, Date.now(), CLI_NAMES);
        let zone: DefaultZone | undefined;
        const written = await writeJob(ctx, async (store, live) => {
          zone = ctx.zoneAmong(live);
          return await addJob(store, built, { replace: opts.replace === true, names: CLI_NAMES });
        }, { creates: true });
        const { change } = written;
        const after = change.after!;
        warnRetryOnAlone(opts.retryOn, change);
        await warnUserGiven(change);
        const next = nextFires(after, zone!.name, new Date(), 1);
        printWrite(
          ctx,
          written,
          // --replace of the same job writes nothing, as `job update` of it.
          (change.markerId === null
            ? `job '${id}' unchanged (the options given match it)\n`
            : `${
              change.before ? "replaced" : "added"
            } job '${id}' (reload marker ${change.markerId})\n`) +
            `next fire${zoneNote(after, zone!)}${after.enabled ? "" : " (once enabled)"}:\n${
              hasSchedule(after)
                ? fireLines(next, zoneOf(after, zone!.name))
                : `  ${printable(followsText(after))}`
            }`,
          { next: next.map((d) => d.toISOString()) },
        );
      }),
  });

  const update = command({
    brief: "change the given options of a job",
    args: [ID],
    options: jobOptions(true),
    action: (ctx, opts, id: string) =>
      optionsOfFields(opts, async () => {
        const options = toJobOptions(opts);
        // Checked, as `job add` builds its job, before the database is touched.
        checkUpdate(id, options, Date.now(), CLI_NAMES);
        const written = await writeJob(
          ctx,
          (store) => updateJob(store, id, options, Date.now(), CLI_NAMES),
        );
        warnRetryOnAlone(opts.retryOn, written.change);
        await warnUserGiven(written.change);
        printWrite(
          ctx,
          written,
          written.change.markerId === null
            ? `job '${id}' unchanged (the options given match it)`
            : `updated job '${id}' (reload marker ${written.change.markerId})`,
        );
      }),
  });

  const remove = command({
    brief: "remove a job",
    args: [ID],
    action: async (ctx, _opts, id: string) => {
      await storedJobId(ctx, id);
      const written = await writeJob(ctx, (store) => removeJob(store, id));
      const { followers } = written.change;
      printWrite(
        ctx,
        written,
        [
          `removed job '${id}' (reload marker ${written.change.markerId})`,
          ...followers.map((f) =>
            printable(
              `${f} follows ${id}: it will run only by hand or on its own schedule until relinked: jobsmanager job update --after … ${
                idWord(f)
              }`,
            )
          ),
        ].join("\n"),
        { followers },
      );
    },
  });

  const list = command({
    brief: "list all jobs with their next fire",
    action: async (ctx) => {
      const { zone, listings } = await ctx.withStore(async (store) => {
        const zone = await ctx.defaultZone(store);
        return {
          zone,
          listings: await listJobs(store, {
            defaultZone: zone.name,
            now: Date.now(),
            names: CLI_NAMES,
          }),
        };
      });
      ctx.print(
        () => jobsTable(listings, zone, outputWidth()),
        listings.map(({ job, zone, next, invalid, link }) => ({
          ...job,
          zone,
          next,
          invalid,
          after_missing: link !== null,
        })),
      );
    },
  });

  const show = command({
    brief: "show a job and its next fires",
    args: [ID],
    options: { count: valued("how many next fires", "n", "5") },
    aliases: { n: "count" },
    action: async (ctx, opts, id: string) => {
      await storedJobId(ctx, id);
      const count = parseCount(opts.count, "--count", MAX_FIRES);
      const { zone, details } = await ctx.withStore(async (store) => {
        const zone = await ctx.defaultZone(store);
        const details = await showJob(store, id, {
          count,
          defaultZone: zone.name,
          now: Date.now(),
          names: CLI_NAMES,
        });
        return { zone, details };
      });
      ctx.print(
        () => jobDetails(details, zone, outputWidth()),
        {
          ...details.job,
          zone: details.zone,
          next: details.next.map((d) => d.toISOString()),
          invalid: details.invalid,
          after_missing: details.link !== null,
          runs: details.runs,
        },
      );
    },
  });

  const next = command({
    brief: "print the next fire times of a job, or of a schedule before it is saved",
    args: [{
      name: "id",
      brief: "a job; or leave it out and give a schedule to preview",
      optional: true,
    }],
    options: {
      ...scheduleOptions(),
      timezone: valued(`with a schedule: ${TIMEZONE_HELP}`, "tz"),
      count: valued("how many", "n", "10"),
      from: valued(
        "start after this instant (ISO 8601; without offset: in the job's zone)",
        "time",
      ),
    },
    aliases: { n: "count" },
    action: async (ctx, opts, id: string | undefined) => {
      const schedule = scheduleOf(opts);
      const preview = opts.cron !== undefined || Object.keys(schedule).length > 0 ||
        opts.timezone !== undefined;
      if (id !== undefined && preview) {
        throw new UsageError(
          "job next: give a job id or a schedule (--cron, --minute, …, --timezone), not both",
        );
      }
      if (id === undefined && !preview) {
        throw new UsageError(
          "job next: give a job id, or a schedule to preview (--cron '…' or --minute … --hour …)",
        );
      }
      if (id !== undefined) validateId(id);
      const count = parseCount(opts.count, "--count", MAX_FIRES);
      const query = (defaultZone: DefaultZone) => ({
        count,
        from: opts.from,
        defaultZone: defaultZone.name,
        now: Date.now(),
        names: CLI_NAMES,
      });
      let defaultZone: DefaultZone;
      let fires: UpcomingFires;
      if (id === undefined) {
        const job = previewJob(
          { cron: opts.cron, schedule, timezone: opts.timezone },
          Date.now(),
          CLI_NAMES,
        );
        // A preview makes no database: without one (or its tables) there is no service to ask.
        defaultZone = opts.timezone === undefined
          ? await ctx.withDatabase((store) => ctx.defaultZone(store))
          : await ctx.defaultZone(null);
        fires = previewFires(job, query(defaultZone));
      } else {
        ({ defaultZone, fires } = await ctx.withStore(async (store) => {
          const defaultZone = await ctx.defaultZone(store);
          return { defaultZone, fires: await upcomingFires(store, id, query(defaultZone)) };
        }));
      }
      const { job, zone, from, next } = fires;
      const what = id === undefined ? `schedule '${readableSchedule(job)}'` : `'${id}'`;
      const zoneText = job.timezone ?? defaultZoneText(defaultZone);
      // A disabled job's fires are those it would have, as `job add --disabled` says them.
      const once = job.enabled ? "" : " (once enabled)";
      ctx.print(
        () =>
          `next ${count} fire${
            count === 1 ? "" : "s"
          } of ${what}${once} after ${from.toISOString()} (${zoneText}, then UTC):\n${
            hasSchedule(job) ? fireLines(next, zone) : `  ${printable(followsText(job))}`
          }`,
        {
          id: id ?? null,
          // A schedule previewed is of no job, which is enabled when added.
          enabled: job.enabled,
          // A job that runs only after another has no schedule: what it follows instead.
          schedule: hasSchedule(job) ? readableSchedule(job) : null,
          after_job: job.after_job,
          after_outcome: job.after_outcome,
          timezone: zone,
          timezone_source: job.timezone === null ? defaultZone.source : "job",
          from,
          next,
        },
      );
    },
  });

  return group("define, inspect and change jobs", {
    add,
    update,
    remove,
    enable: enableCommand("enable", true),
    disable: enableCommand("disable", false),
    list,
    show,
    next,
    run: jobRunCommand(),
  }, { aliases: { rm: "remove", ls: "list" } });
}
