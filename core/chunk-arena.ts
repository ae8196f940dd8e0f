/**
 * Shared memory for chunks on their way from the reader to the seal workers.
 *
 * The main thread copies each chunk into a region of one SharedArrayBuffer
 * and sends the workers only its place; a worker hashes and seals it there
 * and says when it is done, which frees the region. Nothing is allocated or
 * transferred per chunk: each transfer or fresh ArrayBuffer counts as new
 * external memory to V8, which collected garbage every few dozen MiB for it,
 * and fresh pages cost more than the copy on a virtual machine whose host
 * reclaims freed guest memory. The arena's size is also the bound on chunk
 * data in flight, so a fast disk cannot fill memory while a slow upload
 * drains. A restore's workers read pack bytes into one too
 * (core/pack-reader.ts).
 */

export interface Region {
  readonly offset: number;
  readonly length: number;
}

interface Waiter {
  readonly length: number;
  readonly resolve: (r: Region) => void;
}

export class ChunkArena {
  readonly buffer: SharedArrayBuffer;
  readonly bytes: Uint8Array;
  /** Free spans as [start, end), sorted and never adjacent. */
  private free: [number, number][];
  private readonly waiters: Waiter[] = [];

  constructor(size: number) {
    this.buffer = new SharedArrayBuffer(size);
    this.bytes = new Uint8Array(this.buffer);
    this.free = [[0, size]];
  }

  get size(): number {
    return this.buffer.byteLength;
  }

  /** Bytes not handed out (possibly in pieces). */
  get available(): number {
    return this.free.reduce((n, [s, e]) => n + e - s, 0);
  }

  /**
   * A contiguous region of `length` bytes, once one is free. Requests are
   * served in order, so a large one is not starved by smaller ones.
   */
  async alloc(length: number): Promise<Region> {
    if (length > this.size) throw new RangeError(`a region of ${length} bytes does not fit an arena of ${this.size}`);
    if (this.waiters.length === 0) {
      const r = this.take(length);
      if (r) return r;
    }
    return await new Promise<Region>((resolve) => this.waiters.push({ length, resolve }));
  }

  /** A region at once, or null when none is free now (nobody is made to wait for it). */
  tryAlloc(length: number): Region | null {
    if (this.waiters.length > 0 || length > this.size) return null;
    return this.take(length);
  }

  /** Gives back a region or any part of one. */
  release(offset: number, length: number): void {
    if (length <= 0) return;
    const end = offset + length;
    let i = 0;
    while (i < this.free.length && this.free[i]![0] < offset) i++;
    this.free.splice(i, 0, [offset, end]);
    // Merge with the neighbours on either side.
    if (i + 1 < this.free.length && this.free[i]![1] === this.free[i + 1]![0]) {
      this.free[i]![1] = this.free[i + 1]![1];
      this.free.splice(i + 1, 1);
    }
    if (i > 0 && this.free[i - 1]![1] === this.free[i]![0]) {
      this.free[i - 1]![1] = this.free[i]![1];
      this.free.splice(i, 1);
    }
    while (this.waiters.length > 0) {
      const r = this.take(this.waiters[0]!.length);
      if (!r) break;
      this.waiters.shift()!.resolve(r);
    }
  }

  private take(length: number): Region | null {
    for (let i = 0; i < this.free.length; i++) {
      const span = this.free[i]!;
      if (span[1] - span[0] < length) continue;
      const offset = span[0];
      span[0] += length;
      if (span[0] === span[1]) this.free.splice(i, 1);
      return { offset, length };
    }
    return null;
  }
}
