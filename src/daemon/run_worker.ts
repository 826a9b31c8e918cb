/** A worker thread holding one RunLane (run_lane.ts) for run_pool.ts. */
import { abandonNativeSpawn, closeNativeSpawn } from "./native_spawn.ts";
import { type FromRunLane, RunLane, type ToRunLane } from "./run_lane.ts";

// deno-lint-ignore no-explicit-any
const port = self as any as {
  postMessage(batch: FromRunLane[]): void;
  onmessage: ((event: MessageEvent<ToRunLane[]>) => void) | null;
};
/**
 * A bug is the thread's end: the pool hears of it as an error and fails the
 * thread's runs. The descriptors of children started natively are not the
 * thread's resources, which its end closes: they are closed first.
 */
function fail(error: unknown): never {
  abandonNativeSpawn();
  throw error;
}
const lane = new RunLane((batch) => port.postMessage(batch), fail);
port.onmessage = ({ data }) => {
  try {
    lane.receive(data);
  } catch (error) {
    fail(error);
  }
  // Told to end: its shells are disarmed (the lane closed), and the thread
  // ends once the descriptors of its children are closed.
  if (data.some((message) => message.type === "end")) closeNativeSpawn().then(() => self.close());
};
