/** A worker thread holding one RunLane (run_lane.ts) for run_pool.ts. */
import { errorMessage } from "../errors.ts";
import { abandonNativeSpawn, closeNativeSpawn } from "./native_spawn.ts";
import { type FromRunLane, RunLane, type ToRunLane } from "./run_lane.ts";

/** What the thread sends: its lane's messages, or that it failed (a bug) and sends nothing more. */
export type FromRunWorker = FromRunLane | { type: "failed"; why: string };

// deno-lint-ignore no-explicit-any
const port = self as any as {
  postMessage(batch: FromRunWorker[]): void;
  onmessage: ((event: MessageEvent<ToRunLane[]>) => void) | null;
};
let failed = false;
/**
 * A bug ends the thread's lane: what it had heard is sent, then that it
 * failed, and the pool fails the lane's runs. The thread kills its
 * children's groups and lives on until they are reaped (it alone can: a
 * zombie would stay until the service exits), then ends.
 */
function fail(error: unknown): void {
  if (failed) return;
  failed = true;
  port.onmessage = null;
  let why = errorMessage(error);
  try {
    lane.close();
  } catch (closing) {
    why += `; then closing its lane: ${errorMessage(closing)}`;
  }
  port.postMessage([{ type: "failed", why }]);
  abandonNativeSpawn().then(closeNativeSpawn).finally(() => self.close());
}

// A bug anywhere else in the thread (a handler of its children's output, a
// timer) fails it so too; one after that ends it at once (the pool's onerror).
self.addEventListener("error", (event) => {
  if (failed) return;
  event.preventDefault();
  fail(event.error ?? event.message);
});
self.addEventListener("unhandledrejection", (event) => {
  if (failed) return;
  event.preventDefault();
  fail(event.reason);
});
const lane = new RunLane((batch) => port.postMessage(batch), fail);
port.onmessage = ({ data }) => {
  try {
    lane.receive(data);
  } catch (error) {
    fail(error);
    return;
  }
  // Told to end: its shells are disarmed (the lane closed), and the thread
  // ends once the descriptors of its children are closed.
  if (data.some((message) => message.type === "end")) closeNativeSpawn().then(() => self.close());
};
