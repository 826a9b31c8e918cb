/**
 * Messages between the scheduler and its runner threads, sent once per
 * turn of the event loop: a burst's hundreds of starts and ends make a few
 * posts, not hundreds (each post costs both threads an event).
 */
/** Messages sent at once when a turn has this many: the first runs of a burst need not wait for the rest. */
const MAX_BATCH = 16;

export class Outbox<T> {
  private batch: T[] = [];

  constructor(private readonly send: (batch: T[]) => void) {}

  push(message: T): void {
    if (this.batch.length === 0) setTimeout(() => this.flush(), 0);
    this.batch.push(message);
    if (this.batch.length >= MAX_BATCH) this.flush();
  }

  private flush(): void {
    const batch = this.batch;
    this.batch = [];
    if (batch.length > 0) this.send(batch);
  }
}
