/**
 * zstd from Node's own zlib, applied per blob before encryption, and skipped
 * where it would not pay: compressing random data costs about a nanosecond a
 * byte for nothing, so a few small samples decide first.
 *
 * Each thread keeps its zstd contexts and output buffer from one blob to the
 * next. Node's one-shot zstdCompressSync builds a stream object and a fresh
 * context (megabytes of tables, zeroed) for every call and returns its output
 * in new buffers: for a 1 GiB backup, thousands of 64 KiB database chunks
 * and small files, that was a fifth of all the time zstd took.
 */
import { type ZstdCompress, constants, createZstdCompress, zstdCompressSync, zstdDecompressSync } from 'node:zlib';

export const CODEC_NONE = 0;
export const CODEC_ZSTD = 1;
export type Codec = typeof CODEC_NONE | typeof CODEC_ZSTD;

export interface CompressionSettings {
  readonly algorithm: 'zstd' | 'none';
  readonly level: number;
}

const SAMPLE = 4096;
const SAMPLES = 4;
/** Below this a blob is compressed outright: sampling would cost as much. */
const SAMPLE_THRESHOLD = 64 * 1024;
/** A sample that shrinks less than this is taken as incompressible. */
const SAMPLE_RATIO = 0.92;

export interface Compressed {
  readonly codec: Codec;
  /**
   * The bytes to store: the input itself, or zstd's frame in this thread's
   * output buffer, which the next compress() call on the thread overwrites.
   * Seal or copy it before compressing anything else.
   */
  readonly body: Uint8Array;
}

export function compress(data: Uint8Array, settings: CompressionSettings): Compressed {
  if (settings.algorithm === 'none' || data.length < 32) return { codec: CODEC_NONE, body: data };
  if (data.length >= SAMPLE_THRESHOLD && !looksCompressible(data)) return { codec: CODEC_NONE, body: data };
  const out = zstdFrame(settings.level, data);
  // Keep the raw bytes unless compression saves at least a few percent.
  if (out === null || out.length >= data.length - (data.length >> 5)) return { codec: CODEC_NONE, body: data };
  return { codec: CODEC_ZSTD, body: out };
}

function looksCompressible(data: Uint8Array): boolean {
  const step = Math.floor((data.length - SAMPLE) / (SAMPLES - 1));
  const sample = sampleBuffer();
  for (let i = 0; i < SAMPLES; i++) sample.set(data.subarray(i * step, i * step + SAMPLE), i * SAMPLE);
  const out = zstdFrame(1, sample);
  return out !== null && out.length < sample.length * SAMPLE_RATIO;
}

let samples: Buffer | null = null;
const sampleBuffer = (): Buffer => (samples ??= Buffer.allocUnsafeSlow(SAMPLE * SAMPLES));

/**
 * A zstd context that compresses one whole input per call into a frame
 * with its content size, the same bytes zstdCompressSync makes (pinned by
 * test/compression.test.ts). It drives the native handle of Node's
 * ZstdCompress stream, which is not public API; where a Node lacks it,
 * zstdFrame falls back to zstdCompressSync.
 */
class ZstdContext {
  private readonly stream: ZstdCompress;
  private readonly handle: NativeZstd;
  private readonly state: Uint32Array;
  private failure: unknown = null;

  private constructor(stream: ZstdCompress, handle: NativeZstd, state: Uint32Array) {
    this.stream = stream;
    this.handle = handle;
    this.state = state;
    stream.on('error', (e) => {
      this.failure = e;
    });
  }

  static create(level: number): ZstdContext | null {
    const stream = createZstdCompress({ params: { [constants.ZSTD_c_compressionLevel]: level, [constants.ZSTD_c_checksumFlag]: 0 } });
    const { _handle: handle, _writeState: state } = stream as unknown as { _handle?: NativeZstd; _writeState?: Uint32Array };
    if (typeof handle?.writeSync !== 'function' || !(state instanceof Uint32Array)) {
      stream.destroy();
      return null;
    }
    return new ZstdContext(stream, handle, state);
  }

  /**
   * Compresses `data` as one frame into `out`; the frame's length, or null
   * when the context failed (it is then unusable). With `out` at least
   * compressBound(data.length) long the frame always fits, so the context
   * is never left inside a frame.
   */
  frame(data: Uint8Array, out: Uint8Array): number | null {
    if (this.failure) return null;
    this.handle.writeSync(constants.ZSTD_e_end, data, 0, data.length, out, 0, out.length);
    const [outLeft, inLeft] = this.state;
    if (this.failure || inLeft !== 0 || outLeft === 0) {
      this.failure ??= new Error('zstd did not finish the frame');
      this.stream.destroy();
      return null;
    }
    return out.length - outLeft!;
  }
}

interface NativeZstd {
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
}

/** This thread's contexts, by level (a backup uses two: the repository's level and 1 for samples). */
const contexts = new Map<number, ZstdContext | null>();
let output: Buffer | null = null;

/** zstd's ZSTD_compressBound: the largest frame an input of `n` bytes compresses to. */
export function compressBound(n: number): number {
  return n + (n >>> 8) + (n < 128 * 1024 ? (128 * 1024 - n) >>> 11 : 0);
}

/** `data` as one zstd frame, in this thread's output buffer (see Compressed.body); null if zstd failed. */
function zstdFrame(level: number, data: Uint8Array): Uint8Array | null {
  let ctx = contexts.get(level);
  if (ctx === undefined) contexts.set(level, (ctx = ZstdContext.create(level)));
  if (ctx === null) return oneShot(level, data);
  const need = compressBound(data.length) + 64;
  if (!output || output.length < need) output = Buffer.allocUnsafeSlow(Math.max(need, 256 * 1024));
  const n = ctx.frame(data, output);
  if (n === null) {
    // A failed context is dropped; the next blob gets a new one.
    contexts.delete(level);
    return null;
  }
  return output.subarray(0, n);
}

function oneShot(level: number, data: Uint8Array): Uint8Array {
  return zstdCompressSync(data, {
    pledgedSrcSize: data.length,
    params: { [constants.ZSTD_c_compressionLevel]: level, [constants.ZSTD_c_checksumFlag]: 0, [constants.ZSTD_c_contentSizeFlag]: 1 },
  });
}

/** For tests: compresses with Node's one-shot API, as this module did before it kept contexts. */
export const zstdOneShot = oneShot;

/**
 * `maxLength` bounds the output so that a hostile blob cannot expand without
 * limit; the caller knows the largest plaintext the format allows.
 */
export function decompress(codec: number, body: Uint8Array, maxLength: number): Buffer | null {
  if (codec === CODEC_NONE) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (codec !== CODEC_ZSTD) return null;
  try {
    return zstdDecompressSync(body, { maxOutputLength: maxLength });
  } catch {
    return null;
  }
}
