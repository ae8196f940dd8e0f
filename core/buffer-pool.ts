/**
 * Recycled ArrayBuffers for chunk data, in power-of-two size classes.
 *
 * Chunks are copied out of the chunker into buffers of their own, handed to
 * a seal worker, and sent back once sealed. Without recycling, every chunk
 * is a fresh allocation of 0.5-8 MiB freed on another thread; glibc's
 * per-thread arenas then keep hundreds of MiB of such memory resident long
 * after it is free. With it, the set of chunk buffers stays about the size
 * of the data in flight.
 */

const MIN_CLASS = 4096;

function classOf(n: number): number {
  let c = MIN_CLASS;
  while (c < n) c *= 2;
  return c;
}

export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private freeBytes = 0;
  private readonly maxFreeBytes: number;

  constructor(maxFreeBytes: number) {
    this.maxFreeBytes = maxFreeBytes;
  }

  /** A Buffer of length n whose ArrayBuffer is a pooled size class (at least n). */
  take(n: number): Buffer {
    const size = classOf(n);
    const list = this.free.get(size);
    const ab = list?.pop();
    if (ab) {
      this.freeBytes -= size;
      return Buffer.from(ab, 0, n);
    }
    return Buffer.from(new ArrayBuffer(size), 0, n);
  }

  /** Takes a buffer back for reuse; one of a size this pool does not make is left to the GC. */
  give(ab: ArrayBuffer): void {
    const size = ab.byteLength;
    if (size < MIN_CLASS || (size & (size - 1)) !== 0 || this.freeBytes + size > this.maxFreeBytes) return;
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(ab);
    this.freeBytes += size;
  }
}

/** An ArrayBuffer holding exactly these bytes that may be transferred: the view's own, or a copy. */
export function ownBuffer(b: Uint8Array): ArrayBuffer {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer) return b.buffer;
  const ab = new ArrayBuffer(b.byteLength);
  new Uint8Array(ab).set(b);
  return ab;
}

/** The pool of the main thread's chunk buffers. */
export const chunkBuffers = new BufferPool(8 * 1024 * 1024);
