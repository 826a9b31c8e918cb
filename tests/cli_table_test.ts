/**
 * The CLI's tables: columns padded to their widest cell, two spaces apart,
 * no blanks at a line's end, the last column cut to fit, the columns that
 * may go left out when even that is not enough.
 */
import { assertEquals } from "./assert.ts";
import { table } from "../src/cli/output.ts";

Deno.test("table: columns padded to their widest cell, lines without blanks at the end", () => {
  assertEquals(
    table(["ID", "NOTE"], [["a", "first"], ["bbbb", ""], ["c", "ends in a blank "], ["", "  "]]),
    ["ID    NOTE", "a     first", "bbbb", "c     ends in a blank", ""].join("\n"),
  );
  assertEquals(table(["A", "B", "C"], [["x", "", ""]]), "A  B  C\nx");
});

Deno.test("table: the last column cut with … to fit, then columns left out, and said so", () => {
  const rows = [["job.1", "60s", "echo one two three"]];
  assertEquals(
    table(["ID", "TIMEOUT", "COMMAND"], rows, { width: 30, hide: ["TIMEOUT"] }),
    "ID     TIMEOUT  COMMAND\njob.1  60s      echo one two …",
  );
  assertEquals(
    table(["ID", "TIMEOUT", "COMMAND"], rows, { width: 20, hide: ["TIMEOUT"] }),
    "ID     COMMAND\njob.1  echo one two…\n(TIMEOUT left out to fit 20 columns; --json has everything)",
  );
});
