/** What the `logs --follow` tests share: a log row written by hand, the follower, what it printed. */
import { CliProcess, rawQuery, type TestDatabase, waitFor } from "./helpers.ts";

/** A `jm_syslog` row of id `id` and `message`, as a service would write it. */
export async function logRow(db: TestDatabase, id: number, message: string): Promise<void> {
  await rawQuery(
    db,
    "INSERT INTO jm_syslog (id, created_at, level, logger_name, message, context) VALUES (?, 1, 'info', 'jobsmanager.test', ?, '{}')",
    [id, message],
  );
}

/** `logs --follow` on `db` (through `url`). */
export function follow(db: TestDatabase, url = db.url): CliProcess {
  return new CliProcess(["--database", url, "logs", "--follow"], { cwd: db.dir });
}

/** The messages `logs` printed so far, in order. */
export function printed(f: CliProcess): string[] {
  return f.stdout.split("\n").filter((l) => l !== "").map((l) => l.split("jobsmanager.test  ")[1]);
}

/** Wait till `f` printed every one of `messages`. */
export async function printedAll(f: CliProcess, messages: string[], what: string): Promise<void> {
  await waitFor(() => messages.every((m) => printed(f).includes(m)), {
    timeoutMs: 30_000,
    what,
    detail: () => `stdout:\n${f.stdout}\nstderr:\n${f.stderr}`,
  });
}
