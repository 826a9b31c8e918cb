/**
 * `toJson` (domain/json.ts): times in ISO 8601, and a function over every
 * string value, which is how a read token's answers lose the service's
 * secrets (http/api/context.ts `json`).
 */
import { assertEquals } from "./assert.ts";
import { toJson } from "../src/domain/json.ts";

Deno.test("toJson: the string function sees values, never keys or numbers, before they are escaped", () => {
  const mask = (secret: string) => (text: string) => text.replaceAll(secret, "***");
  const data = { id: 1234, "1234": "x1234y", true: true, note: null, at_at: 0 };
  // A secret as short as a run's id or as a key is masked in texts only: the JSON stays whole.
  assertEquals(JSON.parse(toJson(data, undefined, mask("1234"))), {
    id: 1234,
    "1234": "x***y",
    true: true,
    note: null,
    at_at: "1970-01-01T00:00:00.000Z",
  });
  // One JSON would escape (a quote, a backslash) is found in the text it was.
  const quoted = 'pa"ss\\word';
  assertEquals(
    JSON.parse(toJson({ cwd: `/srv/${quoted}/x` }, undefined, mask(quoted))),
    { cwd: "/srv/***/x" },
  );
  // Times are made before the function sees them, as the answer shows them.
  assertEquals(
    toJson({ created_at: 0 }, undefined, (t) => t.replace("1970", "YEAR")),
    '{"created_at":"YEAR-01-01T00:00:00.000Z"}',
  );
});
