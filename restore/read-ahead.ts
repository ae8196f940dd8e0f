/**
 * Work started a fixed number of items ahead of the one taken, the items
 * taken in order: a restore reads (and opens) the next blobs of a file while
 * it writes one. A failure surfaces when its item is taken; failures of
 * items started after it are not reported again.
 */
export class ReadAhead<T> {
  private readonly started: Promise<T>[] = [];
  private readonly count: number;
  private readonly depth: number;
  private readonly start: (i: number) => Promise<T>;
  private nextToStart = 0;

  /** Starts items 0 … depth-1 of `count` now; each take starts the next. */
  constructor(count: number, depth: number, start: (i: number) => Promise<T>) {
    this.count = count;
    this.depth = depth;
    this.start = start;
    this.fill();
  }

  /** The next item, in order. */
  take(): Promise<T> {
    const p = this.started.shift();
    if (!p) throw new RangeError('no item left to take');
    this.fill();
    return p;
  }

  /** Resolves once every item started has ended, whichever way. */
  async settled(): Promise<void> {
    await Promise.allSettled(this.started);
  }

  private fill(): void {
    while (this.started.length < this.depth && this.nextToStart < this.count) {
      const p = this.start(this.nextToStart++);
      p.catch(() => {});
      this.started.push(p);
    }
  }
}
