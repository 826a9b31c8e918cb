/** The room a burst's armed shells have under the open-file limit. */
import { assert, assertEquals } from "./assert.ts";
import { openFileRoom, softLimit } from "../src/daemon/open_files.ts";

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max processes             95541                95541                processes
Max open files            1024                 524288               files
Max locked memory         8388608              8388608              bytes
`;

Deno.test("open files: the soft limit is read from /proc's limits", () => {
  assertEquals(softLimit(LIMITS), 1024);
  assertEquals(softLimit(LIMITS.replace("1024  ", "unlimited")), Infinity);
});

Deno.test("open files: each file opened takes one from the room", () => {
  const before = openFileRoom();
  assert(Number.isFinite(before) && before > 100, `room on Linux: ${before}`);
  const files = Array.from({ length: 10 }, () => Deno.openSync("/dev/null"));
  try {
    assertEquals(openFileRoom(), before - 10);
  } finally {
    for (const file of files) file.close();
  }
  assertEquals(openFileRoom(), before);
});
