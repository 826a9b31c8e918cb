/** What the CLI's messages tell a person to give: its flags and commands. */
import type { InputNames } from "../app/input_names.ts";

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
  update: (id) => `\`jobsmanager job update ${id} …\``,
  queue: "--queue",
  runHere: (id) => `\`jobsmanager job run ${id} --here\``,
  from: "--from",
};
