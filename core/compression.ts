/**
 * zstd from Node's own zlib, applied per blob before encryption, and skipped
 * where it would not pay: compressing random data costs about a nanosecond a
 * byte for nothing, so a few small samples decide first.
 */
import { constants, zstdCompressSync, zstdDecompressSync } from 'node:zlib';

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
  readonly body: Uint8Array;
}

export function compress(data: Uint8Array, settings: CompressionSettings): Compressed {
  if (settings.algorithm === 'none' || data.length < 32) return { codec: CODEC_NONE, body: data };
  if (data.length >= SAMPLE_THRESHOLD && !looksCompressible(data)) return { codec: CODEC_NONE, body: data };
  const out = zstdCompressSync(data, {
    pledgedSrcSize: data.length,
    params: {
      [constants.ZSTD_c_compressionLevel]: settings.level,
      [constants.ZSTD_c_checksumFlag]: 0,
      [constants.ZSTD_c_contentSizeFlag]: 1,
    },
  });
  // Keep the raw bytes unless compression saves at least a few percent.
  if (out.length >= data.length - (data.length >> 5)) return { codec: CODEC_NONE, body: data };
  return { codec: CODEC_ZSTD, body: out };
}

function looksCompressible(data: Uint8Array): boolean {
  const step = Math.floor((data.length - SAMPLE) / (SAMPLES - 1));
  const parts: Uint8Array[] = [];
  for (let i = 0; i < SAMPLES; i++) parts.push(data.subarray(i * step, i * step + SAMPLE));
  const sample = Buffer.concat(parts);
  // With its size known, zstd sizes its window and tables for 16 KiB, not for an unbounded stream: half the time, and
  // no allocation of half a MiB per blob in the heap's small-block range.
  const out = zstdCompressSync(sample, { pledgedSrcSize: sample.length, params: { [constants.ZSTD_c_compressionLevel]: 1 } });
  return out.length < sample.length * SAMPLE_RATIO;
}

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
