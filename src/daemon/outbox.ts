/**
 * Messages between the scheduler and its runner threads, sent once per
 * turn of the event loop: a burst's hundreds of starts and ends make a few
 * posts, not hundreds (each post costs both threads an event).
 */
/** Messages sent at once when a turn has this many: the first runs of a burst need not wait for the rest. */
const MAX_BATCH = 16;

export class Outbox<T> {
  private batch: T[] = [];
  /** Messages in the batch that count towards MAX_BATCH. */
  private counted = 0;

  constructor(private readonly send: (batch: T[]) => void) {}

  /**
   * Queue `message`; with `whole`, it does not count towards MAX_BATCH:
   * such messages (the releases of an instant's armed runs, each a write
   * to a pipe) go in as few posts as the others allow.
   */
  push(message: T, whole = false): void {
    if (this.batch.length === 0) setTimeout(() => this.flush(), 0);
    this.batch.push(message);
    if (!whole && ++this.counted >= MAX_BATCH) this.flush();
  }

  /** Send what is queued now, not at the next timer. */
  flush(): void {
    const batch = this.batch;
    this.batch = [];
    this.counted = 0;
    if (batch.length > 0) this.send(batch);
  }
}
