/** The six schedule fields of a job, in APScheduler's order: the vocabulary every cron module shares. */
export const FIELD_NAMES = ["second", "minute", "hour", "day", "month", "day_of_week"] as const;
export type FieldName = typeof FIELD_NAMES[number];
export type ScheduleFields = Record<FieldName, string>;
