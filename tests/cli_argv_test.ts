/**
 * The CLI's arguments as typed: Deno drops one trailing carriage return
 * from each, and the CLI puts it back from the kernel's command line.
 */
import { assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase, jm } from "./helpers.ts";
import { restoreCarriageReturns } from "../src/cli/argv.ts";

Deno.test("restoreCarriageReturns: each dropped carriage return comes back from the command line", () => {
  const cmdline = ["deno", "run", "-A", "main.ts", "job", "x\r", "y\r\r", "\rz", "w"];
  assertEquals(
    restoreCarriageReturns(["job", "x", "y\r", "\rz", "w"], cmdline),
    ["job", "x\r", "y\r\r", "\rz", "w"],
  );
});

Deno.test("restoreCarriageReturns: a command line that does not line up leaves the arguments as they are", () => {
  // Another difference than one carriage return: the two are not the same arguments.
  assertEquals(restoreCarriageReturns(["a", "b"], ["prog", "a\r", "c"]), ["a", "b"]);
  // Shorter than the arguments.
  assertEquals(restoreCarriageReturns(["a", "b"], ["b\r"]), ["a", "b"]);
  assertEquals(restoreCarriageReturns([], ["prog"]), []);
});

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: a value ending in a carriage return is stored as typed, as the API and jobs files store it`, async () => {
    await using db = await freshDatabase(backend);
    const added = await jm(
      db,
      "job",
      "add",
      "cr",
      "--command",
      "printf x\r",
      "--cron",
      "0 0 * * *",
      "--description",
      "ends in CR\r",
      "--env",
      "SEP=\r",
    );
    assertEquals(added.code, 0, added.stderr);
    const shown = await jm(db, "--json", "job", "show", "cr");
    assertEquals(shown.code, 0, shown.stderr);
    const job = JSON.parse(shown.stdout);
    assertEquals(
      [job.command, job.description, job.env],
      ["printf x\r", "ends in CR\r", { SEP: "\r" }],
      shown.stdout,
    );
  });
}
