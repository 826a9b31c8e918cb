/**
 * Loading thousands of jobs at once makes V8 grow its young generation
 * (tens of megabytes, kept while the service idles until its memory reducer
 * happens to run). One full collection right after such a load gives it back.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

let collect: (() => void) | null | undefined;

/** A full garbage collection now (tens of ms for 10,000 jobs); nothing where V8 refuses it. */
export function collectGarbage(): void {
  if (collect === undefined) {
    try {
      // V8 gives a new context `gc` once the flag is set, even after start-up.
      setFlagsFromString("--expose-gc");
      collect = runInNewContext("gc") as () => void;
    } catch {
      collect = null;
    }
  }
  collect?.();
}
