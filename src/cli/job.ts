/**
 * `jobsmanager job …`: define, inspect and change jobs. Every write goes
 * through `Store.changeJob`, so the job row and its reload marker are
 * written in one transaction or not at all.
 */
import { Command } from "commander";
import { ConflictError, NotFoundError, UsageError } from "../errors.ts";
import { buildJob, type Job, type JobOptions, validateId } from "../domain/job.ts";
import { FIELD_NAMES, type FieldName } from "../cron/grammar.ts";
import type { JobChange } from "../store/store.ts";
import { parseInstant, systemTimezone } from "../domain/time.ts";
import type { CommandContext, ContextOf } from "./context.ts";
import { jobRunCommand } from "./job_run.ts";
import { fireLines, jobDetails, jobsTable, nextFires, zoneOf } from "./output.ts";
import { runsTable } from "./runs.ts";

/** Runs `job show` lists. */
const LAST_RUNS = 5;

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

function notFound(id: string): NotFoundError {
  return new NotFoundError(`job '${id}' does not exist (see \`jobsmanager job list\`)`);
}

function defaultZone(ctx: CommandContext): string {
  return ctx.config.settings["jobsmanager.timezone"] || systemTimezone();
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
    const options = toJobOptions(opts);
    // Validate fully before touching the database.
    buildJob(id, options, null, Date.now());
    const change = await ctx.withStore((store) =>
      store.changeJob(id, (current) => {
        if (current && !opts.replace) {
          throw new ConflictError(
            `job '${id}' already exists; change it with \`jobsmanager job update ${id} …\` or pass --replace`,
          );
        }
        const now = Date.now();
        const created = buildJob(id, options, null, now);
        return current ? { ...created, created_at: current.created_at } : created;
      })
    );
    const after = change.after!;
    const next = nextFires(after, defaultZone(ctx), new Date(), 1);
    ctx.print(
      () =>
        `${change.before ? "replaced" : "added"} job '${id}' (reload marker ${
          change.markerId ?? "-"
        })\n` +
        `next fire${after.enabled ? "" : " (once enabled)"}:\n${
          fireLines(next, zoneOf(after, defaultZone(ctx)))
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
    const change = await ctx.withStore((store) =>
      store.changeJob(id, (current) => {
        if (!current) throw notFound(id);
        const updated = buildJob(id, options, current, Date.now());
        return { ...updated, updated_at: Date.now() };
      })
    );
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
      const change = await ctx.withStore((store) =>
        store.changeJob(id, (current) => {
          if (!current) throw notFound(id);
          return null;
        })
      );
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
        const change = await ctx.withStore((store) =>
          store.changeJob(id, (current) => {
            if (!current) throw notFound(id);
            return current.enabled === enabled
              ? current
              : { ...current, enabled, updated_at: Date.now() };
          })
        );
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
      const jobs = await ctx.withStore((store) => store.listJobs());
      ctx.print(() => jobsTable(jobs, defaultZone(ctx), new Date()), jobs);
    });

  job.command("show").argument("<id>").description("show a job and its next fires")
    .option("-n, --count <n>", "how many next fires", "5")
    .action(async (id: string, opts, cmd: Command) => {
      const ctx = contextOf(cmd);
      validateId(id);
      const count = parseCount(opts.count);
      const [found, runs] = await ctx.withStore((store) =>
        Promise.all([store.getJob(id), store.listRuns({ job_id: id, limit: LAST_RUNS })])
      );
      if (!found) throw notFound(id);
      const fires = nextFires(found, defaultZone(ctx), new Date(), count);
      ctx.print(
        () => `${jobDetails(found, defaultZone(ctx), fires)}\nlast runs:\n${runsTable(runs)}`,
        { ...found, next: fires.map((d) => d.toISOString()), runs },
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
      const count = parseCount(opts.count);
      const found: Job | null = await ctx.withStore((store) => store.getJob(id));
      if (!found) throw notFound(id);
      const zone = zoneOf(found, defaultZone(ctx));
      const from = opts.from === undefined ? new Date() : parseInstant(opts.from, zone);
      const fires = nextFires(found, defaultZone(ctx), from, count);
      ctx.print(
        () =>
          `next ${count} fires of '${id}' after ${from.toISOString()} (${zone}, then UTC):\n${
            fireLines(fires, zone)
          }`,
        { id, timezone: zone, from: from.toISOString(), next: fires.map((d) => d.toISOString()) },
      );
    });

  job.addCommand(jobRunCommand(contextOf));
  return job;
}

function parseCount(raw: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > 1000) {
    throw new UsageError(`count: '${raw}' is not valid (allowed: a whole number from 1 to 1000)`);
  }
  return Number(raw);
}
