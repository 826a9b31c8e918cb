/** Text as /bin/sh reads it: a command's words, an environment's values. */

/** `text` as one word of /bin/sh: in single quotes, each quote within as '\''. */
export function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * A job id as the last word of a command line: after `--` when it starts
 * with `-`, which the parser would otherwise read as an option.
 */
export function idWord(id: string): string {
  return id.startsWith("-") ? `-- ${id}` : id;
}

/** `text` as one word of /bin/sh, quoted only where it needs to be. */
export function shellWord(text: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(text) ? text : shellQuote(text);
}

/**
 * Names /bin/sh runs itself, whichever shell it is (dash's, bash's and
 * busybox ash's builtins and reserved words): `exec` would run a program
 * of that name instead, which may behave otherwise (`echo -e`).
 */
const SHELL_OWN = new Set(
  [
    ". : [ alias bg bind break builtin caller cd chdir command compgen complete compopt",
    "continue declare dirs disown echo enable eval exec exit export false fc fg getopts hash help",
    "history jobs kill let local logout mapfile popd printf pushd pwd read readarray readonly",
    "return select set shift shopt source suspend test time times trap true type typeset ulimit",
    "umask unalias unset wait case coproc do done elif else esac fi for function if in then until",
    "while",
  ].join(" ").split(" "),
);

/** A word of plain characters: nothing the shell would expand, split or read as an operator. */
const WORD = "[A-Za-z0-9_@%+=:,./-]+";
/** A redirection of a descriptor to a plain word's file, or onto another descriptor. */
const REDIRECTION = `[0-9]?(?:>>?|<)[ \\t]*${WORD}|[0-9]?[<>]&[0-9-]`;
/**
 * One simple command of plain words and redirections, spaces and tabs
 * between them: no quote, expansion, glob, tilde, operator or comment; a
 * program's name first, neither an assignment nor an option.
 */
const PLAIN_COMMAND = new RegExp(
  `^[ \\t]*([A-Za-z0-9_@%+:,./][A-Za-z0-9_@%+:,./-]*)(?:[ \\t]+(?:${REDIRECTION}|${WORD}))*[ \\t]*$`,
);

/**
 * `command` as the script a run's shell is given: a plain command (one
 * program, its words and redirections: PLAIN_COMMAND) is `exec`'d, so that the shell
 * becomes the program instead of forking it and waiting: one process and
 * one fork less a run, and the run's process is the program's. Otherwise,
 * and for the shell's own names (SHELL_OWN), as it is. The shell still
 * looks the program up and says what it cannot run, in its own words with
 * `exec: ` before them (dash: "sh: 1: exec: nosuch: not found").
 */
export function execForm(command: string): string {
  const first = PLAIN_COMMAND.exec(command)?.[1];
  return first === undefined || SHELL_OWN.has(first) ? command : `exec ${command}`;
}
