/**
 * Keeps the head and the tail of a stream within a fixed number of bytes,
 * and counts what it cut, so a job printing gigabytes costs the service
 * `cap` bytes of memory, not gigabytes (a ring buffer, like dkron's).
 */
export class HeadTailCapture {
  private readonly head: Uint8Array;
  private headLength = 0;
  private readonly tail: Uint8Array;
  /** Next write position in the tail ring. */
  private tailPos = 0;
  private tailFilled = 0;
  private total = 0;

  constructor(cap: number) {
    const headCap = Math.floor(cap / 2);
    this.head = new Uint8Array(headCap);
    this.tail = new Uint8Array(cap - headCap);
  }

  /** Bytes seen in all. */
  get bytes(): number {
    return this.total;
  }

  push(chunk: Uint8Array): void {
    this.total += chunk.length;
    let data = chunk;
    if (this.headLength < this.head.length) {
      const take = Math.min(this.head.length - this.headLength, data.length);
      this.head.set(data.subarray(0, take), this.headLength);
      this.headLength += take;
      data = data.subarray(take);
    }
    if (data.length === 0 || this.tail.length === 0) return;
    if (data.length >= this.tail.length) {
      this.tail.set(data.subarray(data.length - this.tail.length));
      this.tailPos = 0;
      this.tailFilled = this.tail.length;
      return;
    }
    const first = Math.min(data.length, this.tail.length - this.tailPos);
    this.tail.set(data.subarray(0, first), this.tailPos);
    this.tail.set(data.subarray(first), 0);
    this.tailPos = (this.tailPos + data.length) % this.tail.length;
    this.tailFilled = Math.min(this.tail.length, this.tailFilled + data.length);
  }

  /** The kept text; when bytes were cut, a line in the middle says how many. */
  text(): string {
    const decoder = new TextDecoder();
    const head = decoder.decode(this.head.subarray(0, this.headLength));
    const tail = this.tailFilled < this.tail.length
      ? this.tail.subarray(0, this.tailFilled)
      : new Uint8Array([
        ...this.tail.subarray(this.tailPos),
        ...this.tail.subarray(0, this.tailPos),
      ]);
    const cut = this.total - this.headLength - this.tailFilled;
    const tailText = decoder.decode(tail);
    if (cut === 0) return head + tailText;
    return `${head}\n[… jobsmanager cut ${cut} bytes of ${this.total} …]\n${tailText}`;
  }
}
