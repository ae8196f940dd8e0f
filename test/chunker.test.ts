import test from 'ava';
import { createCipheriv, randomBytes } from 'node:crypto';
import { type ChunkerParams, DEFAULT_CDC, chunkBuffer, createChunker, referenceCdcLengths, validateChunkerParams } from '../core/chunker.ts';

function pseudoRandom(n: number, seed: number): Buffer {
  const key = Buffer.alloc(16, seed);
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n));
}

function streamLengths(data: Buffer, params: ChunkerParams, pieces: number[]): number[] {
  const c = createChunker(params);
  const out: Uint8Array[] = [];
  let pos = 0;
  let k = 0;
  while (pos < data.length) {
    const n = pieces[k++ % pieces.length]!;
    out.push(...c.update(data.subarray(pos, pos + n)));
    pos += n;
  }
  out.push(...c.final());
  return out.map((b) => b.length);
}

const regimes: [string, number, number, number][] = [
  ['defaults (512 KiB / 1 MiB / 8 MiB)', 512 << 10, 1 << 20, 8 << 20],
  ['small', 2048, 4096, 8192],
  ['wide spread, where the center clamp matters', 256, 16384, 65536],
];

for (const [name, min, avg, max] of regimes) {
  test(`streaming cut points equal a whole-buffer cut: ${name}`, (t) => {
    const data = pseudoRandom(min >= 1 << 19 ? 24 << 20 : 2 << 20, min & 0xff);
    const reference = referenceCdcLengths(data, min, avg, max);
    const params: ChunkerParams = { algorithm: 'fastcdc', min, avg, max };
    for (const pieces of [[1 << 20], [4096], [100_000, 7, 333_333], [3 << 20], [data.length]]) {
      t.deepEqual(streamLengths(data, params, pieces), reference, `pieces ${pieces.join(',')}`);
    }
  });
}

test('chunks are independent copies: the input may be reused at once', (t) => {
  const data = pseudoRandom(3 << 20, 9);
  const c = createChunker({ algorithm: 'fastcdc', min: 2048, avg: 4096, max: 8192 });
  const input = Buffer.from(data.subarray(0, 1 << 20));
  const chunks = c.update(input);
  input.fill(0);
  const joined = Buffer.concat(chunks);
  t.true(joined.length > 0);
  t.deepEqual(joined, data.subarray(0, joined.length));
  for (const ch of chunks) t.is(ch.byteOffset, 0);
});

test('fixed-size chunking cuts at exact multiples whatever the read sizes', (t) => {
  const data = pseudoRandom(1_000_000, 3);
  const params: ChunkerParams = { algorithm: 'fixed', size: 65536 };
  const expected = [...Array(15).fill(65536), 1_000_000 - 15 * 65536];
  t.deepEqual(streamLengths(data, params, [1000, 70000, 13]), expected);
  t.deepEqual(Buffer.concat(chunkBuffer(data, params)), data);
});

test('content-defined chunks survive an insertion: most chunks are unchanged', (t) => {
  const data = pseudoRandom(64 << 20, 5);
  const shifted = Buffer.concat([randomBytes(1024), data]);
  const a = new Set(chunkBuffer(data, DEFAULT_CDC).map((c) => Buffer.from(c).toString('base64').slice(0, 40) + c.length));
  const b = chunkBuffer(shifted, DEFAULT_CDC).map((c) => Buffer.from(c).toString('base64').slice(0, 40) + c.length);
  const reused = b.filter((k) => a.has(k)).length;
  t.true(reused / b.length > 0.9, `${reused} of ${b.length} reused`);
});

test('chunker parameters are validated', (t) => {
  t.is(validateChunkerParams(DEFAULT_CDC), null);
  t.truthy(validateChunkerParams({ algorithm: 'fastcdc', min: 10, avg: 20, max: 30 }));
  t.truthy(validateChunkerParams({ algorithm: 'fastcdc', min: 4096, avg: 1024, max: 8192 }));
  t.truthy(validateChunkerParams({ algorithm: 'fixed', size: 100 }));
});
