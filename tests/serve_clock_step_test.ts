/**
 * `jobsmanager serve` follows a system clock stepped while it runs (NTP's
 * first sync, `date -s`, a VM restored): its fires move with the clock.
 * The step is libfaketime's (Debian's faketime package), preloaded into
 * serve alone: its wall clock moves, its monotonic clock does not, as with
 * a real step. Without the library these tests are skipped, with one line.
 */
import { assert } from "./assert.ts";
import { BACKENDS, freshDatabase, waitFor } from "./helpers.ts";
import { jm, runs, runsDetail, Serve, writeConfig } from "./serve_helpers.ts";

const FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
const HAVE_FAKETIME = (() => {
  try {
    return Deno.statSync(FAKETIME).isFile;
  } catch {
    return false;
  }
})();

if (!HAVE_FAKETIME) {
  Deno.test({
    name: "libfaketime not found: clock-step tests skipped (apt-get install -y faketime)",
    ignore: true,
    fn() {},
  });
}

for (const backend of BACKENDS) {
  Deno.test({
    name: `serve[${backend}]: a system clock stepped forward, then back, moves the fires with it`,
    ignore: !HAVE_FAKETIME,
    async fn() {
      await using db = await freshDatabase(backend);
      const offset = `${db.dir}/faketime`;
      await Deno.writeTextFile(offset, "+0\n");
      await jm(db, "job", "add", "tick", "--second", "*", "--command", "true");
      await using serve = new Serve(db, await writeConfig(db), {
        LD_PRELOAD: FAKETIME,
        FAKETIME_TIMESTAMP_FILE: offset,
        FAKETIME_NO_CACHE: "1",
        FAKETIME_DONT_FAKE_MONOTONIC: "1",
      });
      const ranAround = async (at: number) =>
        (await runs(db, "tick")).some((r) =>
          r.status === "success" && Math.abs(r.scheduled_at - at) <= 5_000
        );
      await waitFor(() => ranAround(Date.now()), {
        timeoutMs: 20_000,
        what: "tick to fire on time before the step",
        detail: runsDetail(db, "tick"),
      });

      // Ten minutes ahead: the next fires are ten minutes ahead of this (unstepped) process.
      await Deno.writeTextFile(offset, "+600\n");
      await waitFor(() => ranAround(Date.now() + 600_000), {
        timeoutMs: 20_000,
        what: "tick to fire at the stepped clock's seconds (10 min ahead)",
        detail: runsDetail(db, "tick"),
      });

      // And back: the fires follow the clock back to this process's time.
      await Deno.writeTextFile(offset, "+0\n");
      const back = Date.now();
      await waitFor(
        async () =>
          (await runs(db, "tick")).some((r) =>
            r.status === "success" && r.scheduled_at >= back && r.scheduled_at <= back + 20_000
          ),
        {
          timeoutMs: 20_000,
          what: "tick to fire at the clock's seconds again once it is stepped back",
          detail: runsDetail(db, "tick"),
        },
      );
      const { status } = await serve.terminate();
      assert(status.success, serve.stderr);
    },
  });
}
