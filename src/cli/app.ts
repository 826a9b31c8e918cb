/**
 * The command tree and the one place errors become exit codes: 0 ok,
 * 1 runtime failure, 2 usage or validation error. Every error is one line
 * on stderr, scrubbed of secrets.
 */
import { Command, CommanderError } from "commander";
import { exitCodeOf, UsageError } from "../errors.ts";
import { VERSION } from "../version.ts";
import { printable } from "./output.ts";
import { CommandContext, type GlobalOptions, writeErr, writeOut } from "./context.ts";
import { dbCommand, reloadCommand } from "./db.ts";
import { importCommand } from "./import.ts";
import { jobCommand } from "./job.ts";
import { applyCommand, exportCommand } from "./jobs_file.ts";
import { logsCommand } from "./logs.ts";
import { runsCommand } from "./runs.ts";
import { statusCommand } from "./status.ts";
import { serveCommand } from "./serve.ts";
import { completionsCommand } from "./completions.ts";
import { EXAMPLES } from "./examples.ts";

function contextOf(cmd: Command): CommandContext {
  return new CommandContext(cmd.optsWithGlobals<GlobalOptions>());
}

/** `jobsmanager job add`, for messages. */
function commandPath(cmd: Command): string {
  return cmd.parent ? `${commandPath(cmd.parent)} ${cmd.name()}` : cmd.name();
}

/**
 * `jobsmanager help job add`: commander's own help command reads one word
 * only, and would print the help of `job`.
 */
function helpCommand(): Command {
  return new Command("help").description("show the help of a command")
    .argument("[command...]", "the command, as typed after jobsmanager")
    .action((words: string[], _opts, cmd: Command) => {
      let target = cmd.parent!;
      for (const word of words) {
        const next = target.commands.find((c) => c.name() === word || c.aliases().includes(word));
        if (!next) {
          throw new UsageError(
            `help: '${words.join(" ")}' is not a command (see \`jobsmanager --help\`)`,
          );
        }
        target = next;
      }
      target.help();
    });
}

function examplesText(cmd: Command): string {
  const path = commandPath(cmd).split(" ").slice(1).join(" ");
  const examples = EXAMPLES[path] ?? [];
  return `\nExamples:\n${examples.map((e) => `  $ ${e}`).join("\n")}`;
}

export function buildProgram(): Command {
  const program = new Command("jobsmanager")
    .description("a database-driven cron job scheduler")
    .version(VERSION, "-V, --version")
    .option(
      "-c, --config <file>",
      "config file (JSON5); default $JM_CONFIG, ./etc/jobsmanager.json, /etc/jobsmanager/jobsmanager.json",
    )
    .option(
      "-d, --database <url>",
      "database: sqlite:PATH or mysql://USER@HOST:PORT/DB (overrides config and $JM_DATABASE_URL)",
    )
    .option("--json", "machine-readable output");
  program.addCommand(serveCommand(contextOf));
  program.addCommand(jobCommand(contextOf));
  program.addCommand(runsCommand(contextOf));
  program.addCommand(logsCommand(contextOf));
  program.addCommand(statusCommand(contextOf));
  program.addCommand(reloadCommand(contextOf));
  program.addCommand(dbCommand(contextOf));
  program.addCommand(importCommand(contextOf));
  program.addCommand(exportCommand(contextOf));
  program.addCommand(applyCommand(contextOf));
  program.addCommand(completionsCommand());
  program.addCommand(helpCommand());
  // Every command reports through exitOverride instead of exiting itself,
  // and writes its errors the way the rest of the program does; its help
  // shows the global options too, and ends with examples.
  const configure = (cmd: Command) => {
    cmd.configureHelp({ showGlobalOptions: true })
      .addHelpText("after", examplesText(cmd))
      .exitOverride()
      .configureOutput({
        writeOut: (text) => writeOut(text.trimEnd()),
        writeErr: (text) => writeErr(text.trimEnd()),
        outputError: (text, write) =>
          write(
            `jobsmanager: ${text.trim().replace(/^error: /, "")} (see \`${
              commandPath(cmd)
            } --help\`)`,
          ),
      });
    cmd.commands.forEach(configure);
  };
  configure(program);
  return program;
}

/** Run the CLI with `args` (without the program name); resolves to the exit code. */
export async function runCli(args: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(args, { from: "user" });
    // A command whose outcome is not a failure of ours (a job's exit code
    // after `job run --wait`) sets Deno.exitCode.
    return Deno.exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and --version end with 0; anything commander rejects is usage.
      return error.exitCode === 0 ? 0 : 2;
    }
    writeErr(`jobsmanager: ${printable((error as Error).message ?? String(error))}`);
    return exitCodeOf(error);
  }
}
