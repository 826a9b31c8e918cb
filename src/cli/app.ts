/**
 * The command tree and the one place errors become exit codes: 0 ok,
 * 1 runtime failure, 2 usage or validation error. Every error is one line
 * on stderr, scrubbed of secrets: with `--json`, a JSON object (see
 * failure.ts).
 */
import {
  type Application,
  type ApplicationText,
  type ArgumentParseError,
  type ArgumentScannerError,
  buildApplication,
  type CommandContext as StricliContext,
  ExitCode,
  formatMessageForArgumentScannerError,
  help,
  type RouteMap,
  run,
  text_en,
  version,
} from "@stricli/core";
import { exitCodeOf, UsageError, ValidationError } from "../errors.ts";
import { VERSION } from "../version.ts";
import { ignoreInspectorSignal } from "../daemon/inspector_signal.ts";
import { lossy } from "./argv.ts";
import { writeErr, writeOut } from "./context.ts";
import { type Failure, failureLine, failureOf, jsonGiven, usageFailure } from "./failure.ts";
import { DASH_HINT, helpAsValue, meant, optionNames, withoutRepeats } from "./typed_options.ts";
import { command, GLOBAL_ALIASES, GLOBAL_FLAGS, group, type Target } from "./command.ts";

type Routes = RouteMap<StricliContext>;

/** Whether `target` is a group of commands (`job`), not a command. */
export function isGroup(target: Target): target is Routes {
  return "getAllEntries" in target;
}

/** The command `words` name, walking down from `root`; undefined if they name none. */
function targetOf(root: Routes, words: string[]): Target | undefined {
  let target: Target | undefined = root;
  for (const word of words) {
    target = target && isGroup(target) ? target.getRoutingTargetForInput(word) : undefined;
  }
  return target;
}

/**
 * `jobsmanager help job add`: the help of `job add`, as `job add --help`
 * prints it.
 */
function helpCommand(root: () => Routes) {
  return command({
    brief: "show the help of a command",
    rest: { name: "command", brief: "the command, as typed after jobsmanager" },
    action: async (_ctx, _options, ...words: string[]) => {
      if (!targetOf(root(), words)) {
        throw new UsageError(
          `help: '${words.join(" ")}' is not a command (see \`jobsmanager --help\`)`,
        );
      }
      await runCli([...words, "--help"]);
    },
  });
}

/**
 * The commands, each built by its own module, imported when the command is
 * typed: `job add` does not load the importer, the runner or `serve`. Help,
 * completion, `--version` and a word that names no command load them all.
 */
const COMMANDS: Record<string, () => Promise<Target>> = {
  serve: async () => (await import("./serve.ts")).serveCommand(),
  job: async () => (await import("./job.ts")).jobCommand(),
  runs: async () => (await import("./runs.ts")).runsCommand(),
  logs: async () => (await import("./logs.ts")).logsCommand(),
  status: async () => (await import("./status.ts")).statusCommand(),
  reload: async () => (await import("./db.ts")).reloadCommand(),
  db: async () => (await import("./db.ts")).dbCommand(),
  import: async () => (await import("./import.ts")).importCommand(),
  export: async () => (await import("./jobs_file.ts")).exportCommand(),
  apply: async () => (await import("./jobs_file.ts")).applyCommand(),
};

/**
 * The command tree: with `only` one of COMMANDS, just that command (what
 * `jobsmanager job …` needs); else every command, with help and completion.
 */
export async function buildTree(only?: string): Promise<Routes> {
  const alone = only !== undefined && Object.hasOwn(COMMANDS, only);
  const names = alone ? [only] : Object.keys(COMMANDS);
  const targets = await Promise.all(names.map((name) => COMMANDS[name]()));
  const routes: Record<string, Target> = Object.fromEntries(
    names.map((name, i) => [name, targets[i]]),
  );
  if (!alone) {
    const { completionsCommand } = await import("./completions.ts");
    routes.completions = completionsCommand(() => root);
    routes.help = helpCommand(() => root);
  }
  const root: Routes = group("a database-driven cron job scheduler", routes, {
    description: `a database-driven cron job scheduler

Every command takes the global options, before or after its name:
  -c, --config <file>    config file (JSON5)
  -d, --database <url>   sqlite:PATH or mysql://USER@HOST:PORT/DB
  --json                 machine-readable output`,
  });
  return root;
}

/** What went wrong in the words typed, in the words of the rest of the program. */
function usageMessage(error: ArgumentScannerError, options: () => string[]): string {
  return formatMessageForArgumentScannerError(error, {
    FlagNotFoundError: (e) => {
      const corrections = meant(e.input, options(), e.corrections);
      return `unknown option '--${e.input}'${
        corrections.length > 0
          ? `; did you mean ${corrections.map((c) => `--${c}`).join(" or ")}?`
          : ""
      }`;
    },
    AliasNotFoundError: (e) => `unknown option '-${e.input}'${DASH_HINT}`,
    UnsatisfiedFlagError: (e) =>
      `option '--${e.externalFlagName}' needs a value${e.nextFlagName ? DASH_HINT : ""}`,
    UnsatisfiedPositionalError: (e) => `missing required argument '${e.placeholder}'`,
    // `--env A=1 B=2`: B's value, which may be a secret, is not shown.
    UnexpectedPositionalError: (e) =>
      `too many arguments: '${
        e.input.replace(/^([A-Za-z_]\w*=)[^]+$/, "$1…")
      }' (it takes ${e.expectedCount})`,
    // Given again alike, an option is left out before this (see `withoutRepeats`). The values
    // are not shown: one may be a URL with a password.
    UnexpectedFlagError: (e) =>
      [e.previousInput, e.input].every((v) => v === "true" || v === "false")
        ? `options '--${e.externalFlagName}' and '--no-${e.externalFlagName}' given together`
        : `option '--${e.externalFlagName}' given more than once, with different values`,
    EnumValidationError: (e) =>
      `option '--${e.externalFlagName}' must be one of ${e.values.join(", ")}, not '${e.input}'`,
    InvalidNegatedFlagSyntaxError: (e) =>
      `option '--${e.externalFlagName}' takes no value, not '${e.valueText}'`,
    ArgumentParseError: (e) => (e.exception as Error).message ?? String(e.exception),
  });
}

/** The option a mistake in the words typed is about, as typed; undefined for an argument. */
function optionAt(error: ArgumentScannerError, options: () => string[]): string | undefined {
  const flag = (e: { externalFlagName: string }) => `--${e.externalFlagName}`;
  const none = () => "";
  return formatMessageForArgumentScannerError(error, {
    FlagNotFoundError: (e) => `--${e.input}`,
    AliasNotFoundError: (e) => `-${e.input}`,
    UnsatisfiedFlagError: flag,
    UnexpectedFlagError: flag,
    EnumValidationError: flag,
    InvalidNegatedFlagSyntaxError: flag,
    // Of an option, or of an argument (its placeholder).
    ArgumentParseError: (e) =>
      options().includes(e.externalFlagNameOrPlaceholder)
        ? `--${e.externalFlagNameOrPlaceholder}`
        : "",
    UnsatisfiedPositionalError: none,
    UnexpectedPositionalError: none,
  }) || undefined;
}

/** A mistake in the words typed, as `failureLine` writes it, naming the help of the command. */
function parseFailure(error: ArgumentScannerError, options: () => string[], help: string): Failure {
  const message = `${usageMessage(error, options)} (see \`${help} --help\`)`;
  const option = optionAt(error, options);
  // A value a parser refuses for a field (a ValidationError) is invalid; the rest are usage.
  const thrown = error.name === "ArgumentParseError"
    ? (error as ArgumentParseError).exception
    : undefined;
  const failure = thrown instanceof ValidationError ? failureOf(thrown) : usageFailure(message);
  return { ...failure, message, exitCode: 2, ...(option === undefined ? {} : { option }) };
}

/** Error messages of the program's style, naming the help of the command typed. */
function textFor(path: () => string, options: () => string[], json: boolean): ApplicationText {
  const failed = (error: unknown) => failureLine(failureOf(error, path()), json);
  return {
    ...text_en,
    exceptionWhileParsingArguments: (error) =>
      failureLine(parseFailure(error as ArgumentScannerError, options, path()), json),
    noCommandRegisteredForInput: ({ input, corrections }) =>
      failureLine(
        usageFailure(
          `'${input}' is not a command${
            corrections.length > 0 ? `; did you mean ${corrections.join(" or ")}?` : ""
          } (see \`${path()} --help\`)`,
        ),
        json,
      ),
    exceptionWhileRunningCommand: failed,
    commandErrorResult: failed,
  };
}

function buildApp(
  root: Routes,
  path: () => string,
  options: () => string[],
  json: boolean,
): Application<StricliContext> {
  return buildApplication(root, {
    name: "jobsmanager",
    // `--` ends the options: an id that begins with '-' can follow it.
    scanner: { caseStyle: "allow-kebab-for-camel", allowArgumentEscapeSequence: true },
    documentation: { caseStyle: "convert-camel-to-kebab", disableAnsiColor: true },
    determineExitCode: exitCodeOf,
    localization: { loadText: () => textFor(path, options, json) },
  }, {
    help: help({
      brief: text_en.briefs.help,
      alias: "h",
      defaultForRouteMap: true,
      formatting: {
        caseStyle: "convert-camel-to-kebab",
        useAliasInUsageLine: false,
        onlyRequiredInUsageLine: false,
      },
    }),
    version: version({
      brief: text_en.briefs.version,
      info: { currentVersion: VERSION },
      alias: "V",
      hook: "app:start",
    }),
  });
}

/** Whether `option` (`-d`, `--json`, `--database=…`) is a global one, and whether its value is the next word. */
function globalOption(option: string): { takesValue: boolean } | undefined {
  const name = option.split("=")[0];
  const short = /^-([a-zA-Z])$/.exec(name)?.[1] as keyof typeof GLOBAL_ALIASES | undefined;
  const long = short ? GLOBAL_ALIASES[short] : name.startsWith("--") ? name.slice(2) : undefined;
  const flag = long === undefined ? undefined : GLOBAL_FLAGS[long];
  if (!flag) return undefined;
  return { takesValue: flag.kind !== "boolean" && !option.includes("=") };
}

/**
 * `--name=VALUE` as `--name VALUE` where stricli cannot read the `=` form:
 * it reads an empty value after '=' as an argument (`--description="$TEXT"`
 * must work when TEXT is empty), and a value holding a line break (\n, \r,
 * U+2028, U+2029: its pattern's `.`) as an argument too, echoed whole in
 * the error: an `--env` secret with it. Apart, such a value is never read
 * as an option. Any other value stays after '=': one that begins with '-'
 * would read as an option apart (DASH_HINT), and a switch takes no value.
 */
function separateValues(args: string[]): string[] {
  const end = args.includes("--") ? args.indexOf("--") : args.length;
  return args.flatMap((a, i) => {
    const [, name, value] = /^(--[a-z][\w.-]*)=([^]*)$/i.exec(a) ?? [];
    return i < end && name !== undefined && (value === "" || /[\n\r\u2028\u2029]/.test(value))
      ? [name, value]
      : [a];
  });
}

interface Ordered {
  /** The words that name the command (`job`, `add`). */
  words: string[];
  /** The global options found before or among them, with their values. */
  globals: string[];
  /** Everything after the words. */
  others: string[];
  /** The command or group the words name. */
  target: Target;
  /** A global option before the command that lacks its value. */
  unsatisfied?: string;
}

/**
 * The words of the command, apart from the global options that may come
 * before or among them (`--json job list`, `job --database … list`):
 * stricli reads options only once it has found the command.
 */
function commandFirst(root: Routes, args: string[]): Ordered {
  const words: string[] = [];
  const globals: string[] = [];
  let target: Target = root;
  let i = 0;
  while (i < args.length && isGroup(target)) {
    const global = globalOption(args[i]);
    if (global) {
      const length = global.takesValue ? 2 : 1;
      if (i + length > args.length) {
        return { words, globals, others: [], target, unsatisfied: args[i] };
      }
      globals.push(...args.slice(i, i + length));
      i += length;
      continue;
    }
    const next: Target | undefined = target.getRoutingTargetForInput(args[i]);
    if (!next) break;
    words.push(args[i++]);
    target = next;
  }
  return { words, globals, others: args.slice(i), target };
}

/** The first word of `args` that is not a global option or its value. */
function firstWord(args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const global = globalOption(args[i]);
    if (!global) return args[i];
    if (global.takesValue) i++;
  }
  return undefined;
}

/**
 * Run the CLI with `args` (without the program name; `utf8`: whether each
 * was typed in UTF-8, see argv.ts); resolves to the exit code.
 */
export async function runCli(args: string[], utf8 = lossy(args).utf8): Promise<number> {
  // `serve`, `logs --follow`, `job run --wait`: any command may live long, as root.
  ignoreInspectorSignal();
  const json = jsonGiven(args);
  // Deno reads arguments as UTF-8, making each byte that is not U+FFFD: such
  // an argument would be stored as other text than was typed, without a
  // word. Named, not shown: it may be a password.
  const at = utf8.indexOf(false);
  if (at >= 0) {
    const option = /^(--?[\w-]+)=/.exec(args[at])?.[1] ??
      (at > 0 && args[at - 1].startsWith("-") ? args[at - 1] : null);
    writeErr(failureLine(
      usageFailure(
        `${
          option === null ? `argument ${at + 1}` : `the value of ${option}`
        } holds U+FFFD (\uFFFD), which is what bytes that are not UTF-8 become as they are read: jobsmanager cannot tell what was typed; give it in UTF-8 (a command can make such bytes itself, e.g. printf '\\377')`,
        option ?? undefined,
      ),
      json,
    ));
    return 2;
  }
  const given = separateValues(args);
  const root = await buildTree(firstWord(given));
  const { words, globals, others, target, unsatisfied } = commandFirst(root, given);
  let path = ["jobsmanager", ...words].join(" ");
  if (unsatisfied !== undefined) {
    writeErr(failureLine(
      usageFailure(`option '${unsatisfied}' needs a value (see \`${path} --help\`)`, unsatisfied),
      json,
    ));
    return 2;
  }
  const misplaced = helpAsValue(target, [...globals, ...others]);
  if (misplaced !== null) {
    writeErr(failureLine(usageFailure(`${misplaced} (see \`${path} --help\`)`), json));
    return 2;
  }
  // Given twice is given once (`alias jm='jobsmanager --json'`, then `jm status --json`).
  const options = withoutRepeats(target, globals);
  const rest = withoutRepeats(target, others, options);
  const app = buildApp(root, () => path, () => optionNames(target), json);
  // A group alone (`jobsmanager job`) is a usage error that shows the group's help.
  const groupAlone = isGroup(target) && !target.getDefaultCommand() && others.length === 0;
  // Under --json, that error is a JSON line as every other is: the commands it takes, not the help.
  if (json && groupAlone && isGroup(target)) {
    const names = target.getAllEntries().filter((e) => !e.hidden).map((e) => e.name.original);
    writeErr(failureLine(
      usageFailure(`'${path}' needs a command: ${names.join(", ")} (see \`${path} --help\`)`),
      json,
    ));
    return 2;
  }
  const process = {
    stdout: {
      write: (text: string) => (groupAlone ? writeErr : writeOut)(namedAliases(text).trimEnd()),
    },
    stderr: { write: (text: string) => writeErr(text.trimEnd()) },
    exitCode: undefined as number | string | null | undefined,
  };
  // The global options right after a command's name, so that a missing
  // value names the option before them; after words a group cannot take,
  // which are the error to report.
  const inputs = groupAlone
    ? [...words, "--help"]
    : isGroup(target)
    ? [...words, ...rest.kept, ...options.kept]
    : [...words, ...options.kept, ...rest.kept];
  await run(app, inputs, {
    process,
    forCommand: ({ prefix }) => {
      path = prefix.join(" ");
      return { process };
    },
  });
  const code = Number(process.exitCode ?? 0);
  if (groupAlone || code === ExitCode.InvalidArgument || code === ExitCode.UnknownCommand) {
    return 2;
  }
  if (code < 0) return 1;
  // A command whose outcome is not a failure of ours (a job's exit code
  // after `job run --wait`) sets Deno.exitCode.
  return code === 0 ? Deno.exitCode : code;
}

/**
 * stricli lists a group's default command's bare form (`jobsmanager runs`
 * for `runs list`) as an alias with an empty name: a line that reads as
 * if a word were missing. Say what it is.
 */
function namedAliases(help: string): string {
  return help.replace(
    /^(ALIASES\n(?: {2}.*\n)*?) {2}(\S.*?) $/m,
    "$1  $2   (the group alone runs this command)",
  );
}
