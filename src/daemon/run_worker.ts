/** A worker thread holding one RunLane (run_lane.ts) for run_pool.ts. */
import { type FromRunLane, RunLane, type ToRunLane } from "./run_lane.ts";

// deno-lint-ignore no-explicit-any
const port = self as any as {
  postMessage(batch: FromRunLane[]): void;
  onmessage: ((event: MessageEvent<ToRunLane[]>) => void) | null;
};
// A bug is the thread's end: the pool hears of it as an error and fails the thread's runs.
const lane = new RunLane((batch) => port.postMessage(batch), (error) => {
  throw error;
});
port.onmessage = ({ data }) => lane.receive(data);
