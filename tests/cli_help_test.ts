/**
 * Help and completion (issue 8, point 7): subcommand help shows the global
 * options; `help job add` is the help of `job add`; every command's help
 * ends with examples; `completions bash|zsh|fish` comes from the command
 * tree, and the bash one completes commands, options and their values.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { buildTree, isGroup } from "../src/cli/app.ts";
import type { Target } from "../src/cli/command.ts";
import { EXAMPLES } from "../src/cli/examples.ts";
import { cli } from "./helpers.ts";

/** Every command path of the tree: "" for the program, then `job`, `job add`, … */
function paths(target: Target, path = ""): string[] {
  const entries = isGroup(target) ? target.getAllEntries() : [];
  return [
    path,
    ...entries.flatMap((e) => {
      const name = e.name["convert-camel-to-kebab"];
      return paths(e.target, path === "" ? name : `${path} ${name}`);
    }),
  ];
}

Deno.test("cli: subcommand help shows the global options and ends with examples", async () => {
  const [jobAdd, runsCancel, viaHelp] = await Promise.all([
    cli(["job", "add", "--help"]),
    cli(["runs", "cancel", "--help"]),
    cli(["help", "job", "add"]),
  ]);
  assertEquals([jobAdd.code, jobAdd.stderr], [0, ""]);
  const options = jobAdd.stdout.slice(jobAdd.stdout.indexOf("\nFLAGS\n"));
  for (const option of ["[--json]", "-d [--database]", "<url> database:", "-c [--config]"]) {
    assertStringIncludes(options, option);
  }
  assert(
    jobAdd.stdout.trimEnd().endsWith(
      `\nExamples:\n${EXAMPLES["job add"].map((e) => `  $ ${e}`).join("\n")}`,
    ),
    jobAdd.stdout,
  );
  assertMatch(
    runsCancel.stdout,
    /\nFLAGS\n(.|\n)*--database(.|\n)*\nExamples:\n {2}\$ jobsmanager runs cancel 42\n$/,
  );
  // `help job add` is the help of `job add`, not of `job`.
  assertEquals(viaHelp, jobAdd);
  assertEquals(await cli(["help", "job", "nope"]), {
    code: 2,
    stdout: "",
    stderr: "jobsmanager: help: 'job nope' is not a command (see `jobsmanager --help`)\n",
  });
});

Deno.test("cli: --help shows a command's help wherever it stands; -h where no argument goes", async () => {
  const remove = await cli(["job", "remove", "--help"]);
  assertEquals([remove.code, remove.stderr], [0, ""]);
  assertStringIncludes(remove.stdout, "\n      --help       Print help information and exit\n");
  assertEquals(await cli(["help", "job", "remove"]), remove);
  assertEquals(await cli(["job", "remove", "--database", "sqlite:x.db", "--help"]), remove);
  const list = await cli(["job", "list", "-h"]);
  assertEquals([list.code, list.stderr], [0, ""]);
  assertStringIncludes(list.stdout, "\n  -h  --help       Print help information and exit\n");
  assertEquals((await cli(["job", "-h"])).code, 0);
});

Deno.test("cli: every command has one or two examples that use it, and no example names a command that is gone", async () => {
  const all = paths(await buildTree());
  assertEquals(Object.keys(EXAMPLES).sort(), [...all].sort());
  for (const path of all) {
    const examples = EXAMPLES[path];
    assert(examples.length === 1 || examples.length === 2, `${path}: ${examples.length} examples`);
    for (const example of examples) {
      assertMatch(example, new RegExp(`\\bjobsmanager\\b.*${path}`), `an example of '${path}'`);
    }
  }
});

Deno.test("cli: no example writes to /tmp, which the unit's PrivateTmp hides; job add's tick is the README's", async () => {
  for (const [path, examples] of Object.entries(EXAMPLES)) {
    for (const example of examples) assert(!example.includes("/tmp/"), `${path}: ${example}`);
  }
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const tick = EXAMPLES["job add"].find((e) => e.includes(" tick "));
  assert(tick !== undefined, "job add has the tick example");
  assertStringIncludes(readme, tick.replace(/^jobsmanager /, "jm "));
});

Deno.test("cli: each import's --ignore speaks of what that source cannot import", async () => {
  const help = async (source: string) => {
    const r = await cli(["import", source, "--help"]);
    assertEquals(r.code, 0, r.stderr);
    return r.stdout.split("\n").filter((line) => line.includes("--ignore")).join("\n");
  };
  const apscheduler = await help("apscheduler");
  assertStringIncludes(apscheduler, "trigger has no cron schedule");
  assert(!/@reboot|crontab|systemd/.test(apscheduler), apscheduler);
  assertStringIncludes(await help("crontab"), "an @reboot line started by a systemd unit");
});

/** What bash completes for `words` (the last one being typed), with the script sourced. */
async function complete(dir: string, ...words: string[]): Promise<string> {
  const out = await new Deno.Command("bash", {
    args: [
      "-c",
      `source ${dir}/jobsmanager.bash
COMP_WORDS=("$@"); COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); COMPREPLY=()
_jobsmanager
printf '%s\\n' "\${COMPREPLY[@]}"`,
      "bash",
      ...words,
    ],
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assertEquals([out.code, new TextDecoder().decode(out.stderr)], [0, ""]);
  return text.trimEnd().split("\n").sort().join(" ");
}

Deno.test("cli: completions bash, sourced, completes commands, options and values", async () => {
  const r = await cli(["completions", "bash"]);
  assertEquals([r.code, r.stderr], [0, ""]);
  const dir = await Deno.makeTempDir({ prefix: "jm-completions-" });
  try {
    await Deno.writeTextFile(`${dir}/jobsmanager.bash`, r.stdout);
    await Deno.writeTextFile(`${dir}/jobs.json5`, "{ jobs: [] }");
    const registered = await new Deno.Command("bash", {
      args: ["-c", `source ${dir}/jobsmanager.bash; complete -p jobsmanager jm`],
      stdout: "piped",
    }).output();
    assertEquals(
      new TextDecoder().decode(registered.stdout),
      "complete -F _jobsmanager jobsmanager\ncomplete -F _jobsmanager jm\n",
    );
    assertEquals(await complete(dir, "jm", "jo"), "job");
    const c = (...words: string[]) => complete(dir, "jobsmanager", ...words);
    assertEquals(await c("jo"), "job");
    assertEquals(await c("job", "r"), "remove rm run");
    assertEquals(await c("runs", ""), "cancel list show");
    // `runs` alone is `runs list`: its options complete there too.
    assertEquals(await c("runs", "--li"), "--limit");
    // Global options before the command, and an option's value, are skipped.
    assertEquals(await c("--database", "sqlite:x.db", "job", "add", "x", "--cr"), "--cron");
    assertEquals(await c("job", "run", "x", "--q"), "--queue");
    assertEquals(await c("export", "--format", ""), "json5 yaml");
    assertEquals(await c("completions", ""), "bash fish zsh");
    assertEquals(await c("apply", "jobs."), "jobs.json5");
    assertEquals(await c("--config", "jobsmanager."), "jobsmanager.bash");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: completions zsh and fish come from the same tree; an unknown shell is a usage error", async () => {
  const [zsh, fish, bad] = await Promise.all([
    cli(["completions", "zsh"]),
    cli(["completions", "fish"]),
    cli(["completions", "tcsh"]),
  ]);
  assertEquals([zsh.code, fish.code, bad.code], [0, 0, 2]);
  assertStringIncludes(zsh.stdout, "autoload -U +X bashcompinit && bashcompinit\n");
  assertStringIncludes(zsh.stdout, "complete -F _jobsmanager jobsmanager jm\n");
  for (const path of paths(await buildTree()).filter((p) => p !== "")) {
    const [parent, name] = [path.split(" ").slice(0, -1).join(" "), path.split(" ").at(-1)];
    assertStringIncludes(zsh.stdout, `'${parent}|${name}') next='${path}' ;;`);
    assertStringIncludes(
      fish.stdout,
      `complete -c jobsmanager -n '__jobsmanager_at '\\''${parent}'\\''' -a '${name}'`,
    );
  }
  assertStringIncludes(fish.stdout, "-l database -s d -x -d");
  assertEquals(
    bad.stderr,
    "jobsmanager: shell must be one of bash, zsh, fish, not 'tcsh' (see `jobsmanager completions --help`)\n",
  );
});

Deno.test("cli: a group's default command lists the group alone as its alias, saying so", async () => {
  const r = await cli(["runs", "list", "--help"]);
  assertEquals([r.code, r.stderr], [0, ""]);
  assertStringIncludes(
    r.stdout,
    "\nALIASES\n  jobsmanager runs   (the group alone runs this command)\n",
  );
});
