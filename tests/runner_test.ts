/**
 * Running commands: real processes, short ones. A service's runs start
 * natively here where they can (native_spawn.ts); runner_command_test.ts
 * runs these tests again as where they cannot.
 */
import { DirectoryChecks } from "../src/daemon/directory_check.ts";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { HeadTailCapture, MarkedCapture } from "../src/daemon/capture.ts";
import { cutLine } from "../src/domain/output_cut.ts";
import { existsSync } from "node:fs";
import { armRun, type RunSpec, spawnCost, startRun } from "../src/daemon/runner.ts";
import { nativeSpawner, signalName } from "../src/daemon/native_spawn.ts";
import { alive, livePidsMatching, waitFor, withTestAccount } from "./helpers.ts";

const encode = (s: string) => new TextEncoder().encode(s);
const decode = (b: Uint8Array) => new TextDecoder().decode(b);

function spec(command: string, extra: Partial<RunSpec> = {}): RunSpec {
  return {
    command,
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
    timeoutMs: 10_000,
    killGraceMs: 500,
    outputCap: 1024,
    ...extra,
  };
}

Deno.test("capture keeps everything under the cap", () => {
  const c = new HeadTailCapture(100);
  c.push(encode("hello "));
  c.push(encode("world"));
  assertEquals(c.text(), "hello world");
  assertEquals(c.bytes, 11);
});

Deno.test("a marked capture drops the mark its stream begins with, in any chunks; a stream without it is kept whole", () => {
  const marked = (chunks: string[]) => {
    const c = new MarkedCapture(100, encode("MARK:"));
    for (const chunk of chunks) c.push(encode(chunk));
    return [c.marked, c.text(), c.bytes];
  };
  assertEquals(marked(["MA", "RK", ":note\n"]), [true, "note\n", 5]);
  assertEquals(marked(["MARK:"]), [true, "", 0]);
  assertEquals(marked(["MA", "RX:note"]), [false, "MARX:note", 9]);
  assertEquals(marked(["MAR"]), [false, "MAR", 3], "ended within the mark: output");
  assertEquals(marked(["note MARK:"]), [false, "note MARK:", 10]);
  // What it keeps is what it shows (a run's live output), as it learns it.
  for (const chunks of [["MA", "RK", ":note\n"], ["MA", "RX:note"], ["MAR"], ["note MARK:"]]) {
    let shown = "";
    const c = new MarkedCapture(100, encode("MARK:"), (chunk) => shown += decode(chunk));
    for (const chunk of chunks) c.push(encode(chunk));
    const kept = c.text();
    assertEquals(shown, kept, chunks.join("|"));
  }
});

Deno.test("capture keeps the head and the tail and says how much it cut", () => {
  const c = new HeadTailCapture(10);
  for (const chunk of ["abc", "defgh", "ijklmnop", "qrstuvwxyz"]) c.push(encode(chunk));
  assertEquals(c.bytes, 26);
  assertEquals(c.text(), "abcde\n[… jobsmanager cut 16 bytes of 26 …]\nvwxyz");
});

Deno.test("capture takes its memory as output comes, and keeps every byte across its growth", () => {
  const c = new HeadTailCapture(4096);
  let all = "";
  for (let i = 0; i < 1000; i++) {
    const chunk = `${i.toString().padStart(4, "0")}|`;
    c.push(encode(chunk));
    all += chunk;
    if (i === 400) assertEquals(c.text(), all, "all kept while under the cap");
  }
  const cut = all.length - 4096;
  assertEquals(
    c.text(),
    `${all.slice(0, 2048)}\n[… jobsmanager cut ${cut} bytes of ${all.length} …]\n${
      all.slice(-2048)
    }`,
  );
});

Deno.test("capture of a huge stream stays within its cap", () => {
  const c = new HeadTailCapture(64);
  const chunk = new Uint8Array(1 << 20).fill(120);
  for (let i = 0; i < 50; i++) c.push(chunk);
  assertEquals(c.bytes, 50 << 20);
  assert(c.text().length < 200);
});

Deno.test("capture keeps every byte: NUL and what is not UTF-8 written \\xNN", () => {
  const c = new HeadTailCapture(100);
  c.push(encode("héllo "));
  c.push(new Uint8Array([0x61, 0x00, 0x62, 0xff, 0x63, 0xe2, 0x82, 0x0a]));
  c.push(encode("€ end"));
  assertEquals(c.text(), "héllo a\\x00b\\xffc\\xe2\\x82\n€ end");
});

Deno.test("capture: escaped bytes count as written, so the text stays within the cap", () => {
  const zeros = new HeadTailCapture(20);
  zeros.push(new Uint8Array(100));
  assertEquals(
    zeros.text(),
    String.raw`\x00\x00` + "\n[… jobsmanager cut 96 bytes of 100 …]\n" + String.raw`\x00\x00`,
  );
  const emoji = new HeadTailCapture(20);
  emoji.push(encode("😀😀😀"));
  assertEquals(emoji.text(), "😀😀😀");
});

Deno.test("capture cuts at characters' edges: none is split where head and tail meet", () => {
  // The head's buffer ends inside "€": whole, the text is over the cap (the \xff take 4 bytes each).
  const c = new HeadTailCapture(4096);
  c.push(new Uint8Array(20).fill(0xff));
  c.push(encode("a".repeat(2027) + "€" + "b".repeat(2000)));
  const text = c.text();
  assertStringIncludes(text, "a€b");
  assert(!text.includes("\\x82"), text.slice(-2100, -2000));
  assertMatch(text, /\n\[… jobsmanager cut \d+ bytes of 4050 …\]\n/);
});

Deno.test("a run gets its environment and cwd, and records output and exit code", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const result = await startRun(
      spec('echo "$GREETING from $(pwd)"; echo oops >&2; exit 7', {
        env: { GREETING: "hi", PATH: "/usr/bin:/bin" },
        cwd: dir,
      }),
    ).done;
    assertEquals(result.status, "failed");
    assertEquals(result.exitCode, 7);
    assertEquals(result.stdout, `hi from ${await Deno.realPath(dir)}\n`);
    assertEquals(result.stderr, "oops\n");
    assert(result.finishedAt >= result.startedAt);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a run's shell leads a session and a process group of its own", async () => {
  const handle = startRun(spec("cat /proc/$$/stat"));
  const result = await handle.done;
  // "pid (comm) state ppid pgrp session …"
  const [pid, , , , pgrp, session] = result.stdout.replace(/\(.*\)/, "comm").split(" ");
  assertEquals([pid, pgrp, session].map(Number), [handle.pid, handle.pid, handle.pid]);
});

/** /bin/sh is dash: only then do util-linux's tools start in the C locale (runner.ts `shell`). */
const SH_IS_DASH = Deno.realPathSync("/bin/sh").endsWith("/dash");

Deno.test("setsid starts in the C locale where sh is dash, yet the command sees LC_ALL as its environment has it", async () => {
  // What the shell was started with (its exec's environment), then what the command sees.
  const command =
    `tr '\\0' '\\n' < /proc/$$/environ | grep '^LC_ALL='; echo "\${LC_ALL-unset}"; env | grep -c '^LC_ALL=' || true`;
  for (const standalone of [false, true]) {
    // A service's run started natively execs no util-linux tool: its shell gets the environment as it is.
    const viaSetsid = standalone || nativeSpawner() === null;
    const cases = [[{}, `${SH_IS_DASH && viaSetsid ? "LC_ALL=C\n" : ""}unset\n0\n`], [
      { LC_ALL: "C.UTF-8" },
      "LC_ALL=C.UTF-8\nC.UTF-8\n1\n",
    ]] as const;
    for (const [env, want] of cases) {
      const run = spec(command, { env: { PATH: "/usr/bin:/bin", ...env }, standalone });
      assertEquals((await startRun(run).done).stdout, want, `started, ${JSON.stringify(env)}`);
      if (standalone) continue;
      const armed = armRun({ ...run, env: { ...run.env, JM_RUN_ID: "" } })!;
      const released = armed.release({ ...run, env: { ...run.env, JM_RUN_ID: "1" } });
      assertEquals((await released.done).stdout, want, `armed, ${JSON.stringify(env)}`);
    }
  }
});

Deno.test("a command near Linux's 128 KiB for one argument still starts", async () => {
  // 131,066 bytes: the C locale's prefix would take it past the limit.
  const command = `echo ok #${"x".repeat(131_057)}`;
  const result = await startRun(spec(command)).done;
  assertEquals([result.status, result.stdout, result.note], ["success", "ok\n", null]);
});

Deno.test("a standalone run's shell is killed when the process that started it dies", async () => {
  const seconds = `300.${Math.floor(Math.random() * 100_000)}`;
  const script = `import { startRun } from ${
    JSON.stringify(import.meta.resolve("../src/daemon/runner.ts"))
  };
const handle = startRun({ command: "sleep ${seconds}; true", env: {}, timeoutMs: 0, killGraceMs: 500, outputCap: 100, standalone: true });
console.log(handle.pid);
await handle.done;`;
  const parent = new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = parent.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const shell = Number((await reader.read()).value);
  try {
    await waitFor(() => livePidsMatching(`sleep ${seconds}`).length > 0, {
      timeoutMs: 15_000,
      what: "the run's sleep to start",
    });
    parent.kill("SIGKILL");
    await parent.status;
    await waitFor(() => !alive(shell), {
      timeoutMs: 15_000,
      what: `the run's shell ${shell} to be killed with its parent`,
    });
  } finally {
    await reader.cancel();
    for (const pid of livePidsMatching(`sleep ${seconds}`)) Deno.kill(pid, "SIGKILL");
  }
});

/**
 * This process holds a descriptor open without O_CLOEXEC and ignores
 * SIGQUIT during `body`, as one started by a deploy script in the
 * background would: what a run's shell must not inherit.
 */
async function asIfStartedInTheBackground(body: () => Promise<void>): Promise<void> {
  const lib = Deno.dlopen("libc.so.6", {
    dup: { parameters: ["i32"], result: "i32" },
    close: { parameters: ["i32"], result: "i32" },
    signal: { parameters: ["i32", "pointer"], result: "pointer" },
  });
  const SIGQUIT = 3;
  const held = lib.symbols.dup(2);
  lib.symbols.signal(SIGQUIT, Deno.UnsafePointer.create(1n));
  try {
    await body();
  } finally {
    lib.symbols.signal(SIGQUIT, null);
    lib.symbols.close(held);
    lib.close();
  }
}

Deno.test("a run's shell, a hook's too, gets no signal blocked or ignored and no descriptor but 0-2", async () => {
  const ignored = (status: string) => BigInt(`0x${/^SigIgn:\s+(\w+)/m.exec(status)![1]}`);
  // Signals 32 and 33 are glibc's own (cancellation, setxid): its posix_spawn and its sigaction
  // leave them ignored, and every glibc program sets them itself.
  const glibcs = 3n << 31n;
  await asIfStartedInTheBackground(async () => {
    // The service ignores SIGPIPE (Deno does) and now SIGQUIT: its runs must not.
    assertEquals(ignored(Deno.readTextFileSync("/proc/self/status")) & ~glibcs, 0x1004n);
    // Read by the shell itself: dash blocks every signal while it forks a command, which a grep
    // reading the shell's status would see.
    const command =
      `while IFS= read -r l; do case $l in SigBlk*|SigIgn*) echo "$l";; esac; done </proc/$$/status; ls /proc/$$/fd`;
    for (
      const run of [
        startRun(spec(command)),
        armRun(spec(command))!.release(spec(command)),
        startRun(spec(command, { stdin: "{}" })),
      ]
    ) {
      const { stdout, stderr } = await run.done;
      assertMatch(stdout, /^SigBlk:\t0+\n/, stderr);
      assertEquals(ignored(stdout) & ~glibcs, 0n, stdout);
      assertEquals(stdout.split("\n").slice(2, -1).join(" "), "0 1 2", stdout);
    }
  });
});

Deno.test("a run ended by a signal it was not sent by jobsmanager is killed, with the signal's name", async () => {
  const result = await startRun(spec("kill -USR1 $$")).done;
  assertEquals([result.status, result.signal, result.exitCode], ["killed", "SIGUSR1", null]);
  assertEquals(result.note, "ended by SIGUSR1, not sent by jobsmanager");
});

Deno.test("a run ended by a real-time signal, which Deno cannot name, is killed, the signal named as `kill -l` names it", async () => {
  for (const [number, name] of [[34, "SIGRTMIN"], [50, "SIGRTMAX-14"], [64, "SIGRTMAX"]] as const) {
    const result = await startRun(spec(`echo before; kill -${number} $$`)).done;
    assertEquals(
      [result.status, result.signal, result.exitCode, result.stdout],
      ["killed", name, null, "before\n"],
      `signal ${number}`,
    );
    assertEquals(result.note, `ended by ${name}, not sent by jobsmanager`);
  }
});

Deno.test("signal numbers are named as Linux's `kill -l` names them", () => {
  assertEquals(
    [9, 31, 32, 34, 35, 49, 50, 63, 64, 65].map(signalName),
    [
      "SIGKILL",
      "SIGSYS",
      "SIG32",
      "SIGRTMIN",
      "SIGRTMIN+1",
      "SIGRTMIN+15",
      "SIGRTMAX-14",
      "SIGRTMAX-1",
      "SIGRTMAX",
      "SIG65",
    ],
  );
});

Deno.test("stdout and stderr far beyond a pipe's capacity at once: every byte is counted, head and tail kept", async () => {
  const bytes = 1_000_000;
  const result = await startRun(
    spec(
      `(head -c ${bytes} /dev/zero | tr '\\0' e; echo E) >&2 & head -c ${bytes} /dev/zero | tr '\\0' o; echo O; wait`,
    ),
  ).done;
  assertEquals(result.status, "success");
  assertEquals(result.outputBytes, 2 * bytes + 4);
  assert(result.stdout.startsWith("ooo") && result.stdout.endsWith("oO\n"), result.stdout);
  assert(result.stderr.startsWith("eee") && result.stderr.endsWith("eE\n"), result.stderr);
});

Deno.test("stdin is /dev/null, so a command reading it does not hang", async () => {
  const result = await startRun(spec("cat; echo done")).done;
  assertEquals([result.status, result.stdout], ["success", "done\n"]);
});

Deno.test("a timeout kills the whole process group, background children included", async () => {
  const marker = `sleep 4${Math.floor(Math.random() * 1000).toString().padStart(3, "0")}`;
  const result = await startRun(spec(`${marker} & ${marker}`, { timeoutMs: 300, killGraceMs: 300 }))
    .done;
  assertEquals(result.status, "timeout");
  assertStringIncludes(result.note ?? "", "timeout of 0.3 s");
  assertEquals(livePidsMatching(marker), [], "no process of the group survives");
});

Deno.test("a group that ignores SIGTERM is killed after the grace", async () => {
  const marker = `sleep 5${Math.floor(Math.random() * 1000).toString().padStart(3, "0")}`;
  const result = await startRun(
    // A timeout long enough for the shell to reach its traps on a busy machine.
    spec(`trap '' TERM; ${marker} & trap '' TERM; ${marker}`, {
      timeoutMs: 3000,
      killGraceMs: 300,
    }),
  ).done;
  assertEquals(result.status, "timeout");
  assertEquals(result.signal, "SIGKILL");
  assertEquals(livePidsMatching(marker), []);
});

Deno.test("interrupt ends a run as interrupted, even at once after its start", async () => {
  // Before setsid has made the run's group, the child alone is signalled.
  const handle = startRun(spec("sleep 30"));
  handle.interrupt();
  const result = await handle.done;
  assertEquals([result.status, result.signal], ["interrupted", "SIGTERM"]);
});

Deno.test("interrupt after the shell has ended on its own changes nothing: the run keeps its exit", async () => {
  // The shell exits 0 once a process that left its group, ignoring
  // SIGTERM, has started; that process holds the output open, so the run
  // ends only after the runner has ended it.
  const seconds = `300.${Math.floor(Math.random() * 100_000)}`;
  const ready = await Deno.makeTempFile();
  const handle = startRun(
    spec(
      `setsid sh -c 'trap "" TERM; echo up > ${ready}; sleep ${seconds}' & ` +
        `until [ -s ${ready} ]; do :; done; exit 0`,
      { killGraceMs: 300 },
    ),
  );
  try {
    // Reaped: the runner has heard the exit in the same turn.
    await waitFor(() => !existsSync(`/proc/${handle.pid}`), {
      timeoutMs: 10_000,
      what: `the run's shell (pid ${handle.pid}) to be reaped`,
    });
    handle.interrupt();
    const result = await handle.done;
    assertEquals([result.status, result.exitCode, result.signal], ["success", 0, null]);
    assertMatch(
      result.note ?? "",
      /^2 processes had left the run's process group and still ran after it: .*ended with SIGKILL after 0.3 s of SIGTERM$/,
    );
  } finally {
    for (const pid of livePidsMatching(`sleep ${seconds}`)) Deno.kill(pid, "SIGKILL");
    await Deno.remove(ready);
  }
});

Deno.test("the runner knows how long a spawn holds its thread, for how early to arm a burst", async () => {
  const result = await startRun(spec("true")).done;
  assertEquals(result.status, "success");
  assert(spawnCost() > 0 && spawnCost() < 10_000, `spawnCost() is ${spawnCost()} ms`);
});

Deno.test("a command that cannot start is an error, not a crash", async () => {
  for (const extra of [{ cwd: "/nonexistent/dir" }, { env: { NUL: "a\0b" } }]) {
    const result = await startRun(spec("true", extra)).done;
    assertEquals(result.status, "error", JSON.stringify(extra));
    assertMatch(result.note ?? "", /could not start the command/);
  }
});

Deno.test("output beyond the cap is cut, not kept", async () => {
  const result = await startRun(
    spec("head -c 5000000 /dev/zero | tr '\\0' x; echo; echo END", { outputCap: 100 }),
  ).done;
  assertEquals(result.status, "success");
  assertStringIncludes(result.stdout, "jobsmanager cut");
  assert(result.stdout.endsWith("END\n"));
  assert(result.stdout.length < 200);
});

Deno.test("a secret the cut splits in two is not shown in part on either side of the cut", async () => {
  const token = "Zq7-SECRET-token-0123456789";
  const chars = (n: number, c: string) => `head -c ${n} /dev/zero | tr '\\0' ${c}`;
  // The head keeps 512 bytes, the tail 512: the token's first 10 characters end the head on
  // stdout, its last 10 start the tail on stderr. 26 bytes (the token's 27, less one) go at
  // either side of the cut, and the cut line counts them.
  const command = `${chars(502, "a")}; printf %s ${token}; ${chars(100_000, "b")}; ` +
    `(${chars(100_000, "c")}; printf %s ${token}; ${chars(502, "d")}) >&2`;
  const result = await startRun(spec(command, { secrets: [token] })).done;
  assertEquals(result.status, "success", result.stderr);
  assertEquals(result.stdout, `${"a".repeat(486)}${cutLine(99_557, 100_529)}${"b".repeat(486)}`);
  assertEquals(result.stderr, `${"c".repeat(486)}${cutLine(99_557, 100_529)}${"d".repeat(486)}`);
});

Deno.test("what is kept at the cut does not depend on the secrets' characters: no oracle", () => {
  const output = `${"x".repeat(37)}customer_data${"y".repeat(1000)}data_customer${"z".repeat(37)}`;
  const texts = ["abcdefghij12345", "zyxwvutsrq54321", "xxcustomer_dat"].map((secret) => {
    const c = new HeadTailCapture(100);
    c.push(encode(output));
    return c.text([secret]);
  });
  // Where `***` fell told a secret's first or last characters (`customer_dat***`).
  assertEquals(texts[0], `${"x".repeat(36)}${cutLine(1028, 1100)}${"z".repeat(36)}`);
  assertEquals(texts[1], texts[0]);
  // A whole secret across the edge (14 characters: 13 bytes go) goes whole, not in part.
  assertEquals(texts[2], `${"x".repeat(35)}${cutLine(1028, 1100)}${"z".repeat(37)}`);
});

Deno.test("bytes go at the cut only when it happens and there are secrets long enough to mask", () => {
  const c = new HeadTailCapture(100);
  c.push(encode("short and whole, customer_data"));
  assertEquals(c.text(["customer_data"]), "short and whole, ***");
  const cut = new HeadTailCapture(10);
  cut.push(encode("abcdefghijklmnopqrstuvwxyz"));
  assertEquals(cut.text(["abc"]), "abcde\n[… jobsmanager cut 16 bytes of 26 …]\nvwxyz");
});

Deno.test("a secret too short to be masked is not masked in part at the cut either", async () => {
  const chars = (n: number, c: string) => `head -c ${n} /dev/zero | tr '\\0' ${c}`;
  const command = `${chars(600, "a")}; ${chars(100_000, "b")}`;
  const result = await startRun(spec(command, { secrets: ["ab"] })).done;
  assertEquals(result.status, "success", result.stderr);
  assertMatch(result.stdout, /^a{512}\n\[… jobsmanager cut \d+ bytes of 100600 …\]\nb{512}$/);
});

Deno.test("a process that leaves the group and holds the output is ended, and named in the note", async () => {
  const marker = `sleep 6${Math.floor(Math.random() * 1000).toString().padStart(3, "0")}`;
  const result = await startRun(
    spec(`setsid ${marker} & sleep 0.3; echo started`, { killGraceMs: 200 }),
  ).done;
  try {
    assertEquals([result.status, result.stdout], ["success", "started\n"]);
    assertMatch(
      result.note ?? "",
      new RegExp(
        `^1 process had left the run's process group and still ran after it: pid \\d+ \\(${marker}\\); ended with SIGTERM$`,
      ),
    );
    assertEquals(livePidsMatching(marker), []);
  } finally {
    for (const pid of livePidsMatching(marker)) Deno.kill(pid, "SIGKILL");
  }
});

Deno.test("a secret in an escaped process's command line is masked before the note cuts the line", async () => {
  const marker = `sleep 6${Math.floor(Math.random() * 1000).toString().padStart(3, "0")}`;
  const secret = "Zq7-SECRET-token-0123456789";
  // The secret starts before the note's 80 characters of the command line and ends after.
  const result = await startRun(
    spec(`setsid sh -c "${marker}; : ${"p".repeat(50)} ${secret}" & sleep 0.3; echo started`, {
      killGraceMs: 200,
      secrets: [secret],
    }),
  ).done;
  try {
    const note = result.note ?? "";
    assertMatch(note, /^2 processes had left the run's process group/);
    assert(!note.includes("Zq7-"), note);
    assertMatch(note, /\(sh -c sleep 6\d{3}; : p{50} \*\*\*\)/);
  } finally {
    for (const pid of livePidsMatching(marker)) Deno.kill(pid, "SIGKILL");
  }
});

Deno.test("a note names the first 20 processes that left the group and counts the rest", async () => {
  // Hundreds named made a note longer than MySQL's TEXT column, which refused the run's end.
  const marker = `sleep 6${Math.floor(Math.random() * 1000).toString().padStart(3, "0")}`;
  const result = await startRun(
    spec(`for i in $(seq 25); do setsid ${marker} & done; sleep 0.5; echo started`, {
      killGraceMs: 200,
    }),
  ).done;
  try {
    assertEquals([result.status, result.stdout], ["success", "started\n"]);
    const note = result.note ?? "";
    assertMatch(note, /^25 processes had left the run's process group and still ran after it: /);
    assertEquals(note.split(` (${marker})`).length - 1, 20, note);
    assertMatch(note, / and 5 more; ended with SIGTERM$/);
  } finally {
    for (const pid of livePidsMatching(marker)) Deno.kill(pid, "SIGKILL");
  }
});

/** Unique `sleep` arguments, for processes a test looks for by their command line. */
function uniqueSleeps(n: number): string[] {
  const base = 300 + Math.floor(Math.random() * 100_000) / 1000;
  return Array.from({ length: n }, (_, i) => `${base + i}`);
}

Deno.test("a process that left the group and leads one of its own is ended with its group, its members without the marker named too", async () => {
  // env -u (as sudo's env_reset) starts the group's member without the marker.
  const [member, leader] = uniqueSleeps(2);
  try {
    const handle = startRun(
      spec(
        `setsid sh -c 'env -u JM_RUN_MARKER sleep ${member} & sleep ${leader}' >/dev/null 2>&1 & ` +
          `while ! pgrep -f '^sleep ${member}$' >/dev/null; do sleep 0.05; done; echo done`,
        { killGraceMs: 300 },
      ),
    );
    assertEquals((await handle.done).stdout, "done\n");
    const escaped = await handle.escaped;
    assertMatch(escaped ?? "", /^3 processes had left the run's process group/);
    for (const seconds of [member, leader]) {
      assertStringIncludes(escaped ?? "", `(sleep ${seconds})`);
    }
    await waitFor(() => livePidsMatching(`sleep ${member}`).length === 0, {
      timeoutMs: 10_000,
      what: "the group's member without the marker to be gone",
      detail: () => livePidsMatching(`sleep ${member}`),
    });
  } finally {
    for (const pid of livePidsMatching(`sleep ${member}`)) Deno.kill(pid, "SIGKILL");
    for (const pid of livePidsMatching(`sleep ${leader}`)) Deno.kill(pid, "SIGKILL");
  }
});

Deno.test("a group whose leader does not carry the marker is not signalled, only its marked member", async () => {
  const [marked, unmarked] = uniqueSleeps(2);
  try {
    const handle = startRun(
      spec(
        `M=$JM_RUN_MARKER setsid env -u JM_RUN_MARKER sh -c 'JM_RUN_MARKER=$M sleep ${marked} & sleep ${unmarked}' >/dev/null 2>&1 & ` +
          `while ! pgrep -f '^sleep ${marked}$' >/dev/null; do sleep 0.05; done; echo done`,
        { killGraceMs: 300 },
      ),
    );
    assertEquals((await handle.done).stdout, "done\n");
    const escaped = await handle.escaped;
    assertMatch(
      escaped ?? "",
      new RegExp(`^1 process had left .*: pid \\d+ \\(sleep ${marked}\\);`),
    );
    // Its leader (whose command line names it too) and its member still run.
    assertEquals(
      livePidsMatching(`sleep ${unmarked}`).length,
      2,
      "the unmarked group was signalled",
    );
  } finally {
    for (const pid of livePidsMatching(`sleep ${marked}`)) Deno.kill(pid, "SIGKILL");
    for (const pid of livePidsMatching(`sleep ${unmarked}`)) Deno.kill(pid, "SIGKILL");
  }
});

Deno.test("interrupted, a group whose leader exits on SIGTERM is killed after the grace, with the member it started then without the marker", async () => {
  const [member] = uniqueSleeps(1);
  const dir = await Deno.makeTempDir({ prefix: "jm-runner-" });
  try {
    // The leader's SIGTERM trap starts a cleanup without the marker that ignores SIGTERM, then
    // the leader exits: the group then holds only a process no pass saw before.
    await Deno.writeTextFile(
      `${dir}/leader.sh`,
      `trap 'env -u JM_RUN_MARKER sh -c "trap \\"\\" TERM; exec sleep ${member}" & sleep 0.2; exit 0' TERM\n` +
        `while :; do sleep 0.1; done\n`,
    );
    const handle = startRun(
      spec(
        `setsid sh ${dir}/leader.sh >/dev/null 2>&1 & trap 'sleep 2; exit 1' TERM; sleep 30 & wait`,
        {
          timeoutMs: 0,
          killGraceMs: 1500,
        },
      ),
    );
    await waitFor(() => livePidsMatching(`${dir}/leader.sh`).length > 0, {
      timeoutMs: 10_000,
      what: "the escaped leader to run",
    });
    handle.interrupt();
    const result = await handle.done;
    assertEquals(result.status, "interrupted");
    await waitFor(() => livePidsMatching(`sleep ${member}`).length === 0, {
      timeoutMs: 10_000,
      what: "the member the leader started on SIGTERM to be gone",
      detail: () => `${result.note}; alive: ${livePidsMatching(`sleep ${member}`)}`,
    });
  } finally {
    for (const pid of livePidsMatching(`sleep ${member}`)) Deno.kill(pid, "SIGKILL");
    for (const pid of livePidsMatching(`${dir}/leader.sh`)) Deno.kill(pid, "SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("interrupted, a group an escaped process led is killed after the grace, though its leader died of the SIGTERM", async () => {
  const [member, leader] = uniqueSleeps(2);
  try {
    // The leader dies of the SIGTERM; its member, without the marker, ignores it.
    const inner = `env -u JM_RUN_MARKER sh -c "trap \\"\\" TERM; sleep ${member}"`;
    const handle = startRun(
      // The run's shell ends a while after the SIGTERM: what ends the group is the SIGKILL the
      // grace's timer sends, with the groups the SIGTERM's pass found.
      spec(
        `setsid sh -c '${inner} & sleep ${leader}' >/dev/null 2>&1 & trap 'sleep 1; exit 1' TERM; sleep 30 & wait`,
        {
          timeoutMs: 0,
          killGraceMs: 300,
        },
      ),
    );
    const ignoresTerm = (pid: number) => {
      try {
        const status = Deno.readTextFileSync(`/proc/${pid}/status`);
        return (BigInt(`0x${/^SigIgn:\s+(\w+)/m.exec(status)![1]}`) & (1n << 14n)) !== 0n;
      } catch {
        return false; // gone meanwhile
      }
    };
    await waitFor(() => livePidsMatching(`sleep ${member}`).filter(ignoresTerm).length === 2, {
      timeoutMs: 10_000,
      what: "the group's member to ignore SIGTERM",
    });
    handle.interrupt();
    const result = await handle.done;
    assertEquals(result.status, "interrupted");
    assertMatch(result.note ?? "", new RegExp(`\\(sleep ${member}\\).*; ended with SIGKILL`));
    await waitFor(() => livePidsMatching(`sleep ${member}`).length === 0, {
      timeoutMs: 10_000,
      what: "the group's member that ignores SIGTERM to be gone",
      detail: () => result.note,
    });
  } finally {
    for (const pid of livePidsMatching(`sleep ${member}`)) Deno.kill(pid, "SIGKILL");
    for (const pid of livePidsMatching(`sleep ${leader}`)) Deno.kill(pid, "SIGKILL");
  }
});

/** `setsid sh -c 'trap "" TERM; sleep N' &`, its output elsewhere: it holds nothing of the run's. */
function escapee(seconds: string): string {
  return `setsid sh -c 'trap "" TERM; sleep ${seconds}' >/dev/null 2>&1 &`;
}

Deno.test("an escaped process that ignores SIGTERM is ended after the run, and named for its note", async () => {
  const seconds = `300.${Math.floor(Math.random() * 100_000)}`;
  try {
    const handle = startRun(spec(`${escapee(seconds)} sleep 0.2; echo done`, { killGraceMs: 300 }));
    const result = await handle.done;
    // Its group is empty and its output closed: the run is over at once.
    assertEquals([result.status, result.stdout, result.note], ["success", "done\n", null]);
    const escaped = await handle.escaped;
    assertMatch(escaped ?? "", /^\d process(es)? had left the run's process group/);
    assertMatch(
      escaped ?? "",
      new RegExp(
        `pids \\d+ \\(sh -c trap "" TERM; sleep ${seconds.replace(".", "\\.")}\\), \\d+ \\(sleep`,
      ),
    );
    assertStringIncludes(escaped ?? "", "ended with SIGKILL after 0.3 s of SIGTERM");
    assertEquals(livePidsMatching(`sleep ${seconds}`), []);
  } finally {
    for (const pid of livePidsMatching(`sleep ${seconds}`)) Deno.kill(pid, "SIGKILL");
  }
});

Deno.test("a run that timed out names the SIGKILL its escaped processes needed, sent by the timeout's timer", async () => {
  const seconds = `300.${Math.floor(Math.random() * 100_000)}`;
  try {
    // The shell ends 0.2 s after the timeout's SIGTERM, so the timer's SIGKILL comes while the
    // runner ends what is left; what left the group ignores SIGTERM until that SIGKILL.
    const result = await startRun(
      spec(`${escapee(seconds)} trap 'sleep 0.2; exit 1' TERM; sleep 30 & wait`, {
        timeoutMs: 500,
        killGraceMs: 300,
      }),
    ).done;
    assertEquals(result.status, "timeout");
    assertMatch(
      result.note ?? "",
      /^killed after the timeout of 0\.5 s; \d process(es)? had left the run's process group .*; ended with SIGKILL after 0\.3 s of SIGTERM$/,
    );
    assertEquals(livePidsMatching(`sleep ${seconds}`), []);
  } finally {
    for (const pid of livePidsMatching(`sleep ${seconds}`)) Deno.kill(pid, "SIGKILL");
  }
});

Deno.test("an interrupted run names what left its group, ended by the interrupt's SIGTERM", async () => {
  const seconds = `300.${Math.floor(Math.random() * 100_000)}`;
  try {
    const handle = startRun(
      spec(`setsid sleep ${seconds} >/dev/null 2>&1 & sleep 3${seconds}`, { killGraceMs: 3000 }),
    );
    // The sleeps themselves, not the run's shell whose command names them too.
    const sleeping = (what: string) =>
      livePidsMatching(what).some((pid) => {
        try {
          return Deno.readTextFileSync(`/proc/${pid}/cmdline`) === `sleep\0${what.slice(6)}\0`;
        } catch {
          return false; // It ended meanwhile.
        }
      });
    await waitFor(() => sleeping(`sleep ${seconds}`) && sleeping(`sleep 3${seconds}`), {
      timeoutMs: 10_000,
      what: "the process that leaves the group, and the shell's own sleep, to start",
    });
    // Its SIGTERM ends it at once: gone before the runner looks for what the run left.
    handle.interrupt("the service was shutting down");
    const result = await handle.done;
    assertEquals(result.status, "interrupted");
    assertMatch(
      result.note ?? "",
      new RegExp(
        `^killed: the service was shutting down; 1 process had left the run's process group and still ran after it: pid \\d+ \\(sleep ${
          seconds.replace(".", "\\.")
        }\\); ended with SIGTERM$`,
      ),
    );
  } finally {
    for (const pid of livePidsMatching(`sleep ${seconds}`)) Deno.kill(pid, "SIGKILL");
  }
});

Deno.test("a standalone run names what left its group in its own note", async () => {
  const seconds = `300.${Math.floor(Math.random() * 100_000)}`;
  try {
    const handle = startRun(
      spec(`${escapee(seconds)} sleep 0.2; echo done`, { killGraceMs: 300, standalone: true }),
    );
    const result = await handle.done;
    assertEquals([result.status, result.stdout], ["success", "done\n"]);
    assertMatch(result.note ?? "", /^\d process(es)? had left the run's process group/);
    assertEquals(await handle.escaped, null);
    assertEquals(livePidsMatching(`sleep ${seconds}`), []);
  } finally {
    for (const pid of livePidsMatching(`sleep ${seconds}`)) Deno.kill(pid, "SIGKILL");
  }
});

Deno.test("a run that leaves nothing behind names nothing", async () => {
  const handle = startRun(spec("sleep 0.01 & echo hi"));
  const result = await handle.done;
  assertEquals([result.status, result.stdout, result.note], ["success", "hi\n", null]);
  assertEquals(await handle.escaped, null);
});

Deno.test("at the timeout, an escaped process is ended with the group, and named", async () => {
  const seconds = `300.${Math.floor(Math.random() * 100_000)}`;
  try {
    const result = await startRun(
      // A timeout long enough for the escapee to have left the group on a busy machine.
      spec(`${escapee(seconds)} sleep 30`, { timeoutMs: 3000, killGraceMs: 300 }),
    ).done;
    assertEquals(result.status, "timeout");
    assertMatch(result.note ?? "", /^killed after the timeout of 3 s; \d process(es)? had left/);
    assertMatch(result.note ?? "", new RegExp(`\\(sleep ${seconds.replace(".", "\\.")}\\)`));
    assertEquals(livePidsMatching(`sleep ${seconds}`), []);
  } finally {
    for (const pid of livePidsMatching(`sleep ${seconds}`)) Deno.kill(pid, "SIGKILL");
  }
});

/** The pid of the one live process whose command line holds `needle`, once there is one. */
function onePid(needle: string): Promise<number> {
  return waitFor(() => livePidsMatching(needle)[0], {
    timeoutMs: 10_000,
    what: `a process running ${needle}`,
  });
}

Deno.test("an armed run's shell runs nothing until released; then its command, as the run it was released for", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const marker = crypto.randomUUID();
    const command =
      `touch ${dir}/ran; echo "$JM_RUN_ID $JM_RUN_MARKER $WHO"; cat; cut -d" " -f5 /proc/$$/stat`;
    const env = { PATH: "/usr/bin:/bin", WHO: "me", JM_RUN_ID: "" };
    const shell = armRun(spec(command, { env, marker }))!;
    const pid = await onePid(`${dir}/ran`);
    assertEquals([...Deno.readDirSync(dir)], [], "it ran before its release");
    const releasedAt = Date.now();
    const handle = shell.release(spec(command, { env: { ...env, JM_RUN_ID: "42" }, marker }));
    const result = await handle.done;
    // Its id from the release, its marker, stdin from /dev/null, a group of its own.
    assertEquals([result.status, result.stdout], ["success", `42 ${marker} me\n${pid}\n`]);
    assertEquals([handle.pid, handle.marker], [pid, marker]);
    assert(handle.startedAt >= releasedAt, `started ${handle.startedAt}, released ${releasedAt}`);
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["ran"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a disarmed shell exits without running its command", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const shell = armRun(spec(`touch ${dir}/ran`))!;
    const pid = await onePid(`${dir}/ran`);
    shell.disarm();
    await waitFor(() => !alive(pid), { timeoutMs: 10_000, what: `the shell ${pid} to exit` });
    assertEquals([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an armed shell that died before its release: the run starts anew", async () => {
  const token = crypto.randomUUID();
  const command = `echo "${token} $JM_RUN_ID"`;
  const shell = armRun(spec(command, { env: { PATH: "/usr/bin:/bin", JM_RUN_ID: "" } }))!;
  const pid = await onePid(token);
  Deno.kill(pid, "SIGKILL");
  // Reaped, not only dead: the runner has heard of its end by then.
  await waitFor(() => !existsSync(`/proc/${pid}`), {
    timeoutMs: 10_000,
    what: `the shell ${pid} to be reaped`,
  });
  const handle = shell.release(spec(command, { env: { PATH: "/usr/bin:/bin", JM_RUN_ID: "7" } }));
  const result = await handle.done;
  assertEquals([result.status, result.stdout], ["success", `${token} 7\n`]);
  assert(handle.pid !== pid, `released the dead shell ${pid}`);
});

Deno.test("an armed run whose cwd was switched before its release (a deploy's symbolic link) starts anew there", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  try {
    await Deno.mkdir(`${dir}/release-1`);
    await Deno.mkdir(`${dir}/release-2`);
    await Deno.symlink(`${dir}/release-1`, `${dir}/current`);
    const token = crypto.randomUUID();
    const command = `echo ${token} >/dev/null; pwd -P`;
    // As a lane checks it (run_lane.ts), at the arming and at the release.
    const current = async () => {
      const found = await new DirectoryChecks().check(`${dir}/current`);
      return "id" in found ? found.id : null;
    };
    const shell = armRun(spec(command, { cwd: `${dir}/current` }), await current())!;
    await onePid(token);
    await Deno.symlink(`${dir}/release-2`, `${dir}/next`);
    await Deno.rename(`${dir}/next`, `${dir}/current`);
    await Deno.remove(`${dir}/release-1`);
    const release = spec(command, { cwd: `${dir}/current` });
    const result = await shell.release(release, undefined, await current()).done;
    assertEquals([result.status, result.stdout], ["success", `${dir}/release-2\n`]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an armed run reports a syntax error as a plain run does, at its line", async () => {
  const command = "echo never; if then";
  const plain = await startRun(spec(command)).done;
  const shell = armRun(spec(command))!;
  const armed = await shell.release(spec(command)).done;
  assertEquals([armed.status, armed.exitCode, armed.stdout, armed.stderr], [
    plain.status,
    plain.exitCode,
    plain.stdout,
    plain.stderr,
  ]);
  assertMatch(armed.stderr, /^\/bin\/sh: 1: Syntax error/);
});

/** Runs as another user need a service run as root, as these tests are where they run. */
const ROOT = Deno.uid() === 0;

/** What `id` says of `user`'s groups as initgroups gives them: `id -G USER`. */
function groupsOf(user: string): string {
  const out = new Deno.Command("id", { args: ["-G", user], stdout: "piped" }).outputSync();
  return new TextDecoder().decode(out.stdout).trim();
}

const WHO_AM_I = 'echo "$(id -u) $(id -g) [$(id -G)] $HOME $LOGNAME $USER $(pwd)"';

Deno.test({
  name:
    "a run with a user runs as them: uid, gid, their groups, HOME LOGNAME USER, in their home or / where it is none",
  ignore: !ROOT,
  fn: async () => {
    // nobody's home is /nonexistent: cron's chdir fails there, and it runs in its own, /.
    const nobody = await startRun(spec(WHO_AM_I, { user: { job: "j", name: "nobody" } })).done;
    assertEquals(
      [nobody.status, nobody.stdout, nobody.note],
      ["success", `65534 65534 [${groupsOf("nobody")}] /nonexistent nobody nobody /\n`, null],
    );
    // By uid, as a job may name it; the job's cwd over the home.
    const dir = await Deno.makeTempDir();
    try {
      await Deno.chmod(dir, 0o755);
      const byUid = await startRun(
        spec(WHO_AM_I, { user: { job: "j", name: "65534" }, cwd: dir }),
      ).done;
      assertEquals(
        byUid.stdout,
        `65534 65534 [${groupsOf("nobody")}] /nonexistent nobody nobody ${await Deno.realPath(
          dir,
        )}\n`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
    // The service's own user: no switch, yet its HOME and home, as cron gives them.
    const root = await startRun(spec(WHO_AM_I, { user: { job: "j", name: "root" } })).done;
    assertEquals(root.stdout, `0 0 [${groupsOf("root")}] /root root root /root\n`);
  },
});

/** A user in a group besides their own, for initgroups to give them; none on some hosts. */
const WITH_GROUPS = new TextDecoder().decode(
  new Deno.Command("getent", { args: ["group"], stdout: "piped" }).outputSync().stdout,
).split("\n").map((line) => line.split(":")[3]?.split(",")[0]).find((member) => member);

Deno.test({
  name: "a run with a user has the user's supplementary groups, as initgroups gives them",
  ignore: !ROOT || WITH_GROUPS === undefined,
  fn: async () => {
    const result = await startRun(spec("id -G", { user: { job: "j", name: WITH_GROUPS! } })).done;
    assertEquals(result.stdout, `${groupsOf(WITH_GROUPS!)}\n`);
    assert(result.stdout.trim().includes(" "), `${WITH_GROUPS} has several groups`);
  },
});

Deno.test({
  name: "a run with a user that times out: its whole process group is killed",
  ignore: !ROOT,
  fn: async () => {
    const marker = `sleep 6${Math.floor(Math.random() * 1000).toString().padStart(3, "0")}`;
    const result = await startRun(
      // The background sleep says whose it is (real, effective, saved, fs uids), then the timeout ends both.
      spec(`${marker} & grep ^Uid: /proc/$!/status; ${marker}`, {
        user: { job: "j", name: "nobody" },
        timeoutMs: 2000,
        killGraceMs: 300,
      }),
    ).done;
    assertEquals([result.status, result.stdout], ["timeout", "Uid:\t65534\t65534\t65534\t65534\n"]);
    assertEquals(livePidsMatching(marker), [], "no process of the group survives");
  },
});

Deno.test("a run whose user has no account on this host is an error saying what to do; nothing ran", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const result = await startRun(
      spec(`touch ${dir}/ran`, { user: { job: "backup", name: "jm-no-such-user" } }),
    ).done;
    assertEquals(
      [result.status, result.note],
      [
        "error",
        `job backup runs as 'jm-no-such-user', who has no account on host ${Deno.hostname()}: create it, or change the job's user (jobsmanager job update backup --user NAME, or --user '' for the service's own)`,
      ],
    );
    assertEquals([...Deno.readDirSync(dir)], [], "nothing ran");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "an armed run with a user waits as them, and runs as them when released",
  ignore: !ROOT,
  fn: async () => {
    const user = { job: "j", name: "nobody" };
    const command = 'echo "$(id -u) $JM_RUN_ID $(pwd)"';
    const env = { PATH: "/usr/bin:/bin", JM_RUN_ID: "" };
    const shell = armRun(spec(command, { env, user }))!;
    assert(shell !== null, "armed");
    const result = await shell.release(spec(command, { env: { ...env, JM_RUN_ID: "7" }, user }))
      .done;
    assertEquals([result.status, result.stdout], ["success", "65534 7 /\n"]);
  },
});

Deno.test({
  name:
    "a run with a user enters its cwd as them: one they cannot reach fails 126, saying so, and nothing ran; armed too",
  ignore: !ROOT,
  fn: async () => {
    // A directory anyone may enter, under one only root may: the service's chdir would reach it.
    const top = await Deno.makeTempDir();
    try {
      await Deno.chmod(top, 0o700);
      const sub = `${top}/it's here`;
      await Deno.mkdir(sub, { mode: 0o755 });
      await Deno.chmod(sub, 0o755);
      await Deno.writeTextFile(`${sub}/secret`, "root's\n", { mode: 0o644 });
      const user = { job: "backup", name: "nobody" };
      const note =
        `job backup runs as 'nobody', who cannot enter its cwd ${sub}; nothing ran: give 'nobody' the search (x) permission on it and on each directory above it, or change the job's cwd (jobsmanager job update backup --cwd DIR)`;
      const expected = ["failed", 126, "", `jobsmanager: ${note}\n`, note];
      const plain = await startRun(spec("cat secret", { user, cwd: sub })).done;
      assertEquals(
        [plain.status, plain.exitCode, plain.stdout, plain.stderr, plain.note],
        expected,
      );
      const env = { PATH: "/usr/bin:/bin", JM_RUN_ID: "" };
      const shell = armRun(spec("cat secret", { env, user, cwd: sub }))!;
      const armed = await shell.release(spec("cat secret", { env, user, cwd: sub })).done;
      assertEquals(
        [armed.status, armed.exitCode, armed.stdout, armed.stderr, armed.note],
        expected,
      );
      // One not there at all is a start's error, as for a run without a user, not a permission.
      const missing = await startRun(spec("true", { user, cwd: `${sub}/gone` })).done;
      assertEquals(missing.status, "error");
      assertMatch(
        missing.note ?? "",
        /^could not start the command: .*(in .*\/gone: No such file|No such cwd .*\/gone)/,
      );
      // Once they may reach it, they run there; a command's own 126 is no note.
      await Deno.chmod(top, 0o711);
      const reached = await startRun(spec("cat secret; exit 126", { user, cwd: sub })).done;
      assertEquals([reached.exitCode, reached.stdout, reached.note], [126, "root's\n", null]);
    } finally {
      await Deno.remove(top, { recursive: true });
    }
  },
});

Deno.test({
  name: "a run as a user who cannot enter its cwd keeps its note whatever the output cap",
  ignore: !ROOT,
  fn: async () => {
    const top = await Deno.makeTempDir();
    try {
      await Deno.chmod(top, 0o700);
      const user = { job: "backup", name: "nobody" };
      const note =
        `job backup runs as 'nobody', who cannot enter its cwd ${top}; nothing ran: give 'nobody' the search (x) permission on it and on each directory above it, or change the job's cwd (jobsmanager job update backup --cwd DIR)`;
      for (const outputCap of [0, 16, 200]) {
        const refused = await startRun(spec("true", { user, cwd: top, outputCap })).done;
        assertEquals(
          [refused.status, refused.exitCode, refused.note],
          ["failed", 126, note],
          `output_cap ${outputCap}: ${refused.stderr}`,
        );
      }
    } finally {
      await Deno.remove(top, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "the live output of a run as a user who cannot enter its cwd shows its line without the mark",
  ignore: !ROOT,
  fn: async () => {
    const top = await Deno.makeTempDir();
    try {
      await Deno.chmod(top, 0o700);
      const shown = { stdout: "", stderr: "" };
      const refused = await startRun(
        spec("true", {
          user: { job: "backup", name: "nobody" },
          cwd: top,
          onOutput: (stream, chunk) => shown[stream] += decode(chunk),
        }),
      ).done;
      assertEquals(refused.exitCode, 126, refused.stderr);
      assertEquals(shown, { stdout: "", stderr: refused.stderr });
      assertEquals(
        refused.stderr.startsWith("jobsmanager: job backup runs as 'nobody'"),
        true,
        refused.stderr,
      );
    } finally {
      await Deno.remove(top, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "a command run as a user that prints the cannot-enter-its-cwd line and exits 126 gets no such note",
  ignore: !ROOT,
  fn: async () => {
    const line =
      "jobsmanager: job backup runs as 'nobody', who cannot enter its cwd /; nothing ran: give 'nobody' the search (x) permission on it and on each directory above it, or change the job's cwd (jobsmanager job update backup --cwd DIR)";
    const faked = await startRun(
      spec(`printf '%s\\n' "$LINE" >&2; exit 126`, {
        env: { PATH: "/usr/bin:/bin", LINE: line },
        user: { job: "backup", name: "nobody" },
        cwd: "/",
      }),
    ).done;
    assertEquals([faked.exitCode, faked.stderr, faked.note], [126, `${line}\n`, null]);
  },
});

/**
 * `fn` given a test account, a directory anyone may write, and a run of
 * job backup as that account that touches `ran` there and says who it is.
 */
async function asTestAccount(
  fn: (name: string, dir: string, touch: ReturnType<typeof spec>) => Promise<void>,
): Promise<void> {
  await withTestAccount(async (name) => {
    const dir = await Deno.makeTempDir();
    try {
      await Deno.chmod(dir, 0o777);
      await fn(name, dir, spec(`touch ${dir}/ran; id -un`, { user: { job: "backup", name } }));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test({
  name:
    "a run as an expired account is an error naming it, its expiry date and the fix; nothing ran; a locked password runs",
  ignore: !ROOT,
  fn: async () => {
    await asTestAccount(async (name, dir, touch) => {
      // Locked (`!` before its password), as cron runs its jobs.
      await new Deno.Command("usermod", { args: ["--lock", name] }).output();
      const locked = await startRun(touch).done;
      assertEquals([locked.status, locked.stdout], ["success", `${name}\n`], locked.note ?? "");
      await Deno.remove(`${dir}/ran`);
      await new Deno.Command("chage", { args: ["-E", "0", name] }).output();
      const expired = await startRun(touch).done;
      assertEquals([expired.status, expired.note], [
        "error",
        `job backup runs as '${name}', whose account ${name} expired on 1970-01-01 (its shadow expiry date, as \`chage -l ${name}\` shows): as cron, jobsmanager runs no job of an expired account; renew it (chage -E -1 ${name}), or remove the job's user (jobsmanager job update backup --user '')`,
      ]);
      assertEquals([...Deno.readDirSync(dir)], [], "nothing ran");
    });
  },
});

Deno.test({
  name:
    "a run as an account whose password's maximum age and inactive period ran out is an error saying why and the fix; merely past its maximum age it runs",
  ignore: !ROOT,
  fn: async () => {
    await asTestAccount(async (name, dir, touch) => {
      const chage = async (...args: string[]) => {
        const out = await new Deno.Command("chage", { args: [...args, name] }).output();
        assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
      };
      // Past its maximum age, no inactive period: PAM asks for a new password, cron runs it.
      await chage("-d", "2000-01-01", "-M", "30");
      const aged = await startRun(touch).done;
      assertEquals([aged.status, aged.stdout], ["success", `${name}\n`], aged.note ?? "");
      await Deno.remove(`${dir}/ran`);
      await chage("-I", "5");
      const today = new Date().toISOString().slice(0, 10);
      const expired = await startRun(touch).done;
      assertEquals([expired.status, expired.note], [
        "error",
        `job backup runs as '${name}', whose password expired on 2000-01-31 and the inactive period of 5 days after it ran out (its shadow password aging, as \`chage -l ${name}\` shows): as cron, jobsmanager runs no job of an account PAM counts expired; change its password (chage -d ${today} ${name}, or passwd ${name}), end its inactive period (chage -I -1 ${name}), or remove the job's user (jobsmanager job update backup --user '')`,
      ]);
      assertEquals([...Deno.readDirSync(dir)], [], "nothing ran");
    });
  },
});

Deno.test({
  name:
    "a shell armed before its account's expiry day and released on that day runs nothing: the release judges the account again",
  ignore: !ROOT,
  fn: async () => {
    await asTestAccount(async (name, dir, touch) => {
      const DAY_MS = 86_400_000;
      const tomorrow = (Math.floor(Date.now() / DAY_MS) + 1) * DAY_MS;
      const day = new Date(tomorrow).toISOString().slice(0, 10);
      const out = await new Deno.Command("chage", { args: ["-E", day, name] }).output();
      assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
      // Armed today, before the expiry: a fire at midnight is armed just before it.
      const shell = armRun(touch);
      assert(shell !== null, "the shell was armed before the account's expiry day");
      const ended = await shell.release(touch, () => tomorrow + 500).done;
      assertEquals([ended.status, ended.note], [
        "error",
        `job backup runs as '${name}', whose account ${name} expired on ${day} (its shadow expiry date, as \`chage -l ${name}\` shows): as cron, jobsmanager runs no job of an expired account; renew it (chage -E -1 ${name}), or remove the job's user (jobsmanager job update backup --user '')`,
      ]);
      assertEquals([...Deno.readDirSync(dir)], [], "nothing ran");
    });
  },
});

Deno.test({
  name:
    "a run as another user gets PATH, the locale and TZ of the service's environment, not the rest; the service's own user all",
  ignore: !ROOT,
  fn: async () => {
    const baseEnv = {
      PATH: "/usr/bin:/bin",
      LANG: "C.UTF-8",
      TZ: "UTC",
      AWS_SECRET_ACCESS_KEY: "not-for-jobs",
      HOME: "/root",
    };
    const command =
      'echo "${AWS_SECRET_ACCESS_KEY-none} $LANG $TZ $HOME $JOBS_OWN $JM_JOB_ID ${JM_RUN_MARKER:+marked}"';
    const env = { JOBS_OWN: "own", JM_JOB_ID: "j" };
    const nobody = await startRun(
      spec(command, { baseEnv, env, user: { job: "j", name: "nobody" } }),
    ).done;
    assertEquals(nobody.stdout, "none C.UTF-8 UTC /nonexistent own j marked\n");
    const root = await startRun(spec(command, { baseEnv, env, user: { job: "j", name: "root" } }))
      .done;
    assertEquals(root.stdout, "not-for-jobs C.UTF-8 UTC /root own j marked\n");
  },
});
