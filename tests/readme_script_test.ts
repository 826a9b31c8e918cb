/**
 * The README's script that runs jobsmanager from a checkout (no binary):
 * npx finds Deno, then the script execs Deno itself, so that under systemd
 * the unit's main process is the service. With `exec npx … run …`, npx's
 * process was the main one: READY=1 came from its grandchild (refused by
 * NotifyAccess=main), and SIGTERM ended npx, orphaning the service.
 */
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { waitFor } from "./helpers.ts";

const CHECKOUT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** The README's script, pointed at this checkout instead of /opt/jobsmanager. */
function readmeScript(): string {
  const readme = Deno.readTextFileSync(`${CHECKOUT}/README.md`);
  const blocks = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
  const script = blocks.find((b) =>
    b.startsWith("#!/bin/sh") && b.includes("/opt/jobsmanager/src/main.ts")
  );
  assert(script !== undefined, "the README shows no script that runs a checkout");
  return script.replaceAll("/opt/jobsmanager", CHECKOUT);
}

/** Where npx is, on PATH; null without Node. */
function npx(): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${dir}/npx`).isFile) return `${dir}/npx`;
    } catch {
      // Not in this one.
    }
  }
  return null;
}

if (npx() === null) {
  console.log(
    "readme_script_test: npx is not on PATH, so the README's script form is not tried: run the README's test command (npx --yes deno@2.9.6 task test)",
  );
}

Deno.test({
  name:
    "README's script install: the script's own process becomes the service, which SIGTERM stops cleanly",
  ignore: npx() === null,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "jm-script-" });
    try {
      await Deno.writeTextFile(`${dir}/jobsmanager`, readmeScript(), { mode: 0o755 });
      const child = new Deno.Command(`${dir}/jobsmanager`, {
        args: ["--database", `sqlite:${dir}/jobs.db`, "serve"],
        cwd: dir,
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const err: string[] = [];
      const reader = child.stderr.getReader();
      const drained = (async () => {
        const decoder = new TextDecoder();
        for (let read = await reader.read(); !read.done; read = await reader.read()) {
          err.push(decoder.decode(read.value, { stream: true }));
        }
      })();
      let ended = false;
      const status = child.status.then((s) => (ended = true, s));
      try {
        await waitFor(() => ended || err.join("").includes("loaded 0 enabled jobs"), {
          timeoutMs: 60_000,
          what: "the service started by the script to load its jobs",
          detail: () => err.join(""),
        });
        assert(!ended, `the script ended:\n${err.join("")}`);
        // The process the script was started as (systemd's main pid) is Deno running main.ts.
        const exe = Deno.readLinkSync(`/proc/${child.pid}/exe`);
        const argv = Deno.readTextFileSync(`/proc/${child.pid}/cmdline`).split("\0");
        assert(
          /\/deno$/.test(exe) && argv.includes(`${CHECKOUT}/src/main.ts`),
          `pid ${child.pid} is ${exe}: ${argv.join(" ")}`,
        );
        child.kill("SIGTERM");
        assertEquals((await status).code, 0, err.join(""));
        await drained;
        assertStringIncludes(err.join(""), `"message":"stopped"`);
      } finally {
        if (!ended) {
          child.kill("SIGKILL");
          // A process the script left behind (npx's child) would hold the pipe open.
          await reader.cancel();
        }
        await status;
        await drained;
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
