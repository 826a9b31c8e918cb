/** What the API's messages tell a caller to give: a job's fields, the query and body of a request. */
import type { InputNames } from "../app/input_names.ts";
import { AS_FIELDS, jobFieldOf } from "../domain/option_names.ts";

export const API_NAMES: InputNames = {
  option: AS_FIELDS.option,
  // The field a message is about, as ValidationError's `field` names it: `after_job`, not `after`.
  label: jobFieldOf,
  // Its client lists them with GET /jobs and /runs; the dashboard shows them.
  lists: null,
  replace: "?replace=true",
  update: (id) => `PATCH /api/v1/jobs/${encodeURIComponent(id)}`,
  queue: '"queue": true',
  // A request runs nothing itself: a run needs a service.
  runHere: () => null,
  from: "from",
};
