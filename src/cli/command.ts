/**
 * The building blocks of the command tree, over stricli (an ES module
 * without Node built-ins: the CLI starts without loading Node's `fs`,
 * `child_process` and friends, which cost commander ~50 ms a command):
 * options as one-liners, the global options every command takes, and
 * commands whose action gets the invocation's CommandContext. Every help
 * ends with the command's examples.
 */
import {
  buildCommand,
  buildRouteMap,
  type Command as StricliCommand,
  type CommandContext as StricliContext,
  type RouteMap,
  type TypedPositionalParameter,
} from "@stricli/core";
import { UsageError } from "../errors.ts";
import { EXAMPLES } from "./examples.ts";
import { CommandContext, type GlobalOptions } from "./context.ts";

// deno-lint-ignore no-explicit-any
export type Options = Record<string, any>;
/** An option, as stricli takes it: with a value, a switch, or one of a list. */
export type Flag =
  | {
    kind: "parsed";
    parse: (input: string) => string;
    brief: string;
    placeholder: string;
    optional?: true;
    default?: string;
    variadic?: true;
  }
  | { kind: "boolean"; brief: string; optional: true; withNegated?: false }
  | { kind: "enum"; values: string[]; brief: string; default: string };
export type Flags = Record<string, Flag>;
export type Target = StricliCommand<StricliContext> | RouteMap<StricliContext>;

/**
 * `--name <placeholder>`: an option that takes a value, kept as typed. The
 * help lists options without their value, so the brief begins with it.
 */
export function valued(text: string, placeholder: string, fallback?: string): Flag {
  const brief = `<${placeholder}> ${text}`;
  return fallback === undefined
    ? { kind: "parsed", parse: String, brief, placeholder, optional: true }
    : { kind: "parsed", parse: String, brief, placeholder, default: fallback };
}

/** `--name <placeholder>`, repeatable: every value, in order. */
export function repeated(text: string, placeholder: string): Flag {
  const brief = `<${placeholder}> ${text}`;
  return { kind: "parsed", parse: String, brief, placeholder, optional: true, variadic: true };
}

/** `--name`: true when given, else undefined. */
export function switched(brief: string): Flag {
  return { kind: "boolean", brief, optional: true, withNegated: false };
}

/** `--name` / `--no-name`: true, false, or undefined when neither is given. */
export function either(brief: string): Flag {
  return { kind: "boolean", brief, optional: true };
}

/** `--name <choice>`, one of `values`. */
export function oneOf(brief: string, values: readonly string[], fallback: string): Flag {
  return { kind: "enum", values: [...values], brief, default: fallback };
}

/**
 * `valued`, refusing a blank value: `--database "$URL"` with URL unset would
 * otherwise read as no option, and the command would write to another
 * database (./jobsmanager.db) than the script meant, exit 0.
 */
function notBlank(flag: Flag, name: string, give: string): Flag {
  const parse = (input: string) => {
    if (input.trim() === "") throw new UsageError(`option '--${name}' is empty; give ${give}`);
    return input;
  };
  return { ...flag, parse } as Flag;
}

/** The options of every command: where the config and the database are, and JSON output. */
export const GLOBAL_FLAGS: Flags = {
  config: notBlank(
    valued(
      "config file (JSON5); default $JM_CONFIG, ./etc/jobsmanager.json, /etc/jobsmanager/jobsmanager.json",
      "file",
    ),
    "config",
    "a config file, or leave it out to use $JM_CONFIG or the default paths",
  ),
  database: notBlank(
    valued(
      "database: sqlite:PATH or mysql://USER@HOST:PORT/DB (overrides config and $JM_DATABASE_URL)",
      "url",
    ),
    "database",
    "sqlite:PATH or mysql://USER@HOST:PORT/DB, or leave it out to use $JM_DATABASE_URL or the config's db.url",
  ),
  json: switched("machine-readable output"),
};
export const GLOBAL_ALIASES = { c: "config", d: "database" } as const;

/** A positional argument; `name` is shown in usage and messages. */
export interface Argument {
  name: string;
  brief: string;
  optional?: boolean;
  /** The values it may take: any other is a usage error; they complete in a shell. */
  choices?: readonly string[];
}

/** The arguments of each command, for completion (stricli keeps only their parsers). */
export const ARGUMENTS = new WeakMap<Target, Argument[]>();

interface CommandSpec<A extends string[]> {
  brief: string;
  options?: Flags;
  /** One-letter aliases of options: `{ n: "count" }` for `-n`. */
  aliases?: Record<string, string>;
  args?: Argument[];
  /** Every further word, as a list (after `args`). */
  rest?: Argument;
  action: (ctx: CommandContext, options: Options, ...args: A) => unknown;
}

function choiceOf(name: string, choices: readonly string[]): (input: string) => string {
  return (input) => {
    if (!choices.includes(input)) {
      throw new UsageError(`${name} must be one of ${choices.join(", ")}, not '${input}'`);
    }
    return input;
  };
}

function positionalOf(arg: Argument): TypedPositionalParameter<string | undefined> {
  return {
    brief: arg.brief,
    placeholder: arg.name,
    parse: arg.choices ? choiceOf(arg.name, arg.choices) : String,
    optional: arg.optional,
  } as TypedPositionalParameter<string | undefined>;
}

/**
 * Help that ends with the examples of the command, found by its path; and
 * a command's usage as `line` gives it, so that a group's help lists each
 * command that way, not with its every option.
 */
function presented<T extends Target>(target: T, line?: string, takesArguments = false): T {
  return {
    ...target,
    ...(line === undefined ? {} : {
      formatUsageLine: (args: { prefix: readonly string[] }) => `${args.prefix.join(" ")} ${line}`,
    }),
    formatHelp: (args) => {
      // Typed as an alias (`job rm`), the command's own name finds its examples.
      const words = args.prefix.slice(1);
      const paths = [words, ...(args.aliases ?? []).map((a) => [...words.slice(0, -1), a])]
        .map((p) => p.join(" "));
      const examples = (EXAMPLES[paths.find((p) => p in EXAMPLES) ?? paths[0]] ?? [])
        .map((e) => `  $ ${e}`).join("\n");
      // Where arguments go, `-h` is one (an id may begin with '-'): the help is `--help` alone.
      const help = takesArguments
        ? target.formatHelp(args).replace(/^ {2}-h {2}--help/m, "      --help")
        : target.formatHelp(args);
      return `${help}\nExamples:\n${examples}\n`;
    },
  };
}

/** A command: its options and the global ones, its arguments, and its action. */
export function command<A extends string[]>(spec: CommandSpec<A>): StricliCommand<StricliContext> {
  const args = spec.args ?? [];
  const usage = [
    ...args.map((a) => a.optional ? `[${a.name}]` : `<${a.name}>`),
    ...(spec.rest ? [`[${spec.rest.name}...]`] : []),
  ];
  const line = [...usage, "[options]"].join(" ");
  const built = presented(
    buildCommand<Options, string[], StricliContext>({
      async func(options: Options, ...values: string[]) {
        const action = spec.action as (ctx: CommandContext, o: Options, ...v: string[]) => unknown;
        await action(new CommandContext(options as GlobalOptions), options, ...values);
      },
      parameters: {
        flags: { ...spec.options, ...GLOBAL_FLAGS },
        aliases: { ...spec.aliases, ...GLOBAL_ALIASES },
        positional: spec.rest
          ? { kind: "array", parameter: positionalOf(spec.rest) }
          : { kind: "tuple", parameters: args.map(positionalOf) },
      } as never,
      docs: { brief: spec.brief, customUsage: [line] },
    }),
    line,
    args.length > 0 || spec.rest !== undefined,
  );
  ARGUMENTS.set(built, spec.rest ? [spec.rest] : args);
  return built;
}

/** Commands under one word (`job add`, `job list`); `fallback` runs when none is named. */
export function group(
  brief: string,
  routes: Record<string, Target>,
  options: { aliases?: Record<string, string>; fallback?: string; description?: string } = {},
): RouteMap<StricliContext> {
  return presented(buildRouteMap({
    routes,
    aliases: options.aliases,
    defaultCommand: options.fallback,
    docs: { brief, fullDescription: options.description },
  } as never));
}
