/**
 * A refused field's value is named by the start of its JSON, as
 * `shortened(JSON.stringify(value))` names it, without writing the whole
 * value: a read token's schedule preview of arrays millions deep held the
 * API's thread for seconds in that message.
 */
import { assert, assertEquals } from "./assert.ts";
import { badValue } from "../src/app/job_fields.ts";
import { shortened } from "../src/domain/printable.ts";

Deno.test("job fields: a refused value is named by the start of its JSON, however large or deep", () => {
  const values: unknown[] = [
    1,
    -0,
    1e21,
    "x",
    'é\u2028"quoted"',
    null,
    true,
    [],
    {},
    [1, [2, {}]],
    { a: 1, b: [1, 2], c: undefined },
    { "1": 2, b: "y" },
    [undefined, 1],
    "y".repeat(200),
    Array.from({ length: 100 }, (_, i) => i),
    { k: { j: { i: [[[[["deep"]]]]] } } },
    new Date(Date.UTC(2020, 0, 1)),
    { at: new Date(0) },
  ];
  for (const value of values) {
    assertEquals(
      badValue("cron", value, "a schedule").message,
      `cron: ${shortened(JSON.stringify(value))} is not valid (expected a schedule)`,
    );
  }
  // It stops once it has what it shows: of a million elements, it reads the first few.
  let read = 0;
  const large = new Proxy(new Array(1_000_000).fill(7), {
    get(target, key, receiver) {
      if (typeof key === "string" && /^\d+$/.test(key)) read++;
      return Reflect.get(target, key, receiver);
    },
  });
  assertEquals(
    badValue("cron", large, "a schedule").message,
    `cron: [${"7,".repeat(29)}7… is not valid (expected a schedule)`,
  );
  assert(read < 100, `${read} elements read to show the start of the value`);
  let deep: unknown = "end";
  for (let i = 0; i < 1_000_000; i++) deep = [deep];
  assertEquals(
    badValue("cron", deep, "a schedule").message,
    `cron: ${"[".repeat(60)}… is not valid (expected a schedule)`,
  );
});
