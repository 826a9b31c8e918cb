/**
 * The processes of a run, found in /proc and ended: those of its process
 * group, and those that left it (setsid, a double fork) but still carry
 * the run's marker in their environment (`JM_RUN_MARKER`, set by the
 * runner; a process that replaced its whole environment cannot be found
 * this way), and the groups that such a process leads, whose members
 * may have dropped the marker. Only processes this user may read are
 * seen, which are the ones it may signal. Where there is no /proc,
 * nothing is found.
 */
import { redactSecrets } from "../domain/secrets.ts";

/** One process of a run. */
export interface RunProcess {
  pid: number;
  /** Its process group: the run's, or another when it escaped. */
  pgid: number;
  /** Its command line, shortened, for notes and logs. */
  command: string;
  /** It carries the run's marker. */
  marked: boolean;
  /** When it started (1/100 s since boot): with its pid, which process it is, as pids are reused. */
  start: number;
}

/** What one run asks: its marker, and its process group when known. */
export interface RunQuery {
  marker: string;
  pgid: number | null;
  /**
   * `bootTicks()` read before the run's first process started, when
   * known: a process started before it is not the run's (its group is
   * its shell's new session, its marker its shell's environment), so
   * its environment need not be read.
   */
  since?: number;
  /**
   * Groups other than `pgid` that are the run's, each led by a process
   * found carrying its marker (a setsid'd shell): their members that
   * dropped the marker (`env -u`, sudo's env_reset) are the run's too.
   * `signalRun` adds those it finds, and drops one once it has no member
   * or a leader the run never had: Linux reuses no group's id while it
   * has a member, but once it has none an unrelated group may get the id.
   */
  groups?: Set<number>;
  /** The run's processes found so far, by pid (`signalRun` adds those it finds). */
  seen?: Map<number, RunProcess>;
}

export const MARKER_VARIABLE = "JM_RUN_MARKER";

/**
 * The first 48 bits of every marker this process makes (`xxxxxxxx-xxxx`):
 * when the service dies, its run guard ends whatever carries one, told of
 * a run or not yet (run_guard.ts).
 */
export const MARKER_PREFIX = crypto.randomUUID().slice(0, 13);

/**
 * A new run's marker: this process's prefix and 74 random bits, a UUID's
 * shape and length (jm_runs.marker holds 36 characters).
 */
export function newMarker(): string {
  return MARKER_PREFIX + crypto.randomUUID().slice(13);
}
/** A command line as a note or a log line shows it: its first characters. */
const COMMAND_CHARS = 80;
/** A command line as read: enough that a secret in what is shown is whole when it is masked. */
const COMMAND_READ = 4096;

interface Pending {
  query: RunQuery;
  resolve: (found: RunProcess[]) => void;
}

/**
 * Processes read from /proc in one turn of the event loop. Reading /proc
 * is memory, not disk: a synchronous read costs a few microseconds where
 * an asynchronous one costs a trip through the blocking thread pool (a
 * pass over 111 processes: 6.4 ms of CPU against 43.5 ms, and a pass runs
 * each second that runs end); a slice at a time, the thread still hears
 * fires and runs' ends between slices on a machine with thousands.
 */
const PROCESSES_PER_TURN = 64;

/**
 * Finds the processes of runs. Queries made while a scan waits to start
 * share it: many runs end at the same instant, and one pass over /proc
 * answers them all.
 */
export class ProcessTable {
  private pending: Pending[] = [];
  private scheduled = false;

  /** The live processes of a run (none once it is all gone). */
  find(query: RunQuery): Promise<RunProcess[]> {
    const answer = Promise.withResolvers<RunProcess[]>();
    this.pending.push({ query, resolve: answer.resolve });
    if (!this.scheduled) {
      this.scheduled = true;
      setTimeout(() => this.scan(), 0);
    }
    return answer.promise;
  }

  private async scan(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    this.scheduled = false;
    // Queries may share a group id: a run that ended a while ago, and a
    // new run whose shell got the same pid since.
    const index = (keys: (p: Pending) => (string | number | null)[]) => {
      const map = new Map<string | number, number[]>();
      batch.forEach((p, i) => {
        for (const k of new Set(keys(p))) if (k !== null) map.set(k, [...map.get(k) ?? [], i]);
      });
      return map;
    };
    const byMarker = index((p) => [p.query.marker]);
    const byGroup = index((p) => [p.query.pgid, ...p.query.groups ?? []]);
    const since = Math.min(...batch.map((p) => p.query.since ?? 0));
    const found: RunProcess[][] = batch.map(() => []);
    const pids: number[] = [];
    try {
      for (const entry of Deno.readDirSync("/proc")) {
        if (/^\d+$/.test(entry.name)) pids.push(Number(entry.name));
      }
    } catch {
      // No /proc: nothing can be found, and nothing is claimed to be.
    }
    // Every live process's group: the members of a group whose leader is
    // found carrying a marker are known only once the pass is over.
    const groupOf = new Map<number, { pgid: number; start: number }>();
    for (let from = 0; from < pids.length; from += PROCESSES_PER_TURN) {
      if (from > 0) await new Promise((turn) => setTimeout(turn, 0));
      for (const pid of pids.slice(from, from + PROCESSES_PER_TURN)) {
        const process = inspect(pid, since);
        if (process !== null) groupOf.set(pid, process);
        if (
          process === null ||
          !byGroup.has(process.pgid) && (process.marker === null || !byMarker.has(process.marker))
        ) continue;
        const queries = new Set([
          ...byGroup.get(process.pgid) ?? [],
          ...(process.marker === null ? [] : byMarker.get(process.marker) ?? []),
        ]);
        const command = commandLine(pid);
        for (const i of queries) {
          found[i].push({
            pid,
            pgid: process.pgid,
            command,
            marked: process.marker === batch[i].query.marker,
            start: process.start,
          });
        }
      }
    }
    batch.forEach((p, i) => {
      const led = new Set(found[i].filter((f) => leadsOwnGroup(f, p.query)).map((f) => f.pgid));
      for (const [pid, { pgid, start }] of led.size === 0 ? [] : groupOf) {
        if (!led.has(pgid) || found[i].some((f) => f.pid === pid)) continue;
        found[i].push({ pid, pgid, command: commandLine(pid), marked: false, start });
      }
      p.resolve(found[i]);
    });
  }
}

/** This process's group: never a run's, whatever carries a marker in it. */
const OWN_GROUP = Number(statFields(Deno.pid)?.[2] ?? 0);

/**
 * `p`, found carrying the run's marker outside its group, leads a group
 * of its own (setsid, setpgid): that group is the run's.
 */
function leadsOwnGroup(p: RunProcess, run: RunQuery): boolean {
  return p.marked && p.pid === p.pgid && p.pgid !== run.pgid && p.pgid > 1 &&
    p.pgid !== OWN_GROUP;
}

const utf8 = new TextDecoder();

/**
 * The fields of /proc/PID/stat after the command's name, from the state
 * on ("state ppid pgrp … starttime (the 20th here) …"); null when the
 * process is gone or there is no /proc.
 */
export function statFields(pid: number): string[] | null {
  try {
    return parseStat(Deno.readTextFileSync(`/proc/${pid}/stat`));
  } catch {
    return null;
  }
}

/** The fields of a /proc/PID/stat line after the command's name (`statFields`). */
export function parseStat(stat: string): string[] {
  // The name, in parentheses, may hold spaces and parentheses itself.
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/**
 * A process in /proc state `state` has ended, though its pid is still
 * taken: a zombie (`Z`: killed or exited, its parent has not reaped it
 * yet) or one being reaped (`X`, dead). It runs nothing.
 */
export function endedState(state: string | undefined): boolean {
  return state === "Z" || state === "X";
}

/**
 * The start (1/100 s since boot) in a process's `statFields`; null when
 * there are none (gone, or no /proc) or the process has ended (`endedState`).
 */
export function startIn(fields: string[] | null): number | null {
  if (fields === null || endedState(fields[0])) return null;
  return Number(fields[19]);
}

/**
 * When process `pid` started: 1/100 s since boot (/proc/PID/stat); null
 * when it is gone, has ended (a zombie, killed and not reaped yet, or one
 * being reaped), or there is no /proc.
 */
export function processStart(pid: number): number | null {
  return startIn(statFields(pid));
}

/** This boot's id (/proc/sys/kernel/random/boot_id); null where there is none. */
export function bootId(): string | null {
  try {
    return Deno.readTextFileSync("/proc/sys/kernel/random/boot_id").trim();
  } catch {
    return null;
  }
}

/** This process's pid namespace (its inode number); null where /proc does not say. */
export function pidNamespace(): number | null {
  try {
    const inode = Deno.readLinkSync("/proc/self/ns/pid").match(/\[(\d+)\]/)?.[1];
    return inode === undefined ? null : Number(inode);
  } catch {
    return null;
  }
}

/**
 * Now on the clock of a process's start time in /proc/PID/stat: 1/100 s
 * since boot (CLOCK_BOOTTIME, as /proc/uptime counts it); 0 where there
 * is no /proc.
 */
export function bootTicks(): number {
  try {
    const [seconds, hundredths] = Deno.readTextFileSync("/proc/uptime").split(" ")[0].split(".");
    return Number(seconds) * 100 + Number(hundredths);
  } catch {
    return 0;
  }
}

/**
 * The process group, start (boot ticks) and run marker of a live process;
 * null when gone, ended (`endedState`) or not ours. The marker of one started before
 * `since` (boot ticks) is not read: null.
 */
function inspect(
  pid: number,
  since: number,
): { pgid: number; start: number; marker: string | null } | null {
  try {
    const fields = statFields(pid);
    if (fields === null) return null;
    const start = startIn(fields);
    if (start === null) return null;
    const pgrp = fields[2];
    if (start < since) return { pgid: Number(pgrp), start, marker: null };
    const environ = `\0${utf8.decode(Deno.readFileSync(`/proc/${pid}/environ`))}`;
    const key = `\0${MARKER_VARIABLE}=`;
    const at = environ.indexOf(key);
    const marker = at < 0 ? null : environ.slice(at + key.length).split("\0", 1)[0];
    return { pgid: Number(pgrp), start, marker };
  } catch {
    return null;
  }
}

/**
 * Process `p` as a note or a log line names it: its pid and the start of
 * its command line, `secrets` masked before the cut (after it, a secret
 * the cut split would show its start).
 */
export function named(p: RunProcess, secrets: readonly string[] = []): string {
  const command = redactSecrets(p.command, secrets);
  return `${p.pid} (${
    command.length > COMMAND_CHARS ? `${command.slice(0, COMMAND_CHARS)}…` : command
  })`;
}

function commandLine(pid: number): string {
  try {
    const text = Deno.readTextFileSync(`/proc/${pid}/cmdline`).replaceAll("\0", " ").trim();
    return text.length > COMMAND_READ ? `${text.slice(0, COMMAND_READ)}…` : text;
  } catch {
    return "?";
  }
}

/** A run whose processes are to be signalled. */
export interface RunRef extends RunQuery {
  /**
   * The group is the run's for sure: its shell was this service's child.
   * Otherwise (a run a previous service left) the group counts as the
   * run's only while a process in it carries the marker: its id may have
   * been reused since.
   */
  ownGroup: boolean;
}

/** What ending a run's leftovers found. */
export interface Ended {
  /** Every process of the run that was still there. */
  found: RunProcess[];
  /** Those of them outside its group. */
  escaped: RunProcess[];
  /** Some were still there after the grace, and got SIGKILL. */
  killed: boolean;
}

/** How often, within the grace, the end of a run's leftovers is looked for. */
const POLL_MS = 50;
/** How long processes sent SIGKILL may take to be gone. */
const KILLED_WAIT_MS = 1000;

/** One pass over /proc answers every run that ends at the same instant. */
const table = new ProcessTable();

/** Signal a process, or with a negative pid a process group; false when there is none. */
function signal(pid: number, sig: Deno.Signal): boolean {
  try {
    Deno.kill(pid, sig);
    return true;
  } catch {
    // ESRCH: it is already gone.
    return false;
  }
}

/**
 * Signal process group `pgid`; false when it has no process left (a cheap
 * check: no pass over /proc).
 */
export function signalGroup(pgid: number, sig: Deno.Signal): boolean {
  return signal(-pgid, sig);
}

/**
 * Signal the run's group (unless `groupSignalled`: the caller just did)
 * and what carries its marker outside it, with the whole group of each
 * such process that leads one (see RunQuery's `groups`); returns what
 * belongs to it.
 */
export async function signalRun(
  run: RunRef,
  sig: Deno.Signal,
  groupSignalled = false,
): Promise<RunProcess[]> {
  if (run.ownGroup && run.pgid !== null && !groupSignalled) signal(-run.pgid, sig);
  const found = await table.find(run);
  const group = run.pgid !== null &&
    (run.ownGroup || found.some((p) => p.marked && p.pgid === run.pgid));
  if (group && !run.ownGroup) signal(-run.pgid!, sig);
  dropEmptied(run, found);
  for (const p of found) if (leadsOwnGroup(p, run)) run.groups?.add(p.pgid);
  // Whole, to reach its members that dropped the marker and started since the pass.
  const groups = new Set(
    found.filter((p) => leadsOwnGroup(p, run) || run.groups?.has(p.pgid)).map((p) => p.pgid),
  );
  for (const p of found) if (p.marked && p.pgid !== run.pgid) signal(p.pid, sig);
  for (const pgid of groups) signal(-pgid, sig);
  const own = found.filter((p) => p.marked || (group && p.pgid === run.pgid) || groups.has(p.pgid));
  for (const p of own) run.seen?.set(p.pid, p);
  return own;
}

/**
 * Drop each of the run's `groups` that `found` shows emptied, or led by a
 * process the run never had: Linux gives a group's id to another only
 * once it has no member, and the id is then its new leader's pid
 * (RunQuery's `groups`). A group whose leader exited keeps its members,
 * marked or not (a cleanup its leader started on SIGTERM without the
 * marker): they are the run's.
 */
function dropEmptied(run: RunQuery, found: readonly RunProcess[]): void {
  for (const pgid of run.groups ?? []) {
    const members = found.filter((p) => p.pgid === pgid);
    const newLeader = members.some((p) => p.pid === pgid && !p.marked && !seenBefore(run, p));
    if (members.length === 0 || newLeader) run.groups!.delete(pgid);
  }
}

/** `p` is the process of that pid found as the run's before, not one that got its pid since. */
function seenBefore(run: RunQuery, p: RunProcess): boolean {
  return run.seen?.get(p.pid)?.start === p.start;
}

/**
 * SIGTERM to what belongs to the run, SIGKILL after `graceMs` to what is
 * still there; with `groupSignalled`, the caller has just sent its group
 * the SIGTERM.
 */
export async function endRun(
  ref: RunRef,
  graceMs: number,
  { groupSignalled = false } = {},
): Promise<Ended> {
  // What signals sent before (a timeout's, an interrupt's) found is the run's too.
  const run = { ...ref, groups: ref.groups ?? new Set<number>(), seen: ref.seen ?? new Map() };
  const ended = new Map<number, RunProcess>();
  const note = (found: RunProcess[]) => found.forEach((p) => ended.set(p.pid, p));
  const deadline = Date.now() + graceMs;
  let left = await signalRun(run, "SIGTERM", groupSignalled);
  note(left);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    const found = await table.find(run);
    dropEmptied(run, found);
    left = found.filter((p) => seenBefore(run, p) || p.marked || run.groups.has(p.pgid));
  }
  const killed = left.length > 0;
  if (killed) {
    note(await signalRun(run, "SIGKILL"));
    // SIGKILL is not instant: the run is over once they are gone.
    const reaped = Date.now() + KILLED_WAIT_MS;
    while (Date.now() < reaped && (await table.find(run)).some((p) => seenBefore(run, p))) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }
  const found = [...ended.values()];
  return { found, escaped: found.filter((p) => p.pgid !== run.pgid), killed };
}

/**
 * How long after a run's end what left its group is looked for: one pass
 * over /proc then answers every run that ended meanwhile. Such a process
 * outlives its run by this much before its SIGTERM; in exchange, a run
 * that leaves nothing (nearly all) costs no pass of its own, which at
 * hundreds of runs a second is what bounded the rate.
 */
const SWEEP_MS = 1000;

interface Later {
  run: RunQuery;
  graceMs: number;
  resolve: (ended: Promise<Ended>) => void;
}

let later: Later[] = [];

/**
 * End, after a while, what carries the marker of a run whose group is
 * empty: processes that left the group (setsid, a double fork) with their
 * output elsewhere. Its group id is not signalled: it may be reused by
 * then, and counts as the run's only while a process in it carries the
 * marker.
 */
export function endEscapedLater(run: RunQuery, graceMs: number): Promise<Ended> {
  const answer = Promise.withResolvers<Ended>();
  if (later.length === 0) setTimeout(sweep, SWEEP_MS);
  later.push({ run, graceMs, resolve: answer.resolve });
  return answer.promise;
}

function sweep(): void {
  const batch = later;
  later = [];
  // Queried in the same turn, they share one pass over /proc.
  for (const { run, graceMs, resolve } of batch) {
    resolve(endRun({ ...run, ownGroup: false }, graceMs));
  }
}
