/**
 * kill(2) with signal 0 (src/daemon/presence.ts): a process that is gone
 * is told from one this process may signal. (One it may not, another
 * user's, needs another user: `other` is not tested here.) A service's
 * pid is its own only if the process that has it started at the tick
 * since boot its row names (or, in a row without it, no later than the
 * service did by the wall clock): a pid taken after the service died is
 * another's, whatever step the wall clock took meanwhile. A
 * zombie (killed, not reaped yet) has its pid and runs nothing. Where /proc
 * hides another user's process (`hidepid`), that it is the service cannot
 * be confirmed.
 */
import { assertEquals } from "./assert.ts";
import { serviceRow } from "./helpers.ts";
import { hereSpace, presence, serviceGone, serviceRuns } from "../src/daemon/presence.ts";
import { processStart } from "../src/daemon/processes.ts";
import { judged } from "../src/app/status.ts";
import { zombie } from "./zombie.ts";

Deno.test("presence: this process is ours; an ended child's pid and an empty group are gone", async () => {
  assertEquals(presence(Deno.pid), "ours");
  const child = new Deno.Command("true").spawn();
  await child.status;
  assertEquals(presence(child.pid), "gone");
  // Its own group, ended with it.
  assertEquals(presence(-child.pid), "gone");
  assertEquals([presence(0), presence(-1)], ["unknown", "unknown"]);
});

Deno.test("presence: a service runs only if the process with its pid started no later than it did", async () => {
  const here = hereSpace();
  assertEquals(serviceRuns({ pid: Deno.pid, started_at: Date.now(), ...here }), "runs");
  // A process started after the service (an hour ago): the pid was taken after it died.
  const child = new Deno.Command("sleep", { args: ["300"], stdout: "null", stderr: "null" })
    .spawn();
  try {
    assertEquals(
      serviceRuns({ pid: child.pid, started_at: Date.now() - 3_600_000, ...here }),
      "no",
    );
  } finally {
    child.kill();
    await child.status;
  }
});

Deno.test("presence: a row that names its process's start since boot is judged by it, whatever step the wall clock took since its start", async () => {
  const here = hereSpace();
  const start = processStart(Deno.pid)!;
  // The wall clock stepped forward an hour after the service started (NTP, a VM restored): by its
  // started_at its own process started an hour after it, but the kernel's count says it is it.
  const hung = {
    ...serviceRow("hung", { agoMs: 60_000 }),
    pid: Deno.pid,
    started_at: Date.now() - 3_600_000,
    process_start: start,
    heartbeat_ms: 2000,
    ...here,
  };
  assertEquals(serviceRuns(hung), "runs");
  const seen = judged(hung, Date.now(), 2000, undefined, { gone: serviceGone, runs: serviceRuns });
  assertEquals([seen.state, seen.still_runs, seen.still_runs_unconfirmed], ["stale", true, false]);
  // Stepped back an hour instead, and the service killed: the process that took its pid started
  // an hour before it by the wall clock, but at another tick than the one its row names.
  const child = new Deno.Command("sleep", { args: ["300"], stdout: "null", stderr: "null" })
    .spawn();
  try {
    const reused = {
      pid: child.pid,
      started_at: Date.now() + 3_600_000,
      process_start: processStart(child.pid)! - 100,
      ...here,
    };
    assertEquals(serviceRuns(reused), "no");
  } finally {
    child.kill();
    await child.status;
  }
});

Deno.test("presence: a service killed and not reaped yet (a zombie) is gone, and does not run", async () => {
  await using killed = await zombie();
  // Its row written after its process started: were it not a zombie, it would run.
  const node = { pid: killed.pid, started_at: Date.now(), ...hereSpace() };
  assertEquals(presence(killed.pid), "ours", "kill(2) still finds a zombie");
  assertEquals([serviceGone(node), serviceRuns(node)], [true, "no"]);
});

/** What the hidepid probe prints: `serviceRuns` and `status`'s judgement of `node`. */
const HIDDEN_PROBE = (node: unknown) => `
import { serviceGone, serviceRuns } from "./src/daemon/presence.ts";
import { judged } from "./src/app/status.ts";
const node = ${JSON.stringify(node)};
const seen = judged(node, Date.now(), 2000, undefined, { gone: serviceGone, runs: serviceRuns });
console.log(JSON.stringify([serviceRuns(node), seen.state, seen.still_runs, seen.still_runs_unconfirmed, seen.note]));
`;

Deno.test({
  name:
    "presence: a stale service's pid that /proc hides (hidepid), held by another user's process, could not be confirmed to be the service's: status says so",
  // A private /proc needs root (`unshare -m`); the test says it is skipped.
  ignore: Deno.uid() !== 0,
  fn: async () => {
    // The service: another user's process, which a viewer of this /proc may see only with hidepid off.
    const other = new Deno.Command("setpriv", {
      args: ["--reuid=65534", "--regid=65534", "--clear-groups", "--", "sleep", "300"],
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      const node = {
        ...serviceRow("hidden", { agoMs: 60_000 }),
        pid: other.pid,
        // Its row written after its process started, as a service writes it.
        started_at: Date.now(),
        heartbeat_ms: 2000,
        ...hereSpace(),
      };
      // Seen: it runs.
      assertEquals(serviceRuns(node), "runs", "as this test sees it, without hidepid");
      // In a mount namespace of its own, so nothing is left mounted: a /proc with hidepid=invisible
      // (gid: a group root is not in, which would see everything), read by root without
      // CAP_SYS_PTRACE, which sees through hidepid; kill(2) still finds the pid (CAP_KILL).
      const out = await new Deno.Command("unshare", {
        args: [
          "--mount",
          "--propagation",
          "private",
          "--",
          "sh",
          "-c",
          'mount -t proc -o hidepid=invisible,gid=65534 proc /proc && exec setpriv --bounding-set=-sys_ptrace -- "$@"',
          "sh",
          Deno.execPath(),
          "eval",
          "--quiet",
          HIDDEN_PROBE(node),
        ],
        cwd: new URL("..", import.meta.url).pathname,
        env: { NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const said = new TextDecoder().decode(out.stdout);
      assertEquals(out.success, true, `the probe failed: ${new TextDecoder().decode(out.stderr)}`);
      assertEquals(JSON.parse(said), [
        "unconfirmed",
        "stale",
        true,
        true,
        `stopped sending heartbeats; a process has its pid on this host, but /proc does not let this user see when it started (hidepid), so it could not be confirmed to be the service rather than one that took the pid after it died: \`ps -o lstart= -p ${other.pid}\` as root tells; if it started after the service, see its log, and restart it (\`systemctl restart jobsmanager\` where systemd runs it); if before, it still runs: see its log, as a restart loses the run records it holds unwritten`,
      ]);
    } finally {
      other.kill("SIGKILL");
      await other.status;
    }
  },
});
