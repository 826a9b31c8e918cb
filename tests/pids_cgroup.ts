/**
 * A pids cgroup of a test's own (cgroup v1's pids hierarchy, or v2's where
 * its root hands out the pids controller): a process moved into it can be
 * held at its limit, as a job that forks without end holds a service in a
 * container run with `--pids-limit`. Root only; elsewhere the tests skip
 * with one line (`pidsSkipLine`).
 */
import { waitFor } from "./helpers.ts";

function findRoot(): string | null {
  if (Deno.uid() !== 0) return null;
  try {
    Deno.statSync("/sys/fs/cgroup/pids/cgroup.procs");
    return "/sys/fs/cgroup/pids";
  } catch {
    // No v1 pids hierarchy: v2's root, where it hands the controller down.
  }
  try {
    const control = Deno.readTextFileSync("/sys/fs/cgroup/cgroup.subtree_control");
    return control.split(/\s+/).includes("pids") ? "/sys/fs/cgroup" : null;
  } catch {
    return null;
  }
}

export const PIDS_ROOT = findRoot();

/** One ignored test naming what is skipped, when no pids cgroup can be made here. */
export function pidsSkipLine(what: string): void {
  if (PIDS_ROOT !== null) return;
  Deno.test({
    name:
      `no pids cgroup of our own: ${what} skipped (they need root and cgroup v1's pids hierarchy or v2's pids controller, as CI has)`,
    ignore: true,
    fn() {},
  });
}

export class PidsCgroup implements AsyncDisposable {
  private constructor(readonly dir: string) {}

  static create(): PidsCgroup {
    if (PIDS_ROOT === null) throw new Error("no pids cgroup root (see pidsSkipLine)");
    const dir = `${PIDS_ROOT}/jm-test-${crypto.randomUUID().slice(0, 8)}`;
    Deno.mkdirSync(dir);
    return new PidsCgroup(dir);
  }

  /** Move process `pid`, with its threads, into this cgroup: what it starts after counts here. */
  add(pid: number): void {
    Deno.writeTextFileSync(`${this.dir}/cgroup.procs`, `${pid}\n`);
  }

  /** Processes and threads in it now. */
  current(): number {
    return Number(Deno.readTextFileSync(`${this.dir}/pids.current`).trim());
  }

  /** No new process or thread in it from now: its limit set to what it holds. */
  fill(): void {
    Deno.writeTextFileSync(`${this.dir}/pids.max`, `${this.current()}\n`);
  }

  /** No limit again. */
  free(): void {
    Deno.writeTextFileSync(`${this.dir}/pids.max`, "max\n");
  }

  private procs(): number[] {
    return Deno.readTextFileSync(`${this.dir}/cgroup.procs`).split("\n").filter((l) => l !== "")
      .map(Number);
  }

  /** Every process left in it killed, then the cgroup removed. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.free();
    await waitFor(() => {
      const left = this.procs();
      for (const pid of left) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch {
          // Gone meanwhile.
        }
      }
      return left.length === 0 || null;
    }, {
      timeoutMs: 10_000,
      what: `the processes of ${this.dir} to end`,
      detail: () => `${this.procs()}`,
    });
    Deno.removeSync(this.dir);
  }
}
