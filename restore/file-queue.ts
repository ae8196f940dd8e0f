/**
 * Files waiting to be restored, handed out largest first while planning is
 * still adding to them: the workers start on the files of the first
 * directories planned instead of idling until the whole tree is read (a
 * tenth of a second in the benchmark's restore, docs/benchmarks.md).
 * Largest first matters because one worker writes each file: a large file
 * started late leaves the other workers idle at the end.
 */
export class FileQueue<T> {
  private readonly heap: T[] = [];
  private readonly size: (item: T) => number;
  private readonly waiting: ((item: T | null) => void)[] = [];
  private ended = false;
  private dropped = false;

  constructor(size: (item: T) => number) {
    this.size = size;
  }

  /** Adds an item: given at once to a taker that waits, else kept by size. Dropped once the queue is abandoned. */
  push(item: T): void {
    if (this.dropped) return;
    if (this.ended) throw new Error('FileQueue: push after end');
    const taker = this.waiting.shift();
    if (taker) taker(item);
    else this.insert(item);
  }

  /** No more items will come: takers get null once the queue is empty. */
  end(): void {
    this.ended = true;
    for (const taker of this.waiting.splice(0)) taker(null);
  }

  /** Drops what is left, and what comes after, and ends the queue (a run that fails). */
  abandon(): void {
    this.dropped = true;
    this.heap.length = 0;
    this.end();
  }

  /** Whether abandon() was called: whoever fills the queue can stop. */
  get abandoned(): boolean {
    return this.dropped;
  }

  /** The largest item now, or the next one pushed; null once the queue has ended and is empty. */
  take(): Promise<T | null> {
    if (this.heap.length > 0) return Promise.resolve(this.removeLargest());
    if (this.ended) return Promise.resolve(null);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  get length(): number {
    return this.heap.length;
  }

  private insert(item: T): void {
    const h = this.heap;
    let i = h.push(item) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.size(h[parent]!) >= this.size(h[i]!)) break;
      [h[parent], h[i]] = [h[i]!, h[parent]!];
      i = parent;
    }
  }

  private removeLargest(): T {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let big = i;
        if (l < h.length && this.size(h[l]!) > this.size(h[big]!)) big = l;
        if (r < h.length && this.size(h[r]!) > this.size(h[big]!)) big = r;
        if (big === i) break;
        [h[big], h[i]] = [h[i]!, h[big]!];
        i = big;
      }
    }
    return top;
  }
}
