/**
 * How the person a message speaks to gives a job's options. A message that
 * says what to give ("command: missing (give …)") asks its caller's names:
 * the CLI's are flags (`--command 'shell command'`), the API's and a jobs
 * file's are the job's own fields (`"command": "shell command"`). So the
 * domain and the use cases never name a flag, and the CLI and HTTP, which
 * call them, each say what their user types.
 */
import { FIELD_NAMES, type FieldName } from "../cron/grammar.ts";

/** The options messages tell a person to give. */
export type OptionName =
  | "command"
  | "cron"
  | FieldName
  | "after"
  | "no_schedule"
  | "retries"
  | "retry_on"
  | "retry_max_delay"
  | "env"
  | "unset_env";

export interface OptionNames {
  /**
   * How option `name` is given, with `example` as its value when one is
   * shown; an `example` of null is the value that clears the option.
   */
  option(name: OptionName, example?: string | null): string;
  /**
   * The name a message about option `name` begins with (`after: …`): the
   * option's own unless told (the API's is the field that gives it,
   * `after_job`).
   */
  readonly label?: (name: OptionName) => string;
  /**
   * What a message about a job or a run that does not exist points to, to
   * list them: the CLI's commands unless told; null: nothing (the API's
   * client lists them with the GET it knows, and the dashboard shows them).
   */
  readonly lists?: { readonly jobs: string; readonly runs: string } | null;
}

/** The name a message about option `name` begins with, as `names` call it. */
export function labelOf(names: OptionNames, name: OptionName): string {
  return names.label?.(name) ?? name;
}

/**
 * Where a message about a job or a run that does not exist points to, as
 * `names` say it; null where they point nowhere.
 */
export function listedBy(names: OptionNames | undefined, what: "jobs" | "runs"): string | null {
  if (names?.lists === null) return null;
  return names?.lists?.[what] ??
    (what === "jobs" ? "`jobsmanager job list`" : "`jobsmanager runs`");
}

/**
 * The job's field that gives `after` (its outcome has a field of its own).
 * No prototype: a key sent as `toString` or `constructor` is a name, not
 * Object's method.
 */
const FIELD_OF: Partial<Record<OptionName, string>> = Object.assign(Object.create(null), {
  after: "after_job",
});

/**
 * The job's field a ValidationError's `field` names: `after` (the link as
 * a whole) is given by `after_job`; the others are fields already.
 */
export function jobFieldOf(field: string): string {
  return FIELD_OF[field as OptionName] ?? field;
}

/**
 * A job's options as its own fields, as `jm_jobs` names them and a JSON
 * body or a jobs file gives them; "no schedule" is the six schedule fields
 * empty, as such a job reads back.
 */
export const AS_FIELDS: OptionNames = {
  option(name, example) {
    if (name === "no_schedule") {
      return `${FIELD_NAMES.map((f) => JSON.stringify(f)).join(", ")} all ""`;
    }
    const field = JSON.stringify(FIELD_OF[name] ?? name);
    return example === undefined ? field : `${field}: ${JSON.stringify(example)}`;
  },
};
