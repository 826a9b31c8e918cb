/**
 * JSON for people and programs: the CLI's `--json` and the HTTP API's
 * answers. Every instant of the model is epoch milliseconds in a field
 * named `…_at` (created_at, scheduled_at, heartbeat_at, …); it is written,
 * like every Date, as ISO 8601 in UTC (`2026-03-28T01:30:00.000Z`), so one
 * format holds everywhere and a new field cannot miss it.
 */
function isoTimes(key: string, value: unknown): unknown {
  if (!key.endsWith("_at") || typeof value !== "number") return value;
  const instant = new Date(value);
  // A column written by hand that is no instant is shown as stored, not thrown on.
  return Number.isNaN(instant.getTime()) ? value : instant.toISOString();
}

/**
 * Characters JSON.stringify leaves raw that a terminal may act on: DEL,
 * the C1 controls (U+009B is a CSI) and the bidirectional overrides.
 */
const RAW_CONTROLS = /[\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/**
 * `data` as JSON with times in ISO 8601; indented for documents, one line
 * for log lines. No control character is written raw: JSON.stringify
 * escapes C0, and the rest are written `\uNNNN`, which reads back the same.
 */
export function toJson(
  data: unknown,
  indent?: number,
  /** Applied to every string value (never a key): masking secrets before they are escaped. */
  strings?: (text: string) => string,
): string {
  const replacer = strings === undefined ? isoTimes : (key: string, value: unknown) => {
    const timed = isoTimes(key, value);
    return typeof timed === "string" ? strings(timed) : timed;
  };
  return JSON.stringify(data, replacer, indent).replace(
    RAW_CONTROLS,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}
