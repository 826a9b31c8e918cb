/**
 * A run's working directory, looked at before its shell is spawned in it:
 * which directory the path names now (an armed shell's is compared at its
 * release: a deploy may have switched a symbolic link since), or that it
 * did not answer. A stat of a directory on a hung network mount does not
 * return; made on the thread that starts runs, it would hold every run of
 * that thread, and a spawn there would too (the child's chdir holds the
 * vfork's parent). So the stat is made on Deno's blocking threads and
 * waited for CHECK_WAIT_MS at most: a path that does not answer by then
 * is not spawned in, and its run is recorded as not started, saying so.
 */

/** How long a run's working directory may take to answer a stat before its run is given up. */
export const CHECK_WAIT_MS = 2000;

/**
 * Which directory a run's `cwd` names now: `id` its device and inode,
 * null where there is none (the spawn then fails, saying why); `hung`:
 * no answer within the wait.
 */
export type DirectoryCheck = { id: string | null } | { hung: true };

/** The checks of one thread's runs (a lane's). */
export class DirectoryChecks {
  /**
   * Stats not answered yet, by path: a hung mount holds one blocking
   * thread for a path (until it answers, if ever), not one for each of its
   * runs (Deno has a few hundred).
   */
  private readonly asking = new Map<string, Promise<string | null>>();

  constructor(private readonly waitMs = CHECK_WAIT_MS) {}

  /** Which directory `path` names now, waiting `waitMs` at most; never rejects. */
  check(path: string): Promise<DirectoryCheck> {
    let stat = this.asking.get(path);
    if (stat === undefined) {
      const asked = Deno.stat(path).then(({ dev, ino }) => `${dev}:${ino}`, () => null);
      asked.finally(() => this.asking.delete(path));
      this.asking.set(path, stat = asked);
    }
    const answer = stat;
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve({ hung: true }), this.waitMs);
      answer.then((id) => {
        clearTimeout(timer);
        resolve({ id });
      });
    });
  }
}

/**
 * What held a run past its grace when the check of its working directory
 * `path` took `ms` (a slow mount), for its `missed` note.
 */
export function checkSlowNote(path: string, ms: number): string {
  return `the check of its working directory ${path} took ${
    (ms / 1000).toFixed(1)
  } s (a slow mount?)`;
}

/**
 * The note of a run not started because its working directory did not
 * answer; `alone`: it was the only run (`job run --here`), no other went on.
 */
export function hungNote(path: string, waitMs = CHECK_WAIT_MS, alone = false): string {
  return `could not start the command: its working directory ${path} did not answer within ${
    waitMs / 1000
  } s (a hung network mount?); nothing ran${alone ? "" : ", and the other runs went on"}`;
}
