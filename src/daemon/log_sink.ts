/**
 * The `jm_syslog` sink. It never blocks and never throws into the caller:
 * records go into a bounded queue and are written in batches (every
 * second, or as soon as a batch is full). While the database is away the
 * queue keeps what fits and drops the oldest, counting; the count is
 * reported (to the file and console) once writes succeed again.
 */
import type { LogRecord, Sink } from "@logtape/logtape";
import type { LogRow } from "../domain/log_row.ts";
import { type Clock, settlesWithin, systemClock } from "./clock.ts";

export interface DatabaseSinkOptions {
  /** Writes one batch; rejects when the database is away. */
  insert: (rows: LogRow[]) => Promise<void>;
  /** Where the sink reports on itself (never itself). */
  report: (level: "warning" | "info", message: string, properties: Record<string, unknown>) => void;
  /**
   * False while the database is known to be away (the database health
   * probes it): the sink then keeps queueing without trying.
   */
  online?: () => boolean;
  /** This service's node id, once it knows it: each row names the node that wrote it. */
  node?: () => string | null;
  /** Rewrite a row's context just before it is written (provisional run ids → real ones). */
  resolve?: (context: Record<string, unknown>) => Record<string, unknown>;
  maxQueue?: number;
  batchSize?: number;
  flushMs?: number;
  /** What bounds `close`; the system clock by default. */
  clock?: Clock;
}

/** The text of a record, its values rendered as JSON. */
export function renderMessage(record: LogRecord): string {
  return record.message.map((part, i) =>
    i % 2 === 0 || typeof part === "string" ? String(part) : JSON.stringify(part) ?? String(part)
  ).join("");
}

export function toLogRow(record: LogRecord, node: string | null = null): LogRow {
  return {
    node_id: node,
    created_at: Math.floor(record.timestamp),
    level: record.level,
    logger_name: record.category.join("."),
    message: renderMessage(record),
    context: { ...record.properties },
  };
}

export class DatabaseLogSink implements AsyncDisposable {
  private queue: LogRow[] = [];
  private dropped = 0;
  /** Records dropped since the sink was made (for /metrics); `dropped` restarts at each report. */
  droppedTotal = 0;
  private failing = false;
  private writing: Promise<void> | null = null;
  /** The next periodic flush, armed only while records wait: an idle service never wakes for it. */
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  private soon: ReturnType<typeof setTimeout> | undefined;
  private started = false;
  private readonly maxQueue: number;
  private readonly batchSize: number;

  constructor(private readonly options: DatabaseSinkOptions) {
    this.maxQueue = options.maxQueue ?? 10_000;
    this.batchSize = options.batchSize ?? 500;
  }

  /** Begin writing (once the table exists); records queue until then. */
  start(): void {
    this.started = true;
    this.flush();
    this.arm();
  }

  /** Flush in `flushMs` if records wait (a failed write is retried the same way). */
  private arm(): void {
    if (!this.started || this.closed || this.timer !== undefined || this.queue.length === 0) {
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush().finally(() => this.arm());
    }, this.options.flushMs ?? 1000);
  }

  /** Whether a flush is timed: only while records wait, so an idle service never wakes for it. */
  get armed(): boolean {
    return this.timer !== undefined;
  }

  /** Records waiting to be written. */
  get queued(): number {
    return this.queue.length;
  }

  /** The LogTape sink: enqueue and return. */
  readonly sink: Sink = (record) => {
    this.queue.push(toLogRow(record, this.options.node?.() ?? null));
    this.trim();
    this.arm();
    // A full batch is written soon, but never on the stack of whoever logged.
    if (this.started && this.queue.length >= this.batchSize && !this.failing) {
      this.soon ??= setTimeout(() => {
        this.soon = undefined;
        this.flush();
      }, 0);
    }
  };

  private trim(): void {
    // Cut in bulk, so a flood costs one splice per thousand records, not a shift each.
    const excess = this.queue.length - this.maxQueue;
    if (excess > 0 && (excess >= 1000 || this.queue.length % 1000 === 0)) {
      this.queue.splice(0, excess);
      this.dropped += excess;
      this.droppedTotal += excess;
    }
  }

  /** Write what is queued, one batch at a time; resolves when done or failed. */
  flush(): Promise<void> {
    if (!this.started) return Promise.resolve();
    this.writing ??= this.drain().finally(() => this.writing = null);
    return this.writing;
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      if (this.options.online && !this.options.online()) return;
      const resolve = this.options.resolve;
      const batch = this.queue.slice(0, this.batchSize);
      try {
        await this.options.insert(
          resolve ? batch.map((r) => ({ ...r, context: resolve(r.context) })) : batch,
        );
      } catch (error) {
        if (!this.failing) {
          this.failing = true;
          this.options.report(
            "warning",
            "cannot write logs to the database, queueing them: {error}",
            {
              error: String(error),
              queued: this.queue.length,
            },
          );
        }
        return;
      }
      this.queue.splice(0, batch.length);
      if (this.failing) {
        this.failing = false;
        this.options.report(
          "info",
          "writing logs to the database again; {dropped} records were dropped meanwhile",
          {
            dropped: this.dropped,
          },
        );
        this.dropped = 0;
      } else if (this.dropped > 0) {
        this.options.report(
          "warning",
          "{dropped} log records were dropped: more came than the queue holds",
          {
            dropped: this.dropped,
          },
        );
        this.dropped = 0;
      }
    }
  }

  /** Stop the timer and write what is queued, for at most `timeoutMs`. */
  async close(timeoutMs: number): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.soon);
    // Never started (the start failed before the schema was ready): nothing is written, all is counted.
    if (this.started) {
      const drained = (async () => {
        // Offline, a flush returns at once without trying: stop rather than spin.
        while (this.queue.length > 0 && (this.options.online?.() ?? true)) {
          await this.flush();
          if (this.failing) return;
        }
      })();
      await settlesWithin(this.options.clock ?? systemClock, drained, timeoutMs);
    }
    if (this.queue.length > 0) {
      this.options.report(
        "warning",
        "{count} log records could not be written to the database before exit",
        {
          count: this.queue.length + this.dropped,
        },
      );
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close(0);
  }
}
