/**
 * How the person asking gives the inputs of a use case's request, besides
 * the job's options: the CLI's flags (`--replace`) or the API's query and
 * body (`?replace=true`). Each entry point passes its own; a use case's
 * message says what to give through them, never a flag of its own.
 */
import type { OptionNames } from "../domain/option_names.ts";

export interface InputNames extends OptionNames {
  /** How a new job is stored over the one whose id it takes. */
  readonly replace: string;
  /** How job `id` is changed. */
  update(id: string): string;
  /** How a run request is left for the next service that starts. */
  readonly queue: string;
  /** How job `id` is run at once without a service; null where this entry point cannot. */
  runHere(id: string): string | null;
  /** The input that says where a job's next fires are counted from. */
  readonly from: string;
}
