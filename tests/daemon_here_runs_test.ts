/**
 * A `job run --here` run whose CLI process died without recording its end
 * (SIGKILL, a reboot) is ended by a service on the same host, soon after
 * its start and then every minute: what the run left running, then its row
 * `interrupted`, saying why. A run whose CLI process lives, or of another
 * host (whose processes it cannot see), is left alone. In-process on a fake
 * clock, with a real process standing in for what the run left.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { BACKENDS, detachedSleep as leftover, freshDatabase } from "./helpers.ts";
import { DaemonHarness, T0, uncounted } from "./daemon_harness.ts";
import { Metrics } from "../src/http/metrics.ts";
import { hereMarker, hereNode } from "../src/domain/here_run.ts";
import { thisProcess } from "../src/daemon/here_runs.ts";
import { bootTicks } from "../src/daemon/processes.ts";

for (const backend of BACKENDS) {
  Deno.test(`daemon[${backend}]: the service ends the runs of this host's dead job run --here processes, and only those`, async () => {
    // No retention: the run of a previous boot, started 10 years ago, was deleted by it first
    // when the two chores met at their first turn.
    const metrics = new Metrics();
    await using h = await DaemonHarness.create(await freshDatabase(backend), {
      settings: { "runs.keep_days": 0 },
      observer: metrics,
    });
    const me = thisProcess()!;
    // This process's pid with another start: the process that had it is gone.
    const dead = hereMarker({ ...me, start: me.start - 1 })!;
    const alive = hereMarker(me)!;
    // A boot other than this one: the machine restarted since.
    const otherBoot = `${me.boot[0] === "0" ? "1" : "0"}${me.boot.slice(1)}`;
    const rebooted = hereMarker({ ...me, boot: otherBoot })!;
    const left = leftover({ JM_RUN_MARKER: dead });
    try {
      await h.sql(
        "INSERT INTO jm_runs (job_id, scheduled_at, started_at, status, `trigger`, node_id, pgid, marker, note) VALUES ('gone', ?, ?, 'running', 'manual', ?, ?, ?, 'run in the CLI with --here'), ('alive', ?, ?, 'running', 'manual', ?, NULL, ?, 'run in the CLI with --here'), ('elsewhere', ?, ?, 'running', 'manual', ?, NULL, ?, 'run in the CLI with --here')",
        [
          ...[T0 - 60_000, T0 - 60_000, hereNode("test"), left.pid, dead],
          ...[T0 - 60_000, T0 - 60_000, hereNode("test"), alive],
          ...[T0 - 60_000, T0 - 60_000, hereNode("other"), dead],
        ],
      );
      // Started long before this boot: it ended by the boot at the latest.
      const long = T0 - 10 * 365 * 86_400_000;
      await h.sql(
        "INSERT INTO jm_runs (job_id, scheduled_at, started_at, status, `trigger`, node_id, marker, note) VALUES ('restarted', ?, ?, 'running', 'manual', ?, ?, 'run in the CLI with --here')",
        [long, long, hereNode("test"), rebooted],
      );
      // Another boot id, started after this boot: another machine of this name, not a restart.
      await h.sql(
        "INSERT INTO jm_runs (job_id, scheduled_at, started_at, status, `trigger`, node_id, marker, note) VALUES ('namesake', ?, ?, 'running', 'manual', ?, ?, 'run in the CLI with --here')",
        [T0 - 1000, T0 - 1000, hereNode("test"), rebooted],
      );
      await h.start();
      await h.clock.advance(5000);
      const gone = await h.until(
        async () => (await h.runs("gone")).find((r) => r.status === "interrupted"),
        "the run of the dead CLI process interrupted",
      );
      assertEquals((await left.status).signal, "SIGTERM");
      assertEquals(gone.finished_at, T0 + 5000);
      assertMatch(
        gone.note!,
        new RegExp(
          `^run in the CLI with --here; the CLI process that ran it \\(pid ${me.pid} on test\\) ended \\(killed, or it crashed\\) without recording how the run ended; ended what it left running: ${left.pid} \\(\\S*sleep 300\\.\\d+\\)$`,
        ),
      );
      await h.until(
        () => h.line(/^2 runs of `job run --here` on this host were left running by a CLI process/),
        "the pass to say what it ended",
      );
      const restarted = await h.until(
        async () => (await h.runs("restarted")).find((r) => r.status === "interrupted"),
        "the run of the CLI process of a previous boot interrupted",
      );
      assertEquals(
        restarted.note,
        `run in the CLI with --here; test restarted under the CLI process that ran it (pid ${me.pid} on test) without recording how the run ended`,
      );
      // The fake clock stands still; this machine's uptime moves on (1/100 s ticks).
      const upMs = bootTicks() * 10;
      const bootedAt = T0 + 5000 - upMs;
      assert(
        restarted.finished_at! <= bootedAt + 5000 && restarted.finished_at! >= bootedAt - 10,
        `ended at T0+${restarted.finished_at! - T0}, the boot ${upMs} ms before T0+5000`,
      );
      assertEquals(
        (await h.runs()).map((r) => [r.job_id, r.status]),
        [
          ["gone", "interrupted"],
          ["alive", "running"],
          ["elsewhere", "running"],
          ["restarted", "interrupted"],
          ["namesake", "running"],
        ],
      );
      // Counted as every run that ends (jobsmanager_runs_total).
      assertEquals(await uncounted(h, metrics, ["gone", "restarted"]), "");
    } finally {
      try {
        left.kill("SIGKILL");
      } catch {
        // Already ended.
      }
      await left.status;
    }
  });
}
