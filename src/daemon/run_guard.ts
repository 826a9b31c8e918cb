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
 * (setsid). A service that dies (no `q` line told it of a stop) has every
 * process carrying one of its markers ended, whatever the guard was told:
 * the runner's thread may start a run before the lines that tell of it
 * leave the service's own busy thread.
 */

import { commandStatus } from "./native_spawn.ts";
import { MARKER_PREFIX, MARKER_VARIABLE } from "./processes.ts";
import { log } from "./log.ts";

const runnerLog = log("runner");

/**
 * `+ PGID` adds a group, `- PGID` removes it; `m MARKER` adds a marker,
 * `u MARKER` removes it: awk's arrays, a line at a constant cost. (The
 * shell lists it replaced rebuilt a list for each removal: at 1,000 runs a
 * second the guard took half a core and fell behind.) `q`: the service
 * stops. At end of input, SIGKILL to each group left (a `kill` per
 * thousand: one argument of a shell's command line holds at most 128 KiB)
 * and to each process whose environment holds `JM_RUN_MARKER=` a marker
 * left (one grep over /proc, the markers on its stdin); without a `q`, to
 * each that holds one of this service's markers (their prefix, which finds
 * the listed ones too: a grep again until one finds none, five at most, as
 * a process may fork while one reads /proc). Each such process's group
 * too, if it leads one (setsid): its members that dropped the marker
 * (`env -u`) end with it; a live process's pid is no other group's id.
 * Only well-formed words are taken: they reach a shell; no group 0 or 1.
 * The service's own signals (a terminal's Ctrl-C, SIGTERM to its group)
 * must not end it before the service has ended the runs: ignored, through
 * the exec.
 */
const PROGRAM = `
$1 == "+" && $2 ~ /^[1-9][0-9]*$/ && length($2) <= 10 && $2 + 0 > 1 { groups[$2] = 1 }
$1 == "-" { delete groups[$2] }
$1 == "m" && $2 ~ /^[0-9a-zA-Z-]+$/ { markers[$2] = 1 }
$1 == "u" { delete markers[$2] }
$1 == "q" { stopped = 1 }
END {
  kill = ""
  for (pgid in groups) {
    kill = kill " -" pgid
    if (++n % 1000 == 0) { system("kill -KILL" kill " 2>/dev/null"); kill = "" }
  }
  if (kill != "") system("kill -KILL" kill " 2>/dev/null")
  ends = "pid=\${file#/proc/}; pid=\${pid%/environ}; kill -KILL -$pid $pid 2>/dev/null"
  own = "${MARKER_VARIABLE}=${MARKER_PREFIX}-"
  if (!stopped) {
    system("n=0; while files=; [ $n -lt 5 ] && files=$(grep -lz ^" own " /proc/[0-9]*/environ 2>/dev/null); " \\
      "[ \${#files} -gt 0 ]; do for file in $files; do " ends "; done; n=$((n + 1)); done")
  }
  find = "grep -lzxF -f - /proc/[0-9]*/environ 2>/dev/null | while read -r file; do " ends "; done"
  for (marker in markers) {
    if (stopped || index("${MARKER_VARIABLE}=" marker, own) != 1) print "${MARKER_VARIABLE}=" marker | find
  }
  close(find)
}`;
const SCRIPT = `trap '' INT TERM HUP
exec awk '${PROGRAM}'`;

/** This process's environment, but a run marker it was started with. */
function withoutMarker(): Record<string, string> {
  const env = Deno.env.toObject();
  delete env[MARKER_VARIABLE];
  return env;
}

/** The longest wait between two starts of a guard that could not start, or exited. */
const MAX_RETRY_MS = 60_000;

export interface RunGuardOptions {
  /** The shell that runs it: /bin/sh, unless a test gives one that cannot start. */
  shell?: string;
}

export class RunGuard {
  private child: Deno.ChildProcess | null = null;
  private writer: WritableStreamDefaultWriter<Uint8Array> | null = null;
  private readonly encoder = new TextEncoder();
  private writing: Promise<void> = Promise.resolve();
  private lines = "";
  private closing = false;
  /**
   * What it was told and not untold: a guard started again (it could not
   * start, or exited) is told it all, so no run goes unguarded for long.
   */
  private readonly groups = new Set<number>();
  private readonly markers = new Set<string>();
  /** Starts failed in a row (or guards that exited within MAX_RETRY_MS); 0 once one runs. */
  private failures = 0;
  private startedAt = 0;
  private retry: ReturnType<typeof setTimeout> | null = null;

  private constructor(private readonly shell: string) {}

  /**
   * Start the guard. Where its shell cannot start (a full process table,
   * no descriptor free), or when it exits, that is logged, and it is
   * started again, 1 s later, then up to every minute, until it runs.
   */
  static start(options: RunGuardOptions = {}): RunGuard {
    const guard = new RunGuard(options.shell ?? "/bin/sh");
    guard.spawn();
    return guard;
  }

  /** Whether it runs: while it does not, the runs are not ended if the service dies. */
  get running(): boolean {
    return this.child !== null;
  }

  private spawn(): void {
    this.retry = null;
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(this.shell, {
        args: ["-c", SCRIPT],
        stdin: "piped",
        stdout: "null",
        stderr: "null",
        // Its own session: a signal to the service's group does not reach it.
        detached: true,
        // Not the marker of the run that started this service (a job of another service):
        // that one's death would kill this guard with its runs, leaving this one's going.
        clearEnv: true,
        env: withoutMarker(),
      }).spawn();
    } catch (error) {
      this.failed(`could not start ${this.shell}: ${(error as Error).message}`);
      return;
    }
    this.child = child;
    this.writer = child.stdin.getWriter();
    this.startedAt = Date.now();
    if (this.failures > 0) {
      runnerLog.info("the run guard runs again: told of {groups} groups and {markers} markers", {
        groups: this.groups.size,
        markers: this.markers.size,
      });
    }
    // What it missed: the runs going (its own lines start it afresh).
    this.lines = [...this.groups].map((pgid) => `+ ${pgid}\n`).join("") +
      [...this.markers].map((marker) => `m ${marker}\n`).join("");
    this.flush();
    // A real-time signal's end too (Deno.Command's own status rejects it): unheard, it ended the service.
    commandStatus(child).then((status) => {
      if (this.closing) return;
      this.child = null;
      this.writer = null;
      // One that ran a good while is a new trouble, said again.
      if (Date.now() - this.startedAt >= MAX_RETRY_MS) this.failures = 0;
      this.failed(`exited (${status.code}); is awk installed?`);
    });
  }

  /** Log the first of a row of failures; start it again after a wait that grows. */
  private failed(why: string): void {
    const waitMs = Math.min(MAX_RETRY_MS, 1000 * 2 ** this.failures);
    if (this.failures === 0) {
      runnerLog.error(
        "the run guard {why}: the runs are not ended if this service dies until it runs; started again in {seconds} s, then up to every {max} s",
        { why, seconds: waitMs / 1000, max: MAX_RETRY_MS / 1000 },
      );
    } else {
      runnerLog.debug("the run guard {why}; started again in {seconds} s", {
        why,
        seconds: waitMs / 1000,
      });
    }
    this.failures++;
    this.retry = setTimeout(() => this.spawn(), waitMs);
  }

  /** Its process: the shell that became awk (0 while none runs). */
  get pid(): number {
    return this.child?.pid ?? 0;
  }

  /** A run's group started. */
  add(pgid: number): void {
    this.groups.add(pgid);
    this.send(`+ ${pgid}\n`);
  }

  /** A run's group is gone (or its run was given up at a stop). */
  remove(pgid: number): void {
    this.groups.delete(pgid);
    this.send(`- ${pgid}\n`);
  }

  /** A run whose processes will carry `marker` is about to start. */
  watch(marker: string): void {
    this.markers.add(marker);
    this.send(`m ${marker}\n`);
  }

  /** The run of `marker` never started, or ended and what left its group was looked for. */
  unwatch(marker: string): void {
    this.markers.delete(marker);
    this.send(`u ${marker}\n`);
  }

  /** Lines of this turn of the event loop: a burst's hundreds of starts make one write. */
  private send(line: string): void {
    // None runs: the one started next is told the lists whole.
    if (this.writer === null) return;
    if (this.lines === "") setTimeout(() => this.flush(), 0);
    this.lines += line;
  }

  private flush(): Promise<void> {
    const lines = this.lines;
    const writer = this.writer;
    this.lines = "";
    if (lines === "" || writer === null) return this.writing;
    this.writing = this.writing
      .then(() => writer.write(this.encoder.encode(lines)))
      // A guard that died cannot be told; the next start still finds the runs.
      .catch(() => {});
    return this.writing;
  }

  /** End the guard; what is still listed is killed, as if the service had died. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.retry !== null) clearTimeout(this.retry);
    const [writer, child] = [this.writer, this.child];
    if (writer === null || child === null) return;
    this.send("q\n");
    await this.flush();
    await writer.close().catch(() => {});
    await commandStatus(child);
  }
}
