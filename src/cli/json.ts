/**
 * `--json` output. Every instant of the model is epoch milliseconds in a
 * field named `…_at` (created_at, scheduled_at, heartbeat_at, …); --json
 * writes each, like every Date, as ISO 8601 in UTC (`2026-03-28T01:30:00.000Z`),
 * so one format holds everywhere and a new field cannot miss it.
 */
function isoTimes(key: string, value: unknown): unknown {
  return key.endsWith("_at") && typeof value === "number" ? new Date(value).toISOString() : value;
}

/** `data` as JSON with times in ISO 8601; indented for documents, one line for log lines. */
export function toJson(data: unknown, indent?: number): string {
  return JSON.stringify(data, isoTimes, indent);
}
