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

/** Receives a chunk; the view is only valid during the call. */
export type ChunkSink = (chunk: Uint8Array) => void;

export interface Chunker {
  /** Bytes held back from earlier input: at most this plus the next input can come out of the next call. */
  readonly buffered: number;
  /** No chunk but a stream's last is shorter. */
  readonly minChunk: number;
  /**
   * Feeds bytes; hands each chunk that is now final to `emit`, as a view that
   * is only valid during that call (the caller copies what it keeps). The
   * input may be reused as soon as this returns.
   */
  updateInto(data: Uint8Array, emit: ChunkSink): void;
  /** Ends the stream; hands over the remaining chunks. */
  finalInto(emit: ChunkSink): void;
  /** `updateInto`, with each chunk copied into a buffer of its own. */
  update(data: Uint8Array): Uint8Array[];
  /** `finalInto`, with each chunk copied into a buffer of its own. */
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

/** Bytes carried from one call to the next, in a buffer that grows as needed and is reused. */
class Tail {
  private buf = new Uint8Array(0);
  length = 0;

  get bytes(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }

  set(...parts: Uint8Array[]): void {
    const n = parts.reduce((s, p) => s + p.length, 0);
    // Parts may be views of this buffer: growing copies them into the new one, and
    // TypedArray.set copies correctly between overlapping views of one buffer.
    if (n > this.buf.length) {
      const next = new Uint8Array(Math.max(n, this.buf.length * 2, 64 * 1024));
      let o = 0;
      for (const p of parts) {
        next.set(p, o);
        o += p.length;
      }
      this.buf = next;
    } else {
      let o = 0;
      for (const p of parts) {
        this.buf.set(p, o);
        o += p.length;
      }
    }
    this.length = n;
  }

  clear(): void {
    this.length = 0;
  }
}

function collect(run: (emit: ChunkSink) => void): Uint8Array[] {
  const out: Uint8Array[] = [];
  run((c) => out.push(c.slice()));
  return out;
}

abstract class BaseChunker implements Chunker {
  protected readonly tail = new Tail();
  abstract readonly minChunk: number;

  get buffered(): number {
    return this.tail.length;
  }

  abstract updateInto(data: Uint8Array, emit: ChunkSink): void;
  abstract finalInto(emit: ChunkSink): void;

  update(data: Uint8Array): Uint8Array[] {
    return collect((emit) => this.updateInto(data, emit));
  }

  final(): Uint8Array[] {
    return collect((emit) => this.finalInto(emit));
  }
}

class StreamingCdc extends BaseChunker {
  private readonly lastIsOnlyOpen: boolean;
  private readonly min: number;
  private readonly avg: number;
  private readonly max: number;
  readonly minChunk: number;

  constructor(min: number, avg: number, max: number) {
    super();
    this.minChunk = min;
    this.min = min;
    this.avg = avg;
    this.max = max;
    this.lastIsOnlyOpen = centerIsFixed(min, avg);
  }

  updateInto(data: Uint8Array, emit: ChunkSink): void {
    if (data.length === 0) return;
    const { cuts, bytes } = wasmCutter().cut([this.tail.bytes, data], this.min, this.avg, this.max);
    const window = bytes();
    let keepFrom = 0;
    // cuts is [0, c1, ..., window.length]; chunk i spans cuts[i]..cuts[i+1].
    for (let i = 0; i + 1 < cuts.length; i++) {
      const start = cuts[i]!;
      const end = cuts[i + 1]!;
      const isLast = i + 2 === cuts.length;
      const final = !isLast && (this.lastIsOnlyOpen || start + this.max <= window.length);
      if (!final) break;
      emit(window.subarray(start, end));
      keepFrom = end;
    }
    this.tail.set(window.subarray(keepFrom));
  }

  finalInto(emit: ChunkSink): void {
    if (this.tail.length === 0) return;
    const { cuts, bytes } = wasmCutter().cut([this.tail.bytes], this.min, this.avg, this.max);
    this.tail.clear();
    const window = bytes();
    for (let i = 0; i + 1 < cuts.length; i++) emit(window.subarray(cuts[i]!, cuts[i + 1]!));
  }
}

class FixedChunker extends BaseChunker {
  private readonly size: number;
  private scratch: Uint8Array | null = null;
  readonly minChunk: number;

  constructor(size: number) {
    super();
    this.minChunk = size;
    this.size = size;
  }

  updateInto(data: Uint8Array, emit: ChunkSink): void {
    let pos = 0;
    if (this.tail.length > 0) {
      const need = this.size - this.tail.length;
      if (data.length < need) {
        this.tail.set(this.tail.bytes, data);
        return;
      }
      this.scratch ??= new Uint8Array(this.size);
      this.scratch.set(this.tail.bytes);
      this.scratch.set(data.subarray(0, need), this.tail.length);
      this.tail.clear();
      emit(this.scratch);
      pos = need;
    }
    while (data.length - pos >= this.size) {
      emit(data.subarray(pos, pos + this.size));
      pos += this.size;
    }
    this.tail.set(data.subarray(pos));
  }

  finalInto(emit: ChunkSink): void {
    if (this.tail.length === 0) return;
    const rest = this.tail.bytes;
    this.tail.clear();
    emit(rest);
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
