/**
 * Ends the runs' process groups when the service dies without ending them
 * (kill -9, a crash, the OOM killer), so no job outlives its service to
 * run twice at once after a restart. A small shell, outside every run's
 * group and session, is told on its stdin which groups are running; when
 * the service dies, however it dies, the kernel closes that pipe, and the
 * shell sends SIGKILL to each group still listed. At a normal stop the
 * list is empty by then, and the shell just exits.
 *
 * It is also told each run's marker as the run is handed to the runner,
 * and ends whatever carries one still listed: a service killed between a
 * start and telling it the group, and processes that left their group
 * (setsid). In a burst, a run handed to the runner thread with the turn's
 * first 16 may start a moment before the guard reads its marker; the next
 * start finds by marker what escaped the guard (killed too, or too late).
 */

import { MARKER_VARIABLE } from "./processes.ts";
import { log } from "./log.ts";

const runnerLog = log("runner");

/**
 * `+ PGID` adds a group, `- PGID` removes it; `m MARKER` adds a marker,
 * `u MARKER` removes it: awk's arrays, a line at a constant cost. (The
 * shell lists it replaced rebuilt a list for each removal: at 1,000 runs a
 * second the guard took half a core and fell behind.) At end of input,
 * SIGKILL to each group left (a `kill` per thousand: one argument of a
 * shell's command line holds at most 128 KiB) and to each process whose
 * environment holds `JM_RUN_MARKER=` a marker left (one grep over /proc,
 * the markers on its stdin). Only well-formed words are taken: they reach
 * a shell; no group 0 or 1. The service's own signals (a terminal's
 * Ctrl-C, SIGTERM to its group) must not end it before the service has
 * ended the runs: ignored, through the exec.
 */
const PROGRAM = `
$1 == "+" && $2 ~ /^[1-9][0-9]*$/ && length($2) <= 10 && $2 + 0 > 1 { groups[$2] = 1 }
$1 == "-" { delete groups[$2] }
$1 == "m" && $2 ~ /^[0-9a-zA-Z-]+$/ { markers[$2] = 1 }
$1 == "u" { delete markers[$2] }
END {
  kill = ""
  for (pgid in groups) {
    kill = kill " -" pgid
    if (++n % 1000 == 0) { system("kill -KILL" kill " 2>/dev/null"); kill = "" }
  }
  if (kill != "") system("kill -KILL" kill " 2>/dev/null")
  find = "grep -lzxF -f - /proc/[0-9]*/environ 2>/dev/null | while read -r file; do " \\
    "pid=\${file#/proc/}; kill -KILL \${pid%/environ} 2>/dev/null; done"
  for (marker in markers) print "${MARKER_VARIABLE}=" marker | find
  close(find)
}`;
const SCRIPT = `trap '' INT TERM HUP
exec awk '${PROGRAM}'`;

export class RunGuard {
  private readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  private readonly encoder = new TextEncoder();
  private writing: Promise<void> = Promise.resolve();
  private lines = "";
  private closing = false;

  private constructor(private readonly child: Deno.ChildProcess) {
    this.writer = child.stdin.getWriter();
    child.status.then((status) => {
      if (this.closing) return;
      runnerLog.error(
        "the run guard exited ({code}): the runs are no longer ended if this service dies; is awk installed? Restart the service once it is",
        { code: status.code },
      );
    });
  }

  /** Start the guard; null where no shell can be started (the runs then have no guard). */
  static start(): RunGuard | null {
    try {
      const child = new Deno.Command("/bin/sh", {
        args: ["-c", SCRIPT],
        stdin: "piped",
        stdout: "null",
        stderr: "null",
        // Its own session: a signal to the service's group does not reach it.
        detached: true,
      }).spawn();
      return new RunGuard(child);
    } catch {
      return null;
    }
  }

  /** Its process: the shell that became awk. */
  get pid(): number {
    return this.child.pid;
  }

  /** A run's group started. */
  add(pgid: number): void {
    this.send(`+ ${pgid}\n`);
  }

  /** A run's group is gone (or its run was given up at a stop). */
  remove(pgid: number): void {
    this.send(`- ${pgid}\n`);
  }

  /** A run whose processes will carry `marker` is about to start. */
  watch(marker: string): void {
    this.send(`m ${marker}\n`);
  }

  /** The run of `marker` never started, or ended and what left its group was looked for. */
  unwatch(marker: string): void {
    this.send(`u ${marker}\n`);
  }

  /** Lines of this turn of the event loop: a burst's hundreds of starts make one write. */
  private send(line: string): void {
    if (this.lines === "") setTimeout(() => this.flush(), 0);
    this.lines += line;
  }

  private flush(): Promise<void> {
    const lines = this.lines;
    this.lines = "";
    if (lines === "") return this.writing;
    this.writing = this.writing
      .then(() => this.writer.write(this.encoder.encode(lines)))
      // A guard that died cannot be told; the next start still finds the runs.
      .catch(() => {});
    return this.writing;
  }

  /** End the guard; what is still listed is killed, as if the service had died. */
  async close(): Promise<void> {
    this.closing = true;
    await this.flush();
    await this.writer.close().catch(() => {});
    await this.child.status;
  }
}
