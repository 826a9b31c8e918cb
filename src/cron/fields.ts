import type { FieldName } from "./grammar.ts";

/** A job's schedule: APScheduler's six fields as text. */
export type ScheduleFields = Record<FieldName, string>;
