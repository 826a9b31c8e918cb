/** What the API's messages tell a caller to give: a job's fields, the query and body of a request. */
import type { InputNames } from "../app/input_names.ts";
import { AS_FIELDS } from "../domain/option_names.ts";

export const API_NAMES: InputNames = {
  option: AS_FIELDS.option,
  replace: "?replace=true",
  update: (id) => `PATCH /api/v1/jobs/${encodeURIComponent(id)}`,
  queue: '"queue": true',
  // A request runs nothing itself: a run needs a service.
  runHere: () => null,
  from: "from",
};
