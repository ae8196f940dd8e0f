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
import fastcdc from 'fastcdc-wasm';
import { chunkBuffers } from './buffer-pool.ts';

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
  /**
   * Feeds bytes; returns the chunks that are now final. Each chunk is a copy
   * at the start of an ArrayBuffer of its own from the chunk buffer pool (it
   * can be transferred to a worker, and given back to the pool afterwards),
   * and the input may be reused as soon as this returns.
   */
  update(data: Uint8Array): Uint8Array[];
  /** Ends the stream; returns the remaining chunks. */
  final(): Uint8Array[];
}

export function createChunker(params: ChunkerParams): Chunker {
  return params.algorithm === 'fixed' ? new FixedChunker(params.size) : new StreamingCdc(params.min, params.avg, params.max);
}

interface WasmExports {
  readonly memory: { readonly buffer: ArrayBuffer };
  get_chunks(retptr: number, ptr: number, len: number, min: number, avg: number, max: number): void;
  __wbindgen_malloc(size: number): number;
  __wbindgen_free(ptr: number, size: number): void;
  __wbindgen_add_to_stack_pointer(delta: number): number;
}

/**
 * fastcdc-wasm's own `get_chunks` copies its input into WebAssembly memory
 * and back out again on every call. This drives the same exported function
 * over one scratch region that stays allocated, so each byte is copied in
 * once. All use is synchronous, so one region serves every chunker.
 * test/chunker.test.ts checks the cuts against the public function.
 */
class WasmCutter {
  private readonly wasm: WasmExports;
  private ptr = 0;
  private cap = 0;

  constructor() {
    this.wasm = (fastcdc as unknown as { __wasm: WasmExports }).__wasm;
  }

  /** Copies `parts` end to end into WebAssembly memory and returns the cut points. */
  cut(parts: readonly Uint8Array[], min: number, avg: number, max: number): { cuts: Uint32Array; bytes: () => Uint8Array } {
    const len = parts.reduce((s, p) => s + p.length, 0);
    if (len > this.cap) {
      if (this.cap > 0) this.wasm.__wbindgen_free(this.ptr, this.cap);
      this.cap = Math.max(len, 1024 * 1024);
      this.ptr = this.wasm.__wbindgen_malloc(this.cap);
    }
    const heap = new Uint8Array(this.wasm.memory.buffer);
    let o = this.ptr;
    for (const p of parts) {
      heap.set(p, o);
      o += p.length;
    }
    const retptr = this.wasm.__wbindgen_add_to_stack_pointer(-16);
    try {
      this.wasm.get_chunks(retptr, this.ptr, len, min, avg, max);
      const words = new Int32Array(this.wasm.memory.buffer);
      const r0 = words[retptr / 4]!;
      const r1 = words[retptr / 4 + 1]!;
      const cuts = new Uint32Array(this.wasm.memory.buffer, r0, r1).slice();
      this.wasm.__wbindgen_free(r0, r1 * 4);
      const ptr = this.ptr;
      return { cuts, bytes: () => new Uint8Array(this.wasm.memory.buffer, ptr, len) };
    } finally {
      this.wasm.__wbindgen_add_to_stack_pointer(16);
    }
  }
}

let cutter: WasmCutter | null = null;
function wasmCutter(): WasmCutter {
  return (cutter ??= new WasmCutter());
}

/** A copy in a pooled buffer of its own (transferable to a worker and back). */
function copyOut(src: Uint8Array, start: number, end: number): Uint8Array {
  const out = chunkBuffers.take(end - start);
  out.set(src.subarray(start, end));
  return out;
}

class StreamingCdc implements Chunker {
  private tail: Uint8Array = new Uint8Array(0);
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

  update(data: Uint8Array): Uint8Array[] {
    if (data.length === 0) return [];
    const { cuts, bytes } = wasmCutter().cut([this.tail, data], this.min, this.avg, this.max);
    const window = bytes();
    const out: Uint8Array[] = [];
    let keepFrom = 0;
    // cuts is [0, c1, ..., window.length]; chunk i spans cuts[i]..cuts[i+1].
    for (let i = 0; i + 1 < cuts.length; i++) {
      const start = cuts[i]!;
      const end = cuts[i + 1]!;
      const isLast = i + 2 === cuts.length;
      const final = !isLast && (this.lastIsOnlyOpen || start + this.max <= window.length);
      if (!final) break;
      out.push(copyOut(window, start, end));
      keepFrom = end;
    }
    // The tail was copied into WebAssembly memory above; its buffer can go back.
    chunkBuffers.give(this.tail.buffer as ArrayBuffer);
    this.tail = copyOut(window, keepFrom, window.length);
    return out;
  }

  final(): Uint8Array[] {
    const rest = this.tail;
    this.tail = new Uint8Array(0);
    if (rest.length === 0) return [];
    const { cuts, bytes } = wasmCutter().cut([rest], this.min, this.avg, this.max);
    chunkBuffers.give(rest.buffer as ArrayBuffer);
    const window = bytes();
    const out: Uint8Array[] = [];
    for (let i = 0; i + 1 < cuts.length; i++) out.push(copyOut(window, cuts[i]!, cuts[i + 1]!));
    return out;
  }
}

class FixedChunker implements Chunker {
  private tail: Uint8Array = new Uint8Array(0);
  private readonly size: number;

  constructor(size: number) {
    this.size = size;
  }

  /** Replaces the tail, giving the old one's buffer back to the pool exactly once. */
  private setTail(next: Uint8Array): void {
    chunkBuffers.give(this.tail.buffer as ArrayBuffer);
    this.tail = next;
  }

  update(data: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    let pos = 0;
    if (this.tail.length > 0) {
      const need = this.size - this.tail.length;
      if (data.length < need) {
        const t = chunkBuffers.take(this.tail.length + data.length);
        t.set(this.tail);
        t.set(data, this.tail.length);
        this.setTail(t);
        return out;
      }
      const first = chunkBuffers.take(this.size);
      first.set(this.tail);
      first.set(data.subarray(0, need), this.tail.length);
      this.setTail(new Uint8Array(0));
      out.push(first);
      pos = need;
    }
    while (data.length - pos >= this.size) {
      out.push(copyOut(data, pos, pos + this.size));
      pos += this.size;
    }
    this.setTail(pos < data.length ? copyOut(data, pos, data.length) : new Uint8Array(0));
    return out;
  }

  final(): Uint8Array[] {
    const rest = this.tail;
    this.tail = new Uint8Array(0);
    return rest.length === 0 ? [] : [rest];
  }
}

/** All chunks of one buffer. */
export function chunkBuffer(data: Uint8Array, params: ChunkerParams): Uint8Array[] {
  const c = createChunker(params);
  return [...c.update(data), ...c.final()];
}

/** fastcdc-wasm's public, whole-buffer cut, as chunk lengths: the reference for tests. */
export function referenceCdcLengths(data: Uint8Array, min: number, avg: number, max: number): number[] {
  const cuts = fastcdc.get_chunks(Uint8Array.from(data), min, avg, max);
  const out: number[] = [];
  for (let i = 0; i + 1 < cuts.length; i++) out.push(cuts[i + 1]! - cuts[i]!);
  return out;
}
