/**
 * Ends the runs' process groups when the service dies without ending them
 * (kill -9, a crash, the OOM killer), so no job outlives its service to
 * run twice at once after a restart. A small shell, outside every run's
 * group and session, is told on its stdin which groups are running; when
 * the service dies, however it dies, the kernel closes that pipe, and the
 * shell sends SIGKILL to each group still listed. At a normal stop the
 * list is empty by then, and the shell just exits.
 *
 * Processes that left their group (setsid) are not in the list; the next
 * start finds them by their run's marker.
 */

/**
 * `+ PGID` adds a group, `- PGID` removes it; at end of input, SIGKILL to
 * each left. The service's own signals (a terminal's Ctrl-C, SIGTERM to
 * its group) must not end it before the service has ended the runs.
 */
const SCRIPT = `trap '' INT TERM HUP
groups=' '
while read -r op pgid; do
  case "$op $groups" in
    "+ "*) groups="$groups$pgid " ;;
    "- "*" $pgid "*) groups="\${groups%% $pgid *} \${groups#* $pgid }" ;;
  esac
done
for pgid in $groups; do kill -KILL -"$pgid" 2>/dev/null; done
exit 0`;

export class RunGuard {
  private readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  private readonly encoder = new TextEncoder();
  private writing: Promise<void> = Promise.resolve();
  private lines = "";

  private constructor(private readonly child: Deno.ChildProcess) {
    this.writer = child.stdin.getWriter();
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

  /** A run's group started. */
  add(pgid: number): void {
    this.send(`+ ${pgid}\n`);
  }

  /** A run's group is gone (or its run was given up at a stop). */
  remove(pgid: number): void {
    this.send(`- ${pgid}\n`);
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
    await this.flush();
    await this.writer.close().catch(() => {});
    await this.child.status;
  }
}
