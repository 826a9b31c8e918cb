/** A zombie process, for what a killed process not reaped yet looks like. */
import { waitFor } from "./helpers.ts";
import { statFields } from "../src/daemon/processes.ts";

/**
 * A child shell that ends once its parent has become `sleep` (after its
 * exec): had it ended before, the parent shell could reap it first (CI at
 * d4dbc9f: `sleep 0 &` was gone, never a zombie).
 */
const ENDS_AFTER_EXEC =
  `sh -c 'p=$(cut -d" " -f4 /proc/$$/stat); until [ "$(cat /proc/$p/comm)" = sleep ]; do sleep 0.01; done'`;

/**
 * A zombie: the child of a `sleep` that ended, which sleep never reaps (it
 * waits for none): kill(2) still finds its pid. Disposed: its parent
 * killed, after which init reaps it.
 */
export async function zombie(): Promise<{ pid: number } & AsyncDisposable> {
  const parent = new Deno.Command("sh", {
    args: ["-c", `${ENDS_AFTER_EXEC} & echo "$!"; exec sleep 300`],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const dispose = async () => {
    parent.kill("SIGKILL");
    await parent.status;
  };
  try {
    const reader = parent.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let said = "";
    while (!said.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      said += value;
    }
    await reader.cancel();
    const pid = Number(said.trim());
    await waitFor(() => statFields(pid)?.[0] === "Z", {
      timeoutMs: 10_000,
      what: `pid ${pid} (sh's background child) to be a zombie`,
      detail: () =>
        `its state: ${statFields(pid)?.[0] ?? "gone"} (sh said ${JSON.stringify(said)})`,
    });
    return { pid, [Symbol.asyncDispose]: dispose };
  } catch (error) {
    await dispose();
    throw error;
  }
}
