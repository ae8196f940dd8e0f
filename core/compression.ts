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
import { type ZstdCompress, type ZstdDecompress, constants, createZstdCompress, createZstdDecompress, zstdCompressSync, zstdDecompressSync } from 'node:zlib';

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
 * A zlib stream driven through its native handle, one whole synchronous
 * write at a time, as Node's own synchronous calls drive it (its handle and
 * write-state array are not public API; a Node that builds its streams
 * otherwise gets null from `of`, and the one-shot calls instead). This lets
 * one zstd context serve every blob of a thread. An error destroys the
 * stream, and closes its handle, during the write that caused it; it is
 * never written again after that.
 */
class KeptStream {
  private readonly stream: ZstdCompress | ZstdDecompress;
  private readonly handle: NativeZstd;
  private readonly state: Uint32Array;

  private constructor(stream: ZstdCompress | ZstdDecompress, handle: NativeZstd, state: Uint32Array) {
    this.stream = stream;
    this.handle = handle;
    this.state = state;
    // Seen through `destroyed` right after the write; this only keeps it from being an unhandled 'error' event.
    stream.on('error', () => {});
  }

  static of(stream: ZstdCompress | ZstdDecompress): KeptStream | null {
    const { _handle: handle, _writeState: state } = stream as unknown as { _handle?: NativeZstd; _writeState?: Uint32Array };
    if (typeof handle?.writeSync === 'function' && state instanceof Uint32Array) return new KeptStream(stream, handle, state);
    stream.destroy();
    return null;
  }

  /** Writes all of `input`, ending the frame, into `out`: the room left in each, or null if the stream failed. */
  write(input: Uint8Array, out: Uint8Array): { outLeft: number; inLeft: number } | null {
    if (this.stream.destroyed) return null;
    this.handle.writeSync(constants.ZSTD_e_end, input, 0, input.length, out, 0, out.length);
    return this.stream.destroyed ? null : { outLeft: this.state[0]!, inLeft: this.state[1]! };
  }

  /** For a stream left inside a frame: it is not used again. */
  close(): void {
    this.stream.destroy();
  }
}

interface NativeZstd {
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
}

/** This thread's compression contexts, by level (a backup uses two: the repository's level and 1 for samples). */
const contexts = new Map<number, KeptStream | null>();
let output: Buffer | null = null;

/** zstd's ZSTD_compressBound: the largest frame an input of `n` bytes compresses to. */
export function compressBound(n: number): number {
  return n + (n >>> 8) + (n < 128 * 1024 ? (128 * 1024 - n) >>> 11 : 0);
}

/**
 * `data` as one zstd frame with its content size (the bytes zstdCompressSync
 * makes, pinned by test/compression.test.ts), in this thread's output
 * buffer (see Compressed.body); null if zstd failed.
 */
function zstdFrame(level: number, data: Uint8Array): Uint8Array | null {
  let ctx = contexts.get(level);
  if (ctx === undefined) {
    ctx = KeptStream.of(createZstdCompress({ params: { [constants.ZSTD_c_compressionLevel]: level, [constants.ZSTD_c_checksumFlag]: 0 } }));
    contexts.set(level, ctx);
  }
  if (ctx === null) return oneShot(level, data);
  const need = compressBound(data.length) + 64;
  if (!output || output.length < need) output = Buffer.allocUnsafeSlow(Math.max(need, 256 * 1024));
  const r = ctx.write(data, output);
  // With the output compressBound long the frame always fits: anything else leaves the context unusable. A failed
  // context is dropped; the next blob gets a new one.
  if (!r || r.inLeft !== 0 || r.outLeft === 0) {
    ctx.close();
    contexts.delete(level);
    return null;
  }
  return output.subarray(0, output.length - r.outLeft);
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
 * limit; the caller knows the largest plaintext the format allows. The
 * result is the caller's own (see decompressLent for one that is not).
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

/**
 * Like decompress, but a zstd body is decoded into this thread's output
 * buffer, which the next decompressLent call on the thread overwrites (and
 * a stored body comes back as the view it is): for a caller that writes or
 * hashes the plaintext at once, as a restore does with every blob. It
 * reuses one decoding context and allocates nothing per blob. A frame
 * without its content size, or anything but exactly one whole frame, takes
 * Node's one-shot path instead.
 */
export function decompressLent(codec: number, body: Uint8Array, maxLength: number): Uint8Array | null {
  if (codec === CODEC_NONE) return body;
  if (codec !== CODEC_ZSTD) return null;
  const size = frameContentSize(body);
  if (size === null || size > maxLength) return decompress(codec, body, maxLength);
  if (!decodeOutput || decodeOutput.length < size) decodeOutput = Buffer.allocUnsafeSlow(Math.max(size, 256 * 1024));
  decoder ??= KeptStream.of(createZstdDecompress());
  const n = decoder ? decodeFrame(decoder, body, decodeOutput.subarray(0, size)) : null;
  if (n === size) return decodeOutput.subarray(0, size);
  // Failed, or not one whole frame: the context may be mid-frame or closed, so it goes; the one-shot path decides.
  decoder?.close();
  decoder = null;
  return decompress(codec, body, maxLength);
}

let decoder: KeptStream | null | undefined;
const NO_INPUT = Buffer.alloc(0);
const PROBE = Buffer.alloc(1);
let decodeOutput: Buffer | null = null;

/** The content size a zstd frame's header declares (RFC 8878, 3.1.1.1), or null if it declares none. */
export function frameContentSize(frame: Uint8Array): number | null {
  if (frame.length < 6 || frame[0] !== 0x28 || frame[1] !== 0xb5 || frame[2] !== 0x2f || frame[3] !== 0xfd) return null;
  const fhd = frame[4]!;
  const fcsFlag = fhd >> 6;
  const singleSegment = (fhd >> 5) & 1;
  const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag]!;
  if (fcsBytes === 0) return null;
  const at = 5 + (singleSegment ? 0 : 1) + [0, 1, 2, 4][fhd & 3]!;
  if (frame.length < at + fcsBytes) return null;
  let v = 0;
  for (let i = fcsBytes - 1; i >= 0; i--) v = v * 256 + frame[at + i]!;
  return fcsBytes === 2 ? v + 256 : v;
}

/** Decodes the whole of `frame` into `out`: the bytes written, or null unless the input was used up, without error, by one frame. */
function decodeFrame(d: KeptStream, frame: Uint8Array, out: Uint8Array): number | null {
  const r = d.write(frame, out);
  if (!r || r.inLeft !== 0) return null;
  // The frame must have ended, too: one that holds more than its header declared stops when `out` is full, and
  // would leave the context mid-frame for the next. Asked for one more byte from no input, an ended frame gives none.
  // (Resetting the context instead would cost a new one: Node's reset frees and rebuilds it.)
  const probe = d.write(NO_INPUT, PROBE);
  if (!probe || probe.outLeft !== 1) return null;
  return out.length - r.outLeft;
}
