/**
 * Cuts a byte stream into content-defined chunks with FastCDC (through
 * fastcdc-wasm, whose `get_chunks` only takes one whole buffer), or into
 * fixed-size blocks for page-structured files such as database heaps.
 *
 * Streaming: each window is the unfinished tail of the previous one plus new
 * bytes. A chunk is emitted only when its cut point cannot depend on bytes
 * beyond the window, so the boundaries are exactly those of a cut over the
 * whole stream (test/chunker.test.ts checks this against whole buffers).
 *
 * FastCDC (the fastcdc-rs 1.x algorithm) restarts its gear hash at each chunk
 * start and scans at most `max` bytes, looking for a cut with a strict mask up
 * to a "center" and a loose one after it. The only dependence on the end of
 * the buffer is twofold: a chunk that reaches the end of the buffer without a
 * cut is cut there; and the center is clamped to the remaining length. With
 * the usual parameters (avg < 2.5 × min) the clamp can never bite, so every
 * chunk but the last of a window is final. Otherwise only chunks that had a
 * full `max` bytes in view are.
 */
import { get_chunks } from 'fastcdc-wasm';

export type ChunkerParams =
  | { readonly algorithm: 'fastcdc'; readonly min: number; readonly avg: number; readonly max: number }
  | { readonly algorithm: 'fixed'; readonly size: number };

export const DEFAULT_CDC: ChunkerParams = { algorithm: 'fastcdc', min: 512 * 1024, avg: 1024 * 1024, max: 8 * 1024 * 1024 };

export function validateChunkerParams(p: ChunkerParams): string | null {
  if (p.algorithm === 'fixed') {
    return Number.isInteger(p.size) && p.size >= 4096 && p.size <= 16 * 1024 * 1024 ? null : 'fixed chunk size must be 4 KiB to 16 MiB';
  }
  if (!(p.min >= 64 && p.avg >= 256 && p.max >= 1024)) return 'chunk sizes are below FastCDC minimums (64 / 256 / 1024)';
  if (!(p.min <= p.avg && p.avg <= p.max)) return 'chunk sizes must satisfy min <= avg <= max';
  if (p.max > 16 * 1024 * 1024) return 'maximum chunk size is 16 MiB';
  return null;
}

/** Whether FastCDC's center clamp is unreachable (see the module comment). */
function centerIsFixed(min: number, avg: number): boolean {
  const offset = Math.min(min + Math.ceil(min / 2), avg);
  return avg - offset <= min;
}

export interface Chunker {
  /** Feeds bytes; returns the chunks that are now final, as views. */
  update(data: Buffer): Buffer[];
  /** Ends the stream; returns the remaining chunks. */
  final(): Buffer[];
}

export function createChunker(params: ChunkerParams): Chunker {
  return params.algorithm === 'fixed' ? new FixedChunker(params.size) : new StreamingCdc(params.min, params.avg, params.max);
}

class StreamingCdc implements Chunker {
  private tail: Buffer = Buffer.alloc(0);
  private readonly lastIsOnlyOpen: boolean;
  private readonly min: number;
  private readonly avg: number;
  private readonly max: number;

  constructor(min: number, avg: number, max: number) {
    this.min = min;
    this.avg = avg;
    this.max = max;
    this.lastIsOnlyOpen = centerIsFixed(min, avg);
  }

  update(data: Buffer): Buffer[] {
    if (data.length === 0) return [];
    const window = this.tail.length === 0 ? data : Buffer.concat([this.tail, data]);
    const cuts = get_chunks(window, this.min, this.avg, this.max);
    const out: Buffer[] = [];
    let keepFrom = 0;
    // cuts is [0, c1, ..., window.length]; chunk i spans cuts[i]..cuts[i+1].
    for (let i = 0; i + 1 < cuts.length; i++) {
      const start = cuts[i]!;
      const end = cuts[i + 1]!;
      const isLast = i + 2 === cuts.length;
      const final = !isLast && (this.lastIsOnlyOpen || start + this.max <= window.length);
      if (!final) break;
      out.push(window.subarray(start, end));
      keepFrom = end;
    }
    // Copy the tail so the caller may drop the big window.
    this.tail = Buffer.from(window.subarray(keepFrom));
    return out;
  }

  final(): Buffer[] {
    const rest = this.tail;
    this.tail = Buffer.alloc(0);
    if (rest.length === 0) return [];
    return splitAt(rest, get_chunks(rest, this.min, this.avg, this.max));
  }
}

function splitAt(data: Buffer, cuts: Uint32Array): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i + 1 < cuts.length; i++) out.push(data.subarray(cuts[i]!, cuts[i + 1]!));
  return out;
}

class FixedChunker implements Chunker {
  private tail: Buffer = Buffer.alloc(0);
  private readonly size: number;

  constructor(size: number) {
    this.size = size;
  }

  update(data: Buffer): Buffer[] {
    const window = this.tail.length === 0 ? data : Buffer.concat([this.tail, data]);
    const out: Buffer[] = [];
    let pos = 0;
    while (window.length - pos >= this.size) {
      out.push(window.subarray(pos, pos + this.size));
      pos += this.size;
    }
    this.tail = Buffer.from(window.subarray(pos));
    return out;
  }

  final(): Buffer[] {
    const rest = this.tail;
    this.tail = Buffer.alloc(0);
    return rest.length === 0 ? [] : [rest];
  }
}

/** Whole-buffer cut, the reference the streaming chunker must agree with. */
export function chunkBuffer(data: Buffer, params: ChunkerParams): Buffer[] {
  const c = createChunker(params);
  return [...c.update(data), ...c.final()];
}

/** fastcdc-wasm's own cut of one whole buffer: chunk lengths, for tests. */
export function referenceCdcLengths(data: Buffer, min: number, avg: number, max: number): number[] {
  return splitAt(Buffer.from(data), get_chunks(Buffer.from(data), min, avg, max)).map((c) => c.length);
}
