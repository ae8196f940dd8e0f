import test from 'ava';
import { randomBytes } from 'node:crypto';
import { constants, createZstdCompress, zstdDecompressSync } from 'node:zlib';
import { CODEC_NONE, CODEC_ZSTD, compress, compressBound, decompress, decompressLent, frameContentSize, zstdOneShot } from '../core/compression.ts';

/** Text-like bytes: a few words repeated with variation, so zstd has something to find. */
function textLike(n: number, seed: number): Buffer {
  const words = ['volume', 'container', 'snapshot', 'restore', 'postgres', 'page', 'index', 'row', '\n', ' ', '{"id":', String(seed)];
  const out = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; ) {
    x = (x * 1103515245 + 12345) >>> 0;
    i += out.write(words[x % words.length]!, i);
  }
  return out;
}

const ZSTD1 = { algorithm: 'zstd', level: 1 } as const;
const ZSTD3 = { algorithm: 'zstd', level: 3 } as const;

test('a kept zstd context writes the same frames as the one-shot API, at either level, one input after another', (t) => {
  // Sizes around the sampling threshold (64 KiB), the 128 KiB block, and a large chunk; levels alternate so that
  // each context's parameters must survive the other's use.
  const inputs = [40, 1000, 65535, 65536, 131072, 131073, 700_000, 8 * 1024 * 1024].map((n, i) => textLike(n, i));
  for (const settings of [ZSTD1, ZSTD3, ZSTD1]) {
    for (const input of inputs) {
      const c = compress(input, settings);
      t.is(c.codec, CODEC_ZSTD, `${input.length} bytes at level ${settings.level}`);
      t.true(Buffer.from(c.body).equals(zstdOneShot(settings.level, input)), `${input.length} bytes at level ${settings.level}`);
    }
  }
});

test('a compressed body decompresses to its input and records its content size', (t) => {
  const input = textLike(300_000, 7);
  const c = compress(input, ZSTD3);
  t.is(c.codec, CODEC_ZSTD);
  // Frame header descriptor: the top two bits say how many bytes of content size follow; 0 would mean none.
  t.not(c.body[4]! >> 6, 0);
  t.true(decompress(c.codec, c.body, input.length)!.equals(input));
  t.true(zstdDecompressSync(c.body).equals(input));
});

test('random data is stored as it is, without a compressed copy', (t) => {
  for (const n of [100, 64 * 1024, 1024 * 1024]) {
    const input = randomBytes(n);
    const c = compress(input, ZSTD3);
    t.is(c.codec, CODEC_NONE);
    t.is(c.body, input);
  }
});

test('a body is lent until the next call: the caller must seal or copy it first', (t) => {
  const a = textLike(200_000, 1);
  const b = textLike(200_000, 2);
  const first = compress(a, ZSTD3).body;
  const kept = Buffer.from(first);
  compress(b, ZSTD3);
  // The same thread's buffer holds b's frame now; the copy taken in time still decompresses to a.
  t.false(Buffer.from(first).equals(kept));
  t.true(zstdDecompressSync(kept).equals(a));
});

test('compressBound matches zstd on inputs that do not compress at all', (t) => {
  // A one-shot frame of random data is stored raw: its size is the bound's worst case for large inputs.
  for (const n of [1, 1000, 128 * 1024 - 1, 128 * 1024, 1024 * 1024]) t.true(zstdOneShot(3, randomBytes(n)).length <= compressBound(n), `${n}`);
});

test('a frame is decoded into the thread buffer whatever its declared size field, and falls back when it declares none', (t) => {
  // Content size fields of 1 (single segment), 2 (+256), 4 and 8 bytes, by input size.
  for (const n of [40, 200, 300, 70_000, 5_000_000]) {
    const input = textLike(n, n);
    const frame = zstdOneShot(3, input);
    t.is(frameContentSize(frame), n);
    t.true(Buffer.from(decompressLent(CODEC_ZSTD, frame, n)!).equals(input), `${n}`);
  }
  // A streamed frame has no content size field: zstd's own one-shot path decodes it.
  const input = textLike(100_000, 9);
  const streamed = zstdStreamed([input.subarray(0, 50_000), input.subarray(50_000)]);
  t.is(frameContentSize(streamed), null);
  t.true(Buffer.from(decompressLent(CODEC_ZSTD, streamed, input.length)!).equals(input));
});

test('a damaged or truncated frame decodes to null, and the next frame decodes as before', (t) => {
  const input = textLike(500_000, 4);
  const frame = Buffer.from(zstdOneShot(3, input));
  const damaged = Buffer.from(frame);
  for (let i = 40; i < damaged.length; i += 997) damaged[i]! ^= 0x5a;
  t.is(decompressLent(CODEC_ZSTD, damaged, input.length), null);
  t.true(Buffer.from(decompressLent(CODEC_ZSTD, frame, input.length)!).equals(input));
  t.is(decompressLent(CODEC_ZSTD, frame.subarray(0, frame.length - 100), input.length), null);
  t.true(Buffer.from(decompressLent(CODEC_ZSTD, frame, input.length)!).equals(input));
  // More than the caller allows is refused, whatever the header says.
  t.is(decompressLent(CODEC_ZSTD, frame, input.length - 1), null);
  // A header that declares less than the frame holds: the decoder stops with the buffer full and is not used again.
  const understated = Buffer.from(frame);
  const fhd = understated[4]!;
  t.is(fhd >> 6, 2, 'a 4-byte content size field');
  understated.writeUInt32LE(input.length - 1000, 5 + ((fhd >> 5) & 1 ? 0 : 1));
  t.is(frameContentSize(understated), input.length - 1000);
  t.is(decompressLent(CODEC_ZSTD, understated, input.length), null);
  t.true(Buffer.from(decompressLent(CODEC_ZSTD, frame, input.length)!).equals(input));
});

/** `parts` compressed as one frame fed in pieces, as a stream would: no content size is known when the header is written. */
function zstdStreamed(parts: readonly Uint8Array[]): Buffer {
  const stream = createZstdCompress();
  const { _handle: handle, _writeState: state } = stream as unknown as {
    _handle: { writeSync(flush: number, i: Uint8Array, io: number, il: number, o: Uint8Array, oo: number, ol: number): void };
    _writeState: Uint32Array;
  };
  const out = Buffer.alloc(1 << 20);
  let at = 0;
  parts.forEach((p, i) => {
    handle.writeSync(i === parts.length - 1 ? constants.ZSTD_e_end : constants.ZSTD_e_continue, p, 0, p.length, out, at, out.length - at);
    at = out.length - state[0]!;
  });
  stream.destroy();
  return out.subarray(0, at);
}
