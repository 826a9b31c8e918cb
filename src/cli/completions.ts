/**
 * `jobsmanager completions bash|zsh|fish`: shell completion scripts
 * generated from the command tree itself, so a new command or option is
 * completed without anyone remembering to add it.
 */
import { writeOut } from "./context.ts";
import {
  ARGUMENTS,
  command,
  type Flag as Parameter,
  GLOBAL_ALIASES,
  GLOBAL_FLAGS,
  type Target,
} from "./command.ts";

export const SHELLS = ["bash", "zsh", "fish"] as const;
export type Shell = typeof SHELLS[number];

/** What can follow a command, as the completion scripts need it. */
interface Level {
  /** `job add`; "" for the program itself. */
  path: string;
  /** Subcommands: their name, every alias, and the description. */
  children: { name: string; aliases: string[]; description: string }[];
  /** Options of this command and, after them, the global ones. */
  options: Flag[];
  /** What a positional argument can be: a list, files, or nothing we can guess. */
  argument: string[] | "file" | null;
}

interface Flag {
  names: string[];
  description: string;
  /** The option takes a value: `<file>` completes files, choices complete as words. */
  value: string[] | "file" | "other" | null;
}

const kebab = (name: string) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** An option as typed (`--max-instances`, `-n`), and `--no-…` for one that can be negated. */
function flagsOf(flags: Record<string, Parameter>, aliases: Record<string, string>): Flag[] {
  return Object.entries(flags).flatMap(([name, flag]) => {
    const short = Object.keys(aliases).filter((a) => aliases[a] === name).map((a) => `-${a}`);
    const value: Flag["value"] = flag.kind === "boolean"
      ? null
      : flag.kind === "enum"
      ? [...flag.values]
      : flag.placeholder === "file"
      ? "file"
      : "other";
    const own = { names: [`--${kebab(name)}`, ...short], description: flag.brief, value };
    const negated = flag.kind === "boolean" && flag.withNegated !== false
      ? [{ names: [`--no-${kebab(name)}`], description: flag.brief, value: null }]
      : [];
    return [own, ...negated];
  });
}

const GLOBALS = flagsOf(GLOBAL_FLAGS, GLOBAL_ALIASES);

const HELP: Flag = {
  names: ["--help", "-h"],
  description: "Print help information and exit",
  value: null,
};

const VERSION: Flag = {
  names: ["--version", "-V"],
  description: "Print version information and exit",
  value: null,
};

function argumentOf(target: Target): Level["argument"] {
  const first = ARGUMENTS.get(target)?.[0];
  if (!first) return null;
  if (first.choices) return [...first.choices];
  return first.name === "file" ? "file" : null;
}

/** Every command of the tree, the program first, each with what may follow it. */
function levels(root: Target): Level[] {
  const out: Level[] = [];
  const visit = (target: Target, path: string) => {
    const entries = "getAllEntries" in target ? target.getAllEntries() : [];
    // A group that runs a command when none is named (`runs`) takes its options.
    const command = "getAllEntries" in target ? target.getDefaultCommand() : target;
    const parameters = command?.parameters;
    out.push({
      path,
      children: entries.map((e) => ({
        name: e.name["convert-camel-to-kebab"],
        aliases: [...e.aliases],
        description: e.target.brief,
      })),
      options: parameters
        ? [
          ...flagsOf(
            (parameters.flags ?? {}) as Record<string, Parameter>,
            (parameters.aliases ?? {}) as Record<string, string>,
          ),
          // Where arguments go, `-h` is one (see `helpAsValue`).
          (ARGUMENTS.get(command!)?.length ?? 0) > 0 ? { ...HELP, names: ["--help"] } : HELP,
        ]
        : [...GLOBALS, ...(path === "" ? [VERSION] : []), HELP],
      argument: argumentOf(target),
    });
    for (const e of entries) {
      const name = e.name["convert-camel-to-kebab"];
      visit(e.target, path === "" ? name : `${path} ${name}`);
    }
  };
  visit(root, "");
  return out;
}

const quote = (text: string) => `'${text.replaceAll("'", "'\\''")}'`;

/** Every flag that takes a value somewhere: its value is no command word. */
function valueFlags(all: Level[]): string[] {
  return [
    ...new Set(
      all.flatMap((l) => l.options.filter((o) => o.value !== null).flatMap((o) => o.names)),
    ),
  ];
}

/** `case` arms that turn (path, word) into the child's path, aliases resolved. */
function childArms(all: Level[], arm: (from: string, to: string) => string): string[] {
  return all.flatMap((l) =>
    l.children.flatMap((c) => {
      const to = l.path === "" ? c.name : `${l.path} ${c.name}`;
      return [c.name, ...c.aliases].map((word) => arm(`${l.path}|${word}`, to));
    })
  );
}

function bash(root: Target): string {
  const all = levels(root);
  const children = (l: Level) => l.children.flatMap((c) => [c.name, ...c.aliases]);
  const valueArms = all.flatMap((l) =>
    l.options.filter((o) => o.value !== null).map((o) => {
      const patterns = o.names.map((n) => quote(`${l.path}|${n}`)).join("|");
      const reply = o.value === "file"
        ? `COMPREPLY=($(compgen -f -- "$cur"))`
        : Array.isArray(o.value)
        ? `COMPREPLY=($(compgen -W ${quote(o.value.join(" "))} -- "$cur"))`
        : "COMPREPLY=()";
      return `    ${patterns}) ${reply}; return ;;`;
    })
  );
  const levelArms = all.map((l) => {
    const words = [...children(l), ...Array.isArray(l.argument) ? l.argument : []];
    return `    ${quote(l.path)}) words=${quote(words.join(" "))} options=${
      quote(l.options.flatMap((o) => o.names).join(" "))
    } files=${l.argument === "file" ? 1 : 0} ;;`;
  });
  return [
    "# bash completion for jobsmanager, generated from its commands by `jobsmanager completions bash`.",
    "# Load it with: source <(jobsmanager completions bash)",
    "_jobsmanager() {",
    "  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}",
    "  local path= word next i skip=0 words options files",
    "  for ((i = 1; i < COMP_CWORD; i++)); do",
    "    word=${COMP_WORDS[i]}",
    "    if ((skip)); then skip=0; continue; fi",
    "    case $word in",
    `      ${valueFlags(all).join("|")}) skip=1; continue ;;`,
    "      -*) continue ;;",
    "    esac",
    "    next=",
    '    case "$path|$word" in',
    ...childArms(all, (from, to) => `      ${quote(from)}) next=${quote(to)} ;;`),
    "    esac",
    "    [[ -n $next ]] && path=$next",
    "  done",
    '  case "$path|$prev" in',
    ...valueArms,
    "  esac",
    '  case "$path" in',
    ...levelArms,
    "  esac",
    "  # Options once a dash is typed; subcommands and arguments before.",
    "  if [[ $cur == -* ]]; then",
    '    COMPREPLY=($(compgen -W "$options" -- "$cur"))',
    "  else",
    '    COMPREPLY=($(compgen -W "$words" -- "$cur"))',
    '    ((files)) && COMPREPLY+=($(compgen -f -- "$cur"))',
    "  fi",
    "}",
    "# jm too: the README's short name (alias jm=jobsmanager).",
    "complete -F _jobsmanager jobsmanager jm",
    "",
  ].join("\n");
}

function zsh(root: Target): string {
  return [
    "# zsh completion for jobsmanager, generated by `jobsmanager completions zsh`: zsh runs the",
    "# bash completion through bashcompinit. Load it, after compinit, with:",
    "#   source <(jobsmanager completions zsh)",
    "autoload -U +X bashcompinit && bashcompinit",
    ...bash(root).split("\n").slice(2),
  ].join("\n");
}

function fish(root: Target): string {
  const all = levels(root);
  const lines = [
    "# fish completion for jobsmanager, generated from its commands by `jobsmanager completions fish`.",
    "# Install it with: jobsmanager completions fish > ~/.config/fish/completions/jobsmanager.fish",
    "function __jobsmanager_path",
    "    set -l path ''",
    "    set -l skip 0",
    "    for word in (commandline -opc)[2..-1]",
    "        if test $skip = 1",
    "            set skip 0",
    "            continue",
    "        end",
    `        if contains -- $word ${valueFlags(all).join(" ")}`,
    "            set skip 1",
    "            continue",
    "        end",
    '        switch "$path|$word"',
    ...childArms(
      all,
      (from, to) => `            case ${quote(from)}\n                set path ${quote(to)}`,
    ),
    "        end",
    "    end",
    "    echo $path",
    "end",
    "function __jobsmanager_at",
    "    set -l path (__jobsmanager_path)",
    '    test "$path" = "$argv[1]"',
    "end",
    "complete -c jobsmanager -f",
    "# jm too: the README's short name (alias jm=jobsmanager).",
    "complete -c jm --wraps jobsmanager",
  ];
  for (const l of all) {
    const at = `-n ${quote(`__jobsmanager_at ${quote(l.path)}`)}`;
    for (const c of l.children) {
      for (const name of [c.name, ...c.aliases]) {
        lines.push(`complete -c jobsmanager ${at} -a ${quote(name)} -d ${quote(c.description)}`);
      }
    }
    for (const o of l.options) {
      const names = o.names.map((n) =>
        n.startsWith("--") ? `-l ${n.slice(2)}` : `-s ${n.slice(1)}`
      );
      const value = o.value === null
        ? ""
        : o.value === "file"
        ? " -r -F"
        : Array.isArray(o.value)
        ? ` -x -a ${quote(o.value.join(" "))}`
        : " -x";
      lines.push(
        `complete -c jobsmanager ${at} ${names.join(" ")}${value} -d ${quote(o.description)}`,
      );
    }
    if (l.argument === "file") lines.push(`complete -c jobsmanager ${at} -F`);
    if (Array.isArray(l.argument)) {
      lines.push(`complete -c jobsmanager ${at} -a ${quote(l.argument.join(" "))}`);
    }
  }
  return lines.join("\n") + "\n";
}

/** The completion script for `shell`, from the whole tree `root` roots. */
export function completionScript(root: Target, shell: Shell): string {
  return { bash, zsh, fish }[shell](root);
}

export function completionsCommand(root: () => Target) {
  return command({
    brief: "print a shell completion script (bash, zsh or fish)",
    args: [{ name: "shell", brief: "the shell", choices: SHELLS }],
    action: (_ctx, _options, shell: string) => {
      writeOut(completionScript(root(), shell as Shell).trimEnd());
    },
  });
}
