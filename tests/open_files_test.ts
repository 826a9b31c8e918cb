/** The room a burst's armed shells have under the open-file limit. */
import { assert, assertEquals, assertThrows } from "./assert.ts";
import { openFileRoom, room, softLimit } from "../src/daemon/open_files.ts";

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max processes             95541                95541                processes
Max open files            1024                 524288               files
Max locked memory         8388608              8388608              bytes
`;

Deno.test("open files: the soft limit is read from /proc's limits", () => {
  assertEquals(softLimit(LIMITS), 1024);
  assertEquals(softLimit(LIMITS.replace("1024  ", "unlimited")), Infinity);
  assertThrows(() => softLimit(LIMITS.replace("1024  ", "many  ")), Error, "no soft limit");
  assertThrows(() => softLimit("Limit Soft Limit\n"), Error, "no soft limit");
});

Deno.test("open files: the room is the limit less what is open and what is kept", () => {
  assertEquals(room(1024, 100, 64), 860);
  assertEquals(room(1024, 1000, 64), 0);
  assertEquals(room(Infinity, 100, 64), Infinity);
});

Deno.test({
  name: "open files: this process's room is read from /proc",
  ignore: Deno.build.os !== "linux",
  fn: () => {
    // Other test files open and close descriptors meanwhile: only its sense is certain.
    const left = openFileRoom(64);
    assert(Number.isInteger(left) && left >= 0, `room: ${left}`);
    assert(openFileRoom(1e9) === 0, "a reserve above the limit leaves none");
  },
});
