/**
 * `jobsmanager export` and `jobsmanager apply FILE`: the jobs as a file a
 * team keeps in review, and the database made to match it.
 */
import { FILE_FORMATS, type FileFormat } from "../app/file_format.ts";
import { command, oneOf, switched } from "./command.ts";
import { planData, planText, readText } from "./import.ts";
import { warnUsers } from "./user_warnings.ts";
import { usersWritten } from "../app/user_warnings.ts";
import { withServiceLine } from "./output.ts";
import { writeErr } from "./context.ts";

/** The file parsers and writers (YAML's is large), loaded by the commands that use them. */
const jobsFile = () => import("../app/jobs_file.ts");

export function exportCommand() {
  return command({
    brief: "print every job as a file for `jobsmanager apply` (only non-default fields)",
    options: { format: oneOf("file format", FILE_FORMATS, "json5") },
    action: async (ctx, opts) => {
      const { exportData, exportJobs, jobsToExport } = await jobsFile();
      const { jobs, warnings } = await ctx.withStore((store) => jobsToExport(store, Date.now()));
      for (const warning of warnings) writeErr(`jobsmanager: warning: ${warning}`);
      // One newline less, which print adds: a YAML block's trailing blank lines are its value's.
      ctx.print(
        () => exportJobs(jobs, opts.format as FileFormat).replace(/\n$/, ""),
        exportData(jobs),
      );
    },
  });
}

export function applyCommand() {
  return command({
    brief: "make the jobs match FILE (JSON5, or YAML for .yaml/.yml): add and update",
    args: [{ name: "file", brief: "a file as `jobsmanager export` writes it" }],
    options: {
      prune: switched("also remove the jobs FILE does not name"),
      dryRun: switched("print the plan, write nothing"),
      format: oneOf(
        "file format; auto: YAML for .yaml/.yml, JSON5 otherwise (give it for - with YAML)",
        ["auto", ...FILE_FORMATS],
        "auto",
      ),
    },
    action: async (ctx, opts, file: string) => {
      const text = await readText(file);
      const { applyJobsFile, candidatesFromFile, writtenWarnings } = await jobsFile();
      const format = opts.format === "auto" ? undefined : opts.format as FileFormat;
      const candidates = candidatesFromFile(file, text, Date.now(), format);
      const options = { prune: opts.prune === true, dryRun: opts.dryRun === true };
      // A dry run writes nothing, not even the tables of a new database: it plans against none.
      const { outcome, live, missing } = options.dryRun
        ? await ctx.withDatabase(async (store, missing) => ({
          outcome: await applyJobsFile(
            store,
            candidates,
            options,
            store === null
              ? undefined
              : ctx.planCheck(store, "a dry run: nothing written, and the write would be refused"),
          ),
          live: store === null ? [] : await ctx.liveServices(store),
          missing,
        }))
        : await ctx.withStore(async (store) => ({
          outcome: await applyJobsFile(store, candidates, options),
          live: await ctx.liveServices(store),
          missing: null,
        }), { creates: true });
      for (const warning of writtenWarnings(candidates, outcome.entries)) {
        writeErr(`jobsmanager: warning: ${warning}`);
      }
      await warnUsers(
        usersWritten(outcome.entries),
        options.dryRun
          ? "apply without --dry-run would store them all the same"
          : "applied all the same",
      );
      const preview = options.dryRun ? "a dry run" : null;
      const plan = planText(outcome, `file ${file}`, preview) +
        (missing === null
          ? ""
          : `\n${missing.what} yet: \`jobsmanager apply\` without --dry-run creates ${missing.it}`);
      ctx.print(
        () => withServiceLine(plan, outcome.markerId, live, ctx.databaseName),
        {
          ...planData(outcome, !options.dryRun, `file ${file}`),
          database_exists: missing === null,
          live_services: live.map((n) => n.id),
        },
      );
    },
  });
}
