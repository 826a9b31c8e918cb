/** What the CLI's messages tell a person to give: its flags and commands. */
import type { InputNames } from "../app/input_names.ts";
import { idWord } from "../domain/shell.ts";

/** A value as a shell word in an example: quoted when it is empty or has a blank. */
function word(value: string): string {
  return value === "" || /\s/.test(value) ? `'${value}'` : value;
}

export const CLI_NAMES: InputNames = {
  option(name, example) {
    const flag = `--${name.replaceAll("_", "-")}`;
    return example === undefined ? flag : `${flag} ${word(example ?? "")}`;
  },
  replace: "--replace",
  update: (id) => `\`jobsmanager job update … ${idWord(id)}\``,
  queue: "--queue",
  runHere: (id) => `\`jobsmanager job run --here ${idWord(id)}\``,
  from: "--from",
};
