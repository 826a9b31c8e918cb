/**
 * `jobsmanager job …`: define, inspect and change jobs. The flags become
 * the input of a use case in `app/jobs.ts`; its result becomes text or JSON.
 */
import { Command } from "commander";
import { UsageError } from "../errors.ts";
import {
  buildJob,
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
  removeJob,
  setEnabled,
  showJob,
  type UpcomingFires,
  upcomingFires,
  updateJob,
} from "../app/jobs.ts";
import { readableSchedule } from "../cron/fields.ts";
import { type CommandContext, type ContextOf, outputWidth } from "./context.ts";
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

/** The most fires `job show -n` and `job next -n` print. */
const MAX_FIRES = 1000;

const collect = (value: string, previous: string[] = []) => [...previous, value];

function flagOf(field: FieldName): string {
  return field.replaceAll("_", "-");
}

/** The schedule options: `--cron`, or the six fields. */
function addScheduleOptions(cmd: Command): Command {
  cmd.option(
    "--cron <expr>",
    "crontab schedule: 'm h dom mon dow' or with seconds first, or @daily …",
  );
  for (const field of FIELD_NAMES) {
    cmd.option(`--${flagOf(field)} <expr>`, `schedule field ${field} (APScheduler cron syntax)`);
  }
  return cmd;
}

const TIMEZONE_HELP = "IANA time zone of the schedule (default: the service's)";

/** The options `job add` and `job update` share. */
function addJobOptions(cmd: Command, forUpdate: boolean): Command {
  cmd.option("--command <cmd>", "shell command, run with /bin/sh -c");
  addScheduleOptions(cmd)
    .option("--timeout <seconds>", "kill the run after this many seconds; 0 = never (default 60)")
    .option("--timezone <tz>", TIMEZONE_HELP)
    .option("--max-instances <n>", "concurrent runs of this job (default: the service's)")
    .option("--misfire-grace-time <seconds>", "how late a fire may start (default: the service's)")
    .option("--coalesce", "run several late fires once")
    .option("--no-coalesce", "run every late fire within the grace time")
    .option("--env <NAME=VALUE>", "environment variable for the command (repeatable)", collect)
    .option("--cwd <dir>", "absolute working directory for the command")
    .option("--description <text>", "free text shown by job show")
    .option("--disabled", "store the job without scheduling it");
  // Notifications (issue 13): '' sets one back to the service's notify.* default.
  cmd
    .option("--on-failure <cmd>", "shell command run when a run fails (the run as JSON on stdin)")
    .option("--on-failure-url <url>", "URL POSTed the run as JSON when a run fails")
    .option("--on-recovery <cmd>", "shell command run on the first success after a failure")
    .option("--on-recovery-url <url>", "URL POSTed on the first success after a failure")
    .option("--on-success <cmd>", "shell command run after every successful run")
    .option("--on-success-url <url>", "URL POSTed after every successful run")
    .option(
      "--alert-after <duration>",
      "run on_failure (status silent) when no run succeeded for this long: 90s, 2h, 1d; '' = never",
    );
  if (forUpdate) {
    cmd
      .option("--enabled", "schedule the job again")
      .option("--unset-env <NAME>", "drop an environment variable (repeatable)", collect);
  }
  addRetryOptions(cmd, forUpdate);
  return cmd;
}

function addRetryOptions(cmd: Command, forUpdate: boolean): Command {
  cmd
    .option("--retries <n>", "run a failed run again up to n times (default 0)")
    .option(
      "--retry-delay <seconds>",
      "wait before the first retry; doubles each time, plus up to 10% jitter (default 10)",
    )
    .option("--retry-max-delay <seconds>", "no retry waits longer (default 3600)")
    .option(
      "--retry-on <outcomes>",
      "outcomes that retry, comma-separated: failed,timeout,error,lost,killed (default failed,timeout,error,lost)",
    )
    .option("--retry-overlap", "keep a pending retry when the next scheduled fire comes")
    .option(
      "--no-retry-overlap",
      "drop a pending retry when the next scheduled fire comes (default)",
    )
    .option(
      "--after <job[:outcome]>",
      `run when a run of JOB ends: success (default), failure or always${
        forUpdate ? "; '' drops the link" : "; with no schedule, only then"
      }`,
    );
  if (forUpdate) cmd.option("--no-schedule", "drop the schedule: the job runs only --after JOB");
  return cmd;
}

// deno-lint-ignore no-explicit-any
function retryOptionsOf(opts: Record<string, any>): JobOptions {
  return {
    retries: opts.retries,
    retry_delay: opts.retryDelay,
    retry_max_delay: opts.retryMaxDelay,
    retry_on: opts.retryOn,
    retry_overlap: opts.retryOverlap,
    after: opts.after,
    no_schedule: opts.schedule === false ? true : undefined,
  };
}

/** The schedule fields given as options (`--day-of-week` → day_of_week). */
function scheduleOf(opts: Record<string, string | undefined>): Partial<Record<FieldName, string>> {
  const schedule: Partial<Record<FieldName, string>> = {};
  for (const field of FIELD_NAMES) {
    const key = field.replace(/_(\w)/g, (_, c: string) => c.toUpperCase());
    if (opts[key] !== undefined) schedule[field] = opts[key];
  }
  return schedule;
}

// deno-lint-ignore no-explicit-any
function toJobOptions(opts: Record<string, any>): JobOptions {
  const schedule = scheduleOf(opts);
  if (opts.enabled && opts.disabled) {
    throw new UsageError("enabled: give --enabled or --disabled, not both");
  }
  return {
    command: opts.command,
    cron: opts.cron,
    schedule,
    timeout: opts.timeout,
    timezone: opts.timezone,
    enabled: opts.disabled ? false : opts.enabled ? true : undefined,
    max_instances: opts.maxInstances,
    coalesce: opts.coalesce,
    misfire_grace_time: opts.misfireGraceTime,
    env: opts.env,
    unset_env: opts.unsetEnv,
    cwd: opts.cwd,
    description: opts.description,
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

/** A job write and the services live after it, which apply it. */
interface Written {
  change: JobChange;
  live: Node[];
}

async function writeJob(
  ctx: CommandContext,
  write: (store: Store) => Promise<JobChange>,
): Promise<Written> {
  return await ctx.withStore(async (store) => ({
    change: await write(store),
    live: await ctx.liveServices(store),
  }));
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
    const stored = ctx.databaseExists() && await ctx.withStore((store) => store.getJob(id));
    if (!stored) throw error;
  }
}

export function jobCommand(contextOf: ContextOf): Command {
  const job = new Command("job").description("define, inspect and change jobs");

  addJobOptions(
    job.command("add").argument("<id>", "job id: 1-191 characters of A-Z a-z 0-9 . _ : -")
      .description("add a job")
      .option("--replace", "replace the job if the id exists"),
    false,
  ).action(async (id: string, opts, cmd: Command) => {
    const ctx = contextOf(cmd);
    // Built, and so validated, before the database is touched.
    const built = buildJob(id, toJobOptions(opts), null, Date.now());
    let zone: DefaultZone | undefined;
    const written = await writeJob(ctx, async (store) => {
      zone = await ctx.defaultZone(store);
      return await addJob(store, built, { replace: opts.replace === true });
    });
    const { change } = written;
    const after = change.after!;
    const next = nextFires(after, zone!.name, new Date(), 1);
    printWrite(
      ctx,
      written,
      `${change.before ? "replaced" : "added"} job '${id}' (reload marker ${
        change.markerId ?? "-"
      })\n` +
        `next fire${zoneNote(after, zone!)}${after.enabled ? "" : " (once enabled)"}:\n${
          hasSchedule(after)
            ? fireLines(next, zoneOf(after, zone!.name))
            : `  ${printable(followsText(after))}`
        }`,
      { next: next.map((d) => d.toISOString()) },
    );
  });

  addJobOptions(
    job.command("update").argument("<id>").description("change the given options of a job"),
    true,
  ).action(async (id: string, opts, cmd: Command) => {
    const ctx = contextOf(cmd);
    validateId(id);
    const options = toJobOptions(opts);
    const written = await writeJob(ctx, (store) => updateJob(store, id, options, Date.now()));
    printWrite(
      ctx,
      written,
      written.change.markerId === null
        ? `job '${id}' unchanged (the options given match it)`
        : `updated job '${id}' (reload marker ${written.change.markerId})`,
    );
  });

  job.command("remove").alias("rm").argument("<id>").description("remove a job")
    .action(async (id: string, _opts, cmd: Command) => {
      const ctx = contextOf(cmd);
      await storedJobId(ctx, id);
      const written = await writeJob(ctx, (store) => removeJob(store, id));
      printWrite(ctx, written, `removed job '${id}' (reload marker ${written.change.markerId})`);
    });

  for (const [name, enabled] of [["enable", true], ["disable", false]] as const) {
    job.command(name).argument("<id>").description(`${name} a job`)
      .action(async (id: string, _opts, cmd: Command) => {
        const ctx = contextOf(cmd);
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
      });
  }

  job.command("list").alias("ls").description("list all jobs with their next fire")
    .action(async (_opts, cmd: Command) => {
      const ctx = contextOf(cmd);
      const { zone, listings } = await ctx.withStore(async (store) => {
        const zone = await ctx.defaultZone(store);
        return {
          zone,
          listings: await listJobs(store, { defaultZone: zone.name, now: Date.now() }),
        };
      });
      ctx.print(
        () => jobsTable(listings, zone, outputWidth()),
        listings.map(({ job, next }) => ({ ...job, next })),
      );
    });

  job.command("show").argument("<id>").description("show a job and its next fires")
    .option("-n, --count <n>", "how many next fires", "5")
    .action(async (id: string, opts, cmd: Command) => {
      const ctx = contextOf(cmd);
      await storedJobId(ctx, id);
      const count = parseCount(opts.count, "count", MAX_FIRES);
      const { zone, details } = await ctx.withStore(async (store) => {
        const zone = await ctx.defaultZone(store);
        const details = await showJob(store, id, {
          count,
          defaultZone: zone.name,
          now: Date.now(),
        });
        return { zone, details };
      });
      ctx.print(
        () => jobDetails(details, zone, outputWidth()),
        { ...details.job, next: details.next.map((d) => d.toISOString()), runs: details.runs },
      );
    });

  addScheduleOptions(
    job.command("next").argument("[id]", "a job; or leave it out and give a schedule to preview")
      .description("print the next fire times of a job, or of a schedule before it is saved"),
  )
    .option("--timezone <tz>", `with a schedule: ${TIMEZONE_HELP}`)
    .option("-n, --count <n>", "how many", "10")
    .option(
      "--from <time>",
      "start after this instant (ISO 8601; without offset: in the job's zone)",
    )
    .action(async (id: string | undefined, opts, cmd: Command) => {
      const ctx = contextOf(cmd);
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
      const count = parseCount(opts.count, "count", MAX_FIRES);
      const query = (defaultZone: DefaultZone) => ({
        count,
        from: opts.from,
        defaultZone: defaultZone.name,
        now: Date.now(),
      });
      let defaultZone: DefaultZone;
      let fires: UpcomingFires;
      if (id === undefined) {
        // A preview makes no database: without one there is no service to ask.
        defaultZone = opts.timezone === undefined && ctx.databaseExists()
          ? await ctx.withStore((store) => ctx.defaultZone(store))
          : await ctx.defaultZone(null);
        fires = previewFires(
          { cron: opts.cron, schedule, timezone: opts.timezone },
          query(defaultZone),
        );
      } else {
        ({ defaultZone, fires } = await ctx.withStore(async (store) => {
          const defaultZone = await ctx.defaultZone(store);
          return { defaultZone, fires: await upcomingFires(store, id, query(defaultZone)) };
        }));
      }
      const { job, zone, from, next } = fires;
      const what = id === undefined ? `schedule '${readableSchedule(job)}'` : `'${id}'`;
      const zoneText = job.timezone ?? defaultZoneText(defaultZone);
      ctx.print(
        () =>
          `next ${count} fires of ${what} after ${from.toISOString()} (${zoneText}, then UTC):\n${
            hasSchedule(job) ? fireLines(next, zone) : `  ${printable(followsText(job))}`
          }`,
        {
          id: id ?? null,
          schedule: readableSchedule(job),
          timezone: zone,
          timezone_source: job.timezone === null ? defaultZone.source : "job",
          from,
          next,
        },
      );
    });

  job.addCommand(jobRunCommand(contextOf));
  return job;
}
