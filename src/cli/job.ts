/**
 * `jobsmanager job …`: define, inspect and change jobs. The flags become
 * the input of a use case in `app/jobs.ts`; its result becomes text or JSON.
 */
import { Command } from "commander";
import { UsageError } from "../errors.ts";
import { buildJob, type JobOptions, nextFires, validateId, zoneOf } from "../domain/job.ts";
import { FIELD_NAMES, type FieldName } from "../cron/grammar.ts";
import type { JobChange } from "../store/store.ts";
import {
  addJob,
  listJobs,
  removeJob,
  setEnabled,
  showJob,
  upcomingFires,
  updateJob,
} from "../app/jobs.ts";
import type { ContextOf } from "./context.ts";
import { jobRunCommand } from "./job_run.ts";
import { fireLines, jobDetails, jobsTable } from "./output.ts";
import { parseCount } from "../domain/input.ts";

/** The most fires `job show -n` and `job next -n` print. */
const MAX_FIRES = 1000;

const collect = (value: string, previous: string[] = []) => [...previous, value];

function flagOf(field: FieldName): string {
  return field.replaceAll("_", "-");
}

/** The options `job add` and `job update` share. */
function addJobOptions(cmd: Command, forUpdate: boolean): Command {
  cmd
    .option("--command <cmd>", "shell command, run with /bin/sh -c")
    .option(
      "--cron <expr>",
      "crontab schedule: 'm h dom mon dow' or with seconds first, or @daily …",
    );
  for (const field of FIELD_NAMES) {
    cmd.option(`--${flagOf(field)} <expr>`, `schedule field ${field} (APScheduler cron syntax)`);
  }
  cmd
    .option("--timeout <seconds>", "kill the run after this many seconds; 0 = never (default 60)")
    .option("--timezone <tz>", "IANA time zone of the schedule (default: the service's)")
    .option("--max-instances <n>", "concurrent runs of this job (default: the service's)")
    .option("--misfire-grace-time <seconds>", "how late a fire may start (default: the service's)")
    .option("--coalesce", "run several late fires once")
    .option("--no-coalesce", "run every late fire within the grace time")
    .option("--env <NAME=VALUE>", "environment variable for the command (repeatable)", collect)
    .option("--cwd <dir>", "absolute working directory for the command")
    .option("--description <text>", "free text shown by job show")
    .option("--disabled", "store the job without scheduling it");
  if (forUpdate) {
    cmd
      .option("--enabled", "schedule the job again")
      .option("--unset-env <NAME>", "drop an environment variable (repeatable)", collect);
  }
  return cmd;
}

// deno-lint-ignore no-explicit-any
function toJobOptions(opts: Record<string, any>): JobOptions {
  const schedule: Partial<Record<FieldName, string>> = {};
  for (const field of FIELD_NAMES) {
    const key = field.replace(/_(\w)/g, (_, c: string) => c.toUpperCase());
    if (opts[key] !== undefined) schedule[field] = opts[key];
  }
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
  };
}

function changeSummary(change: JobChange): Record<string, unknown> {
  return { job: change.after ?? change.before, marker_id: change.markerId };
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
    const change = await ctx.withStore((store) =>
      addJob(store, built, { replace: opts.replace === true })
    );
    const after = change.after!;
    const next = nextFires(after, ctx.defaultZone, new Date(), 1);
    ctx.print(
      () =>
        `${change.before ? "replaced" : "added"} job '${id}' (reload marker ${
          change.markerId ?? "-"
        })\n` +
        `next fire${after.enabled ? "" : " (once enabled)"}:\n${
          fireLines(next, zoneOf(after, ctx.defaultZone))
        }`,
      { ...changeSummary(change), next: next.map((d) => d.toISOString()) },
    );
  });

  addJobOptions(
    job.command("update").argument("<id>").description("change the given options of a job"),
    true,
  ).action(async (id: string, opts, cmd: Command) => {
    const ctx = contextOf(cmd);
    validateId(id);
    const options = toJobOptions(opts);
    const change = await ctx.withStore((store) => updateJob(store, id, options, Date.now()));
    ctx.print(
      () =>
        change.markerId === null
          ? `job '${id}' unchanged (the options given match it)`
          : `updated job '${id}' (reload marker ${change.markerId})`,
      changeSummary(change),
    );
  });

  job.command("remove").alias("rm").argument("<id>").description("remove a job")
    .action(async (id: string, _opts, cmd: Command) => {
      const ctx = contextOf(cmd);
      validateId(id);
      const change = await ctx.withStore((store) => removeJob(store, id));
      ctx.print(
        () => `removed job '${id}' (reload marker ${change.markerId})`,
        changeSummary(change),
      );
    });

  for (const [name, enabled] of [["enable", true], ["disable", false]] as const) {
    job.command(name).argument("<id>").description(`${name} a job`)
      .action(async (id: string, _opts, cmd: Command) => {
        const ctx = contextOf(cmd);
        validateId(id);
        const change = await ctx.withStore((store) => setEnabled(store, id, enabled, Date.now()));
        ctx.print(
          () =>
            change.markerId === null
              ? `job '${id}' is already ${name}d`
              : `${name}d job '${id}' (reload marker ${change.markerId})`,
          changeSummary(change),
        );
      });
  }

  job.command("list").alias("ls").description("list all jobs with their next fire")
    .action(async (_opts, cmd: Command) => {
      const ctx = contextOf(cmd);
      const listings = await ctx.withStore((store) =>
        listJobs(store, { defaultZone: ctx.defaultZone, now: Date.now() })
      );
      ctx.print(() => jobsTable(listings), listings.map((l) => l.job));
    });

  job.command("show").argument("<id>").description("show a job and its next fires")
    .option("-n, --count <n>", "how many next fires", "5")
    .action(async (id: string, opts, cmd: Command) => {
      const ctx = contextOf(cmd);
      validateId(id);
      const count = parseCount(opts.count, "count", MAX_FIRES);
      const details = await ctx.withStore((store) =>
        showJob(store, id, { count, defaultZone: ctx.defaultZone, now: Date.now() })
      );
      ctx.print(
        () => jobDetails(details),
        { ...details.job, next: details.next.map((d) => d.toISOString()), runs: details.runs },
      );
    });

  job.command("next").argument("<id>").description("print the next fire times of a job")
    .option("-n, --count <n>", "how many", "10")
    .option(
      "--from <time>",
      "start after this instant (ISO 8601; without offset: in the job's zone)",
    )
    .action(async (id: string, opts, cmd: Command) => {
      const ctx = contextOf(cmd);
      validateId(id);
      const count = parseCount(opts.count, "count", MAX_FIRES);
      const { zone, from, next } = await ctx.withStore((store) =>
        upcomingFires(store, id, {
          count,
          from: opts.from,
          defaultZone: ctx.defaultZone,
          now: Date.now(),
        })
      );
      ctx.print(
        () =>
          `next ${count} fires of '${id}' after ${from.toISOString()} (${zone}, then UTC):\n${
            fireLines(next, zone)
          }`,
        { id, timezone: zone, from: from.toISOString(), next: next.map((d) => d.toISOString()) },
      );
    });

  job.addCommand(jobRunCommand(contextOf));
  return job;
}
