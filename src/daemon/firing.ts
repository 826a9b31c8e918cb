/**
 * The firing of one instant: of the fires the timetable decided, those
 * this node fires are claimed in jm_runs in one write (the unique key
 * settles a fire two nodes decided), each recorded `running`, `queued`
 * for a worker or behind its job's earlier fire (coalesce off), `skipped`
 * for max_instances, or `missed` past its grace; then the runs that may
 * start are started, armed shells first. A database that does not answer
 * the claim, on a node that holds through outages, puts the fires back.
 */
import type { NewRun, RunStatus } from "../domain/run.ts";
import type { ActiveRuns } from "./active_runs.ts";
import type { Aftermath } from "./aftermath.ts";
import type { Cluster } from "./cluster.ts";
import type { DbHealth } from "./db_health.ts";
import type { Handover } from "./handover.ts";
import { log } from "./log.ts";
import type { Notifier } from "./notifier.ts";
import type { RunRecorder } from "./recorder.ts";
import type { Armed } from "./runner.ts";
import type { ShellArming } from "./shell_arming.ts";
import type { Slot, SlotGate } from "./slots.ts";
import type { Decision, Due, Timetable } from "./timetable.ts";
import { coalescedNote, missedRun, type WaitingFires } from "./waiting_fires.ts";
import { newMarker } from "./processes.ts";

export interface FiringOptions {
  recorder: Pick<RunRecorder, "claim" | "claimOrHold" | "lostMarker">;
  cluster: Pick<Cluster, "holds">;
  health: DbHealth;
  slots: SlotGate;
  timetable: Timetable;
  notifier: Pick<Notifier, "runEnded">;
  observer?: { ended(jobId: string, status: RunStatus, fires?: number): void };
  aftermath: Aftermath;
  handover: Handover;
  shells: ShellArming;
  runs: ActiveRuns;
  fires: WaitingFires;
  nodeId(): string;
  /** Keep `write` till the stop, logging its failure. */
  track(write: Promise<unknown>): void;
  /** Send the runs handed to the runner on their way now. */
  sendStarts?: () => void;
}

const schedulerLog = log("scheduler");

export class Firing {
  constructor(private readonly o: FiringOptions) {}

  /** Record what the timetable decided, then start what may start. */
  async dispatch(all: Decision, now: number): Promise<void> {
    const decision: Decision = {
      run: all.run.filter((d) => this.o.handover.mayFire(d.job.id, d.scheduledAt)),
      missed: all.missed.filter((m) => this.o.handover.mayFire(m.job.id, m.first)),
    };
    const armed = this.o.shells.take(now);
    if (decision.run.length === 0 && decision.missed.length === 0) {
      // Every fire went to another node since its shell was armed.
      for (const fire of armed.values()) fire.shell.disarm();
      return;
    }
    const rows: NewRun[] = [];
    const plans: ({ due: Due; slot: Slot; marker: string; shell?: Armed } | null)[] = [];
    for (const m of decision.missed) {
      // Held through an outage (cluster.on_database_outage), the fires say which.
      const outage = this.o.cluster.holds
        ? this.o.health.outagesDuring(m.first, m.last + m.policy.graceMs)
        : null;
      const why = [this.o.handover.inheritedWhy(m.job.id), outage].filter((w) => w).join("; ");
      rows.push({
        job_id: m.job.id,
        job_updated_at: m.job.updated_at,
        scheduled_at: m.last,
        status: "missed",
        trigger: "schedule",
        node_id: this.o.nodeId(),
        finished_at: now,
        note: `${m.more ? "more than " : ""}${m.count} fire${m.count === 1 ? "" : "s"} from ${
          new Date(m.first).toISOString()
        } to ${new Date(m.last).toISOString()} came later than misfire_grace_time (${
          m.policy.graceMs / 1000
        } s)${why ? `; ${why}` : ""}`,
      });
      plans.push(null);
    }
    const inTurn = this.o.runs.inTurn(decision.run);
    // A fire about to be skipped for a run on another node whose row may say it ended since:
    // that row is asked now, not at the next poll (a note naming a node whose run was over).
    const heldElsewhere = new Set(
      inTurn.filter((due) =>
        this.o.slots.held(due.job.id) >= due.policy.maxInstances &&
        this.o.handover.holdsFor(due.job.id)
      ).map((due) => due.job.id),
    );
    if (heldElsewhere.size > 0) await this.o.handover.releaseEndedOf(heldElsewhere);
    // A job's fires decided together (a catch-up without coalesce): the one that took its last slot.
    const tookSlot = new Map<string, number>();
    // Those queued behind it, by their rows.
    const behind: { index: number; due: Due; marker: string }[] = [];
    for (const due of inTurn) {
      const base = {
        job_id: due.job.id,
        job_updated_at: due.job.updated_at,
        scheduled_at: due.scheduledAt,
        trigger: "schedule" as const,
        node_id: this.o.nodeId(),
      };
      const slot = this.o.slots.tryAcquire(due.job.id, due.policy.maxInstances);
      const took = tookSlot.get(due.job.id);
      if (!slot && took !== undefined) {
        // Its turn comes when a run of the catch-up ends.
        const marker = newMarker();
        rows.push({
          ...base,
          status: "queued",
          note: `coalesce is off: it runs after the fire of ${
            new Date(took).toISOString()
          } ends (max_instances ${due.policy.maxInstances}), if within its grace then`,
          marker,
        });
        plans.push(null);
        behind.push({ index: rows.length - 1, due, marker });
        continue;
      }
      if (!slot) {
        rows.push({
          ...base,
          status: "skipped",
          finished_at: now,
          note: `max_instances (${due.policy.maxInstances}) runs were still running${
            this.o.handover.elsewhereNote(due.job.id)
          }`,
        });
        plans.push(null);
        continue;
      }
      tookSlot.set(due.job.id, due.scheduledAt);
      // Recorded with the claim, before the process exists: a service
      // killed right after the start leaves a run its successor can end.
      // A fire held after its claim's answer was lost is claimed again
      // with its marker: the row that claim may have written is its own.
      const lost = this.o.recorder.lostMarker(due.job.id, due.scheduledAt);
      const fire = lost === undefined ? this.o.shells.armedFor(armed, due) : null;
      const marker = lost ?? fire?.marker ?? newMarker();
      rows.push({
        ...base,
        status: slot.working ? "running" : "queued",
        started_at: slot.working ? now : null,
        note: coalescedNote(due),
        marker,
      });
      plans.push({ due, slot, marker, shell: fire?.shell });
    }
    // Shells armed for fires that are not run here (skipped, another node's, a job changed).
    for (const fire of armed.values()) fire.shell.disarm();
    for (const row of rows) this.o.handover.decided(row.job_id);
    const ids = this.o.cluster.holds
      ? await this.o.recorder.claimOrHold(rows, (landed) => {
        // Decided again once the database is back, a fire of the same instant finds these rows
        // and takes them for another node's: they are told here.
        for (const { index, id, row } of landed) {
          if (index < decision.missed.length || row.status !== "missed") {
            this.tell(decision, rows, index, id, now);
          } else {
            this.o.notifier.runEnded(
              inTurn[index - decision.missed.length].job,
              missedRun(id, row, now),
            );
          }
        }
      })
      : await this.o.recorder.claim(rows, {
        instant: true,
        startBy: plans.reduce(
          (first, plan) =>
            plan ? Math.min(first, plan.due.scheduledAt + plan.due.policy.graceMs) : first,
          Infinity,
        ),
      });
    if (ids === null) {
      // A missed row stands for its fires from the first: all are decided again.
      return this.hold(rows, plans, [
        ...decision.missed.map((m) => m.first),
        ...rows.slice(decision.missed.length).map((r) => r.scheduled_at),
      ]);
    }
    // Told and counted only where this node's row stands: another may have claimed the fire.
    ids.forEach((id, i) => id !== null && this.tell(decision, rows, i, id, now));
    // An id a run here still holds: jm_runs was emptied meanwhile (active_runs.ts `rowless`).
    rows.forEach((row, i) => {
      if (ids[i] !== null) this.o.runs.idTaken(ids[i]!, row.job_id);
    });
    for (const { index, due, marker } of behind) {
      if (ids[index] === null) continue;
      this.o.fires.queueBehind(due.job.id, { due, runId: ids[index]!, marker });
    }
    // Armed runs first: their starts are writes to pipes, and go in one post.
    const armedFirst = plans.map((plan, i) => [plan, i] as const).sort(([a], [b]) =>
      Number(b?.shell !== undefined) - Number(a?.shell !== undefined)
    );
    let lost = false;
    armedFirst.forEach(([plan, i]) => {
      if (!plan) return;
      const id = ids[i];
      if (id === null) {
        // Another node or an earlier life of this one claimed it.
        plan.slot.release();
        plan.shell?.disarm();
        lost = true;
      } else {
        this.o.track(this.o.aftermath.fired(plan.due.job, id, plan.due.scheduledAt));
        if (plan.slot.working) {
          this.o.fires.startOnTime(
            plan.due,
            id,
            plan.slot,
            plan.marker,
            "the service was busy starting other runs",
            plan.shell,
          );
        } else {
          this.o.fires.push({
            due: plan.due,
            runId: id,
            slot: plan.slot,
            marker: plan.marker,
            shell: plan.shell,
          });
        }
      }
    });
    this.o.sendStarts?.();
    // Runs may have ended while the claim was written: their workers are free now.
    this.o.fires.startWaiting();
    // A job whose owner changed: the other node's run (if it started it) holds its slots
    // here before the next fire is decided.
    if (lost) {
      await this.o.handover.holdRunsElsewhere().catch((error) => this.o.health.failed(error));
    }
  }

  /** Row `index` of an instant's claim stands as `id`: a missed or skipped one is told and counted. */
  private tell(decision: Decision, rows: NewRun[], index: number, id: number, now: number): void {
    const m = decision.missed[index];
    if (m !== undefined) {
      this.o.notifier.runEnded(m.job, missedRun(id, rows[index], now));
      this.o.observer?.ended(m.job.id, "missed", m.count);
      schedulerLog.warn("job {job}: {count} fires missed", { job: m.job.id, count: m.count });
    } else if (rows[index].status === "skipped") {
      this.o.observer?.ended(rows[index].job_id, "skipped");
      schedulerLog.info("job {job}: fire skipped, max_instances reached", {
        job: rows[index].job_id,
      });
    }
  }

  /**
   * The database did not answer the claim and this node holds: run
   * nothing, and put the fires back in the timetable (each row's from
   * `firstFires`), to be decided (late, or missed) once the database is back.
   */
  private hold(
    rows: NewRun[],
    plans: ({ slot: Slot; shell?: Armed } | null)[],
    firstFires: number[],
  ): void {
    for (const plan of plans) {
      plan?.slot.release();
      plan?.shell?.disarm();
    }
    rows.forEach((row, i) => this.o.timetable.rewind(row.job_id, firstFires[i] - 1));
    schedulerLog.warn(
      "the database did not answer; holding {count} fires until it does (cluster.on_database_outage)",
      { count: rows.length },
    );
  }
}
