/**
 * SIGUSR1 opens no debugger in `serve`: Deno would start its inspector on
 * 127.0.0.1:9229, where any local user could run code as the service's
 * user. The service ignores the signal; its runs still start with it at
 * its default. SQLite only: the signal has nothing to do with the backend.
 */
import { assert, assertEquals } from "./assert.ts";
import { freshDatabase, waitFor } from "./helpers.ts";
import { jm, ready, runs, runsDetail, startServe } from "./serve_helpers.ts";

/** Signals a process ignores, from its SigIgn mask. */
function ignoredSignals(status: string): number[] {
  const mask = BigInt(`0x${/^SigIgn:\s+(\w+)/m.exec(status)?.[1] ?? "0"}`);
  return Array.from({ length: 64 }, (_, i) => i + 1).filter((n) => mask & (1n << BigInt(n - 1)));
}

const SIGUSR1 = 10;

Deno.test("serve[sqlite]: SIGUSR1 opens no inspector: the service ignores it, and its runs start with it at its default", async () => {
  await using db = await freshDatabase("sqlite");
  const add = await jm(
    db,
    "job",
    "add",
    "mask",
    "--command",
    "grep SigIgn /proc/self/status",
    "--second",
    "*",
  );
  assertEquals(add.code, 0, add.stderr);
  await using serve = await startServe(db);
  await ready(db, serve);
  await waitFor(
    () => ignoredSignals(Deno.readTextFileSync(`/proc/${serve.pid}/status`)).includes(SIGUSR1),
    {
      timeoutMs: 20_000,
      what: "serve to ignore SIGUSR1",
      detail: () => `SigIgn: ${ignoredSignals(Deno.readTextFileSync(`/proc/${serve.pid}/status`))}`,
    },
  );
  serve.signal("SIGUSR1");
  const sentAt = Date.now();
  // Runs fired after the signal: the service goes on, and what a run ignores is what it inherits.
  const after = await waitFor(async () => {
    const done = (await runs(db, "mask")).filter((r) => r.scheduled_at > sentAt + 1000);
    return done.length > 0 && done.every((r) => r.status !== "running") ? done : null;
  }, { timeoutMs: 20_000, what: "a run of mask fired after SIGUSR1", detail: runsDetail(db) });
  assertEquals(after[0].status, "success", after[0].note ?? "");
  assert(!ignoredSignals(after[0].stdout ?? "").includes(SIGUSR1), after[0].stdout ?? "");
  const { status } = await serve.terminate();
  assertEquals(status.code, 0, serve.stderr);
  assert(!serve.stderr.includes("Debugger listening"), serve.stderr);
});
