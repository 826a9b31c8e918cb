/**
 * The end of a run its node wrote over `lost`: the node was declared dead
 * while it ran (paused, say), and the node that declared it marked the run
 * `lost`, retried it and started its follow-ups. Its node, back, records
 * the run as it ended (status, exit code, output), its note starting with
 * the lost note (`OVER_LOST`): who reads the row sees both, and a later
 * write of that node (its end sent again after an answer lost, a note of
 * what escaped the run's group) still finds the row was marked lost, so
 * that nothing follows that end on its node a second time.
 */
import type { RunStatus } from "../domain/run.ts";

/** How the note of a run ended over `lost` starts (no `%` or `_`: read with LIKE). */
export const OVER_LOST = "marked lost while its node ran on (";
/** What closes the lost note in it. */
const OVER_LOST_END =
  "); the node that marked it retried and followed it where its job says so, and its node recorded its end";

/** Whether a row reading `status` and `note` was marked `lost` (and its end may be written over it since). */
export function markedLost(row: { status: RunStatus | string; note: string | null }): boolean {
  return row.status === "lost" || (row.note?.startsWith(OVER_LOST) ?? false);
}

/**
 * The note of a run whose end its node writes over a row marked lost
 * (`current`: its note now): the lost note it had, then `note`.
 */
export function overLostNote(current: string | null, note: string | null): string {
  const at = current?.startsWith(OVER_LOST) ? current.indexOf(OVER_LOST_END) : -1;
  const lost = at >= 0
    ? current!.slice(0, at + OVER_LOST_END.length)
    : `${OVER_LOST}${current ?? "no note"}${OVER_LOST_END}`;
  return note ? `${lost}; ${note}` : lost;
}
