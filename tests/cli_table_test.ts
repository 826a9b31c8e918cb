/**
 * The CLI's tables: columns padded to their widest cell, two spaces apart,
 * no blanks at a line's end, the last column cut to fit, the columns that
 * may go left out when even that is not enough.
 */
import { assert, assertEquals } from "./assert.ts";
import { table } from "../src/cli/output.ts";
import { BACKENDS, cli, freshDatabase } from "./helpers.ts";

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

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: a terminal of 0 columns (given no size) cuts no table, unless $COLUMNS says a width`, async () => {
    await using db = await freshDatabase(backend);
    const add = ["job", "add", "a", "--command", "echo a", "--cron", "0 0 1 1 *", "-d", db.url];
    assertEquals((await cli(add, { cwd: db.dir })).code, 0);
    const list = ["job", "list", "-d", db.url];
    const piped = await cli(list, { cwd: db.dir });
    const sized = await cli(list, { cwd: db.dir, env: { COLUMNS: "40" } });
    assertEquals([piped.code, sized.code], [0, 0]);
    assert(sized.stdout.includes("left out to fit 40 columns"), sized.stdout);
    for (
      const [env, expected] of [[{}, piped.stdout], [{ COLUMNS: "40" }, sized.stdout]] as const
    ) {
      const r = await cli(list, { cwd: db.dir, env, terminal: true });
      assertEquals([r.code, r.stdout.replaceAll("\r\n", "\n")], [0, expected], JSON.stringify(env));
    }
  });
}
