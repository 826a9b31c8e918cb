/**
 * The CLI's arguments as typed: Deno drops one trailing carriage return
 * from each and makes U+FFFD of bytes that are not UTF-8; the CLI puts the
 * first back and tells the second from a U+FFFD typed as such, from the
 * kernel's command line.
 */
import { assertEquals } from "./assert.ts";
import { BACKENDS, type CliResult, freshDatabase, jm, MAIN } from "./helpers.ts";
import { lossy, typedArgs } from "../src/cli/argv.ts";

const bytes = (...args: (string | number[])[]) =>
  args.map((a) => typeof a === "string" ? new TextEncoder().encode(a) : new Uint8Array(a));

Deno.test("typedArgs: each dropped carriage return comes back from the command line", () => {
  const cmdline = bytes("deno", "run", "-A", "main.ts", "job", "x\r", "y\r\r", "\rz", "w");
  assertEquals(
    typedArgs(["job", "x", "y\r", "\rz", "w"], cmdline),
    { args: ["job", "x\r", "y\r\r", "\rz", "w"], utf8: [true, true, true, true, true] },
  );
});

Deno.test("typedArgs: a U+FFFD typed as such is UTF-8; bytes that are not UTF-8 are marked", () => {
  const cmdline = bytes("prog", "a\uFFFDb", [0x65, 0xff, 0x0d], [0xff, 0x41]);
  assertEquals(
    typedArgs(["a\uFFFDb", "e\uFFFD", "\uFFFDA"], cmdline),
    { args: ["a\uFFFDb", "e\uFFFD", "\uFFFDA"], utf8: [true, false, false] },
  );
});

Deno.test("typedArgs: a command line that does not line up is no guide", () => {
  assertEquals(typedArgs(["a", "b"], bytes("prog", "a\r", "c")), lossy(["a", "b"]));
  assertEquals(typedArgs(["a", "b\uFFFD"], bytes("b\r")), lossy(["a", "b\uFFFD"]));
  assertEquals(typedArgs(["x\uFFFD"], bytes("prog", [0xff])), lossy(["x\uFFFD"]));
  assertEquals(lossy(["a", "\uFFFD"]).utf8, [true, false]);
});

/** The CLI run through a shell that makes `raw` of the printf format given, as a terminal would. */
async function cliWithBytes(db: { url: string; dir: string }, args: string[], raw: string) {
  const out = await new Deno.Command("/bin/sh", {
    args: [
      "-c",
      `exec "$@" "$(printf '${raw}')"`,
      "sh",
      Deno.execPath(),
      "run",
      "--allow-all",
      "--quiet",
      MAIN,
      "--database",
      db.url,
      ...args,
    ],
    cwd: db.dir,
    env: { NO_COLOR: "1" },
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) } as CliResult;
}

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: values are stored as typed: a carriage return at the end, a U+FFFD typed as such`, async () => {
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
      "ends in CR\r, holds \uFFFD",
      "--env",
      "SEP=\r",
    );
    assertEquals(added.code, 0, added.stderr);
    const shown = await jm(db, "--json", "job", "show", "cr");
    assertEquals(shown.code, 0, shown.stderr);
    const job = JSON.parse(shown.stdout);
    assertEquals(
      [job.command, job.description, job.env],
      ["printf x\r", "ends in CR\r, holds \uFFFD", { SEP: "\r" }],
      shown.stdout,
    );
  });

  Deno.test(`cli[${backend}]: a value of bytes that are not UTF-8 is refused, naming its option`, async () => {
    await using db = await freshDatabase(backend);
    const r = await cliWithBytes(
      db,
      ["job", "add", "bytes", "--minute", "5", "--command"],
      "echo \\377",
    );
    assertEquals(
      { code: r.code, stdout: r.stdout, stderr: r.stderr },
      {
        code: 2,
        stdout: "",
        stderr:
          "jobsmanager: the value of --command holds U+FFFD (\uFFFD), which is what bytes that are not UTF-8 become as they are read: jobsmanager cannot tell what was typed; give it in UTF-8 (a command can make such bytes itself, e.g. printf '\\377')\n",
      },
    );
    const listed = await jm(db, "--json", "job", "list");
    assertEquals(listed.stdout.includes("bytes"), false, listed.stdout);
  });
}
