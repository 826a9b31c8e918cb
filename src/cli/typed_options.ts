/**
 * The options typed after a command, read before stricli reads them, for
 * what stricli reads otherwise: `-h`/`--help` where a value goes (help, to
 * stricli), and an option given twice alike (an error, to stricli).
 */
import { ARGUMENTS, type Flag, type Target } from "./command.ts";

// Values beginning with '-' read as options; '=' keeps them values.
export const DASH_HINT =
  "; a value that begins with '-' is given as --option=VALUE, an argument after --";

/** The command that reads the options: `target`, or the command its group runs when none is named. */
function commandOf(target: Target): Target | undefined {
  return "getAllEntries" in target ? target.getDefaultCommand() : target;
}

interface Named {
  /** As typed in full: `--max-instances`, `--no-coalesce`. */
  option: string;
  flag: Flag;
}

/** The option of `command` that `input` (`--max-instances`, `-n`, `--no-coalesce`; no `=`) names. */
function optionNamed(command: Target, input: string): Named | undefined {
  if ("getAllEntries" in command) return undefined;
  const flags = (command.parameters.flags ?? {}) as Record<string, Flag>;
  const aliases = (command.parameters.aliases ?? {}) as Record<string, string>;
  const short = /^-([a-zA-Z])$/.exec(input)?.[1];
  const typed = short !== undefined ? aliases[short] : /^--([a-z][\w-]*)$/.exec(input)?.[1];
  if (typed === undefined) return undefined;
  const name = typed.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  if (Object.hasOwn(flags, name)) return { option: `--${kebab(name)}`, flag: flags[name] };
  // `--no-coalesce`, of a switch that can be negated.
  const negated = /^no([A-Z].*)$/.exec(name)?.[1];
  const positive = negated && negated[0].toLowerCase() + negated.slice(1);
  const flag = positive ? flags[positive] : undefined;
  return flag?.kind === "boolean" && flag.withNegated !== false
    ? { option: `--no-${kebab(positive!)}`, flag }
    : undefined;
}

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/**
 * `-h` or `--help` where a value goes: stricli takes either for help
 * wherever it stands, and the command printed its help, exit 0, doing
 * nothing (`job remove "$ID"` with ID=-h, `--description "$TEXT"` with
 * TEXT=--help). Refused as any value that begins with '-' is: after an
 * option that takes a value, and `-h` where the command takes arguments
 * (its help is `--help`, or `jobsmanager help …`). Returns the message.
 */
export function helpAsValue(target: Target, inputs: string[]): string | null {
  const command = commandOf(target);
  if (!command) return null;
  const takesArguments = (ARGUMENTS.get(command)?.length ?? 0) > 0;
  let option: string | undefined;
  for (const input of inputs) {
    if (input === "--") break;
    if ((input === "-h" || input === "--help") && option !== undefined) {
      return `option '${option}' needs a value${DASH_HINT}`;
    }
    if (input === "-h" && takesArguments) return `'-h' stands where an argument goes${DASH_HINT}`;
    const named = option === undefined ? optionNamed(command, input) : undefined;
    option = named && named.flag.kind !== "boolean" ? named.option : undefined;
  }
  return null;
}

/** `inputs` without repeats, and what was given, to carry on to the next words. */
export interface Unrepeated {
  kept: string[];
  /** Each option given so far, with its value: `--json`, `--timeout 60`. */
  given: Set<string>;
}

/**
 * `inputs` with a switch given again (`--json … --json`), or an option
 * given again with the same value, left out: given twice is given once,
 * as a shell alias that holds an option (`alias jm='jobsmanager --json'`)
 * needs. A value given again differently stays, for stricli to refuse;
 * so do `--coalesce` and `--no-coalesce` together, and a repeatable
 * option's every value (`--env`).
 */
export function withoutRepeats(
  target: Target,
  inputs: string[],
  before: Unrepeated = { kept: [], given: new Set() },
): Unrepeated {
  const command = commandOf(target);
  const given = new Set(before.given);
  const kept: string[] = [];
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i];
    if (input === "--") {
      kept.push(...inputs.slice(i));
      break;
    }
    const eq = input.startsWith("--") ? input.indexOf("=") : -1;
    const named = command && optionNamed(command, eq < 0 ? input : input.slice(0, eq));
    if (!named) {
      kept.push(input);
      continue;
    }
    const takesValue = named.flag.kind !== "boolean";
    const words = takesValue && eq < 0 ? inputs.slice(i, i + 2) : [input];
    i += words.length - 1;
    if (named.flag.kind === "parsed" && named.flag.variadic) {
      kept.push(...words);
      continue;
    }
    const value = !takesValue ? "" : eq < 0 ? words[1] ?? "" : input.slice(eq + 1);
    const key = takesValue ? `${named.option} ${value}` : named.option;
    // Without its value, it stays as it is, for stricli to say so.
    const whole = !takesValue || eq >= 0 || words.length === 2;
    if (whole && given.has(key)) continue;
    given.add(key);
    kept.push(...words);
  }
  return { kept, given };
}

/** The long options of the command `target` runs, as typed (`max-instances`). */
export function optionNames(target: Target): string[] {
  const command = commandOf(target);
  if (!command || "getAllEntries" in command) return [];
  return Object.keys(command.parameters.flags ?? {}).map(kebab);
}

/**
 * What an unknown option (`--desc`) may have meant: the options its name
 * begins (`--description`), else `near`, stricli's corrections by edit
 * distance (`--coalesce or --second` for `--desc`), which are camelCase.
 */
export function meant(input: string, names: readonly string[], near: readonly string[]): string[] {
  const begun = input.length >= 2 ? names.filter((name) => name.startsWith(input)) : [];
  return begun.length > 0 ? begun : near.map(kebab);
}
